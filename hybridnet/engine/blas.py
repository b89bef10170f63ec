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

Two kinds of work want one BLAS thread for a while (``single_threaded_blas()``): a chain of
small dependent products (a recurrent layer's time steps: OpenBLAS splits each over its threads
and synchronises them at its end, which on narrow matrices costs more than the product), and
an operator that splits its batch over the policy's threads itself (engine/parallel.py).
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
import warnings
from contextlib import contextmanager

from .. import config

__all__ = ["apply_policy", "blas_threads", "policy_threads", "single_threaded_blas"]

_CORES = os.cpu_count() or 1     # read once: os.cpu_count() costs ~8 us a call here
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = tuple(n.replace("_set_", "_get_") for n in _SETTERS)


def policy_threads() -> int:
    """The BLAS thread count the policy asks for (see the module docstring)."""
    wanted = config.get("HYBRIDNET_NUM_BLAS_THREADS")
    if wanted > 0:
        return wanted
    workers = max(1, config.get("HYBRIDNET_CPU_WORKER_NTHREADS"))
    return max(1, _CORES // workers)


@functools.cache
def _openblas():
    """(set_num_threads, get_num_threads) of numpy's bundled OpenBLAS, or None when numpy links
    another BLAS. Looked up once: operators ask for it on every call."""
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


_single_lock = threading.Lock()
_single_users = 0
_single_saved = 0


@contextmanager
def single_threaded_blas():
    """Within the block numpy's OpenBLAS uses one thread (a no-op for another BLAS).

    Nested and concurrent uses share one count: the previous thread count comes back when the
    last user leaves.
    """
    global _single_users, _single_saved
    lib = _openblas()
    if lib is None:
        yield
        return
    with _single_lock:
        if _single_users == 0:
            _single_saved = lib[1]()
            if _single_saved != 1:
                lib[0](1)
        _single_users += 1
    try:
        yield
    finally:
        with _single_lock:
            _single_users -= 1
            if _single_users == 0 and _single_saved != 1:
                lib[0](_single_saved)
