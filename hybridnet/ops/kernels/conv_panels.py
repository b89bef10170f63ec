"""Convolution as im2col fused with a register-blocked GEMM, one panel of columns at a time.

The reference route (kernels/im2col.py + numpy's BLAS) writes a chunk's whole column matrix
and hands it to OpenBLAS, which copies ("packs") it again before multiplying. Here the
columns are built ``PANEL`` output positions at a time into a small buffer that stays in the
L2 cache -- laid out exactly as the GEMM tile (kernels/gemm_tile.py) reads it -- and consumed
at once:

* forward, ``y = w col(x)``: panel rows are the (channel, tap) pairs, its columns ``PANEL``
  consecutive output positions (across samples); each ``MR``-filter by ``NR``-position tile of
  ``y`` is one ``tile`` call with the reduction over the panel's rows;
* weight gradient, ``dw^T += col(x) dy^T``: the same panel is the broadcast operand (rows
  ``MR`` at a time, the reduction over its positions) against dy's values for those positions
  gathered filter-contiguous;
* data gradient by col2im, ``dx += col2im(w^T dy)``: a panel of dy's values per filter is
  multiplied into a panel of columns that is added back into ``dx`` while it is in cache.

An output position's columns come from one row of one sample, so a panel is described by its
*segments* -- runs of positions along an output row -- and every panel row is a few
segment copies. Arrays are float32 and C-contiguous; the caller (ops/nn/convolution.py) packs
the weights, zero-pads the input and handles groups, batch slices and reqs. Positions past the
last one only ever land in tile columns that are not written back, so buffers need no zeroing.
"""
from __future__ import annotations

import numba
import numpy as np

from .gemm_tile import MR, NR, make_tile
from .im2col import _copy_blocks, _load8, _store8

__all__ = ["MR", "NR", "PANEL", "ROW", "conv_forward", "conv_weight_grad",
           "conv_data_grad_col"]

PANEL = 2 * NR              # output positions per panel
# a panel row's stride: 8 spare columns take the 8-wide overrun of a row's last segment copy
ROW = PANEL + 8

_tile_packed = make_tile(1)        # broadcast operand packed MR-wide (weights)
_tile_panel = make_tile(ROW)       # broadcast operand = panel rows (weight gradient)


@numba.njit(nogil=True, cache=True)
def _segments(j0, shape, geo, out_sp, f_total, segs):
    """Split the panel of output positions from j0 (PANEL of them, fewer at the end) into
    runs along output rows, for an input of ``shape`` (N, C, Dp, Hp, Wp) and an output of
    ``f_total`` channels; per run ``segs[s] = (input offset of its first position for tap 0
    of channel 0, length, column in the panel, output offset of its first position for
    filter 0, its index in its sample)``. Returns (positions, runs)."""
    n_, c_, dp, hp, wp = shape
    sd, sh, sw = geo[3:6]
    od, oh, ow = out_sp
    n_pos = od * oh * ow
    cnt = min(PANEL, n_ * n_pos - j0)
    ns = 0
    p = 0
    while p < cnt:
        pos = j0 + p
        n = pos // n_pos
        rem = pos - n * n_pos
        a = rem // (oh * ow)
        b = (rem // ow) % oh
        q = rem % ow
        run = min(ow - q, cnt - p)
        segs[ns, 0] = n * c_ * dp * hp * wp + (a * sd * hp + b * sh) * wp + q * sw
        segs[ns, 1] = run
        segs[ns, 2] = p
        segs[ns, 3] = (n * f_total) * n_pos + rem
        segs[ns, 4] = rem
        ns += 1
        p += run
    return cnt, ns


@numba.njit(nogil=True, cache=True)
def _tap_offsets(c0, cg, shape, geo):
    """Input offset of each (channel, tap) row of channels c0 .. c0+cg-1 relative to an output
    position's tap 0, for an input of ``shape`` -- increasing, so the last is the largest."""
    _n, _c, dp, hp, wp = shape
    plane = dp * hp * wp
    kd, kh, kw = geo[:3]
    dd, dh, dw = geo[9:12]
    taps = np.empty(cg * kd * kh * kw, np.int64)
    k = 0
    for c in range(cg):
        for i in range(kd):
            for j in range(kh):
                for t in range(kw):
                    taps[k] = (c0 + c) * plane + (i * dd * hp + j * dh) * wp + t * dw
                    k += 1
    return taps


@numba.njit(nogil=True, cache=True, inline="always")
def _fill(src, taps, sw, segs, nseg, panel):
    """panel[k, :] <- row k's input values at the segments' positions (row stride ROW).

    Segment by segment, all rows each: the run length is then fixed in the inner loop. A
    copy moves whole 8-wide blocks; the overrun lands in the next segment's columns, written
    later, or in the row's spare columns."""
    k_len = taps.size
    reach = src.size - taps[k_len - 1]
    for s in range(nseg):
        base = segs[s, 0]
        run = segs[s, 1]
        d = segs[s, 2]
        blocks = (run + 7) // 8
        if sw == 1 and base + 8 * blocks <= reach:
            if blocks == 1:
                for k in range(k_len):
                    _store8(panel, d + k * ROW, _load8(src, base + taps[k]))
            elif blocks == 2:
                for k in range(k_len):
                    o = base + taps[k]
                    e = d + k * ROW
                    _store8(panel, e, _load8(src, o))
                    _store8(panel, e + 8, _load8(src, o + 8))
            else:
                for k in range(k_len):
                    _copy_blocks(panel, d + k * ROW, src, base + taps[k], blocks)
        else:
            for k in range(k_len):
                o = base + taps[k]
                e = d + k * ROW
                for q in range(run):
                    panel[np.uint64(e + q)] = src[np.uint64(o + q * sw)]


@numba.njit(nogil=True, cache=True, inline="always")
def _add_run(dst, o, src, d, run):
    """dst[o:o+run] += src[d:d+run], 8 at a time (no overrun: dst is real data)."""
    full = run - run % 8
    for e in range(0, full, 8):
        a = _load8(dst, o + e)
        b = _load8(src, d + e)
        _store8(dst, o + e, (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3],
                             a[4] + b[4], a[5] + b[5], a[6] + b[6], a[7] + b[7]))
    for e in range(full, run):
        dst[np.uint64(o + e)] += src[np.uint64(d + e)]


@numba.njit(nogil=True, cache=True)
def conv_forward(xpad, c0, cg, wpk, y, f0, fg, f_total, bias, add, geo, out_sp, panel, cbuf):
    """y[:, f0:f0+fg] (+)= w * col(xpad[:, c0:c0+cg]) (+ bias[f0:f0+fg] if bias.size).

    ``wpk``: the fg x K weights packed as (ceil(fg / MR), K, MR), rows past fg zero; ``y``
    (N, f_total, P) flat; ``panel`` K * ROW and ``cbuf`` ceil(fg / MR) * MR * ROW scratch
    elements.
    """
    sw = geo[5]
    n_pos = out_sp[0] * out_sp[1] * out_sp[2]
    src = xpad.ravel()
    taps = _tap_offsets(c0, cg, xpad.shape, geo)
    k_len = taps.size
    segs = np.empty((PANEL, 5), np.int64)
    mblocks = (fg + MR - 1) // MR
    y_n = y.size
    for j0 in range(0, xpad.shape[0] * n_pos, PANEL):
        cnt, nseg = _segments(j0, xpad.shape, geo, out_sp, f_total, segs)
        _fill(src, taps, sw, segs, nseg, panel)
        for blk in range(0, cnt, NR):
            for m in range(mblocks):
                _tile_packed(wpk, m * k_len * MR, MR, panel, blk, ROW,
                             cbuf, m * MR * ROW + blk, ROW, k_len, False)
        # into y, filter by filter: whole 8-wide moves where the overrun stays inside this
        # sample's row of the filter (positions a later segment or panel writes)
        for f in range(fg):
            b = bias[f0 + f] if bias.size else np.float32(0)
            for s in range(nseg):
                o = segs[s, 3] + (f0 + f) * n_pos
                p = f * ROW + segs[s, 2]
                run = segs[s, 1]
                blocks = (run + 7) // 8
                if not add and segs[s, 4] + 8 * blocks <= n_pos and o + 8 * blocks <= y_n:
                    for m in range(0, 8 * blocks, 8):
                        v = _load8(cbuf, p + m)
                        _store8(y, o + m, (v[0] + b, v[1] + b, v[2] + b, v[3] + b,
                                           v[4] + b, v[5] + b, v[6] + b, v[7] + b))
                elif add:
                    for e in range(run):
                        y[np.uint64(o + e)] += cbuf[np.uint64(p + e)] + b
                else:
                    for e in range(run):
                        y[np.uint64(o + e)] = cbuf[np.uint64(p + e)] + b


@numba.njit(nogil=True, cache=True)
def conv_weight_grad(xpad, c0, cg, dy, f0, fg, f_total, dwt, fpad, geo, out_sp, rows, dyp):
    """dwt (kpad, fpad) += col(xpad[:, c0:c0+cg]) dy[:, f0:f0+fg]^T (kpad = K rounded up to
    MR, fpad = fg rounded up to NR; rows/columns past K/fg are garbage).

    ``dy`` (N, f_total, P) flat; ``rows`` MR * ROW and ``dyp`` PANEL * fpad scratch
    elements. The panel is built MR rows at a time, each block used at once while it is in
    the L1 cache: the tile reads MR rows of it per step, and from L2 those loads stalled it
    (75 vs 107 GFLOP/s on AlexNet-R's 32->32 layer, whose 32 filters use each block once).
    """
    sw = geo[5]
    n_pos = out_sp[0] * out_sp[1] * out_sp[2]
    kpad = dwt.size // fpad
    src = xpad.ravel()
    taps = _tap_offsets(c0, cg, xpad.shape, geo)
    segs = np.empty((PANEL, 5), np.int64)
    for j0 in range(0, xpad.shape[0] * n_pos, PANEL):
        cnt, nseg = _segments(j0, xpad.shape, geo, out_sp, f_total, segs)
        # dy's values filter-contiguous per position; read along positions (filters are
        # n_pos apart in dy: a power of two there made a filter-inner gather 5x slower)
        for f in range(fg):
            for s in range(nseg):
                o = segs[s, 3] + (f0 + f) * n_pos
                d = segs[s, 2] * fpad + f
                for e in range(segs[s, 1]):
                    dyp[np.uint64(d + e * fpad)] = dy[np.uint64(o + e)]
        for k0 in range(0, kpad, MR):
            _fill(src, taps[k0:min(k0 + MR, taps.size)], sw, segs, nseg, rows)
            for fb in range(fpad // NR):
                _tile_panel(rows, 0, 1, dyp, fb * NR, fpad,
                            dwt, k0 * fpad + fb * NR, fpad, cnt, True)


@numba.njit(nogil=True, cache=True)
def conv_data_grad_col(dy, f0, fg, f_total, wtp, dxpad, c0, cg, geo, out_sp, dyp, dcol):
    """dxpad[:, c0:c0+cg] += col2im(w^T dy[:, f0:f0+fg]) -- dxpad zero-padded like xpad.

    ``wtp``: w^T packed as (kpad / MR, fg, MR), taps past K zero; ``dyp`` fg * ROW and
    ``dcol`` kpad * ROW scratch elements.
    """
    sw = geo[5]
    n_pos = out_sp[0] * out_sp[1] * out_sp[2]
    kpad = wtp.size // fg
    dst = dxpad.ravel()
    taps = _tap_offsets(c0, cg, dxpad.shape, geo)
    dy_n = dy.size
    segs = np.empty((PANEL, 5), np.int64)
    for j0 in range(0, dxpad.shape[0] * n_pos, PANEL):
        cnt, nseg = _segments(j0, dxpad.shape, geo, out_sp, f_total, segs)
        for f in range(fg):
            for s in range(nseg):
                o = segs[s, 3] + (f0 + f) * n_pos
                d = f * ROW + segs[s, 2]
                run = segs[s, 1]
                blocks = (run + 7) // 8
                if o + 8 * blocks <= dy_n:
                    _copy_blocks(dyp, d, dy, o, blocks)
                else:
                    for e in range(run):
                        dyp[d + e] = dy[o + e]
        for blk in range(0, cnt, NR):
            for kb in range(kpad // MR):
                _tile_packed(wtp, kb * fg * MR, MR, dyp, blk, ROW,
                             dcol, kb * MR * ROW + blk, ROW, fg, False)
        for s in range(nseg):
            base = segs[s, 0]
            run = segs[s, 1]
            for k in range(taps.size):
                o = base + taps[k]
                d = k * ROW + segs[s, 2]
                if sw == 1:
                    _add_run(dst, o, dcol, d, run)
                else:
                    for e in range(run):
                        dst[np.uint64(o + e * sw)] += dcol[np.uint64(d + e)]
