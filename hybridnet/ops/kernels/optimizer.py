"""Fused single-pass CPU kernels for the optimizer update operators (``ops/optimizer_ops.py``).

numpy needs several passes and temporaries per update (scale, clip, decay, moments, step);
these loops read each element once, so a 1M-parameter Adam step costs one pass over memory.
They take flat contiguous float32/float64 arrays (the output may be the weight itself) and
compute in the arrays' dtype, as MXNet's kernels do; ``fastmath`` lets LLVM vectorize them.
A clip bound < 0 turns clipping off (it becomes +inf, which clips nothing). The callers fall
back to the ``xp`` code for GPUs, float16 (numba has none) and non-contiguous arrays.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["sgd", "sgd_mom", "nag_mom", "adam", "rmsprop", "rmspropalex", "adagrad"]

# error_model="numpy": x / 0 gives inf/nan like numpy (and MXNet) instead of raising
# fastmath without nnan/ninf: the +inf "no clipping" bound and NaN gradients stay well defined
_FLAGS = dict(nogil=True, cache=True, error_model="numpy",
              fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})


@numba.njit(**_FLAGS)
def _bound(arr, clip):
    """The clip bound in the array's dtype; +inf when clipping is off (clip < 0)."""
    return arr.dtype.type(np.inf) if clip < 0 else arr.dtype.type(clip)


@numba.njit(**_FLAGS)
def sgd(w, g, out, lr, wd, rescale, clip):
    t = w.dtype.type
    lr_, rs, c = t(lr), t(rescale), _bound(w, clip)
    decay = t(1.0) - lr_ * t(wd)
    for i in range(w.size):
        out[i] = decay * w[i] - lr_ * min(max(rs * g[i], -c), c)


@numba.njit(**_FLAGS)
def sgd_mom(w, g, mom, out, lr, wd, momentum, rescale, clip):
    t = w.dtype.type
    lr_, lrwd, mo, rs, c = t(lr), t(lr) * t(wd), t(momentum), t(rescale), _bound(w, clip)
    for i in range(w.size):
        m = mo * mom[i] - lrwd * w[i] - lr_ * min(max(rs * g[i], -c), c)
        mom[i] = m
        out[i] = w[i] + m


@numba.njit(**_FLAGS)
def nag_mom(w, g, mom, out, lr, wd, momentum, rescale, clip):
    t = w.dtype.type
    lr_, wd_, mo, rs, c = t(lr), t(wd), t(momentum), t(rescale), _bound(w, clip)
    for i in range(w.size):
        step = lr_ * (min(max(rs * g[i], -c), c) + wd_ * w[i])
        m = mo * mom[i] - step
        mom[i] = m
        out[i] = w[i] + mo * m - step


@numba.njit(**_FLAGS)
def adam(w, g, mean, var, out, lr, beta1, beta2, epsilon, wd, rescale, clip):
    t = w.dtype.type
    lr_, b1, b2, eps, wd_, rs = t(lr), t(beta1), t(beta2), t(epsilon), t(wd), t(rescale)
    c, one = _bound(w, clip), t(1.0)
    for i in range(w.size):
        gi = min(max(rs * g[i] + wd_ * w[i], -c), c)
        m = b1 * mean[i] + (one - b1) * gi
        v = b2 * var[i] + (one - b2) * gi * gi
        mean[i] = m
        var[i] = v
        out[i] = w[i] - lr_ * m / (np.sqrt(v) + eps)


@numba.njit(**_FLAGS)
def rmsprop(w, g, n, out, lr, gamma1, epsilon, wd, rescale, clip, clip_weights):
    t = w.dtype.type
    lr_, g1, eps, wd_, rs = t(lr), t(gamma1), t(epsilon), t(wd), t(rescale)
    c, cw, one = _bound(w, clip), _bound(w, clip_weights), t(1.0)
    for i in range(w.size):
        gi = min(max(rs * g[i] + wd_ * w[i], -c), c)
        ni = (one - g1) * gi * gi + g1 * n[i]
        n[i] = ni
        out[i] = min(max(w[i] - lr_ * gi / np.sqrt(ni + eps), -cw), cw)


@numba.njit(**_FLAGS)
def rmspropalex(w, g, n, gbar, delta, out, lr, gamma1, gamma2, epsilon, wd, rescale, clip,
                clip_weights):
    t = w.dtype.type
    lr_, g1, g2, eps, wd_, rs = t(lr), t(gamma1), t(gamma2), t(epsilon), t(wd), t(rescale)
    c, cw, one = _bound(w, clip), _bound(w, clip_weights), t(1.0)
    for i in range(w.size):
        gi = min(max(rs * g[i] + wd_ * w[i], -c), c)
        ni = (one - g1) * gi * gi + g1 * n[i]
        bi = (one - g1) * gi + g1 * gbar[i]
        di = g2 * delta[i] - lr_ * gi / np.sqrt(ni - bi * bi + eps)
        n[i] = ni
        gbar[i] = bi
        delta[i] = di
        out[i] = min(max(w[i] + di, -cw), cw)


@numba.njit(**_FLAGS)
def adagrad(w, history, g, lr, wd, epsilon, rescale, clip):
    t = w.dtype.type
    lr_, wd_, eps, rs, c = t(lr), t(wd), t(epsilon), t(rescale), _bound(w, clip)
    for i in range(w.size):
        gi = min(max(rs * g[i], -c), c)
        h = history[i] + gi * gi
        history[i] = h
        w[i] = w[i] - lr_ * (gi / np.sqrt(h + eps) + wd_ * w[i])
