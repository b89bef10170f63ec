"""Engine variables and tasks: the bookkeeping behind the dependency engine.

A ``Var`` stands for one piece of memory (an NDArray's buffer and all its views). It remembers
the task that last wrote it and the tasks that read it since; that is all the engine needs to
order work: a read waits for the last write, a write waits for the last write and every read
since (FIFO per var). A ``Failure`` stored on a var marks it as failed for good.
"""
from __future__ import annotations

import itertools

__all__ = ["Var", "Task", "Failure"]

_task_ids = itertools.count()


class Failure:
    """An exception raised by engine work, kept with its original traceback and operator name."""
    __slots__ = ("exc", "tb", "op_name")

    def __init__(self, exc: BaseException, op_name: str | None):
        self.exc, self.tb, self.op_name = exc, exc.__traceback__, op_name

    def reraise(self):
        """Raise the original exception again, with its original traceback (never a longer one)."""
        raise self.exc.with_traceback(self.tb)


class Var:
    """A unit of dependency tracking; every NDArray buffer owns one, views share it."""
    __slots__ = ("writer", "readers", "failure", "name", "__weakref__")

    def __init__(self, name: str | None = None):
        self.writer = None          # the pending Task that last wrote this var, or None
        self.readers = []           # Tasks that read this var since its last write (may be done)
        self.failure = None         # a Failure once a write to this var has failed
        self.name = name

    def __repr__(self):
        state = "failed" if self.failure else ("pending" if self.writer else "ready")
        return f"<Var {self.name or hex(id(self))} {state}>"


class Task:
    """One pushed unit of work and its place in the dependency graph."""
    __slots__ = ("fn", "reads", "writes", "ctx", "prop", "priority", "name", "pending",
                 "dependents", "done", "event", "seq")

    def __init__(self, fn, reads, writes, ctx, prop, priority, name):
        self.fn, self.reads, self.writes = fn, reads, writes
        self.ctx, self.prop, self.priority, self.name = ctx, prop, priority, name
        self.pending = 0            # dependencies not finished yet
        self.dependents = []        # tasks waiting for this one
        self.done = False
        self.event = None           # created only when somebody waits for this task
        self.seq = next(_task_ids)

    def __lt__(self, other):        # heap order among equal priorities: push order
        return self.seq < other.seq

    def __repr__(self):
        return f"<Task {self.name or self.seq} {'done' if self.done else 'pending'}>"
