"""``PrefetchingIter`` (prepare the next batch in a background thread) and ``ResizeIter``
(a fixed number of batches per epoch).

``PrefetchingIter`` keeps one batch ready per wrapped iterator: while the training step works on
batch k, a background thread runs ``next()`` for batch k+1. An exception raised there is handed
to the consumer by the ``next()`` that would have returned that batch -- never lost in the
thread, never a hang.
"""
from __future__ import annotations

import threading

from ..base import HybridNetError
from .base import DataBatch, DataDesc, DataIter

__all__ = ["PrefetchingIter", "ResizeIter"]

_POLL = 0.1   # seconds between liveness checks while waiting for a worker


class _Fetcher:
    """Runs ``it.next()`` in a daemon thread, one call per request; results are
    ``('batch', b)``, ``('stop', None)`` or ``('error', exc)``."""

    def __init__(self, it, name: str):
        self.it = it
        self._cond = threading.Condition()
        self._wanted = False
        self._result = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                result = ("batch", self.it.next())
            except StopIteration:
                result = ("stop", None)
            except BaseException as exc:  # handed to the consumer, raised by its next()
                result = ("error", exc)
            with self._cond:
                self._result = result
                self._wanted = False
                self._cond.notify_all()

    def request(self) -> None:
        """Start fetching the next batch (no-op if one is being fetched or is ready)."""
        with self._cond:
            if not self._wanted and self._result is None:
                self._wanted = True
                self._cond.notify_all()

    def _wait_idle(self) -> None:
        # caller holds the lock
        while self._wanted:
            if not self._thread.is_alive():
                raise HybridNetError(f"prefetch thread {self._thread.name} died unexpectedly")
            self._cond.wait(_POLL)

    def take(self):
        """The next result (fetching it now if nothing was requested)."""
        self.request()
        with self._cond:
            self._wait_idle()
            result, self._result = self._result, None
        return result

    def discard(self) -> None:
        """Wait for a fetch in flight and drop its result (the iterator is then idle)."""
        with self._cond:
            self._wait_idle()
            self._result = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class PrefetchingIter(DataIter):
    """Prefetch batches of one or several iterators in background threads
    (``mx.io.PrefetchingIter(iters, rename_data=None, rename_label=None)``).

    With several iterators each batch concatenates their data and label lists (they must yield
    the same number of batches with the same padding).

    Args:
        iters: a DataIter or a list of them.
        rename_data: None or one dict per iterator mapping its data names to new names.
        rename_label: the same for labels.

    Example::

        >>> it = mx.io.PrefetchingIter(mx.io.NDArrayIter(np.ones((100, 10)), batch_size=25))
        >>> for batch in it:          # batch k+1 is prepared while batch k is used
        ...     train_step(batch)
    """

    def __init__(self, iters, rename_data=None, rename_label=None):
        super().__init__()
        if not isinstance(iters, (list, tuple)):
            iters = [iters]
        if not iters:
            raise HybridNetError("PrefetchingIter needs at least one iterator")
        self.iters = list(iters)
        self.n_iter = len(self.iters)
        for what, renames in (("rename_data", rename_data), ("rename_label", rename_label)):
            if renames is not None and len(renames) != self.n_iter:
                raise HybridNetError(f"PrefetchingIter: {what} has {len(renames)} dicts for "
                                     f"{self.n_iter} iterators; give one per iterator")
        self.rename_data = rename_data
        self.rename_label = rename_label
        self.batch_size = self.provide_data[0][1][0]
        self.current_batch = None
        self._fetchers = [_Fetcher(it, f"PrefetchingIter-{i}") for i, it in enumerate(self.iters)]
        for f in self._fetchers:
            f.request()

    def __del__(self):
        for f in getattr(self, "_fetchers", ()):
            f.close()

    @staticmethod
    def _rename(descs, renames):
        if renames is None:
            return list(descs)
        out = []
        for d in descs:
            d = d if isinstance(d, DataDesc) else DataDesc(*d)
            out.append(DataDesc(renames.get(d.name, d.name), d.shape, d.dtype, d.layout))
        return out

    def _provide(self, attr, renames):
        out = []
        for i, it in enumerate(self.iters):
            out += self._rename(getattr(it, attr), renames[i] if renames else None)
        return out

    @property
    def provide_data(self):
        return self._provide("provide_data", self.rename_data)

    @property
    def provide_label(self):
        return self._provide("provide_label", self.rename_label)

    def reset(self) -> None:
        for f in self._fetchers:
            f.discard()
        for it in self.iters:
            it.reset()
        for f in self._fetchers:
            f.request()

    def iter_next(self) -> bool:
        results = [f.take() for f in self._fetchers]
        for i, (kind, value) in enumerate(results):
            if kind == "error":
                for f in self._fetchers:   # keep the others one batch ahead as before
                    f.request()
                raise value
        stopped = [i for i, (kind, _) in enumerate(results) if kind == "stop"]
        if stopped:
            if len(stopped) != self.n_iter:
                raise HybridNetError(f"PrefetchingIter: iterators {stopped} ended while "
                                     f"iterators {sorted(set(range(self.n_iter)) - set(stopped))} "
                                     f"still had batches; they must yield the same number")
            return False
        batches = [value for _, value in results]
        pads = [b.pad for b in batches]
        if len(set(pads)) != 1:
            raise HybridNetError(f"PrefetchingIter: the iterators' batches have different "
                                 f"padding {pads}; they must hold the same examples")
        for f in self._fetchers:
            f.request()
        self.current_batch = DataBatch(
            sum((list(b.data) for b in batches), []),
            sum((list(b.label or []) for b in batches), []),
            batches[0].pad, batches[0].index,
            provide_data=self.provide_data, provide_label=self.provide_label)
        return True

    def next(self) -> DataBatch:
        if self.iter_next():
            return self.current_batch
        raise StopIteration

    def getdata(self):
        return self.current_batch.data

    def getlabel(self):
        return self.current_batch.label

    def getindex(self):
        return self.current_batch.index

    def getpad(self):
        return self.current_batch.pad


class ResizeIter(DataIter):
    """Make an epoch exactly ``size`` batches long (``mx.io.ResizeIter``), restarting the
    wrapped iterator when it ends early and stopping it when it would run longer.

    Args:
        data_iter: the iterator to resize.
        size: batches per epoch.
        reset_internal: reset the wrapped iterator at each ``reset()``; with False the next
            epoch continues where this one stopped.

    Example::

        >>> it = mx.io.ResizeIter(mx.io.NDArrayIter(np.ones((100, 10)), batch_size=25), 2)
        >>> len(list(it))
        2
    """

    def __init__(self, data_iter, size: int, reset_internal: bool = True):
        super().__init__()
        if int(size) <= 0:
            raise HybridNetError(f"ResizeIter: size must be a positive number of batches, got "
                                 f"{size!r}")
        self.data_iter = data_iter
        self.size = int(size)
        self.reset_internal = reset_internal
        self.cur = 0
        self.current_batch = None
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.batch_size = data_iter.batch_size
        if hasattr(data_iter, "default_bucket_key"):
            self.default_bucket_key = data_iter.default_bucket_key

    def reset(self) -> None:
        self.cur = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self) -> bool:
        if self.cur == self.size:
            return False
        try:
            self.current_batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            try:
                self.current_batch = self.data_iter.next()
            except StopIteration:
                raise HybridNetError("ResizeIter: the wrapped iterator yields no batches even "
                                     "right after reset()") from None
        self.cur += 1
        return True

    def getdata(self):
        return self.current_batch.data

    def getlabel(self):
        return self.current_batch.label

    def getindex(self):
        return self.current_batch.index

    def getpad(self):
        return self.current_batch.pad
