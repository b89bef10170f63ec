"""Local response normalization across channels: fused numba loops (CPU) and the numpy/cupy
reference they are tested against.

For data viewed as (N, C, S) -- S the flattened spatial positions -- with
``half = (nsize - 1) // 2`` (MXNet's window: an even ``nsize`` behaves like ``nsize - 1`` in
extent but keeps ``alpha / nsize`` as the coefficient)::

    scale[n, c, s] = knorm + alpha / nsize * sum(x[n, c', s]^2 for |c' - c| <= half)
    out = x * scale^-beta
    dx  = g * scale^-beta - 2 * alpha * beta / nsize * x * winsum(g * out / scale)

The window is symmetric, so the backward's sum over "channels whose window holds c" is the
same window sum again.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["lrn_forward", "lrn_backward", "lrn_forward_reference", "lrn_backward_reference",
           "window_sum_reference"]


@numba.njit(nogil=True, cache=True)
def _forward(x, half, coef, beta, knorm, out, scale):
    n_, c_, s_ = x.shape
    for n in range(n_):
        for c in range(c_):
            lo, hi = max(0, c - half), min(c_, c + half + 1)
            for s in range(s_):
                acc = 0.0
                for k in range(lo, hi):
                    v = x[n, k, s]
                    acc += v * v
                sc = knorm + coef * acc
                scale[n, c, s] = sc
                out[n, c, s] = x[n, c, s] * sc ** -beta


@numba.njit(nogil=True, cache=True)
def _backward(x, g, scale, half, coef, beta, dx):
    n_, c_, s_ = x.shape
    ratio = np.empty(c_)
    for n in range(n_):
        for s in range(s_):
            # g * out / scale = g * x * scale^(-beta - 1), once per channel at this position
            for c in range(c_):
                sc = scale[n, c, s]
                ratio[c] = g[n, c, s] * x[n, c, s] * sc ** (-beta - 1.0)
            for c in range(c_):
                lo, hi = max(0, c - half), min(c_, c + half + 1)
                acc = 0.0
                for k in range(lo, hi):
                    acc += ratio[k]
                dx[n, c, s] = g[n, c, s] * scale[n, c, s] ** -beta - 2.0 * coef * beta * \
                    x[n, c, s] * acc


def _as3d(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


def window_sum_reference(xp, a, half: int):
    """Sum of ``a`` (N, C, S) over the channel window |c' - c| <= half, by cumulative sums."""
    c = a.shape[1]
    cs = xp.cumsum(a, axis=1, dtype=np.float64)
    cs = xp.concatenate([xp.zeros_like(cs[:, :1]), cs], axis=1)
    hi = np.minimum(np.arange(c) + half + 1, c)
    lo = np.maximum(np.arange(c) - half, 0)
    return cs[:, hi] - cs[:, lo]


def lrn_forward_reference(xp, x, nsize, alpha, beta, knorm, out, scale) -> None:
    """The readable (and GPU) forward: window sums by cumulative sums."""
    half, coef = (nsize - 1) // 2, alpha / nsize
    x3, scale3 = _as3d(x), _as3d(scale)
    scale3[...] = knorm + coef * window_sum_reference(xp, x3 * x3, half)
    _as3d(out)[...] = x3 * scale3 ** -beta


def lrn_backward_reference(xp, x, g, scale, nsize, alpha, beta):
    """The readable (and GPU) backward."""
    half, coef = (nsize - 1) // 2, alpha / nsize
    x3, g3, scale3 = _as3d(x), _as3d(g), _as3d(scale)
    ratio = g3 * x3 * scale3 ** (-beta - 1)
    dx = g3 * scale3 ** -beta - 2 * coef * beta * x3 * window_sum_reference(xp, ratio, half)
    return dx.reshape(x.shape)


def _fast(xp, *arrays) -> bool:
    # numba has no float16 arithmetic: half-precision data takes the reference path
    return xp is np and all(a.flags.c_contiguous and a.dtype in (np.float32, np.float64)
                            for a in arrays)


def lrn_forward(xp, x, nsize, alpha, beta, knorm, out, scale) -> None:
    """Write LRN of ``x`` (N, C, ...) into ``out`` and the normalizer into ``scale``."""
    if not _fast(xp, x, out, scale):
        lrn_forward_reference(xp, x, nsize, alpha, beta, knorm, out, scale)
        return
    _forward(_as3d(x), (nsize - 1) // 2, alpha / nsize, beta, knorm, _as3d(out), _as3d(scale))


def lrn_backward(xp, x, g, scale, nsize, alpha, beta):
    """Gradient of LRN w.r.t. ``x`` given the head gradient ``g`` and forward's ``scale``."""
    if not _fast(xp, x, g, scale):
        return lrn_backward_reference(xp, x, g, scale, nsize, alpha, beta)
    dx = np.empty(x.shape, np.result_type(x.dtype, g.dtype))
    _backward(_as3d(x), _as3d(g), _as3d(scale), (nsize - 1) // 2, alpha / nsize, beta,
              _as3d(dx))
    return dx
