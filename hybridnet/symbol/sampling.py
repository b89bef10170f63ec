"""``mx.sym.random``'s samplers with MXNet 1.x's Python signatures.

Distribution parameters are all numbers -- one distribution, ``shape`` samples, a
``_random_<dist>`` node -- or all Symbols -- one distribution per element, output shape
``param.shape + shape``, a ``_sample_<dist>`` node::

    mx.sym.random.uniform(-1, 1, shape=(2, 3))
    mx.sym.random.normal(mx.sym.var('mu'), mx.sym.var('sigma'), shape=4)

``exponential`` takes the mean ``scale`` (the operators take the rate ``lam = 1 / scale``).
"""
from __future__ import annotations

import numbers

from ..ops.registry import get_op
from .compose import create_op
from .symbol import Symbol

__all__ = ["uniform", "normal", "randn", "randint", "exponential", "gamma", "poisson",
           "negative_binomial", "generalized_negative_binomial", "multinomial", "shuffle"]


def _node(op_name: str, inputs: list, params: dict, name, attr) -> Symbol:
    op = get_op(op_name)
    params = {k: v for k, v in params.items() if v is not None}
    return create_op(op, op.parse_params(params), inputs, name=name, attr=attr,
                     hint=op_name.lower())


def _draw(dist: str, names: tuple, values: list, shape, dtype, kwargs) -> Symbol:
    name, attr = kwargs.pop("name", None), kwargs.pop("attr", None)
    if all(isinstance(v, Symbol) for v in values):
        return _node(f"_sample_{dist}", list(values), dict(kwargs, shape=shape, dtype=dtype),
                     name, attr)
    if not all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in values):
        kinds = ", ".join(f"{n}={type(v).__name__}" for n, v in zip(names, values))
        raise TypeError(f"random.{dist}: distribution parameters must be all numbers or all "
                        f"Symbols, got {kinds}")
    params = dict(kwargs, shape=shape, dtype=dtype, **dict(zip(names, values)))
    return _node(f"_random_{dist}", [], params, name, attr)


def uniform(low=0, high=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Samples from U[low, high): numbers, or Symbols (one distribution per element)."""
    return _draw("uniform", ("low", "high"), [low, high], shape, dtype, kwargs)


def normal(loc=0, scale=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Samples from N(loc, scale^2)."""
    return _draw("normal", ("loc", "scale"), [loc, scale], shape, dtype, kwargs)


def randn(*shape, **kwargs) -> Symbol:
    """Standard normal samples of shape ``shape``; ``loc``, ``scale``, ``dtype`` as keywords."""
    loc, scale, dtype = kwargs.pop("loc", 0), kwargs.pop("scale", 1), kwargs.pop("dtype", None)
    return _draw("normal", ("loc", "scale"), [loc, scale], shape or None, dtype, kwargs)


def randint(low, high, shape=None, dtype=None, **kwargs) -> Symbol:
    """Integers drawn uniformly from [low, high) (numbers only, as in MXNet)."""
    for what, v in (("low", low), ("high", high)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"randint: {what} must be an integer, got {type(v).__name__}")
    return _draw("randint", ("low", "high"), [low, high], shape, dtype, kwargs)


def exponential(scale=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Samples from the exponential distribution with mean ``scale``."""
    return _draw("exponential", ("lam",), [1.0 / scale], shape, dtype, kwargs)


def gamma(alpha=1, beta=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Samples from the gamma distribution with shape ``alpha`` and scale ``beta``."""
    return _draw("gamma", ("alpha", "beta"), [alpha, beta], shape, dtype, kwargs)


def poisson(lam=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Samples from the Poisson distribution with rate ``lam``."""
    return _draw("poisson", ("lam",), [lam], shape, dtype, kwargs)


def negative_binomial(k=1, p=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Failures before the ``k``-th success with failure probability ``p``."""
    return _draw("negative_binomial", ("k", "p"), [k, p], shape, dtype, kwargs)


def generalized_negative_binomial(mu=1, alpha=1, shape=None, dtype=None, **kwargs) -> Symbol:
    """Negative binomial with mean ``mu`` and dispersion ``alpha``."""
    return _draw("generalized_negative_binomial", ("mu", "alpha"), [mu, alpha], shape, dtype,
                 kwargs)


def multinomial(data, shape=None, get_prob=True, dtype="int32", **kwargs) -> Symbol:
    """Category indices drawn from the distributions in the last axis of ``data``; with
    ``get_prob`` (the default for symbols, as in MXNet) also their log probabilities."""
    name, attr = kwargs.pop("name", None), kwargs.pop("attr", None)
    return _node("_sample_multinomial", [data],
                 dict(kwargs, shape=shape, get_prob=get_prob, dtype=dtype), name, attr)


def shuffle(data, **kwargs) -> Symbol:
    """``data`` with its first axis randomly permuted."""
    name, attr = kwargs.pop("name", None), kwargs.pop("attr", None)
    return _node("_shuffle", [data], kwargs, name, attr)
