"""``Dropout``: zero each element with probability ``p`` in training, scale the rest by
``1 / (1 - p)`` (inverted dropout, MXNet's scaling), so inference is the identity.

* ``mode='training'`` drops only when the call runs in training mode (``autograd.record()``,
  ``autograd.train_mode()``, ``Executor.forward(is_train=True)``); ``mode='always'`` drops in
  inference too.
* ``axes`` shares one mask along the given axes (variational dropout: ``axes=(0,)`` drops the
  same features for every step of a (T, N, C) sequence).
* The mask (0 or ``1/(1-p)`` per element, data's shape) is a hidden second output, so backward
  multiplies by exactly the mask forward used. When forward is the identity the mask is not
  filled; a NaN in its first element marks it, and backward passes the gradient through.
  Draws come from the device's seeded generator (``mx.random.seed``).
* ``p=1`` gives zeros (MXNet 1.9 gives NaN: 0 * inf).
"""
from __future__ import annotations

import numpy as np

from ...base import ParamError, ShapeError, shape_str
from ..params import Param
from ..registry import OpDef, assign, register

__all__: list = []


def _mask_shape(p, shape):
    """The shape masks are drawn in: data's, with 1 along the shared ``axes``."""
    ndim = len(shape)
    for a in p.axes:
        if not -ndim <= a < ndim:
            raise ShapeError("Dropout", f"axes={p.axes} has axis {a}, out of range for data "
                                        f"{shape_str(shape)} with {ndim} dimensions")
    shared = {a % ndim for a in p.axes}
    return tuple(1 if i in shared else d for i, d in enumerate(shape))


def _dropout_infer_shape(p, in_shapes):
    if not 0.0 <= p.p <= 1.0:
        raise ParamError(f"Dropout: parameter 'p' got {p.p!r}: expected a probability in [0, 1]")
    data = in_shapes[0]
    if data is not None:
        _mask_shape(p, data)
    return in_shapes, [data, data], []


def _dropout_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    out, mask = outputs
    if not (is_train or p.mode == "always") or p.p <= 0:
        out[...] = x
        # the identity needs no mask: a NaN in its first element tells backward so, and the
        # rest stays untouched (filling it would cost a pass over fresh memory per call)
        if mask.size:
            mask.reshape(-1)[0] = np.nan
        return
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    keep = ctx.rng.random(_mask_shape(p, x.shape), dtype=dtype) >= p.p
    # MXNet's p is a float32 and so is its scale: 1/(1-0.8) is 5.0000005, not 5
    one, prob = np.float32(1), np.float32(p.p)
    scale = np.float32(0) if p.p >= 1 else one / (one - prob)
    xp.multiply(keep, mask.dtype.type(scale), out=mask)
    xp.multiply(x, mask, out=out)


def _dropout_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    mask = outputs[1]
    if mask.size and bool(ctx.xp.isnan(mask.reshape(-1)[0])):
        assign(in_grads[0], req[0], out_grads[0])        # forward was the identity
    else:
        assign(in_grads[0], req[0], out_grads[0] * mask)


register(OpDef(
    "Dropout",
    params=[Param("p", "float", 0.5, "fraction of the input that gets dropped"),
            Param("mode", "str", "training", "training: drop only in training mode; "
                                             "always: drop in inference too",
                  choices=("always", "training")),
            Param("axes", "shape", (), "axes along which the mask is shared"),
            Param("cudnn_off", "bool", False, "accepted for compatibility; no effect")],
    outputs=("output",), num_outputs=2, infer_shape=_dropout_infer_shape,
    forward=_dropout_forward, backward=_dropout_backward, random=True,
    bwd_inputs=(), bwd_outputs=(1,),
    doc="Dropout(data, p=0.5, mode='training', axes=(), cudnn_off=False): in training, "
        "zero elements with probability p and scale the others by 1/(1-p); identity in "
        "inference unless mode='always'."))
