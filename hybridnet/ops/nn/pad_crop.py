"""``Pad`` (alias ``pad``) and ``Crop``.

Pad(data, mode, pad_width, constant_value=0): ``pad_width`` lists (before, after) for every
axis, flattened: ``(0, 0, 0, 0, 1, 1, 2, 2)`` pads H by 1 and W by 2 of NCHW data. Modes as
numpy's ``pad``: constant (``constant_value``), edge (repeat the border) and reflect (mirror
without repeating the border; each pad must be smaller than the axis). MXNet only accepts 4-D
and 5-D data with no padding on the first two axes; hybridnet accepts any rank and axis.
Padding is separable, so the gradient folds the padding's head gradient back onto the input
positions it copied, one axis at a time.

Crop(*data, num_args, offset=(0, 0), h_w=(0, 0), center_crop=False): crop the H, W axes of
NCHW ``data[0]`` to ``h_w`` -- or, with two inputs, to the H, W of the second ("crop like").
The window starts at ``offset`` (y, x), or is centred (rounding down) with ``center_crop``.
"""
from __future__ import annotations

from ...base import ShapeError, shape_str
from ..params import Param
from ..registry import OpDef, assign, register

__all__: list = []


# ---- Pad ------------------------------------------------------------------------------------
def _pairs(p, ndim):
    """pad_width as ((before, after), ...) per axis; ShapeError when it does not fit."""
    pw = p.pad_width
    if len(pw) != 2 * ndim:
        raise ShapeError("Pad", f"pad_width={pw} has {len(pw)} entries, expected {2 * ndim} "
                                f"(before and after for each of the {ndim} axes of data)")
    if any(v < 0 for v in pw):
        raise ShapeError("Pad", f"pad_width={pw} has a negative entry")
    return tuple((pw[2 * i], pw[2 * i + 1]) for i in range(ndim))


def _pad_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if data is None:
        return in_shapes, [None], []
    pairs = _pairs(p, len(data))
    if p.mode == "reflect":
        for axis, ((before, after), n) in enumerate(zip(pairs, data)):
            if n and max(before, after) >= n:
                raise ShapeError("Pad", f"reflect padding of axis {axis} by ({before}, "
                                        f"{after}) must be smaller than its size {n} "
                                        f"(data {shape_str(data)})")
    out = tuple(n + b + a if n else 0 for n, (b, a) in zip(data, pairs))
    return in_shapes, [out], []


def _pad_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, out = ctx.xp, inputs[0], outputs[0]
    pairs = _pairs(p, x.ndim)
    center = [slice(b, b + n) for (b, _), n in zip(pairs, x.shape)]
    if p.mode == "constant":
        out.fill(p.constant_value)
        out[tuple(center)] = x
        return
    # copy x into the middle, then fill the borders axis by axis from what is already there
    # (axes done so far span their full padded extent), writing straight into the output
    out[tuple(center)] = x
    for axis, ((before, after), n) in enumerate(zip(pairs, x.shape)):
        region = list(center)
        region[:axis] = [slice(None)] * axis

        def at(start, stop):
            return tuple(region[:axis] + [slice(start, stop)] + region[axis + 1:])
        if p.mode == "edge":
            if before:
                out[at(0, before)] = out[at(before, before + 1)]
            if after:
                out[at(before + n, None)] = out[at(before + n - 1, before + n)]
        else:       # reflect: position before-k copies k, before+n-1+k copies n-1-k
            if before:
                out[at(0, before)] = xp.flip(out[at(before + 1, 2 * before + 1)], axis)
            if after:
                out[at(before + n, None)] = xp.flip(out[at(before + n - 1 - after,
                                                              before + n - 1)], axis)


def _pad_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    if req[0] == "null":
        return
    xp, g, shape = ctx.xp, out_grads[0], in_grads[0].shape    # backward keeps no inputs
    for axis, ((before, after), n) in enumerate(zip(_pairs(p, len(shape)), shape)):
        if before == 0 and after == 0:
            continue

        def at(start, stop):
            return (slice(None),) * axis + (slice(start, stop),)
        inner = g[at(before, before + n)]
        if p.mode != "constant":
            # fold the padding's gradient back onto the input positions it copied
            inner = inner.copy()
            head, tail = g[at(0, before)], g[at(before + n, None)]
            if p.mode == "edge":
                inner[at(0, 1)] += head.sum(axis=axis, keepdims=True)
                inner[at(n - 1, n)] += tail.sum(axis=axis, keepdims=True)
            else:       # reflect: padded position before-k copies k, n-1+k copies n-1-k
                inner[at(1, before + 1)] += xp.flip(head, axis)
                inner[at(n - 1 - after, n - 1)] += xp.flip(tail, axis)
        g = inner
    assign(in_grads[0], req[0], g)


register(OpDef(
    "Pad", aliases=("pad",),
    params=[Param("mode", "str", doc="constant, edge or reflect",
                  choices=("constant", "edge", "reflect")),
            Param("pad_width", "shape", doc="(before, after) per axis, flattened"),
            Param("constant_value", "float", 0.0, "the fill value of constant mode")],
    infer_shape=_pad_infer_shape, forward=_pad_forward, backward=_pad_backward,
    bwd_inputs=(), bwd_outputs=(),
    doc="Pad(data, mode, pad_width, constant_value=0): pad every axis by pad_width's "
        "(before, after) pairs with a constant, the edge values or a reflection."))


# ---- Crop -------------------------------------------------------------------------------------
def _crop_size(p, data, like):
    """(h, w) of the crop of NCHW ``data`` (None while the crop_like shape is unknown)."""
    if len(data) != 4:
        raise ShapeError("Crop", f"data has shape {shape_str(data)}, expected 4 dimensions "
                                 f"(batch, channel, height, width)")
    if p.num_args == 2:
        if like is None:
            return None
        if len(like) < 4:
            raise ShapeError("Crop", f"crop_like input has shape {shape_str(like)}, expected "
                                     f"4 dimensions to take its height and width from")
        return like[2], like[3]
    if len(p.h_w) != 2 or min(p.h_w) < 1:
        raise ShapeError("Crop", f"h_w={p.h_w} must give a positive (height, width) when "
                                 f"cropping a single input")
    return tuple(p.h_w)


def _crop_window(p, data, h, w):
    """(y0, x0) of an (h, w) crop of NCHW ``data``; ShapeError when it does not fit."""
    big_h, big_w = data[2], data[3]
    if h > big_h or w > big_w:
        raise ShapeError("Crop", f"cannot crop ({h}, {w}) out of data {shape_str(data)}: the "
                                 f"crop is larger than the input")
    if p.center_crop:
        y0, x0 = (big_h - h) // 2, (big_w - w) // 2
    else:
        y0, x0 = p.offset
        if y0 < 0 or x0 < 0 or y0 + h > big_h or x0 + w > big_w:
            raise ShapeError("Crop", f"offset={p.offset} with crop size ({h}, {w}) runs past "
                                     f"data {shape_str(data)} (height {big_h}, width {big_w})")
    return y0, x0


def _crop_infer_shape(p, in_shapes):
    if p.num_args not in (1, 2):
        raise ShapeError("Crop", f"num_args={p.num_args}: Crop takes 1 input (with h_w) or 2 "
                                 f"(crop the first like the second)")
    data = in_shapes[0]
    like = in_shapes[1] if p.num_args == 2 else None
    if data is None or any(d == 0 for d in data):
        return in_shapes, [None], []
    size = _crop_size(p, data, like)
    if size is None or 0 in size:
        return in_shapes, [None], []
    _crop_window(p, data, *size)
    return in_shapes, [tuple(data[:2]) + tuple(size)], []


def _crop_infer_type(p, in_types):
    # the crop-like input only lends its shape: it may have any dtype
    data = in_types[0]
    return [data] + [t if t is not None else data for t in in_types[1:]], [data], []


def _crop_slices(p, data, out):
    """Where the (N, C, h, w) crop ``out`` sits in ``data`` (both shapes)."""
    h, w = out[2], out[3]
    y0, x0 = _crop_window(p, data, h, w)
    return (slice(None), slice(None), slice(y0, y0 + h), slice(x0, x0 + w))


def _crop_forward(ctx, p, inputs, aux, outputs, is_train):
    outputs[0][...] = inputs[0][_crop_slices(p, inputs[0].shape, outputs[0].shape)]


def _crop_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    if len(in_grads) > 1:
        assign(in_grads[1], req[1], 0)
    if req[0] == "null":
        return
    g = out_grads[0]
    grad = ctx.xp.zeros(in_grads[0].shape, g.dtype)      # backward keeps no inputs
    grad[_crop_slices(p, in_grads[0].shape, g.shape)] = g
    assign(in_grads[0], req[0], grad)


register(OpDef(
    "Crop", variadic="num_args",
    params=[Param("num_args", "int", doc="1 (crop to h_w) or 2 (crop like the second input)"),
            Param("offset", "shape", (0, 0), "(y, x) of the crop's top-left corner"),
            Param("h_w", "shape", (0, 0), "(height, width) of the crop with one input"),
            Param("center_crop", "bool", False, "centre the crop instead of using offset")],
    infer_shape=_crop_infer_shape, infer_type=_crop_infer_type, forward=_crop_forward,
    backward=_crop_backward,
    bwd_inputs=(), bwd_outputs=(),
    doc="Crop(*data, num_args, offset=(0, 0), h_w=(0, 0), center_crop=False): crop the "
        "height and width of NCHW data to h_w, or to the size of a second input."))
