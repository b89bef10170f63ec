"""Per-time-step gate math of the fused ``RNN`` operator: numba loops (CPU) and the xp reference
they are tested against (also the GPU and float16 path).

The operator does the matrix products with BLAS -- one GEMM for the input projection of every
time step, one per step for the recurrent projection ``hh = h_prev @ W_h2h.T`` -- and calls one
of these per step for everything elementwise, so a step allocates nothing.

Gate buffers ``g`` are (N, G*H) rows of the (T, N, G*H) input projection (biases not yet added).
Forward overwrites them with the activated gates, which backward needs; backward overwrites them
in turn with the gradients of the pre-activations. Gate orders and formulas are MXNet's:

* LSTM, gates i, f, c, o: ``c = f * c_prev + i * c~``, ``h = o * tanh(c)`` (tanh(c) is kept
  for backward); the cell state is clipped to ``[lo, hi]`` when ``lstm_state_clip_min/max``
  are set (NaN cells become ``lo`` with ``clip_nan``; no gradient flows through clipped cells).
* GRU, gates r, z, n: ``n = tanh(x_n + b_xn + r * (W_hn h_prev + b_hn))`` -- the reset gate
  applies after the recurrent product -- and ``h = (1 - z) * n + z * h_prev``.
* rnn_tanh / rnn_relu: ``h = act(x + hh + b)``.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["lstm_forward_step", "lstm_backward_step", "gru_forward_step", "gru_backward_step",
           "vanilla_forward_step", "vanilla_backward_step"]


# ---- numba ----------------------------------------------------------------------------------------
# The transcendental functions run through numpy's SIMD tanh on whole (N, k) blocks (sigmoid(v)
# = 1/2 + tanh(v/2)/2): numba's scalar exp/tanh cost 10x more. The numba passes around them are
# plain arithmetic over 1-D row views, which LLVM vectorizes (2-D indexing defeats it: 5x
# slower); ``one`` and ``half`` come in with the data's dtype so float32 stays float32. The
# fast-math flags leave out nnan/ninf, so NaN and inf keep IEEE semantics.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _lstm_fwd_pre(g, hh, b, half):
    h_ = g.shape[1] // 4
    for n in range(g.shape[0]):
        gr, hr = g[n], hh[n]
        for k in range(2 * h_):
            gr[k] = (gr[k] + hr[k] + b[k]) * half
        for k in range(2 * h_, 3 * h_):
            gr[k] = gr[k] + hr[k] + b[k]
        for k in range(3 * h_, 4 * h_):
            gr[k] = (gr[k] + hr[k] + b[k]) * half


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _lstm_fwd_cell(g, c_prev, c_out, half):
    h_ = g.shape[1] // 4
    for n in range(g.shape[0]):
        gi, gf, gu, go = g[n, :h_], g[n, h_:2 * h_], g[n, 2 * h_:3 * h_], g[n, 3 * h_:]
        cp, co = c_prev[n], c_out[n]
        for j in range(h_):
            i = half + half * gi[j]
            f = half + half * gf[j]
            gi[j], gf[j] = i, f
            go[j] = half + half * go[j]
            co[j] = f * cp[j] + i * gu[j]


@numba.njit(nogil=True, cache=True)
def _clip_cells(c, lo, hi, clip_nan):
    for n in range(c.shape[0]):
        row = c[n]
        for j in range(row.shape[0]):
            v = row[j]
            if v != v:
                if clip_nan:
                    row[j] = lo
            elif v < lo:
                row[j] = lo
            elif v > hi:
                row[j] = hi


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _lstm_bwd(g, c, tc, c_prev, dy, dh_rec, dc, one, lo, hi):
    # lo/hi are the clip bounds (-inf/inf without clipping): no gradient through clipped cells
    h_ = g.shape[1] // 4
    for n in range(g.shape[0]):
        gi, gf, gu, go = g[n, :h_], g[n, h_:2 * h_], g[n, 2 * h_:3 * h_], g[n, 3 * h_:]
        cn, tn, cp, dyn, dhn, dcn = c[n], tc[n], c_prev[n], dy[n], dh_rec[n], dc[n]
        for j in range(h_):
            i, f, u, o = gi[j], gf[j], gu[j], go[j]
            t = tn[j]
            dh = dyn[j] + dhn[j]
            dct = dcn[j] + dh * o * (one - t * t)
            ct = cn[j]
            dct = dct if lo < ct < hi else dct * 0
            gi[j] = dct * u * i * (one - i)
            gf[j] = dct * cp[j] * f * (one - f)
            gu[j] = dct * i * (one - u * u)
            go[j] = dh * t * o * (one - o)
            dcn[j] = dct * f


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _gru_fwd_pre(g, hh, bx, bh, half):
    h_ = g.shape[1] // 3
    for n in range(g.shape[0]):
        gr, hr = g[n], hh[n]
        for k in range(2 * h_):
            gr[k] = (gr[k] + bx[k] + hr[k] + bh[k]) * half


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _gru_fwd_mid(g, hh, bx, bh, hn_out, half):
    h_ = g.shape[1] // 3
    for n in range(g.shape[0]):
        gr, gz, gu = g[n, :h_], g[n, h_:2 * h_], g[n, 2 * h_:]
        hhn, hno = hh[n, 2 * h_:], hn_out[n]
        for j in range(h_):
            r = half + half * gr[j]
            gr[j] = r
            gz[j] = half + half * gz[j]
            hn = hhn[j] + bh[2 * h_ + j]
            hno[j] = hn
            gu[j] = gu[j] + bx[2 * h_ + j] + r * hn


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _gru_fwd_out(g, h_prev, h_out):
    h_ = g.shape[1] // 3
    for n in range(g.shape[0]):
        gz, gu, hp, ho = g[n, h_:2 * h_], g[n, 2 * h_:], h_prev[n], h_out[n]
        for j in range(h_):
            u = gu[j]
            ho[j] = u + gz[j] * (hp[j] - u)


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _gru_bwd(g, hn, h_prev, dy, dh_rec, dh_direct, dhh, one):
    h_ = g.shape[1] // 3
    for n in range(g.shape[0]):
        gr, gz, gu = g[n, :h_], g[n, h_:2 * h_], g[n, 2 * h_:]
        qr, qz, qu = dhh[n, :h_], dhh[n, h_:2 * h_], dhh[n, 2 * h_:]
        hnn, hp, dyn, dhn, ddn = hn[n], h_prev[n], dy[n], dh_rec[n], dh_direct[n]
        for j in range(h_):
            r, z, u = gr[j], gz[j], gu[j]
            dh = dyn[j] + dhn[j] + ddn[j]
            du = dh * (one - z) * (one - u * u)
            dr = du * hnn[j] * r * (one - r)
            dz = dh * (hp[j] - u) * z * (one - z)
            gr[j], gz[j], gu[j] = dr, dz, du
            qr[j], qz[j], qu[j] = dr, dz, du * r
            ddn[j] = dh * z


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _vanilla_fwd_pre(g, hh, b, h_out, relu):
    for n in range(g.shape[0]):
        gr, hr, ho = g[n], hh[n], h_out[n]
        if relu:
            for j in range(gr.shape[0]):
                v = gr[j] + hr[j] + b[j]
                ho[j] = v if v > 0 else v * 0
        else:
            for j in range(gr.shape[0]):
                ho[j] = gr[j] + hr[j] + b[j]


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _vanilla_bwd(g, h, dy, dh_rec, one, relu):
    for n in range(g.shape[0]):
        gr, hn, dyn, dhn = g[n], h[n], dy[n], dh_rec[n]
        if relu:
            for j in range(gr.shape[0]):
                dh = dyn[j] + dhn[j]
                gr[j] = dh if hn[j] > 0 else dh * 0
        else:
            for j in range(gr.shape[0]):
                hv = hn[j]
                gr[j] = (dyn[j] + dhn[j]) * (one - hv * hv)


# ---- readable references (and the GPU / float16 path) -------------------------------------------
def _xp_sigmoid(xp, v):
    return 1 / (1 + xp.exp(-v))


def lstm_forward_reference(xp, g, hh, b, c_prev, c_out, tc_out, h_out, clip, clip_nan):
    h_ = g.shape[1] // 4
    pre = g + hh + b
    i, f, o = (_xp_sigmoid(xp, pre[:, k * h_:(k + 1) * h_]) for k in (0, 1, 3))
    u = xp.tanh(pre[:, 2 * h_:3 * h_])
    c = f * c_prev + i * u
    if clip is not None:
        c = xp.where(xp.isnan(c), clip[0] if clip_nan else c, xp.clip(c, *clip))
    g[:, :h_], g[:, h_:2 * h_], g[:, 2 * h_:3 * h_], g[:, 3 * h_:] = i, f, u, o
    c_out[...] = c
    tc_out[...] = xp.tanh(c)
    h_out[...] = o * tc_out


def lstm_backward_reference(xp, g, c, tc, c_prev, dy, dh_rec, dc, clip):
    h_ = g.shape[1] // 4
    i, f, u, o = (g[:, k * h_:(k + 1) * h_].copy() for k in range(4))
    dh = dy + dh_rec
    dct = dc + dh * o * (1 - tc * tc)
    if clip is not None:
        dct = xp.where((c <= clip[0]) | (c >= clip[1]), 0, dct)
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


# ---- dispatch -----------------------------------------------------------------------------------
def _fast(xp, *arrays) -> bool:
    # numba has no float16 arithmetic, and cupy arrays take the xp path
    return xp is np and all(a.dtype in (np.float32, np.float64) for a in arrays)


def lstm_forward_step(xp, g, hh, b, c_prev, c_out, tc_out, h_out, clip=None,
                      clip_nan=False) -> None:
    """One LSTM step: activate ``g + hh + b`` in place (i, f, c~, o); write the cell c, its
    tanh (kept for backward) and h. ``clip`` is None or the cell state's ``(lo, hi)``."""
    if not _fast(xp, g):
        lstm_forward_reference(xp, g, hh, b, c_prev, c_out, tc_out, h_out, clip, clip_nan)
        return
    half = g.dtype.type(0.5)
    _lstm_fwd_pre(g, hh, b, half)
    np.tanh(g, out=g)
    _lstm_fwd_cell(g, c_prev, c_out, half)
    if clip is not None:
        _clip_cells(c_out, g.dtype.type(clip[0]), g.dtype.type(clip[1]), clip_nan)
    np.tanh(c_out, out=tc_out)
    np.multiply(g[:, 3 * g.shape[1] // 4:], tc_out, out=h_out)


def lstm_backward_step(xp, g, c, tc, c_prev, dy, dh_rec, dc, clip=None) -> None:
    """Backward of one LSTM step: ``g`` (activated gates) becomes the pre-activation gradients
    for ``dh = dy + dh_rec``; ``dc`` (the cell gradient from the step after) becomes c_prev's."""
    if not _fast(xp, g):
        lstm_backward_reference(xp, g, c, tc, c_prev, dy, dh_rec, dc, clip)
        return
    dt = g.dtype.type
    lo, hi = (dt(clip[0]), dt(clip[1])) if clip is not None else (dt(-np.inf), dt(np.inf))
    _lstm_bwd(g, c, tc, c_prev, dy, dh_rec, dc, dt(1), lo, hi)


def gru_forward_step(xp, g, hh, bx, bh, h_prev, hn_out, h_out) -> None:
    """One GRU step: ``g`` becomes (r, z, n); ``hn_out = W_hn h_prev + b_hn`` (kept for
    backward); writes h."""
    if not _fast(xp, g):
        gru_forward_reference(xp, g, hh, bx, bh, h_prev, hn_out, h_out)
        return
    half, h_ = g.dtype.type(0.5), g.shape[1] // 3
    _gru_fwd_pre(g, hh, bx, bh, half)
    np.tanh(g[:, :2 * h_], out=g[:, :2 * h_])
    _gru_fwd_mid(g, hh, bx, bh, hn_out, half)
    np.tanh(g[:, 2 * h_:], out=g[:, 2 * h_:])
    _gru_fwd_out(g, h_prev, h_out)


def gru_backward_step(xp, g, hn, h_prev, dy, dh_rec, dh_direct, dhh) -> None:
    """Backward of one GRU step for ``dh = dy + dh_rec + dh_direct``: ``g`` becomes the gradient
    of the input projection's pre-activations, ``dhh`` that of the recurrent product (the n part
    scaled by r), ``dh_direct`` the part of h_prev's gradient not through the product (dh * z)."""
    if not _fast(xp, g):
        gru_backward_reference(xp, g, hn, h_prev, dy, dh_rec, dh_direct, dhh)
        return
    _gru_bwd(g, hn, h_prev, dy, dh_rec, dh_direct, dhh, g.dtype.type(1))


def vanilla_forward_step(xp, g, hh, b, h_out, relu: bool) -> None:
    """One rnn_tanh / rnn_relu step: ``h = act(g + hh + b)``."""
    if not _fast(xp, g):
        vanilla_forward_reference(xp, g, hh, b, h_out, relu)
        return
    _vanilla_fwd_pre(g, hh, b, h_out, relu)
    if not relu:
        np.tanh(h_out, out=h_out)


def vanilla_backward_step(xp, g, h, dy, dh_rec, relu: bool) -> None:
    """Backward of one rnn_tanh / rnn_relu step: ``g`` becomes the pre-activation gradient."""
    if not _fast(xp, g):
        vanilla_backward_reference(xp, g, h, dy, dh_rec, relu)
        return
    _vanilla_bwd(g, h, dy, dh_rec, g.dtype.type(1), relu)
