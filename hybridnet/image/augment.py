"""``mx.image`` augmenters: callable objects that transform one HWC image, and
``CreateAugmenter`` that builds MXNet's standard list of them.

Each augmenter takes an NDArray (or numpy array) and returns the same kind. Randomness comes from
Python's ``random`` and numpy's global generator, as in MXNet, so seeding them repeats a run.
"""
from __future__ import annotations

import json
import random

import numpy as np

from ..base import HybridNetError
from .image import (_host, _wrap, center_crop, color_normalize, random_crop, random_size_crop,
                    resize_short)
from . import resize as _rs

__all__ = ["Augmenter", "SequentialAug", "RandomOrderAug", "ResizeAug", "ForceResizeAug",
           "RandomCropAug", "RandomSizedCropAug", "CenterCropAug", "BrightnessJitterAug",
           "ContrastJitterAug", "SaturationJitterAug", "HueJitterAug", "ColorJitterAug",
           "LightingAug", "ColorNormalizeAug", "RandomGrayAug", "HorizontalFlipAug", "CastAug",
           "CreateAugmenter"]

_GRAY_COEF = np.array([0.299, 0.587, 0.114], np.float32)


class Augmenter:
    """Base class: ``aug(src) -> augmented src``; ``dumps()`` describes it as JSON."""

    def __init__(self, **kwargs):
        self._kwargs = {}
        for k, v in kwargs.items():
            if hasattr(v, "asnumpy"):
                v = v.asnumpy()
            if isinstance(v, np.ndarray):
                v = v.tolist()
            self._kwargs[k] = v

    def dumps(self) -> str:
        """``[class name (lower case), {constructor arguments}]`` as a JSON string."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, src):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({args})"


class _ArrayAug(Augmenter):
    """An augmenter written on numpy arrays; NDArrays are converted in and out."""

    def __call__(self, src):
        arr, as_nd = _host(src)
        return _wrap(self._apply(arr), as_nd, getattr(src, "context", None))

    def _apply(self, arr: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SequentialAug(Augmenter):
    """Apply the augmenters ``ts`` one after the other."""

    def __init__(self, ts):
        super().__init__()
        self.ts = list(ts)

    def dumps(self) -> list:
        """``[class name (lower case), [each augmenter's dumps()]]`` -- a list, not a JSON
        string, exactly as MXNet returns it."""
        return [self.__class__.__name__.lower(), [t.dumps() for t in self.ts]]

    def __call__(self, src):
        for aug in self.ts:
            src = aug(src)
        return src


class RandomOrderAug(SequentialAug):
    """Apply the augmenters ``ts`` in a random order."""

    def __call__(self, src):
        order = list(self.ts)
        random.shuffle(order)
        for aug in order:
            src = aug(src)
        return src


class ResizeAug(Augmenter):
    """Resize the shorter side to ``size``."""

    def __init__(self, size: int, interp: int = 2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return resize_short(src, self.size, self.interp)


class ForceResizeAug(_ArrayAug):
    """Resize to exactly ``size`` = (width, height)."""

    def __init__(self, size, interp: int = 2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def _apply(self, arr):
        from .image import _get_interp_method  # noqa: PLC0415
        method = _get_interp_method(self.interp, (arr.shape[0], arr.shape[1], self.size[1],
                                                  self.size[0]))
        return _rs.resize(arr, self.size[0], self.size[1], method)


class RandomCropAug(Augmenter):
    """Crop a random ``size`` = (width, height) window."""

    def __init__(self, size, interp: int = 2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return random_crop(src, self.size, self.interp)[0]


class RandomSizedCropAug(Augmenter):
    """Crop a random window of random area fraction and aspect ratio, resized to ``size``."""

    def __init__(self, size, area, ratio, interp: int = 2, **kwargs):
        super().__init__(size=size, area=area, ratio=ratio, interp=interp)
        self.size, self.area, self.ratio, self.interp = size, area, ratio, interp
        if "min_area" in kwargs:
            self.area = kwargs.pop("min_area")
        if kwargs:
            raise TypeError(f"RandomSizedCropAug got unexpected arguments {sorted(kwargs)}")

    def __call__(self, src):
        return random_size_crop(src, self.size, self.area, self.ratio, self.interp)[0]


class CenterCropAug(Augmenter):
    """Crop the centre ``size`` = (width, height) window."""

    def __init__(self, size, interp: int = 2):
        super().__init__(size=size, interp=interp)
        self.size, self.interp = size, interp

    def __call__(self, src):
        return center_crop(src, self.size, self.interp)[0]


class BrightnessJitterAug(_ArrayAug):
    """Multiply by ``1 + u``, u uniform in [-brightness, brightness]."""

    def __init__(self, brightness: float):
        super().__init__(brightness=brightness)
        self.brightness = brightness

    def _apply(self, arr):
        alpha = 1.0 + random.uniform(-self.brightness, self.brightness)
        return (arr * np.float32(alpha)).astype(np.float32)


class ContrastJitterAug(_ArrayAug):
    """Blend with the image's mean gray level by a random factor in [1-contrast, 1+contrast]."""

    def __init__(self, contrast: float):
        super().__init__(contrast=contrast)
        self.contrast = contrast

    def _apply(self, arr):
        alpha = 1.0 + random.uniform(-self.contrast, self.contrast)
        gray = arr * _GRAY_COEF
        shift = (3.0 * (1.0 - alpha) / gray.size) * np.sum(gray, dtype=np.float32)
        return (arr * np.float32(alpha) + np.float32(shift)).astype(np.float32)


class SaturationJitterAug(_ArrayAug):
    """Blend with each pixel's gray level by a random factor in [1-saturation, 1+saturation]."""

    def __init__(self, saturation: float):
        super().__init__(saturation=saturation)
        self.saturation = saturation

    def _apply(self, arr):
        alpha = 1.0 + random.uniform(-self.saturation, self.saturation)
        gray = np.sum(arr * _GRAY_COEF, axis=2, keepdims=True, dtype=np.float32)
        return (arr * np.float32(alpha) + gray * np.float32(1.0 - alpha)).astype(np.float32)


class HueJitterAug(_ArrayAug):
    """Rotate the hue by a random angle in [-hue, hue] * 180 degrees (in YIQ space)."""

    _TYIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    _ITYIQ = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])

    def __init__(self, hue: float):
        super().__init__(hue=hue)
        self.hue = hue

    def _apply(self, arr):
        alpha = random.uniform(-self.hue, self.hue)
        u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
        bt = np.array([[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]])
        t = np.dot(np.dot(self._ITYIQ, bt), self._TYIQ).T
        return np.dot(arr.astype(np.float32), t.astype(np.float32))


class ColorJitterAug(RandomOrderAug):
    """Brightness, contrast and saturation jitter in a random order (zeros are skipped)."""

    def __init__(self, brightness: float, contrast: float, saturation: float):
        ts = []
        if brightness > 0:
            ts.append(BrightnessJitterAug(brightness))
        if contrast > 0:
            ts.append(ContrastJitterAug(contrast))
        if saturation > 0:
            ts.append(SaturationJitterAug(saturation))
        super().__init__(ts)


class LightingAug(_ArrayAug):
    """AlexNet-style PCA lighting noise with standard deviation ``alphastd``."""

    def __init__(self, alphastd: float, eigval, eigvec):
        super().__init__(alphastd=alphastd, eigval=eigval, eigvec=eigvec)
        self.alphastd = alphastd
        self.eigval, self.eigvec = np.asarray(eigval), np.asarray(eigvec)

    def _apply(self, arr):
        alpha = np.random.normal(0, self.alphastd, size=(3,))
        rgb = np.dot(self.eigvec * alpha, self.eigval)
        return (arr + rgb.astype(np.float32)).astype(np.float32)


class ColorNormalizeAug(Augmenter):
    """Subtract ``mean`` and divide by ``std`` (either may be None)."""

    def __init__(self, mean, std):
        super().__init__(mean=mean, std=std)
        self.mean, self.std = mean, std

    def __call__(self, src):
        return color_normalize(src, self.mean, self.std)


class RandomGrayAug(_ArrayAug):
    """Turn the image gray with probability ``p``."""

    _MAT = np.array([[0.21, 0.21, 0.21], [0.72, 0.72, 0.72], [0.07, 0.07, 0.07]], np.float32)

    def __init__(self, p: float):
        super().__init__(p=p)
        self.p = p

    def _apply(self, arr):
        if random.random() < self.p:
            return np.dot(arr.astype(np.float32), self._MAT)
        return arr


class HorizontalFlipAug(_ArrayAug):
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float):
        super().__init__(p=p)
        self.p = p

    def _apply(self, arr):
        if random.random() < self.p:
            return np.ascontiguousarray(arr[:, ::-1])
        return arr


class CastAug(_ArrayAug):
    """Cast to ``typ`` (float32 by default)."""

    def __init__(self, typ: str = "float32"):
        super().__init__(type=typ)
        self.typ = typ

    def _apply(self, arr):
        return arr.astype(self.typ)


def _channel_stats(value, default, name):
    if value is True:
        return np.array(default, np.float32)
    if value is None:
        return None
    arr = _host(value)[0] if hasattr(value, "asnumpy") else np.asarray(value, np.float32)
    if arr.shape[0] not in (1, 3):
        raise HybridNetError(f"CreateAugmenter: {name} must have 1 or 3 values (per channel), "
                             f"got shape {arr.shape}")
    return arr.astype(np.float32)


def CreateAugmenter(data_shape, resize=0, rand_crop=False, rand_resize=False, rand_mirror=False,
                    mean=None, std=None, brightness=0, contrast=0, saturation=0, hue=0,
                    pca_noise=0, rand_gray=0, inter_method=2):
    """MXNet's standard augmenter list for images of ``data_shape`` = (C, H, W).

    Order: resize shorter side (``resize``) -> crop (random-sized if ``rand_resize``, random if
    ``rand_crop``, else centre) -> random mirror -> cast to float32 -> colour jitter -> hue ->
    PCA lighting -> random gray -> normalise (``mean``/``std``; ``True`` means ImageNet's).

    Example::

        >>> augs = mx.image.CreateAugmenter((3, 224, 224), resize=256, rand_crop=True,
        ...                                 rand_mirror=True, mean=True, std=True)
        >>> for aug in augs:
        ...     img = aug(img)
    """
    auglist = []
    if resize > 0:
        auglist.append(ResizeAug(resize, inter_method))
    crop_size = (data_shape[2], data_shape[1])
    if rand_resize:
        if not rand_crop:
            raise HybridNetError("CreateAugmenter: rand_resize=True needs rand_crop=True")
        auglist.append(RandomSizedCropAug(crop_size, 0.08, (3.0 / 4.0, 4.0 / 3.0), inter_method))
    elif rand_crop:
        auglist.append(RandomCropAug(crop_size, inter_method))
    else:
        auglist.append(CenterCropAug(crop_size, inter_method))
    if rand_mirror:
        auglist.append(HorizontalFlipAug(0.5))
    auglist.append(CastAug())
    if brightness or contrast or saturation:
        auglist.append(ColorJitterAug(brightness, contrast, saturation))
    if hue:
        auglist.append(HueJitterAug(hue))
    if pca_noise > 0:
        eigval = np.array([55.46, 4.794, 1.148])
        eigvec = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])
        auglist.append(LightingAug(pca_noise, eigval, eigvec))
    if rand_gray > 0:
        auglist.append(RandomGrayAug(rand_gray))
    mean = _channel_stats(mean, [123.68, 116.28, 103.53], "mean")
    std = _channel_stats(std, [58.395, 57.12, 57.375], "std")
    if mean is not None or std is not None:
        auglist.append(ColorNormalizeAug(mean, std))
    return auglist
