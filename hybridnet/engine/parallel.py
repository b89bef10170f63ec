"""``parallel_slices(n, work, work_bytes)``: one operator's work split over its batch, run on the
threads the BLAS policy gives an operator.

The engine runs one CPU operator at a time per worker (engine/blas.py), and a large product
then uses ``policy_threads()`` BLAS threads. Convolution and pooling spend much of their time
outside BLAS -- in numba kernels (im2col, col2im, window loops) that use one thread -- and in
narrow products where OpenBLAS's threads mostly wait on each other. Such an operator instead
cuts its batch into ``policy_threads()`` contiguous slices and runs ``work(i, part)`` for each
slice on its own thread with a one-thread BLAS: the numba kernels and BLAS release the GIL, so
the slices really run in parallel (AlexNet-R convolutions, 2 cores: ~1.5x faster, a third less
CPU time; benchmark/ops.py conv_pool).

Slices must write disjoint outputs; work that reduces over the batch (a weight gradient) gives
each slice index its own buffer and sums them afterwards. The calling thread runs slice 0, a
process-wide pool the others; a slice that calls ``parallel_slices`` again runs its work
serially (no nested splitting, no deadlock on the pool). Small work (under
``SPLIT_MIN_BYTES``) stays on the calling thread, with a one-thread BLAS: a thread hand-off
costs tens of microseconds. ``HYBRIDNET_NUM_BLAS_THREADS=1`` turns splitting off.
"""
from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .blas import policy_threads, single_threaded_blas

__all__ = ["SPLIT_MIN_BYTES", "parallel_slices", "parallel_sum", "slice_bounds"]

# Below this many bytes of data touched an operator runs on the calling thread alone.
SPLIT_MIN_BYTES = 1 << 20

_pool_lock = threading.Lock()
_pools: dict = {}                 # pid -> ThreadPoolExecutor (a forked child builds its own)
_inside = threading.local()       # set while a thread runs a slice


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    pool = _pools.get(pid)
    if pool is None:
        with _pool_lock:
            pool = _pools.setdefault(pid, ThreadPoolExecutor(
                max_workers=max(1, (os.cpu_count() or 2) - 1),
                thread_name_prefix="hybridnet-slice"))
    return pool


def slice_bounds(n: int, parts: int) -> list:
    """``parts`` contiguous, nearly equal slices of range(n)."""
    edges = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def _run(work: Callable, i: int, part: slice) -> None:
    _inside.active = True
    try:
        work(i, part)
    finally:
        _inside.active = False


def parallel_slices(n: int, work: Callable[[int, slice], None], work_bytes: int) -> int:
    """Run ``work(i, part)`` over ``k`` slices of range(n) in parallel; return ``k``.

    ``k`` is ``policy_threads()`` (at most ``n``), or 1 -- ``work(0, slice(0, n))`` on the
    calling thread -- when ``work_bytes`` is under ``SPLIT_MIN_BYTES`` or the caller is itself
    a slice. Every slice finishes before the first error (by slice index) is raised.
    """
    # small work first: it is the common case, and reading the policy costs microseconds
    parts = 1 if work_bytes < SPLIT_MIN_BYTES else min(policy_threads(), n)
    if parts <= 1 or getattr(_inside, "active", False):
        # one BLAS thread here too: a small product gains nothing from more, and OpenBLAS's
        # extra threads would then spin ~0.1 s waiting for work, taking the cores from the
        # next operator's slices (AlexNet-R's backward convolutions ran ~40% slower after the
        # two-thread product of its small FullyConnected layer)
        with single_threaded_blas():
            work(0, slice(0, n))
        return 1
    bounds = slice_bounds(n, parts)
    with single_threaded_blas():
        pool = _pool()
        futures = [pool.submit(_run, work, i, part) for i, part in enumerate(bounds) if i]
        error = None
        try:
            _run(work, 0, bounds[0])
        except BaseException as err:        # noqa: BLE001 -- re-raised once all slices end
            error = err
        for future in futures:
            exc = future.exception()
            if error is None and exc is not None:
                error = exc
    if error is not None:
        raise error
    return parts


def parallel_sum(a, axis: tuple):
    """``a.sum(axis=axis)`` for a numpy array, ``axis`` including 0: each slice of the first
    axis is summed on its own thread and the partial sums are added in slice order (an order
    numpy's own sum does not use: the result may differ from it in the last bits)."""
    parts = {}

    def work(i, part):
        parts[i] = a[part].sum(axis=axis)
    n = parallel_slices(a.shape[0], work, a.nbytes)
    total = parts[0]
    for i in range(1, n):
        total += parts[i]
    return total
