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
keeps the sign). Max backward routes each gradient to the window's first maximum in scan order
(nothing where no value is above the dtype's lowest). The 2-D max forward records these
argmaxes in an int32 array (the op's hidden output) and the backward only scatters through
them: ~1.8x less work for forward + backward than finding them again in the backward, for
~40% more forward work. Without a record (3-D data, cupy, float16) the backward finds them.

The window searches are split over the planes axis for large data (engine/parallel.py): every
plane is independent, so the slices write disjoint parts of the output and of the gradient.

CPU float32/float64 arrays use the numba kernels (nogil; no temporaries). Everything else (cupy
on the GPU, float16 on the CPU) uses ``pool_forward_xp`` / ``pool_backward_xp``: one strided
slice per kernel tap, written against ``xp``.
"""
from __future__ import annotations

import numba
import numpy as np

from ...engine.parallel import parallel_slices

__all__ = ["MAX", "AVG", "SUM", "LP", "NOT_RECORDED", "pool_forward", "pool_backward",
           "pool_forward_xp", "pool_backward_xp"]

MAX, AVG, SUM, LP = 0, 1, 2, 3
# First element of an argmax array whose forward did not record (no window's argmax is < -1).
NOT_RECORDED = -2


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
def _max_backward(x, dy, dx, kernel, stride, pad, limit, lowest):
    """dx += dy routed to the first maximum of every window (none where nothing in the window
    is above ``lowest``: the forward gave ``lowest`` there)."""
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
                    m = lowest
                    for z in range(z0, z1):
                        for yy in range(y0, y1):
                            for xx in range(x0, x1):
                                v = x[c, z, yy, xx]
                                if v > m:
                                    m, bz, by, bx = v, z, yy, xx
                    if bz >= 0:
                        dx[c, bz, by, bx] += dy[c, a, b, q]


# ---- 2-D max pooling (D == 1, C-contiguous): the AlexNet-style hot path --------------------
# The forward finds every window's first maximum (its in-plane index, -1 when nothing in the
# window is above ``lowest``) and stores it beside the value; the backward only scatters through
# these indices. Every index is unsigned (numba then skips the negative-index wrap-around) and
# each output row is one loop over its windows. Windows wholly inside the plane run with the
# window shape as compile-time constants for 3x3 stride 2 and 2x2 stride 2: the plane loop is
# inlined once per shape, so LLVM unrolls the taps and vectorizes across the row (2-4x faster
# than the run-time-size loop, which serves every other shape). Each extra shape costs ~1.5 s
# of first-use compilation per dtype, hence only these two.
U64, I32 = np.uint64, np.int32


@numba.njit(nogil=True, cache=True)
def _inner_columns(ow, sw, pw, kw, ew):
    """[qa, qb): the output columns whose window lies wholly inside data columns [0, ew)."""
    qa = min((pw + sw - 1) // sw, ow)
    qb = ow
    while qb > qa and (qb - 1) * sw - pw + kw > ew:
        qb -= 1
    return qa, qb


@numba.njit(nogil=True, cache=True)
def _row_argmax_clipped(src, base, w_, y0, rows, best, q0, q1, kw, sw, pw, ew, lowest):
    """best[q] for q in [q0, q1): in-plane index of the first maximum (row-major) of data rows
    [y0, y0 + rows), columns clipped; -1 for a window without data or with nothing above
    ``lowest``."""
    for q in range(q0, q1):
        x0 = q * sw - pw
        lo, hi = max(x0, 0), min(x0 + kw, ew)
        m = lowest
        at = -1
        for i in range(rows):
            for j in range(lo, hi):
                k = (y0 + i) * w_ + j
                v = src[base + U64(k)]
                hit = v > m
                m = v if hit else m
                at = k if hit else at
        best[q] = at


@numba.njit(nogil=True, cache=True, inline="always")
def _row_argmax_inner(src, base, w_, y0, best, qa, qb, kh, kw, sw, pw, lowest):
    """best[q] for q in [qa, qb): ``_row_argmax_clipped`` of full kh x kw windows."""
    first = y0 * w_ - pw
    for q in range(U64(qa), U64(qb)):
        corner = I32(first) + I32(q * U64(sw))          # the window's first in-plane index
        s = base + U64(corner)
        m = lowest
        at = I32(-1)
        for i in range(kh):
            for k in range(kw):
                v = src[s + U64(i * w_ + k)]
                hit = v > m
                m = v if hit else m
                # the absolute index, not an offset fixed up after the loop: a select after
                # the loop stops LLVM vectorizing it (2-3x slower)
                at = corner + I32(i * w_ + k) if hit else at
        best[q] = at


@numba.njit(nogil=True, cache=True, inline="always")
def _max_planes_2d(src, dst, arg, planes, h_, w_, oh, ow, kh, kw, sh, sw, ph, pw, eh, ew,
                   lowest):
    qa, qb = _inner_columns(ow, sw, pw, kw, ew)
    for c in range(planes):
        base = U64(c * h_ * w_)
        o = U64(c * oh * ow)
        for b in range(oh):
            best = arg[o:o + U64(ow)]
            y0 = b * sh - ph
            y1 = min(y0 + kh, eh)
            y0 = max(y0, 0)
            if y1 - y0 == kh:
                _row_argmax_clipped(src, base, w_, y0, kh, best, 0, qa, kw, sw, pw, ew, lowest)
                _row_argmax_inner(src, base, w_, y0, best, qa, qb, kh, kw, sw, pw, lowest)
                _row_argmax_clipped(src, base, w_, y0, kh, best, qb, ow, kw, sw, pw, ew, lowest)
            else:
                _row_argmax_clipped(src, base, w_, y0, y1 - y0, best, 0, ow, kw, sw, pw, ew,
                                    lowest)
            for q in range(U64(ow)):
                dst[o + q] = src[base + U64(best[q])] if best[q] >= 0 else lowest
            o += U64(ow)


@numba.njit(nogil=True, cache=True)
def _max_forward_2d(x, y, argmax, kernel, stride, pad, limit, lowest):
    """``_max_forward`` for one spatial plane per channel (D == 1, kernel depth 1) on
    C-contiguous arrays that also records every window's argmax (in-plane index, -1 for none)
    in the int32 array ``argmax`` shaped like y, for ``_max_backward_2d``."""
    planes, _, h_, w_ = x.shape
    _, _, oh, ow = y.shape
    kh, kw, sh, sw, ph, pw = kernel[1], kernel[2], stride[1], stride[2], pad[1], pad[2]
    eh, ew = min(limit[1], h_), min(limit[2], w_)
    src, dst, arg = x.ravel(), y.ravel(), argmax.ravel()
    # the same call per branch: each gets the window shape as constants (see above)
    if kh == 3 and kw == 3 and sw == 2:
        _max_planes_2d(src, dst, arg, planes, h_, w_, oh, ow, 3, 3, sh, 2, ph, pw, eh, ew,
                       lowest)
    elif kh == 2 and kw == 2 and sw == 2:
        _max_planes_2d(src, dst, arg, planes, h_, w_, oh, ow, 2, 2, sh, 2, ph, pw, eh, ew,
                       lowest)
    else:
        _max_planes_2d(src, dst, arg, planes, h_, w_, oh, ow, kh, kw, sh, sw, ph, pw, eh, ew,
                       lowest)


@numba.njit(nogil=True, cache=True)
def _max_backward_2d(argmax, dy, dx, overwrite):
    """dx (+)= dy routed through the argmaxes ``_max_forward_2d`` recorded: a pass that only
    scatters (dx canonical (planes, D, H, W), argmax and dy (planes, 1, OH, OW)); each
    gradient plane is cleared just before, while in cache, when ``overwrite``."""
    planes = dx.shape[0]
    size = dx[0].size
    outs = dy[0].size
    arg, gy, gx = argmax.ravel(), dy.ravel(), dx.ravel()
    for c in range(planes):
        base = U64(c * size)
        if overwrite:
            for i in range(U64(size)):
                gx[base + i] = 0
        o = U64(c * outs)
        for q in range(U64(outs)):
            at = U64(arg[o + q])        # -1 (no maximum) wraps above any index: skipped, and
            if at < U64(size):          # nothing outside the plane is ever written
                gx[base + at] += gy[o + q]


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


def _over_planes(kernel, arrays, *args) -> None:
    """``kernel(*arrays, *args)`` with the canonical ``arrays`` cut along the planes axis, the
    slices run in parallel for large data (engine/parallel.py): planes are independent and
    every slice writes its own part of the output or gradient."""
    parallel_slices(arrays[0].shape[0],
                    lambda _, part: kernel(*(a[part] for a in arrays), *args),
                    sum(a.nbytes for a in arrays))


def _lowest(dtype):
    return dtype.type(np.finfo(dtype).min)


def pool_forward(xp, x, y, kind: int, kernel, stride, pad, limit, p_value: int = 1,
                 include_pad: bool = True, argmax=None) -> None:
    """y = pooling of x; both canonical (planes, D, H, W); y is overwritten.

    ``argmax`` (max pooling; int32, shaped like y): the 2-D kernels record the argmax of every
    window there for ``pool_backward``; other paths mark it NOT_RECORDED.
    """
    if argmax is not None:
        argmax.reshape(-1)[:1] = NOT_RECORDED
    if not (_use_numba(x, y) and y.flags.c_contiguous):
        pool_forward_xp(xp, x, y, kind, kernel, stride, pad, limit, p_value, include_pad)
    elif kind != MAX:
        _over_planes(_sum_forward, (x, y), kernel, stride, pad, limit, kind, p_value,
                     include_pad)
    elif not _flat_2d(x, kernel):
        _over_planes(_max_forward, (x, y), kernel, stride, pad, limit, _lowest(x.dtype))
    else:
        record = argmax if _recordable(argmax, y) else np.empty(y.shape, np.int32)
        _over_planes(_max_forward_2d, (x, y, record), kernel, stride, pad, limit,
                     _lowest(x.dtype))


def _recordable(argmax, y) -> bool:
    return (type(argmax) is np.ndarray and argmax.dtype == np.int32
            and argmax.flags.c_contiguous and argmax.shape == y.shape)


def pool_backward(xp, x, y, dy, dx, kind: int, kernel, stride, pad, limit, p_value: int = 1,
                  include_pad: bool = True, accumulate: bool = True, argmax=None) -> None:
    """dx += the input gradient of pooling (``accumulate=False``: dx = it); all canonical
    (planes, D, H, W). ``argmax``: the array ``pool_forward`` was given, if any."""
    if (kind == MAX and argmax is not None and _recordable(argmax, dy)
            and _use_numba(dy, dx) and dy.flags.c_contiguous and dx.flags.c_contiguous
            and argmax.reshape(-1)[:1].tolist() != [NOT_RECORDED]):
        # one thread: the scatter only streams memory (AlexNet-R's pool1: 0.8 ms alone, never
        # faster split over two threads in our measurements, as for relu)
        _max_backward_2d(argmax, dy, dx, not accumulate)
        return
    if not accumulate:
        dx[...] = 0
    if not (_use_numba(x, y, dy, dx) and dx.flags.c_contiguous):
        pool_backward_xp(xp, x, y, dy, dx, kind, kernel, stride, pad, limit, p_value,
                         include_pad)
    elif kind == MAX:
        _over_planes(_max_backward, (x, dy, dx), kernel, stride, pad, limit, _lowest(x.dtype))
    else:
        _over_planes(_sum_backward, (x, y, dy, dx), kernel, stride, pad, limit, kind, p_value,
                     include_pad)


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
