"""Recycled host storage for large eager arrays (MXNet's pooled storage manager, in spirit).

An eager training step allocates the same large arrays every time (layer outputs, softmax
probabilities, gradients) and frees them when the step's graph goes away. numpy gets memory
that large from the C library's ``mmap`` and gives it back on free, so every step pays a page
fault per 4 KB page on first touch: ~70 ms per 80 MB array here -- as long as the kernel that
writes it. ``empty(shape, dtype)`` keeps buffers of at least ``_MIN_BYTES`` and hands one out
again once nothing uses it any more (a free buffer up to twice the size asked for serves
too, so nearby sizes share buffers). When none is free but one is held by queued work, the
main thread waits for the engine instead of growing the pool.

"Nothing uses it" is decided by reference count: every numpy view of a pooled buffer (views of
views too -- numpy points ``base`` at the owner) holds a reference to it, and so does anything
else that can reach its memory (engine tasks capture the arrays they run on). A buffer whose
only references are the pool's own is free. Free buffers beyond ``HYBRIDNET_CPU_POOL_MB`` are
dropped (largest first), so a changing mix of shapes cannot grow the pool without bound.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from .. import config

__all__ = ["empty", "pooled_bytes", "release_free"]

_MIN_BYTES = 1 << 20
_lock = threading.Lock()
_buffers: list = []          # uint8 buffers, ascending by size
_total = 0


def _is_free(i: int) -> bool:
    # the only references: the pool's list and getrefcount's own argument
    return sys.getrefcount(_buffers[i]) == 2


def empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized numpy array, from a recycled buffer when it is large.

    The smallest free buffer of at least the size needed and less than twice it is reused (a
    prefix of it); otherwise a new one is made and kept, after dropping free buffers while the
    free bytes would exceed ``HYBRIDNET_CPU_POOL_MB``.
    """
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= d
    if nbytes < _MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        buf, busy = _find(nbytes)
    if buf is None and busy and threading.current_thread() is threading.main_thread():
        # Work pushed but not yet run still holds a buffer that would do: eager code runs
        # ahead of the engine, and without this wait the pool would keep one more such buffer
        # than a step ever uses at once (the eager LSTM benchmark: 295 -> 215 MB pooled, peak
        # RSS 549 -> 468 MB). It costs only the overlap of this thread's pushing with work
        # already queued. Only the main thread waits: engine work must never wait for itself,
        # and a helper thread (a prefetcher) could wait for ever while the main thread pushes.
        from .engine import get_engine
        get_engine().wait_idle()
        with _lock:
            buf, _ = _find(nbytes)
    if buf is not None:
        return buf[:nbytes].view(dtype).reshape(shape)
    global _total
    with _lock:
        limit = config.get("HYBRIDNET_CPU_POOL_MB") << 20
        _release_free_locked(limit)
        buf = np.empty(nbytes, np.uint8)
        if limit:
            _buffers.append(buf)
            _buffers.sort(key=lambda b: b.size)
            _total += nbytes
        return buf.view(dtype).reshape(shape)


def _find(nbytes: int):
    """(the smallest free buffer of nbytes..2*nbytes bytes or None, whether one such is in use)."""
    busy = False
    for i in range(len(_buffers)):
        size = _buffers[i].size
        if size >= 2 * nbytes:
            break
        if size >= nbytes:
            if _is_free(i):
                return _buffers[i], busy
            busy = True
    return None, busy


def _release_free_locked(keep_free: int) -> None:
    """Drop free buffers, largest first, until at most ``keep_free`` free bytes remain."""
    global _total
    free = [i for i in range(len(_buffers)) if _is_free(i)]
    free_bytes = sum(_buffers[i].size for i in free)
    for i in reversed(free):
        if free_bytes <= keep_free:
            break
        free_bytes -= _buffers[i].size
        _total -= _buffers[i].size
        del _buffers[i]


def release_free() -> None:
    """Give every buffer no array uses back to the system."""
    with _lock:
        _release_free_locked(0)


def pooled_bytes() -> int:
    """Bytes the pool holds (in use or free)."""
    return _total
