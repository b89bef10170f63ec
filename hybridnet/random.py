"""``mx.random`` (alias ``mx.rnd``): seeding, and the samplers of ``mx.nd.random``.

``mx.random.seed(s)`` reseeds every device's generator: afterwards a program draws the same
numbers on every run, whatever the engine's scheduling. Each device has its own stream derived
from the seed, so ``cpu(0)`` and ``cpu(1)`` draw different numbers.

Example::

    mx.random.seed(42)
    a = mx.random.uniform(shape=(2,))
    mx.random.seed(42)
    b = mx.random.uniform(shape=(2,))      # equal to a
"""
from __future__ import annotations

import numbers

from .context import Context
from .ndarray.random import (exponential, gamma, generalized_negative_binomial, multinomial,
                             negative_binomial, normal, poisson, randint, randn, shuffle,
                             uniform)
from .ops import resource

__all__ = ["seed", "uniform", "normal", "randn", "randint", "exponential", "gamma", "poisson",
           "negative_binomial", "generalized_negative_binomial", "multinomial", "shuffle"]


def seed(seed_state: int, ctx="all") -> None:
    """Seed the random generators of every device (``ctx='all'``) or of one device.

    Args:
        seed_state: an integer seed.
        ctx: ``'all'`` or a Context (``mx.cpu(1)``, ``mx.gpu(0)``).

    Pending random work finishes first, so it does not see the new seed half-way.
    """
    if isinstance(seed_state, bool) or not isinstance(seed_state, numbers.Integral):
        raise ValueError(f"seed_state must be an int, got {type(seed_state).__name__}")
    if isinstance(ctx, str):
        if ctx != "all":
            raise ValueError(f"ctx must be 'all' or a Context, got {ctx!r}")
    elif not isinstance(ctx, Context):
        raise ValueError(f"ctx must be 'all' or a Context, got {type(ctx).__name__}")
    resource.seed(int(seed_state), ctx)
