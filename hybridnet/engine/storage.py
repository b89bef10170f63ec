"""Recycled host storage for large eager arrays (MXNet's pooled storage manager, in spirit).

An eager training step allocates the same large arrays every time (layer outputs, softmax
probabilities, gradients) and frees them when the step's graph goes away. numpy gets memory
that large from the C library's ``mmap`` and gives it back on free, so every step pays a page
fault per 4 KB page on first touch: ~70 ms per 80 MB array here -- as long as the kernel that
writes it. ``empty(shape, dtype)`` keeps buffers of at least ``_MIN_BYTES`` and hands one out
again once nothing uses it any more.

"Nothing uses it" is decided by reference count: every numpy view of a pooled buffer (views of
views too -- numpy points ``base`` at the owner) holds a reference to it, and so does anything
else that can reach its memory (engine tasks capture the arrays they run on). A buffer whose
only references are the pool's own is free. Free buffers beyond ``HYBRIDNET_CPU_POOL_MB`` are
dropped, so a changing mix of shapes cannot grow the pool without bound.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from .. import config

__all__ = ["empty", "pooled_bytes", "release_free"]

_MIN_BYTES = 1 << 20
_lock = threading.Lock()
_buckets: dict = {}          # nbytes -> [uint8 buffer, ...]
_total = 0
# references to a free buffer while the loops below look at it: its bucket's list, the loop
# variable and getrefcount's own argument
_FREE_REFS = 3


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized numpy array, from a recycled buffer when it is large."""
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= d
    if nbytes < _MIN_BYTES:
        return np.empty(shape, dtype)
    global _total
    with _lock:
        bucket = _buckets.get(nbytes)
        if bucket is None:
            bucket = _buckets[nbytes] = []
        for buf in bucket:
            if sys.getrefcount(buf) == _FREE_REFS:
                return buf.view(dtype).reshape(shape)
        limit = config.get("HYBRIDNET_CPU_POOL_MB") << 20
        if _total + nbytes > limit:
            _release_free_locked(limit - nbytes)
        buf = np.empty(nbytes, np.uint8)
        if _total + nbytes <= limit:
            bucket.append(buf)
            _total += nbytes
        return buf.view(dtype).reshape(shape)


def _release_free_locked(target: int) -> None:
    """Drop free buffers until the pool holds at most ``target`` bytes (or none is free)."""
    global _total
    for nbytes, bucket in list(_buckets.items()):
        keep = []
        for buf in bucket:
            if _total > target and sys.getrefcount(buf) == _FREE_REFS:
                _total -= nbytes
            else:
                keep.append(buf)
        if keep:
            _buckets[nbytes] = keep
        else:
            del _buckets[nbytes]


def release_free() -> None:
    """Give every buffer no array uses back to the system."""
    with _lock:
        _release_free_locked(0)


def pooled_bytes() -> int:
    """Bytes the pool holds (in use or free)."""
    return _total
