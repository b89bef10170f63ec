"""``single_threaded_blas()``: run a chain of small matrix products with one BLAS thread.

A recurrent layer does one small product per time step ((64, 256) x (256, 1024) in the LSTM
benchmark), each depending on the one before. OpenBLAS splits such a product over its thread
pool and synchronises the threads at its end; on a busy machine the waiting costs more than the
product (measured: 3-12 GFLOP/s with two threads against ~50 with one). Around such chains the
operator asks for one thread and restores the previous count after; large one-off products keep
BLAS's own setting.

The OpenBLAS that numpy loaded is found in ``/proc/self/maps`` (numpy's wheels bundle it under a
prefixed name, ``scipy_openblas_set_num_threads64_``). Without it (another BLAS, another OS) the
context manager does nothing. Nested and concurrent uses share one reference count, so the count
is restored once, when the last user leaves.
"""
from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager

__all__ = ["single_threaded_blas"]

_lock = threading.Lock()
_users = 0
_saved = 0
_api = None          # (set_num_threads, get_num_threads), False when not found, None unsearched


def _find_openblas():
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                try:
                    set_fn = getattr(lib, f"{prefix}_set_num_threads{suffix}")
                    get_fn = getattr(lib, f"{prefix}_get_num_threads{suffix}")
                except AttributeError:
                    continue
                set_fn.argtypes, set_fn.restype = [ctypes.c_int], None
                get_fn.argtypes, get_fn.restype = [], ctypes.c_int
                return set_fn, get_fn
    return False


@contextmanager
def single_threaded_blas():
    """Within the block numpy's BLAS (OpenBLAS) uses one thread."""
    global _api, _users, _saved
    with _lock:
        if _api is None:
            _api = _find_openblas()
        if _api:
            if _users == 0:
                _saved = _api[1]()
                if _saved != 1:
                    _api[0](1)
            _users += 1
    try:
        yield
    finally:
        if _api:
            with _lock:
                _users -= 1
                if _users == 0 and _saved != 1:
                    _api[0](_saved)
