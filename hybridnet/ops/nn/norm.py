"""Normalization layers: ``BatchNorm``, ``LayerNorm``, ``InstanceNorm``, ``GroupNorm``,
``L2Normalization`` and ``LRN``.

The first four share one kernel: ``xhat = (x - mean) / sqrt(var + eps)`` over some reduction
axes, then ``xhat * gamma + beta``, and one backward (``_normalized_backward``). Statistics are
computed in float32 (float64 for float64 data) with the biased variance.

BatchNorm, as MXNet 1.x computes it:

* Training (``is_train`` and not ``use_global_stats``): normalize with the batch mean and
  biased variance over every axis but ``axis``; then update the aux states in place:
  ``moving_mean = moving_mean * momentum + mean * (1 - momentum)``, likewise ``moving_var``
  with the biased batch variance. MXNet performs this update during *backward*; hybridnet
  does it in the training forward (so a forward-only training pass also updates, and the
  numbers after forward + backward are the same).
* Inference, or ``use_global_stats=True``: normalize with ``moving_mean``/``moving_var``.
* ``fix_gamma=True`` (the default!): gamma is treated as 1 and its gradient is 0. (MXNet
  also overwrites the gamma array with 1 during backward; hybridnet leaves your array alone.)
* Outputs: ``output`` and two hidden ones made visible by ``output_mean_var=True``: ``mean``
  (the mean used) and ``var`` -- which holds the *inverse standard deviation*
  ``1 / sqrt(var + eps)``, not the variance, exactly like MXNet.
* Backward uses the batch-statistics formula unless ``use_global_stats`` (what MXNet does for
  a backward in training mode, the default of ``autograd.backward``).

LayerNorm's and GroupNorm's extra outputs are ``mean`` and ``std = sqrt(var + eps)``; GroupNorm's
gamma and beta have one value per *group* (MXNet 1.9's layout). As in MXNet, gradients that
reach the statistics outputs are ignored: backward differentiates ``output`` only.
"""
from __future__ import annotations

import numpy as np

from ...base import ShapeError, shape_str
from ..kernels import batchnorm as bn_kernels
from ..kernels import lrn as lrn_kernels
from ..params import Param
from ..registry import OpDef, assign, merge_shape, register
from .softmax import acc_dtype

__all__: list = []


# ---- shared kernels ---------------------------------------------------------------------------
def _moments(xp, x, axes):
    """Mean and biased variance of ``x`` over ``axes`` (keepdims), in the accumulation dtype."""
    xa = x.astype(acc_dtype(x.dtype), copy=False)
    mean = xa.mean(axis=axes, keepdims=True)
    centered = xa - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    return mean, var


def _normalized_backward(xp, g, x, mean, inv_std, axes, gamma_b, batch_stats: bool):
    """d/dx of ``((x - mean) * inv_std) * gamma``, and ``xhat`` for the gamma gradient.

    ``batch_stats``: mean and inv_std were computed from ``x`` over ``axes`` (so they depend
    on it); otherwise they are constants (BatchNorm with global statistics).
    """
    xhat = (x.astype(inv_std.dtype, copy=False) - mean) * inv_std
    dxhat = g * gamma_b if gamma_b is not None else g.astype(inv_std.dtype, copy=False)
    if not batch_stats:
        return dxhat * inv_std, xhat
    dx = dxhat - dxhat.mean(axis=axes, keepdims=True) - \
        xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)
    return dx * inv_std, xhat


def _param_shape(ndim, axis):
    """Shape that broadcasts a per-``axis`` vector over an ``ndim``-D array."""
    return tuple(-1 if i == axis else 1 for i in range(ndim))


def _fill_param(op, name, given, size, data):
    return merge_shape(op, f"{name} (for data {shape_str(data)})", given, (size,))


def _check_axis(op, axis, data):
    if not -len(data) <= axis < len(data):
        raise ShapeError(op, f"axis={axis} is out of range for data {shape_str(data)} with "
                             f"{len(data)} dimensions")
    return axis % len(data)


# ---- BatchNorm ----------------------------------------------------------------------------------
def _bn_outputs(p):
    return ["output", "mean", "var"] if p.output_mean_var else ["output"]


def _bn_infer_shape(p, in_shapes):
    data, gamma, beta = in_shapes
    if data is None:
        c = None
        for s in (gamma, beta):
            c = merge_shape("BatchNorm", "gamma/beta", s, c) if s is not None else c
        return [data, c, c], [None, c, c], [c, c]
    ax = _check_axis("BatchNorm", p.axis, data)
    c = data[ax]
    vec = (c,)
    gamma = _fill_param("BatchNorm", "gamma", gamma, c, data)
    beta = _fill_param("BatchNorm", "beta", beta, c, data)
    return [data, gamma, beta], [data, vec, vec], [vec, vec]


def _bn_infer_type(p, in_types):
    data = in_types[0]
    # float16 data keeps float32 parameters and statistics (MXNet's mixed-precision rule)
    param = np.dtype(np.float32) if data is not None and np.dtype(data) == np.float16 else data
    given = [t for t in in_types[1:] if t is not None]
    if param is None and given:
        param = given[0]
    return [data, param, param], [data, param, param], [param, param]


def _bn_forward(ctx, p, inputs, aux, outputs, is_train):
    xp = ctx.xp
    x, gamma, beta = inputs
    moving_mean, moving_var = aux
    out, mean_out, var_out = outputs
    acc = acc_dtype(x.dtype)
    x3 = bn_kernels.view3(x, p.axis % x.ndim)
    if is_train and not p.use_global_stats:
        mean, var = bn_kernels.moments(xp, x3, acc)
        moving_mean *= p.momentum
        moving_mean += (1 - p.momentum) * mean
        moving_var *= p.momentum
        moving_var += (1 - p.momentum) * var
    else:
        mean, var = moving_mean.astype(acc, copy=False), moving_var.astype(acc, copy=False)
    inv_std = 1.0 / xp.sqrt(var + p.eps)
    mean_out[...] = mean
    var_out[...] = inv_std
    scale = inv_std if p.fix_gamma else inv_std * gamma
    # y = x * scale + (beta - mean * scale): one pass over the data
    bn_kernels.affine(xp, x3, scale, beta - mean * scale, bn_kernels.view3(out, p.axis % x.ndim))


def _bn_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp = ctx.xp
    x, gamma = inputs[0], inputs[1]
    ax = p.axis % x.ndim
    acc = acc_dtype(x.dtype)
    mean = outputs[1].astype(acc, copy=False)
    inv_std = outputs[2].astype(acc, copy=False)
    x3, g3 = bn_kernels.view3(x, ax), bn_kernels.view3(out_grads[0], ax)
    sum_g, sum_gx = bn_kernels.grad_sums(xp, g3, x3, mean)
    if req[0] != "null":
        k = inv_std if p.fix_gamma else inv_std * gamma.astype(acc, copy=False)
        zero = xp.zeros_like(k)
        if p.use_global_stats:          # statistics are constants: dx = k * g
            b, c = zero, zero
        else:                           # d/dx through the batch mean and variance too
            count = x3.shape[0] * x3.shape[2]
            b, c = -k * inv_std * inv_std * sum_gx / count, -k * sum_g / count
        dst = in_grads[0]
        if req[0] == "write" and dst.flags.c_contiguous:
            bn_kernels.grad_input(xp, g3, x3, mean, k, b, c, bn_kernels.view3(dst, ax))
        else:
            dx = xp.empty(x.shape, dst.dtype)
            bn_kernels.grad_input(xp, g3, x3, mean, k, b, c, bn_kernels.view3(dx, ax))
            assign(dst, req[0], dx)
    if p.fix_gamma:
        assign(in_grads[1], req[1], 0)
    else:
        assign(in_grads[1], req[1], sum_gx * inv_std)       # sum(g * xhat)
    assign(in_grads[2], req[2], sum_g)


register(OpDef(
    "BatchNorm",
    params=[Param("eps", "float", 1e-3, "added to the variance"),
            Param("momentum", "float", 0.9, "momentum of the moving averages"),
            Param("fix_gamma", "bool", True, "treat gamma as 1 (and give it no gradient)"),
            Param("use_global_stats", "bool", False, "normalize with the moving statistics "
                                                     "in training too"),
            Param("output_mean_var", "bool", False, "also output mean and inverse std"),
            Param("axis", "int", 1, "the channel axis"),
            Param("cudnn_off", "bool", False, "accepted for compatibility; no effect"),
            Param("min_calib_range", "float", None, "quantization only; ignored"),
            Param("max_calib_range", "float", None, "quantization only; ignored")],
    inputs=("data", "gamma", "beta"), aux=("moving_mean", "moving_var"),
    outputs=_bn_outputs, num_outputs=3, infer_shape=_bn_infer_shape,
    infer_type=_bn_infer_type, forward=_bn_forward, backward=_bn_backward, mutates_aux=True,
    bwd_inputs=(0, 1), bwd_outputs=(1, 2),
    doc="BatchNorm(data, gamma, beta, moving_mean, moving_var, eps=1e-3, momentum=0.9, "
        "fix_gamma=True, use_global_stats=False, output_mean_var=False, axis=1, "
        "cudnn_off=False): batch normalization over every axis but `axis`; moving statistics "
        "updated in training. Note fix_gamma=True by default (gamma ignored). See "
        "hybridnet/ops/nn/norm.py for the exact rules."))


# ---- LayerNorm / InstanceNorm / GroupNorm ------------------------------------------------
class _Layout:
    """For one data shape: the view statistics are taken in, the reduction axes of that view,
    the statistics' shape there (keepdims) and as outputs, and how gamma/beta broadcast."""
    __slots__ = ("view", "axes", "stat_shape", "stat_out", "pshape")

    def __init__(self, view, axes, stat_shape, stat_out, pshape):
        self.view, self.axes, self.stat_shape = view, axes, stat_shape
        self.stat_out, self.pshape = stat_out, pshape


def _layer_layout(p, shape):
    ax = p.axis % len(shape)
    stat = tuple(1 if i == ax else d for i, d in enumerate(shape))
    return _Layout(shape, (ax,), stat, stat, _param_shape(len(shape), ax))


def _instance_layout(p, shape):
    axes = tuple(range(2, len(shape)))
    return _Layout(shape, axes, shape[:2] + (1,) * len(axes), shape[:2],
                   _param_shape(len(shape), 1))


def _group_layout(p, shape):
    g = p.num_groups
    return _Layout((shape[0], g, -1), (2,), (shape[0], g, 1), (shape[0], g), (1, g, 1))


def _affine_norm(name, layout_fn, param_size, stat_names, check, doc, params):
    """Register a normalization whose statistics come from the sample itself (no aux)."""
    def outputs(p):
        return ["output"] + stat_names if getattr(p, "output_mean_var", False) else ["output"]

    def infer_shape(p, in_shapes):
        data, gamma, beta = in_shapes
        if data is None or any(d == 0 for d in data):
            return [data, gamma, beta], [data, None, None], []
        check(p, data)
        size = param_size(p, data)
        gamma = _fill_param(name, "gamma", gamma, size, data)
        beta = _fill_param(name, "beta", beta, size, data)
        st = layout_fn(p, data).stat_out
        return [data, gamma, beta], [data, st, st], []

    def forward(ctx, p, inputs, aux, outputs, is_train):
        xp = ctx.xp
        x, gamma, beta = inputs
        lay = layout_fn(p, x.shape)
        xv = x.reshape(lay.view)
        mean, var = _moments(xp, xv, lay.axes)
        std = xp.sqrt(var + p.eps)
        y = (xv - mean) / std
        gb = gamma.reshape(lay.pshape)
        bb = beta.reshape(lay.pshape)
        outputs[0][...] = (y * gb + bb).reshape(x.shape)
        outputs[1][...] = mean.reshape(outputs[1].shape)
        outputs[2][...] = (var if name == "InstanceNorm" else std).reshape(outputs[2].shape)

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        xp = ctx.xp
        x, gamma = inputs[0], inputs[1]
        lay = layout_fn(p, x.shape)
        acc = acc_dtype(x.dtype)
        mean = outputs[1].astype(acc, copy=False).reshape(lay.stat_shape)
        spread = outputs[2].astype(acc, copy=False).reshape(lay.stat_shape)
        inv_std = 1.0 / (xp.sqrt(spread + p.eps) if name == "InstanceNorm" else spread)
        g = out_grads[0].astype(acc, copy=False).reshape(lay.view)
        gamma_b = gamma.astype(acc, copy=False).reshape(lay.pshape)
        xv = x.reshape(lay.view)
        dx, xhat = _normalized_backward(xp, g, xv, mean, inv_std, lay.axes, gamma_b, True)
        assign(in_grads[0], req[0], dx.reshape(x.shape))
        keep = set(i for i, d in enumerate(lay.pshape) if d != 1)
        red = tuple(i for i in range(g.ndim) if i not in keep)
        if req[1] != "null":
            assign(in_grads[1], req[1], (g * xhat).sum(axis=red).reshape(gamma.shape))
        if req[2] != "null":
            assign(in_grads[2], req[2], g.sum(axis=red).reshape(gamma.shape))

    register(OpDef(name, params=params, inputs=("data", "gamma", "beta"), outputs=outputs,
                   num_outputs=3, infer_shape=infer_shape, forward=forward, backward=backward,
                   bwd_inputs=(0, 1), bwd_outputs=(1, 2), doc=doc))


def _check_layer(p, data):
    _check_axis("LayerNorm", p.axis, data)


def _check_instance(p, data):
    if len(data) < 3:
        raise ShapeError("InstanceNorm", f"data has shape {shape_str(data)}, expected at least "
                                         f"3 dimensions (batch, channel, spatial...)")


def _check_group(p, data):
    if p.num_groups < 1:
        raise ShapeError("GroupNorm", f"num_groups={p.num_groups} must be at least 1")
    if len(data) < 2 or data[1] % p.num_groups:
        raise ShapeError("GroupNorm", f"data has shape {shape_str(data)}: its channels (axis "
                                      f"1) must divide into num_groups={p.num_groups} groups")


_affine_norm(
    "LayerNorm", _layer_layout, lambda p, d: d[p.axis % len(d)], ["mean", "std"], _check_layer,
    "LayerNorm(data, gamma, beta, axis=-1, eps=1e-5, output_mean_var=False): normalize each "
    "sample over `axis`; gamma/beta have data.shape[axis] entries. Extra outputs: mean, std.",
    [Param("axis", "int", -1, "the axis to normalize over"),
     Param("eps", "float", 1e-5, "added to the variance"),
     Param("output_mean_var", "bool", False, "also output mean and std")])
_affine_norm(
    "InstanceNorm", _instance_layout, lambda p, d: d[1], ["mean", "var"], _check_instance,
    "InstanceNorm(data, gamma, beta, eps=1e-3): normalize each (sample, channel) over the "
    "spatial axes; gamma/beta per channel.",
    [Param("eps", "float", 1e-3, "added to the variance")])
_affine_norm(
    "GroupNorm", _group_layout, lambda p, d: p.num_groups, ["mean", "std"], _check_group,
    "GroupNorm(data, gamma, beta, num_groups=1, eps=1e-5, output_mean_var=False): normalize "
    "each group of channels of each sample; gamma/beta per group (MXNet 1.9).",
    [Param("num_groups", "int", 1, "number of channel groups"),
     Param("eps", "float", 1e-5, "added to the variance"),
     Param("output_mean_var", "bool", False, "also output mean and std")])


# ---- L2Normalization -----------------------------------------------------------------------------
def _l2_axes(mode, ndim):
    return {"instance": tuple(range(1, ndim)), "channel": (1,),
            "spatial": tuple(range(2, ndim))}[mode]


def _l2_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if data is None:
        return in_shapes, [None, None], []
    need = 3 if p.mode == "spatial" else 2
    if len(data) < need:
        raise ShapeError("L2Normalization", f"mode='{p.mode}' needs data with at least {need} "
                                            f"dimensions, got {shape_str(data)}")
    axes = _l2_axes(p.mode, len(data))
    norm = tuple(d for i, d in enumerate(data) if i not in axes)
    return in_shapes, [data, norm], []


def _l2_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    axes = _l2_axes(p.mode, x.ndim)
    xa = x.astype(acc_dtype(x.dtype), copy=False)
    norm = xp.sqrt((xa * xa).sum(axis=axes, keepdims=True) + p.eps)
    outputs[0][...] = xa / norm
    outputs[1][...] = norm.reshape(outputs[1].shape)


def _l2_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    y, norm, g = outputs[0], outputs[1], out_grads[0]
    axes = _l2_axes(p.mode, y.ndim)
    norm = norm.reshape(tuple(1 if i in axes else d for i, d in enumerate(y.shape)))
    dx = (g - y * (g * y).sum(axis=axes, keepdims=True)) / norm
    assign(in_grads[0], req[0], dx)


register(OpDef(
    "L2Normalization",
    params=[Param("eps", "float", 1e-10, "added to the sum of squares"),
            Param("mode", "str", "instance", "normalize each instance, each position across "
                                             "channels, or each channel across positions",
                  choices=("channel", "instance", "spatial"))],
    outputs=("output",), num_outputs=2, infer_shape=_l2_infer_shape, forward=_l2_forward,
    backward=_l2_backward, bwd_inputs=(), bwd_outputs=(0, 1),
    doc="L2Normalization(data, eps=1e-10, mode='instance'): x / sqrt(sum(x^2) + eps) over "
        "all but axis 0 (instance), axis 1 (channel) or axes 2.. (spatial)."))


# ---- LRN ---------------------------------------------------------------------------------------
def _lrn_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if p.nsize < 1:
        raise ShapeError("LRN", f"nsize={p.nsize} must be at least 1")
    if data is not None and len(data) < 2:
        raise ShapeError("LRN", f"data has shape {shape_str(data)}, expected (batch, channel, "
                                f"...) with at least 2 dimensions")
    return in_shapes, [data, data], []


def _lrn_forward(ctx, p, inputs, aux, outputs, is_train):
    lrn_kernels.lrn_forward(ctx.xp, inputs[0], p.nsize, p.alpha, p.beta, p.knorm, outputs[0],
                            outputs[1])


def _lrn_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = lrn_kernels.lrn_backward(ctx.xp, inputs[0], out_grads[0], outputs[1], p.nsize,
                                  p.alpha, p.beta)
    assign(in_grads[0], req[0], dx)


register(OpDef(
    "LRN",
    params=[Param("alpha", "float", 1e-4, "scale of the sum of squares"),
            Param("beta", "float", 0.75, "exponent"),
            Param("knorm", "float", 2.0, "offset"),
            Param("nsize", "int", doc="channels in the window (odd)")],
    outputs=("output",), num_outputs=2, infer_shape=_lrn_infer_shape, forward=_lrn_forward,
    backward=_lrn_backward, bwd_inputs=(0,), bwd_outputs=(1,),
    doc="LRN(data, nsize, alpha=1e-4, beta=0.75, knorm=2): x / (knorm + alpha / nsize * "
        "sum of x^2 over nsize neighbouring channels) ^ beta."))
