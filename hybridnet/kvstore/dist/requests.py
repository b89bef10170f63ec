"""Request tracking: match replies to requests by request id, wait with bounds, fail in bulk.

A node sends a request with a fresh id and gets a ``Pending``; the receive thread hands each
reply to ``Requests.deliver``. The caller either waits (``Pending.wait``) or registers a
callback run once the request is answered or failed (``Requests.when_done``): a worker's pull
completes its engine task that way, from the receive thread, so no engine thread ever blocks
on the network. When the job stops, every pending request fails at once with the reason
(``fail_all``), so no caller waits forever; a request given a ``timeout`` fails after it
(``expire``, called by the receive thread) if no reply came. A request may name where the data
of its (streamed) reply goes (``set_sink``): the receive thread takes it with ``sink_for``.
"""
from __future__ import annotations

import itertools
import threading
import time

from .errors import KVStoreDistError, PeerFailure
from .wire import Cmd, Message, role_name

__all__ = ["Pending", "Requests", "refusal"]


class Pending:
    """A request awaiting ``expected`` replies."""
    __slots__ = ("req", "expected", "replies", "error", "event", "what", "callback", "timeout",
                 "deadline", "sink", "sink_taken")

    def __init__(self, req: int, expected: int, what: str, timeout: float | None = None):
        self.req, self.expected, self.what = req, expected, what
        self.replies: list = []
        self.error: BaseException | None = None
        self.event = threading.Event()
        self.callback = None
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.sink = None            # buffers for the data frames of a streamed reply
        self.sink_taken = False     # a reply's stream was started (into ``sink`` if set)

    @property
    def done(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None) -> list:
        """The replies (in arrival order); raise the request's error or a timeout error."""
        if not self.event.wait(timeout):
            raise KVStoreDistError(f"{self.what}: no reply after {timeout:.1f} s")
        if self.error is not None:
            raise self.error
        return self.replies

    def _finish(self, callback) -> None:
        """Release waiters and run the callback (taken from ``callback`` under the lock)."""
        self.event.set()
        if callback is not None:
            callback(self)


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

    def new(self, expected: int, what: str, timeout: float | None = None) -> Pending:
        """A request expecting ``expected`` replies; with ``timeout`` (seconds) it fails by
        itself when none came in time (see ``expire``)."""
        pending = Pending(next(self._ids), expected, what, timeout)
        with self._lock:
            if self._failure is not None:
                pending.error = self._failure
                pending.event.set()
            elif expected > 0:
                self._pending[pending.req] = pending
            else:
                pending.event.set()
        return pending

    def when_done(self, pending: Pending, callback) -> None:
        """Run ``callback(pending)`` once ``pending`` is answered or failed: now (in this
        thread) if it already is, else in the thread that completes it."""
        with self._lock:
            if pending.req in self._pending:
                pending.callback = callback
                return
        callback(pending)

    def set_sink(self, pending: Pending, buffers: list) -> None:
        """Receive the data frames of ``pending``'s reply straight into ``buffers`` (writable
        uint8 arrays), if it is streamed and has not started arriving yet."""
        with self._lock:
            if pending.req in self._pending and not pending.sink_taken:
                pending.sink = buffers

    def sink_for(self, msg: Message):
        """Receive thread, a streamed reply starts: the buffers its request set, or None."""
        with self._lock:
            pending = self._pending.get(msg.req)
            if pending is None:
                return None
            pending.sink_taken = True
            return pending.sink

    def _take(self, pending: Pending):
        """Under the lock: ``pending`` leaves the table; its callback (if any) is returned."""
        del self._pending[pending.req]
        callback, pending.callback = pending.callback, None
        return callback

    def deliver(self, msg: Message) -> bool:
        """Hand a reply to its request; False if no request waits for it."""
        with self._lock:
            pending = self._pending.get(msg.req)
            if pending is None:
                return False
            if msg.is_error:
                pending.error = refusal(msg)
            pending.replies.append(msg)
            if len(pending.replies) < pending.expected and pending.error is None:
                return True
            callback = self._take(pending)
        pending._finish(callback)
        return True

    def fail_req(self, req: int, error: BaseException) -> None:
        """Fail request ``req`` now, if it still waits."""
        with self._lock:
            pending = self._pending.get(req)
        if pending is not None:
            self.fail(pending, error)

    def cancel(self, pending: Pending) -> None:
        with self._lock:
            self._pending.pop(pending.req, None)

    def fail(self, pending: Pending, error: BaseException) -> None:
        """Fail one request now (unless it is already answered)."""
        with self._lock:
            if pending.req not in self._pending:
                return
            pending.error = error
            callback = self._take(pending)
        pending._finish(callback)

    def expire(self, now: float) -> None:
        """Fail the requests whose timeout passed (a reply lost on a broken connection)."""
        with self._lock:
            late = [p for p in self._pending.values()
                    if p.deadline is not None and now > p.deadline]
        for pending in late:
            self.fail(pending, KVStoreDistError(f"{pending.what}: no reply after "
                                                f"{pending.timeout:.1f} s"))

    def fail_all(self, error: PeerFailure) -> None:
        """Fail every pending and every future request with ``error``."""
        with self._lock:
            self._failure = error
            failed = []
            for pending in list(self._pending.values()):
                pending.error = error
                failed.append((pending, self._take(pending)))
        for pending, callback in failed:
            pending._finish(callback)
