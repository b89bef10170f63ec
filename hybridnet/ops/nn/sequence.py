"""Variable-length sequence operators: ``SequenceMask``, ``SequenceLast``, ``SequenceReverse``.

Data is time-major ``(T, N, ...)`` with ``axis=0`` (the default) or batch-major ``(N, T, ...)``
with ``axis=1``. With ``use_sequence_length=True`` a second input ``sequence_length`` of shape
``(N,)`` gives each sequence's length (truncated to an integer, as MXNet casts it); without it
every sequence is T long.

* SequenceMask: steps at or beyond a sequence's length are set to ``value`` (any length is
  fine: 0 masks the whole sequence, T or more nothing).
* SequenceLast: the last valid step of each sequence (the output drops the time axis). A length
  outside ``[1, T]`` is an error (MXNet reads memory outside the array).
* SequenceReverse: the first ``length`` steps of each sequence are reversed, the rest stay. A
  length above T is an error. (MXNet supports only ``axis=0`` here; hybridnet also ``axis=1``.)

The gradient follows the data (masked steps get none); ``sequence_length`` gets zero.
"""
from __future__ import annotations

import numpy as np

from ...base import HybridNetError, ShapeError, shape_str
from ..params import Param
from ..registry import OpDef, assign, merge_shape, register

__all__: list = []


def _inputs(p):
    return ["data", "sequence_length"] if p.use_sequence_length else ["data"]


def _time_major(x, axis):
    """``x`` viewed as (T, N, ...)."""
    return x if axis == 0 else x.swapaxes(0, 1)


def _infer(name, drop_time_axis):
    def infer(p, in_shapes):
        if p.axis not in (0, 1):
            raise ShapeError(name, f"axis={p.axis}: the time axis must be 0 (T, N, ...) or 1 "
                                   f"(N, T, ...)")
        data = in_shapes[0]
        length = in_shapes[1] if p.use_sequence_length else None
        if data is not None and len(data) < 2:
            raise ShapeError(name, f"data has shape {shape_str(data)}, expected at least 2 "
                                   f"dimensions (time and batch)")
        out = data
        if data is not None:
            batch = data[1 - p.axis]
            if p.use_sequence_length:
                length = merge_shape(name, f"sequence_length (for data {shape_str(data)} and "
                                           f"axis={p.axis})", length, (batch,))
            if drop_time_axis:
                out = data[:p.axis] + data[p.axis + 1:]
        ins = [data, length] if p.use_sequence_length else [data]
        return ins, [out], []
    return infer


def _infer_type(p, in_types):
    data = in_types[0]
    if not p.use_sequence_length:
        return [data], [data], []
    return [data, in_types[1] if in_types[1] is not None else data], [data], []


def _lengths(name, p, inputs, steps, low, xp):
    """Per-sequence lengths as integers, checked to lie in [low, steps]."""
    if not p.use_sequence_length:
        return None
    raw = inputs[1]
    lengths = raw.astype(np.int64)
    bad = (lengths < low) | (lengths > steps)
    if bool(bad.any()):
        i = int(xp.argmax(bad))
        raise HybridNetError(f"{name}: sequence_length[{i}] = {float(raw[i]):g} is out of "
                             f"range; expected {low} <= length <= {steps} (the time axis)")
    return lengths


def _keep_mask(xp, lengths, steps, ndim):
    """(T, N, 1, ...) boolean: step t of sequence n is within its length."""
    keep = xp.arange(steps)[:, None] < lengths[None, :]
    return keep.reshape(keep.shape + (1,) * (ndim - 2))


def _zero_length_grad(in_grads, req):
    if len(in_grads) > 1:
        assign(in_grads[1], req[1], 0)


# ---- SequenceMask -----------------------------------------------------------------------------
def _mask_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    if not p.use_sequence_length:
        outputs[0][...] = x
        return
    t = _time_major(x, p.axis)
    # any length is meaningful here: <= 0 masks everything, >= T nothing
    keep = _keep_mask(xp, inputs[1].astype(np.int64), t.shape[0], t.ndim)
    _time_major(outputs[0], p.axis)[...] = xp.where(keep, t, xp.asarray(p.value, x.dtype))


def _mask_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, g = ctx.xp, out_grads[0]
    if p.use_sequence_length:
        gt = _time_major(g, p.axis)
        lengths = inputs[1].astype(np.int64)
        g = _time_major(gt * _keep_mask(xp, lengths, gt.shape[0], gt.ndim), p.axis)
    assign(in_grads[0], req[0], g)
    _zero_length_grad(in_grads, req)


# ---- SequenceLast -----------------------------------------------------------------------------
def _last_index(p, inputs, steps, xp):
    lengths = _lengths("SequenceLast", p, inputs, steps, 1, xp)
    if lengths is None:
        return None
    return lengths - 1


def _last_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    t = _time_major(x, p.axis)
    idx = _last_index(p, inputs, t.shape[0], xp)
    outputs[0][...] = t[-1] if idx is None else t[idx, xp.arange(t.shape[1])]


def _last_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, g = ctx.xp, out_grads[0]
    _zero_length_grad(in_grads, req)
    if req[0] == "null":
        return
    grad = xp.zeros(in_grads[0].shape, g.dtype)
    gt = _time_major(grad, p.axis)
    idx = _last_index(p, inputs, gt.shape[0], xp)
    if idx is None:
        gt[-1] = g
    else:
        gt[idx, xp.arange(gt.shape[1])] = g
    assign(in_grads[0], req[0], grad)


# ---- SequenceReverse --------------------------------------------------------------------------
def _reverse_index(xp, p, inputs, steps, batch):
    """(T, N) source step for every output step: reversed within each length."""
    lengths = _lengths("SequenceReverse", p, inputs, steps, 0, xp)
    t = xp.arange(steps)[:, None]
    if lengths is None:
        return xp.broadcast_to(steps - 1 - t, (steps, batch))
    return xp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def _reverse_apply(xp, p, inputs, src, dst):
    """dst = src permuted along time by the reverse index (the permutation is an involution)."""
    st, dt = _time_major(src, p.axis), _time_major(dst, p.axis)
    idx = _reverse_index(xp, p, inputs, st.shape[0], st.shape[1])
    dt[...] = st[idx, xp.arange(st.shape[1])[None, :]]


def _reverse_forward(ctx, p, inputs, aux, outputs, is_train):
    _reverse_apply(ctx.xp, p, inputs, inputs[0], outputs[0])


def _reverse_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    _zero_length_grad(in_grads, req)
    if req[0] == "null":
        return
    grad = ctx.xp.empty(in_grads[0].shape, out_grads[0].dtype)
    _reverse_apply(ctx.xp, p, inputs, out_grads[0], grad)
    assign(in_grads[0], req[0], grad)


def _params(with_value: bool):
    params = [Param("use_sequence_length", "bool", False, "take a sequence_length input"),
              Param("axis", "int", 0, "the time axis: 0 (T, N, ...) or 1 (N, T, ...)")]
    if with_value:
        params.insert(1, Param("value", "float", 0.0, "what masked steps are set to"))
    return params


for _name, _value, _drop, _fwd, _bwd, _doc in (
        ("SequenceMask", True, False, _mask_forward, _mask_backward,
         "SequenceMask(data, sequence_length=None, use_sequence_length=False, value=0, "
         "axis=0): set steps at or past each sequence's length to value."),
        ("SequenceLast", False, True, _last_forward, _last_backward,
         "SequenceLast(data, sequence_length=None, use_sequence_length=False, axis=0): the "
         "last valid step of each sequence; the time axis is dropped."),
        ("SequenceReverse", False, False, _reverse_forward, _reverse_backward,
         "SequenceReverse(data, sequence_length=None, use_sequence_length=False, axis=0): "
         "reverse the first length steps of each sequence.")):
    register(OpDef(_name, params=_params(_value), inputs=_inputs,
                   infer_shape=_infer(_name, _drop), infer_type=_infer_type, forward=_fwd,
                   backward=_bwd, bwd_inputs=(1,), bwd_outputs=(), doc=_doc))
