"""Request tracking: match replies to requests by request id, wait with bounds, fail in bulk.

A node sends a request with a fresh id and gets a ``Pending``; the receive thread hands each
reply to ``Requests.deliver``; the caller waits on ``Pending.wait``. When the job stops, every
pending request fails at once with the reason (``fail_all``), so no caller waits forever.
A wait inside engine work helps run other queued engine work meanwhile (as the engine's own
waits do), so communication waits never starve the copy/I-O pool. Helping nests (a pull run
while waiting may wait and help in turn), so it stops at ``_HELP_DEPTH`` levels: a thousand
queued pulls must not become a thousand nested frames (the recursion limit would lose one).
"""
from __future__ import annotations

import itertools
import threading
import time

from ...engine.pool import current_pool
from .errors import KVStoreDistError, PeerFailure
from .wire import Cmd, Message, role_name

__all__ = ["Pending", "Requests", "refusal"]

_HELP_DEPTH = 16
_local = threading.local()


class Pending:
    """A request awaiting ``expected`` replies."""
    __slots__ = ("req", "expected", "replies", "error", "event", "what")

    def __init__(self, req: int, expected: int, what: str):
        self.req, self.expected, self.what = req, expected, what
        self.replies: list = []
        self.error: BaseException | None = None
        self.event = threading.Event()

    @property
    def done(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None) -> list:
        """The replies (in arrival order); raise the request's error or a timeout error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        depth = getattr(_local, "depth", 0)
        pool = current_pool() if depth < _HELP_DEPTH else None
        event = self.event
        while not event.is_set():
            if pool is None:
                event.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline -
                                                                       time.monotonic())))
            elif not event.wait(0.001):
                _local.depth = depth + 1
                try:
                    pool.try_run_one(0)
                finally:
                    _local.depth = depth
            if deadline is not None and time.monotonic() > deadline and not event.is_set():
                raise KVStoreDistError(f"{self.what}: no reply after {timeout:.1f} s")
        if self.error is not None:
            raise self.error
        return self.replies


def refusal(msg: Message) -> KVStoreDistError:
    """The error an error reply stands for, naming the refusing node and its reason."""
    reason = str(msg.body.get("error", "request refused"))[:2000]
    try:
        name = Cmd(msg.cmd).name
    except ValueError:
        name = str(msg.cmd)
    return KVStoreDistError(f"{role_name(msg.src_role)} {msg.src_rank} refused {name}: {reason}")


class Requests:
    """The requests of one node that still wait for replies."""

    def __init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._failure: BaseException | None = None

    def new(self, expected: int, what: str) -> Pending:
        pending = Pending(next(self._ids), expected, what)
        with self._lock:
            if self._failure is not None:
                pending.error = self._failure
                pending.event.set()
            elif expected > 0:
                self._pending[pending.req] = pending
            else:
                pending.event.set()
        return pending

    def deliver(self, msg: Message) -> bool:
        """Hand a reply to its request; False if no request waits for it."""
        with self._lock:
            pending = self._pending.get(msg.req)
            if pending is None:
                return False
            if msg.is_error:
                pending.error = refusal(msg)
            pending.replies.append(msg)
            if len(pending.replies) >= pending.expected or pending.error is not None:
                del self._pending[msg.req]
                pending.event.set()
        return True

    def cancel(self, pending: Pending) -> None:
        with self._lock:
            self._pending.pop(pending.req, None)

    def fail(self, pending: Pending, error: BaseException) -> None:
        """Fail one request now (unless it is already answered)."""
        with self._lock:
            if self._pending.pop(pending.req, None) is None:
                return
            pending.error = error
        pending.event.set()

    def fail_all(self, error: PeerFailure) -> None:
        """Fail every pending and every future request with ``error``."""
        with self._lock:
            self._failure = error
            pending, self._pending = list(self._pending.values()), {}
        for p in pending:
            p.error = error
            p.event.set()
