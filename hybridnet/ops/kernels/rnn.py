"""Per-time-step gate math of the fused ``RNN`` operator: numba loops (CPU) and the xp reference
they are tested against (also the GPU and float16 path).

The operator does the matrix products with BLAS -- one GEMM for the input projection of every
time step, one per step for the recurrent projection ``hh = h_prev @ W_h2h.T`` -- and calls one
of these per step for everything elementwise, so a step allocates nothing.

Gate buffers ``g`` are (N, G*H) rows of the (T, N, G*H) input projection (biases not yet added).
Forward overwrites them with the activated gates, which backward needs; backward overwrites them
in turn with the gradients of the pre-activations. Gate orders and formulas are MXNet's:

* LSTM, gates i, f, c, o: ``c = f * c_prev + i * c~``, ``h = o * tanh(c)``; the cell state is
  clipped to ``[lo, hi]`` when ``lstm_state_clip_min/max`` are set (NaN cells become ``lo``
  with ``clip_nan``; the gradient does not flow through clipped cells).
* GRU, gates r, z, n: ``n = tanh(x_n + b_xn + r * (W_hn h_prev + b_hn))`` -- the reset gate
  applies after the recurrent product -- and ``h = (1 - z) * n + z * h_prev``.
* rnn_tanh / rnn_relu: ``h = act(x + hh + b)``.
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["lstm_forward_step", "lstm_backward_step", "gru_forward_step", "gru_backward_step",
           "vanilla_forward_step", "vanilla_backward_step"]


# ---- numba ----------------------------------------------------------------------------------------
@numba.njit(inline="always")
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@numba.njit(nogil=True, cache=True)
def _lstm_fwd(g, hh, b, c_prev, c_out, h_out, lo, hi, clip, clip_nan):
    n_, h4 = g.shape
    h_ = h4 // 4
    for n in range(n_):
        for j in range(h_):
            i = _sigmoid(g[n, j] + hh[n, j] + b[j])
            f = _sigmoid(g[n, h_ + j] + hh[n, h_ + j] + b[h_ + j])
            u = math.tanh(g[n, 2 * h_ + j] + hh[n, 2 * h_ + j] + b[2 * h_ + j])
            o = _sigmoid(g[n, 3 * h_ + j] + hh[n, 3 * h_ + j] + b[3 * h_ + j])
            c = f * c_prev[n, j] + i * u
            if clip:
                if c != c:
                    c = lo if clip_nan else c
                elif c < lo:
                    c = lo
                elif c > hi:
                    c = hi
            g[n, j], g[n, h_ + j], g[n, 2 * h_ + j], g[n, 3 * h_ + j] = i, f, u, o
            c_out[n, j] = c
            h_out[n, j] = o * math.tanh(c)


@numba.njit(nogil=True, cache=True)
def _lstm_bwd(g, c, c_prev, dy, dh_rec, dc, lo, hi, clip):
    n_, h4 = g.shape
    h_ = h4 // 4
    for n in range(n_):
        for j in range(h_):
            i, f, u, o = g[n, j], g[n, h_ + j], g[n, 2 * h_ + j], g[n, 3 * h_ + j]
            ct = c[n, j]
            tc = math.tanh(ct)
            dh = dy[n, j] + dh_rec[n, j]
            dct = dc[n, j] + dh * o * (1.0 - tc * tc)
            if clip and (ct <= lo or ct >= hi):
                dct = 0.0
            g[n, j] = dct * u * i * (1.0 - i)
            g[n, h_ + j] = dct * c_prev[n, j] * f * (1.0 - f)
            g[n, 2 * h_ + j] = dct * i * (1.0 - u * u)
            g[n, 3 * h_ + j] = dh * tc * o * (1.0 - o)
            dc[n, j] = dct * f


@numba.njit(nogil=True, cache=True)
def _gru_fwd(g, hh, bx, bh, h_prev, hn_out, h_out):
    n_, h3 = g.shape
    h_ = h3 // 3
    for n in range(n_):
        for j in range(h_):
            r = _sigmoid(g[n, j] + bx[j] + hh[n, j] + bh[j])
            z = _sigmoid(g[n, h_ + j] + bx[h_ + j] + hh[n, h_ + j] + bh[h_ + j])
            hn = hh[n, 2 * h_ + j] + bh[2 * h_ + j]
            u = math.tanh(g[n, 2 * h_ + j] + bx[2 * h_ + j] + r * hn)
            g[n, j], g[n, h_ + j], g[n, 2 * h_ + j] = r, z, u
            hn_out[n, j] = hn
            h_out[n, j] = (1.0 - z) * u + z * h_prev[n, j]


@numba.njit(nogil=True, cache=True)
def _gru_bwd(g, hn, h_prev, dy, dh_rec, dh_direct, dhh):
    n_, h3 = g.shape
    h_ = h3 // 3
    for n in range(n_):
        for j in range(h_):
            r, z, u = g[n, j], g[n, h_ + j], g[n, 2 * h_ + j]
            dh = dy[n, j] + dh_rec[n, j] + dh_direct[n, j]
            du = dh * (1.0 - z) * (1.0 - u * u)
            dr = du * hn[n, j] * r * (1.0 - r)
            dz = dh * (h_prev[n, j] - u) * z * (1.0 - z)
            g[n, j], g[n, h_ + j], g[n, 2 * h_ + j] = dr, dz, du
            dhh[n, j], dhh[n, h_ + j], dhh[n, 2 * h_ + j] = dr, dz, du * r
            dh_direct[n, j] = dh * z


@numba.njit(nogil=True, cache=True)
def _vanilla_fwd(g, hh, b, h_out, relu):
    n_, h_ = g.shape
    for n in range(n_):
        for j in range(h_):
            v = g[n, j] + hh[n, j] + b[j]
            h_out[n, j] = (v if v > 0.0 else 0.0) if relu else math.tanh(v)


@numba.njit(nogil=True, cache=True)
def _vanilla_bwd(g, h, dy, dh_rec, relu):
    n_, h_ = g.shape
    for n in range(n_):
        for j in range(h_):
            dh = dy[n, j] + dh_rec[n, j]
            hv = h[n, j]
            g[n, j] = (dh if hv > 0.0 else 0.0) if relu else dh * (1.0 - hv * hv)


# ---- readable references (and the GPU / float16 path) -----------------------------------------------
def _xp_sigmoid(xp, v):
    return 1 / (1 + xp.exp(-v))


def lstm_forward_reference(xp, g, hh, b, c_prev, c_out, h_out, lo, hi, clip, clip_nan):
    h_ = g.shape[1] // 4
    pre = g + hh + b
    i, f, o = (_xp_sigmoid(xp, pre[:, k * h_:(k + 1) * h_]) for k in (0, 1, 3))
    u = xp.tanh(pre[:, 2 * h_:3 * h_])
    c = f * c_prev + i * u
    if clip:
        c = xp.where(xp.isnan(c), lo if clip_nan else c, xp.clip(c, lo, hi))
    g[:, :h_], g[:, h_:2 * h_], g[:, 2 * h_:3 * h_], g[:, 3 * h_:] = i, f, u, o
    c_out[...] = c
    h_out[...] = o * xp.tanh(c)


def lstm_backward_reference(xp, g, c, c_prev, dy, dh_rec, dc, lo, hi, clip):
    h_ = g.shape[1] // 4
    i, f, u, o = (g[:, k * h_:(k + 1) * h_].copy() for k in range(4))
    tc = xp.tanh(c)
    dh = dy + dh_rec
    dct = dc + dh * o * (1 - tc * tc)
    if clip:
        dct = xp.where((c <= lo) | (c >= hi), 0, dct)
    g[:, :h_] = dct * u * i * (1 - i)
    g[:, h_:2 * h_] = dct * c_prev * f * (1 - f)
    g[:, 2 * h_:3 * h_] = dct * i * (1 - u * u)
    g[:, 3 * h_:] = dh * tc * o * (1 - o)
    dc[...] = dct * f


def gru_forward_reference(xp, g, hh, bx, bh, h_prev, hn_out, h_out):
    h_ = g.shape[1] // 3
    pre = g + bx
    r = _xp_sigmoid(xp, pre[:, :h_] + hh[:, :h_] + bh[:h_])
    z = _xp_sigmoid(xp, pre[:, h_:2 * h_] + hh[:, h_:2 * h_] + bh[h_:2 * h_])
    hn = hh[:, 2 * h_:] + bh[2 * h_:]
    u = xp.tanh(pre[:, 2 * h_:] + r * hn)
    g[:, :h_], g[:, h_:2 * h_], g[:, 2 * h_:] = r, z, u
    hn_out[...] = hn
    h_out[...] = (1 - z) * u + z * h_prev


def gru_backward_reference(xp, g, hn, h_prev, dy, dh_rec, dh_direct, dhh):
    h_ = g.shape[1] // 3
    r, z, u = (g[:, k * h_:(k + 1) * h_].copy() for k in range(3))
    dh = dy + dh_rec + dh_direct
    du = dh * (1 - z) * (1 - u * u)
    dr = du * hn * r * (1 - r)
    dz = dh * (h_prev - u) * z * (1 - z)
    g[:, :h_], g[:, h_:2 * h_], g[:, 2 * h_:] = dr, dz, du
    dhh[:, :h_], dhh[:, h_:2 * h_], dhh[:, 2 * h_:] = dr, dz, du * r
    dh_direct[...] = dh * z


def vanilla_forward_reference(xp, g, hh, b, h_out, relu):
    v = g + hh + b
    h_out[...] = xp.maximum(v, 0) if relu else xp.tanh(v)


def vanilla_backward_reference(xp, g, h, dy, dh_rec, relu):
    dh = dy + dh_rec
    g[...] = xp.where(h > 0, dh, 0) if relu else dh * (1 - h * h)


# ---- dispatch --------------------------------------------------------------------------------------
def _fast(xp, *arrays) -> bool:
    # numba has no float16 arithmetic, and cupy arrays take the xp path
    return xp is np and all(a.dtype in (np.float32, np.float64) for a in arrays)


def lstm_forward_step(xp, g, hh, b, c_prev, c_out, h_out, clip=None, clip_nan=False) -> None:
    """One LSTM step: activate ``g + hh + b`` in place (i, f, c~, o), write c and h.
    ``clip`` is None or the cell state's ``(lo, hi)``."""
    lo, hi = clip if clip is not None else (0.0, 0.0)
    if _fast(xp, g):
        _lstm_fwd(g, hh, b, c_prev, c_out, h_out, lo, hi, clip is not None, clip_nan)
    else:
        lstm_forward_reference(xp, g, hh, b, c_prev, c_out, h_out, lo, hi, clip is not None,
                               clip_nan)


def lstm_backward_step(xp, g, c, c_prev, dy, dh_rec, dc, clip=None) -> None:
    """Backward of one LSTM step: ``g`` (activated gates) becomes the pre-activation gradients
    for ``dh = dy + dh_rec``; ``dc`` (the cell gradient from the step after) becomes c_prev's."""
    lo, hi = clip if clip is not None else (0.0, 0.0)
    if _fast(xp, g):
        _lstm_bwd(g, c, c_prev, dy, dh_rec, dc, lo, hi, clip is not None)
    else:
        lstm_backward_reference(xp, g, c, c_prev, dy, dh_rec, dc, lo, hi, clip is not None)


def gru_forward_step(xp, g, hh, bx, bh, h_prev, hn_out, h_out) -> None:
    """One GRU step: ``g`` becomes (r, z, n); ``hn_out = W_hn h_prev + b_hn`` (kept for
    backward); writes h."""
    if _fast(xp, g):
        _gru_fwd(g, hh, bx, bh, h_prev, hn_out, h_out)
    else:
        gru_forward_reference(xp, g, hh, bx, bh, h_prev, hn_out, h_out)


def gru_backward_step(xp, g, hn, h_prev, dy, dh_rec, dh_direct, dhh) -> None:
    """Backward of one GRU step for ``dh = dy + dh_rec + dh_direct``: ``g`` becomes the gradient
    of the input projection's pre-activations, ``dhh`` that of the recurrent product (the n part
    scaled by r), ``dh_direct`` the part of h_prev's gradient not through the product (dh * z)."""
    if _fast(xp, g):
        _gru_bwd(g, hn, h_prev, dy, dh_rec, dh_direct, dhh)
    else:
        gru_backward_reference(xp, g, hn, h_prev, dy, dh_rec, dh_direct, dhh)


def vanilla_forward_step(xp, g, hh, b, h_out, relu: bool) -> None:
    """One rnn_tanh / rnn_relu step: ``h = act(g + hh + b)``."""
    if _fast(xp, g):
        _vanilla_fwd(g, hh, b, h_out, relu)
    else:
        vanilla_forward_reference(xp, g, hh, b, h_out, relu)


def vanilla_backward_step(xp, g, h, dy, dh_rec, relu: bool) -> None:
    """Backward of one rnn_tanh / rnn_relu step: ``g`` becomes the pre-activation gradient."""
    if _fast(xp, g):
        _vanilla_bwd(g, h, dy, dh_rec, relu)
    else:
        vanilla_backward_reference(xp, g, h, dy, dh_rec, relu)
