"""``mx.image`` functions: decode, read, resize and crop HWC images held in NDArrays.

Images are (height, width, channels) uint8 NDArrays in RGB order, as in MXNet. Every function also
accepts a numpy array and then returns one, which is how the data iterators call them (no
device round trip). Random choices use Python's ``random`` module, like MXNet's, so
``random.seed`` makes them repeatable.
"""
from __future__ import annotations

import random

import numpy as np

from ..base import HybridNetError
from ..context import Context, cpu
from . import resize as _rs
from .codec import decode

__all__ = ["imdecode", "imread", "imresize", "resize_short", "fixed_crop", "center_crop",
           "random_crop", "random_size_crop", "color_normalize", "scale_down", "copyMakeBorder"]


def _is_nd(x) -> bool:
    from ..ndarray import NDArray  # noqa: PLC0415 (ndarray imports are heavy; keep them late)
    return isinstance(x, NDArray)


def _host(src):
    """(numpy array, was it an NDArray?) for an image argument."""
    if _is_nd(src):
        return src.asnumpy(), True
    if isinstance(src, np.ndarray):
        return src, False
    raise TypeError(f"expected an image as NDArray or numpy array, got {type(src).__name__}")


def _wrap(arr: np.ndarray, as_nd: bool, ctx: Context | None = None, out=None):
    if out is not None:
        out[:] = arr if not _is_nd(out) else _nd_from(arr, ctx)
        return out
    if not as_nd:
        return arr
    return _nd_from(arr, ctx)


def _nd_from(arr: np.ndarray, ctx: Context | None):
    from ..ndarray import NDArray, array  # noqa: PLC0415
    ctx = ctx or cpu()
    if ctx.is_gpu:
        return array(arr, ctx=ctx, dtype=arr.dtype)
    return NDArray(np.ascontiguousarray(arr), ctx)


def _get_interp_method(interp: int, sizes=()) -> int:
    """MXNet's interpolation codes; 9 = auto (area to shrink, cubic to enlarge), 10 = random."""
    if interp == 9:
        if sizes:
            oh, ow, nh, nw = sizes
            if nh > oh and nw > ow:
                return _rs.INTER_CUBIC
            if nh < oh and nw < ow:
                return _rs.INTER_AREA
        return _rs.INTER_LINEAR
    if interp == 10:
        return random.randint(0, 4)
    if interp not in (0, 1, 2, 3, 4):
        raise HybridNetError(f"Unknown interp method {interp}; use 0 (nearest), 1 (bilinear), "
                             f"2 (bicubic), 3 (area), 4 (lanczos4), 9 (auto) or 10 (random)")
    return interp


def imdecode(buf, flag: int = 1, to_rgb: int = 1, out=None):
    """Decode an image from bytes into an NDArray (``mx.image.imdecode``).

    Args:
        buf: encoded bytes (bytes, bytearray or a uint8 numpy array).
        flag: 1 colour (H, W, 3), 0 grayscale (H, W, 1).
        to_rgb: 1 for RGB channel order, 0 for OpenCV's BGR.
        out: optional NDArray to write into.

    Returns:
        NDArray: (H, W, C) uint8.

    Example::

        >>> with open('cat.jpg', 'rb') as f:
        ...     img = mx.image.imdecode(f.read())
        >>> img.shape
        (480, 640, 3)
    """
    if not isinstance(buf, (bytes, bytearray, memoryview, np.ndarray)):
        raise TypeError(f"imdecode expects the encoded image as bytes or a uint8 numpy array, "
                        f"got {type(buf).__name__}")
    return _wrap(decode(buf, flag, bool(to_rgb)), True, out=out)


def imread(filename: str, flag: int = 1, to_rgb: int = 1, out=None):
    """Read and decode an image file into an NDArray (``mx.image.imread``); see ``imdecode``."""
    try:
        with open(filename, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"imread: no image file at {filename!r}") from None
    return _wrap(decode(buf, flag, bool(to_rgb), where=f"file {filename!r}"), True, out=out)


def imresize(src, w: int, h: int, interp: int = 1, out=None):
    """Resize ``src`` to width ``w`` and height ``h`` (``mx.image.imresize``).

    ``interp``: 0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos-4 (OpenCV's arithmetic).

    Example::

        >>> mx.image.imresize(img, 240, 180).shape
        (180, 240, 3)
    """
    arr, as_nd = _host(src)
    res = _rs.resize(arr, w, h, _get_interp_method(interp, (arr.shape[0], arr.shape[1], h, w)))
    return _wrap(res, as_nd, getattr(src, "context", None), out)


def scale_down(src_size, size):
    """Shrink the crop size ``size`` = (w, h) to fit in ``src_size`` = (w, h), same aspect."""
    w, h = size
    sw, sh = src_size
    if sh < h:
        w, h = float(w * sh) / h, sh
    if sw < w:
        w, h = sw, float(h * sw) / w
    return int(w), int(h)


def resize_short(src, size: int, interp: int = 2):
    """Resize so the shorter side is ``size``, keeping the aspect ratio (``mx.image.resize_short``).

    Example::

        >>> mx.image.resize_short(mx.nd.zeros((480, 640, 3), dtype='uint8'), 256).shape
        (256, 341, 3)
    """
    h, w = src.shape[0], src.shape[1]
    if h > w:
        new_h, new_w = size * h // w, size
    else:
        new_h, new_w = size, size * w // h
    return imresize(src, new_w, new_h, _get_interp_method(interp, (h, w, new_h, new_w)))


def fixed_crop(src, x0: int, y0: int, w: int, h: int, size=None, interp: int = 2):
    """Crop the (w, h) window at (x0, y0), then resize it to ``size`` = (w, h) if given."""
    arr, as_nd = _host(src)
    if x0 < 0 or y0 < 0 or x0 + w > arr.shape[1] or y0 + h > arr.shape[0]:
        raise HybridNetError(f"crop window x0={x0}, y0={y0}, w={w}, h={h} does not fit in an "
                             f"image of width {arr.shape[1]} and height {arr.shape[0]}")
    res = arr[y0:y0 + h, x0:x0 + w]
    if size is not None and (w, h) != tuple(size):
        res = _rs.resize(res, size[0], size[1],
                         _get_interp_method(interp, (h, w, size[1], size[0])))
    else:
        res = np.ascontiguousarray(res)
    return _wrap(res, as_nd, getattr(src, "context", None))


def center_crop(src, size, interp: int = 2):
    """Crop the centre (scaled down to fit when larger than the image) and resize it to ``size``.

    Returns:
        (cropped image, (x0, y0, w, h)) of the window taken from ``src``.

    Example::

        >>> out, (x0, y0, w, h) = mx.image.center_crop(img, (224, 224))
    """
    h, w = src.shape[0], src.shape[1]
    new_w, new_h = scale_down((w, h), size)
    x0 = int((w - new_w) / 2)
    y0 = int((h - new_h) / 2)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def random_crop(src, size, interp: int = 2):
    """Crop a random window of ``size`` (scaled down to fit) and resize it to ``size``.

    Returns:
        (cropped image, (x0, y0, w, h)).
    """
    h, w = src.shape[0], src.shape[1]
    new_w, new_h = scale_down((w, h), size)
    x0 = random.randint(0, w - new_w)
    y0 = random.randint(0, h - new_h)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def random_size_crop(src, size, area, ratio, interp: int = 2, **kwargs):
    """Crop a random window covering ``area`` (fraction, or (min, max)) of the image with aspect
    ratio in ``ratio`` = (min, max) (sampled log-uniformly), resized to ``size``; falls back to
    ``center_crop`` after 10 tries that do not fit.

    Returns:
        (cropped image, (x0, y0, w, h)).
    """
    h, w = src.shape[0], src.shape[1]
    if "min_area" in kwargs:
        area = kwargs.pop("min_area")
    if kwargs:
        raise TypeError(f"random_size_crop got unexpected arguments {sorted(kwargs)}")
    if isinstance(area, (int, float)):
        area = (area, 1.0)
    src_area = h * w
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for _ in range(10):
        target_area = random.uniform(area[0], area[1]) * src_area
        new_ratio = np.exp(random.uniform(*log_ratio))
        new_w = int(round(np.sqrt(target_area * new_ratio)))
        new_h = int(round(np.sqrt(target_area / new_ratio)))
        if new_w <= w and new_h <= h:
            x0 = random.randint(0, w - new_w)
            y0 = random.randint(0, h - new_h)
            return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)
    return center_crop(src, size, interp)


def color_normalize(src, mean, std=None):
    """``(src - mean) / std`` (``mx.image.color_normalize``); ``src`` is a float image."""
    arr, as_nd = _host(src)

    def values(x):
        return x.asnumpy() if _is_nd(x) else np.asarray(x, np.float32)
    res = arr.astype(np.float32)
    if mean is not None:
        res = res - values(mean)
    if std is not None:
        res = res / values(std)
    return _wrap(res.astype(np.float32), as_nd, getattr(src, "context", None))


def copyMakeBorder(src, top: int, bot: int, left: int, right: int, type: int = 0,  # noqa: A002
                   value=0, values=None):
    """Pad an image: ``type`` 0 constant (``value``), 1 replicate, 2 reflect, 4 reflect-101
    (OpenCV's border codes)."""
    arr, as_nd = _host(src)
    widths = ((top, bot), (left, right)) + ((0, 0),) * (arr.ndim - 2)
    if type == 0:
        fill = values if values is not None else value
        if np.ndim(fill) == 0:
            res = np.pad(arr, widths, mode="constant", constant_values=fill)
        else:
            res = np.empty((arr.shape[0] + top + bot, arr.shape[1] + left + right) + arr.shape[2:],
                           arr.dtype)
            res[...] = np.asarray(fill, arr.dtype)
            res[top:top + arr.shape[0], left:left + arr.shape[1]] = arr
    else:
        modes = {1: "edge", 2: "symmetric", 4: "reflect"}
        if type not in modes:
            raise HybridNetError(f"copyMakeBorder type must be 0 (constant), 1 (replicate), "
                                 f"2 (reflect) or 4 (reflect-101), got {type}")
        res = np.pad(arr, widths, mode=modes[type])
    return _wrap(res, as_nd, getattr(src, "context", None))
