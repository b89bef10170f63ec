"""numba kernels of the image pipeline. All release the GIL (decode threads run them in
parallel) and are compiled on first use; each has a plain numpy reference in the tests."""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["to_chw", "warp_affine", "color_jitter", "hls_jitter", "pad_constant"]


@numba.njit(nogil=True, cache=True)
def _to_chw(img, y0, x0, mirror, mean, mult, bias, out):
    c, h, w = out.shape
    for k in range(c):
        m, b = mult[k], bias[k]
        for i in range(h):
            row = img[y0 + i]
            mk = mean[k, i]
            dst = out[k, i]
            for j in range(w):
                jj = x0 + (w - 1 - j if mirror else j)
                dst[j] = (np.float32(row[jj, k]) - mk[j]) * m + b


@numba.njit(nogil=True, cache=True)
def _to_chw_raw(img, y0, x0, mirror, out):
    c, h, w = out.shape
    for k in range(c):
        for i in range(h):
            row = img[y0 + i]
            dst = out[k, i]
            for j in range(w):
                dst[j] = row[x0 + (w - 1 - j if mirror else j), k]


def to_chw(img: np.ndarray, y0: int, x0: int, mirror: bool, out: np.ndarray, mean=None,
           mult=None, bias=None) -> None:
    """Crop ``out``'s (H, W) window at (y0, x0) out of the HWC uint8 ``img``, mirror it if asked,
    and write it channel-first into ``out`` (C, H, W) as ``(pixel - mean) * mult + bias``.

    ``mean`` is (C, H, W) float32 (per-channel means broadcast, or a mean image); ``mult`` and
    ``bias`` are per channel. With ``mean`` None the pixels are copied unchanged (uint8 output).
    This is MXNet's normalisation: ``(x - mean) * scale / std``.
    """
    if mean is None:
        _to_chw_raw(img, int(y0), int(x0), bool(mirror), out)
    else:
        _to_chw(img, int(y0), int(x0), bool(mirror), mean, mult, bias, out)


@numba.njit(nogil=True, cache=True)
def _warp_affine(src, inv, fill, out):
    sh, sw, c = src.shape
    dh, dw = out.shape[0], out.shape[1]
    for y in range(dh):
        for x in range(dw):
            fx = inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]
            fy = inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]
            x0 = int(math.floor(fx))
            y0 = int(math.floor(fy))
            ax = fx - x0
            ay = fy - y0
            for k in range(c):
                acc = 0.0
                for dy in range(2):
                    yy = y0 + dy
                    wy = ay if dy else 1.0 - ay
                    for dx in range(2):
                        xx = x0 + dx
                        wx = ax if dx else 1.0 - ax
                        if 0 <= yy < sh and 0 <= xx < sw:
                            v = float(src[yy, xx, k])
                        else:
                            v = fill
                        acc += wy * wx * v
                r = int(acc + 0.5)
                out[y, x, k] = 0 if r < 0 else (255 if r > 255 else r)


def warp_affine(src: np.ndarray, matrix: np.ndarray, width: int, height: int,
                fill: int) -> np.ndarray:
    """Bilinear affine warp of an HWC uint8 image with a constant border (like cv::warpAffine).

    ``matrix`` (2x3) maps source to destination coordinates.
    """
    m = np.asarray(matrix, np.float64)
    a = np.array([[m[0, 0], m[0, 1]], [m[1, 0], m[1, 1]]])
    inv_a = np.linalg.inv(a)
    inv = np.concatenate([inv_a, -inv_a @ m[:, 2:3]], axis=1)
    out = np.empty((int(height), int(width), src.shape[2]), np.uint8)
    _warp_affine(np.ascontiguousarray(src), inv, float(fill), out)
    return out


@numba.njit(nogil=True, cache=True)
def _saturate_u8(v):
    q = int(round(v))            # half to even, like OpenCV's saturate_cast
    return 0 if q < 0 else (255 if q > 255 else q)


@numba.njit(nogil=True, cache=True)
def _color_jitter(img, brightness, contrast, saturation, out):
    h, w, c = img.shape
    gray_total = 0.0
    if contrast != 1.0:
        for i in range(h):
            for j in range(w):
                gray_total += (0.299 * img[i, j, 0] + 0.587 * img[i, j, 1]
                               + 0.114 * img[i, j, 2]) * brightness
    gray_mean = gray_total / (h * w)
    for i in range(h):
        for j in range(w):
            r = img[i, j, 0] * brightness
            g = img[i, j, 1] * brightness
            b = img[i, j, 2] * brightness
            if contrast != 1.0:
                shift = (1.0 - contrast) * gray_mean
                r = r * contrast + shift
                g = g * contrast + shift
                b = b * contrast + shift
            if saturation != 1.0:
                gray = (0.299 * r + 0.587 * g + 0.114 * b) * (1.0 - saturation)
                r = r * saturation + gray
                g = g * saturation + gray
                b = b * saturation + gray
            out[i, j, 0] = _saturate_u8(r)
            out[i, j, 1] = _saturate_u8(g)
            out[i, j, 2] = _saturate_u8(b)


def color_jitter(img: np.ndarray, brightness: float, contrast: float,
                 saturation: float) -> np.ndarray:
    """Scale brightness, then contrast (towards the mean gray), then saturation (towards each
    pixel's gray) of an RGB uint8 image by the given factors (1 = unchanged); saturates."""
    out = np.empty_like(img)
    _color_jitter(np.ascontiguousarray(img), float(brightness), float(contrast),
                  float(saturation), out)
    return out


@numba.njit(nogil=True, cache=True)
def _hls_jitter(img, dh, dl, ds, out):
    h, w, _ = img.shape
    sector_of = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0))
    tab = np.empty(4)
    for i in range(h):
        for j in range(w):
            r, g, b = img[i, j, 0] / 255.0, img[i, j, 1] / 255.0, img[i, j, 2] / 255.0
            vmax, vmin = max(r, g, b), min(r, g, b)
            diff = vmax - vmin
            light = (vmax + vmin) / 2
            hue = sat = 0.0
            if diff > 1.1920929e-07:
                sat = diff / (vmax + vmin) if light < 0.5 else diff / (2 - vmax - vmin)
                if vmax == r:
                    hue = (g - b) * 60 / diff
                elif vmax == g:
                    hue = (b - r) * 60 / diff + 120
                else:
                    hue = (r - g) * 60 / diff + 240
                if hue < 0:
                    hue += 360
            # OpenCV's 8-bit HLS: H in [0, 180], L and S in [0, 255]; jitter, then clamp
            hh = min(max(int(round(hue / 2)) + dh, 0), 180) * 2.0
            ll = min(max(int(round(light * 255)) + dl, 0), 255) / 255.0
            ss = min(max(int(round(sat * 255)) + ds, 0), 255) / 255.0
            if ss == 0:
                out[i, j, 0] = out[i, j, 1] = out[i, j, 2] = _saturate_u8(ll * 255)
                continue
            p2 = ll * (1 + ss) if ll <= 0.5 else ll + ss - ll * ss
            p1 = 2 * ll - p2
            hh /= 60.0
            if hh >= 6:
                hh -= 6
            sector = int(math.floor(hh))
            frac = hh - sector
            tab[0], tab[1] = p2, p1
            tab[2] = p1 + (p2 - p1) * (1 - frac)
            tab[3] = p1 + (p2 - p1) * frac
            bi, gi, ri = sector_of[sector]
            out[i, j, 0] = _saturate_u8(tab[ri] * 255)
            out[i, j, 1] = _saturate_u8(tab[gi] * 255)
            out[i, j, 2] = _saturate_u8(tab[bi] * 255)


def hls_jitter(img: np.ndarray, dh: int, dl: int, ds: int) -> np.ndarray:
    """Shift an RGB uint8 image's hue, lightness and saturation in OpenCV's 8-bit HLS space
    (H in [0, 180], L and S in [0, 255], each clamped after the shift), and convert back."""
    out = np.empty_like(img)
    _hls_jitter(np.ascontiguousarray(img), int(dh), int(dl), int(ds), out)
    return out


def pad_constant(img: np.ndarray, pad: int, fill: int) -> np.ndarray:
    """``img`` with ``pad`` pixels of value ``fill`` added on every side."""
    h, w, c = img.shape
    out = np.full((h + 2 * pad, w + 2 * pad, c), fill, np.uint8)
    out[pad:pad + h, pad:pad + w] = img
    return out
