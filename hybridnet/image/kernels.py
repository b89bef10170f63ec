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


def warp_affine(src: np.ndarray, matrix: np.ndarray, width: int, height: int,
                fill: int) -> np.ndarray:
    """Bilinear affine warp of an HWC uint8 image with a constant border, bit-exact with
    ``cv::warpAffine`` (``INTER_LINEAR``, ``BORDER_CONSTANT``).

    ``matrix`` (2x3, float32 like MXNet's ``cv::Mat``) maps source to destination coordinates.
    OpenCV inverts it in double precision, steps the source coordinates in 1/1024 pixel
    fixed point, keeps 1/32 pixel fractions, and blends with 15-bit integer weights.
    """
    m = np.asarray(matrix, np.float32).astype(np.float64).reshape(-1)
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m[4] * det, m[0] * det
    a12, a21 = -m[1] * det, -m[3] * det
    b1 = -a11 * m[2] - a12 * m[5]
    b2 = -a21 * m[2] - a22 * m[5]
    inv = np.array([[a11, a12, b1], [a21, a22, b2]])
    out = np.empty((int(height), int(width), src.shape[2]), np.uint8)
    _warp_affine(np.ascontiguousarray(src), inv, int(fill), out)
    return out


@numba.njit(nogil=True, cache=True)
def _warp_affine(src, inv, fill, out):
    sh, sw, c = src.shape
    dh, dw = out.shape[0], out.shape[1]
    fill_u8 = 0 if fill < 0 else (255 if fill > 255 else fill)
    adelta = np.empty(dw, np.int64)
    bdelta = np.empty(dw, np.int64)
    for x in range(dw):          # AB_SCALE = 1024, rounded half to even like cvRound
        adelta[x] = int(np.rint(inv[0, 0] * x * 1024))
        bdelta[x] = int(np.rint(inv[1, 0] * x * 1024))
    for y in range(dh):
        x_base = int(np.rint((inv[0, 1] * y + inv[0, 2]) * 1024)) + 16    # + round_delta
        y_base = int(np.rint((inv[1, 1] * y + inv[1, 2]) * 1024)) + 16
        for x in range(dw):
            fx = (x_base + adelta[x]) >> 5          # 1/32 pixel units
            fy = (y_base + bdelta[x]) >> 5
            x0, y0 = fx >> 5, fy >> 5
            ax, ay = fx & 31, fy & 31
            w00 = (32 - ay) * (32 - ax) * 32        # INTER_REMAP_COEF_SCALE = 32768
            w01 = (32 - ay) * ax * 32
            w10 = ay * (32 - ax) * 32
            w11 = ay * ax * 32
            if x0 >= sw or x0 + 1 < 0 or y0 >= sh or y0 + 1 < 0:
                for k in range(c):
                    out[y, x, k] = fill_u8
                continue
            in_x0, in_x1 = 0 <= x0 < sw, 0 <= x0 + 1 < sw
            in_y0, in_y1 = 0 <= y0 < sh, 0 <= y0 + 1 < sh
            for k in range(c):
                v00 = int(src[y0, x0, k]) if in_y0 and in_x0 else fill_u8
                v01 = int(src[y0, x0 + 1, k]) if in_y0 and in_x1 else fill_u8
                v10 = int(src[y0 + 1, x0, k]) if in_y1 and in_x0 else fill_u8
                v11 = int(src[y0 + 1, x0 + 1, k]) if in_y1 and in_x1 else fill_u8
                r = (v00 * w00 + v01 * w01 + v10 * w10 + v11 * w11 + 16384) >> 15
                out[y, x, k] = 0 if r < 0 else (255 if r > 255 else r)


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
