"""The scheduler: rendezvous, node table, barriers, heartbeats, and stopping the job.

It carries no data. Its promises:

- **Rendezvous with a deadline.** Servers and workers REGISTER; a node asking for a rank (the
  launcher passes its task index) gets exactly that rank, the others fill the free ranks in
  sorted (host, port, pid) order -- so ranks are deterministic. When all have registered, every
  node gets the node table. If they have not all arrived within the rendezvous timeout, every
  registered node gets ABORT naming the missing roles and ranks, and the scheduler exits 1.
- **Barriers** per group ('worker', 'server', 'all') with generation numbers; they count only
  members that have not left.
- **Liveness.** The scheduler holds a connection to every node, kept alive by ZMTP heartbeats
  that libzmq answers without Python (so a busy node is never mistaken for a dead one); a node
  whose connection is lost (death, freeze or network cut: noticed at once, or after half the
  heartbeat timeout) and not re-established within the other half is declared dead, and every
  other node gets ABORT naming its role, rank, host:port and pid. A node that reports
  its own failure (FAIL) stops the job the same way. A barrier stuck longer than the stall
  limits is logged, then aborted, naming the missing ranks.
- **Clean end.** Workers LEAVE when done; when all have left, servers get SHUTDOWN and the
  scheduler exits 0.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time

from .errors import EXIT_ABORTED, EXIT_FAILED
from .job import JobConfig
from .membership import NodeInfo
from .transport import Transport, TransportError, new_nonce
from .wire import Cmd, Codec, Flag, Message, Role, role_name

__all__ = ["Scheduler", "main"]

log = logging.getLogger("hybridnet.kvstore.dist")

_GROUPS = {"worker": (Role.WORKER,), "server": (Role.SERVER,),
           "all": (Role.WORKER, Role.SERVER)}


class _Node:
    """The scheduler's view of one registered node."""
    __slots__ = ("info", "left")

    def __init__(self, info: NodeInfo):
        self.info, self.left = info, False


class Scheduler:
    """Runs the scheduler role of one job until it ends; ``run()`` returns the exit code."""

    def __init__(self, job: JobConfig):
        self.job = job
        self.nonce = new_nonce()
        codec = Codec(job.secret, job.job_id, job.auth, job.max_frame)
        self.transport = Transport(codec, Role.SCHEDULER, 0, self.nonce,
                                   send_timeout=job.heartbeat_interval,
                                   heartbeat=(job.heartbeat_interval, job.heartbeat_timeout / 2),
                                   verbose=job.verbose)
        self.transport.peers.open_roles = {Role.SERVER, Role.WORKER}
        self.nodes: dict = {}                # nonce -> _Node
        self.running = False
        self.barriers: dict = {}             # group -> [gen, {nonce: req}, started]
        self._warned: set = set()
        self.exit_code: int | None = None

    # ---- main loop -----------------------------------------------------------------------
    def run(self) -> int:
        job = self.job
        port = self.transport.bind(job.root_ip, job.root_port, None, job.bind_all)
        self.me = NodeInfo(Role.SCHEDULER, 0, job.root_ip, port, os.getpid(),
                           socket.gethostname(), self.nonce)
        if job.verbose >= 1:
            log.info("scheduler listening at %s:%d for %d server(s) and %d worker(s)",
                     job.root_host, port, job.num_servers, job.num_workers)
        started = time.monotonic()
        tick = min(0.1, job.heartbeat_interval / 2)
        try:
            while self.exit_code is None:
                item = self.transport.recv(tick)
                if item is not None:
                    self._handle(*item)
                now = time.monotonic()
                if not self.running:
                    if now - started > job.rendezvous_timeout:
                        self._rendezvous_timeout(now - started)
                else:
                    self._check_liveness(now)
                    self._check_barriers(now)
        finally:
            # ABORT / SHUTDOWN messages get a moment to leave; peers are local or fast.
            self.transport.close(linger=2.0 if self.exit_code == 0 else 1.0)
        return self.exit_code

    def _handle(self, identity: bytes, msg: Message) -> None:
        node = self.nodes.get(msg.nonce)
        cmd = msg.cmd
        if cmd == Cmd.REGISTER:
            self._register(msg)
        elif node is None:
            return            # a member's message from before its registration was accepted
        elif cmd == Cmd.BARRIER:
            self._barrier(node, msg)
        elif cmd == Cmd.LEAVE:
            self._leave(node, msg)
        elif cmd == Cmd.FAIL:
            self.abort(f"{node.info.describe()} failed: "
                       f"{str(msg.body.get('reason', '?'))[:2000]}", EXIT_ABORTED, node)

    def _send(self, node: _Node, msg: Message) -> None:
        try:
            self.transport.send(node.info.nonce, msg)
        except TransportError as err:
            log.warning("scheduler: %s", err)

    # ---- rendezvous ----------------------------------------------------------------------
    def _register(self, msg: Message) -> None:
        body = msg.body
        if msg.nonce in self.nodes:
            return
        try:
            role = Role(int(body["role"]))
            info = NodeInfo(role, int(body["rank"]), str(body["host"])[:255], int(body["port"]),
                            int(body["pid"]), str(body["hostname"])[:255], msg.nonce)
        except (KeyError, TypeError, ValueError):
            log.warning("scheduler: ignored a malformed REGISTER %s", str(body)[:200])
            self.transport.peers.forget(msg.nonce)
            return
        self.transport.connect(msg.nonce, role, -1, info.host, info.port, monitor=True)
        error = self._registration_error(info)
        if error:
            log.error("scheduler: refused %s: %s", info.describe(), error)
            self.transport.send(msg.nonce, Message(Cmd.REGISTER, Flag.REPLY | Flag.ERROR,
                                                   req=msg.req, body={"error": error}))
            self.transport.peers.forget(msg.nonce)
            return
        self.nodes[msg.nonce] = _Node(info)
        if self.job.verbose >= 1:
            log.info("scheduler: %s registered (asks for rank %d)", role_name(role), info.rank)
        if len(self.nodes) == self.job.num_servers + self.job.num_workers:
            self._assign_and_publish()

    def _registration_error(self, info: NodeInfo) -> str | None:
        if self.running:
            return "the job is already running (no joins after rendezvous)"
        size = self.job.num_servers if info.role == Role.SERVER else self.job.num_workers
        same = [n.info for n in self.nodes.values() if n.info.role == info.role]
        if len(same) >= size:
            return f"the job already has its {size} {role_name(info.role)}s"
        if info.rank >= size:
            return f"rank {info.rank} asked for, but there are only {size} {role_name(info.role)}s"
        if info.rank >= 0 and any(n.rank == info.rank for n in same):
            holder = next(n for n in same if n.rank == info.rank)
            return f"rank {info.rank} is already held by {holder.describe()}"
        return None

    def _assign_and_publish(self) -> None:
        for role in (Role.SERVER, Role.WORKER):
            infos = [n.info for n in self.nodes.values() if n.info.role == role]
            taken = {i.rank for i in infos if i.rank >= 0}
            free = iter(r for r in range(len(infos)) if r not in taken)
            for info in sorted((i for i in infos if i.rank < 0),
                               key=lambda i: (i.host, i.port, i.pid)):
                info.rank = next(free)
        table = [self.me] + sorted((n.info for n in self.nodes.values()),
                                   key=lambda i: (i.role, i.rank))
        peers = self.transport.peers
        for info in table[1:]:
            peers.expect(info.role, info.rank, info.nonce)
            self.transport.set_rank(info.nonce, info.rank)
        peers.close()
        self.running = True
        body = {"nodes": [i.to_json() for i in table]}
        for node in self.nodes.values():
            self._send(node, Message(Cmd.NODE_TABLE, body=body))
        if self.job.verbose >= 1:
            log.info("rendezvous complete: %d server(s), %d worker(s)", self.job.num_servers,
                     self.job.num_workers)
            for info in table:
                log.info("  %-9s %3d  %s:%d  pid %d", role_name(info.role), info.rank, info.host,
                         info.port, info.pid)

    def _rendezvous_timeout(self, waited: float) -> None:
        parts = []
        for role, size in ((Role.SERVER, self.job.num_servers),
                           (Role.WORKER, self.job.num_workers)):
            infos = [n.info for n in self.nodes.values() if n.info.role == role]
            if len(infos) < size:
                asked = {i.rank for i in infos if i.rank >= 0}
                missing = [r for r in range(size) if r not in asked][:size - len(infos)]
                ranks = ("rank " if len(missing) == 1 else "ranks ") + \
                    ", ".join(str(r) for r in missing)
                parts.append(f"{len(infos)} of {size} {role_name(role)}s registered, missing "
                             f"{role_name(role)} {ranks}")
        self.abort(f"rendezvous timed out after {waited:.1f} s: " + "; ".join(parts) +
                   " (HYBRIDNET_KVSTORE_RENDEZVOUS_TIMEOUT)", EXIT_FAILED)

    # ---- barriers ------------------------------------------------------------------------
    def _barrier(self, node: _Node, msg: Message) -> None:
        group, gen = msg.body.get("group"), msg.body.get("gen")
        if group not in _GROUPS or type(gen) is not int or node.info.role not in _GROUPS[group]:
            self._send(node, Message(Cmd.BARRIER, Flag.REPLY | Flag.ERROR, req=msg.req,
                                     body={"error": f"bad barrier request {str(msg.body)[:100]}"}))
            return
        state = self.barriers.setdefault(group, [0, {}, time.monotonic()])
        if gen != state[0]:
            self._send(node, Message(Cmd.BARRIER, Flag.REPLY | Flag.ERROR, req=msg.req, body={
                "error": f"{node.info.describe()} is at barrier {gen} of group {group!r}, the "
                         f"job at barrier {state[0]} (barrier calls differ between nodes)"}))
            return
        if not state[1]:
            state[2] = time.monotonic()
        state[1][node.info.nonce] = msg.req
        self._release_barrier(group)

    def _members(self, group: str) -> list:
        return [n for n in self.nodes.values() if n.info.role in _GROUPS[group] and not n.left]

    def _release_barrier(self, group: str) -> None:
        state = self.barriers.get(group)
        if not state or not state[1]:
            return
        members = self._members(group)
        if all(n.info.nonce in state[1] for n in members):
            arrived = state[1]
            state[0] += 1
            state[1] = {}
            self._warned.discard(group)
            for nonce, req in arrived.items():
                node = self.nodes.get(nonce)
                if node is not None:
                    self._send(node, Message(Cmd.BARRIER, Flag.REPLY, req=req))

    def _check_barriers(self, now: float) -> None:
        job = self.job
        for group, (gen, arrived, started) in self.barriers.items():
            if not arrived:
                continue
            waited = now - started
            missing = [n.info for n in self._members(group) if n.info.nonce not in arrived]
            names = ", ".join(f"{role_name(i.role)} {i.rank}" for i in missing)
            if job.stall_abort > 0 and waited > job.stall_abort:
                self.abort(f"barrier {gen} of group {group!r} waited {waited:.1f} s for {names} "
                           f"(HYBRIDNET_KVSTORE_STALL_ABORT)", EXIT_FAILED)
                return
            if job.stall_warn > 0 and waited > job.stall_warn and group not in self._warned:
                self._warned.add(group)
                log.warning("scheduler: barrier %d of group %r has waited %.1f s for %s", gen,
                            group, waited, names)

    # ---- liveness and the end ------------------------------------------------------------
    def _check_liveness(self, now: float) -> None:
        timeout = self.job.heartbeat_timeout
        for node in self.nodes.values():
            down = self.transport.link_down_for(node.info.nonce, now)
            if not node.left and down > timeout / 2:
                self.abort(f"{node.info.describe()} is unreachable: its connection was lost "
                           f"{down:.1f} s ago and not re-established (heartbeat timeout "
                           f"{timeout:.1f} s); presumed dead", EXIT_ABORTED, node)
                return

    def _leave(self, node: _Node, msg: Message) -> None:
        node.left = True
        self._send(node, Message(Cmd.LEAVE, Flag.REPLY, req=msg.req))
        if self.job.verbose >= 1:
            log.info("scheduler: %s left", node.info.describe())
        for group in list(self.barriers):
            self._release_barrier(group)
        workers = [n for n in self.nodes.values() if n.info.role == Role.WORKER]
        if all(n.left for n in workers):
            for n in self.nodes.values():
                if n.info.role == Role.SERVER:
                    self._send(n, Message(Cmd.SHUTDOWN))
            if self.job.verbose >= 1:
                log.info("scheduler: every worker has left; job done")
            self.exit_code = 0

    def abort(self, reason: str, code: int, culprit: _Node | None = None) -> None:
        """Stop the job: every other node gets ABORT with ``reason``; exit with ``code``."""
        log.error("scheduler: stopping the job: %s", reason)
        for node in self.nodes.values():
            if node is not culprit and not node.left:
                self._send(node, Message(Cmd.ABORT, body={"reason": reason}))
        self.exit_code = code


def main() -> int:
    """Entry point of ``python -m hybridnet.kvstore.dist.scheduler`` (DMLC_* environment)."""
    from . import run_role
    return run_role("scheduler")


if __name__ == "__main__":
    sys.exit(main())
