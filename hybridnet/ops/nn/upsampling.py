"""UpSampling: nearest-neighbour (any number of inputs) or bilinear (a fixed-kernel
depthwise Deconvolution) upsampling of 2-D feature maps.

* ``sample_type='nearest'``: inputs ``arg0, arg1, ...`` (N, C_i, H_i, W_i). The output is
  (N, *, H_0 * scale, W_0 * scale); each input is repeated by the factor that brings it to that
  size (it must divide evenly), then the results are concatenated along the channels
  (``multi_input_mode='concat'``) or summed (``'sum'``, equal channel counts).
* ``sample_type='bilinear'``: inputs ``data`` (N, C, H, W) and ``weight`` (C, 1, k, k), with
  ``num_filter`` = C. It *is* ``Deconvolution(data, weight, kernel=k, stride=scale,
  pad=ceil((scale - 1) / 2), num_filter=C, num_group=C, no_bias=True)`` with
  ``k = 2 * scale - scale % 2`` -- the same registry entry runs it. (The weight usually comes
  from ``mx.init.Bilinear``, as in MXNet.)
"""
from __future__ import annotations

from ...base import ParamError, ShapeError, shape_str
from ..params import Param
from ..registry import OpDef, assign, get_op, register

__all__: list = []


def _deconv(p):
    """(Deconvolution's OpDef, its parameters for bilinear upsampling by p.scale)."""
    s = p.scale
    op = get_op("Deconvolution")
    k = 2 * s - s % 2
    return op, op.parse_params({"kernel": (k, k), "stride": (s, s), "pad": (s // 2, s // 2),
                                "num_filter": p.num_filter, "num_group": p.num_filter,
                                "no_bias": True})


def _inputs(p):
    if p.sample_type == "bilinear":
        return ["data", "weight"]
    return [f"arg{i}" for i in range(p.num_args)]


def _check(p):
    if p.scale <= 0:
        raise ParamError(f"UpSampling: scale={p.scale} must be positive")
    if p.sample_type == "nearest" and p.num_args <= 0:
        raise ParamError(f"UpSampling: num_args={p.num_args} must be positive")


def _check_4d(name, shape):
    if len(shape) != 4:
        raise ShapeError("UpSampling", f"input {name} has shape {shape_str(shape)}; expected 4 "
                                       f"dimensions (batch, channel, height, width)")


def _bilinear_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if data is not None:
        _check_4d("data", data)
        if data[1] and p.num_filter != data[1]:
            raise ShapeError("UpSampling", f"bilinear upsampling needs num_filter equal to the "
                                           f"channels of data {shape_str(data)}, got "
                                           f"num_filter={p.num_filter}")
    if p.num_filter <= 0:
        raise ParamError(f"UpSampling: bilinear upsampling needs num_filter (the number of "
                         f"channels), got {p.num_filter}")
    op, dp = _deconv(p)
    try:
        return op.infer_shape(dp, in_shapes)
    except ShapeError as err:
        raise ShapeError("UpSampling", f"{err.detail} (bilinear upsampling by {p.scale} is a "
                                       f"Deconvolution with kernel={dp.kernel})") from None


def _nearest_infer_shape(p, in_shapes):
    first = in_shapes[0]
    if first is None:
        return in_shapes, [None], []
    _check_4d("arg0", first)
    n, _, h, w = first
    oh, ow = h * p.scale, w * p.scale
    channels = 0
    for i, s in enumerate(in_shapes):
        if s is None:
            return in_shapes, [None], []
        _check_4d(f"arg{i}", s)
        if s[0] != n:
            raise ShapeError("UpSampling", f"input arg{i} has batch size {s[0]} (shape "
                                           f"{shape_str(s)}), expected {n} like arg0")
        if not (s[2] and s[3] and oh % s[2] == 0 and ow % s[3] == 0
                and oh // s[2] == ow // s[3]):
            raise ShapeError("UpSampling", f"input arg{i} of shape {shape_str(s)} cannot be "
                                           f"upsampled to the output size ({oh}, {ow}) by one "
                                           f"integer factor")
        if p.multi_input_mode == "sum" and s[1] != first[1]:
            raise ShapeError("UpSampling", f"multi_input_mode='sum' needs equal channel "
                                           f"counts; arg{i} has {s[1]}, arg0 has {first[1]}")
        channels += s[1]
    if p.multi_input_mode == "sum":
        channels = first[1]
    return in_shapes, [(n, channels, oh, ow)], []


def _infer_shape(p, in_shapes):
    _check(p)
    if p.sample_type == "bilinear":
        return _bilinear_infer_shape(p, in_shapes)
    return _nearest_infer_shape(p, in_shapes)


def _blocks(a, h, w):
    """(N, C, h, f, w, f) view of an (N, C, h * f, w * f) array: element [.., y, i, x, j] is
    output pixel (y * f + i, x * f + j)."""
    n, c, oh, ow = a.shape
    return a.reshape(n, c, h, oh // h, w, ow // w)


def _channel_slices(p, inputs):
    """Output channel range of every input (all of them for 'sum')."""
    start = 0
    for x in inputs:
        if p.multi_input_mode == "sum":
            yield slice(None)
        else:
            yield slice(start, start + x.shape[1])
            start += x.shape[1]


def _forward(ctx, p, inputs, aux, outputs, is_train):
    if p.sample_type == "bilinear":
        op, dp = _deconv(p)
        op.forward(ctx, dp, inputs, aux, outputs, is_train)
        return
    xp, y = ctx.xp, outputs[0]
    target = y if y.flags.c_contiguous else xp.empty(y.shape, y.dtype)
    for i, (x, chans) in enumerate(zip(inputs, _channel_slices(p, inputs))):
        block = _blocks(target[:, chans], x.shape[2], x.shape[3])
        assign(block, "add" if i and p.multi_input_mode == "sum" else "write",
               x[:, :, :, None, :, None])
    if target is not y:
        y[...] = target


def _backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    if p.sample_type == "bilinear":
        op, dp = _deconv(p)
        op.backward(ctx, dp, out_grads, inputs, outputs, aux, in_grads, req)
        return
    g = out_grads[0]
    for x, chans, dx, r in zip(inputs, _channel_slices(p, inputs), in_grads, req):
        if r != "null":
            assign(dx, r, _blocks(g[:, chans], x.shape[2], x.shape[3]).sum(axis=(3, 5)))


register(OpDef(
    "UpSampling",
    params=[Param("scale", "int", doc="upsampling factor"),
            Param("num_filter", "int", 0, "bilinear: the number of channels"),
            Param("sample_type", "str", doc="nearest or bilinear",
                  choices=("bilinear", "nearest")),
            Param("multi_input_mode", "str", "concat", "nearest with several inputs: concat "
                  "along channels or sum", choices=("concat", "sum")),
            Param("num_args", "int", doc="number of inputs (set from the call)"),
            Param("workspace", "int", 512, "accepted for compatibility")],
    inputs=_inputs, variadic="num_args", infer_shape=_infer_shape, forward=_forward,
    backward=_backward,
    doc="UpSampling(*data, scale, sample_type, num_filter=0, multi_input_mode='concat', "
        "num_args, workspace=512): nearest-neighbour or bilinear upsampling.\n\n"
        "nearest: every input is repeated to (H_0 * scale, W_0 * scale) and the results "
        "concatenated along channels (or summed). bilinear: UpSampling(data, weight, ...) is "
        "Deconvolution with kernel 2 * scale - scale % 2, stride scale, pad "
        "ceil((scale - 1) / 2) and num_group = num_filter = channels.\n\n"
        "Example: mx.nd.UpSampling(x, scale=2, sample_type='nearest')"))
