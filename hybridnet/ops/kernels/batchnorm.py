"""Per-channel loops of BatchNorm: fused numba passes (CPU) and the numpy/cupy reference they
are tested against.

Data is viewed as ``(outer, C, inner)`` -- ``outer`` the axes before the channel axis,
``inner`` those after -- so one code path serves NCHW (axis=1), NHWC (axis=-1) and the rest.
The numba loops walk memory in order and accumulate in float64; numpy's reductions over the
non-contiguous axes (0, 2) need several full-size temporaries instead.

* ``moments``: batch mean and biased variance per channel (two passes, for accuracy);
* ``affine``: ``out = x * scale[c] + shift[c]``;
* ``grad_sums``: ``sum(g)`` and ``sum(g * (x - mean[c]))`` per channel;
* ``grad_input``: ``dx = a[c] * g + b[c] * (x - mean[c]) + c[c]`` -- BatchNorm's input
  gradient in one pass, whatever the statistics mode.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["view3", "moments", "affine", "grad_sums", "grad_input", "moments_reference",
           "affine_reference", "grad_sums_reference", "grad_input_reference"]


def view3(x, axis: int):
    """``x`` reshaped to (outer, C, inner) around ``axis``."""
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, x.shape[axis], -1)


# fastmath lets LLVM reorder the float64 sums into SIMD lanes (8x faster); the sums stay float64
@numba.njit(nogil=True, cache=True, fastmath=True)
def _moments(x, mean, var):
    o_, c_, i_ = x.shape
    count = o_ * i_
    acc = np.zeros(c_)
    for o in range(o_):
        for c in range(c_):
            s = 0.0
            for i in range(i_):
                s += x[o, c, i]
            acc[c] += s
    for c in range(c_):
        mean[c] = acc[c] / count
        acc[c] = 0.0
    for o in range(o_):
        for c in range(c_):
            m = mean[c]
            s = 0.0
            for i in range(i_):
                d = x[o, c, i] - m
                s += d * d
            acc[c] += s
    for c in range(c_):
        var[c] = acc[c] / count


@numba.njit(nogil=True, cache=True)
def _affine(x, scale, shift, out):
    o_, c_, i_ = x.shape
    for o in range(o_):
        for c in range(c_):
            a, b = scale[c], shift[c]
            for i in range(i_):
                out[o, c, i] = x[o, c, i] * a + b


@numba.njit(nogil=True, cache=True, fastmath=True)
def _grad_sums(g, x, mean, sum_g, sum_gx):
    o_, c_, i_ = x.shape
    for o in range(o_):
        for c in range(c_):
            m = mean[c]
            s1, s2 = 0.0, 0.0
            for i in range(i_):
                gv = g[o, c, i]
                s1 += gv
                s2 += gv * (x[o, c, i] - m)
            sum_g[c] += s1
            sum_gx[c] += s2


@numba.njit(nogil=True, cache=True)
def _grad_input(g, x, mean, a, b, c0, dx):
    o_, c_, i_ = x.shape
    for o in range(o_):
        for c in range(c_):
            m, ac, bc, cc = mean[c], a[c], b[c], c0[c]
            for i in range(i_):
                dx[o, c, i] = ac * g[o, c, i] + bc * (x[o, c, i] - m) + cc


def _fast(xp, *arrays) -> bool:
    # numba has no float16 arithmetic: half-precision data takes the reference path
    return xp is np and all(a.flags.c_contiguous and a.dtype in (np.float32, np.float64)
                            for a in arrays)


# ---- readable references (and the GPU path) ----------------------------------------------------
def moments_reference(xp, x3, acc):
    xa = x3.astype(acc, copy=False)
    mean = xa.mean(axis=(0, 2))
    centered = xa - mean[:, None]
    return mean, (centered * centered).mean(axis=(0, 2))


def affine_reference(xp, x3, scale, shift, out3):
    out3[...] = x3 * scale[:, None] + shift[:, None]


def grad_sums_reference(xp, g3, x3, mean):
    g = g3.astype(mean.dtype, copy=False)
    return g.sum(axis=(0, 2)), (g * (x3 - mean[:, None])).sum(axis=(0, 2))


def grad_input_reference(xp, g3, x3, mean, a, b, c, dx3):
    dx3[...] = a[:, None] * g3 + b[:, None] * (x3 - mean[:, None]) + c[:, None]


# ---- dispatch --------------------------------------------------------------------------------
def moments(xp, x3, acc):
    """Per-channel mean and biased variance of (outer, C, inner) ``x3``, in dtype ``acc``."""
    if not _fast(xp, x3):
        return moments_reference(xp, x3, acc)
    mean, var = np.empty(x3.shape[1], acc), np.empty(x3.shape[1], acc)
    _moments(x3, mean, var)
    return mean, var


def affine(xp, x3, scale, shift, out3) -> None:
    """``out3 = x3 * scale[c] + shift[c]``."""
    if not _fast(xp, x3, out3):
        affine_reference(xp, x3, scale, shift, out3)
        return
    _affine(x3, scale, shift, out3)


def grad_sums(xp, g3, x3, mean):
    """Per-channel ``sum(g)`` and ``sum(g * (x - mean))``, in mean's dtype."""
    if not _fast(xp, g3, x3):
        return grad_sums_reference(xp, g3, x3, mean)
    sum_g, sum_gx = np.zeros(x3.shape[1], mean.dtype), np.zeros(x3.shape[1], mean.dtype)
    _grad_sums(g3, x3, mean, sum_g, sum_gx)
    return sum_g, sum_gx


def grad_input(xp, g3, x3, mean, a, b, c, dx3) -> None:
    """``dx3 = a[c] * g3 + b[c] * (x3 - mean[c]) + c[c]``."""
    if not _fast(xp, g3, x3, dx3):
        grad_input_reference(xp, g3, x3, mean, a, b, c, dx3)
        return
    _grad_input(g3, x3, mean, a, b, c, dx3)
