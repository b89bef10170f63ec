"""The per-image work of ``ImageRecordIter``: MXNet's default augmenter (``aug_default``) and
its normaliser, on numpy arrays, one image at a time, safe to run in several threads.

Order (as MXNet 1.9): resize the shorter side (``resize``) -> either ``random_resized_crop`` or
[affine warp (rotate, shear, random scale, aspect ratio) -> ``pad`` -> crop (random when
``rand_crop``, else centre; ``min/max_crop_size`` crop a random square and resize it; an
image smaller than data_shape is first scaled up to cover it, keeping its aspect ratio)] ->
HSL jitter (``random_h/s/l``, OpenCV's 8-bit HLS) -> colour jitter (brightness, contrast,
saturation) -> PCA noise -> mirror (``mirror`` or
``rand_mirror``) and ``(pixel - mean) * scale / std`` written channel-first into the batch.

Without random options the result equals MXNet's batch pixel for pixel (decode and resize are
bit-exact). Random options draw from a generator seeded by (seed, epoch, sample), so a run is
repeatable whatever the thread scheduling, but the draws differ from MXNet's.
"""
from __future__ import annotations

import math

import numpy as np

from ..base import HybridNetError
from . import kernels
from . import resize as _rs
from .codec import decode

__all__ = ["AUG_DEFAULTS", "NORM_DEFAULTS", "RecordAugmenter"]

# MXNet's names and defaults (aug_default + normaliser parameters of ImageRecordIter).
AUG_DEFAULTS = {
    "resize": -1, "rand_crop": False, "random_resized_crop": False, "max_rotate_angle": 0,
    "rotate": -1, "max_aspect_ratio": 0.0, "min_aspect_ratio": None, "max_shear_ratio": 0.0,
    "max_crop_size": -1, "min_crop_size": -1, "max_random_scale": 1.0, "min_random_scale": 1.0,
    "max_random_area": 1.0, "min_random_area": 1.0, "max_img_size": 1e10, "min_img_size": 0.0,
    "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "pca_noise": 0.0,
    "random_h": 0, "random_s": 0, "random_l": 0,
    "fill_value": 255, "inter_method": 1, "pad": 0,
}
NORM_DEFAULTS = {
    "mirror": False, "rand_mirror": False, "mean_img": "", "mean_r": 0.0, "mean_g": 0.0,
    "mean_b": 0.0, "mean_a": 0.0, "std_r": 1.0, "std_g": 1.0, "std_b": 1.0, "std_a": 1.0,
    "scale": 1.0, "max_random_contrast": 0.0, "max_random_illumination": 0.0,
}
_PCA_EIGVAL = np.array([55.46, 4.794, 1.148])
_PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                        [-0.5836, -0.6948, 0.4203]])


def _inter(method: int, old_w, old_h, new_w, new_h, rng) -> int:
    if method == 9:
        if new_w > old_w and new_h > old_h:
            return _rs.INTER_CUBIC
        if new_w < old_w and new_h < old_h:
            return _rs.INTER_AREA
        return _rs.INTER_LINEAR
    if method == 10:
        return int(rng.integers(0, 5)) if rng is not None else _rs.INTER_LINEAR
    return method


class RecordAugmenter:
    """Decode + augment + normalise one record's image into a batch slot.

    Args:
        data_shape: (C, H, W) of one output image; C is 1 (gray), 3 (RGB) or 4 (RGBA).
        aug: augmenter parameters (keys of ``AUG_DEFAULTS``).
        norm: normaliser parameters (keys of ``NORM_DEFAULTS``); ignored for uint8 output.
        mean_img: (C, H, W) float32 mean image, or None.
        raw: True for uint8 output (no normalisation, like ``ImageRecordUInt8Iter``).
    """

    def __init__(self, data_shape, aug: dict, norm: dict, mean_img=None, raw: bool = False):
        self.c, self.h, self.w = (int(d) for d in data_shape)
        if self.c not in (1, 3, 4):
            raise HybridNetError(f"data_shape must be (channels, height, width) with 1, 3 or 4 "
                                 f"channels, got {tuple(data_shape)}")
        self.aug = dict(AUG_DEFAULTS, **aug)
        self.norm = dict(NORM_DEFAULTS, **norm)
        a = self.aug
        if a["inter_method"] not in (0, 1, 2, 3, 4, 9, 10):
            raise HybridNetError(f"inter_method must be 0-4, 9 (auto) or 10 (random), got "
                                 f"{a['inter_method']}")
        self.raw = raw
        self._affine = (a["max_rotate_angle"] > 0 or a["max_shear_ratio"] > 0 or a["rotate"] > 0
                        or a["max_random_scale"] != 1.0 or a["min_random_scale"] != 1.0
                        or (a["max_aspect_ratio"] != 0.0 and not a["random_resized_crop"])
                        or a["max_img_size"] != 1e10 or a["min_img_size"] != 0.0)
        self._jitter = a["brightness"] > 0 or a["contrast"] > 0 or a["saturation"] > 0
        self._hls = a["random_h"] != 0 or a["random_s"] != 0 or a["random_l"] != 0
        self._plain_crop = (not a["random_resized_crop"] and not self._affine and a["pad"] <= 0
                            and a["max_crop_size"] == -1 and a["min_crop_size"] == -1)
        self.needs_rng = (a["rand_crop"] or a["random_resized_crop"] or self._affine
                          or self._jitter or self._hls or a["pca_noise"] > 0
                          or self.norm["rand_mirror"]
                          or self.norm["max_random_contrast"] > 0
                          or self.norm["max_random_illumination"] > 0
                          or a["inter_method"] == 10 or a["max_crop_size"] != -1)
        if not raw:
            self._prepare_normaliser(mean_img)

    def _prepare_normaliser(self, mean_img) -> None:
        n = self.norm
        names = "rgba"[:self.c] if self.c > 1 else "r"
        scale = np.float32(n["scale"])
        self.inv_std = np.array([np.float32(1) / np.float32(n[f"std_{ch}"]) for ch in names],
                                np.float32)
        self.mult = np.array([scale / np.float32(n[f"std_{ch}"]) for ch in names], np.float32)
        self.bias = np.zeros(self.c, np.float32)
        self._lighting = n["max_random_contrast"] > 0 or n["max_random_illumination"] > 0
        if mean_img is not None:
            mean = np.asarray(mean_img, np.float32)
            if mean.shape != (self.c, self.h, self.w):
                raise HybridNetError(f"mean_img has shape {mean.shape}, expected "
                                     f"{(self.c, self.h, self.w)} (data_shape)")
            self.mean = np.ascontiguousarray(mean)
        else:
            per_channel = np.array([n[f"mean_{ch}"] for ch in names], np.float32)
            self.mean = np.ascontiguousarray(np.broadcast_to(
                per_channel[:, None, None], (self.c, self.h, self.w)))

    # ---- the pipeline -----------------------------------------------------------------------
    def decode(self, payload: bytes, where: str) -> np.ndarray:
        flag = {1: 0, 3: 1, 4: -1}[self.c]
        img = decode(payload, flag, True, where)
        if img.shape[2] != self.c:
            raise HybridNetError(f"image {where} has {img.shape[2]} channels, data_shape asks "
                                 f"for {self.c}")
        return img

    def augment(self, img: np.ndarray, rng, where: str) -> np.ndarray:
        """Everything before normalisation; returns an (h, w, c) image of at least the crop size."""
        a = self.aug
        if a["resize"] > 0:
            h, w = img.shape[:2]
            if h > w:
                new_h, new_w = a["resize"] * h // w, a["resize"]
            else:
                new_h, new_w = a["resize"], a["resize"] * w // h
            method = _inter(a["inter_method"], w, h, new_w, new_h, rng)
            if self._plain_crop and new_h >= self.h and new_w >= self.w:
                # resize only the window the crop keeps: the same pixels
                y, x = self._crop_origin(new_h, new_w, rng)
                img = _rs.resize(img, new_w, new_h, method, window=(x, y, self.w, self.h))
                return self._colour(img, rng)
            img = _rs.resize(img, new_w, new_h, method)
        if a["random_resized_crop"]:
            img = self._random_resized_crop(img, rng)
        else:
            if self._affine:
                img = self._warp(img, rng)
            if a["pad"] > 0:
                img = kernels.pad_constant(img, a["pad"], a["fill_value"])
            img = self._crop(img, rng, where)
        return self._colour(img, rng)

    def _colour(self, img: np.ndarray, rng) -> np.ndarray:
        a = self.aug
        if self._hls:
            if img.shape[2] != 3:
                raise HybridNetError("random_h/s/l need 3-channel images (data_shape[0] == 3)")
            dh, ds, dl = (int(rng.random() * v * 2 - v)
                          for v in (a["random_h"], a["random_s"], a["random_l"]))
            img = kernels.hls_jitter(img, dh, dl, ds)
        if self._jitter:
            img = self._color_jitter(img, rng)
        if a["pca_noise"] > 0:
            alpha = rng.normal(0, a["pca_noise"], size=3)
            rgb = np.dot(_PCA_EIGVEC * alpha, _PCA_EIGVAL)
            img = np.clip(np.rint(img + rgb[:img.shape[2]]), 0, 255).astype(np.uint8)
        return img

    def mirror(self, rng) -> bool:
        return bool(self.norm["mirror"] or (self.norm["rand_mirror"] and rng.random() < 0.5))

    def write(self, img: np.ndarray, mirror: bool, out: np.ndarray, rng=None) -> None:
        """Write the (cropped) image into the (C, H, W) batch slot ``out``; with
        ``max_random_contrast`` / ``max_random_illumination`` the scale and offset are drawn
        per image, as MXNet does: ``(x - mean) * (1 + c) * scale / std + i * scale / std``."""
        y0 = (img.shape[0] - self.h) // 2
        x0 = (img.shape[1] - self.w) // 2
        if self.raw:
            kernels.to_chw(img, y0, x0, mirror, out)
            return
        mult, bias = self.mult, self.bias
        if self._lighting and rng is not None:
            n = self.norm
            scale = np.float32(n["scale"])
            contrast = np.float32((rng.uniform(-1, 1) * n["max_random_contrast"] + 1) * scale)
            light = np.float32(rng.uniform(-1, 1) * n["max_random_illumination"] * scale)
            mult = (contrast * self.inv_std).astype(np.float32)
            bias = (light * self.inv_std).astype(np.float32)
        kernels.to_chw(img, y0, x0, mirror, out, self.mean, mult, bias)

    def __call__(self, payload: bytes, out: np.ndarray, rng, where: str) -> None:
        img = self.augment(self.decode(payload, where), rng, where)
        mirror = self.mirror(rng) if rng is not None else bool(self.norm["mirror"])
        self.write(img, mirror, out, rng)

    # ---- the steps --------------------------------------------------------------------------
    def _resize_to_output(self, img, rng):
        h, w = img.shape[:2]
        if (h, w) == (self.h, self.w):
            return img
        return _rs.resize(img, self.w, self.h,
                          _inter(self.aug["inter_method"], w, h, self.w, self.h, rng))

    def _crop(self, img, rng, where):
        a = self.aug
        h, w = img.shape[:2]
        if a["max_crop_size"] != -1 or a["min_crop_size"] != -1:
            lo, hi = a["min_crop_size"], a["max_crop_size"]
            if not (w >= hi and h >= hi and hi >= lo):
                raise HybridNetError(f"image {where} of size {w}x{h} is smaller than "
                                     f"max_crop_size={hi} (or min_crop_size > max_crop_size)")
            size = int(rng.integers(lo, hi + 1))
            y, x = h - size, w - size
            if a["rand_crop"]:
                y, x = int(rng.integers(0, y + 1)), int(rng.integers(0, x + 1))
            else:
                y, x = y // 2, x // 2
            return self._resize_to_output(img[y:y + size, x:x + size], rng)
        img = self._enlarge_to_output(img, rng)
        y, x = self._crop_origin(img.shape[0], img.shape[1], rng)
        return img[y:y + self.h, x:x + self.w]

    def _enlarge_to_output(self, img, rng):
        """MXNet 1.9's rule for images smaller than data_shape: too short -> scale to the
        output height (keeping the aspect ratio, width rounded down); then too narrow -> scale
        to the output width."""
        h, w = img.shape[:2]
        if h < self.h:
            new_w = w * self.h // h
            img = _rs.resize(img, new_w, self.h,
                             _inter(self.aug["inter_method"], w, h, new_w, self.h, rng))
            h, w = img.shape[:2]
        if w < self.w:
            new_h = h * self.w // w
            img = _rs.resize(img, self.w, new_h,
                             _inter(self.aug["inter_method"], w, h, self.w, new_h, rng))
        return img

    def _crop_origin(self, h: int, w: int, rng):
        """Top-left corner of the data_shape crop of an h x w image (random or centred)."""
        y, x = h - self.h, w - self.w
        if self.aug["rand_crop"]:
            return int(rng.integers(0, y + 1)), int(rng.integers(0, x + 1))
        return y // 2, x // 2

    def _random_resized_crop(self, img, rng):
        a = self.aug
        h, w = img.shape[:2]
        lo_ratio = a["min_aspect_ratio"] if a["min_aspect_ratio"] is not None \
            else 1.0 - a["max_aspect_ratio"]
        hi_ratio = a["max_aspect_ratio"] if a["min_aspect_ratio"] is not None \
            else 1.0 + a["max_aspect_ratio"]
        for _ in range(10):
            area = rng.uniform(a["min_random_area"], a["max_random_area"]) * h * w
            ratio = rng.uniform(lo_ratio, hi_ratio)
            new_w = int(round(math.sqrt(area * ratio)))
            new_h = int(round(math.sqrt(area / ratio)))
            if 0 < new_w <= w and 0 < new_h <= h:
                y = int(rng.integers(0, h - new_h + 1))
                x = int(rng.integers(0, w - new_w + 1))
                return self._resize_to_output(img[y:y + new_h, x:x + new_w], rng)
        # No try fitted: the largest centred window with the output's aspect ratio.
        scale = min(w / self.w, h / self.h)
        cw, ch = max(1, int(self.w * scale)), max(1, int(self.h * scale))
        y, x = (h - ch) // 2, (w - cw) // 2
        return self._resize_to_output(img[y:y + ch, x:x + cw], rng)

    def _warp(self, img, rng):
        a = self.aug
        h, w = img.shape[:2]
        shear = rng.uniform(-1, 1) * a["max_shear_ratio"]
        angle = int(rng.integers(-a["max_rotate_angle"], a["max_rotate_angle"] + 1))
        if a["rotate"] > 0:
            angle = a["rotate"]
        cos_a, sin_a = math.cos(angle / 180.0 * math.pi), math.sin(angle / 180.0 * math.pi)
        scale = rng.uniform(a["min_random_scale"], a["max_random_scale"])
        if a["min_aspect_ratio"] is not None:
            ratio = rng.uniform(a["min_aspect_ratio"], a["max_aspect_ratio"])
        else:
            ratio = rng.uniform(-1, 1) * a["max_aspect_ratio"] + 1
        hs = 2 * scale / (1 + ratio)
        ws = ratio * hs
        new_w = max(a["min_img_size"], min(a["max_img_size"], scale * w))
        new_h = max(a["min_img_size"], min(a["max_img_size"], scale * h))
        m = np.zeros((2, 3))
        m[0, 0] = hs * cos_a - shear * sin_a * ws
        m[1, 0] = -sin_a * ws
        m[0, 1] = hs * sin_a + shear * cos_a * ws
        m[1, 1] = cos_a * ws
        m[0, 2] = (new_w - (m[0, 0] * w + m[0, 1] * h)) / 2
        m[1, 2] = (new_h - (m[1, 0] * w + m[1, 1] * h)) / 2
        return kernels.warp_affine(img, m, int(new_w), int(new_h), a["fill_value"])

    def _color_jitter(self, img, rng):
        a = self.aug
        if img.shape[2] != 3:
            raise HybridNetError("brightness/contrast/saturation need 3-channel images "
                                 "(data_shape[0] == 3)")
        factors = [1.0 + rng.uniform(-v, v) if v > 0 else 1.0
                   for v in (a["brightness"], a["contrast"], a["saturation"])]
        return kernels.color_jitter(img, *factors)
