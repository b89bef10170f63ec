"""Special functions (erf, erfinv, gamma, lgamma, digamma) for numpy arrays, via numba.

numpy has none of these as ufuncs; scipy is not a dependency. On GPU the callers use
``cupyx.scipy.special`` instead.
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["erf", "erfinv", "gamma", "gammaln", "digamma"]


@numba.njit(nogil=True, cache=True)
def _erf(x, out):
    for i in range(x.size):
        out[i] = math.erf(x[i])


@numba.njit(nogil=True, cache=True)
def _gamma(x, out):
    for i in range(x.size):
        out[i] = math.gamma(x[i])


@numba.njit(nogil=True, cache=True)
def _lgamma(x, out):
    for i in range(x.size):
        out[i] = math.lgamma(x[i])


@numba.njit(nogil=True, cache=True)
def _digamma_scalar(x):
    if x <= 0.0 and math.floor(x) == x:
        return math.nan
    result = 0.0
    if x < 0.0:          # reflection: psi(1-x) - psi(x) = pi cot(pi x)
        result -= math.pi / math.tan(math.pi * x)
        x = 1.0 - x
    while x < 6.0:       # recurrence up to where the asymptotic series is accurate
        result -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (
        1.0 / 240 - inv2 * (1.0 / 132)))))
    return result + math.log(x) - 0.5 * inv - series


@numba.njit(nogil=True, cache=True)
def _digamma(x, out):
    for i in range(x.size):
        out[i] = _digamma_scalar(x[i])


@numba.njit(nogil=True, cache=True)
def _erfinv(x, out):
    for i in range(x.size):
        y = x[i]
        if y <= -1.0:
            out[i] = -math.inf if y == -1.0 else math.nan
            continue
        if y >= 1.0:
            out[i] = math.inf if y == 1.0 else math.nan
            continue
        # Giles' single-precision approximation, then two Newton steps for full accuracy
        w = -math.log((1.0 - y) * (1.0 + y))
        if w < 5.0:
            w -= 2.5
            p = 2.81022636e-08
            p = 3.43273939e-07 + p * w
            p = -3.5233877e-06 + p * w
            p = -4.39150654e-06 + p * w
            p = 0.00021858087 + p * w
            p = -0.00125372503 + p * w
            p = -0.00417768164 + p * w
            p = 0.246640727 + p * w
            p = 1.50140941 + p * w
        else:
            w = math.sqrt(w) - 3.0
            p = -0.000200214257
            p = 0.000100950558 + p * w
            p = 0.00134934322 + p * w
            p = -0.00367342844 + p * w
            p = 0.00573950773 + p * w
            p = -0.0076224613 + p * w
            p = 0.00943887047 + p * w
            p = 1.00167406 + p * w
            p = 2.83297682 + p * w
        r = p * y
        for _ in range(2):
            err = math.erf(r) - y
            r -= err / (2.0 / math.sqrt(math.pi) * math.exp(-r * r))
        out[i] = r


def _apply(kernel, x, out):
    """Run ``kernel`` elementwise in float64 and store into ``out`` (any float dtype)."""
    src = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    tmp = np.empty_like(src)
    kernel(src, tmp)
    out[...] = tmp.reshape(out.shape)
    return out


def erf(x, out):
    return _apply(_erf, x, out)


def erfinv(x, out):
    return _apply(_erfinv, x, out)


def gamma(x, out):
    return _apply(_gamma, x, out)


def gammaln(x, out):
    return _apply(_lgamma, x, out)


def digamma(x, out):
    return _apply(_digamma, x, out)
