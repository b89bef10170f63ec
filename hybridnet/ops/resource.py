"""Per-device resources kernels use: the array module and a seeded random generator.

Every device has one ``numpy.random.Generator`` (cupy's on GPUs) and one engine Var that
random operators write, so their draws happen in push order and ``mx.random.seed(s)`` makes a
program's random numbers reproducible however the engine schedules other work.
"""
from __future__ import annotations

import threading

import numpy as np

from ..context import Context
from ..engine import Var
from .registry import OpContext

__all__ = ["op_context", "rng_var", "seed"]



class _ResourceVar(Var):
    """The Var of a device's generator. It orders random draws but never holds a failure: an
    error in one random op (or in an input that flowed into Dropout) fails that op's outputs,
    not every later draw on the device."""
    __slots__ = ()
    failure = property(lambda self: None, lambda self, value: None)


_lock = threading.Lock()
_contexts: dict = {}
_rng_vars: dict = {}
_seed_base: int | None = None


def _make_rng(device: Context, base: int | None):
    if base is None:
        seq = np.random.SeedSequence()
    else:
        # one stream per device, derived from the user's seed: cpu(0) and cpu(1) differ
        seq = np.random.SeedSequence([base, device.device_typeid, device.device_id])
    if device.is_gpu:
        import cupy  # noqa: PLC0415
        return cupy.random.default_rng(int(seq.generate_state(1)[0]))
    return np.random.Generator(np.random.MT19937(seq))


def op_context(device: Context) -> OpContext:
    """The OpContext of ``device`` (created on first use)."""
    octx = _contexts.get(device)
    if octx is None:
        with _lock:
            octx = _contexts.get(device)
            if octx is None:
                octx = OpContext(device.xp, device, _make_rng(device, _seed_base))
                _contexts[device] = octx
                _rng_vars[device] = _ResourceVar(f"rng@{device}")
    return octx


def rng_var(device: Context) -> Var:
    """The Var random operators on ``device`` write (orders their draws)."""
    op_context(device)
    return _rng_vars[device]


def seed(seed_state: int, ctx="all") -> None:
    """Reseed the generator of ``ctx`` (a Context) or of every device (``'all'``).

    Pending random work is finished first, so it does not see the new seed half-way.
    """
    from ..engine import get_engine
    global _seed_base
    seed_state = int(seed_state)
    get_engine().wait_all()
    with _lock:
        if ctx == "all":
            _seed_base = seed_state
            targets = list(_contexts)
        else:
            targets = [Context(ctx)]
        for device in targets:
            octx = _contexts.get(device)
            rng = _make_rng(device, seed_state)
            if octx is None:
                _contexts[device] = OpContext(device.xp, device, rng)
                _rng_vars[device] = _ResourceVar(f"rng@{device}")
            else:
                octx.rng = rng
