"""Convolution and Deconvolution (1-D, 2-D, 3-D; groups, stride, dilation, padding).

Both run on one engine, ``conv_pass``, which sees every convolution in its *convolution view*:
an input ``x`` (N, C, D, H, W), a weight ``w`` (F, C/groups * K) and an output ``y``
(N, F, OD*OH*OW). In that view

* Convolution forward is ``y = w * col(x)``;
* its weight gradient is ``dw = dy col(x)^T`` and its data gradient ``dx = col2im(w^T dy)``,
  or, with unit strides, the convolution ``dx = w' * col'(dy)`` of dy padded by
  ``extent - 1 - pad`` with the weight flipped in space and its channel axes swapped
  (``ConvView.data_grad_geo``): im2col is a few fast row copies, col2im many short adds;
* Deconvolution is the transposed operator: its forward *is* the convolution's data gradient
  (its input plays ``dy``, its output ``dx``), its data gradient is a convolution forward of
  the output gradient, and its weight gradient is the convolution weight gradient with the
  roles of input and output swapped. Deconvolution's weight (C_in, F/groups, *kernel) is
  exactly the convolution-view weight, so no reshuffling is needed.

float32 numpy arrays -- what training runs on the CPU -- take ``conv_panels``: im2col fused
with a register-blocked GEMM tile, a panel of 64 output positions at a time, so the columns are
consumed while they are in cache and never packed again (kernels/conv_panels.py,
kernels/gemm_tile.py; 1.3-1.4x faster than the route below on AlexNet-R's layers, 1.5x on a
3x3 64->64 layer at 56x56, as fast on 3x3 512->512 at 7x7). 1x1 kernels, whose columns are
the input itself and whose products are wide, stay on the route below (it was 1.1-1.25x
faster there), as do float64, float16 and cupy arrays: ``conv_chunks``' readable route, which
the panel kernels are tested against: one large GEMM per group over a chunk of the batch, where ``col`` has the
batch in its columns (see kernels/im2col.py) and chunks are sized to keep ``col`` in the
last-level cache (``CHUNK_BYTES``), where writing it and reading it back in the GEMM are
cheapest.

On the CPU the batch is split over the operator's threads (engine/parallel.py): each slice
runs its panels (or chunks, with a one-thread BLAS) beside the other slices; each slice's
weight gradient goes to its own buffer and the buffers are summed.

Layouts are MXNet's channel-first NCW / NCHW / NCDHW (channel-last is GPU-only in MXNet too).
``workspace``, ``cudnn_tune`` and ``cudnn_off`` are accepted and ignored.
"""
from __future__ import annotations

import numpy as np

from ...base import ParamError, ShapeError, shape_str
from ...engine.parallel import parallel_slices, parallel_sum
from ..kernels import conv_panels as panels
from ..kernels.im2col import col2im, im2col, interior, pad_input, padded_shape
from ..params import Param
from ..registry import OpDef, assign, register

__all__ = ["CHUNK_BYTES", "ConvView", "bias_add", "bias_grad", "conv_chunks", "conv_geometry",
           "conv_pass", "deconv_geometry"]

# Bytes of the im2col buffer per batch chunk: 2 MB took 0-20% less time than 6 MB on the
# AlexNet-R layers in in-process A/Bs (the most when other busy processes share the 32 MB L3;
# L2 is 1 MB per core); going bigger sends the im2col writes and the GEMM's reads of them to
# DRAM, going much smaller makes the GEMMs too narrow.
CHUNK_BYTES = 2 << 20

_LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
_AXES = {1: "(batch, channel, width)", 2: "(batch, channel, height, width)",
         3: "(batch, channel, depth, height, width)"}


# ---- geometry ---------------------------------------------------------------------------
class ConvView:
    """One convolution in its convolution view (see the module docstring).

    ``in_sp`` / ``out_sp`` are the spatial sizes of the view's input ``x`` and output ``y``,
    padded to three axes; ``geo`` is the kernels' 12-tuple (kernel, stride, pad, dilation).
    """
    __slots__ = ("channels", "filters", "groups", "geo", "in_sp", "out_sp")

    def __init__(self, channels, filters, groups, kernel, stride, pad, dilate, in_sp, out_sp):
        lead = (1,) * (3 - len(kernel))
        self.channels, self.filters, self.groups = channels, filters, groups
        self.geo = (lead + tuple(kernel) + lead + tuple(stride) + (0,) * (3 - len(kernel))
                    + tuple(pad) + lead + tuple(dilate))
        self.in_sp = lead + tuple(in_sp)
        self.out_sp = lead + tuple(out_sp)

    @property
    def ksize(self) -> int:
        return self.geo[0] * self.geo[1] * self.geo[2]

    @property
    def npos(self) -> int:
        return self.out_sp[0] * self.out_sp[1] * self.out_sp[2]

    def data_grad_geo(self, channel_ratio: int = 1):
        """Geometry under which the data gradient is a convolution of ``dy``, or None.

        With unit strides, dx = conv(dy, w flipped in space with its channel axes swapped),
        dy padded by ``extent - 1 - pad`` per axis (extent = dilate * (kernel - 1) + 1), which
        gives back the input's size exactly; a pad larger than ``extent - 1`` has no such form.
        Only used when ``channel_ratio`` times the input's channels are at least the output's:
        dy's columns are filters/channels times the size of col2im's and the product has a
        row per input channel, so with few channels col2im wins. im2col + BLAS (ratio 1):
        AlexNet-R's 3->32 layer 8 vs 37 ms, its 32->32 14 vs 12 ms, 64->32 at 7x7 8.4 vs
        5.2 ms. The panel kernels' col2im multiplies with a short reduction and adds back
        through the cache (ratio 4): 3->32 17 vs 8.4 ms, 16->32 6.6 vs 9.3, 32->64 5.1 vs
        5.8 (in-process A/B, batch 128).
        """
        kernel, stride, pad, dilate = (self.geo[a:a + 3] for a in (0, 3, 6, 9))
        tpad = tuple(d * (k - 1) - p for k, p, d in zip(kernel, pad, dilate))
        if (any(s != 1 for s in stride) or min(tpad) < 0
                or self.channels * channel_ratio < self.filters):
            return None
        return kernel + stride + tpad + dilate


def _spatial_param(op: str, name: str, value, kernel: tuple, default: int) -> tuple:
    """stride / dilate / pad / adj as a tuple with one entry per kernel axis."""
    if not value:
        return (default,) * len(kernel)
    if len(value) != len(kernel):
        raise ParamError(f"{op}: {name}={tuple(value)} has {len(value)} dimension(s) but "
                         f"kernel={tuple(kernel)} has {len(kernel)}; give one value per "
                         f"spatial axis")
    return tuple(value)


def _check_common(op: str, p) -> tuple:
    """Validated (kernel, stride, dilate, pad) of a Convolution / Deconvolution call."""
    kernel = tuple(p.kernel)
    if not 1 <= len(kernel) <= 3:
        raise ParamError(f"{op}: kernel={kernel} must have 1, 2 or 3 dimensions "
                         f"(1-D, 2-D or 3-D convolution)")
    if min(kernel) <= 0:
        raise ParamError(f"{op}: kernel={kernel} must be positive in every dimension")
    stride = _spatial_param(op, "stride", p.stride, kernel, 1)
    dilate = _spatial_param(op, "dilate", p.dilate, kernel, 1)
    pad = _spatial_param(op, "pad", p.pad, kernel, 0)
    if min(stride) <= 0:
        raise ParamError(f"{op}: stride={stride} must be positive in every dimension")
    if min(dilate) <= 0:
        raise ParamError(f"{op}: dilate={dilate} must be positive in every dimension")
    if min(pad) < 0:
        raise ParamError(f"{op}: pad={pad} must not be negative")
    if p.num_filter <= 0:
        raise ParamError(f"{op}: num_filter={p.num_filter} must be positive")
    if p.num_group <= 0:
        raise ParamError(f"{op}: num_group={p.num_group} must be positive")
    if p.num_filter % p.num_group:
        raise ParamError(f"{op}: num_filter={p.num_filter} is not divisible by "
                         f"num_group={p.num_group}")
    if p.layout is not None and p.layout != _LAYOUTS[len(kernel)]:
        if p.layout in _LAYOUTS.values():
            raise ParamError(f"{op}: layout={p.layout!r} does not match the "
                             f"{len(kernel)}-D kernel={kernel}; expected "
                             f"{_LAYOUTS[len(kernel)]!r}")
        raise ParamError(f"{op}: layout={p.layout!r} is not supported; use the channel-first "
                         f"layout {_LAYOUTS[len(kernel)]!r} (MXNet runs channel-last layouts "
                         f"on GPU only)")
    return kernel, stride, dilate, pad


def _dilated(kernel, dilate) -> tuple:
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilate))


def _check_data(op: str, data, kernel) -> None:
    if len(data) != len(kernel) + 2:
        raise ShapeError(op, f"data has shape {shape_str(data)}, expected {len(kernel) + 2} "
                             f"dimensions {_AXES[len(kernel)]} for the {len(kernel)}-D "
                             f"kernel={kernel}")


def _check_channels(op: str, what: str, channels: int, groups: int, data) -> None:
    if channels and channels % groups:
        raise ShapeError(op, f"{what} has {channels} channels (shape {shape_str(data)}), "
                             f"which is not divisible by num_group={groups}")


def conv_geometry(p, data) -> ConvView:
    """The ConvView of a Convolution call on data of shape ``data`` (all known)."""
    kernel, stride, dilate, pad = _check_common("Convolution", p)
    out_sp = _conv_out_spatial(data, kernel, stride, dilate, pad)
    return ConvView(data[1], p.num_filter, p.num_group, kernel, stride, pad, dilate,
                    data[2:], out_sp)


def _conv_out_spatial(data, kernel, stride, dilate, pad) -> tuple:
    out = []
    for size, dk, s, pp in zip(data[2:], _dilated(kernel, dilate), stride, pad):
        if size == 0:
            out.append(0)
            continue
        if dk > size + 2 * pp:
            raise ShapeError("Convolution",
                             f"kernel={kernel} (dilated to {_dilated(kernel, dilate)}) is "
                             f"larger than the padded input: data {shape_str(data)} with "
                             f"pad={pad} has spatial size "
                             f"{tuple(d + 2 * q for d, q in zip(data[2:], pad))}")
        out.append((size + 2 * pp - dk) // s + 1)
    return tuple(out)


def _deconv_pad_adj(p, data, kernel, stride, dilate) -> tuple:
    """(pad, adj) of a Deconvolution: given, or derived from target_shape as MXNet does."""
    nd = len(kernel)
    target = tuple(p.target_shape)
    if not any(target):
        pad = _spatial_param("Deconvolution", "pad", p.pad, kernel, 0)
        adj = _spatial_param("Deconvolution", "adj", p.adj, kernel, 0)
        for a, s in zip(adj, stride):
            if not 0 <= a < s:
                raise ParamError(f"Deconvolution: adj={adj} must be smaller than "
                                 f"stride={stride} in every dimension (and not negative)")
        return pad, adj
    if len(target) != nd or min(target) <= 0:
        raise ParamError(f"Deconvolution: target_shape={target} must give one positive size "
                         f"per spatial axis of kernel={kernel}")
    pad, adj = [], []
    for i, (size, dk, s, t) in enumerate(zip(data[2:], _dilated(kernel, dilate), stride,
                                             target)):
        if size == 0:
            pad.append(0)
            adj.append(0)
            continue
        full = s * (size - 1) + dk
        if t > full:
            raise ShapeError("Deconvolution",
                             f"target_shape={target} is too big: data {shape_str(data)} "
                             f"with kernel={kernel} and stride={stride} gives at most "
                             f"{full} along spatial axis {i}")
        pad.append((full - t + 1) // 2)
        adj.append((full - t) % 2)
    return tuple(pad), tuple(adj)


def _deconv_out_spatial(data, kernel, stride, dilate, pad, adj) -> tuple:
    out = []
    for size, dk, s, pp, a in zip(data[2:], _dilated(kernel, dilate), stride, pad, adj):
        if size == 0:
            out.append(0)
            continue
        o = s * (size - 1) + dk - 2 * pp + a
        if o <= 0:
            raise ShapeError("Deconvolution",
                             f"output would be empty: data {shape_str(data)} with "
                             f"kernel={kernel}, stride={stride}, pad={pad} and adj={adj}")
        out.append(o)
    return tuple(out)


def deconv_geometry(p, data) -> ConvView:
    """The ConvView of a Deconvolution call on data of shape ``data`` (all known)."""
    kernel, stride, dilate, _ = _check_common("Deconvolution", p)
    pad, adj = _deconv_pad_adj(p, data, kernel, stride, dilate)
    out_sp = _deconv_out_spatial(data, kernel, stride, dilate, pad, adj)
    # the view's input is the deconvolution's output and vice versa
    return ConvView(p.num_filter, data[1], p.num_group, kernel, stride, pad, dilate,
                    out_sp, data[2:])


# ---- the engine ---------------------------------------------------------------------------
def _writable(xp, a, req):
    """(buffer to compute in, original to copy back to or None): a contiguous stand-in for a
    non-contiguous output (the kernels write through flat views)."""
    if a is None or a.flags.c_contiguous:
        return a, None
    return (xp.ascontiguousarray(a) if req == "add" else xp.empty(a.shape, a.dtype)), a


def _scratch(xp, dtype, rows, cols):
    """A contiguous (rows, cols) buffer whose leading columns can be viewed contiguously."""
    flat = xp.empty(rows * cols, dtype)
    return lambda n: flat[:rows * n].reshape(rows, n)


def conv_pass(xp, view: ConvView, *, x=None, w=None, y=None, dy=None, dx=None, dw=None,
              bias=None, req_y="write", req_dx="write", req_dw="write") -> None:
    """Run the convolution-view products that the given arrays ask for.

    ``y`` (needs ``x``, ``w``): y = conv(x, w) (+ ``bias`` per channel, added to each chunk
    while it is in cache).  ``dw`` (needs ``x``, ``dy``): the weight
    gradient.  ``dx`` (needs ``w``, ``dy``): the data gradient. Each honours its req ('write'
    or 'add'). Arrays come in their natural N-D shapes (any batch size). CPU arrays run in
    batch slices on the operator's threads (``conv_chunks`` is one slice's work).
    """
    ref = x if x is not None else dy
    if type(ref) is not np.ndarray:
        conv_chunks(xp, view, x=x, w=w, y=y, dy=dy, dx=dx, dw=dw, bias=bias,
                    req_y=req_y, req_dx=req_dx, req_dw=req_dw)
        return
    n_batch = ref.shape[0]
    col_bytes = n_batch * view.channels * view.ksize * view.npos * ref.dtype.itemsize
    # slice 0 accumulates into dw itself (honouring req_dw), the others into their own
    # buffers, summed in slice order so that results do not depend on thread timing
    dw_parts = {}

    def work(i, part):
        cut = (lambda a: None if a is None else a[part])
        part_dw = dw
        if i and dw is not None:
            part_dw = dw_parts[i] = np.empty(dw.shape, dw.dtype)
        conv_chunks(xp, view, x=cut(x), w=w, y=cut(y), dy=cut(dy), dx=cut(dx), dw=part_dw,
                    bias=bias, req_y=req_y, req_dx=req_dx,
                    req_dw=req_dw if i == 0 else "write")
    parallel_slices(n_batch, work, col_bytes)
    for i in sorted(dw_parts):
        dw += dw_parts[i]


def conv_chunks(xp, view: ConvView, *, x=None, w=None, y=None, dy=None, dx=None, dw=None,
                bias=None, req_y="write", req_dx="write", req_dw="write") -> None:
    """``conv_pass`` on the calling thread: the products chunk by chunk over the batch
    (float32 numpy arrays with a kernel larger than 1: panel by panel, see ``conv_panels``)."""
    ref = x if x is not None else dy
    if type(ref) is np.ndarray and ref.dtype == np.float32 and view.ksize > 1:
        conv_panels(view, x=x, w=w, y=y, dy=dy, dx=dx, dw=dw, bias=bias,
                    req_y=req_y, req_dx=req_dx, req_dw=req_dw)
        return
    n_batch = ref.shape[0]
    dtype = ref.dtype
    c_, f_, g_ = view.channels, view.filters, view.groups
    cg, fg = c_ // g_, f_ // g_
    kdim, p_ = cg * view.ksize, view.npos
    y, y_orig = _writable(xp, y, req_y)
    dx, dx_orig = _writable(xp, dx, req_dx)
    dw, dw_orig = _writable(xp, dw, req_dw)
    if x is not None:
        x = x.reshape((n_batch, c_) + view.in_sp)
    if dy is not None:
        dy = dy.reshape((n_batch, f_, p_))
    if y is not None:
        y3 = y.reshape((n_batch, f_, p_))
    # the data gradient: as a convolution of dy when the geometry allows (its columns are as
    # cheap to build as the forward's and its GEMM has the long axis inside), else by col2im,
    # which adds the columns back one short run at a time
    dgeo = view.data_grad_geo() if dx is not None else None
    if dx is not None:
        if dgeo is None and req_dx == "write":
            dx[...] = 0
        dx5 = dx.reshape((n_batch, c_) + view.in_sp)
        in_pos = view.in_sp[0] * view.in_sp[1] * view.in_sp[2]
    if w is not None:
        w = w.reshape(f_, kdim)
        if dgeo is not None:
            wflip = _flip_weight(xp, w, view)
        elif dx is not None:      # w^T per group, contiguous: BLAS is 2x faster than transposing
            wt = [xp.ascontiguousarray(w[g * fg:(g + 1) * fg].T) for g in range(g_)]
    if dw is not None:
        dw2 = dw.reshape(f_, kdim)
        # col @ dy^T, summed over the chunks per group and transposed once at the end: BLAS is
        # 1.3-1.4x faster on the (kdim, fg) product with the long batch axis inside than on
        # (fg, kdim) (AlexNet-R shapes, OpenBLAS)
        dw_sum = [xp.empty((kdim, fg), dtype) for _ in range(g_)]
        dw_t = xp.empty((kdim, fg), dtype)
    per_sample = c_ * view.ksize * p_ * np.dtype(dtype).itemsize
    if dgeo is not None:
        per_sample = max(per_sample, f_ * view.ksize * in_pos * np.dtype(dtype).itemsize)
    chunk = max(1, min(n_batch, CHUNK_BYTES // max(per_sample, 1)))
    if x is not None:       # padded once, cut into chunks for im2col
        xpad = pad_input(xp, x, view.geo, view.out_sp)
    if x is not None or (dx is not None and dgeo is None):
        # x's columns; col2im's too, once the weight gradient has used x's
        col_buf = _scratch(xp, dtype, c_ * view.ksize, chunk * p_)
    if y is not None:
        tmp_buf = _scratch(xp, dtype, f_, chunk * p_)
    if dw is not None or (dx is not None and dgeo is None):
        dyt_buf = _scratch(xp, dtype, f_, chunk * p_)
    if dgeo is not None:
        dcol_buf = _scratch(xp, dtype, f_ * view.ksize, chunk * in_pos)
        dxt_buf = _scratch(xp, dtype, c_, chunk * in_pos)
        dypad = pad_input(xp, dy.reshape((n_batch, f_) + view.out_sp), dgeo, view.in_sp)
    for n0 in range(0, n_batch, chunk):
        nb = min(chunk, n_batch - n0)
        if x is not None:
            col = col_buf(nb * p_)
            im2col(xp, xpad[n0:n0 + nb], col, view.geo, view.out_sp, padded=True)
        if y is not None:
            out = tmp_buf(nb * p_)
            for g in range(g_):
                xp.matmul(w[g * fg:(g + 1) * fg], col[g * kdim:(g + 1) * kdim],
                          out=out[g * fg:(g + 1) * fg])
            if bias is not None:
                out += bias.reshape(f_, 1)
            assign(y3[n0:n0 + nb], req_y, out.reshape(f_, nb, p_).transpose(1, 0, 2))
        if dw is not None or (dx is not None and dgeo is None):
            dyt = dyt_buf(nb * p_)
            dyt.reshape(f_, nb, p_)[...] = dy[n0:n0 + nb].transpose(1, 0, 2)
        if dw is not None:
            for g in range(g_):
                part = dw_sum[g] if n0 == 0 else dw_t
                xp.matmul(col[g * kdim:(g + 1) * kdim], dyt[g * fg:(g + 1) * fg].T, out=part)
                if n0:
                    dw_sum[g] += dw_t
        if dgeo is not None:
            dcol = dcol_buf(nb * in_pos)
            im2col(xp, dypad[n0:n0 + nb], dcol, dgeo, view.in_sp, padded=True)
            out = dxt_buf(nb * in_pos)
            krows = fg * view.ksize
            for g in range(g_):
                xp.matmul(wflip[g], dcol[g * krows:(g + 1) * krows],
                          out=out[g * cg:(g + 1) * cg])
            assign(dx5[n0:n0 + nb].reshape(nb, c_, in_pos), req_dx,
                   out.reshape(c_, nb, in_pos).transpose(1, 0, 2))
        elif dx is not None:
            dcol = col_buf(nb * p_)
            for g in range(g_):
                xp.matmul(wt[g], dyt[g * fg:(g + 1) * fg], out=dcol[g * kdim:(g + 1) * kdim])
            col2im(xp, dcol, dx5[n0:n0 + nb], view.geo, view.out_sp)
    if dw is not None:
        for g in range(g_):
            assign(dw2[g * fg:(g + 1) * fg], req_dw, dw_sum[g].T)
    for buf, orig in ((y, y_orig), (dx, dx_orig), (dw, dw_orig)):
        if orig is not None:
            orig[...] = buf


def _flip_weight(xp, w, view: ConvView) -> list:
    """Per group, the weight of the data gradient as a convolution of dy: (C/g, F/g * K)
    with the taps reversed and the channel axes swapped (``ConvView.data_grad_geo``)."""
    g_ = view.groups
    cg, fg = view.channels // g_, view.filters // g_
    flip = w.reshape((g_, fg, cg, view.ksize))[..., ::-1].transpose(0, 2, 1, 3)
    return [xp.ascontiguousarray(flip[g]).reshape(cg, fg * view.ksize) for g in range(g_)]


def _pack_rows(a, mr: int):
    """(rows, K) -> flat (ceil(rows / mr), K, mr): the broadcast operand of the panel
    kernels' GEMM tile, ``mr`` rows side by side, rows past the end zero."""
    rows, k = a.shape
    blocks = -(-rows // mr)
    padded = np.zeros((blocks * mr, k), np.float32)
    padded[:rows] = a
    return np.ascontiguousarray(padded.reshape(blocks, mr, k).transpose(0, 2, 1)).reshape(-1)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def conv_panels(view: ConvView, *, x=None, w=None, y=None, dy=None, dx=None, dw=None,
                bias=None, req_y="write", req_dx="write", req_dw="write") -> None:
    """``conv_chunks`` for float32 numpy arrays: im2col fused with a register-blocked GEMM
    panel by panel (kernels/conv_panels.py), the data gradient as a convolution of dy where
    ``data_grad_geo`` allows, else by col2im."""
    n_batch = (x if x is not None else dy).shape[0]
    c_, f_, g_ = view.channels, view.filters, view.groups
    cg, fg = c_ // g_, f_ // g_
    kdim = cg * view.ksize
    geo, out_sp, in_sp = view.geo, view.out_sp, view.in_sp
    mr, row = panels.MR, panels.ROW
    y, y_orig = _writable(np, y, req_y)
    dx, dx_orig = _writable(np, dx, req_dx)
    dw, dw_orig = _writable(np, dw, req_dw)
    if x is not None:
        xpad = pad_input(np, np.ascontiguousarray(x).reshape((n_batch, c_) + in_sp), geo,
                         out_sp)
    if dy is not None:
        dy = np.ascontiguousarray(dy, np.float32)
    w = None if w is None else w.reshape(f_, kdim)
    panel = np.empty(_round_up(max(kdim, fg * view.ksize), mr) * row, np.float32)
    if y is not None:
        cbuf = np.empty(_round_up(fg, mr) * row, np.float32)
        b = np.empty(0, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
        for g in range(g_):
            panels.conv_forward(xpad, g * cg, cg, _pack_rows(w[g * fg:(g + 1) * fg], mr),
                                y.reshape(-1), g * fg, fg, f_, b, req_y == "add", geo, out_sp,
                                panel, cbuf)
    if dw is not None:
        kpad, fpad = _round_up(kdim, mr), _round_up(fg, panels.NR)
        dyp = np.empty(panels.PANEL * fpad, np.float32)
        rows = np.empty(mr * row, np.float32)
        dw2 = dw.reshape(f_, kdim)
        for g in range(g_):
            dwt = np.zeros(kpad * fpad, np.float32)
            panels.conv_weight_grad(xpad, g * cg, cg, dy.reshape(-1), g * fg, fg, f_, dwt,
                                    fpad, geo, out_sp, rows, dyp)
            assign(dw2[g * fg:(g + 1) * fg], req_dw, dwt.reshape(kpad, fpad)[:kdim, :fg].T)
    dgeo = view.data_grad_geo(channel_ratio=4) if dx is not None else None
    if dgeo is not None:
        dypad = pad_input(np, dy.reshape((n_batch, f_) + out_sp), dgeo, in_sp)
        cbuf = np.empty(_round_up(cg, mr) * row, np.float32)
        empty = np.empty(0, np.float32)
        for g, wflip in enumerate(_flip_weight(np, w, view)):
            panels.conv_forward(dypad, g * fg, fg, _pack_rows(wflip, mr), dx.reshape(-1),
                                g * cg, cg, c_, empty, req_dx == "add", dgeo, in_sp, panel,
                                cbuf)
    elif dx is not None:
        dx5 = dx.reshape((n_batch, c_) + in_sp)
        dxpad = np.zeros(padded_shape(dx5.shape, geo, out_sp), np.float32)
        dyp = np.empty(fg * row, np.float32)
        for g in range(g_):
            wtp = _pack_rows(w[g * fg:(g + 1) * fg].T, mr)
            panels.conv_data_grad_col(dy.reshape(-1), g * fg, fg, f_, wtp, dxpad, g * cg, cg,
                                      geo, out_sp, dyp, panel)
        assign(dx5, req_dx, dxpad[interior(geo, dx5.shape)])
    for buf, orig in ((y, y_orig), (dx, dx_orig), (dw, dw_orig)):
        if orig is not None:
            orig[...] = buf


def bias_add(xp, out, bias) -> None:
    """out += bias along axis 1 (the channel axis)."""
    out += bias.reshape((1, -1) + (1,) * (out.ndim - 2))


def bias_grad(xp, dy, dbias, req: str) -> None:
    """dbias (=|+=) dy summed over every axis but 1 (by batch slices on the policy's threads
    for numpy arrays)."""
    n, c = dy.shape[:2]
    dy3 = dy.reshape(n, c, -1)
    assign(dbias, req, parallel_sum(dy3, (0, 2)) if type(dy) is np.ndarray
           else dy3.sum(axis=(0, 2)))


# ---- shape inference ----------------------------------------------------------------------
def _weight_mismatch(op, p, weight, expected, data, what):
    return ShapeError(op, f"weight has shape {shape_str(weight)}, expected "
                          f"{shape_str(expected)} from data {shape_str(data)}, {what}, "
                          f"num_group={p.num_group} and kernel={tuple(p.kernel)}")


def _merge_weight(op, p, weight, expected, data, what):
    """Unify the given weight shape with the one data implies (0 = unknown dim)."""
    if weight is None:
        return expected
    if len(weight) != len(expected) or any(a and b and a != b
                                           for a, b in zip(weight, expected)):
        raise _weight_mismatch(op, p, weight, expected, data, what)
    return tuple(a or b for a, b in zip(weight, expected))


def _merge_bias(op, bias, n):
    if bias is not None and (len(bias) != 1 or bias[0] not in (0, n)):
        raise ShapeError(op, f"bias has shape {shape_str(bias)}, expected ({n},) -- one "
                             f"value per output channel")
    return (n,)


def _conv_infer_shape(p, in_shapes):
    kernel, stride, dilate, pad = _check_common("Convolution", p)
    data, weight = in_shapes[0], in_shapes[1]
    f_, g_ = p.num_filter, p.num_group
    channels = data[1] if data is not None else 0
    if data is not None:
        _check_data("Convolution", data, kernel)
        _check_channels("Convolution", "data", channels, g_, data)
    if weight is not None and not channels and len(weight) == len(kernel) + 2 and weight[1]:
        channels = weight[1] * g_                 # data's channels from a known weight
        if data is not None:
            data = (data[0], channels) + tuple(data[2:])
    weight = _merge_weight("Convolution", p, weight, (f_, channels // g_) + kernel, data,
                           f"num_filter={f_}")
    out = None
    if data is not None:
        out = (data[0], f_) + _conv_out_spatial(data, kernel, stride, dilate, pad)
    ins = [data, weight]
    if not p.no_bias:
        ins.append(_merge_bias("Convolution", in_shapes[2], f_))
    return ins, [out], []


def _deconv_infer_shape(p, in_shapes):
    kernel, stride, dilate, _ = _check_common("Deconvolution", p)
    data, weight = in_shapes[0], in_shapes[1]
    f_, g_ = p.num_filter, p.num_group
    channels = data[1] if data is not None else 0
    if data is not None:
        _check_data("Deconvolution", data, kernel)
        _check_channels("Deconvolution", "data", channels, g_, data)
    if weight is not None and not channels and len(weight) == len(kernel) + 2 and weight[0]:
        channels = weight[0]
        if data is not None:
            data = (data[0], channels) + tuple(data[2:])
    weight = _merge_weight("Deconvolution", p, weight, (channels, f_ // g_) + kernel, data,
                           f"num_filter={f_}")
    out = None
    if data is not None:
        pad, adj = _deconv_pad_adj(p, data, kernel, stride, dilate)
        out = (data[0], f_) + _deconv_out_spatial(data, kernel, stride, dilate, pad, adj)
    ins = [data, weight]
    if not p.no_bias:
        ins.append(_merge_bias("Deconvolution", in_shapes[2], f_))
    return ins, [out], []


def _inputs(p):
    return ["data", "weight"] if p.no_bias else ["data", "weight", "bias"]


# ---- Convolution --------------------------------------------------------------------------
def _conv_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, w = ctx.xp, inputs[0], inputs[1]
    view = conv_geometry(p, x.shape)
    conv_pass(xp, view, x=x, w=w, y=outputs[0], bias=None if p.no_bias else inputs[2])


def _conv_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x, w, dy = ctx.xp, inputs[0], inputs[1], out_grads[0]
    view = conv_geometry(p, x.shape)
    want_x, want_w = req[0] != "null", req[1] != "null"
    if want_x or want_w:
        conv_pass(xp, view, x=x if want_w else None, w=w if want_x else None, dy=dy,
                  dx=in_grads[0] if want_x else None, dw=in_grads[1] if want_w else None,
                  req_dx=req[0], req_dw=req[1])
    if not p.no_bias and req[2] != "null":
        bias_grad(xp, dy, in_grads[2], req[2])


def _common_params(workspace: int, no_bias: bool, extra=()) -> list:
    """MXNet's parameter list (and order); ``extra`` goes after pad (Deconvolution's adj)."""
    return [
        Param("kernel", "shape", doc="kernel size: (w,), (h, w) or (d, h, w)"),
        Param("stride", "shape", (), "stride per spatial axis; default 1 each"),
        Param("dilate", "shape", (), "dilation per spatial axis; default 1 each"),
        Param("pad", "shape", (), "zero padding per spatial axis; default 0 each"),
        *extra,
        Param("num_filter", "int", doc="number of output channels"),
        Param("num_group", "int", 1, "number of groups the channels are split into"),
        Param("workspace", "int", workspace, "accepted for compatibility; the CPU kernels "
                                             "size their buffers themselves"),
        Param("no_bias", "bool", no_bias, "whether to leave out the bias"),
        Param("cudnn_tune", "str", None, "accepted and ignored",
              choices=("fastest", "limited_workspace", "off")),
        Param("cudnn_off", "bool", False, "accepted and ignored"),
        Param("layout", "str", None, "NCW, NCHW or NCDHW (the default for 1/2/3-D)",
              choices=("NCW", "NCHW", "NCDHW", "NWC", "NHWC", "NDHWC")),
    ]


register(OpDef(
    "Convolution",
    params=_common_params(1024, False),
    inputs=_inputs, infer_shape=_conv_infer_shape, forward=_conv_forward,
    backward=_conv_backward, bwd_inputs=(0, 1), bwd_outputs=(),
    doc="Convolution(data, weight, bias=None, kernel, num_filter, stride=(), dilate=(), "
        "pad=(), num_group=1, workspace=1024, no_bias=False, cudnn_tune=None, "
        "cudnn_off=False, layout=None): N-D convolution (1-D, 2-D or 3-D).\n\n"
        "data (N, C, *spatial), weight (num_filter, C / num_group, *kernel), bias "
        "(num_filter,); output (N, num_filter, *out) with out = floor((x + 2 * pad - "
        "dilate * (kernel - 1) - 1) / stride) + 1.\n\n"
        "Example: mx.nd.Convolution(x, w, b, kernel=(3, 3), pad=(1, 1), num_filter=16)"))


# ---- Deconvolution ------------------------------------------------------------------------
def _deconv_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, w = ctx.xp, inputs[0], inputs[1]
    view = deconv_geometry(p, x.shape)
    conv_pass(xp, view, w=w, dy=x, dx=outputs[0])
    if not p.no_bias:
        bias_add(xp, outputs[0], inputs[2])


def _deconv_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x, w, dy = ctx.xp, inputs[0], inputs[1], out_grads[0]
    view = deconv_geometry(p, x.shape)
    want_x, want_w = req[0] != "null", req[1] != "null"
    if want_x or want_w:
        # in the convolution view dy is the input and x the output: one im2col of dy serves
        # both the data gradient (a convolution of dy) and the weight gradient
        conv_pass(xp, view, x=dy, w=w if want_x else None, dy=x if want_w else None,
                  y=in_grads[0] if want_x else None, dw=in_grads[1] if want_w else None,
                  req_y=req[0], req_dw=req[1])
    if not p.no_bias and req[2] != "null":
        bias_grad(xp, dy, in_grads[2], req[2])


register(OpDef(
    "Deconvolution",
    params=_common_params(512, True, [
        Param("adj", "shape", (), "extra size added at the end of each output axis "
                                  "(ignored when target_shape is given)"),
        Param("target_shape", "shape", (), "output spatial shape; pad and adj are derived "
                                           "from it")]),
    inputs=_inputs, infer_shape=_deconv_infer_shape, forward=_deconv_forward,
    backward=_deconv_backward, bwd_inputs=(0, 1), bwd_outputs=(),
    doc="Deconvolution(data, weight, bias=None, kernel, num_filter, stride=(), dilate=(), "
        "pad=(), adj=(), target_shape=(), num_group=1, workspace=512, no_bias=True, "
        "cudnn_tune=None, cudnn_off=False, layout=None): transposed convolution.\n\n"
        "data (N, C, *spatial), weight (C, num_filter / num_group, *kernel), bias "
        "(num_filter,); output (N, num_filter, *out) with out = stride * (x - 1) + dilate * "
        "(kernel - 1) + 1 - 2 * pad + adj. With target_shape, pad = ceil(t / 2) and adj = t "
        "% 2 for t = stride * (x - 1) + dilate * (kernel - 1) + 1 - target.\n\n"
        "Example: mx.nd.Deconvolution(x, w, kernel=(4, 4), stride=(2, 2), pad=(1, 1), "
        "num_filter=8)"))
