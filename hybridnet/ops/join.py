"""Joining, splitting, tiling and broadcasting: Concat, stack, SliceChannel (split), _split_v2,
tile, repeat, reverse (flip), broadcast_to, broadcast_axis, broadcast_like.

Forward kernels write straight into the output buffer (tile and repeat assign a broadcast view
into a reshaped output, so no temporary is made); gradients sum back over the copies.
"""
from __future__ import annotations

import numpy as np

from ..base import ParamError, ShapeError, shape_str
from .binary import reduce_to_shape
from .params import Param
from .registry import OpDef, assign, register
from .shape import (first_type_infer, known, legacy_shape, normalize_axes, normalize_axis,
                    register_unary, shape_infer)

__all__: list = []


# ---- Concat, stack ------------------------------------------------------------------------------
def _common_shape(op, in_shapes, skip=None):
    """Merge the known input shapes (all dims, or all but axis ``skip``); ShapeError on a clash."""
    ref = next((i for i, s in enumerate(in_shapes) if s is not None), None)
    if ref is None:
        return None, None
    ndim = len(in_shapes[ref])
    axis = skip(ndim, in_shapes[ref]) if skip is not None else None
    merged = [0] * ndim
    for i, s in enumerate(in_shapes):
        if s is None:
            continue
        clash = len(s) != ndim or any(
            d != axis and s[d] and merged[d] and s[d] != merged[d] for d in range(ndim))
        if clash:
            want = tuple(merged[d] if d != axis else (s[d] if d < len(s) else 0)
                         for d in range(ndim))
            rule = "" if axis is None else f" except on axis {axis}"
            raise ShapeError(op, f"input {i} has shape {shape_str(s)}, expected "
                                 f"{shape_str(want)} like input {ref} (all inputs must agree"
                                 f"{rule})")
        for d in range(ndim):
            if d != axis and not merged[d]:
                merged[d] = s[d]
    return merged, axis


def _concat_infer(p, in_shapes):
    merged, axis = _common_shape(
        "Concat", in_shapes, lambda n, s: normalize_axis("Concat", p.dim, n, s, "dim"))
    if merged is None:
        return in_shapes, [None], []
    ins = []
    for s in in_shapes:
        full = list(merged)
        full[axis] = s[axis] if s is not None else 0
        ins.append(tuple(full))
    out = list(merged)
    out[axis] = sum(s[axis] for s in ins) if all(s[axis] for s in ins) else 0
    return ins, [tuple(out)], []


def _concat_forward(ctx, p, inputs, aux, outputs, is_train):
    ctx.xp.concatenate(inputs, axis=normalize_axis("Concat", p.dim, inputs[0].ndim),
                       out=outputs[0])


def _concat_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    g = out_grads[0]
    axis = normalize_axis("Concat", p.dim, g.ndim)
    start = 0
    for dx, r, x in zip(in_grads, req, inputs):
        n = x.shape[axis]
        if dx is not None:
            index = (slice(None),) * axis + (slice(start, start + n),)
            assign(dx, r, g[index])
        start += n


register(OpDef(
    "Concat", variadic="num_args", params=[Param("dim", "int", 1, "the axis to join along")],
    infer_shape=_concat_infer, forward=_concat_forward, backward=_concat_backward,
    aliases=("concat",), bwd_inputs=(), bwd_outputs=(),
    doc="Concat(*data, num_args, dim=1): join arrays along axis ``dim``; the other axes must "
        "agree."))
# (Concat's backward reads its inputs' shapes, never their values: bwd_inputs=() lets the
# memory planner reuse their storage.)


def _stack_infer(p, in_shapes):
    merged, _ = _common_shape("stack", in_shapes)
    if merged is None:
        return in_shapes, [None], []
    axis = normalize_axis("stack", p.axis, len(merged), merged, extra=1)
    shape = tuple(merged)
    return [shape] * len(in_shapes), [shape[:axis] + (len(in_shapes),) + shape[axis:]], []


def _stack_forward(ctx, p, inputs, aux, outputs, is_train):
    ctx.xp.stack(inputs, axis=normalize_axis("stack", p.axis, inputs[0].ndim, extra=1),
                 out=outputs[0])


def _stack_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    g = out_grads[0]
    axis = normalize_axis("stack", p.axis, g.ndim - 1, extra=1)
    for i, (dx, r) in enumerate(zip(in_grads, req)):
        if dx is not None:
            assign(dx, r, g[(slice(None),) * axis + (i,)])


register(OpDef(
    "stack", variadic="num_args", params=[Param("axis", "int", 0, "where the new axis goes")],
    infer_shape=_stack_infer, forward=_stack_forward, backward=_stack_backward,
    bwd_inputs=(), bwd_outputs=(),
    doc="stack(*data, axis=0, num_args): join arrays of one shape along a new axis."))


# ---- SliceChannel (split), _split_v2 ----------------------------------------------------------
def _slice_channel_bounds(p, dim, shape):
    n = p.num_outputs
    if n < 1:
        raise ShapeError("SliceChannel", f"num_outputs must be >= 1, got {n}")
    if dim and dim % n:
        raise ShapeError("SliceChannel", f"cannot split axis {p.axis} of size {dim} (data "
                                         f"{shape_str(shape)}) into num_outputs={n} equal parts")
    if p.squeeze_axis and dim and dim != n:
        raise ShapeError("SliceChannel", f"squeeze_axis=True needs axis {p.axis} of data "
                                         f"{shape_str(shape)} to have size num_outputs={n}, "
                                         f"it has {dim}")
    step = dim // n
    return [(i * step, (i + 1) * step) for i in range(n)]


def _split_v2_bounds(p, dim, shape):
    if p.sections > 0:
        if dim and dim % p.sections:
            raise ShapeError("_split_v2", f"cannot split axis {p.axis} of size {dim} (data "
                                          f"{shape_str(shape)}) into sections={p.sections} "
                                          f"equal parts")
        step = dim // p.sections
        return [(i * step, (i + 1) * step) for i in range(p.sections)]
    starts = list(p.indices)
    if not starts:
        raise ShapeError("_split_v2", "indices must not be empty when sections=0")
    ends = starts[1:] + [dim]
    for b, e in zip(starts, ends):
        if dim and not 0 <= b <= e <= dim:
            raise ShapeError("_split_v2", f"indices={tuple(p.indices)} must be increasing and "
                                          f"within axis {p.axis} of data {shape_str(shape)}")
    return list(zip(starts, ends))


def _split_family(name, bounds_fn, n_out, params, aliases, doc):
    def pieces(p, shape):
        axis = normalize_axis(name, p.axis, len(shape), shape)
        return axis, bounds_fn(p, shape[axis], shape)

    def infer(p, in_shapes):
        s = in_shapes[0]
        if s is None:
            return in_shapes, [None] * n_out(p), []
        axis, spans = pieces(p, tuple(s))
        outs = []
        for b, e in spans:
            size = e - b if s[axis] else 0
            if p.squeeze_axis:
                if s[axis] and size != 1:
                    raise ShapeError(name, f"squeeze_axis=True needs pieces of size 1, piece "
                                           f"[{b}, {e}) of axis {axis} has size {size}")
                outs.append(legacy_shape(tuple(s[:axis]) + tuple(s[axis + 1:])))
            else:
                outs.append(tuple(s[:axis]) + (size,) + tuple(s[axis + 1:]))
        return in_shapes, outs, []

    def forward(ctx, p, inputs, aux, outputs, is_train):
        x = inputs[0]
        axis, spans = pieces(p, x.shape)
        for out, (b, e) in zip(outputs, spans):
            ctx.xp.copyto(out, x[(slice(None),) * axis + (slice(b, e),)].reshape(out.shape))

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        dx = in_grads[0]
        if dx is None:
            return
        axis, spans = pieces(p, dx.shape)
        for g, (b, e) in zip(out_grads, spans):
            region = dx[(slice(None),) * axis + (slice(b, e),)]
            if g is not None:
                assign(region, req[0], g.reshape(region.shape))
            elif req[0] != "add":
                region.fill(0)

    register(OpDef(name, params=params, infer_shape=infer, forward=forward, backward=backward,
                   outputs=lambda p: [f"output{i}" for i in range(n_out(p))],
                   aliases=aliases, bwd_inputs=(), bwd_outputs=(), doc=doc))


_SQUEEZE = Param("squeeze_axis", "bool", False, "remove the split axis (pieces of size 1)")
_split_family(
    "SliceChannel", _slice_channel_bounds, lambda p: p.num_outputs,
    [Param("num_outputs", "int", doc="how many equal pieces"),
     Param("axis", "int", 1, "the axis to split"), _SQUEEZE], ("split",),
    "SliceChannel(data, num_outputs, axis=1, squeeze_axis=False): split into equal pieces "
    "along ``axis``.")
_split_family(
    "_split_v2", _split_v2_bounds,
    lambda p: p.sections if p.sections > 0 else len(p.indices),
    [Param("indices", "shape", doc="start of each piece (the first is 0)"),
     Param("axis", "int", 1, "the axis to split"), _SQUEEZE,
     Param("sections", "int", 0, "split into this many equal pieces instead")], (),
    "_split_v2(data, indices, axis=1, squeeze_axis=False, sections=0): split at the given "
    "starts, or into ``sections`` equal pieces (``nd.split_v2`` is the friendly wrapper).")


# ---- tile, repeat -------------------------------------------------------------------------------
def _tile_layout(p, shape):
    """(padded input shape, padded reps): numpy's rule, the shorter one gets leading 1s."""
    reps = tuple(p.reps)
    if any(r < 1 for r in reps):
        raise ParamError(f"tile: parameter 'reps' got {reps}: every entry must be >= 1")
    n = max(len(shape), len(reps))
    return (1,) * (n - len(shape)) + tuple(shape), (1,) * (n - len(reps)) + reps


def _interleave(a, b):
    return tuple(v for pair in zip(a, b) for v in pair)


def _tile_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    shape, reps = _tile_layout(p, x.shape)
    # out viewed as (r0, d0, r1, d1, ...) takes x broadcast along every r axis
    outputs[0].reshape(_interleave(reps, shape))[...] = x.reshape(_interleave((1,) * len(shape),
                                                                              shape))


def _tile_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is None:
        return
    shape, reps = _tile_layout(p, dx.shape)
    g = out_grads[0].reshape(_interleave(reps, shape))
    assign(dx, req[0], g.sum(axis=tuple(range(0, 2 * len(shape), 2))).reshape(dx.shape))


register_unary(
    "tile", shape_infer(lambda p, s: tuple(d * r for d, r in zip(*_tile_layout(p, s)))),
    _tile_forward, _tile_backward,
    params=[Param("reps", "shape", doc="repetitions per axis (numpy.tile's rule for lengths)")],
    doc="tile(data, reps): repeat the whole array ``reps[i]`` times along axis i.")


def _repeat_layout(p, shape):
    """(axis, shape) the repeat works on: the flattened input when axis is None."""
    if p.repeats < 0:
        raise ParamError(f"repeat: parameter 'repeats' got {p.repeats}: must be >= 0")
    if p.axis is None:
        return 0, (int(np.prod(shape)) if known(shape) else 0,)
    return normalize_axis("repeat", p.axis, len(shape), shape), tuple(shape)


def _repeat_shape(p, s):
    axis, shape = _repeat_layout(p, s)
    return shape[:axis] + (shape[axis] * p.repeats,) + shape[axis + 1:]


def _split_axis(shape, axis, r):
    return shape[:axis + 1] + (r,) + shape[axis + 1:]


def _repeat_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    axis, shape = _repeat_layout(p, x.shape)
    outputs[0].reshape(_split_axis(shape, axis, p.repeats))[...] = \
        x.reshape(_split_axis(shape, axis, 1))


def _repeat_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is None:
        return
    axis, shape = _repeat_layout(p, dx.shape)
    g = out_grads[0].reshape(_split_axis(shape, axis, p.repeats))
    assign(dx, req[0], g.sum(axis=axis + 1).reshape(dx.shape))


register_unary(
    "repeat", shape_infer(_repeat_shape), _repeat_forward, _repeat_backward,
    params=[Param("repeats", "int", doc="how many times each element repeats"),
            Param("axis", "int", None, "the axis; None repeats the flattened array")],
    doc="repeat(data, repeats, axis=None): repeat each element ``repeats`` times.")


# ---- reverse ------------------------------------------------------------------------------------
def _flip_axes(p, ndim, shape=None):
    return normalize_axes("reverse", p.axis, ndim, shape)


def _reverse_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    ctx.xp.copyto(outputs[0], ctx.xp.flip(x, axis=_flip_axes(p, x.ndim)))


def _reverse_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        assign(dx, req[0], ctx.xp.flip(out_grads[0], axis=_flip_axes(p, dx.ndim)))


def _reverse_shape(p, s):
    _flip_axes(p, len(s), s)
    return s


register_unary(
    "reverse", shape_infer(_reverse_shape), _reverse_forward, _reverse_backward,
    params=[Param("axis", "shape", doc="the axes to reverse")], aliases=("flip",),
    doc="reverse(data, axis): the elements in reverse order along the given axes.")


# ---- broadcast_to, broadcast_axis, broadcast_like ----------------------------------------------
def _broadcast_check(op, src, dst, what):
    for i, (a, b) in enumerate(zip(src, dst)):
        if a not in (1, 0) and b and a != b:
            raise ShapeError(op, f"cannot broadcast data of shape {shape_str(src)} to "
                                 f"{shape_str(dst)} ({what}): axis {i} has size {a}, only size-1 "
                                 f"axes can be broadcast")
    return tuple(dst)


def _broadcast_to_shape(p, s):
    target = tuple(p.shape)
    if len(target) != len(s):
        raise ShapeError("broadcast_to", f"shape={target} has {len(target)} dims, data "
                                         f"{shape_str(s)} has {len(s)}")
    return _broadcast_check("broadcast_to", s, tuple(t or d for t, d in zip(target, s)),
                            f"shape={target}")


def _broadcast_axis_shape(p, s):
    axes = normalize_axes("broadcast_axis", p.axis, len(s), s)
    if len(axes) != len(p.size):
        raise ShapeError("broadcast_axis", f"axis={tuple(p.axis)} and size={tuple(p.size)} must "
                                           f"have the same length")
    out = list(s)
    for a, n in zip(axes, p.size):
        if s[a] not in (0, 1):
            raise ShapeError("broadcast_axis", f"axis {a} of data {shape_str(s)} has size "
                                               f"{s[a]}; only size-1 axes can be broadcast")
        out[a] = n
    return tuple(out)


def _broadcast_forward(ctx, p, inputs, aux, outputs, is_train):
    outputs[0][...] = inputs[0]


def _broadcast_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        assign(dx, req[0], reduce_to_shape(ctx.xp, out_grads[0], dx.shape))
    if len(in_grads) > 1:                       # broadcast_like: rhs only lends its shape
        assign(in_grads[1], req[1], 0)


register_unary(
    "broadcast_to", shape_infer(_broadcast_to_shape), _broadcast_forward, _broadcast_backward,
    params=[Param("shape", "shape", (), "the target shape; 0 keeps the input's dim")],
    doc="broadcast_to(data, shape): broadcast size-1 axes to ``shape``.")
register_unary(
    "broadcast_axis", shape_infer(_broadcast_axis_shape), _broadcast_forward,
    _broadcast_backward, aliases=("broadcast_axes",),
    params=[Param("axis", "shape", (), "the size-1 axes to broadcast"),
            Param("size", "shape", (), "their new sizes")],
    doc="broadcast_axis(data, axis=(), size=()): broadcast the given size-1 axes.")


def _broadcast_like_infer(p, in_shapes):
    lhs, rhs = in_shapes
    if lhs is None or rhs is None:
        return in_shapes, [None], []
    op = "broadcast_like"
    if p.lhs_axes is None and p.rhs_axes is None:
        if len(lhs) != len(rhs):
            raise ShapeError(op, f"lhs {shape_str(lhs)} and rhs {shape_str(rhs)} must have the "
                                 f"same number of dims (or give lhs_axes and rhs_axes)")
        return in_shapes, [_broadcast_check(op, lhs, rhs, f"like rhs {shape_str(rhs)}")], []
    la = (p.lhs_axes,) if isinstance(p.lhs_axes, int) else tuple(p.lhs_axes or ())
    ra = (p.rhs_axes,) if isinstance(p.rhs_axes, int) else tuple(p.rhs_axes or ())
    if len(la) != len(ra):
        raise ShapeError(op, f"lhs_axes={la} and rhs_axes={ra} must have the same length")
    out = list(lhs)
    for a, b in zip(normalize_axes(op, la, len(lhs), lhs, "lhs_axes"),
                    normalize_axes(op, ra, len(rhs), rhs, "rhs_axes")):
        out[a] = rhs[b]
    return in_shapes, [_broadcast_check(op, lhs, out, f"like rhs {shape_str(rhs)}")], []


register(OpDef(
    "broadcast_like", inputs=("lhs", "rhs"),
    params=[Param("lhs_axes", "axis", None, "the lhs axes to broadcast"),
            Param("rhs_axes", "axis", None, "the rhs axes giving their sizes")],
    infer_shape=_broadcast_like_infer, infer_type=first_type_infer("broadcast_like"),
    forward=_broadcast_forward, backward=_broadcast_backward, bwd_inputs=(), bwd_outputs=(),
    doc="broadcast_like(lhs, rhs, lhs_axes=None, rhs_axes=None): broadcast lhs to rhs's "
        "shape (or only the given axes)."))
