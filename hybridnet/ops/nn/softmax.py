"""The softmax family: ``softmax``, ``log_softmax``, ``softmin``, ``SoftmaxActivation`` and
``softmax_cross_entropy``.

``SoftmaxActivation(mode='instance')`` normalizes over the *last* axis, as MXNet 1.9 does (for
(batch, classes) data that is the whole instance); ``mode='channel'`` over axis 1. Its gradient
is the true one (MXNet 1.9's instance-mode backward reduces over axis 1 instead, which is wrong
for data with more than 2 dimensions).

All share one numerically stable kernel (``softmax_into``): subtract the max along the axis,
exponentiate, normalize; computed in float32 (float64 for float64 data) whatever the storage
dtype, like MXNet. ``temperature`` T divides the input first; ``dtype`` picks the output dtype.

``softmax(data, length, use_length=True)`` masks each slice along ``axis`` to its first
``length`` entries (``length`` has data's shape without ``axis``, integer dtype): entries beyond
get probability 0, and a slice of length 0 is all zeros. As in MXNet 1.9 only ``softmax`` takes
``length``; ``log_softmax`` and ``softmin`` accept ``use_length=False`` only.
"""
from __future__ import annotations

import numpy as np

from ...base import DTypeError, HybridNetError, ShapeError, shape_str
from ..kernels import softmax as fast
from ..params import Param
from ..registry import OpDef, assign, merge_shape, register

__all__ = ["softmax_into", "acc_dtype", "label_infer_type"]


def acc_dtype(dt) -> np.dtype:
    """The dtype softmax-like kernels compute in: float64 for float64 data, else float32."""
    return np.dtype(np.float64) if np.dtype(dt) == np.float64 else np.dtype(np.float32)


def softmax_into(xp, x, axis: int, out, temperature=None, log: bool = False, valid=None):
    """Write softmax (or log-softmax) of ``x`` along ``axis`` into ``out``.

    ``valid`` (a boolean array broadcastable to ``x``) masks entries out: they get probability 0
    (log-probability -inf), and an all-masked slice is all zeros.
    """
    if ((temperature is None or temperature == 1.0) and valid is None and x.size and
            axis % x.ndim == x.ndim - 1 and type(out) is np.ndarray and
            out.flags.c_contiguous and x.dtype == acc_dtype(x.dtype)):
        x2, out2 = x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1])
        if fast.usable(x2, out2):
            fast.softmax_rows(x2, out2, log)    # the same, row by row without temporaries
            return out
    x = x.astype(acc_dtype(x.dtype), copy=False)
    if temperature is not None and temperature != 1.0:
        x = x / temperature
    if valid is not None:
        x = xp.where(valid, x, -xp.inf)
    m = x.max(axis=axis, keepdims=True)
    if valid is not None:
        m = xp.where(xp.isfinite(m), m, 0)
    shifted = x - m
    if log:
        s = xp.exp(shifted).sum(axis=axis, keepdims=True)
        xp.subtract(shifted, xp.log(s), out=out, casting="unsafe")
        return out
    e = xp.exp(shifted, out=shifted)
    s = e.sum(axis=axis, keepdims=True)
    if valid is not None:
        s[s == 0] = 1                       # an all-masked slice stays all zeros
    xp.divide(e, s, out=out, casting="unsafe")
    return out


def _softmax_grad(xp, y, g, axis, temperature, log: bool):
    """d(input) of softmax / log_softmax given the output ``y`` and head gradient ``g``."""
    y = y.astype(acc_dtype(y.dtype), copy=False)
    if log:
        dx = g - xp.exp(y) * g.sum(axis=axis, keepdims=True)
    else:
        dx = y * (g - (g * y).sum(axis=axis, keepdims=True))
    if temperature is not None and temperature != 1.0:
        dx /= temperature
    return dx


# ---- softmax / log_softmax / softmin ----------------------------------------------------------
def _softmax_family(name: str, log: bool, negate: bool, takes_length: bool, doc: str):
    def inputs(p):
        return ["data", "length"] if p.use_length and takes_length else ["data"]

    def check_params(p):
        if p.use_length and not takes_length:
            raise HybridNetError(f"{name}: use_length=True is not supported (in MXNet 1.9 "
                                 f"only softmax takes a length input)")

    def infer_shape(p, in_shapes):
        check_params(p)
        data = in_shapes[0]
        if not p.use_length:
            return in_shapes, [data], []
        length = in_shapes[1]
        if data is not None:
            ax = p.axis % len(data) if data else 0
            want = data[:ax] + data[ax + 1:]
            length = merge_shape(name, f"length (for data {shape_str(data)} and axis={p.axis})",
                                 length, want)
        return [data, length], [data], []

    def infer_type(p, in_types):
        data = in_types[0]
        out = p.dtype if p.dtype is not None else data
        if not p.use_length:
            return [data], [out], []
        length = in_types[1]
        if length is not None and np.dtype(length).kind not in "iu":
            raise DTypeError(f"{name}: length has dtype {np.dtype(length).name}, expected an "
                             f"integer dtype (int32 or int64)")
        return [data, length if length is not None else np.dtype(np.int32)], [out], []

    def valid_mask(xp, p, x, length):
        ax = p.axis % x.ndim
        pos = xp.arange(x.shape[ax]).reshape((-1,) + (1,) * (x.ndim - ax - 1))
        return pos < xp.expand_dims(length, ax)

    def forward(ctx, p, inputs, aux, outputs, is_train):
        xp, x = ctx.xp, inputs[0]
        valid = valid_mask(xp, p, x, inputs[1]) if p.use_length else None
        if negate:
            x = -x.astype(acc_dtype(x.dtype), copy=False)
        softmax_into(xp, x, p.axis, outputs[0], p.temperature, log, valid)

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        dx = _softmax_grad(ctx.xp, outputs[0], out_grads[0], p.axis, p.temperature, log)
        assign(in_grads[0], req[0], -dx if negate else dx)
        if p.use_length:
            assign(in_grads[1], req[1], 0)

    register(OpDef(
        name,
        params=[Param("axis", "int", -1, "the axis along which to normalize"),
                Param("temperature", "float", None, "divide the input by this first"),
                Param("dtype", "dtype", None, "output dtype (default: the input's)"),
                Param("use_length", "bool", False, "mask each slice by the length input")],
        inputs=inputs, infer_shape=infer_shape, infer_type=infer_type, forward=forward,
        backward=backward, bwd_inputs=(), bwd_outputs=(0,), doc=doc))


_softmax_family("softmax", log=False, negate=False, takes_length=True,
                doc="softmax(data, length=None, axis=-1, temperature=None, dtype=None, "
                    "use_length=False): exp(x / T) / sum(exp(x / T)) along axis.")
_softmax_family("log_softmax", log=True, negate=False, takes_length=False,
                doc="log_softmax(data, axis=-1, temperature=None, dtype=None): "
                    "log(softmax(x)), computed stably.")
_softmax_family("softmin", log=False, negate=True, takes_length=False,
                doc="softmin(data, axis=-1, temperature=None, dtype=None): softmax(-x).")


# ---- SoftmaxActivation ------------------------------------------------------------------------
def _softmax_activation_axis(p):
    # MXNet 1.9: 'instance' normalizes over the last axis (all of an instance for 2-D data),
    # 'channel' over axis 1
    return -1 if p.mode == "instance" else 1


def _softmax_activation_forward(ctx, p, inputs, aux, outputs, is_train):
    softmax_into(ctx.xp, inputs[0], _softmax_activation_axis(p), outputs[0])


def _softmax_activation_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = _softmax_grad(ctx.xp, outputs[0], out_grads[0], _softmax_activation_axis(p), None,
                       False)
    assign(in_grads[0], req[0], dx)


def _softmax_activation_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if data is not None and len(data) < 2 and p.mode == "channel":
        raise ShapeError("SoftmaxActivation", f"mode='channel' needs data with a channel axis "
                                              f"(at least 2 dimensions), got {shape_str(data)}")
    return in_shapes, [data], []


register(OpDef(
    "SoftmaxActivation",
    params=[Param("mode", "str", "instance", "instance: softmax over the last axis; "
                                             "channel: softmax over axis 1",
                  choices=("channel", "instance"))],
    infer_shape=_softmax_activation_infer_shape, forward=_softmax_activation_forward,
    backward=_softmax_activation_backward, bwd_inputs=(), bwd_outputs=(0,),
    doc="SoftmaxActivation(data, mode='instance'): softmax over the last axis (instance: for "
        "(batch, classes) data, each instance) or over the channel axis 1 at every position."))


# ---- softmax_cross_entropy --------------------------------------------------------------------
def _sce_infer_shape(p, in_shapes):
    data, label = in_shapes
    if data is not None and len(data) != 2:
        raise ShapeError("softmax_cross_entropy", f"data has shape {shape_str(data)}, expected "
                                                  f"2 dimensions (batch, classes)")
    want = None if data is None else (data[0],)
    label = merge_shape("softmax_cross_entropy",
                        f"label (for data {shape_str(data)})" if data else "label", label, want)
    if label is not None and len(label) != 1:
        raise ShapeError("softmax_cross_entropy", f"label has shape {shape_str(label)}, "
                                                  f"expected (batch,)")
    return [data, label], [(1,)], []


def label_infer_type(p, in_types):
    """infer_type of (data, label) ops: the output takes data's dtype; the label keeps its own
    (integer or float class indices), defaulting to data's."""
    data, label = in_types[0], in_types[1]
    return [data, label if label is not None else data], [data], []


def _class_indices(xp, op_name, label, num_classes):
    """Integer class indices from a (float) label array; error naming a label out of range."""
    idx = label.astype(np.int64)
    bad = (idx < 0) | (idx >= num_classes)
    if bool(bad.any()):
        first = float(label.reshape(-1)[int(xp.argmax(bad.reshape(-1)))])
        raise HybridNetError(f"{op_name}: label {first:g} is out of range for {num_classes} "
                             f"classes (expected 0 <= label < {num_classes})")
    return idx


def _sce_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, label = ctx.xp, inputs[0], inputs[1]
    idx = _class_indices(xp, "softmax_cross_entropy", label, x.shape[1])
    logp = softmax_into(xp, x, 1, xp.empty(x.shape, acc_dtype(x.dtype)), log=True)
    picked = xp.take_along_axis(logp, idx[:, None], axis=1)
    outputs[0][...] = -picked.sum()


def _sce_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x, label = ctx.xp, inputs[0], inputs[1]
    grad = softmax_into(xp, x, 1, xp.empty(x.shape, acc_dtype(x.dtype)))
    idx = label.astype(np.int64)
    grad[xp.arange(x.shape[0]), idx] -= 1
    grad *= out_grads[0][0]
    assign(in_grads[0], req[0], grad)
    assign(in_grads[1], req[1], 0)


register(OpDef(
    "softmax_cross_entropy", inputs=("data", "label"), infer_shape=_sce_infer_shape,
    infer_type=label_infer_type,
    forward=_sce_forward, backward=_sce_backward, bwd_inputs=(0, 1), bwd_outputs=(),
    doc="softmax_cross_entropy(data, label): sum over the batch of -log(softmax(data)[label]);"
        " data is (batch, classes), label (batch,) of class indices. Output shape (1,)."))
