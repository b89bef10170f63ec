"""Pooling kernels: max / avg / sum / lp windows over 1-D, 2-D and 3-D data, forward and
backward.

Data is handled in a canonical form ``(planes, D, H, W)`` (planes = batch * channels; 1-D and
2-D pooling get singleton leading axes) with per-axis tuples ``kernel``, ``stride``, ``pad``
(padding before the data) and ``limit``: the end of the region a window may count for
``count_include_pad`` -- the data size plus the padding after it. A window starting at
``o * stride - pad`` covers ``[start, min(start + kernel, limit))``; only the part inside the
data is read.

MXNet's rules, kept here: max ignores padding (a window with no data yields the dtype's lowest
value); avg divides by the window clipped to ``limit`` (count_include_pad) or by the number of
data elements; lp is ``(sum x^p)^(1/p)`` without absolute values (p = 1, 2, 3; the cube root
keeps the sign). Max backward recomputes the argmax -- the first maximum in scan order --
instead of storing it: the recomputation costs less than writing and reading an index array.

CPU float32/float64 arrays use the numba kernels (nogil; no temporaries). Everything else (cupy
on the GPU, float16 on the CPU) uses ``pool_forward_xp`` / ``pool_backward_xp``: one strided
slice per kernel tap, written against ``xp``.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["MAX", "AVG", "SUM", "LP", "pool_forward", "pool_backward", "pool_forward_xp",
           "pool_backward_xp"]

MAX, AVG, SUM, LP = 0, 1, 2, 3


@numba.njit(nogil=True, cache=True)
def _window(o, stride, pad, kernel, limit, size):
    """(start, end clipped to limit, first data index, end of data) of window o on one axis."""
    start = o * stride - pad
    end = min(start + kernel, limit)
    return start, end, max(start, 0), min(end, size)


@numba.njit(nogil=True, cache=True)
def _max_forward(x, y, kernel, stride, pad, limit, lowest):
    planes, d_, h_, w_ = x.shape
    _, od, oh, ow = y.shape
    for c in range(planes):
        for a in range(od):
            _, _, z0, z1 = _window(a, stride[0], pad[0], kernel[0], limit[0], d_)
            for b in range(oh):
                _, _, y0, y1 = _window(b, stride[1], pad[1], kernel[1], limit[1], h_)
                for q in range(ow):
                    _, _, x0, x1 = _window(q, stride[2], pad[2], kernel[2], limit[2], w_)
                    m = lowest
                    for z in range(z0, z1):
                        for yy in range(y0, y1):
                            for xx in range(x0, x1):
                                v = x[c, z, yy, xx]
                                if v > m:
                                    m = v
                    y[c, a, b, q] = m


@numba.njit(nogil=True, cache=True)
def _max_backward(x, dy, dx, kernel, stride, pad, limit):
    """dx += dy routed to the first maximum of every window."""
    planes, d_, h_, w_ = x.shape
    _, od, oh, ow = dy.shape
    for c in range(planes):
        for a in range(od):
            _, _, z0, z1 = _window(a, stride[0], pad[0], kernel[0], limit[0], d_)
            for b in range(oh):
                _, _, y0, y1 = _window(b, stride[1], pad[1], kernel[1], limit[1], h_)
                for q in range(ow):
                    _, _, x0, x1 = _window(q, stride[2], pad[2], kernel[2], limit[2], w_)
                    bz, by, bx = -1, 0, 0
                    m = x[c, 0, 0, 0]
                    for z in range(z0, z1):
                        for yy in range(y0, y1):
                            for xx in range(x0, x1):
                                v = x[c, z, yy, xx]
                                if bz < 0 or v > m:
                                    m, bz, by, bx = v, z, yy, xx
                    if bz >= 0:
                        dx[c, bz, by, bx] += dy[c, a, b, q]


@numba.njit(nogil=True, cache=True)
def _max_forward_2d(x, y, kernel, stride, pad, limit, lowest):
    """``_max_forward`` for one spatial plane per channel (D == 1, kernel depth 1) on
    C-contiguous arrays: flat unsigned indexing, no depth loop (about 3x faster)."""
    planes, _, h_, w_ = x.shape
    _, _, oh, ow = y.shape
    kh, kw, sh, sw, ph, pw = kernel[1], kernel[2], stride[1], stride[2], pad[1], pad[2]
    eh, ew = min(limit[1], h_), min(limit[2], w_)
    src = x.ravel()
    dst = y.ravel()
    for c in range(planes):
        base = c * h_ * w_
        o = c * oh * ow
        for b in range(oh):
            y0 = b * sh - ph
            y1 = min(y0 + kh, eh)
            y0 = max(y0, 0)
            for q in range(ow):
                x0 = q * sw - pw
                x1 = min(x0 + kw, ew)
                x0 = max(x0, 0)
                m = lowest
                for yy in range(y0, y1):
                    row = base + yy * w_
                    for xx in range(x0, x1):
                        v = src[np.uint64(row + xx)]
                        if v > m:
                            m = v
                dst[np.uint64(o)] = m
                o += 1


@numba.njit(nogil=True, cache=True)
def _max_backward_2d(x, dy, dx, kernel, stride, pad, limit):
    """``_max_backward`` for D == 1 on C-contiguous arrays (same first-maximum rule)."""
    planes, _, h_, w_ = x.shape
    _, _, oh, ow = dy.shape
    kh, kw, sh, sw, ph, pw = kernel[1], kernel[2], stride[1], stride[2], pad[1], pad[2]
    eh, ew = min(limit[1], h_), min(limit[2], w_)
    src = x.ravel()
    grad = dy.ravel()
    dst = dx.ravel()
    for c in range(planes):
        base = c * h_ * w_
        o = c * oh * ow
        for b in range(oh):
            y0 = b * sh - ph
            y1 = min(y0 + kh, eh)
            y0 = max(y0, 0)
            for q in range(ow):
                x0 = q * sw - pw
                x1 = min(x0 + kw, ew)
                x0 = max(x0, 0)
                if y0 < y1 and x0 < x1:
                    best = base + y0 * w_ + x0
                    m = src[np.uint64(best)]
                    for yy in range(y0, y1):
                        row = base + yy * w_
                        for xx in range(x0, x1):
                            v = src[np.uint64(row + xx)]
                            if v > m:
                                m = v
                                best = row + xx
                    dst[np.uint64(best)] += grad[np.uint64(o)]
                o += 1


@numba.njit(nogil=True, cache=True)
def _pow(v, p):
    if p == 1:
        return v
    if p == 2:
        return v * v
    return v * v * v


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sum_forward(x, y, kernel, stride, pad, limit, kind, p, include_pad):
    planes, d_, h_, w_ = x.shape
    _, od, oh, ow = y.shape
    for c in range(planes):
        for a in range(od):
            zs, ze, z0, z1 = _window(a, stride[0], pad[0], kernel[0], limit[0], d_)
            for b in range(oh):
                ys, ye, y0, y1 = _window(b, stride[1], pad[1], kernel[1], limit[1], h_)
                for q in range(ow):
                    xs, xe, x0, x1 = _window(q, stride[2], pad[2], kernel[2], limit[2], w_)
                    s = x[c, 0, 0, 0] * 0
                    for z in range(z0, z1):
                        for yy in range(y0, y1):
                            for xx in range(x0, x1):
                                s += _pow(x[c, z, yy, xx], p) if kind == 3 else x[c, z, yy, xx]
                    if kind == 1:
                        if include_pad:
                            n = (ze - zs) * (ye - ys) * (xe - xs)
                        else:
                            n = (z1 - z0) * (y1 - y0) * (x1 - x0)
                        s = s / n if n > 0 else s
                    elif kind == 3 and p == 2:
                        s = np.sqrt(s)
                    elif kind == 3 and p == 3:
                        s = np.cbrt(s)
                    y[c, a, b, q] = s


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _sum_backward(x, y, dy, dx, kernel, stride, pad, limit, kind, p, include_pad):
    """dx += the gradient of avg / sum / lp pooling."""
    planes, d_, h_, w_ = dx.shape
    _, od, oh, ow = dy.shape
    for c in range(planes):
        for a in range(od):
            zs, ze, z0, z1 = _window(a, stride[0], pad[0], kernel[0], limit[0], d_)
            for b in range(oh):
                ys, ye, y0, y1 = _window(b, stride[1], pad[1], kernel[1], limit[1], h_)
                for q in range(ow):
                    xs, xe, x0, x1 = _window(q, stride[2], pad[2], kernel[2], limit[2], w_)
                    g = dy[c, a, b, q]
                    if kind == 1:
                        if include_pad:
                            n = (ze - zs) * (ye - ys) * (xe - xs)
                        else:
                            n = (z1 - z0) * (y1 - y0) * (x1 - x0)
                        g = g / n if n > 0 else g
                    if kind == 3 and p > 1:
                        out = y[c, a, b, q]
                        for z in range(z0, z1):
                            for yy in range(y0, y1):
                                for xx in range(x0, x1):
                                    r = x[c, z, yy, xx] / out
                                    dx[c, z, yy, xx] += g * (r if p == 2 else r * r)
                    else:
                        for z in range(z0, z1):
                            for yy in range(y0, y1):
                                for xx in range(x0, x1):
                                    dx[c, z, yy, xx] += g


def _use_numba(*arrays) -> bool:
    return all(type(a) is np.ndarray and a.dtype in (np.float32, np.float64) for a in arrays)


def _flat_2d(x, kernel) -> bool:
    """The 2-D max kernels apply: no depth axis and a C-contiguous input."""
    return x.shape[1] == 1 and kernel[0] == 1 and x.flags.c_contiguous


def pool_forward(xp, x, y, kind: int, kernel, stride, pad, limit, p_value: int = 1,
                 include_pad: bool = True) -> None:
    """y = pooling of x; both canonical (planes, D, H, W); y is overwritten."""
    if not (_use_numba(x, y) and y.flags.c_contiguous):
        pool_forward_xp(xp, x, y, kind, kernel, stride, pad, limit, p_value, include_pad)
    elif kind == MAX:
        lowest = x.dtype.type(np.finfo(x.dtype).min)
        if _flat_2d(x, kernel):
            _max_forward_2d(x, y, kernel, stride, pad, limit, lowest)
        else:
            _max_forward(x, y, kernel, stride, pad, limit, lowest)
    else:
        _sum_forward(x, y, kernel, stride, pad, limit, kind, p_value, include_pad)


def pool_backward(xp, x, y, dy, dx, kind: int, kernel, stride, pad, limit, p_value: int = 1,
                  include_pad: bool = True) -> None:
    """dx += the input gradient of pooling; all canonical (planes, D, H, W)."""
    if not (_use_numba(x, y, dy, dx) and dx.flags.c_contiguous):
        pool_backward_xp(xp, x, y, dy, dx, kind, kernel, stride, pad, limit, p_value,
                         include_pad)
    elif kind == MAX:
        if _flat_2d(x, kernel) and dy.flags.c_contiguous:
            _max_backward_2d(x, dy, dx, kernel, stride, pad, limit)
        else:
            _max_backward(x, dy, dx, kernel, stride, pad, limit)
    else:
        _sum_backward(x, y, dy, dx, kernel, stride, pad, limit, kind, p_value, include_pad)


# ---- the array-module version (GPU, and dtypes numba does not handle) ----------------------
def _extent(size, o, k, s, pb, limit):
    """Padded length along one axis: covers the data, the limit and every window."""
    return max(pb + limit, pb + size, (o - 1) * s + k)


def _taps(kernel, stride, out_sp):
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            for k in range(kernel[2]):
                yield (slice(None),) + tuple(
                    slice(t, t + s * (o - 1) + 1, s)
                    for t, s, o in zip((i, j, k), stride, out_sp))


def _padded(xp, x, kernel, stride, pad, limit, out_sp, fill):
    ext = [_extent(n, o, k, s, pb, lim) for n, o, k, s, pb, lim
           in zip(x.shape[1:], out_sp, kernel, stride, pad, limit)]
    buf = xp.full((x.shape[0],) + tuple(ext), fill, x.dtype)
    inner = (slice(None),) + tuple(slice(pb, pb + n) for pb, n in zip(pad, x.shape[1:]))
    return buf, inner


def _counts(xp, x, kernel, stride, pad, limit, out_sp, include_pad):
    """Elements each avg window divides by."""
    ones, inner = _padded(xp, x[:1], kernel, stride, pad, limit, out_sp, 0)
    if include_pad:
        ones[(slice(None),) + tuple(slice(0, pb + lim) for pb, lim in zip(pad, limit))] = 1
    else:
        ones[inner] = 1
    n = xp.zeros((1,) + tuple(out_sp), x.dtype)
    for tap in _taps(kernel, stride, out_sp):
        n += ones[tap]
    return xp.where(n > 0, n, 1)


def pool_forward_xp(xp, x, y, kind, kernel, stride, pad, limit, p_value=1, include_pad=True):
    """``pool_forward`` with array slicing: one strided view per kernel tap."""
    out_sp = y.shape[1:]
    lowest = np.finfo(x.dtype).min if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    buf, inner = _padded(xp, x, kernel, stride, pad, limit, out_sp, lowest if kind == MAX else 0)
    buf[inner] = x
    if kind == MAX:
        y[...] = lowest
        for tap in _taps(kernel, stride, out_sp):
            xp.maximum(y, buf[tap], out=y)
        return
    acc = xp.zeros(y.shape, x.dtype)
    for tap in _taps(kernel, stride, out_sp):
        acc += buf[tap] ** p_value if kind == LP else buf[tap]
    if kind == AVG:
        acc /= _counts(xp, x, kernel, stride, pad, limit, out_sp, include_pad)
    elif kind == LP and p_value == 2:
        acc = xp.sqrt(acc)
    elif kind == LP and p_value == 3:
        acc = xp.cbrt(acc)
    y[...] = acc


def pool_backward_xp(xp, x, y, dy, dx, kind, kernel, stride, pad, limit, p_value=1,
                     include_pad=True):
    """``pool_backward`` with array slicing; adds into ``dx``."""
    out_sp = dy.shape[1:]
    grad, inner = _padded(xp, dx, kernel, stride, pad, limit, out_sp, 0)
    if kind == MAX:
        lowest = np.finfo(x.dtype).min if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        buf, _ = _padded(xp, x, kernel, stride, pad, limit, out_sp, lowest)
        buf[inner] = x
        valid, _ = _padded(xp, x, kernel, stride, pad, limit, out_sp, 0)
        valid[inner] = 1
        taken = xp.zeros(dy.shape, bool)       # first maximum wins, as in the CPU kernel
        for tap in _taps(kernel, stride, out_sp):
            hit = (buf[tap] == y) & (valid[tap] > 0) & ~taken
            grad[tap] += xp.where(hit, dy, 0)
            taken |= hit
    else:
        g = dy / _counts(xp, x, kernel, stride, pad, limit, out_sp, include_pad) \
            if kind == AVG else dy
        xpad = None
        if kind == LP and p_value > 1:
            xpad, _ = _padded(xp, x, kernel, stride, pad, limit, out_sp, 0)
            xpad[inner] = x
        for tap in _taps(kernel, stride, out_sp):
            grad[tap] += g if xpad is None else g * (xpad[tap] / y) ** (p_value - 1)
    dx += grad[inner]
