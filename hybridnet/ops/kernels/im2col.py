"""im2col / col2im: the data rearrangement that turns convolution into one matrix product.

Every convolution is handled in a canonical 3-D form: data ``(N, C, D, H, W)`` (1-D and 2-D
convolutions get singleton depth/height axes with kernel 1), and a geometry tuple
``geo = (kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw)`` of kernel, stride, pad and dilation.

The column matrix ``col`` has shape ``(C * kd * kh * kw, N * OD * OH * OW)``: row
``(c, i, j, k)`` holds, for every sample and output position, the input element that kernel tap
``(i, j, k)`` of channel ``c`` sees (zero where that falls into the padding). Rows of one group
of channels are contiguous, so a grouped convolution multiplies row blocks. Putting the batch
in the columns makes every GEMM one large product instead of N small ones.

``im2col`` overwrites ``col``; ``col2im`` *adds* the columns back into ``dx`` (so gradient
req 'add' costs nothing extra; zero ``dx`` first for 'write').

CPU float32/float64 arrays use the numba kernels: the input is copied once into a zero-padded
buffer, after which every column row is a branch-free strided copy. The kernels index with
unsigned integers on purpose -- with signed indices numba inserts a negative-index check per
element that makes the copy loops 2-3x slower. Everything else (cupy arrays on the GPU, float16
on the CPU) uses ``im2col_xp`` / ``col2im_xp``: one strided slice copy per kernel tap.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["col2im", "col2im_xp", "im2col", "im2col_xp", "interior", "pad_input", "padded_shape"]


def padded_shape(x_shape, geo: tuple, out_sp: tuple) -> tuple:
    """Shape of the zero-padded input that every kernel tap of every output reads inside."""
    kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw = geo
    ext = []
    for size, k, s, p, d, o in zip(x_shape[2:], (kd, kh, kw), (sd, sh, sw), (pd, ph, pw),
                                   (dd, dh, dw), out_sp):
        ext.append(max(size + 2 * p, (o - 1) * s + (k - 1) * d + 1))
    return tuple(x_shape[:2]) + tuple(ext)


@numba.njit(inline="always")
def _load8(a, i):
    """a[i:i+8] as a tuple of scalars (see _store8)."""
    u = np.uint64
    return (a[u(i)], a[u(i + 1)], a[u(i + 2)], a[u(i + 3)],
            a[u(i + 4)], a[u(i + 5)], a[u(i + 6)], a[u(i + 7)])


@numba.njit(inline="always")
def _store8(a, i, v):
    """a[i:i+8] = v. Loading all eight values before storing any tells LLVM the two ranges
    cannot interfere, so the pair compiles to one vector load and one store; an element-wise
    copy loop gets a run-time overlap check per call that cost 3-4x the copy itself."""
    u = np.uint64
    a[u(i)] = v[0]
    a[u(i + 1)] = v[1]
    a[u(i + 2)] = v[2]
    a[u(i + 3)] = v[3]
    a[u(i + 4)] = v[4]
    a[u(i + 5)] = v[5]
    a[u(i + 6)] = v[6]
    a[u(i + 7)] = v[7]


@numba.njit(inline="always")
def _copy_blocks(dst, o, src, s, blocks):
    """dst[o:o+8*blocks] = src[s:s+8*blocks]; the common counts written out, because a loop
    over the moves ran 1.3-1.5x slower than these straight-line copies."""
    if blocks == 1:
        _store8(dst, o, _load8(src, s))
    elif blocks == 2:
        _store8(dst, o, _load8(src, s))
        _store8(dst, o + 8, _load8(src, s + 8))
    elif blocks == 4:
        _store8(dst, o, _load8(src, s))
        _store8(dst, o + 8, _load8(src, s + 8))
        _store8(dst, o + 16, _load8(src, s + 16))
        _store8(dst, o + 24, _load8(src, s + 24))
    else:
        for m in range(0, 8 * blocks, 8):
            _store8(dst, o + m, _load8(src, s + m))


@numba.njit(nogil=True, cache=True)
def _im2col_padded(xpad, col, geo, out_sp):
    """col (C*K, N*P) <- taps of xpad (N, C, Dp, Hp, Wp); both C-contiguous.

    col is written strictly front to back (rows, then samples, then output positions). With
    stride 1 in width each output row is copied in whole 8-wide moves that may run up to 7
    elements past its end: the next copies overwrite that. A (sample, tap) group whose moves
    would read past xpad's end or write past col's end is copied element by element.
    """
    n_, c_, dp, hp, wp = xpad.shape
    kd, kh, kw, sd, sh, sw, _pd, _ph, _pw, dd, dh, dw = geo
    od, oh, ow = out_sp
    src = xpad.ravel()
    dst = col.ravel()
    p_ = od * oh * ow
    np_ = n_ * p_
    plane = dp * hp * wp
    src_n, dst_n = src.size, dst.size
    blocks = (ow + 7) // 8             # 8-wide moves per output row
    last_row = ((od - 1) * sd * hp + (oh - 1) * sh) * wp     # a group's last row's offset
    row = 0
    for c in range(c_):
        for i in range(kd):
            for j in range(kh):
                for k in range(kw):
                    o = row * np_
                    for n in range(n_):
                        sp = (n * c_ + c) * plane + (i * dd * hp + j * dh) * wp + k * dw
                        if (sw == 1 and sp + last_row + 8 * blocks <= src_n
                                and o + p_ - ow + 8 * blocks <= dst_n):
                            s = sp
                            b = 0
                            for _r in range(od * oh):
                                _copy_blocks(dst, o, src, s, blocks)
                                o += ow
                                s += sh * wp
                                b += 1
                                if b == oh:             # on to the next depth slice
                                    b = 0
                                    s += (sd * hp - oh * sh) * wp
                            continue
                        for a in range(od):
                            for b in range(oh):
                                s = sp + (a * sd * hp + b * sh) * wp
                                for q in range(ow):
                                    dst[np.uint64(o + q)] = src[np.uint64(s + q * sw)]
                                o += ow
                    row += 1


@numba.njit(nogil=True, cache=True)
def _col2im_padded(col, dpad, geo, out_sp):
    """dpad (N, C, Dp, Hp, Wp) += columns of col (C*K, N*P); both C-contiguous."""
    n_, c_, dp, hp, wp = dpad.shape
    kd, kh, kw, sd, sh, sw, _pd, _ph, _pw, dd, dh, dw = geo
    od, oh, ow = out_sp
    src = col.ravel()
    dst = dpad.ravel()
    p_ = od * oh * ow
    np_ = n_ * p_
    plane = dp * hp * wp
    short = ow // 8 * 8         # 0 wherever it is used
    for c in range(c_):
        for n in range(n_):
            sp = (n * c_ + c) * plane
            row = c * kd * kh * kw
            for i in range(kd):
                for j in range(kh):
                    for k in range(kw):
                        o = row * np_ + n * p_
                        for a in range(od):
                            for b in range(oh):
                                s = sp + ((a * sd + i * dd) * hp + b * sh + j * dh) * wp + k * dw
                                if sw == 1 and ow >= 8:
                                    for q in range(ow):
                                        dst[np.uint64(s + q)] += src[np.uint64(o + q)]
                                elif sw == 1:
                                    # a start LLVM cannot see is 0 keeps this short loop
                                    # scalar: vectorized, with its run-time overlap check,
                                    # it took 2-8x longer (AlexNet-R's 7x7 layer)
                                    for q in range(short, ow):
                                        dst[np.uint64(s + q)] += src[np.uint64(o + q)]
                                else:
                                    for q in range(ow):
                                        dst[np.uint64(s + q * sw)] += src[np.uint64(o + q)]
                                o += ow
                        row += 1


def interior(geo, x_shape):
    """The slices of a ``padded_shape`` array that hold the unpadded ``x_shape`` data."""
    pd, ph, pw = geo[6:9]
    d_, h_, w_ = x_shape[2:]
    return (slice(None), slice(None), slice(pd, pd + d_), slice(ph, ph + h_), slice(pw, pw + w_))


def _use_numba(a, b) -> bool:
    """The numba kernels take float32/float64 numpy arrays; the output one must be contiguous."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == b.dtype
            and a.dtype in (np.float32, np.float64) and b.flags.c_contiguous)


def pad_input(xp, x, geo: tuple, out_sp: tuple):
    """``x`` (N, C, D, H, W) zero-padded to ``padded_shape`` -- ``x`` itself when it needs no
    padding and is contiguous. Rows of samples stay contiguous, so a batch padded once can be
    cut into chunks for ``im2col(..., padded=True)``."""
    pshape = padded_shape(x.shape, geo, out_sp)
    if pshape == tuple(x.shape) and x.flags.c_contiguous:
        return x
    xpad = xp.zeros(pshape, x.dtype)
    xpad[interior(geo, x.shape)] = x
    return xpad


def im2col(xp, x, col, geo: tuple, out_sp: tuple, padded: bool = False) -> None:
    """Fill ``col`` (C*K, N*P) from ``x`` (N, C, D, H, W) for output spatial size ``out_sp``;
    ``padded=True`` when ``x`` is already ``pad_input``'s result."""
    xpad = x if padded else pad_input(xp, x, geo, out_sp)
    if _use_numba(xpad, col) and xpad.flags.c_contiguous:
        _im2col_padded(xpad, col, geo, out_sp)
    else:
        im2col_xp(xp, xpad, col, geo, out_sp, padded=True)


def col2im(xp, col, dx, geo: tuple, out_sp: tuple) -> None:
    """Add the columns ``col`` (C*K, N*P) back into ``dx`` (N, C, D, H, W)."""
    if not _use_numba(dx, col):
        col2im_xp(xp, col, dx, geo, out_sp)
        return
    pshape = padded_shape(dx.shape, geo, out_sp)
    if pshape == dx.shape and dx.flags.c_contiguous:
        _col2im_padded(col, dx, geo, out_sp)
        return
    dpad = np.zeros(pshape, dx.dtype)
    _col2im_padded(col, dpad, geo, out_sp)
    dx += dpad[interior(geo, dx.shape)]


def _tap_slices(geo, out_sp, i, j, k):
    """The strided slices of the padded input that kernel tap (i, j, k) reads."""
    sd, sh, sw = geo[3:6]
    dd, dh, dw = geo[9:12]
    od, oh, ow = out_sp
    return (slice(None), slice(None),
            slice(i * dd, i * dd + sd * (od - 1) + 1, sd),
            slice(j * dh, j * dh + sh * (oh - 1) + 1, sh),
            slice(k * dw, k * dw + sw * (ow - 1) + 1, sw))


def im2col_xp(xp, x, col, geo: tuple, out_sp: tuple, padded: bool = False) -> None:
    """``im2col`` written with array slicing: one strided copy per kernel tap (GPU path)."""
    kd, kh, kw = geo[:3]
    n_, c_ = x.shape[:2]
    xpad = x if padded else pad_input(xp, x, geo, out_sp)
    cols = col.reshape((c_, kd, kh, kw, n_) + tuple(out_sp))
    for i in range(kd):
        for j in range(kh):
            for k in range(kw):
                cols[:, i, j, k] = xpad[_tap_slices(geo, out_sp, i, j, k)].transpose(1, 0, 2, 3, 4)


def col2im_xp(xp, col, dx, geo: tuple, out_sp: tuple) -> None:
    """``col2im`` written with array slicing (GPU path); adds into ``dx``."""
    kd, kh, kw = geo[:3]
    n_, c_ = dx.shape[:2]
    dpad = xp.zeros(padded_shape(dx.shape, geo, out_sp), dx.dtype)
    cols = col.reshape((c_, kd, kh, kw, n_) + tuple(out_sp))
    for i in range(kd):
        for j in range(kh):
            for k in range(kw):
                dpad[_tap_slices(geo, out_sp, i, j, k)] += cols[:, i, j, k].transpose(1, 0, 2, 3, 4)
    dx += dpad[interior(geo, dx.shape)]
