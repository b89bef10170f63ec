"""Sorting: sort, argsort, topk.

Orders are stable in both directions, as MXNet's: equal elements keep their original order
whether sorting ascending or descending (``topk`` of [5, 5, 0] gives indices [0, 1]). Indices
come back in the ``dtype`` parameter (float32 by default). ``axis=None`` works on the flattened
array. ``sort`` and ``topk(ret_typ='value')`` keep the positions as a hidden second output,
so backward can send each gradient back to where its value came from.
"""
from __future__ import annotations

import numpy as np

from ..base import ShapeError, shape_str
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register
from .shape import normalize_axis, size_of

__all__: list = []

_int64 = np.dtype(np.int64)


def _order(xp, x, axis, ascend):
    """Stable sorting positions along ``axis``; ties keep their order in both directions."""
    if ascend:
        return xp.argsort(x, axis=axis, kind="stable")
    if x.dtype.kind == "f":           # negating floats keeps ties tied (and costs one pass)
        return xp.argsort(-x, axis=axis, kind="stable")
    # integers may not negate (unsigned, INT_MIN): sort the reversed array, then reverse back
    n = x.shape[axis]
    return (n - 1) - xp.flip(xp.argsort(xp.flip(x, axis), axis=axis, kind="stable"), axis)


def _layout(op, p, shape):
    """(axis, shape the op works on): the flattened data when axis is None."""
    if p.axis is None:
        return 0, (size_of(shape) if all(shape) else 0,)
    return normalize_axis(op, p.axis, len(shape), shape), tuple(shape)


def _flat(x, p):
    return x.reshape(-1) if p.axis is None else x


def _axis_params(doc_axis="the axis; None: the flattened array"):
    return [Param("axis", "int", -1, doc_axis, optional=True)]


# ---- sort ---------------------------------------------------------------------------------------
def _sort_infer(p, in_shapes):
    s = in_shapes[0]
    if s is None:
        return in_shapes, [None, None], []
    _, shape = _layout("sort", p, s)
    return in_shapes, [shape, shape], []


def _sort_forward(ctx, p, inputs, aux, outputs, is_train):
    xp = ctx.xp
    x = _flat(inputs[0], p)
    axis, _ = _layout("sort", p, inputs[0].shape)
    order = _order(xp, x, axis, p.is_ascend)
    outputs[0][...] = xp.take_along_axis(x, order, axis)
    outputs[1][...] = order


def _gather_back(xp, dx, req, positions, g, axis):
    """dx = g sent back to ``positions`` along ``axis`` (each position appears at most once)."""
    if req == "add":
        xp.put_along_axis(dx, positions, xp.take_along_axis(dx, positions, axis) + g, axis)
    else:
        dx.fill(0)
        xp.put_along_axis(dx, positions, g, axis)


def _sort_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        axis, shape = _layout("sort", p, dx.shape)
        _gather_back(ctx.xp, dx.reshape(shape), req[0], outputs[1].astype(np.int64),
                     out_grads[0], axis)


register(OpDef(
    "sort", params=_axis_params() + [Param("is_ascend", "bool", True, "ascending order")],
    outputs=("output0",), num_outputs=2, infer_shape=_sort_infer,
    infer_type=lambda p, t: (list(t), [t[0], _int64], []), forward=_sort_forward,
    backward=_sort_backward, bwd_inputs=(), bwd_outputs=(1,),
    doc="sort(data, axis=-1, is_ascend=True): the values sorted along ``axis``."))


# ---- argsort ------------------------------------------------------------------------------------
def _argsort_forward(ctx, p, inputs, aux, outputs, is_train):
    axis, _ = _layout("argsort", p, inputs[0].shape)
    outputs[0][...] = _order(ctx.xp, _flat(inputs[0], p), axis, p.is_ascend)


register(OpDef(
    "argsort", params=_axis_params() + [
        Param("is_ascend", "bool", True, "ascending order"),
        Param("dtype", "dtype", np.dtype(np.float32), "the type of the indices")],
    infer_shape=lambda p, s: (s, [None if s[0] is None else _layout("argsort", p, s[0])[1]], []),
    infer_type=lambda p, t: (list(t), [p.dtype], []), forward=_argsort_forward,
    backward=ZERO_GRAD, bwd_inputs=(), bwd_outputs=(),
    doc="argsort(data, axis=-1, is_ascend=True, dtype='float32'): the positions that sort "
        "``data`` along ``axis`` (stable)."))


# ---- topk ---------------------------------------------------------------------------------------
def _topk_k(p, shape, axis):
    dim = shape[axis]
    if p.k <= 0:
        return dim                       # MXNet: k < 1 means every element
    if dim and p.k > dim:
        raise ShapeError("topk", f"k={p.k} is larger than axis {p.axis} of data "
                                 f"{shape_str(shape)} (size {dim})")
    return p.k


def _topk_outputs(p):
    return {"value": ["output0"], "both": ["output0", "output1"]}.get(p.ret_typ, ["output"])


def _topk_infer(p, in_shapes):
    s = in_shapes[0]
    n = 2 if p.ret_typ in ("value", "both") else 1
    if s is None:
        return in_shapes, [None] * n, []
    axis, shape = _layout("topk", p, s)
    if p.ret_typ == "mask":
        return in_shapes, [tuple(s)], []
    picked = shape[:axis] + (_topk_k(p, shape, axis),) + shape[axis + 1:]
    return in_shapes, [picked] * n, []


def _topk_type(p, in_types):
    t = in_types[0]
    return list(in_types), {"value": [t, p.dtype], "both": [t, p.dtype],
                            "indices": [p.dtype], "mask": [t]}[p.ret_typ], []


def first_k(xp, data, axis, k, ascend):
    """The first k positions of the stable order along ``axis`` (the reference: a full sort)."""
    axis %= data.ndim
    return _order(xp, data, axis, ascend)[(slice(None),) * axis + (slice(0, k),)]


def first_k_partitioned(data, axis, k, ascend):
    """``first_k`` for numpy floats without sorting everything: partition out the candidates
    (every element up to the k-th, ties included), then order only those by (value, position).
    None when NaNs make the candidates unclear (the caller then sorts fully)."""
    key = np.moveaxis(data if ascend else -data, axis, -1)
    n = key.shape[-1]
    if key.size == 0:
        return None
    kth = np.partition(key, k - 1, axis=-1)[..., k - 1:k]
    counts = (key <= kth).sum(axis=-1)
    if counts.min() < k:                 # NaNs compare false: leave them to the full sort
        return None
    m = int(counts.max())
    cand = np.argpartition(key, m - 1, axis=-1)[..., :m] if m < n else \
        np.broadcast_to(np.arange(n), key.shape)
    order = np.lexsort((cand, np.take_along_axis(key, cand, -1)), axis=-1)[..., :k]
    return np.moveaxis(np.take_along_axis(cand, order, -1), -1, axis)


def _topk_positions(xp, p, x):
    axis, shape = _layout("topk", p, x.shape)
    data = _flat(x, p)
    k = _topk_k(p, shape, axis)
    pos = None
    if xp is np and data.dtype.kind == "f" and 4 * k <= shape[axis]:
        pos = first_k_partitioned(data, axis, k, p.is_ascend)
    return data, axis, first_k(xp, data, axis, k, p.is_ascend) if pos is None else pos


def _topk_forward(ctx, p, inputs, aux, outputs, is_train):
    xp = ctx.xp
    data, axis, pos = _topk_positions(xp, p, inputs[0])
    if p.ret_typ == "mask":
        mask = outputs[0].reshape(data.shape)
        mask.fill(0)
        xp.put_along_axis(mask, pos, 1, axis)
    elif p.ret_typ == "indices":
        outputs[0][...] = pos
    else:
        outputs[0][...] = xp.take_along_axis(data, pos, axis)
        outputs[1][...] = pos


def _topk_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is None:
        return
    if p.ret_typ in ("indices", "mask"):
        assign(dx, req[0], 0)             # positions and masks do not change with the values
        return
    axis, shape = _layout("topk", p, dx.shape)
    _gather_back(ctx.xp, dx.reshape(shape), req[0], outputs[1].astype(np.int64), out_grads[0],
                 axis)


register(OpDef(
    "topk", params=_axis_params() + [
        Param("k", "int", 1, "how many elements; k < 1 means all"),
        Param("ret_typ", "str", "indices", "what to return: value, indices, mask or both",
              choices=("both", "indices", "mask", "value")),
        Param("is_ascend", "bool", False, "the k smallest instead of the k largest"),
        Param("dtype", "dtype", np.dtype(np.float32), "the type of the indices")],
    outputs=_topk_outputs, num_outputs=lambda p: 2 if p.ret_typ in ("value", "both") else 1,
    infer_shape=_topk_infer, infer_type=_topk_type, forward=_topk_forward,
    backward=_topk_backward, bwd_inputs=(), bwd_outputs=None,
    doc="topk(data, axis=-1, k=1, ret_typ='indices', is_ascend=False, dtype='float32'): the k "
        "largest (or smallest) elements along ``axis``: their values, positions, both, or a "
        "0/1 mask of where they are."))
