"""How many threads numpy's BLAS may use: the policy that keeps BLAS and engine workers from
fighting over the cores.

Every CPU kernel of an operator runs on one of ``HYBRIDNET_CPU_WORKER_NTHREADS`` engine
workers (1 by default) while the Python thread that pushed it waits, so at any moment at most
that many BLAS calls are in flight. The policy gives each of them an equal share of the
machine: **BLAS threads = cores // CPU workers** (at least 1), unless
``HYBRIDNET_NUM_BLAS_THREADS`` (or ``OMP_NUM_THREADS``) names a count. With the defaults on a
2-core machine that is 1 worker with 2 BLAS threads: one large product uses both cores, and
nothing else of ours competes with it. On a machine shared with other busy programs,
``HYBRIDNET_NUM_BLAS_THREADS=1`` avoids OpenBLAS threads spinning while they wait for a core.

The count is applied once, when the engine is created. OpenBLAS (the BLAS numpy wheels ship)
is set directly through its ``*_set_num_threads`` entry point; any other BLAS through
``threadpoolctl`` when that is installed.
"""
from __future__ import annotations

import ctypes
import glob
import os
import warnings

from .. import config

__all__ = ["policy_threads", "blas_threads", "apply_policy"]

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = tuple(n.replace("_set_", "_get_") for n in _SETTERS)


def policy_threads() -> int:
    """The BLAS thread count the policy asks for (see the module docstring)."""
    wanted = config.get("HYBRIDNET_NUM_BLAS_THREADS")
    if wanted > 0:
        return wanted
    workers = max(1, config.get("HYBRIDNET_CPU_WORKER_NTHREADS"))
    return max(1, (os.cpu_count() or 1) // workers)


def _openblas():
    """numpy's bundled OpenBLAS as a ctypes library (already loaded: opening it is cheap), or
    None when numpy links another BLAS."""
    import numpy
    root = os.path.dirname(numpy.__file__)
    for path in glob.glob(root + ".libs/*openblas*") + glob.glob(
            os.path.join(root, ".dylibs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in zip(_SETTERS, _GETTERS):
            if hasattr(lib, setter) and hasattr(lib, getter):
                return getattr(lib, setter), getattr(lib, getter)
    return None


def blas_threads() -> int | None:
    """The thread count numpy's OpenBLAS uses now (None for another BLAS)."""
    lib = _openblas()
    return int(lib[1]()) if lib is not None else None


def apply_policy() -> int:
    """Set numpy's BLAS to ``policy_threads()`` threads; return that count."""
    n = policy_threads()
    lib = _openblas()
    if lib is not None:
        if lib[1]() != n:
            lib[0](n)
        return n
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if config.get("HYBRIDNET_NUM_BLAS_THREADS") > 0:
            warnings.warn(f"HYBRIDNET_NUM_BLAS_THREADS={n} not applied: numpy's BLAS is not "
                          f"OpenBLAS and threadpoolctl is not installed", RuntimeWarning)
        return n
    threadpool_limits(n, user_api="blas")
    return n
