"""Membership: how a server or worker joins its job, stays in it, and leaves or stops.

``Member`` is the client side of the scheduler protocol (scheduler.py is the other side):

1. bind this node's ROUTER, connect to the scheduler, send REGISTER (role, requested rank,
   host, port, pid); wait for NODE_TABLE at most the rendezvous timeout (+1 s, so the
   scheduler's more precise error arrives first);
2. connect to the peers this role sends to (workers -> servers, servers -> workers); admit
   messages only from the nodes in the table, each bound to its rank; pass a barrier of all
   nodes, so nobody sends data to a node that does not know it yet;
3. watch the link to the scheduler (ZMTP heartbeats, answered by libzmq without the GIL,
   every interval); if it stays down for half the heartbeat timeout (after ZMTP needed the
   other half to notice), the scheduler is presumed dead and this node stops;
4. barriers go through the scheduler with per-group generation numbers;
5. ``leave()`` says goodbye cleanly; ABORT from the scheduler (a node died, stalled or failed)
   or a local fatal error stops the node: every pending request fails with ``PeerFailure``
   naming the cause, and the role's ``on_abort`` runs.
"""
from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time

from .errors import EXIT_ABORTED, KVStoreDistError, PeerFailure
from .job import JobConfig
from .requests import Requests
from .transport import Transport, TransportError, new_nonce
from .wire import Cmd, Codec, Flag, Message, Role, role_name

__all__ = ["NodeInfo", "Member", "SCHEDULER", "setup_logging"]

log = logging.getLogger("hybridnet.kvstore.dist")

SCHEDULER = "scheduler"        # the transport key of the connection to the scheduler


class NodeInfo:
    """One node of the job as the node table lists it."""
    __slots__ = ("role", "rank", "host", "port", "pid", "hostname", "nonce")

    def __init__(self, role: int, rank: int, host: str, port: int, pid: int, hostname: str,
                 nonce: int):
        self.role, self.rank, self.host, self.port = role, rank, host, port
        self.pid, self.hostname, self.nonce = pid, hostname, nonce

    def describe(self) -> str:
        return (f"{role_name(self.role)} rank {self.rank} at {self.host}:{self.port} "
                f"(pid {self.pid} on {self.hostname})")

    def to_json(self) -> dict:
        return {"role": int(self.role), "rank": self.rank, "host": self.host, "port": self.port,
                "pid": self.pid, "hostname": self.hostname, "nonce": f"{self.nonce:x}"}

    @classmethod
    def from_json(cls, d: dict) -> "NodeInfo":
        try:
            info = cls(int(d["role"]), int(d["rank"]), str(d["host"]), int(d["port"]),
                       int(d["pid"]), str(d["hostname"])[:255], int(str(d["nonce"]), 16))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"bad node table entry {str(d)[:200]}: {err}") from None
        if info.role not in (Role.SCHEDULER, Role.SERVER, Role.WORKER):
            raise ValueError(f"bad role in node table entry {info.role}")
        return info


def setup_logging(verbose: int) -> None:
    """Give the distributed logger a stderr handler unless the application configured one."""
    logger = logging.getLogger("hybridnet.kvstore.dist")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("hybridnet.dist %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    logger.propagate = False


class Member:
    """This process's membership in the job (a server or a worker).

    Args:
        job: the job settings.
        on_message: called in the receive thread with each request from a peer.
        on_tick: called in the receive thread about every 0.1 s (housekeeping).
        on_abort: called once with the ``PeerFailure`` when the job stops.
        on_unmatched: called in the receive thread with each reply no request waits for
            (a refused push: accepted pushes are not answered).
    """

    def __init__(self, job: JobConfig, on_message=None, on_tick=None, on_abort=None,
                 on_unmatched=None):
        self.job = job
        self.role = job.role
        self.nonce = new_nonce()
        self.codec = Codec(job.secret, job.job_id, job.auth, job.max_frame)
        self.transport = Transport(self.codec, job.role, -1, self.nonce,
                                   send_timeout=job.heartbeat_timeout,
                                   heartbeat=(job.heartbeat_interval, job.heartbeat_timeout / 2),
                                   verbose=job.verbose)
        self.transport.peers.open_roles = {Role.SCHEDULER}
        self.requests = Requests()
        self.transport.sink_for = self._sink_for
        self.transport.on_stream_error = self._stream_error
        self.rank = -1
        self.nodes: dict = {}                 # (role, rank) -> NodeInfo
        self.failure: PeerFailure | None = None
        self.exit_code: int | None = None
        self.stopped = threading.Event()      # set on shutdown or abort
        self._on_message, self._on_tick, self._on_abort = on_message, on_tick, on_abort
        self._on_unmatched = on_unmatched
        self._table_ready = threading.Event()
        self._closing = False
        self._barrier_gen = collections.Counter()
        self._abort_lock = threading.Lock()
        self._threads: list = []
        stall = job.stall_abort
        self.request_timeout = stall + 2 * job.heartbeat_timeout if stall > 0 else None

    @property
    def num_workers(self) -> int:
        return self.job.num_workers

    @property
    def num_servers(self) -> int:
        return self.job.num_servers

    def describe(self) -> str:
        return f"{role_name(self.role)} {self.rank}"

    # ---- joining -------------------------------------------------------------------------
    def start(self) -> None:
        """Join the job: register, wait for the node table, connect peers, start heartbeats."""
        job = self.job
        port = self.transport.bind(job.host, job.port, job.port_range, job.bind_all,
                                   avoid=job.root_port)
        self.transport.connect(SCHEDULER, Role.SCHEDULER, 0, job.root_ip, job.root_port,
                               monitor=True)
        self._spawn(self._receive_loop, "recv")
        self._send(SCHEDULER, Message(Cmd.REGISTER, body={
            "role": int(self.role), "rank": job.rank, "host": job.host, "port": port,
            "pid": os.getpid(), "hostname": socket.gethostname()}))
        limit = job.rendezvous_timeout + 1.0
        deadline = time.monotonic() + limit
        while not self._table_ready.wait(0.05):
            if self.failure is not None:
                raise self.failure
            if time.monotonic() > deadline:
                err = PeerFailure(
                    f"{role_name(self.role)} at {job.host}:{port}: no node table from the "
                    f"scheduler at {job.root_host}:{job.root_port} after {limit:.1f} s -- is the "
                    f"scheduler running, and can it reach this node at {job.host}:{port} "
                    f"(DMLC_NODE_HOST / DMLC_INTERFACE)?")
                self.abort(str(err), notify=False)
                raise err
        if self.failure is not None:
            raise self.failure
        self._spawn(self._liveness_loop, "liveness")
        # Every node has its table (and admits its peers) before any data flows.
        self.barrier("all")

    def _spawn(self, target, what: str) -> None:
        thread = threading.Thread(target=target, name=f"hybridnet-dist-{what}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _install_table(self, msg: Message) -> None:
        entries = msg.body.get("nodes")
        if not isinstance(entries, list) or len(entries) > 100000:
            raise ValueError("node table is not a list")
        nodes = [NodeInfo.from_json(e) for e in entries]
        mine = [n for n in nodes if n.nonce == self.nonce]
        if len(mine) != 1:
            raise ValueError("node table does not list this node")
        self.rank = mine[0].rank
        self.transport.rank = self.rank
        self.nodes = {(n.role, n.rank): n for n in nodes}
        peers = self.transport.peers
        for n in nodes:
            peers.expect(n.role, n.rank, n.nonce)
        peers.close()
        target = Role.SERVER if self.role == Role.WORKER else Role.WORKER
        for n in nodes:
            if n.role == target:
                self.transport.connect((n.role, n.rank), n.role, n.rank, n.host, n.port)
        if self.job.verbose >= 1:
            log.info("%s: joined as %s", self.describe(), mine[0].describe())
        self._table_ready.set()

    # ---- sending and requests ------------------------------------------------------------
    def _send(self, key, msg: Message, track: bool = False) -> list:
        return self.transport.send(key, msg, track)

    def send(self, role: int, rank: int, msg: Message, track: bool = False) -> list:
        """Send a message to peer (role, rank); raise the job's failure if it stopped."""
        if self.failure is not None:
            raise self.failure
        return self._send((role, rank), msg, track)

    def reply(self, request: Message, body: dict | None = None, frames=(), flags: int = 0,
              track: bool = False, digest: bytes | None = None) -> list:
        """Answer ``request`` (same command and request id) on the sender's connection;
        ``digest``: the frames' ``Codec.digest`` if known (saves hashing them again)."""
        key = SCHEDULER if request.src_role == Role.SCHEDULER else (request.src_role,
                                                                    request.src_rank)
        msg = Message(request.cmd, Flag.REPLY | flags, request.key, request.req, body or {},
                      list(frames), digest=digest)
        return self._send(key, msg, track)

    def reply_error(self, request: Message, error: str) -> None:
        self.reply(request, {"error": error[:2000]}, flags=Flag.ERROR)

    def request(self, key, msg: Message, what: str):
        """Send a request and return its ``Pending`` (one reply expected)."""
        pending = self.requests.new(1, what)
        msg.req = pending.req
        try:
            self._send(key, msg)
        except TransportError as err:
            self.requests.cancel(pending)
            raise PeerFailure(str(err)) from None
        return pending

    def barrier(self, group: str = "worker") -> None:
        """Wait until every active member of ``group`` ('worker', 'server', 'all') arrives."""
        gen = self._barrier_gen[group]
        self._barrier_gen[group] += 1
        pending = self.request(SCHEDULER, Message(Cmd.BARRIER, body={"group": group, "gen": gen}),
                               f"barrier {gen} of group {group!r}")
        pending.wait(self.request_timeout)

    def leave(self) -> None:
        """Tell the scheduler this node is done (a clean exit, not a failure)."""
        if self.failure is not None:
            return
        pending = self.request(SCHEDULER, Message(Cmd.LEAVE), "leave")
        pending.wait(self.job.heartbeat_timeout)

    # ---- receiving -----------------------------------------------------------------------
    def _receive_loop(self) -> None:
        next_tick = time.monotonic()
        while not self._closing:
            try:
                item = self.transport.recv(0.05)
            except Exception as err:   # a closed socket at shutdown, or a zmq failure
                if not self._closing:
                    self.abort(f"{self.describe()}: receive loop failed: {err}")
                return
            if item is not None:
                try:
                    self._handle(*item)
                except Exception as err:  # a bug must stop the job loudly, not hang it
                    log.exception("%s: failed handling a message", self.describe())
                    self.abort(f"{self.describe()} failed handling a message: "
                               f"{type(err).__name__}: {err}")
                    return
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + 0.1
                self.requests.expire(now)
                if self._on_tick is not None and self._table_ready.is_set():
                    self._on_tick(now)

    def _handle(self, identity: bytes, msg: Message) -> None:
        if msg.src_role == Role.SCHEDULER:
            cmd = msg.cmd
            if cmd == Cmd.NODE_TABLE:
                if not self._table_ready.is_set():
                    self._install_table(msg)
                return
            if cmd == Cmd.ABORT:
                self.abort(str(msg.body.get("reason", "stopped by the scheduler"))[:2000],
                           notify=False)
                return
            if cmd == Cmd.SHUTDOWN:
                log.info("%s: every worker has left; shutting down", self.describe())
                self.exit_code = 0
                self.stopped.set()
                return
            if cmd == Cmd.REGISTER and msg.is_error:
                self.abort(f"the scheduler refused {role_name(self.role)} registration: "
                           f"{str(msg.body.get('error'))[:500]}", notify=False, code=1)
                return
            if msg.is_reply:
                self.requests.deliver(msg)
            return
        if msg.is_reply:
            if not self.requests.deliver(msg) and self._on_unmatched is not None:
                self._on_unmatched(msg)
        elif self._on_message is not None:
            self._on_message(msg)

    def _sink_for(self, head: Message):
        """Receive thread: where a streamed message's data goes (a reply's, as its request
        says; None: new buffers)."""
        if head.is_reply and head.src_role != Role.SCHEDULER:
            return self.requests.sink_for(head)
        return None

    def _stream_error(self, head: Message, error) -> None:
        """Receive thread: a streamed reply failed after its data went to its request's
        buffers; the request fails (nothing else will answer it)."""
        self.requests.fail_req(head.req, KVStoreDistError(
            f"the reply of {role_name(head.src_role)} {head.src_rank} was rejected ({error}); "
            f"the output's content is undefined"))

    # ---- liveness ------------------------------------------------------------------------
    def _liveness_loop(self) -> None:
        job = self.job
        grace = job.heartbeat_timeout / 2
        while not self._closing and self.failure is None:
            down = self.transport.link_down_for(SCHEDULER, time.monotonic())
            if down > grace:
                self.abort(f"the scheduler at {job.root_host}:{job.root_port} is unreachable: "
                           f"its connection was lost {down:.1f} s ago and not re-established "
                           f"(heartbeat timeout {job.heartbeat_timeout:.1f} s); presumed dead",
                           notify=False)
                return
            self.stopped.wait(min(0.1, job.heartbeat_interval))

    def abort(self, reason: str, notify: bool = True, code: int = EXIT_ABORTED) -> None:
        """Stop this node: fail pending requests, tell the scheduler (if ``notify``), run
        ``on_abort``. Idempotent."""
        with self._abort_lock:
            if self.failure is not None or self.exit_code == 0:
                return
            self.failure = PeerFailure(f"distributed job stopped: {reason}")
            self.exit_code = code
        log.error("%s: %s", self.describe(), self.failure)
        if notify:
            try:
                self._send(SCHEDULER, Message(Cmd.FAIL, body={"reason": reason[:2000]}))
            except Exception:  # the scheduler may be the one that is gone
                pass
        self.requests.fail_all(self.failure)
        self.stopped.set()
        if self._on_abort is not None:
            self._on_abort(self.failure)

    def close(self, linger: float = 1.0) -> None:
        """Stop the threads and close the sockets."""
        self._closing = True
        self.stopped.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)
        self.transport.close(linger)
