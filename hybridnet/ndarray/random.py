"""``mx.nd.random``: draw random NDArrays (also available as ``mx.random.*``).

Distribution parameters are either all numbers -- one distribution, ``shape`` samples, run by the
``_random_*`` operators -- or all NDArrays -- one distribution per element, output shape
``param.shape + shape``, run by the ``_sample_*`` operators::

    mx.nd.random.uniform(-1, 1, shape=(2, 3))                  # 2x3 from U[-1, 1)
    mx.nd.random.normal(mx.nd.array([0, 10]), mx.nd.array([1, 1]), shape=4)   # 2x4

Without ``shape`` (and ``out``) one sample is drawn: shape ``(1,)``, as in MXNet. The dtype is
float32 unless given (int32 for ``randint`` and ``multinomial``); ``out=`` supplies shape, dtype
and device when they are not given. Seed with ``mx.random.seed``.
"""
from __future__ import annotations

import numbers

from ..context import Context, current_context
from ..ops.registry import get_op
from .invoke import invoke
from .ndarray import NDArray
from .register import make_function

__all__ = ["uniform", "normal", "randn", "randint", "exponential", "gamma", "poisson",
           "negative_binomial", "generalized_negative_binomial", "multinomial", "shuffle",
           "uniform_like", "normal_like", "exponential_like", "gamma_like", "poisson_like",
           "negative_binomial_like", "generalized_negative_binomial_like"]


def _draw(dist: str, names: tuple, values: list, shape, dtype, ctx, out, kwargs):
    """Run ``_random_<dist>`` (number parameters) or ``_sample_<dist>`` (NDArray parameters)."""
    if all(isinstance(v, NDArray) for v in values):
        params = dict(kwargs, shape=() if shape is None else shape)
        if dtype is not None:
            params["dtype"] = dtype
        op = get_op(f"_sample_{dist}")
        return invoke(op, list(values), op.parse_params(params), out=out)
    if not all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in values):
        kinds = ", ".join(f"{n}={type(v).__name__}" for n, v in zip(names, values))
        raise TypeError(f"random.{dist}: distribution parameters must be all numbers or all "
                        f"NDArrays, got {kinds}")
    if out is not None:
        shape = out.shape if shape is None else shape
        dtype = out.dtype if dtype is None else dtype
        ctx = out.context if ctx is None else ctx
    elif shape is None:
        shape = 1
    ctx = Context(ctx) if ctx is not None else current_context()
    params = dict(kwargs, shape=shape, ctx=ctx, **dict(zip(names, values)))
    if dtype is not None:
        params["dtype"] = dtype
    op = get_op(f"_random_{dist}")
    return invoke(op, [], op.parse_params(params), out=out, ctx=ctx)


def uniform(low=0, high=1, shape=None, dtype=None, ctx=None, out=None, **kwargs) -> NDArray:
    """Samples from the uniform distribution on [low, high).

    Args:
        low, high: numbers, or NDArrays of one shape (one distribution per element).
        shape: int or tuple -- samples per distribution (default one).
        dtype: 'float16', 'float32' (default) or 'float64'.
        ctx: device of the result (default the current one; an NDArray parameter's device).
        out: write the samples into this array.

    Example::

        >>> mx.nd.random.uniform(0, 1, shape=(2,))
    """
    return _draw("uniform", ("low", "high"), [low, high], shape, dtype, ctx, out, kwargs)


def normal(loc=0, scale=1, shape=None, dtype=None, ctx=None, out=None, **kwargs) -> NDArray:
    """Samples from the normal distribution N(loc, scale^2); see ``uniform`` for the arguments."""
    return _draw("normal", ("loc", "scale"), [loc, scale], shape, dtype, ctx, out, kwargs)


def randn(*shape, **kwargs) -> NDArray:
    """Standard normal samples of shape ``shape``: ``randn(2, 3)``; ``loc``/``scale``/``dtype``/
    ``ctx``/``out`` as keywords."""
    if not shape and kwargs.get("out") is None:
        raise TypeError("randn needs a shape, e.g. mx.nd.random.randn(2, 3)")
    loc, scale = kwargs.pop("loc", 0), kwargs.pop("scale", 1)
    dtype, ctx, out = kwargs.pop("dtype", None), kwargs.pop("ctx", None), kwargs.pop("out", None)
    return _draw("normal", ("loc", "scale"), [loc, scale], shape or None, dtype, ctx, out, kwargs)


def randint(low, high, shape=None, dtype=None, ctx=None, out=None, **kwargs) -> NDArray:
    """Integers drawn uniformly from [low, high); dtype 'int32' (default) or 'int64'."""
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, NDArray) or not isinstance(v, numbers.Integral):
            raise TypeError(f"randint: {name} must be an integer, got {type(v).__name__}")
    return _draw("randint", ("low", "high"), [int(low), int(high)], shape, dtype, ctx, out,
                 kwargs)


def exponential(scale=1, shape=None, dtype=None, ctx=None, out=None, **kwargs) -> NDArray:
    """Samples from the exponential distribution with mean ``scale`` (rate 1/scale)."""
    lam = 1.0 / scale
    return _draw("exponential", ("lam",), [lam], shape, dtype, ctx, out, kwargs)


def gamma(alpha=1, beta=1, shape=None, dtype=None, ctx=None, out=None, **kwargs) -> NDArray:
    """Samples from the gamma distribution with shape ``alpha`` and scale ``beta``."""
    return _draw("gamma", ("alpha", "beta"), [alpha, beta], shape, dtype, ctx, out, kwargs)


def poisson(lam=1, shape=None, dtype=None, ctx=None, out=None, **kwargs) -> NDArray:
    """Samples from the Poisson distribution with rate ``lam`` (returned as floats)."""
    return _draw("poisson", ("lam",), [lam], shape, dtype, ctx, out, kwargs)


def negative_binomial(k=1, p=1, shape=None, dtype=None, ctx=None, out=None,
                      **kwargs) -> NDArray:
    """Failures before the ``k``-th success, failure probability ``p`` (mean k(1-p)/p)."""
    return _draw("negative_binomial", ("k", "p"), [k, p], shape, dtype, ctx, out, kwargs)


def generalized_negative_binomial(mu=1, alpha=1, shape=None, dtype=None, ctx=None, out=None,
                                  **kwargs) -> NDArray:
    """Negative binomial with mean ``mu`` and dispersion ``alpha`` (variance mu + alpha mu^2)."""
    return _draw("generalized_negative_binomial", ("mu", "alpha"), [mu, alpha], shape, dtype,
                 ctx, out, kwargs)


def multinomial(data, shape=None, get_prob=False, out=None, dtype="int32", **kwargs):
    """Category indices drawn from the distributions in the last axis of ``data``.

    The result has shape ``data.shape[:-1] + shape`` (``(1,)`` for one 1-D distribution and no
    shape). With ``get_prob=True`` returns ``[indices, log_probabilities]``; the log
    probabilities are differentiable w.r.t. ``data`` (for REINFORCE-style gradients).
    """
    return _sample_multinomial(
        data, shape=() if shape is None else shape, get_prob=get_prob, out=out, dtype=dtype,
        **kwargs)


def shuffle(data, **kwargs) -> NDArray:
    """A copy of ``data`` with its first axis randomly permuted."""
    return _shuffle(data, **kwargs)


_sample_multinomial = make_function(get_op("_sample_multinomial"), "multinomial")
_shuffle = make_function(get_op("_shuffle"), "shuffle")


def _like(dist: str):
    fn = make_function(get_op(f"_random_{dist}_like"), f"{dist}_like")
    fn.__module__ = __name__
    return fn


uniform_like = _like("uniform")
normal_like = _like("normal")
exponential_like = _like("exponential")
gamma_like = _like("gamma")
poisson_like = _like("poisson")
negative_binomial_like = _like("negative_binomial")
generalized_negative_binomial_like = _like("generalized_negative_binomial")
