"""Fused optimizer update operators: ``sgd_update``, ``sgd_mom_update``, ``adam_update``, ...

Each one reads the weight and the gradient, updates its state arrays (momentum, moments,
fp32 master weights) in place and writes the new weight to its output -- usually the weight
itself, ``nd.sgd_update(w, g, lr=0.1, out=w)``, as ``mx.optimizer`` calls them. The states are
the operator's auxiliary inputs (MXNet marks them as mutated inputs, which the graph lists as
auxiliary states), so the engine orders every update after earlier reads of them.

Formulas (``clip(x, c)`` is a no-op when ``c < 0``; ``g' = clip(rescale_grad * grad, c)``):

* sgd_update: ``w = (1 - lr*wd) * w - lr * g'``
* sgd_mom_update: ``mom = momentum*mom - lr*wd*w - lr*g'``; ``w = w + mom``
* nag_mom_update: ``g'' = g' + wd*w``; ``mom = momentum*mom - lr*g''``;
  ``w = w + momentum*mom - lr*g''``
* mp_*: the same on the float32 ``weight32`` (updated in place); the output is its cast
* adam_update: ``g = clip(rescale_grad*grad + wd*w, c)``; ``mean = b1*mean + (1-b1)*g``;
  ``var = b2*var + (1-b2)*g^2``; ``w = w - lr * mean / (sqrt(var) + epsilon)``
* rmsprop_update: ``g`` as adam; ``n = (1-g1)*g^2 + g1*n``; ``w = w - lr*g/sqrt(n + eps)``,
  then ``clip(w, clip_weights)``
* rmspropalex_update (centered): ``n`` as rmsprop; ``gbar = (1-g1)*g + g1*gbar``;
  ``delta = g2*delta - lr*g/sqrt(n - gbar^2 + eps)``; ``w = w + delta``, clipped
* ftrl_update: ``z += g' - (sqrt(n + g'^2) - sqrt(n)) * w / lr``; ``n += g'^2``;
  ``w = (sign(z)*lamda1 - z) / ((beta + sqrt(n)) / lr + wd) * (|z| > lamda1)``
* ftml_update: ``g = clip(rescale_grad*grad + wd*w, clip_grad)``; ``v = b2*v + (1-b2)*g^2``;
  ``d_t = (1 - b1^t)/lr * (sqrt(v / (1 - b2^t)) + eps)``;
  ``z = b1*z + (1-b1)*g - (d_t - b1*d)*w``; ``d = d_t``; ``w = -z / d_t``
* signsgd_update: ``w = (1 - lr*wd)*w - lr*sign(g')``
* signum_update: ``mom = momentum*mom - (1-momentum)*(wd*w + g')``;
  ``w = (1 - lr*wd_lh)*w + lr*sign(mom)``
* lamb_update_phase1 returns ``g = mean_hat / (sqrt(var_hat) + eps) + wd*w`` (moments as adam,
  bias-corrected when ``bias_correction``); lamb_update_phase2 clamps ``r1`` to
  [lower_bound, upper_bound] and does ``w = w - lr * (r1/r2 if r1 and r2 else 1) * g``.

Every kernel is written against ``xp`` and is safe when the output is the weight itself; on
the CPU the common ones run as single-pass numba loops (``kernels/optimizer.py``) when their
arrays are contiguous float32/float64, and the ``xp`` code is the fallback (and the reference
the tests hold the loops to).
"""
from __future__ import annotations

import numpy as np

from ..base import DTypeError
from .kernels import optimizer as _fused
from .params import Param
from .registry import OpDef, merge_shape, register

__all__: list = []

_F32 = np.dtype(np.float32)
_FUSABLE = (np.dtype(np.float32), np.dtype(np.float64))


def fusable(xp, *arrays):
    """Flat views of ``arrays`` for the single-pass numba kernels, or None when they cannot
    take them (GPU arrays, float16, non-contiguous views)."""
    if xp is not np:
        return None
    for a in arrays:
        if a.dtype not in _FUSABLE or not a.flags.c_contiguous:
            return None
    return [a.reshape(-1) for a in arrays]


def _clip(xp, x, bound):
    """Clip ``x`` in place to [-bound, bound]; bound < 0 turns clipping off."""
    if bound >= 0:
        xp.clip(x, -bound, bound, out=x)
    return x


def _scaled_grad(xp, p, grad, dtype=None):
    """``clip(rescale_grad * grad, clip_gradient)`` as a new array (in ``dtype`` if given)."""
    g = xp.multiply(grad, p.rescale_grad, dtype=dtype or grad.dtype)
    return _clip(xp, g, p.clip_gradient)


def _grad_with_wd(xp, p, grad, weight, clip):
    """``clip(rescale_grad * grad + wd * weight, clip)`` as a new array."""
    g = xp.multiply(grad, p.rescale_grad, dtype=weight.dtype)
    g += p.wd * weight
    return _clip(xp, g, clip)


# ---- kernels: (xp, p, inputs, aux, out) ----------------------------------------------------
def _sgd(xp, p, inputs, aux, out):
    w, grad = inputs
    flat = fusable(xp, w, grad, out)
    if flat is not None:
        _fused.sgd(*flat, p.lr, p.wd, p.rescale_grad, p.clip_gradient)
        return
    g = _scaled_grad(xp, p, grad)
    g *= p.lr
    xp.subtract((1 - p.lr * p.wd) * w, g, out=out)


def _sgd_mom_step(xp, p, w, g, mom):
    """mom = momentum*mom - lr*wd*w - lr*g; returns nothing (w is updated by the caller)."""
    mom *= p.momentum
    mom -= (p.lr * p.wd) * w
    g *= p.lr
    mom -= g


def _sgd_mom(xp, p, inputs, aux, out):
    w, grad = inputs
    mom, = aux
    flat = fusable(xp, w, grad, mom, out)
    if flat is not None:
        _fused.sgd_mom(*flat, p.lr, p.wd, p.momentum, p.rescale_grad, p.clip_gradient)
        return
    _sgd_mom_step(xp, p, w, _scaled_grad(xp, p, grad), mom)
    xp.add(w, mom, out=out)


def _mp_sgd(xp, p, inputs, aux, out):
    grad = inputs[1]
    w32, = aux
    g = _scaled_grad(xp, p, grad, _F32)
    g *= p.lr
    w32 *= (1 - p.lr * p.wd)
    w32 -= g
    out[...] = w32


def _mp_sgd_mom(xp, p, inputs, aux, out):
    grad = inputs[1]
    mom, w32 = aux
    _sgd_mom_step(xp, p, w32, _scaled_grad(xp, p, grad, _F32), mom)
    w32 += mom
    out[...] = w32


def _nag_step(xp, p, w, g, mom):
    """The NAG step on ``w`` (new array returned); updates mom in place."""
    g += p.wd * w
    g *= p.lr
    mom *= p.momentum
    mom -= g
    step = p.momentum * mom
    step -= g
    return w + step


def _nag_mom(xp, p, inputs, aux, out):
    w, grad = inputs
    mom, = aux
    flat = fusable(xp, w, grad, mom, out)
    if flat is not None:
        _fused.nag_mom(*flat, p.lr, p.wd, p.momentum, p.rescale_grad, p.clip_gradient)
        return
    out[...] = _nag_step(xp, p, w, _scaled_grad(xp, p, grad), mom)


def _mp_nag_mom(xp, p, inputs, aux, out):
    grad = inputs[1]
    mom, w32 = aux
    w32[...] = _nag_step(xp, p, w32, _scaled_grad(xp, p, grad, _F32), mom)
    out[...] = w32


def _adam(xp, p, inputs, aux, out):
    w, grad = inputs
    mean, var = aux
    flat = fusable(xp, w, grad, mean, var, out)
    if flat is not None:
        _fused.adam(*flat, p.lr, p.beta1, p.beta2, p.epsilon, p.wd, p.rescale_grad,
                    p.clip_gradient)
        return
    g = _grad_with_wd(xp, p, grad, w, p.clip_gradient)
    mean *= p.beta1
    mean += (1 - p.beta1) * g
    var *= p.beta2
    g *= g
    g *= (1 - p.beta2)
    var += g
    step = xp.sqrt(var)
    step += p.epsilon
    xp.divide(mean, step, out=step)
    step *= p.lr
    xp.subtract(w, step, out=out)


def _rmsprop(xp, p, inputs, aux, out):
    w, grad = inputs
    n, = aux
    flat = fusable(xp, w, grad, n, out)
    if flat is not None:
        _fused.rmsprop(*flat, p.lr, p.gamma1, p.epsilon, p.wd, p.rescale_grad,
                       p.clip_gradient, p.clip_weights)
        return
    g = _grad_with_wd(xp, p, grad, w, p.clip_gradient)
    n *= p.gamma1
    n += (1 - p.gamma1) * (g * g)
    step = n + p.epsilon
    xp.sqrt(step, out=step)
    xp.divide(g, step, out=step)
    step *= p.lr
    xp.subtract(w, step, out=out)
    _clip(xp, out, p.clip_weights)


def _rmspropalex(xp, p, inputs, aux, out):
    w, grad = inputs
    n, gbar, delta = aux
    flat = fusable(xp, w, grad, n, gbar, delta, out)
    if flat is not None:
        _fused.rmspropalex(*flat, p.lr, p.gamma1, p.gamma2, p.epsilon, p.wd, p.rescale_grad,
                           p.clip_gradient, p.clip_weights)
        return
    g = _grad_with_wd(xp, p, grad, w, p.clip_gradient)
    n *= p.gamma1
    n += (1 - p.gamma1) * (g * g)
    gbar *= p.gamma1
    gbar += (1 - p.gamma1) * g
    denom = n - gbar * gbar
    denom += p.epsilon
    xp.sqrt(denom, out=denom)
    xp.divide(g, denom, out=denom)
    denom *= p.lr
    delta *= p.gamma2
    delta -= denom
    xp.add(w, delta, out=out)
    _clip(xp, out, p.clip_weights)


def _ftrl(xp, p, inputs, aux, out):
    w, grad = inputs
    z, n = aux
    g = _scaled_grad(xp, p, grad)
    g2 = g * g
    z += g - (xp.sqrt(n + g2) - xp.sqrt(n)) * w / p.lr
    n += g2
    new = (xp.sign(z) * p.lamda1 - z) / ((p.beta + xp.sqrt(n)) / p.lr + p.wd)
    new *= (xp.abs(z) > p.lamda1)
    out[...] = new


def _ftml(xp, p, inputs, aux, out):
    w, grad = inputs
    d, v, z = aux
    t = p.t
    g = _grad_with_wd(xp, p, grad, w, p.clip_grad)
    v *= p.beta2
    v += (1 - p.beta2) * (g * g)
    d_t = xp.sqrt(v / (1 - p.beta2 ** t))
    d_t += p.epsilon
    d_t *= (1 - p.beta1 ** t) / p.lr
    z *= p.beta1
    z += (1 - p.beta1) * g
    z -= (d_t - p.beta1 * d) * w
    d[...] = d_t
    xp.divide(-z, d_t, out=out)


def _signsgd(xp, p, inputs, aux, out):
    w, grad = inputs
    step = xp.sign(grad)    # rescale_grad > 0 and clipping never change a sign
    step *= p.lr
    xp.subtract((1 - p.lr * p.wd) * w, step, out=out)


def _signum(xp, p, inputs, aux, out):
    w, grad = inputs
    mom, = aux
    g = _scaled_grad(xp, p, grad)
    g += p.wd * w
    mom *= p.momentum
    g *= (1 - p.momentum)
    mom -= g
    xp.add((1 - p.lr * p.wd_lh) * w, p.lr * xp.sign(mom), out=out)


def _lamb_phase1_step(xp, p, w, g, mean, var):
    mean *= p.beta1
    mean += (1 - p.beta1) * g
    var *= p.beta2
    var += (1 - p.beta2) * (g * g)
    if p.bias_correction:
        mean_hat = mean / (1 - p.beta1 ** p.t)
        var_hat = var / (1 - p.beta2 ** p.t)
    else:
        mean_hat, var_hat = mean, var
    denom = xp.sqrt(var_hat)
    denom += p.epsilon
    return mean_hat / denom + p.wd * w


def _lamb_phase1(xp, p, inputs, aux, out):
    w, grad = inputs
    mean, var = aux
    out[...] = _lamb_phase1_step(xp, p, w, _scaled_grad(xp, p, grad), mean, var)


def _mp_lamb_phase1(xp, p, inputs, aux, out):
    grad = inputs[1]
    mean, var, w32 = aux
    out[...] = _lamb_phase1_step(xp, p, w32, _scaled_grad(xp, p, grad, _F32), mean, var)


def _lamb_ratio(p, r1, r2) -> float:
    r1, r2 = float(r1.reshape(-1)[0]), float(r2.reshape(-1)[0])
    if p.lower_bound >= 0:
        r1 = max(r1, p.lower_bound)
    if p.upper_bound >= 0:
        r1 = min(r1, p.upper_bound)
    return 1.0 if r1 == 0 or r2 == 0 else r1 / r2


def _lamb_phase2(xp, p, inputs, aux, out):
    w, g, r1, r2 = inputs
    out[...] = w - (p.lr * _lamb_ratio(p, r1, r2)) * g


def _mp_lamb_phase2(xp, p, inputs, aux, out):
    g, r1, r2 = inputs[1:]
    w32, = aux
    w32 -= (p.lr * _lamb_ratio(p, r1, r2)) * g
    out[...] = w32


# ---- registration --------------------------------------------------------------------------
def _lr():
    return Param("lr", "float", doc="learning rate")


def _common(clip_name="clip_gradient"):
    return [Param("wd", "float", 0.0, "weight decay"),
            Param("rescale_grad", "float", 1.0, "the gradient is multiplied by this first"),
            Param(clip_name, "float", -1.0, "clip the gradient to [-c, c]; c < 0: no clipping")]


_LAZY = Param("lazy_update", "bool", True,
              "update only the rows of a row_sparse gradient (dense here: every row)")


def _infer_shape(name, n_shape_args=None):
    """Every input (the first ``n_shape_args``), every aux state and the output share a shape."""
    def infer(p, in_shapes):
        n = len(in_shapes) if n_shape_args is None else n_shape_args
        shape = None
        for i, s in enumerate(in_shapes[:n]):
            shape = merge_shape(name, f"input {i}", s, shape)
        in_out = [shape] * n + list(in_shapes[n:])
        n_aux = len(_OPS[name].aux_names(p))
        return in_out, [shape], [shape] * n_aux
    return infer


def _infer_type(name, master_aux=(), out_f32=False):
    """Weight, gradient and output share a dtype; the aux states at ``master_aux`` (and the
    output when ``out_f32``) are float32. Phase 2 of LAMB takes ``g`` in its own dtype."""
    def infer(p, in_types):
        op = _OPS[name]
        names = op.input_names(p)
        n_check = 2 if names[1] == "grad" else 1
        known = next((t for t in in_types[:n_check] if t is not None), None)
        for arg, t in zip(names, in_types[:n_check]):
            if t is not None and known is not None and np.dtype(t) != np.dtype(known):
                raise DTypeError(f"{name}: {arg} has dtype {np.dtype(t).name}, expected "
                                 f"{np.dtype(known).name} like the weight")
        n_aux = len(op.aux_names(p))
        aux = [_F32 if i in master_aux else known for i in range(n_aux)]
        ins = [known] * n_check + list(in_types[n_check:])
        return ins, [_F32 if out_f32 else known], aux
    return infer


_OPS: dict = {}


def _update_op(name, kernel, aux, params, inputs=("weight", "grad"), master_aux=(),
               n_shape_args=None, out_f32=False, returns_weight=True, doc=""):
    def forward(ctx, p, ins, aux_arrays, outputs, is_train):
        kernel(ctx.xp, p, ins, aux_arrays, outputs[0])

    op = OpDef(name, params=params, inputs=inputs, aux=aux,
               infer_shape=_infer_shape(name, n_shape_args),
               infer_type=_infer_type(name, master_aux, out_f32), forward=forward, backward=None,
               mutates_aux=bool(aux), inplace=((0, 0),) if returns_weight else (), doc=doc)
    _OPS[name] = op
    register(op)


_update_op("sgd_update", _sgd, (), [_lr()] + _common() + [_LAZY],
           doc="SGD: weight = (1 - lr*wd) * weight - lr * clip(rescale_grad*grad).")
_update_op("sgd_mom_update", _sgd_mom, ("mom",),
           [_lr(), Param("momentum", "float", 0.0, "momentum")] + _common() + [_LAZY],
           doc="SGD with momentum: mom = momentum*mom - lr*(wd*weight + g); weight += mom.")
_update_op("mp_sgd_update", _mp_sgd, ("weight32",), [_lr()] + _common() + [_LAZY],
           master_aux=(0,), doc="Multi-precision SGD on the float32 master weight32.")
_update_op("mp_sgd_mom_update", _mp_sgd_mom, ("mom", "weight32"),
           [_lr(), Param("momentum", "float", 0.0, "momentum")] + _common() + [_LAZY],
           master_aux=(0, 1), doc="Multi-precision SGD with momentum (float32 mom, weight32).")
_update_op("nag_mom_update", _nag_mom, ("mom",),
           [_lr(), Param("momentum", "float", 0.0, "momentum")] + _common(),
           doc="Nesterov accelerated gradient.")
_update_op("mp_nag_mom_update", _mp_nag_mom, ("mom", "weight32"),
           [_lr(), Param("momentum", "float", 0.0, "momentum")] + _common(),
           master_aux=(0, 1), doc="Multi-precision Nesterov accelerated gradient.")
_update_op("adam_update", _adam, ("mean", "var"),
           [_lr(), Param("beta1", "float", 0.9), Param("beta2", "float", 0.999),
            Param("epsilon", "float", 1e-8)] + _common() + [_LAZY],
           doc="Adam (the caller folds the bias correction into lr).")
_update_op("rmsprop_update", _rmsprop, ("n",),
           [_lr(), Param("gamma1", "float", 0.95), Param("epsilon", "float", 1e-8)]
           + _common() + [Param("clip_weights", "float", -1.0, "clip weights to [-c, c]")],
           doc="RMSProp (Tieleman & Hinton).")
_update_op("rmspropalex_update", _rmspropalex, ("n", "g", "delta"),
           [_lr(), Param("gamma1", "float", 0.95), Param("gamma2", "float", 0.9),
            Param("epsilon", "float", 1e-8)] + _common()
           + [Param("clip_weights", "float", -1.0, "clip weights to [-c, c]")],
           doc="Centered RMSProp (Graves 2013).")
_update_op("ftrl_update", _ftrl, ("z", "n"),
           [_lr(), Param("lamda1", "float", 0.01), Param("beta", "float", 1.0)] + _common(),
           doc="FTRL-proximal.")
_update_op("ftml_update", _ftml, ("d", "v", "z"),
           [_lr(), Param("beta1", "float", 0.6), Param("beta2", "float", 0.999),
            Param("epsilon", "float", 1e-8), Param("t", "int", doc="update count (from 1)")]
           + _common("clip_grad"),
           doc="FTML (Follow the Moving Leader).")
_update_op("signsgd_update", _signsgd, (), [_lr()] + _common(),
           doc="signSGD: weight = (1 - lr*wd)*weight - lr*sign(grad).")
_update_op("signum_update", _signum, ("mom",),
           [_lr(), Param("momentum", "float", 0.0)] + _common()
           + [Param("wd_lh", "float", 0.0, "decoupled weight decay")],
           doc="Signum: sign of the momentum.")
_LAMB1 = [Param("beta1", "float", 0.9), Param("beta2", "float", 0.999),
          Param("epsilon", "float", 1e-6), Param("t", "int", doc="update count (from 1)"),
          Param("bias_correction", "bool", True), Param("wd", "float", doc="weight decay"),
          Param("rescale_grad", "float", 1.0), Param("clip_gradient", "float", -1.0)]
_LAMB2 = [_lr(), Param("lower_bound", "float", -1.0), Param("upper_bound", "float", -1.0)]
_update_op("lamb_update_phase1", _lamb_phase1, ("mean", "var"), _LAMB1, returns_weight=False,
           doc="LAMB phase 1: returns the update direction g; updates mean and var.")
_update_op("mp_lamb_update_phase1", _mp_lamb_phase1, ("mean", "var", "weight32"), _LAMB1,
           master_aux=(0, 1, 2), out_f32=True, returns_weight=False,
           doc="Multi-precision LAMB phase 1 (on weight32); g is float32.")
_update_op("lamb_update_phase2", _lamb_phase2, (), _LAMB2,
           inputs=("weight", "g", "r1", "r2"), n_shape_args=2,
           doc="LAMB phase 2: weight -= lr * r1/r2 * g (r1, r2: norms of weight and g).")
_update_op("mp_lamb_update_phase2", _mp_lamb_phase2, ("weight32",), _LAMB2,
           inputs=("weight", "g", "r1", "r2"), n_shape_args=2, master_aux=(0,),
           doc="Multi-precision LAMB phase 2 (on weight32).")
