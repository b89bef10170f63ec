"""Pooling: max / avg / sum / lp over 1-D, 2-D and 3-D windows, with MXNet's conventions.

Output size along an axis of size ``x`` (kernel ``k``, stride ``s``, pad ``p``):

* ``valid`` (default): ``floor((x + 2p - k) / s) + 1``;
* ``full`` (Caffe's): ``ceil((x + 2p - k) / s) + 1`` -- the last window may hang over the
  padding; it is clipped there (and avg divides by the clipped size);
* ``same``: ``ceil(x / s)``, padding not allowed; the windows are centred by padding
  ``max((out - 1) * s + k - x, 0)`` split as evenly as possible, the extra one at the end.
  MXNet 1.9.1 declares this convention but rejects it at run time for every input; here it
  works for every pool type and 1-D, 2-D and 3-D data.

``global_pool=True`` pools each whole feature map (kernel, stride and pad are ignored).
avg's ``count_include_pad`` (default True, as MXNet) divides by the window size including
padding; False divides by the number of data elements in the window.

Max pooling has a second, hidden int32 output shaped like the first: the forward records every
window's argmax there and the backward only scatters through it (MXNet's oneDNN
build has such a hidden workspace output too, counted in a saved graph's node_row_ptr).
"""
from __future__ import annotations

import numpy as np

from ...base import ParamError, ShapeError, shape_str
from ..kernels import pooling as kern
from ..params import Param
from ..registry import OpDef, register

__all__ = ["pool_geometry"]

_KINDS = {"max": kern.MAX, "avg": kern.AVG, "sum": kern.SUM, "lp": kern.LP}
_LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


class _Geometry:
    """Per-axis window parameters of one Pooling call, padded to three axes for the kernels."""
    __slots__ = ("kernel", "stride", "pad", "limit", "out_sp")

    def __init__(self, kernel, stride, pad, limit, out_sp):
        lead = 3 - len(kernel)
        self.kernel = (1,) * lead + tuple(kernel)
        self.stride = (1,) * lead + tuple(stride)
        self.pad = (0,) * lead + tuple(pad)
        self.limit = (1,) * lead + tuple(limit)
        self.out_sp = tuple(out_sp)


def _axes(p, data) -> int:
    """Number of spatial axes: the kernel's, or the data's for global pooling."""
    if p.global_pool:
        return len(data) - 2 if data is not None else 0
    return len(p.kernel)


def _check_params(p, nd: int) -> tuple:
    """Validated (kernel, stride, pad) for a non-global call with ``nd`` spatial axes."""
    kernel = tuple(p.kernel)
    if not kernel:
        raise ParamError("Pooling: kernel is required unless global_pool=True")
    if not 1 <= nd <= 3:
        raise ParamError(f"Pooling: kernel={kernel} must have 1, 2 or 3 dimensions")
    if min(kernel) <= 0:
        raise ParamError(f"Pooling: kernel={kernel} must be positive in every dimension")
    out = [kernel]
    for name, value, default in (("stride", p.stride, 1), ("pad", p.pad, 0)):
        if not value:
            value = (default,) * nd
        elif len(value) != nd:
            raise ParamError(f"Pooling: {name}={tuple(value)} has {len(value)} dimension(s) "
                             f"but kernel={kernel} has {nd}; give one value per spatial axis")
        out.append(tuple(value))
    kernel, stride, pad = out
    if min(stride) <= 0:
        raise ParamError(f"Pooling: stride={stride} must be positive in every dimension")
    if min(pad) < 0:
        raise ParamError(f"Pooling: pad={pad} must not be negative")
    if any(q >= k for q, k in zip(pad, kernel)):
        raise ParamError(f"Pooling: pad={pad} must be smaller than kernel={kernel} in every "
                         f"dimension (a window would lie entirely in the padding)")
    if p.pooling_convention == "same" and any(pad):
        raise ParamError(f"Pooling: pooling_convention='same' computes its own padding; "
                         f"pad={pad} must be left unset")
    return kernel, stride, pad


def _check_common(p, nd: int) -> None:
    if p.pool_type == "lp" and p.p_value not in (1, 2, 3):
        raise ParamError(f"Pooling: pool_type='lp' needs p_value 1, 2 or 3, got {p.p_value}")
    if p.layout is not None and nd and p.layout != _LAYOUTS.get(nd):
        raise ParamError(f"Pooling: layout={p.layout!r} is not supported for {nd}-D pooling; "
                         f"use {_LAYOUTS.get(nd)!r} (MXNet runs channel-last layouts on GPU "
                         f"only)")


def _out_size(convention, size, k, s, q) -> int:
    if convention == "valid":
        return (size + 2 * q - k) // s + 1
    if convention == "full":
        return -(-(size + 2 * q - k) // s) + 1
    return -(-size // s)


def pool_geometry(p, data) -> _Geometry:
    """Window geometry of a Pooling call on data of (fully known) shape ``data``."""
    spatial = tuple(data[2:])
    if p.global_pool:
        return _Geometry(spatial, (1,) * len(spatial), (0,) * len(spatial), spatial,
                         (1,) * len(spatial))
    kernel, stride, pad = _check_params(p, len(p.kernel))
    out, before, limit = [], [], []
    for size, k, s, q in zip(spatial, kernel, stride, pad):
        o = _out_size(p.pooling_convention, size, k, s, q)
        if p.pooling_convention == "same":
            total = max((o - 1) * s + k - size, 0)
            before.append(total // 2)
            limit.append(size + total - total // 2)
        else:
            before.append(q)
            limit.append(size + q)
        out.append(o)
    return _Geometry(kernel, stride, before, limit, out)


def _infer_shape(p, in_shapes):
    data = in_shapes[0]
    nd = _axes(p, data)
    _check_common(p, nd)
    if not p.global_pool:
        kernel, stride, pad = _check_params(p, nd)
    hidden = _num_outputs(p) - 1
    if data is None:
        return in_shapes, [None] * (1 + hidden), []
    if len(data) not in (3, 4, 5):
        raise ShapeError("Pooling", f"data has shape {shape_str(data)}; expected 3, 4 or 5 "
                                    f"dimensions (batch, channel, then 1 to 3 spatial axes)")
    if p.global_pool:
        return [data], [tuple(data[:2]) + (1,) * (len(data) - 2)] * (1 + hidden), []
    if len(data) != nd + 2:
        raise ShapeError("Pooling", f"data has shape {shape_str(data)}, expected {nd + 2} "
                                    f"dimensions for the {nd}-D kernel={kernel}")
    out = []
    for size, k, s, q in zip(data[2:], kernel, stride, pad):
        if size == 0:
            out.append(0)
            continue
        if p.pooling_convention != "same" and k > size + 2 * q:
            raise ShapeError("Pooling", f"kernel={kernel} is larger than the padded input: "
                                        f"data {shape_str(data)} with pad={pad}")
        out.append(_out_size(p.pooling_convention, size, k, s, q))
    return [data], [tuple(data[:2]) + tuple(out)] * (1 + hidden), []


def _num_outputs(p) -> int:
    """1, plus the hidden argmax output of max pooling."""
    return 2 if p.pool_type == "max" else 1


def _infer_type(p, in_types):
    return list(in_types), [in_types[0]] + [np.dtype(np.int32)] * (_num_outputs(p) - 1), []


def _canonical(a):
    """(planes, D, H, W) view of an (N, C, *spatial) array."""
    spatial = a.shape[2:]
    return a.reshape((a.shape[0] * a.shape[1],) + (1,) * (3 - len(spatial)) + spatial)


def _forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, y = ctx.xp, inputs[0], outputs[0]
    g = pool_geometry(p, x.shape)
    target = y if y.flags.c_contiguous else xp.empty(y.shape, y.dtype)
    kern.pool_forward(xp, _canonical(x), _canonical(target), _KINDS[p.pool_type], g.kernel,
                      g.stride, g.pad, g.limit, p.p_value or 1, p.count_include_pad is not False,
                      _canonical(outputs[1]) if len(outputs) > 1 else None)
    if target is not y:
        y[...] = target


def _backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    if req[0] == "null":
        return
    xp, x, dx = ctx.xp, inputs[0], in_grads[0]
    g = pool_geometry(p, x.shape)
    target = dx if dx.flags.c_contiguous else xp.ascontiguousarray(dx)
    kern.pool_backward(xp, _canonical(x), _canonical(outputs[0]), _canonical(out_grads[0]),
                       _canonical(target),
                       _KINDS[p.pool_type], g.kernel, g.stride, g.pad, g.limit,
                       p.p_value or 1, p.count_include_pad is not False, req[0] == "add",
                       _canonical(outputs[1]) if len(outputs) > 1 else None)
    if target is not dx:
        dx[...] = target


register(OpDef(
    "Pooling",
    params=[
        Param("kernel", "shape", (), "window size: (w,), (h, w) or (d, h, w)"),
        Param("pool_type", "str", "max", "max, avg, sum or lp",
              choices=("avg", "lp", "max", "sum")),
        Param("global_pool", "bool", False, "pool each whole feature map (ignores kernel, "
                                            "stride and pad)"),
        Param("cudnn_off", "bool", False, "accepted and ignored"),
        Param("pooling_convention", "str", "valid", "output size rule: valid, full or same",
              choices=("full", "same", "valid")),
        Param("stride", "shape", (), "stride per spatial axis; default 1 each"),
        Param("pad", "shape", (), "padding per spatial axis; default 0 each"),
        Param("p_value", "int", None, "p of lp pooling: 1, 2 or 3"),
        Param("count_include_pad", "bool", None, "avg: count padding in the divisor "
                                                 "(default True)"),
        Param("layout", "str", None, "NCW, NCHW or NCDHW (the default for 1/2/3-D)",
              choices=("NCW", "NCHW", "NCDHW", "NWC", "NHWC", "NDHWC")),
    ],
    num_outputs=_num_outputs, infer_shape=_infer_shape, infer_type=_infer_type,
    forward=_forward, backward=_backward,
    bwd_inputs=(0,), bwd_outputs=lambda p: tuple(range(_num_outputs(p))),
    doc="Pooling(data, kernel=(), pool_type='max', global_pool=False, cudnn_off=False, "
        "pooling_convention='valid', stride=(), pad=(), p_value=None, "
        "count_include_pad=None, layout=None): 1-D, 2-D or 3-D pooling.\n\n"
        "Output size per axis: valid floor((x + 2p - k) / s) + 1; full ceil((x + 2p - k) / s) "
        "+ 1; same ceil(x / s).\n\n"
        "Example: mx.nd.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type='max')"))
