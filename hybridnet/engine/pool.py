"""Worker thread pools: one per device for compute, one shared pool for copies and I/O."""
from __future__ import annotations

import heapq
import threading

__all__ = ["WorkerPool", "current_pool"]

_local = threading.local()


def current_pool():
    """The pool whose worker is running on this thread, or None outside engine workers."""
    return getattr(_local, "pool", None)


class WorkerPool:
    """A fixed set of daemon threads taking tasks by (priority, push order)."""

    def __init__(self, name: str, nthreads: int, run):
        self.name = name
        self._run = run
        self._cv = threading.Condition(threading.Lock())
        self._heap: list = []
        self._threads = []
        for i in range(max(1, nthreads)):
            thread = threading.Thread(target=self._loop, name=f"hybridnet-{name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, task):
        with self._cv:
            heapq.heappush(self._heap, (-task.priority, task))
            self._cv.notify()

    def try_run_one(self, timeout: float) -> bool:
        """Run one queued task on the calling thread (a worker waiting inside a task helps)."""
        with self._cv:
            if not self._heap:
                self._cv.wait(timeout)
                if not self._heap:
                    return False
            _, task = heapq.heappop(self._heap)
        if isinstance(task, _StopTask):
            self.submit_stop()      # not ours to consume: put it back for a real worker
            return False
        self._run(task)
        return True

    def submit_stop(self):
        with self._cv:
            heapq.heappush(self._heap, (float("inf"), _StopTask()))
            self._cv.notify()

    def stop(self):
        for _ in self._threads:
            self.submit_stop()

    def _loop(self):
        _local.pool = self
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                _, task = heapq.heappop(self._heap)
            if isinstance(task, _StopTask):
                return
            self._run(task)


class _StopTask:
    __slots__ = ()

    def __lt__(self, other):
        return False
