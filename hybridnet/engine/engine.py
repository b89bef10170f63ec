"""The dependency engine: ``ThreadedEngine`` (default) and ``NaiveEngine`` (inline, for debugging).

Contract (DESIGN.md): ``push(fn, reads, writes)`` runs ``fn()`` once every earlier push that
writes any of ``reads``, or reads or writes any of ``writes``, has finished. Reads of one var run
concurrently; writes are FIFO. An exception in ``fn`` is stored on the vars it writes; work that
reads or writes a failed var is skipped and inherits the failure; the original exception is raised
by the next wait on any of those vars -- every time, since a failed var stays failed -- and once by
``wait_all``. The engine keeps working for unrelated vars.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
from contextlib import contextmanager

from .. import config
from ..base import EngineError
# imported here, not when the engine is first made: that may happen in a thread while another
# holds the import lock (a kvstore server runs inside `import hybridnet`) -- a deadlock
from .blas import apply_policy
from ..context import Context
from .pool import WorkerPool, current_pool
from .var import Failure, Task, Var

__all__ = ["Engine", "ThreadedEngine", "NaiveEngine", "NORMAL", "COPY", "IO"]

NORMAL, COPY, IO = "normal", "copy", "io"
_PROPS = (NORMAL, COPY, IO)


def _unique(vars_):
    seen, out = set(), []
    for v in vars_:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _dependencies(reads, writes):
    """``reads`` and ``writes`` without repeats; a var both read and written (an in-place op)
    is only written: the write dependency covers the read."""
    if len(writes) > 1:
        writes = _unique(writes)
    if writes and reads:
        for v in reads:
            if v in writes:
                return [r for r in reads if r not in writes], writes
    return reads, writes


def _failure_of(exc: BaseException, name: str | None, when: str = "") -> Failure:
    """``exc``, raised by engine work ``name``, as a Failure; its note names the work."""
    if name and hasattr(exc, "add_note"):
        exc.add_note(f"(raised by engine work '{name}'{when})")
    return Failure(exc, name)


def _fail_writes(task: Task, failure: Failure) -> None:
    """Mark the vars ``task`` writes failed (each keeps the first failure it got)."""
    for v in task.writes:
        if v.failure is None:
            v.failure = failure


def _inherited_failure(task: Task):
    """The failure of a var ``task`` reads or writes (it is skipped and inherits it), or None."""
    for v in task.reads:
        if v.failure is not None:
            return v.failure
    for v in task.writes:
        if v.failure is not None:
            return v.failure
    return None


class Engine:
    """Dependency tracking shared by both engines; subclasses decide where ready work runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0
        self._unobserved: list[Failure] = []      # failures no wait has raised yet
        self._local = threading.local()           # per-thread bulk segment
        self._bulk_threads = 0                    # threads with an active segment (fast check)
        self._bulk_size = config.get("HYBRIDNET_ENGINE_BULK_SIZE")
        self.profiler = None                      # set by mx.profiler: called with each task's timing

    # ---- pushing -------------------------------------------------------------------------
    def push(self, fn, reads=(), writes=(), ctx: Context | None = None, prop: str = NORMAL,
             priority: int = 0, name: str | None = None, inline: bool = False) -> None:
        """Schedule ``fn()`` after the work it depends on (see the module docstring).

        ``inline=True`` lets a task whose dependencies are already met run in the calling thread;
        eager operators on small arrays use it because a thread hand-off costs more than they do.
        """
        if self._bulk_threads:
            seg = getattr(self._local, "segment", None)
            if seg is not None:
                seg.append((fn, reads, writes, name, inline))
                if len(seg) >= self._local.segment_size:
                    self._flush_segment()
                return
        if inline and len(writes) == 1:
            # Fast path for a small eager op whose inputs are ready: run it now, under the
            # lock, without a Task (see _try_inline; kept inline here to save a call).
            out = writes[0]
            with self._lock:
                ready = out.writer is None and out.failure is None
                if ready:
                    for r in out.readers:
                        if not r.done:
                            ready = False
                            break
                if ready:
                    for v in reads:
                        if v.writer is not None or v.failure is not None:
                            ready = False
                            break
                if ready and self.profiler is None:
                    try:
                        fn()
                    except Exception as exc:  # stored and raised at the next wait
                        failure = _failure_of(exc, name)
                        self._unobserved.append(failure)
                        out.failure = failure
                    out.readers = []
                    return
        self._push(fn, reads, writes, ctx, prop, priority, name, inline)

    def _push(self, fn, reads, writes, ctx, prop, priority, name, inline):
        reads, writes = _dependencies(reads, writes)
        if inline and self._try_inline(fn, reads, writes, name):
            return
        task = Task(fn, reads, writes, ctx, prop, priority, name)
        if self._enqueue(task):
            self._dispatch(task)

    def _enqueue(self, task: Task) -> bool:
        """Record ``task`` as the latest user of its vars; True if nothing it depends on is
        pending (the caller then runs or dispatches it)."""
        reads, writes = task.reads, task.writes
        pending = 0
        with self._lock:
            for v in reads:
                w = v.writer
                if w is not None:
                    w.dependents.append(task)
                    pending += 1
                readers = v.readers
                readers.append(task)
                if len(readers) > 64:   # a var read many times without a write: drop finished readers
                    v.readers = [r for r in readers if not r.done]
            for v in writes:
                w = v.writer
                if w is not None:
                    w.dependents.append(task)
                    pending += 1
                for r in v.readers:
                    if not r.done:
                        r.dependents.append(task)
                        pending += 1
                v.readers = []
                v.writer = task
            task.pending = pending
            self._outstanding += 1
        return pending == 0

    def push_async(self, fn, reads=(), writes=(), ctx: Context | None = None,
                   prop: str = NORMAL, priority: int = 0, name: str | None = None,
                   inline: bool = False) -> None:
        """Schedule ``fn(on_complete)``, work that finishes later (MXNet's ``PushAsync``).

        Ordered like ``push``, but the task is done -- its writes visible, its dependents
        released, waits on it returned -- only when ``on_complete()`` is called, from any thread
        (e.g. a socket's receiving thread), once; ``on_complete(exc)`` fails the task with
        ``exc`` as ``push`` stores exceptions. An exception raised by ``fn`` itself before it
        calls ``on_complete`` fails the task too. No worker thread waits meanwhile.
        ``inline=True`` starts ``fn`` in the calling thread when nothing it depends on is
        pending. Dependents made ready by the completion are dispatched to their pools (or, in
        ``NaiveEngine``, run in the completing thread).
        """
        if self._bulk_threads and getattr(self._local, "segment", None):
            self._flush_segment()       # earlier pushes of this thread go first
        reads, writes = _dependencies(reads, writes)
        task = _AsyncTask(fn, reads, writes, ctx, prop, priority, name)
        if self._enqueue(task):
            if inline:
                self._start_async(task)
            else:
                self._dispatch(task)

    def _start_async(self, task: "_AsyncTask") -> None:
        """Start an async task's work; it completes through the callback it is given."""
        failure = _inherited_failure(task)
        if failure is not None:          # inherits a dependency's failure, like push
            self._finish_async(task, None, failure)
            return
        fn, called = task.fn, []
        profiler = self.profiler
        start = time.perf_counter() if profiler is not None else 0.0

        def on_complete(exc: BaseException | None = None) -> None:
            if called:
                raise EngineError(f"on_complete of engine work '{task.name}' called twice")
            called.append(True)
            if profiler is not None:
                profiler(task, start, time.perf_counter())
            self._finish_async(task, exc)
        try:
            fn(on_complete)
        except Exception as exc:  # stored, never raised in this (maybe a worker's) thread
            if not called:
                on_complete(exc)
                return
            # the task is done: the next wait_all raises it
            self._store_failure(exc, task.name, " after it completed")

    def _finish_async(self, task: "_AsyncTask", exc: BaseException | None,
                      failure: Failure | None = None) -> None:
        if exc is not None:
            failure = self._store_failure(exc, task.name)
        if failure is not None:
            _fail_writes(task, failure)
        for d in self._complete(task):
            self._dispatch(d)

    def _store_failure(self, exc: BaseException, name: str | None, when: str = "") -> Failure:
        """Keep ``exc``, raised by engine work ``name``, for the next wait; its Failure."""
        failure = _failure_of(exc, name, when)
        with self._lock:
            self._unobserved.append(failure)
        return failure

    def _try_inline(self, fn, reads, writes, name) -> bool:
        """Run ``fn`` now, under the engine lock, if nothing it depends on is pending.

        Only eager registry operators on small arrays ask for this: they take about a
        microsecond and never push or wait themselves, so holding the lock is cheaper than a
        Task. Nobody can observe the vars half-written: all engine bookkeeping waits for the lock.
        """
        with self._lock:
            failure = None
            for v in reads:
                if v.writer is not None:
                    return False
                if v.failure is not None:
                    failure = v.failure
            for v in writes:
                if v.writer is not None:
                    return False
                for r in v.readers:
                    if not r.done:
                        return False
                if v.failure is not None:
                    failure = v.failure
            if failure is None:
                profiler = self.profiler
                start = time.perf_counter() if profiler is not None else 0.0
                try:
                    fn()
                except Exception as exc:  # stored and raised at the next wait
                    failure = _failure_of(exc, name)
                    self._unobserved.append(failure)
                if profiler is not None:
                    profiler(_InlineRecord(name), start, time.perf_counter())
            for v in writes:
                v.readers = []
                if failure is not None and v.failure is None:
                    v.failure = failure
        return True

    # ---- running -------------------------------------------------------------------------
    def _dispatch(self, task: Task) -> None:
        raise NotImplementedError

    def _run(self, task: Task) -> None:
        """Run ``task`` and then, on a worker, any dependent it made ready for the same pool."""
        pool = current_pool()
        while task is not None:
            if task.__class__ is _AsyncTask:
                self._start_async(task)     # completes (and releases dependents) later
                return
            self._execute(task)
            ready = self._complete(task)
            task = None
            for d in ready:
                if task is None and pool is not None and self._pool_of(d) is pool:
                    task = d          # continue here: no queue round trip, no thread wake-up
                else:
                    self._dispatch(d)

    def _pool_of(self, task: Task):
        return None

    def _execute(self, task: Task) -> None:
        failure = _inherited_failure(task)
        if failure is None:
            profiler = self.profiler
            start = time.perf_counter() if profiler is not None else 0.0
            try:
                task.fn()
            except Exception as exc:  # stored and raised at the next wait, never in this thread
                failure = self._store_failure(exc, task.name)
            if profiler is not None:
                profiler(task, start, time.perf_counter())
        if failure is not None:
            _fail_writes(task, failure)

    def _complete(self, task: Task) -> list:
        """Mark ``task`` done; return the dependents that became ready."""
        ready = []
        with self._lock:
            task.done = True
            task.fn = None
            for v in task.writes:
                if v.writer is task:
                    v.writer = None
            for d in task.dependents:
                d.pending -= 1
                if d.pending == 0:
                    ready.append(d)
            task.dependents = None
            self._outstanding -= 1
            if self._outstanding == 0:
                self._idle.notify_all()
            event = task.event
        if event is not None:
            event.set()
        return ready

    # ---- waiting -------------------------------------------------------------------------
    def wait_for_var(self, var: Var) -> None:
        """Block until every write pushed to ``var`` so far has run; raise its failure if any."""
        if self._bulk_threads and getattr(self._local, "segment", None):
            self._flush_segment()
        event = None
        with self._lock:
            w = var.writer
            if w is not None:
                if w.event is None:
                    w.event = threading.Event()
                event = w.event
        if event is not None:
            self._block(event)
        failure = var.failure
        if failure is not None:
            with self._lock:
                if failure in self._unobserved:
                    self._unobserved.remove(failure)
            failure.reraise()

    def _block(self, event: threading.Event) -> None:
        pool = current_pool()
        if pool is None:
            event.wait()
            return
        # A worker waiting inside a task (a custom op calling asnumpy) runs queued work
        # meanwhile, so the task it waits for cannot be stuck behind it.
        while not event.is_set():
            pool.try_run_one(0.005)

    def wait_idle(self) -> None:
        """Block until all pushed work has run; failures stay stored for the next wait.
        Never call it from engine work (it would wait for itself)."""
        if getattr(self._local, "segment", None):
            self._flush_segment()
        with self._lock:
            while self._outstanding > 0:
                self._idle.wait()

    def wait_all(self) -> None:
        """Block until all pushed work has run; raise the first failure no wait has raised yet."""
        if current_pool() is not None:
            raise EngineError("waitall() called from inside engine work would wait for itself; "
                              "wait for the specific arrays you need instead")
        self.wait_idle()
        with self._lock:
            failures, self._unobserved = self._unobserved, []
        if failures:
            failures[0].reraise()

    # ---- bulk ----------------------------------------------------------------------------
    def set_bulk_size(self, size: int) -> int:
        """Set this thread's bulk size (consecutive pushes merged per task); return the old one."""
        old = getattr(self._local, "segment_size", self._bulk_size)
        size = int(size)
        if size < 0:
            raise ValueError(f"bulk size must be >= 0, got {size}")
        if getattr(self._local, "segment", None):
            self._flush_segment()
        was_active = getattr(self._local, "segment", None) is not None
        self._local.segment_size = size
        self._local.segment = [] if size > 1 else None
        with self._lock:
            self._bulk_threads += (size > 1) - was_active
        return old

    @contextmanager
    def bulk(self, size: int):
        """Within the block, up to ``size`` consecutive pushes of this thread run as one task."""
        old = self.set_bulk_size(size)
        try:
            yield
        finally:
            self.set_bulk_size(old)

    def _flush_segment(self) -> None:
        seg = self._local.segment
        if not seg:
            return
        self._local.segment = []
        if len(seg) == 1:
            fn, reads, writes, name, inline = seg[0]
            self._push(fn, reads, writes, None, NORMAL, 0, name, inline)
            return
        reads, writes = [], []
        for _, r, w, _, _ in seg:
            reads.extend(r)
            writes.extend(w)
        fns = [item[0] for item in seg]
        names = [item[3] or "op" for item in seg]

        def run_segment():
            for fn in fns:
                fn()
        self._push(run_segment, reads, writes, None, NORMAL, 0,
                   f"bulk[{','.join(names[:4])}{',...' if len(names) > 4 else ''}]",
                   all(item[4] for item in seg))

    def shutdown(self) -> None:
        """Finish outstanding work (for interpreter exit); errors were the caller's to observe."""
        try:
            self.wait_all()
        except Exception:  # at exit nobody is left to receive it
            pass


class _AsyncTask(Task):
    """A task pushed by ``push_async``: done when its work calls back, not when ``fn`` returns."""
    __slots__ = ()


class _InlineRecord:
    """What the profiler sees for work that ran inline (it never became a Task)."""
    __slots__ = ("name", "ctx", "prop")

    def __init__(self, name):
        self.name, self.ctx, self.prop = name, None, NORMAL


class ThreadedEngine(Engine):
    """Runs ready work on per-device worker threads and a shared copy/I-O pool."""

    def __init__(self, cpu_threads: int | None = None, gpu_threads: int | None = None,
                 io_threads: int | None = None):
        super().__init__()
        self._cpu_threads = cpu_threads or config.get("HYBRIDNET_CPU_WORKER_NTHREADS")
        self._gpu_threads = gpu_threads or config.get("HYBRIDNET_GPU_WORKER_NTHREADS")
        self._io_threads = io_threads or config.get("HYBRIDNET_IO_NTHREADS")
        self._pools: dict = {}
        self._pools_lock = threading.Lock()

    def _pool_of(self, task: Task) -> WorkerPool:
        if task.prop != NORMAL:
            key = "io"
        else:
            key = task.ctx if task.ctx is not None else Context.default_ctx
        pool = self._pools.get(key)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.get(key)
                if pool is None:
                    if key == "io":
                        pool = WorkerPool("io", self._io_threads, self._run)
                    else:
                        n = self._gpu_threads if key.is_gpu else self._cpu_threads
                        pool = WorkerPool(str(key), n, self._run)
                    self._pools[key] = pool
        return pool

    def _dispatch(self, task: Task) -> None:
        self._pool_of(task).submit(task)

    def shutdown(self) -> None:
        super().shutdown()
        for pool in self._pools.values():
            pool.stop()


class NaiveEngine(Engine):
    """Runs every push inline in the calling thread; same semantics, easy to debug."""

    def _push(self, fn, reads, writes, ctx, prop, priority, name, inline):
        super()._push(fn, reads, writes, ctx, prop, priority, name, True)

    def _dispatch(self, task: Task) -> None:
        self._run(task)


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine, created on first use from HYBRIDNET_ENGINE_TYPE."""
    return _engine or _create_engine()


def _create_engine() -> Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            apply_policy()            # BLAS threads x CPU workers = cores (engine/blas.py)
            kind = config.get("HYBRIDNET_ENGINE_TYPE")
            _engine = NaiveEngine() if kind == "NaiveEngine" else ThreadedEngine()
    return _engine


def set_engine(engine: Engine) -> Engine | None:
    """Replace the process-wide engine (after draining the old one); return the old one."""
    global _engine
    old = _engine
    if old is not None:
        old.wait_all()
    _engine = engine
    return old


def _shutdown_at_exit():
    if _engine is not None:
        _engine.shutdown()


def _reset_after_fork():
    # Worker threads do not survive fork(); the child starts with a fresh engine.
    global _engine, _engine_lock
    _engine = None
    _engine_lock = threading.Lock()


atexit.register(_shutdown_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
