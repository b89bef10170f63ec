"""Binary elementwise operators: same-shape (``elemwise_add``, ``_plus``...), broadcasting
(``broadcast_add``...), with a scalar (``_plus_scalar``...) and ``add_n``.

One table drives all three forms: each entry gives the forward ufunc and the two partial
gradients. Broadcast gradients are summed back over the broadcast axes. As in MXNet, comparisons
and logical ops return 0/1 in the input dtype, ``mod`` by zero gives 0, ties in maximum/minimum
send the gradient to the left operand, and a scalar is cast to the array's dtype first
(``int32 [3, 4] + 1.5 == [4, 5]``).
"""
from __future__ import annotations

import numpy as np

from ..base import ShapeError, shape_str
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register, same_shape_infer

__all__ = ["broadcast_shape", "reduce_to_shape"]

_U = "unsafe"


def _mod(xp, a, b, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        xp.mod(a, b, out=out, casting=_U)
    out[...] = xp.where(b == 0, 0, out)       # MXNet: x mod 0 == 0
    return out


def _floor_div(xp, a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return xp.where(b == 0, 0, xp.floor(a / b))


def _cmp(name):
    def run(xp, a, b, out):
        return getattr(xp, name)(a, b, out=out, casting=_U)
    return run


def _ufunc2(name):
    def run(xp, a, b, out):
        return getattr(xp, name)(a, b, out=out, casting=_U)
    return run


def _power(xp, a, b, out):
    with np.errstate(invalid="ignore", divide="ignore"):
        if out.dtype.kind in "iu":
            # numpy refuses negative integer exponents; MXNet truncates the real power (3**-1 -> 0)
            return xp.power(xp.asarray(a, np.float64), b, out=out, casting=_U)
        return xp.power(a, b, out=out, casting=_U)


def _pow_grad_b(xp, a, b, y, g):
    with np.errstate(invalid="ignore", divide="ignore"):
        return g * y * xp.log(a)


# name: (forward(xp, a, b, out), dA(xp, a, b, y, g), dB(xp, a, b, y, g)) -- None for zero
_BINARY = {
    "add": (_ufunc2("add"), lambda xp, a, b, y, g: g, lambda xp, a, b, y, g: g),
    "sub": (_ufunc2("subtract"), lambda xp, a, b, y, g: g, lambda xp, a, b, y, g: -g),
    "mul": (_ufunc2("multiply"), lambda xp, a, b, y, g: g * b, lambda xp, a, b, y, g: g * a),
    "div": (_ufunc2("true_divide"), lambda xp, a, b, y, g: g / b,
            lambda xp, a, b, y, g: -g * a / (b * b)),
    "mod": (_mod, lambda xp, a, b, y, g: g, lambda xp, a, b, y, g: -g * _floor_div(xp, a, b)),
    "power": (_power, lambda xp, a, b, y, g: g * b * xp.power(a, b - 1), _pow_grad_b),
    "maximum": (_ufunc2("maximum"), lambda xp, a, b, y, g: g * (a >= b),
                lambda xp, a, b, y, g: g * (a < b)),
    "minimum": (_ufunc2("minimum"), lambda xp, a, b, y, g: g * (a <= b),
                lambda xp, a, b, y, g: g * (a > b)),
    "hypot": (_ufunc2("hypot"), lambda xp, a, b, y, g: g * a / y, lambda xp, a, b, y, g: g * b / y),
    "equal": (_cmp("equal"), None, None),
    "not_equal": (_cmp("not_equal"), None, None),
    "greater": (_cmp("greater"), None, None),
    "greater_equal": (_cmp("greater_equal"), None, None),
    "lesser": (_cmp("less"), None, None),
    "lesser_equal": (_cmp("less_equal"), None, None),
    "logical_and": (_cmp("logical_and"), None, None),
    "logical_or": (_cmp("logical_or"), None, None),
    "logical_xor": (_cmp("logical_xor"), None, None),
}

# gradients built on numpy-only helpers (_floor_div): no recordable form for create_graph
_NO_GRAD_GRAPH = {"mod", "_rmod_scalar"}

# which of (a, b, y) each gradient reads, for the memory planner
_READS = {"add": "", "sub": "", "mul": "ab", "div": "ab", "mod": "ab", "power": "aby",
          "maximum": "ab", "minimum": "ab", "hypot": "aby"}


def broadcast_shape(op: str, a, b):
    """numpy broadcasting of two shapes (MXNet pads the shorter with leading 1s)."""
    if a == b:
        return a
    if a is None or b is None:
        return None
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif x == 0 or y == 0:          # unknown dim (partial inference)
            out.append(max(x, y))
        else:
            raise ShapeError(op, f"operands with shapes {shape_str(a)} and {shape_str(b)} "
                                 f"cannot be broadcast together")
    return tuple(out)


def reduce_to_shape(xp, g, shape):
    """Sum ``g`` over the axes broadcasting added, so it has ``shape`` again."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _grad_fns(name):
    fwd, da, db = _BINARY[name]
    return fwd, da, db, _READS.get(name, "")


def _make_backward(da, db, reads, broadcast):
    if da is None:
        return ZERO_GRAD

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        xp = ctx.xp
        a, b = inputs
        y = outputs[0] if "y" in reads else None
        g = out_grads[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            if req[0] != "null":
                ga = da(xp, a, b, y, g)
                assign(in_grads[0], req[0], reduce_to_shape(xp, ga, a.shape) if broadcast else ga)
            if req[1] != "null":
                gb = db(xp, a, b, y, g)
                assign(in_grads[1], req[1], reduce_to_shape(xp, gb, b.shape) if broadcast else gb)
    return backward


def _make_grad_graph(key, da, db, broadcast):
    """The gradient as recordable NDArray operations (``F`` is mx.nd), for create_graph."""
    if da is None or key in _NO_GRAD_GRAPH:
        return None

    def grad_graph(F, p, out_grads, inputs, outputs):
        a, b = inputs
        g = out_grads[0]
        grads = [da(F, a, b, outputs[0], g), db(F, a, b, outputs[0], g)]
        return [reduce_to_shape(F, d, x.shape) for d, x in zip(grads, inputs)] if broadcast \
            else grads
    return grad_graph


# plain ufunc forwards get a one-call path (the hot eager ops: a + b, a * b)
_PLAIN_UFUNC = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "true_divide",
                "maximum": "maximum", "minimum": "minimum", "hypot": "hypot"}


def _make_forward(fwd, key=None):
    uname = _PLAIN_UFUNC.get(key)
    if uname is not None:
        npf = getattr(np, uname)

        def forward(ctx, p, inputs, aux, outputs, is_train):
            xp = ctx.xp
            (npf if xp is np else getattr(xp, uname))(inputs[0], inputs[1], out=outputs[0],
                                                      casting=_U)
        return forward

    def forward(ctx, p, inputs, aux, outputs, is_train):
        fwd(ctx.xp, inputs[0], inputs[1], outputs[0])
    return forward


def _broadcast_infer(name):
    def infer(p, in_shapes):
        a, b = in_shapes
        out = broadcast_shape(name, a, b)
        return in_shapes, [out], []
    return infer


def _bwd_reads(reads):
    return tuple(i for i, c in enumerate("ab") if c in reads), (0,) if "y" in reads else ()


# same-shape forms: elemwise_add & co. (MXNet's aliases included)
_ELEMWISE_ALIASES = {
    "add": ("elemwise_add", ("_plus", "_add", "_Plus")),
    "sub": ("elemwise_sub", ("_minus", "_sub", "_Minus")),
    "mul": ("elemwise_mul", ("_mul", "_Mul")),
    "div": ("elemwise_div", ("_div", "_Div")),
    "mod": ("_mod", ("_Mod",)),
    "power": ("_power", ("_Power",)),
    "maximum": ("_maximum", ("_Maximum",)),
    "minimum": ("_minimum", ("_Minimum",)),
    "hypot": ("_hypot", ("_Hypot",)),
    "equal": ("_equal", ()),
    "not_equal": ("_not_equal", ()),
    "greater": ("_greater", ()),
    "greater_equal": ("_greater_equal", ()),
    "lesser": ("_lesser", ()),
    "lesser_equal": ("_lesser_equal", ()),
    "logical_and": ("_logical_and", ()),
    "logical_or": ("_logical_or", ()),
    "logical_xor": ("_logical_xor", ()),
}
_BROADCAST_ALIASES = {"add": ("broadcast_plus",), "sub": ("broadcast_minus",)}

for _key in _BINARY:
    _fwd, _da, _db, _reads = _grad_fns(_key)
    _bi, _bo = _bwd_reads(_reads)
    _name, _aliases = _ELEMWISE_ALIASES[_key]
    register(OpDef(_name, inputs=("lhs", "rhs"), infer_shape=same_shape_infer(_name),
                   forward=_make_forward(_fwd, _key), backward=_make_backward(_da, _db, _reads, False),
                   grad_graph=_make_grad_graph(_key, _da, _db, False),
                   aliases=_aliases, inplace=((0, 0), (1, 0)), bwd_inputs=_bi, bwd_outputs=_bo,
                   doc=f"Elementwise {_key} of two arrays of the same shape."))
    register(OpDef(f"broadcast_{_key}", inputs=("lhs", "rhs"),
                   infer_shape=_broadcast_infer(f"broadcast_{_key}"),
                   forward=_make_forward(_fwd, _key),
                   backward=_make_backward(_da, _db, _reads, True),
                   grad_graph=_make_grad_graph(_key, _da, _db, True),
                   aliases=_BROADCAST_ALIASES.get(_key, ()), bwd_inputs=(0, 1) if _da else (),
                   bwd_outputs=_bo,
                   doc=f"Elementwise {_key} with numpy-style broadcasting."))


# ---- scalar forms -------------------------------------------------------------------------
def _rmod(xp, a, s, out):
    return _mod(xp, xp.full_like(a, s), a, out)


# name: (forward(xp, x, s, out), grad(xp, x, s, y, g) or None, reads)
_SCALAR = {
    "_plus_scalar": (lambda xp, x, s, out: xp.add(x, s, out=out, casting=_U),
                     lambda xp, x, s, y, g: g, ""),
    "_minus_scalar": (lambda xp, x, s, out: xp.subtract(x, s, out=out, casting=_U),
                      lambda xp, x, s, y, g: g, ""),
    "_rminus_scalar": (lambda xp, x, s, out: xp.subtract(s, x, out=out, casting=_U),
                       lambda xp, x, s, y, g: -g, ""),
    "_mul_scalar": (lambda xp, x, s, out: xp.multiply(x, s, out=out, casting=_U),
                    lambda xp, x, s, y, g: g * s, ""),
    "_div_scalar": (lambda xp, x, s, out: xp.true_divide(x, s, out=out, casting=_U),
                    lambda xp, x, s, y, g: g / s, ""),
    "_rdiv_scalar": (lambda xp, x, s, out: xp.true_divide(s, x, out=out, casting=_U),
                     lambda xp, x, s, y, g: -g * s / (x * x), "x"),
    "_mod_scalar": (lambda xp, x, s, out: _mod(xp, x, xp.asarray(s, x.dtype), out),
                    lambda xp, x, s, y, g: g, ""),
    "_rmod_scalar": (_rmod, lambda xp, x, s, y, g: -g * _floor_div(xp, s, x), "x"),
    "_power_scalar": (lambda xp, x, s, out: _power(xp, x, s, out),
                      lambda xp, x, s, y, g: g * s * xp.power(x, s - 1), "x"),
    "_rpower_scalar": (lambda xp, x, s, out: _power(xp, s, x, out),
                       lambda xp, x, s, y, g: g * y * np.log(s), "y"),
    "_maximum_scalar": (lambda xp, x, s, out: xp.maximum(x, s, out=out, casting=_U),
                        lambda xp, x, s, y, g: g * (x >= s), "x"),
    "_minimum_scalar": (lambda xp, x, s, out: xp.minimum(x, s, out=out, casting=_U),
                        lambda xp, x, s, y, g: g * (x <= s), "x"),
    "_hypot_scalar": (lambda xp, x, s, out: xp.hypot(x, s, out=out, casting=_U),
                      lambda xp, x, s, y, g: g * x / y, "xy"),
    "_equal_scalar": (_cmp("equal"), None, ""),
    "_not_equal_scalar": (_cmp("not_equal"), None, ""),
    "_greater_scalar": (_cmp("greater"), None, ""),
    "_greater_equal_scalar": (_cmp("greater_equal"), None, ""),
    "_lesser_scalar": (_cmp("less"), None, ""),
    "_lesser_equal_scalar": (_cmp("less_equal"), None, ""),
    "_logical_and_scalar": (_cmp("logical_and"), None, ""),
    "_logical_or_scalar": (_cmp("logical_or"), None, ""),
    "_logical_xor_scalar": (_cmp("logical_xor"), None, ""),
}
_SCALAR_ALIASES = {"_plus_scalar": ("_PlusScalar",), "_minus_scalar": ("_MinusScalar",),
                   "_rminus_scalar": ("_RMinusScalar",), "_mul_scalar": ("_MulScalar",),
                   "_div_scalar": ("_DivScalar",), "_rdiv_scalar": ("_RDivScalar",),
                   "_power_scalar": ("_PowerScalar",), "_rpower_scalar": ("_RPowerScalar",),
                   "_maximum_scalar": ("_MaximumScalar",), "_minimum_scalar": ("_MinimumScalar",)}


# scalar ops that can divide by zero or leave the real line (numpy would warn; MXNet is quiet)
_QUIET = {"_div_scalar", "_rdiv_scalar", "_mod_scalar", "_rmod_scalar", "_power_scalar",
          "_rpower_scalar"}


def _make_scalar(name, fwd, grad, reads):
    if name in _QUIET:
        def forward(ctx, p, inputs, aux, outputs, is_train):
            x = inputs[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                fwd(ctx.xp, x, x.dtype.type(p.scalar), outputs[0])
    else:
        def forward(ctx, p, inputs, aux, outputs, is_train):
            x = inputs[0]
            fwd(ctx.xp, x, x.dtype.type(p.scalar), outputs[0])

    grad_graph = None
    if grad is None:
        backward = ZERO_GRAD
    else:
        def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
            x = inputs[0]
            y = outputs[0] if "y" in reads else None
            with np.errstate(divide="ignore", invalid="ignore"):
                assign(in_grads[0], req[0], grad(ctx.xp, x, x.dtype.type(p.scalar), y,
                                                 out_grads[0]))

        if name not in _NO_GRAD_GRAPH:
            def grad_graph(F, p, out_grads, inputs, outputs):
                x = inputs[0]
                return [grad(F, x, x.dtype(p.scalar), outputs[0], out_grads[0])]
    return OpDef(name, params=[Param("scalar", "float", 1.0, "the scalar operand"),
                               Param("is_int", "bool", True, "accepted for MXNet compatibility")],
                 infer_shape=same_shape_infer(name), forward=forward, backward=backward,
                 grad_graph=grad_graph, aliases=_SCALAR_ALIASES.get(name, ()), inplace=((0, 0),),
                 bwd_inputs=(0,) if "x" in reads else (),
                 bwd_outputs=(0,) if "y" in reads else (),
                 doc=f"{name[1:].replace('_', ' ')}: the array with a scalar.")


for _name, (_fwd, _grad, _reads) in _SCALAR.items():
    register(_make_scalar(_name, _fwd, _grad, _reads))


# ---- add_n ---------------------------------------------------------------------------------
def _add_n_forward(ctx, p, inputs, aux, outputs, is_train):
    out = outputs[0]
    if len(inputs) == 1:
        ctx.xp.copyto(out, inputs[0])
        return
    ctx.xp.add(inputs[0], inputs[1], out=out)
    for x in inputs[2:]:
        out += x


def _add_n_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    for dst, r in zip(in_grads, req):
        assign(dst, r, out_grads[0])


def _add_n_infer(p, in_shapes):
    if len(in_shapes) != p.num_args:
        raise ShapeError("add_n", f"num_args={p.num_args} but {len(in_shapes)} inputs were given")
    return same_shape_infer("add_n")(p, in_shapes)


register(OpDef("add_n", variadic="num_args", infer_shape=_add_n_infer, forward=_add_n_forward,
               backward=_add_n_backward,
               grad_graph=lambda F, p, out_grads, inputs, outputs: out_grads * len(inputs),
               aliases=("ElementWiseSum", "_ElementWiseSum"),
               inplace=((0, 0),), bwd_inputs=(), bwd_outputs=(),
               doc="The elementwise sum of any number of arrays of one shape."))
