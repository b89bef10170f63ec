"""Unary elementwise operators: math, rounding, activations-as-functions, clip, identity.

Each row of the table is one registry entry: the forward as a function of (xp, x, out), the
gradient as a function of (xp, x, y, g) -> dx, and which of x / y the gradient reads (so the
memory planner can free the other). MXNet's quirks are kept: ``round`` rounds half away from
zero, ``rint`` rounds half down (``x - floor(x) <= 0.5``), integer inputs keep their dtype.
"""
from __future__ import annotations

import math

import numpy as np

from .kernels import relu as relu_kernels
from .kernels import special
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register, same_shape_infer

__all__: list = []

_LN2, _LN10 = math.log(2.0), math.log(10.0)
_U = "unsafe"   # integer inputs keep their dtype (MXNet truncates sqrt of int32 to int32)


def _special(name):
    """A special function on numpy (numba kernel) or cupy (cupyx.scipy.special)."""
    def run(xp, x, out):
        if xp is np:
            return getattr(special, name)(x, out)
        import cupyx.scipy.special as cs  # noqa: PLC0415
        fn = {"gammaln": cs.gammaln, "erf": cs.erf, "erfinv": cs.erfinv, "gamma": cs.gamma,
              "digamma": cs.digamma}[name]
        out[...] = fn(x)
        return out
    return run


def _digamma(xp, x):
    out = xp.empty(x.shape, np.float64)
    _special("digamma")(xp, x, out)
    return out


def _round_half_away(xp, x, out):
    xp.floor(xp.abs(x) + 0.5, out=out, casting=_U)
    xp.copysign(out, x, out=out, casting=_U)
    return out


def _rint_half_down(xp, x, out):
    fl = xp.floor(x)
    out[...] = xp.where(x - fl <= 0.5, fl, xp.ceil(x))
    return out


def _via_float(fn):
    """``fn`` computed in float64 for integer outputs, then truncated (MXNet: sigmoid of int32
    is 0, rsqrt(2) is 0), where computing in the output buffer would round too early."""
    def run(xp, x, out):
        if out.dtype.kind == "f":
            return fn(xp, x, out)
        tmp = xp.empty(out.shape, np.float64)
        fn(xp, x, tmp)
        xp.copyto(out, tmp, casting=_U)
        return out
    return run


def _relu(xp, x, out):
    if relu_kernels.usable(x, out):          # one numba pass (ops/kernels/relu.py)
        relu_kernels.relu_forward(x, out)
        return out
    return xp.maximum(x, 0, out=out, casting=_U)


def _sigmoid(xp, x, out):
    # 1 / (1 + exp(-x)) without a temporary per step
    xp.negative(x, out=out, casting=_U)
    xp.exp(out, out=out)
    out += 1
    return xp.reciprocal(out, out=out)


def _softsign(xp, x, out):
    out[...] = x / (1 + xp.abs(x))
    return out


def _rsqrt(xp, x, out):
    xp.sqrt(x, out=out, casting=_U)
    return xp.reciprocal(out, out=out)


def _rcbrt(xp, x, out):
    xp.cbrt(x, out=out, casting=_U)
    return xp.reciprocal(out, out=out)


def _ufunc(name):
    def run(xp, x, out):
        return getattr(xp, name)(x, out=out, casting=_U)
    return run


# name: (forward, gradient(xp, x, y, g) or ZERO_GRAD, grad reads ('x', 'y', 'xy' or ''),
#        aliases, doc)
_TABLE = {
    "relu": (_relu, lambda xp, x, y, g: g * (y > 0), "y", (), "Rectified linear unit: max(x, 0)."),
    "sigmoid": (_via_float(_sigmoid), lambda xp, x, y, g: g * y * (1 - y), "y", (),
                "Logistic sigmoid: 1 / (1 + exp(-x))."),
    "tanh": (_ufunc("tanh"), lambda xp, x, y, g: g * (1 - y * y), "y", (), "Hyperbolic tangent."),
    "softsign": (_softsign, lambda xp, x, y, g: g / (1 + xp.abs(x)) ** 2, "x", (),
                 "x / (1 + |x|)."),
    "exp": (_ufunc("exp"), lambda xp, x, y, g: g * y, "y", (), "Exponential."),
    "expm1": (_ufunc("expm1"), lambda xp, x, y, g: g * (y + 1), "y", (), "exp(x) - 1."),
    "log": (_ufunc("log"), lambda xp, x, y, g: g / x, "x", (), "Natural logarithm."),
    "log2": (_ufunc("log2"), lambda xp, x, y, g: g / (x * _LN2), "x", (), "Base-2 logarithm."),
    "log10": (_ufunc("log10"), lambda xp, x, y, g: g / (x * _LN10), "x", (),
              "Base-10 logarithm."),
    "log1p": (_ufunc("log1p"), lambda xp, x, y, g: g / (1 + x), "x", (), "log(1 + x)."),
    "sqrt": (_ufunc("sqrt"), lambda xp, x, y, g: g / (2 * y), "y", (), "Square root."),
    "rsqrt": (_via_float(_rsqrt), lambda xp, x, y, g: -0.5 * g * y * y * y, "y", (),
              "Reciprocal square root: 1 / sqrt(x)."),
    "cbrt": (_ufunc("cbrt"), lambda xp, x, y, g: g / (3 * y * y), "y", (), "Cube root."),
    "rcbrt": (_via_float(_rcbrt), lambda xp, x, y, g: -g * y / (3 * x), "xy", (),
              "Reciprocal cube root: 1 / cbrt(x)."),
    "square": (_ufunc("square"), lambda xp, x, y, g: 2 * x * g, "x", (), "x * x."),
    "abs": (_ufunc("abs"), lambda xp, x, y, g: g * xp.sign(x), "x", (), "Absolute value."),
    "sign": (_ufunc("sign"), ZERO_GRAD, "", (), "Sign: -1, 0 or 1."),
    "negative": (_ufunc("negative"), lambda xp, x, y, g: -g, "", (), "-x."),
    "reciprocal": (_ufunc("reciprocal"), lambda xp, x, y, g: -g / (x * x), "x", (), "1 / x."),
    "sin": (_ufunc("sin"), lambda xp, x, y, g: g * xp.cos(x), "x", (), "Sine."),
    "cos": (_ufunc("cos"), lambda xp, x, y, g: -g * xp.sin(x), "x", (), "Cosine."),
    "tan": (_ufunc("tan"), lambda xp, x, y, g: g * (1 + y * y), "y", (), "Tangent."),
    "arcsin": (_ufunc("arcsin"), lambda xp, x, y, g: g / xp.sqrt(1 - x * x), "x", (),
               "Inverse sine."),
    "arccos": (_ufunc("arccos"), lambda xp, x, y, g: -g / xp.sqrt(1 - x * x), "x", (),
               "Inverse cosine."),
    "arctan": (_ufunc("arctan"), lambda xp, x, y, g: g / (1 + x * x), "x", (),
               "Inverse tangent."),
    "sinh": (_ufunc("sinh"), lambda xp, x, y, g: g * xp.cosh(x), "x", (), "Hyperbolic sine."),
    "cosh": (_ufunc("cosh"), lambda xp, x, y, g: g * xp.sinh(x), "x", (), "Hyperbolic cosine."),
    "arcsinh": (_ufunc("arcsinh"), lambda xp, x, y, g: g / xp.sqrt(x * x + 1), "x", (),
                "Inverse hyperbolic sine."),
    "arccosh": (_ufunc("arccosh"), lambda xp, x, y, g: g / xp.sqrt(x * x - 1), "x", (),
                "Inverse hyperbolic cosine."),
    "arctanh": (_ufunc("arctanh"), lambda xp, x, y, g: g / (1 - x * x), "x", (),
                "Inverse hyperbolic tangent."),
    "degrees": (_ufunc("degrees"), lambda xp, x, y, g: g * (180.0 / math.pi), "", (),
                "Radians to degrees."),
    "radians": (_ufunc("radians"), lambda xp, x, y, g: g * (math.pi / 180.0), "", (),
                "Degrees to radians."),
    "floor": (_ufunc("floor"), ZERO_GRAD, "", (), "Largest integer <= x."),
    "ceil": (_ufunc("ceil"), ZERO_GRAD, "", (), "Smallest integer >= x."),
    "trunc": (_ufunc("trunc"), ZERO_GRAD, "", (), "Integer part (towards zero)."),
    "fix": (_ufunc("trunc"), ZERO_GRAD, "", (), "Round towards zero (same as trunc)."),
    "round": (_round_half_away, ZERO_GRAD, "", (), "Round to nearest; halves away from zero."),
    "rint": (_rint_half_down, ZERO_GRAD, "", (),
             "Round to nearest; halves go down (MXNet's rule: x - floor(x) <= 0.5 -> floor)."),
    "erf": (_special("erf"), lambda xp, x, y, g: g * (2 / math.sqrt(math.pi)) * xp.exp(-x * x),
            "x", (), "Gauss error function."),
    "erfinv": (_special("erfinv"),
               lambda xp, x, y, g: g * (math.sqrt(math.pi) / 2) * xp.exp(y * y), "y", (),
               "Inverse error function."),
    "gamma": (_special("gamma"), lambda xp, x, y, g: g * y * _digamma(xp, x), "xy", (),
              "Gamma function."),
    "gammaln": (_special("gammaln"), lambda xp, x, y, g: g * _digamma(xp, x), "x", (),
                "Log of the absolute value of the gamma function."),
    "logical_not": (lambda xp, x, out: xp.equal(x, 0, out=out, casting=_U), ZERO_GRAD, "", (),
                    "1 where x is 0, else 0 (in x's dtype)."),
    "identity": (lambda xp, x, out: xp.copyto(out, x), lambda xp, x, y, g: g, "", ("_copy",),
                 "A copy of the input."),
    "stop_gradient": (lambda xp, x, out: xp.copyto(out, x), ZERO_GRAD, "", ("BlockGrad",),
                      "The input unchanged in forward; no gradient flows back through it."),
    "zeros_like": (lambda xp, x, out: out.fill(0), ZERO_GRAD, "", (),
                   "Zeros with the input's shape and dtype."),
    "ones_like": (lambda xp, x, out: out.fill(1), ZERO_GRAD, "", (),
                  "Ones with the input's shape and dtype."),
}


# gradients that call kernels directly (digamma), so autograd cannot record them
_NO_GRAD_GRAPH = {"gamma", "gammaln"}


def _make_unary(name, fwd, grad, reads, aliases, doc):
    def forward(ctx, p, inputs, aux, outputs, is_train):
        fwd(ctx.xp, inputs[0], outputs[0])

    grad_graph = None
    if grad is ZERO_GRAD:
        backward = ZERO_GRAD
    else:
        def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
            x = inputs[0] if "x" in reads else None
            y = outputs[0] if "y" in reads else None
            assign(in_grads[0], req[0], grad(ctx.xp, x, y, out_grads[0]))

        if name not in _NO_GRAD_GRAPH:
            # the same formula on NDArrays with mx.nd as the array module: recordable
            def grad_graph(F, p, out_grads, inputs, outputs):
                return [grad(F, inputs[0], outputs[0], out_grads[0])]
    return OpDef(name, inputs=("data",), infer_shape=same_shape_infer(name), forward=forward,
                 backward=backward, aliases=aliases, inplace=((0, 0),),
                 bwd_inputs=(0,) if "x" in reads else (),
                 bwd_outputs=(0,) if "y" in reads else (), doc=doc, grad_graph=grad_graph)


for _name, (_fwd, _grad, _reads, _aliases, _doc) in _TABLE.items():
    register(_make_unary(_name, _fwd, _grad, _reads, _aliases, _doc))


# ---- unary operators with parameters ------------------------------------------------------
def _clip_forward(ctx, p, inputs, aux, outputs, is_train):
    ctx.xp.clip(inputs[0], p.a_min, p.a_max, out=outputs[0], casting=_U)


def _clip_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    x = inputs[0]
    assign(in_grads[0], req[0], out_grads[0] * ((x >= p.a_min) & (x <= p.a_max)))


def _clip_grad_graph(F, p, out_grads, inputs, outputs):
    x = inputs[0]
    return [out_grads[0] * (x >= p.a_min) * (x <= p.a_max)]


register(OpDef(
    "clip", params=[Param("a_min", "float", doc="minimum value"),
                    Param("a_max", "float", doc="maximum value")],
    infer_shape=same_shape_infer("clip"), forward=_clip_forward, backward=_clip_backward,
    grad_graph=_clip_grad_graph, inplace=((0, 0),), bwd_inputs=(0,), bwd_outputs=(),
    doc="Clip (limit) the values to [a_min, a_max]; the gradient passes where "
        "a_min <= x <= a_max."))


def _hard_sigmoid_forward(ctx, p, inputs, aux, outputs, is_train):
    out = outputs[0]
    ctx.xp.multiply(inputs[0], p.alpha, out=out, casting=_U)
    out += p.beta
    ctx.xp.clip(out, 0, 1, out=out)


def _hard_sigmoid_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    y = outputs[0]
    assign(in_grads[0], req[0], out_grads[0] * p.alpha * ((y > 0) & (y < 1)))


register(OpDef(
    "hard_sigmoid", params=[Param("alpha", "float", 0.2, "slope"),
                            Param("beta", "float", 0.5, "bias")],
    infer_shape=same_shape_infer("hard_sigmoid"), forward=_hard_sigmoid_forward,
    backward=_hard_sigmoid_backward, inplace=((0, 0),), bwd_inputs=(), bwd_outputs=(0,),
    doc="clip(alpha * x + beta, 0, 1)."))
