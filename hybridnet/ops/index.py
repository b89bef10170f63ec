"""Indexing operators: slice (crop), slice_axis, slice_like, _slice_assign(_scalar), take,
batch_take, pick, one_hot, where, gather_nd, scatter_nd, fill_element_0index.

Index inputs may have any dtype (MXNet passes float32 indices); fractional values truncate
towards zero. ``take``/``pick`` clip or wrap out-of-range indices as their ``mode`` says;
``gather_nd``/``scatter_nd`` accept negative indices (from the end) and raise IndexError for
out-of-range ones. Gradients of gathers add up over repeated indices; index inputs get a zero
gradient. Sorting (sort, argsort, topk) lives in ``ops/sort.py``.
"""
from __future__ import annotations

import ast

import numpy as np

from ..base import ShapeError, shape_str
from .kernels.scatter import add_at
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register
from .shape import first_type_infer, known, normalize_axis

__all__ = ["basic_slices"]


class _OptShape(Param):
    """A tuple of ints where entries may be None (slice's ``begin``, ``end``, ``step``)."""
    __slots__ = ()

    def parse(self, op, value):
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value.strip() or "()")
            except (ValueError, SyntaxError):
                self._fail(op, value, "expected a tuple such as (0, None, 2)")
        if value is None and not self.required:
            return self.default
        if value is None or isinstance(value, (int, np.integer)):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            self._fail(op, value, "expected a tuple of ints or None")
        out = []
        for v in value:
            if v is None or v == "None":
                out.append(None)
            elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                out.append(int(v))
            else:
                self._fail(op, value, f"entry {v!r} is not an int or None")
        return tuple(out)


def _slice_params():
    return [_OptShape("begin", "shape", doc="start per axis (None: from the edge)"),
            _OptShape("end", "shape", doc="stop per axis, exclusive (None: to the edge)"),
            _OptShape("step", "shape", (), "step per axis (None or omitted: 1)")]


def basic_slices(op: str, shape, begin, end, step):
    """Python slices and the output shape of MXNet's ``slice`` on data of ``shape``.

    Axes past ``len(begin)`` are kept whole; unknown dims (0) give unknown output dims.
    """
    if len(begin) != len(end):
        raise ShapeError(op, f"begin={begin} and end={end} must have the same length")
    if step and len(step) != len(begin):
        raise ShapeError(op, f"step={step} must have the same length as begin={begin}")
    if len(begin) > len(shape):
        raise ShapeError(op, f"begin={begin} slices {len(begin)} axes but data "
                             f"{shape_str(shape)} has {len(shape)}")
    index, out = [], []
    for i, dim in enumerate(shape):
        if i >= len(begin):
            index.append(slice(None))
            out.append(dim)
            continue
        s = step[i] if step and step[i] is not None else 1
        if s == 0:
            raise ShapeError(op, f"step[{i}] must not be 0 (step={step})")
        if not dim:
            index.append(slice(None))
            out.append(0)
            continue
        start, stop, s = slice(begin[i], end[i], s).indices(dim)
        out.append(len(range(start, stop, s)))
        # slice.indices gives stop=-1 for "before the first element", which indexing would read
        # as "the last element"
        index.append(slice(start, None if stop < 0 else stop, s))
    return tuple(index), tuple(out)


def _region_of(op, p, shape):
    return basic_slices(op, shape, p.begin, p.end, p.step)[0]


def _slice_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    ctx.xp.copyto(outputs[0], x[_region_of("slice", p, x.shape)])


def _scatter_region(dx, req, region, g):
    """Gradient of reading ``region``: g there, 0 elsewhere (or added, for req 'add')."""
    if dx is None:
        return
    if req == "add":
        dx[region] += g
    else:
        dx.fill(0)
        dx[region] = g


def _slice_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        _scatter_region(dx, req[0], _region_of("slice", p, dx.shape), out_grads[0])


def _slice_infer(p, in_shapes):
    s = in_shapes[0]
    if s is None:
        return in_shapes, [None], []
    return in_shapes, [basic_slices("slice", s, p.begin, p.end, p.step)[1]], []


def _region_params(p):
    return {"begin": p.begin, "end": p.end, "step": p.step}


def _scatter_graph(F, x, g, region):
    """create_graph form of ``_scatter_region``: g written into zeros like x."""
    return F._internal._slice_assign(F.zeros_like(x), g, **region)


register(OpDef(
    "slice", params=_slice_params(), infer_shape=_slice_infer, forward=_slice_forward,
    backward=_slice_backward, aliases=("crop",), bwd_inputs=(), bwd_outputs=(),
    grad_graph=lambda F, p, out_grads, inputs, outputs: [
        _scatter_graph(F, inputs[0], out_grads[0], _region_params(p))],
    doc="slice(data, begin, end, step=()): the region data[begin:end:step] (Python slice "
        "rules per axis; None entries mean the edge)."))


# ---- slice_axis -----------------------------------------------------------------------------
def _axis_region(p, shape):
    op = "slice_axis"
    axis = normalize_axis(op, p.axis, len(shape), shape)
    dim = shape[axis]
    b = p.begin + dim if p.begin < 0 else p.begin
    e = dim if p.end is None else (p.end + dim if p.end < 0 else p.end)
    if dim and not 0 <= b < e <= dim:
        raise ShapeError(op, f"begin={p.begin}, end={p.end} do not select a non-empty range of "
                             f"axis {axis} (size {dim}) of data {shape_str(shape)}")
    return (slice(None),) * axis + (slice(b, e),), axis, (e - b if dim else 0)


def _slice_axis_infer(p, in_shapes):
    s = in_shapes[0]
    if s is None:
        return in_shapes, [None], []
    _, axis, n = _axis_region(p, s)
    return in_shapes, [tuple(s[:axis]) + (n,) + tuple(s[axis + 1:])], []


def _slice_axis_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    ctx.xp.copyto(outputs[0], x[_axis_region(p, x.shape)[0]])


def _slice_axis_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        _scatter_region(dx, req[0], _axis_region(p, dx.shape)[0], out_grads[0])


def _slice_axis_grad_graph(F, p, out_grads, inputs, outputs):
    x = inputs[0]
    region, axis, _ = _axis_region(p, x.shape)
    b, e = region[axis].start, region[axis].stop
    lead = (None,) * axis
    return [_scatter_graph(F, x, out_grads[0], {"begin": lead + (b,), "end": lead + (e,)})]


register(OpDef(
    "slice_axis", params=[Param("axis", "int", doc="the axis to slice"),
                          Param("begin", "int", doc="start (negative: from the end)"),
                          Param("end", "int", optional=True, doc="stop, exclusive; None: "
                                                                 "the end")],
    infer_shape=_slice_axis_infer, forward=_slice_axis_forward, backward=_slice_axis_backward,
    bwd_inputs=(), bwd_outputs=(), grad_graph=_slice_axis_grad_graph,
    doc="slice_axis(data, axis, begin, end): data[begin:end] along one axis."))


# ---- slice_like -------------------------------------------------------------------------------
def _like_region(p, shape, like):
    op = "slice_like"
    if p.axes:
        axes = [normalize_axis(op, a, len(shape), shape, "axes") for a in p.axes]
        for a in axes:
            if a >= len(like):
                raise ShapeError(op, f"axes={tuple(p.axes)} names axis {a}, but shape_like "
                                     f"{shape_str(like)} has only {len(like)} dims")
    else:
        if len(like) != len(shape):
            raise ShapeError(op, f"shape_like {shape_str(like)} must have as many dims as data "
                                 f"{shape_str(shape)} when axes is empty")
        axes = range(len(shape))
    index, out = [slice(None)] * len(shape), list(shape)
    for a in axes:
        if shape[a] and like[a] and like[a] > shape[a]:
            raise ShapeError(op, f"shape_like {shape_str(like)} is larger than data "
                                 f"{shape_str(shape)} on axis {a}")
        index[a] = slice(0, like[a])
        out[a] = like[a]
    return tuple(index), tuple(out)


def _slice_like_infer(p, in_shapes):
    s, like = in_shapes
    if s is None or like is None:
        return in_shapes, [None], []
    return in_shapes, [_like_region(p, s, like)[1]], []


def _slice_like_forward(ctx, p, inputs, aux, outputs, is_train):
    x, like = inputs
    ctx.xp.copyto(outputs[0], x[_like_region(p, x.shape, like.shape)[0]])


def _slice_like_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx, g = in_grads[0], out_grads[0]
    if dx is not None:
        _scatter_region(dx, req[0], _like_region(p, dx.shape, inputs[1].shape)[0], g)
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "slice_like", inputs=("data", "shape_like"),
    params=[Param("axes", "shape", (), "the axes to slice; (): all")],
    infer_shape=_slice_like_infer, infer_type=first_type_infer("slice_like"),
    forward=_slice_like_forward, backward=_slice_like_backward, bwd_inputs=(),
    bwd_outputs=(),
    doc="slice_like(data, shape_like, axes=()): data[:n0, :n1, ...] with the sizes of "
        "shape_like (on ``axes`` only, when given)."))


# ---- _slice_assign, _slice_assign_scalar ------------------------------------------------------
def _slice_assign_infer(p, in_shapes):
    lhs, rhs = in_shapes
    if lhs is None:
        return in_shapes, [None], []
    region = basic_slices("_slice_assign", lhs, p.begin, p.end, p.step)[1]
    if rhs is not None and known(rhs) and known(region) and tuple(rhs) != region:
        raise ShapeError("_slice_assign", f"rhs has shape {shape_str(rhs)}, expected "
                                          f"{shape_str(region)} (the region begin={p.begin}, "
                                          f"end={p.end} of lhs {shape_str(lhs)})")
    return [lhs, region if rhs is None else rhs], [tuple(lhs)], []


def _slice_assign_forward(ctx, p, inputs, aux, outputs, is_train):
    out = outputs[0]
    if out is not inputs[0]:
        ctx.xp.copyto(out, inputs[0])
    out[_region_of("_slice_assign", p, out.shape)] = inputs[1] if len(inputs) > 1 else p.scalar


def _slice_assign_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    g = out_grads[0]
    region = _region_of("_slice_assign", p, g.shape)
    dlhs = in_grads[0]
    if dlhs is not None:
        masked = g.copy()
        masked[region] = 0
        assign(dlhs, req[0], masked)
    if len(in_grads) > 1:
        assign(in_grads[1], req[1], g[region])


register(OpDef(
    "_slice_assign", inputs=("lhs", "rhs"), params=_slice_params(),
    infer_shape=_slice_assign_infer, forward=_slice_assign_forward,
    backward=_slice_assign_backward, aliases=("_crop_assign",), inplace=((0, 0),),
    bwd_inputs=(), bwd_outputs=(),
    grad_graph=lambda F, p, out_grads, inputs, outputs: [
        F._internal._slice_assign_scalar(out_grads[0], scalar=0, **_region_params(p)),
        F.slice(out_grads[0], **_region_params(p))],
    doc="_slice_assign(lhs, rhs, begin, end, step=()): lhs with lhs[begin:end:step] = rhs."))

register(OpDef(
    "_slice_assign_scalar",
    params=[Param("scalar", "float", 0.0, "the value to write")] + _slice_params(),
    infer_shape=lambda p, s: (s, [None if s[0] is None else tuple(s[0])], []),
    forward=_slice_assign_forward, backward=_slice_assign_backward,
    aliases=("_crop_assign_scalar",), inplace=((0, 0),), bwd_inputs=(), bwd_outputs=(),
    grad_graph=lambda F, p, out_grads, inputs, outputs: [
        F._internal._slice_assign_scalar(out_grads[0], scalar=0, **_region_params(p))],
    doc="_slice_assign_scalar(data, scalar=0, begin, end, step=()): data with "
        "data[begin:end:step] = scalar."))


# ---- take, batch_take, pick ---------------------------------------------------------------------
def _as_index(xp, idx, n, mode, op):
    """Integer positions in [0, n) from an index array: truncate, then clip / wrap / check."""
    pos = idx.astype(np.int64)          # truncates fractional indices towards zero
    if mode == "wrap":
        return xp.mod(pos, n)
    if mode == "raise":
        bad = (pos < 0) | (pos >= n)
        if bool(bad.any()):
            raise IndexError(f"{op}: index {int(pos[bad].reshape(-1)[0])} is out of bounds for "
                             f"an axis of size {n} (mode='raise')")
        return pos
    return xp.clip(pos, 0, n - 1)


def _scatter_grad(xp, dx, req, index, g):
    """The gradient of a gather ``x[index]``: ``g`` added back at ``index``."""
    if dx is None:
        return
    if req != "add":
        dx.fill(0)
    add_at(xp, dx, index, g)


def _take_axis(p, shape):
    return normalize_axis("take", p.axis, len(shape), shape)


def _take_infer(p, in_shapes):
    a, idx = in_shapes
    if a is None or idx is None:
        return in_shapes, [None], []
    axis = _take_axis(p, a)
    return in_shapes, [tuple(a[:axis]) + tuple(idx) + tuple(a[axis + 1:])], []


def _take_forward(ctx, p, inputs, aux, outputs, is_train):
    a, idx = inputs
    axis = _take_axis(p, a.shape)
    pos = _as_index(ctx.xp, idx, a.shape[axis], p.mode, "take")
    if ctx.xp is np:     # positions are already in range; numpy buffers out= under mode='raise'
        np.take(a, pos, axis=axis, out=outputs[0], mode="clip")
    else:
        ctx.xp.take(a, pos, axis=axis, out=outputs[0])


def _take_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, idx, da = ctx.xp, inputs[1], in_grads[0]
    if da is not None:
        axis = _take_axis(p, da.shape)
        pos = _as_index(xp, idx, da.shape[axis], p.mode, "take")
        # move the taken axis to the front so one scatter-add serves every axis
        g = out_grads[0].reshape(da.shape[:axis] + (pos.size,) + da.shape[axis + 1:])
        _scatter_grad(xp, xp.moveaxis(da, axis, 0), req[0], pos.reshape(-1),
                      xp.moveaxis(g, axis, 0))
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "take", inputs=("a", "indices"),
    params=[Param("axis", "int", 0, "the axis to take along"),
            Param("mode", "str", "clip", "out-of-range indices: clip, wrap or raise",
                  choices=("clip", "raise", "wrap"))],
    infer_shape=_take_infer, infer_type=first_type_infer("take"), forward=_take_forward,
    backward=_take_backward, bwd_inputs=(1,), bwd_outputs=(),
    doc="take(a, indices, axis=0, mode='clip'): the slices of ``a`` at ``indices`` along "
        "``axis``; the result has shape a.shape[:axis] + indices.shape + a.shape[axis+1:]."))


def _rows(shape):
    return int(np.prod(shape[:-1])) if len(shape) > 1 else 1


def _batch_take_infer(p, in_shapes):
    a, idx = in_shapes
    if a is None or idx is None:
        return in_shapes, [None], []
    if known(a) and known(idx) and int(np.prod(idx)) != _rows(a):
        raise ShapeError("batch_take", f"indices has shape {shape_str(idx)} ({int(np.prod(idx))} "
                                       f"elements), expected one index per row of a "
                                       f"{shape_str(a)} ({_rows(a)} rows)")
    return in_shapes, [tuple(idx)], []


def _batch_index(xp, a_shape, idx):
    rows = _rows(a_shape)
    return xp.arange(rows), _as_index(xp, idx.reshape(-1), a_shape[-1], "clip", "batch_take")


def _batch_take_forward(ctx, p, inputs, aux, outputs, is_train):
    a, idx = inputs
    r, c = _batch_index(ctx.xp, a.shape, idx)
    outputs[0][...] = a.reshape(-1, a.shape[-1])[r, c].reshape(outputs[0].shape)


def _batch_take_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    da = in_grads[0]
    if da is not None:
        r, c = _batch_index(ctx.xp, da.shape, inputs[1])
        _scatter_grad(ctx.xp, da.reshape(-1, da.shape[-1]), req[0], (r, c),
                      out_grads[0].reshape(-1))
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "batch_take", inputs=("a", "indices"), infer_shape=_batch_take_infer,
    infer_type=first_type_infer("batch_take"), forward=_batch_take_forward,
    backward=_batch_take_backward, bwd_inputs=(1,), bwd_outputs=(),
    doc="batch_take(a, indices): a[i, indices[i]] for each row i (indices clipped)."))


def _pick_layout(p, shape):
    """(axis, data's shape with the axis as 1, data's shape without the axis)."""
    if p.axis is None:
        raise ShapeError("pick", "axis=None is not supported; give the axis to pick along")
    axis = normalize_axis("pick", p.axis, len(shape), shape)
    kept = tuple(1 if i == axis else d for i, d in enumerate(shape))
    dropped = tuple(d for i, d in enumerate(shape) if i != axis) or (1,)
    return axis, kept, dropped


def _pick_infer(p, in_shapes):
    s, idx = in_shapes
    if s is None:
        return in_shapes, [None], []
    _, kept, dropped = _pick_layout(p, s)
    if idx is not None and known(idx) and known(s) and int(np.prod(idx)) != int(np.prod(dropped)):
        raise ShapeError("pick", f"index has shape {shape_str(idx)}, expected "
                                 f"{shape_str(dropped)} (data {shape_str(s)} without axis "
                                 f"{p.axis})")
    # the index has one entry per picked element: data's shape without the axis
    return [s, dropped if idx is None else idx], [kept if p.keepdims else dropped], []


def _pick_positions(xp, p, shape, idx):
    axis, kept, _ = _pick_layout(p, shape)
    return axis, _as_index(xp, idx, shape[axis], p.mode, "pick").reshape(kept)


def _pick_forward(ctx, p, inputs, aux, outputs, is_train):
    x, idx = inputs
    axis, pos = _pick_positions(ctx.xp, p, x.shape, idx)
    outputs[0][...] = ctx.xp.take_along_axis(x, pos, axis).reshape(outputs[0].shape)


def _pick_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, dx = ctx.xp, in_grads[0]
    if dx is not None:
        axis, pos = _pick_positions(xp, p, dx.shape, inputs[1])
        g = out_grads[0].reshape(pos.shape)
        if req[0] == "add":
            picked = xp.take_along_axis(dx, pos, axis) + g
            xp.put_along_axis(dx, pos, picked, axis)
        else:
            dx.fill(0)
            xp.put_along_axis(dx, pos, g, axis)
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "pick", inputs=("data", "index"),
    params=[Param("axis", "int", -1, "the axis to pick along", optional=True),
            Param("keepdims", "bool", False, "keep the axis with size 1"),
            Param("mode", "str", "clip", "out-of-range indices: clip or wrap",
                  choices=("clip", "wrap"))],
    infer_shape=_pick_infer, infer_type=first_type_infer("pick"), forward=_pick_forward,
    backward=_pick_backward, aliases=("choose_element_0index",), bwd_inputs=(1,),
    bwd_outputs=(),
    doc="pick(data, index, axis=-1, keepdims=False, mode='clip'): one element per position "
        "along ``axis``, at ``index``."))


# ---- one_hot, where ---------------------------------------------------------------------------
def _one_hot_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, out = ctx.xp, outputs[0]
    pos = inputs[0].reshape(-1).astype(np.int64)     # truncates towards zero, like MXNet
    flat = out.reshape(-1, p.depth)
    flat.fill(p.off_value)
    valid = (pos >= 0) & (pos < p.depth)
    flat[xp.arange(pos.size)[valid], pos[valid]] = p.on_value


register(OpDef(
    "one_hot", inputs=("indices",),
    params=[Param("depth", "int", doc="the length of each one-hot vector"),
            Param("on_value", "float", 1.0, "the value at the index"),
            Param("off_value", "float", 0.0, "the value elsewhere"),
            Param("dtype", "dtype", np.dtype(np.float32), "the output type")],
    infer_shape=lambda p, s: (s, [None if s[0] is None else tuple(s[0]) + (p.depth,)], []),
    infer_type=lambda p, t: (list(t), [p.dtype], []), forward=_one_hot_forward,
    backward=ZERO_GRAD, bwd_inputs=(), bwd_outputs=(),
    doc="one_hot(indices, depth, on_value=1, off_value=0, dtype='float32'): one-hot vectors; "
        "indices outside [0, depth) give all off_value."))


def _where_infer(p, in_shapes):
    cond, x, y = in_shapes
    shape = x if x is not None else y
    for name, s in (("x", x), ("y", y)):
        if s is not None and shape is not None and known(s) and known(shape) and s != shape:
            raise ShapeError("where", f"{name} has shape {shape_str(s)}, expected "
                                      f"{shape_str(shape)} like x")
    if shape is None:
        return in_shapes, [None], []
    if cond is not None and known(cond) and known(shape) and tuple(cond) != tuple(shape) \
            and not (len(cond) == 1 and cond[0] == shape[0]):
        raise ShapeError("where", f"condition has shape {shape_str(cond)}, expected "
                                  f"{shape_str(shape)} like x or ({shape[0]},) (one flag per row)")
    # an unknown condition stays unknown: it may be x's shape or one flag per row
    return [cond, shape, shape], [tuple(shape)], []


def _rows_condition(cond, ndim):
    """The condition shaped to broadcast against x (a 1-d condition selects whole rows)."""
    return cond.reshape(cond.shape + (1,) * (ndim - 1)) if cond.ndim == 1 and ndim > 1 else cond


def _where_forward(ctx, p, inputs, aux, outputs, is_train):
    cond, x, y = inputs
    ctx.xp.copyto(outputs[0], ctx.xp.where(_rows_condition(cond, x.ndim) != 0, x, y))


def _where_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, g = ctx.xp, out_grads[0]
    mask = _rows_condition(inputs[0], g.ndim) != 0
    assign(in_grads[0], req[0], 0)
    assign(in_grads[1], req[1], xp.where(mask, g, 0))
    assign(in_grads[2], req[2], xp.where(mask, 0, g))


register(OpDef(
    "where", inputs=("condition", "x", "y"), infer_shape=_where_infer,
    infer_type=first_type_infer("where", same=(2,), ref=1), forward=_where_forward,
    backward=_where_backward, bwd_inputs=(0,), bwd_outputs=(),
    doc="where(condition, x, y): x where condition is non-zero, else y; a 1-d condition "
        "chooses whole rows."))


# ---- gather_nd, scatter_nd ----------------------------------------------------------------------
def _nd_index(xp, idx, shape, op):
    """The tuple of integer index arrays that indices (M, ...) select in data of ``shape``."""
    pos = idx.astype(np.int64)
    out = []
    for k in range(pos.shape[0]):
        n = shape[k]
        row = pos[k]
        bad = (row < -n) | (row >= n)
        if bool(bad.any()):
            raise IndexError(f"{op}: index {int(row[bad].reshape(-1)[0])} is out of bounds for "
                             f"axis {k} with size {n}")
        out.append(xp.where(row < 0, row + n, row))
    return tuple(out)


def _gather_nd_infer(p, in_shapes):
    data, idx = in_shapes
    if data is None or idx is None or (idx and idx[0] == 0):
        return in_shapes, [None], []         # the number of coordinates decides the rank
    if not idx or idx[0] > len(data):
        raise ShapeError("gather_nd", f"indices has shape {shape_str(idx)}; its first dim (the "
                                      f"number of coordinates) must be <= data's {len(data)} "
                                      f"dims {shape_str(data)}")
    return in_shapes, [(tuple(idx[1:]) + tuple(data[idx[0]:])) or (1,)], []


def _gather_nd_forward(ctx, p, inputs, aux, outputs, is_train):
    data, idx = inputs
    out = outputs[0]
    out[...] = data[_nd_index(ctx.xp, idx, data.shape, "gather_nd")].reshape(out.shape)


def _gather_nd_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx, idx = in_grads[0], inputs[1]
    if dx is not None:
        index = _nd_index(ctx.xp, idx, dx.shape, "gather_nd")
        g = out_grads[0].reshape(idx.shape[1:] + dx.shape[idx.shape[0]:])
        _scatter_grad(ctx.xp, dx, req[0], index, g)
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "gather_nd", inputs=("data", "indices"), infer_shape=_gather_nd_infer,
    infer_type=first_type_infer("gather_nd"), forward=_gather_nd_forward,
    backward=_gather_nd_backward, bwd_inputs=(1,), bwd_outputs=(),
    doc="gather_nd(data, indices): data[indices[0], ..., indices[M-1]] for indices of shape "
        "(M, ...); result shape indices.shape[1:] + data.shape[M:]."))


def _scatter_nd_infer(p, in_shapes):
    data, idx = in_shapes
    shape = tuple(p.shape)
    if idx is not None and data is not None and known(idx) and known(data):
        want = tuple(idx[1:]) + shape[idx[0]:]
        if tuple(data) != (want or (1,)):
            raise ShapeError("scatter_nd", f"data has shape {shape_str(data)}, expected "
                                           f"{shape_str(want)} from indices {shape_str(idx)} "
                                           f"and shape={shape}")
    return in_shapes, [shape], []


def _scatter_nd_forward(ctx, p, inputs, aux, outputs, is_train):
    data, idx = inputs
    out = outputs[0]
    out.fill(0)
    index = _nd_index(ctx.xp, idx, out.shape, "scatter_nd")
    out[index] = data.reshape(idx.shape[1:] + out.shape[idx.shape[0]:])


def _scatter_nd_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dd, idx = in_grads[0], inputs[1]
    g = out_grads[0]
    if dd is not None:
        assign(dd, req[0], g[_nd_index(ctx.xp, idx, g.shape, "scatter_nd")].reshape(dd.shape))
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "scatter_nd", inputs=("data", "indices"),
    params=[Param("shape", "shape", doc="the output shape")], infer_shape=_scatter_nd_infer,
    infer_type=first_type_infer("scatter_nd"), forward=_scatter_nd_forward,
    backward=_scatter_nd_backward, bwd_inputs=(1,), bwd_outputs=(),
    doc="scatter_nd(data, indices, shape): zeros of ``shape`` with data written at indices "
        "(the inverse of gather_nd; on repeated indices the last write wins)."))


# ---- fill_element_0index ----------------------------------------------------------------------
def _fill_positions(xp, lhs_shape, rhs):
    return xp.arange(lhs_shape[0]), _as_index(xp, rhs.reshape(-1), lhs_shape[1], "clip",
                                              "fill_element_0index")


def _fill_infer(p, in_shapes):
    lhs, mhs, rhs = in_shapes
    if lhs is None:
        return in_shapes, [None], []
    if len(lhs) != 2:
        raise ShapeError("fill_element_0index", f"lhs must be 2-d, got shape {shape_str(lhs)}")
    for name, s in (("mhs", mhs), ("rhs", rhs)):
        if s is not None and known(s) and lhs[0] and tuple(s) != (lhs[0],):
            raise ShapeError("fill_element_0index", f"{name} has shape {shape_str(s)}, expected "
                                                    f"({lhs[0]},) (one value per row of lhs)")
    return [lhs, (lhs[0],), (lhs[0],)], [tuple(lhs)], []


def _fill_forward(ctx, p, inputs, aux, outputs, is_train):
    lhs, mhs, rhs = inputs
    out = outputs[0]
    ctx.xp.copyto(out, lhs)
    out[_fill_positions(ctx.xp, lhs.shape, rhs)] = mhs


def _fill_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    g = out_grads[0]
    r, c = _fill_positions(ctx.xp, g.shape, inputs[2])
    if in_grads[0] is not None:
        masked = g.copy()
        masked[r, c] = 0
        assign(in_grads[0], req[0], masked)
    assign(in_grads[1], req[1], g[r, c])
    assign(in_grads[2], req[2], 0)


register(OpDef(
    "fill_element_0index", inputs=("lhs", "mhs", "rhs"), infer_shape=_fill_infer,
    infer_type=first_type_infer("fill_element_0index", same=(1,)), forward=_fill_forward,
    backward=_fill_backward, bwd_inputs=(2,), bwd_outputs=(),
    doc="fill_element_0index(lhs, mhs, rhs): lhs with lhs[i, rhs[i]] = mhs[i] for each row."))
