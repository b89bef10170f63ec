"""Activation layers: ``Activation`` (relu, sigmoid, tanh, softrelu, softsign) and
``LeakyReLU`` (leaky, prelu, elu, selu, gelu, rrelu).

``Activation`` reuses the kernels of the elementwise functions ``nd.relu`` / ``nd.sigmoid`` /
``nd.tanh`` / ``nd.softsign`` (ops/elemwise.py); only softrelu is new here. relu on CPU float
arrays runs the one-pass numba kernels of ops/kernels/relu.py (the layer after every
convolution: 2-3x faster than numpy's mask-and-multiply gradient).

``LeakyReLU`` follows MXNet 1.x exactly:

* ``leaky``: ``x > 0 ? x : slope * x``;
* ``prelu``: like leaky with a learnable ``gamma`` input of shape ``(C,)`` (one slope per
  channel, channel = axis 1) or ``(1,)`` (one shared slope, Gluon's default);
* ``elu``: ``x > 0 ? x : slope * (exp(x) - 1)``;
* ``selu``: ``lambda * (x > 0 ? x : alpha * (exp(x) - 1))`` with the fixed SELU constants
  (the gradient is the true derivative; MXNet 1.9's is ``lambda * (y + alpha)`` for x <= 0,
  lambda times too large an offset);
* ``gelu``: ``0.5 * x * (1 + erf(x / sqrt(2)))`` (the exact form, not the tanh approximation);
* ``rrelu``: randomized leaky ReLU. In training each element draws its own slope from
  ``U(lower_bound, upper_bound)``; in inference the slope is the mean of the bounds. It has two
  visible outputs, ``output`` and ``mask`` (the slope used for every element), as in MXNet.
"""
from __future__ import annotations

import math

from ...base import ShapeError, shape_str
from .. import elemwise
from ..kernels import relu
from ..params import Param
from ..registry import OpDef, assign, register, same_shape_infer

__all__: list = []

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_LAMBDA = 1.0507009873554804934193349852946
_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# ---- Activation -----------------------------------------------------------------------------
def _softrelu(xp, x, out):
    # log(1 + exp(x)) without overflow for large x
    return xp.logaddexp(0, x, out=out)


def _softrelu_grad(xp, x, y, g):
    return g * -xp.expm1(-y)           # d/dx log(1 + e^x) = 1 - e^-y


def _activation_kernels(act_type: str):
    """(forward(xp, x, out), gradient(xp, x, y, g)) of one act_type."""
    if act_type == "softrelu":
        return _softrelu, _softrelu_grad
    fwd, grad, _reads, _aliases, _doc = elemwise._TABLE[act_type]
    return fwd, grad


_ACT_TYPES = ("relu", "sigmoid", "tanh", "softrelu", "softsign")
_ACT_KERNELS = {t: _activation_kernels(t) for t in _ACT_TYPES}


def _activation_forward(ctx, p, inputs, aux, outputs, is_train):
    _ACT_KERNELS[p.act_type][0](ctx.xp, inputs[0], outputs[0])


def _activation_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    if req[0] == "null":
        return
    if p.act_type == "relu" and relu.usable(outputs[0], out_grads[0], in_grads[0]):
        relu.relu_backward(outputs[0], out_grads[0], in_grads[0], req[0] == "add")
        return
    grad = _ACT_KERNELS[p.act_type][1]
    assign(in_grads[0], req[0], grad(ctx.xp, inputs[0], outputs[0], out_grads[0]))


def _activation_grad_graph(F, p, out_grads, inputs, outputs):
    """The same gradient on NDArrays (``F`` is mx.nd): recordable for create_graph."""
    return [_ACT_KERNELS[p.act_type][1](F, inputs[0], outputs[0], out_grads[0])]


register(OpDef(
    "Activation",
    params=[Param("act_type", "str", doc="activation function",
                  choices=("relu", "sigmoid", "softrelu", "softsign", "tanh"))],
    infer_shape=same_shape_infer("Activation"), forward=_activation_forward,
    backward=_activation_backward, grad_graph=_activation_grad_graph, inplace=((0, 0),),
    bwd_outputs=(0,),
    # only softsign's gradient reads x; the others read y, so x may be overwritten in place
    bwd_inputs=lambda p: (0,) if p.act_type == "softsign" else (),
    doc="Activation(data, act_type): elementwise activation.\n\n"
        "relu max(x, 0); sigmoid 1/(1+exp(-x)); tanh; softrelu log(1+exp(x)); "
        "softsign x/(1+|x|)."))


# ---- LeakyReLU ------------------------------------------------------------------------------
def _leaky_inputs(p):
    return ["data", "gamma"] if p.act_type == "prelu" else ["data"]


def _leaky_outputs(p):
    return ["output", "mask"] if p.act_type == "rrelu" else ["output"]


def _leaky_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if p.act_type != "prelu":
        return in_shapes, [data] * len(_leaky_outputs(p)), []
    gamma = in_shapes[1]
    if data is not None and len(data) < 2:
        raise ShapeError("LeakyReLU", f"prelu needs data with a channel axis (at least 2 "
                                      f"dimensions, channel = axis 1), got {shape_str(data)}")
    if gamma is not None and len(gamma) != 1:
        raise ShapeError("LeakyReLU", f"gamma has shape {shape_str(gamma)}, expected (C,) or "
                                      f"(1,) -- one slope per channel or one for all")
    if data is not None and data[1] != 0:
        if gamma is None or gamma[0] == 0:
            gamma = (data[1],)
        elif gamma[0] not in (1, data[1]):
            raise ShapeError("LeakyReLU", f"gamma has shape {shape_str(gamma)}, expected "
                                          f"({data[1]},) or (1,) for data {shape_str(data)}")
    return [data, gamma], [data], []


def _channel_view(gamma, ndim):
    """gamma shaped to broadcast over axis 1 of an ``ndim``-D array."""
    return gamma.reshape((1, -1) + (1,) * (ndim - 2))


def _leaky_slope(p, inputs, outputs):
    """The slope applied where x <= 0, broadcastable to x (prelu/rrelu/leaky)."""
    if p.act_type == "prelu":
        return _channel_view(inputs[1], inputs[0].ndim)
    if p.act_type == "rrelu":
        return outputs[1]
    return p.slope


# Masked selections (np.where on a data-dependent mask) mispredict a branch per element and
# run ~10x slower than arithmetic, so the kernels below split x into max(x, 0) and min(x, 0).
def _leaky_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, out = ctx.xp, inputs[0], outputs[0]
    kind = p.act_type
    if kind == "rrelu":
        mask = outputs[1]
        if is_train:
            mask[...] = ctx.rng.uniform(p.lower_bound, p.upper_bound, size=x.shape)
        else:
            mask.fill((p.lower_bound + p.upper_bound) / 2)
    if kind == "leaky" and 0.0 <= p.slope <= 1.0:
        # for slopes in [0, 1] the leaky ReLU is max(x, slope * x): no temporaries
        xp.multiply(x, x.dtype.type(p.slope), out=out)
        xp.maximum(out, x, out=out)
    elif kind in ("leaky", "prelu", "rrelu"):
        slope = _leaky_slope(p, inputs, outputs)
        if kind == "leaky":
            slope = x.dtype.type(slope)         # a Python float would widen float32 math
        neg = xp.minimum(x, 0)
        neg *= slope
        xp.maximum(x, 0, out=out)
        out += neg                              # x > 0 ? x : slope * x
    elif kind in ("elu", "selu"):
        alpha, scale = (p.slope, 1.0) if kind == "elu" else (_SELU_ALPHA, _SELU_LAMBDA)
        neg = xp.expm1(xp.minimum(x, 0))
        neg *= x.dtype.type(alpha)
        xp.maximum(x, 0, out=out)
        out += neg
        if scale != 1.0:
            out *= x.dtype.type(scale)
    else:                                                     # gelu
        elemwise._special("erf")(xp, x * _SQRT_HALF, out)
        out += 1
        out *= x
        out *= 0.5


def _positive(xp, x):
    """1.0 where x > 0, else 0.0, in x's dtype."""
    return (x > 0).astype(x.dtype)


def _leaky_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x, g = ctx.xp, inputs[0], out_grads[0]
    kind = p.act_type
    if kind in ("leaky", "prelu", "rrelu"):
        slope = _leaky_slope(p, inputs, outputs)
        if kind == "leaky":
            slope = x.dtype.type(slope)
        pos = _positive(xp, x)
        deriv = (1 - pos) * slope                # slope where x <= 0 ...
        deriv += pos                             # ... 1 where x > 0
        deriv *= g
        assign(in_grads[0], req[0], deriv)
        if kind == "prelu" and req[1] != "null":
            contrib = g * xp.minimum(x, 0)
            axes = tuple(i for i in range(x.ndim) if i != 1 or inputs[1].shape[0] == 1)
            assign(in_grads[1], req[1], contrib.sum(axis=axes).reshape(inputs[1].shape))
        return
    if kind in ("elu", "selu"):
        alpha, scale = (p.slope, 1.0) if kind == "elu" else (_SELU_ALPHA, _SELU_LAMBDA)
        pos = _positive(xp, x)
        deriv = xp.exp(xp.minimum(x, 0))
        deriv *= x.dtype.type(alpha)
        deriv *= 1 - pos                         # alpha * exp(x) where x <= 0 ...
        deriv += pos                             # ... 1 where x > 0
        if scale != 1.0:
            deriv *= x.dtype.type(scale)
    else:                                                     # gelu
        cdf = xp.empty(x.shape, x.dtype)
        elemwise._special("erf")(xp, x * _SQRT_HALF, cdf)
        deriv = 0.5 * (1 + cdf) + x * xp.exp(-0.5 * x * x) * _INV_SQRT_2PI
    assign(in_grads[0], req[0], g * deriv)


register(OpDef(
    "LeakyReLU",
    params=[Param("act_type", "str", "leaky", "activation function",
                  choices=("elu", "gelu", "leaky", "prelu", "rrelu", "selu")),
            Param("slope", "float", 0.25, "slope of leaky/elu (init of prelu is gamma's)"),
            Param("lower_bound", "float", 0.125, "rrelu: lower bound of the random slope"),
            Param("upper_bound", "float", 0.334, "rrelu: upper bound of the random slope")],
    inputs=_leaky_inputs, outputs=_leaky_outputs, infer_shape=_leaky_infer_shape,
    forward=_leaky_forward, backward=_leaky_backward, random=True,
    doc="LeakyReLU(data, gamma=None, act_type='leaky', slope=0.25, lower_bound=0.125, "
        "upper_bound=0.334): leaky ReLU family.\n\n"
        "leaky/prelu/rrelu: x > 0 ? x : slope * x (prelu: learnable gamma per channel; "
        "rrelu: random slope in training, mean slope in inference, second output 'mask' "
        "holds the slopes); elu: x > 0 ? x : slope * (exp(x) - 1); selu; gelu (erf form)."))
