"""Image resizing with OpenCV's arithmetic, so resized pixels match MXNet's (it calls cv::resize).

Every method is separable: for each output column (row) a small table says which source columns
(rows) contribute and with what weight. The tables are built here with numpy, exactly as OpenCV
builds them (float32 coordinates, replicated borders, weights rounded to 11-bit fixed point for
uint8 images); two numba kernels apply them -- one in fixed point for uint8, one in float32 for
float images. Both release the GIL, so decode threads resize in parallel.

``inter`` follows MXNet/OpenCV: 0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos-4.
Checked against MXNet 1.9.1's ``mx.image.imresize`` on random images, upscaling and shrinking:
identical for every method, except that a bicubic pixel may rarely differ by 1 (one in ~260k),
where OpenCV's SIMD float sum rounds the other way.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np

from ..base import HybridNetError

__all__ = ["resize", "INTER_NEAREST", "INTER_LINEAR", "INTER_CUBIC", "INTER_AREA",
           "INTER_LANCZOS4"]

INTER_NEAREST, INTER_LINEAR, INTER_CUBIC, INTER_AREA, INTER_LANCZOS4 = 0, 1, 2, 3, 4
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS           # OpenCV's INTER_RESIZE_COEF_SCALE
_TAPS = {INTER_LINEAR: 2, INTER_CUBIC: 4, INTER_LANCZOS4: 8}

# How the uint8 vertical pass rounds: OpenCV's SIMD code for bilinear drops 4 bits and takes
# the high half of each product, for bicubic it sums in float32; Lanczos is plain fixed point.
_ROUND_LINEAR, _ROUND_CUBIC, _ROUND_PLAIN = 0, 1, 2


def _cubic_coeffs(fx: np.ndarray) -> np.ndarray:
    a = np.float32(-0.75)
    one = np.float32(1)
    x = fx.astype(np.float32)
    c0 = ((a * (x + one) - 5 * a) * (x + one) + 8 * a) * (x + one) - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + one
    c2 = ((a + 2) * (one - x) - (a + 3)) * (one - x) * (one - x) + one
    c3 = one - c0 - c1 - c2
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.float32)


def _lanczos4_coeffs(fx: np.ndarray) -> np.ndarray:
    s45 = 0.70710678118654752440084436210485
    cs = np.array([[1, 0], [-s45, -s45], [0, 1], [s45, -s45], [-1, 0], [s45, s45], [0, -1],
                   [-s45, s45]], dtype=np.float64)
    out = np.zeros((fx.size, 8), np.float32)
    for n, x in enumerate(fx.astype(np.float64)):
        if x < np.finfo(np.float32).eps:
            out[n, 3] = 1
            continue
        y0 = -(x + 3) * math.pi * 0.25
        s0, c0 = math.sin(y0), math.cos(y0)
        total = np.float32(0)
        for i in range(8):
            y = -(x + 3 - i) * math.pi * 0.25
            out[n, i] = np.float32((cs[i, 0] * s0 + cs[i, 1] * c0) / (y * y))
            total = np.float32(total + out[n, i])
        out[n] *= np.float32(1) / total
    return out


def _interp_tables(ssize: int, dsize: int, inter: int, area_mode: bool, clamp: bool):
    """(offsets, float weights) of shape (dsize, taps) for linear/cubic/Lanczos along one axis.

    ``clamp``: OpenCV pins a bilinear column that falls outside the image onto the edge pixel
    (weight 1); rows outside keep their fractional weights on the replicated edge row.
    """
    scale = ssize / dsize
    taps = _TAPS[inter]
    half = taps // 2
    d = np.arange(dsize, dtype=np.float64)
    if area_mode:  # OpenCV's INTER_AREA when enlarging: linear with area-derived fractions
        sx = np.floor(d * scale).astype(np.int64)
        fx = ((d + 1) - (sx + 1) * (dsize / ssize)).astype(np.float32)
        fx = np.where(fx <= 0, np.float32(0), fx - np.floor(fx)).astype(np.float32)
    else:
        f = ((d + 0.5) * scale - 0.5).astype(np.float32)
        sx = np.floor(f).astype(np.int64)
        fx = (f - sx.astype(np.float32)).astype(np.float32)
    if inter == INTER_LINEAR and clamp:
        low = sx < 0
        fx[low], sx[low] = 0, 0
        high = sx >= ssize - 1
        fx[high], sx[high] = 0, ssize - 1
    if inter == INTER_LINEAR:
        weights = np.stack([np.float32(1) - fx, fx], axis=1).astype(np.float32)
    elif inter == INTER_CUBIC:
        weights = _cubic_coeffs(fx)
    else:
        weights = _lanczos4_coeffs(fx)
    offsets = np.clip(sx[:, None] - half + 1 + np.arange(taps)[None, :], 0, ssize - 1)
    return offsets.astype(np.int32), weights


def _area_tables(ssize: int, dsize: int):
    """(offsets, weights) for shrinking by a non-integer factor: each output averages the
    source pixels its footprint covers, weighted by the covered fraction (OpenCV's area table)."""
    scale = ssize / dsize
    rows = []
    for dx in range(dsize):
        fsx1 = dx * scale
        fsx2 = fsx1 + scale
        cell = min(scale, ssize - fsx1)
        sx1 = int(math.ceil(fsx1))
        sx2 = min(int(math.floor(fsx2)), ssize - 1)
        sx1 = min(sx1, sx2)
        entry = []
        if sx1 - fsx1 > 1e-3:
            entry.append((sx1 - 1, (sx1 - fsx1) / cell))
        for sx in range(sx1, sx2):
            entry.append((sx, 1.0 / cell))
        if fsx2 - sx2 > 1e-3:
            entry.append((sx2, min(min(fsx2 - sx2, 1.0), cell) / cell))
        rows.append(entry)
    taps = max(len(e) for e in rows)
    offsets = np.zeros((dsize, taps), np.int32)
    weights = np.zeros((dsize, taps), np.float32)
    for dx, entry in enumerate(rows):
        for k, (sx, w) in enumerate(entry):
            offsets[dx, k], weights[dx, k] = sx, w
    return offsets, weights


def _nearest_table(ssize: int, dsize: int):
    inv = 1.0 / (dsize / ssize)
    src = np.minimum(np.floor(np.arange(dsize) * inv).astype(np.int64), ssize - 1)
    return src.astype(np.int32)[:, None], np.ones((dsize, 1), np.float32)


def _fixed(weights: np.ndarray) -> np.ndarray:
    """Weights in OpenCV's 11-bit fixed point (round half to even, like cvRound)."""
    return np.clip(np.rint(weights * _COEF_SCALE), -32768, 32767).astype(np.int32)


@numba.njit(nogil=True, cache=True)
def _hpass_row(line, xo, xa, row):
    """One source row, horizontally resampled in fixed point (x2048) into ``row``."""
    kx, width = xo.shape
    if kx == 2:
        o0, o1, a0, a1 = xo[0], xo[1], xa[0], xa[1]
        for j in range(width):
            row[j] = np.int32(line[o0[j]]) * a0[j] + np.int32(line[o1[j]]) * a1[j]
    else:
        for j in range(width):
            acc = np.int32(0)
            for k in range(kx):
                acc += np.int32(line[xo[k, j]]) * xa[k, j]
            row[j] = acc


@numba.njit(nogil=True, cache=True)
def _resize_u8(src, xo, xa, yofs, yw, rounding, out):
    """uint8 resize. ``src`` is (H, W*C), ``out`` (h, w*C); ``xo``/``xa`` give, per output
    element, the flat source offsets and fixed-point weights of its taps. Horizontal rows are
    kept in a small ring (rows are visited in increasing order), so memory stays in cache."""
    dh, width = out.shape
    ky = yofs.shape[1]
    nslot = 2 * ky
    ring = np.empty((nslot, width), np.int32)
    tag = np.full(nslot, -1, np.int64)
    fscale = np.float32(1.0 / (2048.0 * 2048.0))
    for dy in range(dh):
        for k in range(ky):
            sy = yofs[dy, k]
            if tag[sy % nslot] != sy:
                _hpass_row(src[sy], xo, xa, ring[sy % nslot])
                tag[sy % nslot] = sy
        dst = out[dy]
        if rounding == 0:
            r0, r1 = ring[yofs[dy, 0] % nslot], ring[yofs[dy, 1] % nslot]
            b0, b1 = np.int32(yw[dy, 0]), np.int32(yw[dy, 1])
            four, sixteen, two = np.int32(4), np.int32(16), np.int32(2)
            for x in range(width):   # int32 throughout, so LLVM vectorises it
                v = np.int32(np.int32(np.int32(r0[x] >> four) * b0) >> sixteen) + \
                    np.int32(np.int32(np.int32(r1[x] >> four) * b1) >> sixteen)
                dst[x] = min(max(np.int32(v + two) >> two, np.int32(0)), np.int32(255))
        elif rounding == 1:
            r0, r1 = ring[yofs[dy, 0] % nslot], ring[yofs[dy, 1] % nslot]
            r2, r3 = ring[yofs[dy, 2] % nslot], ring[yofs[dy, 3] % nslot]
            f0, f1 = np.float32(yw[dy, 0]) * fscale, np.float32(yw[dy, 1]) * fscale
            f2, f3 = np.float32(yw[dy, 2]) * fscale, np.float32(yw[dy, 3]) * fscale
            for x in range(width):
                f = (np.float32(r0[x]) * f0 + np.float32(r1[x]) * f1) + \
                    (np.float32(r2[x]) * f2 + np.float32(r3[x]) * f3)
                dst[x] = min(max(np.int64(np.rint(f)), 0), 255)
        else:
            for x in range(width):
                acc = np.int64(0)
                for k in range(ky):
                    acc += np.int64(ring[yofs[dy, k] % nslot, x]) * yw[dy, k]
                dst[x] = min(max((acc + (1 << 21)) >> 22, 0), 255)


def _flat_taps(xofs: np.ndarray, xw: np.ndarray, c: int):
    """Per-output-element (offset, weight) tables for an HWC row flattened to W*C values."""
    taps = xofs.shape[1]
    ch = np.arange(c, dtype=np.int32)
    xo = (xofs.T[:, :, None] * c + ch).reshape(taps, -1).astype(np.int32)
    xa = np.repeat(xw.T, c, axis=1).astype(np.int32)
    return np.ascontiguousarray(xo), np.ascontiguousarray(xa)


@numba.njit(nogil=True, cache=True)
def _resize_float(src, xofs, xw, yofs, yw, round_u8, out):
    h, w, c = src.shape
    dh, dw = out.shape[0], out.shape[1]
    kx, ky = xofs.shape[1], yofs.shape[1]
    needed = np.zeros(h, np.bool_)
    for dy in range(dh):
        for k in range(ky):
            needed[yofs[dy, k]] = True
    rows = np.empty((h, dw, c), np.float32)
    for sy in range(h):
        if not needed[sy]:
            continue
        for dx in range(dw):
            for ch in range(c):
                acc = np.float32(0)
                for k in range(kx):
                    acc += np.float32(src[sy, xofs[dx, k], ch]) * xw[dx, k]
                rows[sy, dx, ch] = acc
    for dy in range(dh):
        for dx in range(dw):
            for ch in range(c):
                acc = np.float32(0)
                for k in range(ky):
                    acc += rows[yofs[dy, k], dx, ch] * yw[dy, k]
                if round_u8:
                    v = np.rint(acc)
                    out[dy, dx, ch] = 0 if v < 0 else (255 if v > 255 else v)
                else:
                    out[dy, dx, ch] = acc


@numba.njit(nogil=True, cache=True)
def _area_fast_u8(src, sx, sy, out):
    dh, dw, c = out.shape
    area = sx * sy
    scale = np.float32(1.0 / area)
    for dy in range(dh):
        for dx in range(dw):
            for ch in range(c):
                acc = 0
                for i in range(sy):
                    for j in range(sx):
                        acc += np.int32(src[dy * sy + i, dx * sx + j, ch])
                if area == 4:
                    v = (acc + 2) >> 2       # OpenCV's SIMD path for 2x2 blocks
                else:
                    v = np.int64(np.rint(np.float32(acc) * scale))
                out[dy, dx, ch] = 255 if v > 255 else v


def _is_area_fast(ssize, dsize):
    scale = ssize / dsize
    return abs(scale - round(scale)) < np.finfo(np.float64).eps and round(scale) >= 1


@functools.lru_cache(maxsize=512)
def _plan(sw: int, sh: int, w: int, h: int, inter: int, c: int, is_u8: bool):
    """How to resize (sw, sh) -> (w, h): a method name and its (read-only) tables. Cached:
    datasets repeat image sizes, and building the tables costs as much as a small resize."""
    fast_x, fast_y = _is_area_fast(sw, w), _is_area_fast(sh, h)
    if inter == INTER_LINEAR and fast_x and fast_y and sw == 2 * w and sh == 2 * h:
        inter = INTER_AREA                   # OpenCV does this too for exact 2x shrinking
    if inter == INTER_AREA and fast_x and fast_y and is_u8:
        plan = ("area_fast", sw // w, sh // h)
    elif inter == INTER_AREA and sw >= w and sh >= h:
        plan = ("float",) + _area_tables(sw, w) + _area_tables(sh, h)
    elif inter == INTER_NEAREST:
        plan = ("nearest", _nearest_table(sw, w)[0][:, 0], _nearest_table(sh, h)[0][:, 0])
    else:
        area_mode = inter == INTER_AREA
        kind = INTER_LINEAR if area_mode else inter
        xofs, xw = _interp_tables(sw, w, kind, area_mode, True)
        yofs, yw = _interp_tables(sh, h, kind, area_mode, False)
        if is_u8:
            rounding = {INTER_LINEAR: _ROUND_LINEAR, INTER_CUBIC: _ROUND_CUBIC}.get(kind,
                                                                                  _ROUND_PLAIN)
            plan = ("u8",) + _flat_taps(xofs, _fixed(xw), c) + (yofs, _fixed(yw), rounding)
        else:
            plan = ("float", xofs, xw, yofs, yw)
    for part in plan:
        if isinstance(part, np.ndarray):
            part.flags.writeable = False
    return plan


def resize(src: np.ndarray, w: int, h: int, inter: int = INTER_LINEAR,
           window=None) -> np.ndarray:
    """Resize an HWC (or HW) uint8/float32 image to width ``w`` and height ``h`` like cv::resize.

    ``window`` = (x0, y0, width, height) returns only that part of the resized image -- the same
    pixels as resizing and then cropping, computed without the rest (resize-then-crop
    pipelines use it).
    """
    if src.ndim not in (2, 3):
        raise HybridNetError(f"resize expects an image of shape (H, W) or (H, W, C), got shape "
                             f"{src.shape}")
    w, h = int(w), int(h)
    if w <= 0 or h <= 0:
        raise HybridNetError(f"resize target size must be positive, got width={w}, height={h}")
    if inter not in (INTER_NEAREST, INTER_LINEAR, INTER_CUBIC, INTER_AREA, INTER_LANCZOS4):
        raise HybridNetError(f"interpolation must be 0 (nearest), 1 (bilinear), 2 (bicubic), "
                             f"3 (area) or 4 (lanczos4), got {inter}")
    x0, y0, ww, wh = (0, 0, w, h) if window is None else (int(v) for v in window)
    if x0 < 0 or y0 < 0 or x0 + ww > w or y0 + wh > h or ww <= 0 or wh <= 0:
        raise HybridNetError(f"resize window {window} does not fit in the {w}x{h} result")
    squeeze = src.ndim == 2
    img = src[:, :, None] if squeeze else src
    if img.dtype != np.uint8 and img.dtype != np.float32:
        img = img.astype(np.float32)
    img = np.ascontiguousarray(img)
    sh, sw, c = img.shape
    if (sh, sw) == (h, w):
        out = np.ascontiguousarray(img[y0:y0 + wh, x0:x0 + ww])
        return out[:, :, 0] if squeeze else out
    plan = _plan(sw, sh, w, h, inter, c, img.dtype == np.uint8)
    if plan[0] == "u8":               # the common case: compute just the window
        _, xo, xa, yofs, yw, rounding = plan
        out = np.empty((wh, ww, c), np.uint8)
        _resize_u8(img.reshape(sh, sw * c), xo[:, x0 * c:(x0 + ww) * c],
                   xa[:, x0 * c:(x0 + ww) * c], yofs[y0:y0 + wh], yw[y0:y0 + wh], rounding,
                   out.reshape(wh, ww * c))
        return out[:, :, 0] if squeeze else out
    out = np.empty((h, w, c), img.dtype)
    if plan[0] == "area_fast":
        _area_fast_u8(img, plan[1], plan[2], out)
    elif plan[0] == "nearest":
        out[...] = img[plan[2]][:, plan[1]]
    else:
        _resize_float(img, *plan[1:], img.dtype == np.uint8, out)
    out = out[y0:y0 + wh, x0:x0 + ww]
    if window is not None:
        out = np.ascontiguousarray(out)
    return out[:, :, 0] if squeeze else out
