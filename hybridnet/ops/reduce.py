"""Reductions: sum, mean, prod, max, min, nansum, nanprod, norm, argmax, argmin, argmax_channel,
moments.

MXNet's conventions: ``axis`` is None (every axis), an int or a tuple (negative counts from the
end, ``()`` also means every axis); ``exclude=True`` reduces over the axes *not* listed;
``keepdims`` keeps reduced axes as size 1; a result with no axes left has shape (1,). Integer
inputs reduce in their own type (int8 sums wrap, integer means truncate, as in MXNet); float16
accumulates in float32. max/min send the gradient to *every* position equal to the result
(ties share it in full, as MXNet does); argmax/argmin return indices in the input's dtype.

Where MXNet's gradient is NaN by accident we give the true one: prod's gradient at zeros is the
product of the other elements (MXNet divides out/x), norm's gradient at a zero vector is 0.
"""
from __future__ import annotations

import numpy as np

from ..base import ParamError, ShapeError, shape_str
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register
from .shape import first_type_infer, legacy_shape, normalize_axes, normalize_axis

__all__ = ["reduce_axes"]


def reduce_axes(op: str, shape, axis, exclude: bool = False) -> tuple:
    """The sorted axes ``op`` reduces for MXNet's ``axis``/``exclude`` on data of ``shape``."""
    ndim = len(shape)
    if axis is None or axis == ():
        return tuple(range(ndim))
    listed = normalize_axes(op, (axis,) if isinstance(axis, int) else axis, ndim, shape)
    if exclude:
        return tuple(i for i in range(ndim) if i not in listed)
    return tuple(sorted(listed))


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _out_shape(shape, axes, keepdims):
    if keepdims:
        return _kept_shape(shape, axes)
    return legacy_shape(tuple(d for i, d in enumerate(shape) if i not in axes))


def _acc(dtype):
    """The accumulation type: float16 sums in float32, everything else in its own type."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def _axes_of(p, op, shape):
    return reduce_axes(op, shape, p.axis, getattr(p, "exclude", False))


def _reduce_infer(op):
    def infer(p, in_shapes):
        s = in_shapes[0]
        if s is None:
            return in_shapes, [None], []
        return in_shapes, [_out_shape(tuple(s), _axes_of(p, op, s), p.keepdims)], []
    return infer


def _check_nonempty(op, x, axes):
    """max/min/argmax have no value over an empty axis (a 0 dim is only known at run time:
    to shape inference it means 'unknown')."""
    for a in axes:
        if x.shape[a] == 0:
            raise ShapeError(op, f"cannot take the {op} over axis {a} of data "
                                 f"{shape_str(x.shape)}: it is empty")


# ---- forward kernels: (xp, x, axes, out viewed with the reduced axes kept) --------------------
def _sum(xp, x, axes, out):
    if out.dtype == _acc(x.dtype):
        xp.sum(x, axis=axes, dtype=out.dtype, keepdims=True, out=out)
    else:
        out[...] = xp.sum(x, axis=axes, dtype=_acc(x.dtype), keepdims=True)


def _mean(xp, x, axes, out):
    if out.dtype.kind in "iub":
        _sum(xp, x, axes, out)
        # the unsafe cast back to the integer type truncates, as MXNet's integer mean does
        xp.true_divide(out, _count(x.shape, axes), out=out, casting="unsafe")
    elif out.dtype == _acc(x.dtype):
        xp.mean(x, axis=axes, dtype=out.dtype, keepdims=True, out=out)
    else:
        out[...] = xp.mean(x, axis=axes, dtype=_acc(x.dtype), keepdims=True)


def _prod(xp, x, axes, out):
    if out.dtype == _acc(x.dtype):
        xp.prod(x, axis=axes, dtype=out.dtype, keepdims=True, out=out)
    else:
        out[...] = xp.prod(x, axis=axes, dtype=_acc(x.dtype), keepdims=True)


def _nan_to(xp, x, value):
    return xp.where(xp.isnan(x), value, x) if x.dtype.kind == "f" else x


def _nansum(xp, x, axes, out):
    _sum(xp, _nan_to(xp, x, 0), axes, out)


def _nanprod(xp, x, axes, out):
    _prod(xp, _nan_to(xp, x, 1), axes, out)


def _max(xp, x, axes, out):
    _check_nonempty("max", x, axes)
    xp.amax(x, axis=axes, keepdims=True, out=out)


def _min(xp, x, axes, out):
    _check_nonempty("min", x, axes)
    xp.amin(x, axis=axes, keepdims=True, out=out)


# ---- gradients: (xp, x, y_kept, g_kept, axes) -> dx (broadcastable to x) ------------------------
def _exclusive_prod(xp, x, axes):
    """For each element, the product of the *other* elements of its reduction group.

    Computed with prefix and suffix products (exact where x has zeros, unlike y / x).
    """
    keep = [i for i in range(x.ndim) if i not in axes]
    order = keep + list(axes)
    lead = tuple(x.shape[i] for i in keep)
    n = int(np.prod([x.shape[a] for a in axes]))
    flat = x.transpose(order).reshape(lead + (n,))
    left = xp.ones_like(flat)
    right = xp.ones_like(flat)
    if n > 1:
        xp.cumprod(flat[..., :-1], axis=-1, out=left[..., 1:])
        right[..., :-1] = xp.cumprod(flat[..., :0:-1], axis=-1)[..., ::-1]
    left *= right
    back = np.argsort(order)
    return left.reshape(tuple(x.shape[i] for i in order)).transpose(back)


def _count(shape, axes) -> int:
    return max(int(np.prod([shape[a] for a in axes])), 1)


def _nanprod_grad(xp, x, g, axes):
    if x.dtype.kind != "f":
        return g * _exclusive_prod(xp, x, axes)
    nan = xp.isnan(x)
    return xp.where(nan, 0, g * _exclusive_prod(xp, xp.where(nan, 1, x), axes))


# name: (gradient(xp, x, y_kept, g_kept, axes, shape), what it reads: x and/or y)
_GRADS = {
    "sum": (lambda xp, x, y, g, axes, shape: g, ""),
    "mean": (lambda xp, x, y, g, axes, shape: g / _count(shape, axes), ""),
    "prod": (lambda xp, x, y, g, axes, shape: g * _exclusive_prod(xp, x, axes), "x"),
    "nansum": (lambda xp, x, y, g, axes, shape: xp.where(xp.isnan(x), 0, g)
               if x.dtype.kind == "f" else g, "x"),
    "nanprod": (lambda xp, x, y, g, axes, shape: _nanprod_grad(xp, x, g, axes), "x"),
    "max": (lambda xp, x, y, g, axes, shape: g * (x == y), "xy"),
    "min": (lambda xp, x, y, g, axes, shape: g * (x == y), "xy"),
}


# gradients that are NDArray arithmetic too, so autograd can record them (create_graph)
_GRAD_GRAPH = {"sum", "mean", "max", "min"}

_REDUCE_DOC = ("{name}(data, axis=None, keepdims=False, exclude=False): the {what} over the "
               "given axes (all by default; ``exclude=True`` reduces the others).")

_FAMILY = {
    "sum": (_sum, ("sum_axis",), "sum"),
    "mean": (_mean, (), "mean"),
    "prod": (_prod, (), "product"),
    "nansum": (_nansum, (), "sum, treating NaN as 0"),
    "nanprod": (_nanprod, (), "product, treating NaN as 1"),
    "max": (_max, ("max_axis",), "maximum (the gradient goes to every maximal element)"),
    "min": (_min, ("min_axis",), "minimum (the gradient goes to every minimal element)"),
}

_AXIS_PARAMS = [
    Param("axis", "axis", None, "the axis or axes to reduce; None or () reduces all"),
    Param("keepdims", "bool", False, "keep reduced axes with size 1"),
    Param("exclude", "bool", False, "reduce over the axes not in ``axis``"),
]


def _make_reduce(name, kernel, aliases, what):
    grad, reads = _GRADS[name]

    def forward(ctx, p, inputs, aux, outputs, is_train):
        x = inputs[0]
        axes = _axes_of(p, name, x.shape)
        kernel(ctx.xp, x, axes, outputs[0].reshape(_kept_shape(x.shape, axes)))

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        dx = in_grads[0]
        if dx is None:
            return
        axes = _axes_of(p, name, dx.shape)
        kept = _kept_shape(dx.shape, axes)
        x = inputs[0] if "x" in reads else None
        y = outputs[0].reshape(kept) if "y" in reads else None
        g = out_grads[0].reshape(kept)
        assign(dx, req[0], grad(ctx.xp, x, y, g, axes, dx.shape))

    grad_graph = None
    if name in _GRAD_GRAPH:
        def grad_graph(F, p, out_grads, inputs, outputs):
            x = inputs[0]
            axes = _axes_of(p, name, x.shape)
            kept = _kept_shape(x.shape, axes)
            dx = grad(F, x, outputs[0].reshape(kept), out_grads[0].reshape(kept), axes, x.shape)
            return [dx if dx.shape == x.shape else F.broadcast_to(dx, shape=x.shape)]

    return OpDef(name, params=_AXIS_PARAMS,
                 infer_shape=_reduce_infer(name),
                 forward=forward, backward=backward, aliases=aliases, grad_graph=grad_graph,
                 bwd_inputs=(0,) if "x" in reads else (),
                 bwd_outputs=(0,) if "y" in reads else (),
                 doc=_REDUCE_DOC.format(name=name, what=what))


for _name, (_kernel, _aliases, _what) in _FAMILY.items():
    register(_make_reduce(_name, _kernel, _aliases, _what))


# ---- norm -------------------------------------------------------------------------------------
def _norm_check(p):
    if p.ord not in (1, 2):
        raise ParamError(f"norm: parameter 'ord' got {p.ord}: only ord=1 and ord=2 are supported")


def _norm_infer(p, in_shapes):
    _norm_check(p)
    s = in_shapes[0]
    if s is None:
        return in_shapes, [None], []
    return in_shapes, [_out_shape(tuple(s), reduce_axes("norm", s, p.axis), p.keepdims)], []


def _norm_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    axes = reduce_axes("norm", x.shape, p.axis)
    out = outputs[0].reshape(_kept_shape(x.shape, axes))
    acc = np.dtype(np.float64) if x.dtype.kind in "iub" else _acc(x.dtype)
    if p.ord == 1:
        value = xp.sum(xp.abs(x), axis=axes, dtype=acc, keepdims=True)
    else:
        value = xp.sqrt(xp.sum(xp.square(x, dtype=acc), axis=axes, keepdims=True))
    xp.copyto(out, value, casting="unsafe")


def _norm_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is None:
        return
    xp, x = ctx.xp, inputs[0]
    axes = reduce_axes("norm", x.shape, p.axis)
    kept = _kept_shape(x.shape, axes)
    g = out_grads[0].reshape(kept)
    if p.ord == 1:
        assign(dx, req[0], g * xp.sign(x))
        return
    y = outputs[0].reshape(kept)
    safe = xp.where(y == 0, 1, y)          # a zero vector's (sub)gradient is 0, not NaN
    assign(dx, req[0], g * x / safe)


def _norm_grad_graph(F, p, out_grads, inputs, outputs):
    x = inputs[0]
    kept = _kept_shape(x.shape, reduce_axes("norm", x.shape, p.axis))
    g = out_grads[0].reshape(kept)
    if p.ord == 1:
        return [g * F.sign(x)]
    y = outputs[0].reshape(kept)
    return [g * x / (y + (y == 0))]        # a zero vector's (sub)gradient is 0, not NaN


register(OpDef(
    "norm", params=[Param("ord", "int", 2, "1 (sum of magnitudes) or 2 (Euclidean)"),
                    Param("axis", "axis", None, "the axis or axes; None: all"),
                    Param("out_dtype", "dtype", None, "the output type (default: the input's)"),
                    Param("keepdims", "bool", False, "keep reduced axes with size 1")],
    infer_shape=_norm_infer, infer_type=first_type_infer("norm", lambda p: p.out_dtype),
    forward=_norm_forward, backward=_norm_backward, grad_graph=_norm_grad_graph,
    bwd_inputs=(0,), bwd_outputs=(0,),
    doc="norm(data, ord=2, axis=None, out_dtype=None, keepdims=False): the L1 or L2 norm over "
        "the given axes (all by default)."))


# ---- argmax, argmin, argmax_channel -------------------------------------------------------------
def _arg_layout(op, p, shape):
    """(axis or None, output shape) of argmax/argmin."""
    if p.axis is None:
        return None, (1,) * len(shape) if p.keepdims else (1,)
    axis = normalize_axis(op, p.axis, len(shape), shape)
    return axis, _out_shape(tuple(shape), (axis,), p.keepdims)


def _make_arg(name, fn):
    def infer(p, in_shapes):
        s = in_shapes[0]
        return in_shapes, [None if s is None else _arg_layout(name, p, s)[1]], []

    def forward(ctx, p, inputs, aux, outputs, is_train):
        x, out = inputs[0], outputs[0]
        axis, _ = _arg_layout(name, p, x.shape)
        _check_nonempty(name, x, range(x.ndim) if axis is None else (axis,))
        out[...] = getattr(ctx.xp, fn)(x, axis=axis).reshape(out.shape)

    return OpDef(name, params=[Param("axis", "int", None, "the axis; None: the flattened array"),
                               Param("keepdims", "bool", False, "keep the axis with size 1")],
                 infer_shape=infer, forward=forward, backward=ZERO_GRAD, bwd_inputs=(),
                 bwd_outputs=(),
                 doc=f"{name}(data, axis=None, keepdims=False): index of the "
                     f"{'largest' if fn == 'argmax' else 'smallest'} element along ``axis`` "
                     f"(first one on ties), in the input's dtype.")


register(_make_arg("argmax", "argmax"))
register(_make_arg("argmin", "argmin"))


def _argmax_channel_infer(p, in_shapes):
    s = in_shapes[0]
    if s is None:
        return in_shapes, [None], []
    if len(s) < 2:
        raise ShapeError("argmax_channel", f"data must have at least 2 dims (N, C, ...), got "
                                           f"shape {shape_str(s)}")
    return in_shapes, [tuple(s[:1]) + tuple(s[2:])], []


def _argmax_channel_forward(ctx, p, inputs, aux, outputs, is_train):
    outputs[0][...] = ctx.xp.argmax(inputs[0], axis=1)


register(OpDef("argmax_channel", infer_shape=_argmax_channel_infer,
               forward=_argmax_channel_forward, backward=ZERO_GRAD, bwd_inputs=(),
               bwd_outputs=(),
               doc="argmax_channel(data): argmax over axis 1 (the channels), in data's dtype."))


# ---- moments ------------------------------------------------------------------------------------
def _moments_infer(p, in_shapes):
    s = in_shapes[0]
    if s is None:
        return in_shapes, [None, None], []
    out = _out_shape(tuple(s), reduce_axes("moments", s, p.axes), p.keepdims)
    return in_shapes, [out, out], []


def _moments_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    axes = reduce_axes("moments", x.shape, p.axes)
    kept = _kept_shape(x.shape, axes)
    mean = xp.mean(x, axis=axes, dtype=_acc(x.dtype), keepdims=True)
    dev = x - mean
    xp.copyto(outputs[0].reshape(kept), mean, casting="unsafe")
    xp.copyto(outputs[1].reshape(kept), xp.mean(dev * dev, axis=axes, keepdims=True),
              casting="unsafe")


def _moments_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is None:
        return
    xp, x = ctx.xp, inputs[0]
    axes = reduce_axes("moments", x.shape, p.axes)
    kept = _kept_shape(x.shape, axes)
    n = _count(x.shape, axes)
    total = xp.zeros(x.shape, dx.dtype)
    if out_grads[0] is not None:
        total += out_grads[0].reshape(kept) / n
    if out_grads[1] is not None:
        total += out_grads[1].reshape(kept) * (2.0 / n) * (x - outputs[0].reshape(kept))
    assign(dx, req[0], total)


register(OpDef(
    "moments", params=[Param("axes", "axis", None, "the axes; None: all (MXNet requires them)"),
                       Param("keepdims", "bool", False, "keep reduced axes with size 1")],
    outputs=("output0", "output1"), infer_shape=_moments_infer,
    infer_type=first_type_infer("moments", n_out=2), forward=_moments_forward,
    backward=_moments_backward, bwd_inputs=(0,), bwd_outputs=(0,),
    doc="moments(data, axes=None, keepdims=False): the mean and the (biased) variance over "
        "``axes``, as two outputs."))
