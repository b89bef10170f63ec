"""Image decoding and encoding (JPEG, PNG, ...) through Pillow, returning numpy HWC uint8 arrays.

Pillow's JPEG decoder is libjpeg-turbo, the library MXNet decodes with, and its output is
identical to MXNet's ``imdecode`` (checked on RGB 4:2:0, 4:4:4 and grayscale JPEGs). Pillow is
imported on first use; decoding releases the GIL, so decode threads run in parallel.
Not reproduced: OpenCV's EXIF-orientation rotation and 16-bit PNG output (8-bit here).
"""
from __future__ import annotations

import io

import numpy as np

from ..base import HybridNetError

__all__ = ["ImageDecodeError", "decode", "encode", "pil"]


class ImageDecodeError(HybridNetError, ValueError):
    """Bytes that should hold an image could not be decoded."""


def pil():
    """The ``PIL.Image`` module; a clear error when Pillow is not installed."""
    try:
        from PIL import Image  # noqa: PLC0415 (optional dependency, imported on first use)
    except ImportError:
        raise HybridNetError("image decoding and encoding need Pillow, which is not installed; "
                             "install it with `pip install pillow` (or `pip install "
                             "hybridnet[image]`)") from None
    return Image


def _gray_from_rgb(rgb: np.ndarray, fmt: str) -> np.ndarray:
    """Colour to gray the way MXNet's OpenCV does it for flag=0."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    if fmt == "PNG":
        # libpng's png_set_rgb_to_gray(0.299, 0.587): 15-bit weights, truncated; gray pixels
        # stay as they are.
        gray = (r * 9797 + g * 19234 + b * 3737) >> 15
        return np.where((r == g) & (g == b), r, gray).astype(np.uint8)
    return ((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).astype(np.uint8)  # cvtColor BGR2GRAY


def _describe(buf: bytes) -> str:
    head = bytes(buf[:8])
    return f"{len(buf)} bytes starting with {head.hex(' ')}" if buf else "0 bytes"


def decode(buf, flag: int = 1, to_rgb: bool = True, where: str = "") -> np.ndarray:
    """Decode encoded image bytes into an (H, W, C) uint8 array.

    Args:
        buf: the encoded bytes (bytes, bytearray, memoryview or a uint8 numpy array).
        flag: 1 colour (3 channels), 0 grayscale (1 channel), -1 as stored (1, 3 or 4).
        to_rgb: channel order RGB(A) when true, BGR(A) (OpenCV's) when false.
        where: text naming the source (a file, a record) for error messages.
    """
    if flag not in (-1, 0, 1):
        raise HybridNetError(f"imdecode flag must be 1 (colour), 0 (grayscale) or -1 (unchanged), "
                             f"got {flag!r}")
    if isinstance(buf, np.ndarray):
        buf = buf.tobytes()
    image_mod = pil()
    try:
        img = image_mod.open(io.BytesIO(buf))
        if flag == 0 and img.format == "JPEG" and img.mode in ("RGB", "YCbCr"):
            img.draft("L", img.size)        # libjpeg's own Y-channel output, as OpenCV asks for
        img.load()
    except Exception as err:  # Pillow raises several types (UnidentifiedImageError, OSError, ...)
        where_txt = f" {where}" if where else ""
        raise ImageDecodeError(f"cannot decode image{where_txt} ({_describe(buf)}): "
                               f"{err}") from None
    mode = img.mode
    if flag == 0:
        if mode == "L":
            arr = np.asarray(img)
        else:
            arr = _gray_from_rgb(np.asarray(img.convert("RGB")), img.format)
        return arr[:, :, None]
    if flag == -1:
        if mode in ("L", "RGB", "RGBA"):
            arr = np.asarray(img)
        elif mode in ("LA", "PA") or "transparency" in img.info:
            arr = np.asarray(img.convert("RGBA"))
        elif mode in ("I;16", "I", "F"):
            arr = np.asarray(img.convert("L"))
        else:
            arr = np.asarray(img.convert("RGB"))
    else:
        arr = np.asarray(img if mode == "RGB" else img.convert("RGB"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if not to_rgb and arr.shape[2] >= 3:
        arr = np.concatenate([arr[:, :, 2::-1], arr[:, :, 3:]], axis=2)
    return np.ascontiguousarray(arr)


def encode(img: np.ndarray, fmt: str = ".jpg", quality: int = 95, to_rgb: bool = True) -> bytes:
    """Encode an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 array.

    ``fmt`` is an extension ('.jpg', '.png', ...). ``quality`` is the JPEG quality (1-100) or, for
    PNG, the zlib compression level (0-9; larger values are clipped to 9, as OpenCV does).
    ``to_rgb=False`` means the channels are in OpenCV's BGR(A) order.
    """
    image_mod = pil()
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise HybridNetError(f"only uint8 images can be encoded, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and not to_rgb:
        arr = np.concatenate([arr[:, :, 2::-1], arr[:, :, 3:]], axis=2)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise HybridNetError(f"cannot encode an image of shape {arr.shape}; expected (H, W), "
                             f"(H, W, 1), (H, W, 3) or (H, W, 4)")
    ext = fmt.lower().lstrip(".")
    out = io.BytesIO()
    picture = image_mod.fromarray(np.ascontiguousarray(arr))
    if ext in ("jpg", "jpeg"):
        if picture.mode == "RGBA":
            picture = picture.convert("RGB")
        picture.save(out, format="JPEG", quality=int(quality))
    elif ext == "png":
        picture.save(out, format="PNG", compress_level=int(min(max(quality, 0), 9)))
    else:
        try:
            picture.save(out, format=image_mod.registered_extensions()["." + ext])
        except KeyError:
            raise HybridNetError(f"unknown image format {fmt!r}; use '.jpg' or '.png'") from None
    return out.getvalue()
