"""Random sampling operators: MXNet's ``_random_*``, ``_random_*_like``, ``_sample_*``,
``_sample_multinomial`` and ``_shuffle``.

Every one draws from the device's seeded generator (``ctx.rng``, see ``ops/resource.py``) and is
registered with ``random=True``, so the engine runs draws on one device in push order and
``mx.random.seed(s)`` makes them reproducible. Samplers are written once against the generator
API numpy's ``Generator`` and cupy's share.

* ``_random_X(params..., shape, ctx, dtype)``: scalar distribution parameters, no inputs.
* ``_random_X_like(data; params...)``: the shape and dtype of ``data``.
* ``_sample_X(param arrays...; shape, dtype)``: one set of parameters per element of the input
  arrays; the output has shape ``input.shape + shape``.

Parameterisations are MXNet's: negative_binomial(k, p) counts failures before the k-th success
with failure probability ``p`` (mean k(1-p)/p); generalized_negative_binomial(mu, alpha) has mean
mu and variance mu + alpha mu^2. Both are drawn as a Poisson with a gamma-distributed rate.
"""
from __future__ import annotations

import numpy as np

from ..base import DTypeError, ParamError, ShapeError, shape_str
from .kernels.scatter import add_at
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register, same_shape_infer

__all__: list = []

_FLOATS = ("float16", "float32", "float64")


class _CtxParam(Param):
    """``ctx``: a Context, or MXNet's empty string for "the current device"."""
    __slots__ = ()

    def parse(self, op, value):
        if isinstance(value, str) and value.strip() == "":
            return None
        return super().parse(op, value)


def _shape_param(default):
    return Param("shape", "shape", default, "the shape of the samples")


def _dtype_param(choices, default_doc):
    return Param("dtype", "dtype", None, f"output type, one of {', '.join(choices)} "
                                         f"({default_doc})")


# ---- samplers: (xp, rng, out, *params) write into out; params are scalars or arrays that
# broadcast against out ------------------------------------------------------------------------
def _work_dtype(out):
    return np.float64 if out.dtype == np.float64 else np.float32


def _into(out, values):
    if values is not out:
        out[...] = values
    return out


def _uniform(xp, rng, out, low, high):
    dt = _work_dtype(out)
    u = rng.random(out.shape, dtype=dt, out=out if out.dtype == dt else None)
    u *= xp.asarray(high - low, dtype=dt)
    u += xp.asarray(low, dtype=dt)
    return _into(out, u)


def _normal(xp, rng, out, loc, scale):
    dt = _work_dtype(out)
    z = rng.standard_normal(out.shape, dtype=dt, out=out if out.dtype == dt else None)
    z *= xp.asarray(scale, dtype=dt)
    z += xp.asarray(loc, dtype=dt)
    return _into(out, z)


def _exponential(xp, rng, out, lam):
    dt = _work_dtype(out)
    e = rng.standard_exponential(out.shape, dtype=dt, out=out if out.dtype == dt else None)
    e /= xp.asarray(lam, dtype=dt)
    return _into(out, e)


# Distribution parameters are numbers (the generators' fast paths) or arrays that broadcast
# against the output; ``size=out.shape`` serves both.
def _gamma(xp, rng, out, alpha, beta):
    g = rng.standard_gamma(alpha, size=out.shape)
    g *= beta
    return _into(out, g)


def _poisson(xp, rng, out, lam):
    return _into(out, rng.poisson(lam, size=out.shape))


def _gamma_poisson(xp, rng, out, shape, scale):
    """Poisson counts whose rates are gamma(shape, scale) draws; rate 0 where shape is 0."""
    if getattr(shape, "ndim", 0) == 0:
        if shape <= 0:
            out[...] = 0
            return out
        rate = rng.standard_gamma(shape, size=out.shape)
    else:
        rate = xp.where(shape > 0, rng.standard_gamma(xp.where(shape > 0, shape, 1.0),
                                                      size=out.shape), 0.0)
    rate *= scale
    return _into(out, rng.poisson(rate))


def _negative_binomial(xp, rng, out, k, p):
    if getattr(p, "ndim", 0) == 0:
        return _gamma_poisson(xp, rng, out, k, (1 - p) / p if p > 0 else 0.0)
    return _gamma_poisson(xp, rng, out, k, (1 - p) / xp.where(p > 0, p, 1.0))


def _generalized_negative_binomial(xp, rng, out, mu, alpha):
    if getattr(alpha, "ndim", 0) == 0:
        if alpha == 0:                  # no dispersion: a plain Poisson(mu)
            return _poisson(xp, rng, out, mu)
        return _gamma_poisson(xp, rng, out, 1.0 / alpha, alpha * mu)
    # alpha = 0 entries are plain Poisson(mu): give them gamma shape 0 and fill them below
    _gamma_poisson(xp, rng, out, xp.where(alpha > 0, 1.0 / xp.where(alpha > 0, alpha, 1.0), 0.0),
                   alpha * mu)
    if bool((alpha == 0).any()):
        out[...] = xp.where(alpha == 0, rng.poisson(mu, size=out.shape), out)
    return out


# ---- the distributions ------------------------------------------------------------------------
# name, MXNet's parameter names and defaults, sampler, scalar validity check (message, test)
_DISTS = {
    "uniform": ((("low", 0.0), ("high", 1.0)), _uniform,
                ("low must be <= high", lambda low, high: low <= high)),
    "normal": ((("loc", 0.0), ("scale", 1.0)), _normal,
               ("scale must be > 0", lambda loc, scale: scale > 0)),
    "exponential": ((("lam", 1.0),), _exponential, ("lam must be > 0", lambda lam: lam > 0)),
    "gamma": ((("alpha", 1.0), ("beta", 1.0)), _gamma,
              ("alpha and beta must be > 0", lambda a, b: a > 0 and b > 0)),
    "poisson": ((("lam", 1.0),), _poisson, ("lam must be >= 0", lambda lam: lam >= 0)),
    "negative_binomial": ((("k", 1), ("p", 1.0)), _negative_binomial,
                          ("k must be > 0 and p in [0, 1]", lambda k, p: k > 0 and 0 <= p <= 1)),
    "generalized_negative_binomial": ((("mu", 1.0), ("alpha", 1.0)),
                                      _generalized_negative_binomial,
                                      ("mu and alpha must be >= 0",
                                       lambda mu, alpha: mu >= 0 and alpha >= 0)),
}
# the input names of the _sample_X operators (MXNet renamed normal's loc/scale to mu/sigma)
_SAMPLE_INPUTS = {"uniform": ("low", "high"), "normal": ("mu", "sigma"), "exponential": ("lam",),
                  "gamma": ("alpha", "beta"), "poisson": ("lam",),
                  "negative_binomial": ("k", "p"),
                  "generalized_negative_binomial": ("mu", "alpha")}


def _check_dtype(op_name, dt, allowed, default):
    if dt is None:
        return np.dtype(default)
    if np.dtype(dt).name not in allowed:
        raise ParamError(f"{op_name}: parameter 'dtype' got {np.dtype(dt).name}: expected one "
                         f"of {', '.join(allowed)}")
    return np.dtype(dt)


def _check_scalars(op_name, rule, values):
    msg, ok = rule
    if not ok(*values):
        raise ParamError(f"{op_name}: {msg}, got " + ", ".join(f"{v!r}" for v in values))


def _output_shape(shape):
    """The output of a no-input sampler: ``shape``, or unknown (None) when not given."""
    if not shape:
        return None
    return tuple(shape)


def _register_scalar_op(dist, names, sampler, rule):
    op_name = f"_random_{dist}"
    params = [Param(n, "int" if isinstance(d, int) else "float", d, f"{dist} parameter")
              for n, d in names]
    params += [_shape_param(None), _CtxParam("ctx", "context", None, "device of the output"),
               _dtype_param(_FLOATS, "default float32")]
    pnames = [n for n, _ in names]

    def infer_shape(p, in_shapes):
        _check_scalars(op_name, rule, [getattr(p, n) for n in pnames])
        return [], [_output_shape(p.shape)], []

    def infer_type(p, in_types):
        return [], [_check_dtype(op_name, p.dtype, _FLOATS, np.float32)], []

    def forward(ctx, p, inputs, aux, outputs, is_train):
        sampler(ctx.xp, ctx.rng, outputs[0], *[getattr(p, n) for n in pnames])

    aliases = [f"random_{dist}"] + ([dist] if dist in ("uniform", "normal") else [])
    register(OpDef(op_name, params=params, inputs=(), infer_shape=infer_shape,
                   infer_type=infer_type, forward=forward, random=True, aliases=aliases,
                   doc=f"Draw samples from a {dist} distribution "
                       f"({', '.join(pnames)}) of the given shape."))

    def like_infer_shape(p, in_shapes):
        _check_scalars(f"{op_name}_like", rule, [getattr(p, n) for n in pnames])
        return same_shape_infer(f"{op_name}_like")(p, in_shapes)

    register(OpDef(f"{op_name}_like", params=params[:len(names)], inputs=("data",),
                   infer_shape=like_infer_shape, forward=forward, backward=ZERO_GRAD,
                   random=True, bwd_inputs=(), bwd_outputs=(),
                   doc=f"Draw {dist} samples with the shape and dtype of ``data``."))


def _register_sample_op(dist, sampler):
    op_name = f"_sample_{dist}"
    inputs = _SAMPLE_INPUTS[dist]

    def infer_shape(p, in_shapes):
        known = None
        for name, s in zip(inputs, in_shapes):
            if s is None:
                continue
            if known is not None and tuple(s) != known:
                raise ShapeError(op_name, f"{name} has shape {shape_str(s)}, expected "
                                          f"{shape_str(known)} like {inputs[0]}")
            known = tuple(s)
        out = None if known is None else known + tuple(p.shape)
        return [known] * len(inputs), [out], []

    def infer_type(p, in_types):
        return list(in_types), [_check_dtype(op_name, p.dtype, _FLOATS, np.float32)], []

    def forward(ctx, p, inputs_, aux, outputs, is_train):
        xp, out = ctx.xp, outputs[0]
        tail = (None,) * len(p.shape)
        params = [x[(Ellipsis,) + tail].astype(np.float64) for x in inputs_]
        rule_msg, _ = _DISTS[dist][2]
        if not _valid_arrays(xp, dist, params):
            raise ValueError(f"{op_name}: {rule_msg} for every element of the parameter arrays")
        sampler(xp, ctx.rng, out, *params)

    register(OpDef(op_name, params=[_shape_param(()), _dtype_param(_FLOATS, "default float32")],
                   inputs=inputs, infer_shape=infer_shape, infer_type=infer_type,
                   forward=forward, backward=ZERO_GRAD, random=True, bwd_inputs=(),
                   bwd_outputs=(), aliases=[f"sample_{dist}"],
                   doc=f"Draw {dist} samples, one set of parameters per element of "
                       f"{', '.join(inputs)}; output shape = {inputs[0]}.shape + shape."))


def _valid_arrays(xp, dist, params):
    checks = {
        "uniform": lambda low, high: (low <= high).all(),
        "normal": lambda mu, sigma: (sigma > 0).all(),
        "exponential": lambda lam: (lam > 0).all(),
        "gamma": lambda a, b: ((a > 0) & (b > 0)).all(),
        "poisson": lambda lam: (lam >= 0).all(),
        "negative_binomial": lambda k, p: ((k > 0) & (p >= 0) & (p <= 1)).all(),
        "generalized_negative_binomial": lambda mu, a: ((mu >= 0) & (a >= 0)).all(),
    }
    return bool(checks[dist](*params))


for _dist, (_names, _sampler, _rule) in _DISTS.items():
    _register_scalar_op(_dist, _names, _sampler, _rule)
    _register_sample_op(_dist, _sampler)


# ---- randint ------------------------------------------------------------------------------------
_INTS = ("int32", "int64")


def _randint_infer_shape(p, in_shapes):
    if not p.low < p.high:
        raise ParamError(f"_random_randint: low must be < high, got low={p.low}, high={p.high}")
    return [], [_output_shape(p.shape)], []


def _randint_infer_type(p, in_types):
    dt = _check_dtype("_random_randint", p.dtype, _INTS, np.int32)
    info = np.iinfo(dt)
    if p.low < info.min or p.high - 1 > info.max:
        raise ParamError(f"_random_randint: [{p.low}, {p.high}) does not fit dtype {dt.name}; "
                         f"use dtype='int64'")
    return [], [dt], []


def _randint_forward(ctx, p, inputs, aux, outputs, is_train):
    out = outputs[0]
    out[...] = ctx.rng.integers(p.low, p.high, size=out.shape, dtype=out.dtype)


register(OpDef("_random_randint",
               params=[Param("low", "int", doc="lowest value (inclusive)"),
                       Param("high", "int", doc="highest value (exclusive)"),
                       _shape_param(None), _CtxParam("ctx", "context", None, "device"),
                       _dtype_param(_INTS, "default int32")],
               inputs=(), infer_shape=_randint_infer_shape, infer_type=_randint_infer_type,
               forward=_randint_forward, random=True, aliases=["random_randint"],
               doc="Draw integers uniformly from [low, high)."))


# ---- multinomial --------------------------------------------------------------------------------
_MULTI_TYPES = ("float16", "float32", "float64", "int32", "uint8")


def _multinomial_outputs(p):
    return ["output0", "output1"] if p.get_prob else ["output"]


def _multinomial_infer_shape(p, in_shapes):
    data = in_shapes[0]
    if data is None:
        return [None], [None] * len(_multinomial_outputs(p)), []
    if len(data) < 1:
        raise ShapeError("_sample_multinomial", f"data has shape {shape_str(data)}, expected "
                                                f"at least 1 dimension (the categories)")
    out = tuple(data[:-1]) + tuple(p.shape)
    out = out or (1,)
    return [tuple(data)], [out] * len(_multinomial_outputs(p)), []


def _multinomial_infer_type(p, in_types):
    dt = np.dtype(p.dtype) if p.dtype is not None else np.dtype(np.int32)
    if dt.name not in _MULTI_TYPES:
        raise ParamError(f"_sample_multinomial: parameter 'dtype' got {dt.name}: expected one "
                         f"of {', '.join(_MULTI_TYPES)}")
    if in_types[0] is not None and np.dtype(in_types[0]).kind != "f":
        raise DTypeError(f"_sample_multinomial: data has dtype {np.dtype(in_types[0]).name}, "
                         f"expected a float type (probabilities)")
    types = [dt] + ([in_types[0]] if p.get_prob else [])
    return list(in_types), types, []


def _draw_categories(xp, rng, probs, n_draws):
    """Indices drawn from each row of ``probs`` (rows need not sum to 1: as MXNet, a uniform
    draw in [0, 1) is compared with the running sum, and falls to the last category if above).

    All rows are searched at once: row b's cumulative sums are shifted by b * stride, with
    stride larger than any row total and than 1, so one sorted array holds every row.
    """
    rows, k = probs.shape
    cdf = xp.cumsum(probs.astype(np.float64), axis=1)
    stride = max(float(cdf[:, -1].max()) if rows and k else 0.0, 1.0) + 1.0
    offsets = xp.arange(rows, dtype=np.float64)[:, None] * stride
    u = rng.random((rows, n_draws)) + offsets
    pos = xp.searchsorted((cdf + offsets).ravel(), u.ravel(), side="right")
    idx = pos.reshape(rows, n_draws) - xp.arange(rows)[:, None] * k
    return xp.minimum(idx, k - 1)


def _multinomial_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, data = ctx.xp, inputs[0]
    k = data.shape[-1]
    probs = data.reshape(-1, k)
    n_draws = int(np.prod(p.shape)) if p.shape else 1
    idx = _draw_categories(xp, ctx.rng, probs, n_draws)
    outputs[0][...] = idx.reshape(outputs[0].shape)
    if p.get_prob:
        chosen = xp.take_along_axis(probs, idx, axis=1)
        outputs[1][...] = xp.log(chosen).reshape(outputs[1].shape)


def _multinomial_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    """d log p[idx] / d p = 1 / p[idx] at the drawn index (only the log-prob output has one)."""
    xp, data = ctx.xp, inputs[0]
    grad = xp.zeros(data.shape, data.dtype)
    if p.get_prob and out_grads[1] is not None:
        k = data.shape[-1]
        probs = data.reshape(-1, k)
        idx = outputs[0].reshape(probs.shape[0], -1).astype(np.int64)
        og = out_grads[1].reshape(idx.shape)
        contrib = og / xp.take_along_axis(probs, idx, axis=1)
        flat = grad.reshape(-1, k)
        rows = xp.broadcast_to(xp.arange(probs.shape[0])[:, None], idx.shape)
        add_at(xp, flat, (rows, idx), contrib.astype(grad.dtype))
    assign(in_grads[0], req[0], grad)


register(OpDef("_sample_multinomial",
               params=[_shape_param(()), Param("get_prob", "bool", False,
                                               "also output the log-probability of each draw"),
                       Param("dtype", "dtype", np.dtype(np.int32), "type of the drawn indices")],
               inputs=("data",), outputs=_multinomial_outputs,
               infer_shape=_multinomial_infer_shape, infer_type=_multinomial_infer_type,
               forward=_multinomial_forward, backward=_multinomial_backward, random=True,
               aliases=["sample_multinomial"],
               doc="Draw category indices from the distributions in the last axis of data."))


# ---- shuffle --------------------------------------------------------------------------------------
def _permutation(xp, rng, n):
    if hasattr(rng, "permutation"):
        return rng.permutation(n)
    return xp.argsort(rng.random(n))


def _shuffle_forward(ctx, p, inputs, aux, outputs, is_train):
    data, out = inputs[0], outputs[0]
    if data.ndim == 0 or data.shape[0] <= 1:
        out[...] = data
        return
    out[...] = data[_permutation(ctx.xp, ctx.rng, data.shape[0])]


register(OpDef("_shuffle", inputs=("data",), infer_shape=same_shape_infer("_shuffle"),
               forward=_shuffle_forward, random=True, aliases=["shuffle"],
               doc="Randomly shuffle the elements along the first axis."))
