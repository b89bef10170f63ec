"""The server: owns keys (or slices of big keys), merges pushes, runs the optimizer.

All requests are handled one at a time by the receive thread, so updates of one server are
serial (as MXNet's executor thread makes them).

``dist_sync`` (the default, set by worker 0):

- a round of a key collects exactly one push from every *active* worker; a second push of the
  same rank in the same round is refused with an error to that rank, and the round is left as
  it was;
- when the round is complete the pushes are summed **in rank order** (c0 + c1 + c2 ..., in the
  key's dtype) -- the result is bit-identical run to run and to a one-process reference -- and
  the updater runs on (key, merged, stored), or the merged sum replaces the stored value when
  no optimizer was set;
- a pull is answered once the round holding the puller's last push is complete, so "push then
  pull" always sees the update. A push may ask for that answer in advance (body ``pull``: the
  request id of the worker's coming pull), saving the pull request. An accepted push is not answered (a worker's messages are
  handled in the order it sent them, so its next pull or SYNC observes the push); a refused
  one is answered at once with the error.

``dist_async``: each push is applied when it arrives (an optimizer is required); updates are
atomic but unordered, none is lost.

**Uneven data / leaving.** A worker that is done (its script ends, or ``kv.close()``) sends
LEAVE to every server first. From then on rounds complete with the contributions of the workers
still active; a round that waited only for the leaving worker completes at once. The merged sum
then covers fewer workers; ``rescale_grad`` is not changed.

**Stalls.** A round open longer than HYBRIDNET_KVSTORE_STALL_WARN is logged with the missing
ranks; longer than HYBRIDNET_KVSTORE_STALL_ABORT stops the job.
"""
from __future__ import annotations

import logging
import resource
import sys
import time

import numpy as np
import zmq

from ... import config
from .compression import TwoBitCompression, packed_size, parse_compression
from .errors import EXIT_ABORTED, EXIT_FAILED, PeerFailure
from .job import JobConfig
from .membership import Member
from .wire import Cmd, Flag, Message, Role, WireError, array_meta, frame_array

__all__ = ["KVServer", "main", "memory_kib"]

log = logging.getLogger("hybridnet.kvstore.dist")


class _Key:
    """One key (or this server's slice of a big key)."""
    __slots__ = ("name", "dtype", "dtype_name", "wire_shape", "shape", "value", "value_nd", "merged", "merged_nd", "round",
                 "contrib", "pushed_round", "pulls", "opened", "updates", "inflight", "warned",
                 "digest", "pushed_digest")

    def __init__(self, name, value: np.ndarray):
        self.name = name
        self.dtype, self.shape = value.dtype, value.shape
        self.dtype_name, self.wire_shape = value.dtype.name, list(value.shape)
        self.value = value
        self.value_nd = self.merged = self.merged_nd = None
        self.round = 0                # completed rounds
        self.contrib: dict = {}       # rank -> array pushed in the open round
        self.pushed_round: dict = {}  # rank -> round its last accepted push belongs to
        self.pulls: list = []         # pull requests waiting for the open round
        self.opened = 0.0
        self.updates = 0
        self.inflight: list = []      # trackers of zero-copy sends of ``value``
        self.warned = False
        self.digest = None            # Codec.digest of ``value`` once computed (or received)
        self.pushed_digest = None     # Codec.digest of the last push's bytes, as received

    def label(self) -> str:
        return f"key {self.name!r}"


class KVServer:
    """The server role of one job; ``run()`` serves until shutdown or abort and returns the
    exit code."""

    def __init__(self, job: JobConfig):
        self.job = job
        self.member = Member(job, on_message=self._on_message, on_tick=self._on_tick)
        self.keys: dict = {}
        self.sync = True
        self.updater = None
        self.codec: TwoBitCompression | None = None
        self.active = set(range(job.num_workers))
        self.open: dict = {}          # key id -> _Key with an open sync round
        self.pushes = 0

    @property
    def name(self) -> str:
        return f"server {self.member.rank}"

    def run(self) -> int:
        try:
            self.member.start()
        except PeerFailure:
            self.member.close(0)
            return self.member.exit_code or EXIT_ABORTED
        self.member.stopped.wait()
        code = self.member.exit_code if self.member.exit_code is not None else EXIT_ABORTED
        self.member.close(linger=1.0 if code == 0 else 0.0)   # an aborted job stops at once
        return code

    # ---- dispatch ------------------------------------------------------------------------
    def _on_message(self, msg: Message) -> None:
        if msg.src_role != Role.WORKER:
            return
        handler = self._HANDLERS.get(msg.cmd)
        if handler is None:
            self.member.reply_error(msg, f"servers do not handle command {Cmd(msg.cmd).name}")
            return
        try:
            handler(self, msg)
        except (WireError, _Refused) as err:
            self.member.reply_error(msg, str(err))

    def _key(self, msg: Message) -> _Key:
        key = self.keys.get(msg.key)
        if key is None:
            raise _Refused(f"key {msg.body.get('name', msg.key)!r} was never initialized on "
                           f"{self.name} (call kv.init first)")
        return key

    def _incoming(self, msg: Message, key: _Key) -> np.ndarray:
        """The pushed array of ``msg`` for ``key`` (decoded if compressed), checked."""
        if msg.flags & Flag.COMPRESSED:
            if self.codec is None:
                raise _Refused("compressed push, but no gradient compression was set")
            n = int(np.prod(key.shape))
            codes = frame_array(msg, 0, {"dtype": "float32", "shape": [packed_size(n)]})
            return self.codec.decode(codes, n).reshape(key.shape)
        body = msg.body
        if body.get("dtype") != key.dtype_name or body.get("shape") != key.wire_shape:
            raise _Refused(f"push to {key.label()}: {body.get('dtype')} "
                           f"{tuple(body.get('shape') or ())} does not match the "
                           f"{key.dtype.name} {key.shape} it was initialized with")
        return frame_array(msg, 0)

    # ---- commands ------------------------------------------------------------------------
    def _init(self, msg: Message) -> None:
        if msg.key in self.keys:
            raise _Refused(f"key {msg.body.get('name', msg.key)!r} is already initialized")
        value = frame_array(msg, 0)   # the received bytes, read-only; copied on first update
        name = msg.body.get("name", msg.key)
        key = self.keys[msg.key] = _Key(name if isinstance(name, (int, str)) else msg.key, value)
        key.digest = msg.digest
        self.member.reply(msg)

    def _set_mode(self, msg: Message) -> None:
        sync = msg.body.get("sync")
        if not isinstance(sync, bool):
            raise _Refused("SET_MODE needs a boolean 'sync'")
        if sync != self.sync and any(k.round or k.contrib for k in self.keys.values()):
            raise _Refused("the sync mode cannot change after pushes began")
        self.sync = sync
        self.member.reply(msg)

    def _set_optimizer(self, msg: Message) -> None:
        from ...optimizer import from_spec, get_updater
        spec = msg.body.get("spec")
        try:
            optimizer = from_spec(spec, allow_import=config.get("HYBRIDNET_KVSTORE_ALLOW_IMPORT"))
        except Exception as err:  # any bad spec becomes an error for the sending worker
            raise _Refused(f"cannot build the optimizer: {type(err).__name__}: {err}") from None
        self.updater = get_updater(optimizer)
        self.member.reply(msg)

    def _set_compression(self, msg: Message) -> None:
        try:
            params = parse_compression(msg.body.get("params"))
        except Exception as err:
            raise _Refused(str(err)) from None
        self.codec = TwoBitCompression(params["threshold"]) if params["type"] == "2bit" else None
        self.member.reply(msg)

    def _push(self, msg: Message) -> None:
        key = self._key(msg)
        rank = msg.src_rank
        if bool(msg.flags & Flag.ASYNC) == self.sync:
            mine = "dist_sync" if self.sync else "dist_async"
            raise _Refused(f"worker {rank} pushes as {'dist_async' if self.sync else 'dist_sync'}"
                           f", but worker 0 set the servers to {mine}")
        if rank not in self.active:
            raise _Refused(f"worker {rank} has left the job and cannot push")
        grad = self._incoming(msg, key)
        self.pushes += 1
        if not self.sync:
            if self.updater is None:
                raise _Refused("dist_async applies each push with the servers' optimizer: call "
                               "kv.set_optimizer(...) before pushing")
            self._apply(key, grad)
            key.round += 1
            return
        if rank in key.contrib:
            raise _Refused(f"worker {rank} pushed {key.label()} twice in round {key.round}; a "
                           f"rank contributes once per round (pull before pushing again)")
        if not key.contrib:
            key.opened = time.monotonic()
            self.open[msg.key] = key
        key.contrib[rank] = grad
        key.pushed_digest = None if msg.flags & Flag.COMPRESSED else msg.digest
        key.pushed_round[rank] = key.round
        early = msg.body.get("pull")
        if type(early) is int and early > 0:
            # the worker's pull after this push, asked for in advance: answered as a PULL
            key.pulls.append(Message(Cmd.PULL, key=msg.key, req=early, src_role=msg.src_role,
                                     src_rank=rank))
        self._maybe_complete(msg.key, key)

    def _pull(self, msg: Message) -> None:
        key = self._key(msg)
        if self.sync and key.pushed_round.get(msg.src_rank, -1) >= key.round:
            key.pulls.append(msg)      # answered when the round holding its push completes
            return
        self._send_value(msg, key)

    def _sync(self, msg: Message) -> None:
        self.member.reply(msg)      # every earlier message of the sender was handled

    def _leave(self, msg: Message) -> None:
        self.active.discard(msg.src_rank)
        self.member.reply(msg)
        for kid, key in list(self.open.items()):
            self._maybe_complete(kid, key)

    def _stats(self, msg: Message) -> None:
        transport = self.member.transport
        self.member.reply(msg, {
            "keys": len(self.keys), "pushes": self.pushes,
            "updates": {str(k.name): k.updates for k in self.keys.values()},
            "elements": {str(k.name): int(np.prod(k.shape)) for k in self.keys.values()},
            "bytes_recv": sum(transport.bytes_recv.values()),
            "bytes_sent": sum(transport.bytes_sent.values()),
            "messages_recv": transport.messages_recv,
            "drops": dict(transport.drops.counts), "sync": self.sync,
            "cpu_seconds": time.process_time(), "page_faults": _page_faults(),
            **memory_kib()})

    def _state_get(self, msg: Message) -> None:
        if self.updater is None:
            raise _Refused("no optimizer was set on the servers, so there are no states")
        arrays, meta = self.updater.state_arrays()
        arrays = [np.ascontiguousarray(a) for a in arrays]
        self.member.reply(msg, {"meta": meta, "arrays": [array_meta(a) for a in arrays]},
                          frames=arrays)

    def _state_set(self, msg: Message) -> None:
        if self.updater is None:
            raise _Refused("call kv.set_optimizer before loading optimizer states")
        metas, meta = msg.body.get("arrays"), msg.body.get("meta")
        if not isinstance(metas, list) or len(metas) != len(msg.frames) or \
                not isinstance(meta, dict):
            raise _Refused("STATE_SET needs 'meta' and one array description per frame")
        arrays = [np.array(frame_array(msg, i, m)) for i, m in enumerate(metas)]
        try:
            self.updater.load_state_arrays(arrays, meta)
        except Exception as err:
            raise _Refused(f"cannot load optimizer states: {type(err).__name__}: {err}") from None
        self.member.reply(msg)

    _HANDLERS = {Cmd.INIT: _init, Cmd.PUSH: _push, Cmd.PULL: _pull, Cmd.LEAVE: _leave,
                 Cmd.SET_MODE: _set_mode, Cmd.SET_OPTIMIZER: _set_optimizer,
                 Cmd.SET_COMPRESSION: _set_compression, Cmd.STATS: _stats,
                 Cmd.STATE_GET: _state_get, Cmd.STATE_SET: _state_set, Cmd.SYNC: _sync}

    # ---- rounds and updates --------------------------------------------------------------
    def _maybe_complete(self, kid: int, key: _Key) -> None:
        if not key.contrib or not self.active.issubset(key.contrib):
            return
        contrib = [key.contrib[r] for r in sorted(key.contrib)]
        digest = None
        if self.updater is None and len(contrib) == 1:
            merged = contrib[0]          # adopted as the value by _apply: no copy
            digest = key.pushed_digest   # ... nor a hash pass to answer pulls with it
        else:
            if self.updater is None:
                merged = self._writable(key)   # the sum becomes the value: add in place
            else:
                if key.merged is None:
                    key.merged = np.empty(key.shape, key.dtype)
                merged = key.merged
            if len(contrib) == 1:
                np.copyto(merged, contrib[0])
            else:
                np.add(contrib[0], contrib[1], out=merged)
                for c in contrib[2:]:
                    np.add(merged, c, out=merged)
        self._apply(key, merged, digest)
        key.contrib = {}
        key.round += 1
        key.warned = False
        self.open.pop(kid, None)
        pulls, key.pulls = key.pulls, []
        for pull in pulls:
            self._send_value(pull, key)

    def _apply(self, key: _Key, grad: np.ndarray, digest: bytes | None = None) -> None:
        """The update of ``key`` with the round's ``grad`` (whose ``Codec.digest`` is
        ``digest`` if known: adopted as the value, it is the value's)."""
        key.digest = digest
        if self.updater is None:
            # the merged sum (or the one push, read-only, received without a copy) is the value
            # now; a zero-copy send of the old value keeps reading the old buffer
            if grad is not key.value:
                key.value, key.value_nd, key.inflight = grad, None, []
        else:
            from ...context import cpu
            from ...ndarray import NDArray
            value = self._writable(key)
            if key.value_nd is None or key.value_nd._data is not value:
                key.value_nd = NDArray(value, cpu(0))
            if key.merged_nd is None or key.merged_nd._data is not grad:
                key.merged_nd = NDArray(grad if grad.flags.writeable else grad.copy(), cpu(0))
            self.updater(key.name, key.merged_nd, key.value_nd)
            key.value_nd.wait_to_read()
        key.updates += 1

    def _writable(self, key: _Key) -> np.ndarray:
        """``key.value``, made safe to change in place: a received (read-only) buffer is
        copied, and no zero-copy send may still read it (a slow peer keeps the old buffer)."""
        pending, key.inflight = key.inflight, []
        if not key.value.flags.writeable:
            key.value = key.value.copy()
            return key.value
        deadline = time.monotonic() + self.job.heartbeat_timeout
        for tracker in pending:
            try:
                tracker.wait(max(0.0, deadline - time.monotonic()))
            except zmq.NotDone:
                # A peer is slow to take the bytes: leave it the old buffer, write a new one.
                key.value = key.value.copy()
                break
        return key.value

    def _send_value(self, msg: Message, key: _Key) -> None:
        if key.digest is None:          # hashed once per value, not once per pull
            key.digest = self.member.codec.digest([key.value])
        trackers = self.member.reply(msg, array_meta(key.value), frames=[key.value], track=True,
                                     digest=key.digest)
        key.inflight.extend(t for t in trackers if not t.done)

    # ---- housekeeping --------------------------------------------------------------------
    def _on_tick(self, now: float) -> None:
        job = self.job
        for key in list(self.open.values()):
            waited = now - key.opened
            missing = sorted(self.active - set(key.contrib))
            if job.stall_abort > 0 and waited > job.stall_abort:
                self.member.abort(f"{self.name}: {key.label()} round {key.round} waited "
                                  f"{waited:.1f} s for worker ranks {missing} "
                                  f"(HYBRIDNET_KVSTORE_STALL_ABORT)", code=EXIT_FAILED)
                return
            if job.stall_warn > 0 and waited > job.stall_warn and not key.warned:
                key.warned = True
                log.warning("%s: waiting for ranks %s on %s (round %d) for %.1f s", self.name,
                            missing, key.label(), key.round, waited)


def memory_kib() -> dict:
    """This process's resident memory now and at its peak (KiB; Linux /proc, else {})."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {"rss_kib": int(fields["VmRSS"].split()[0]),
                "hwm_kib": int(fields["VmHWM"].split()[0])}
    except (OSError, KeyError, ValueError):
        return {}


def _page_faults() -> int:
    """Minor page faults of this process so far (fresh memory touched)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _Refused(Exception):
    """A request this server refuses; the message goes back to the sender."""


def main() -> int:
    """Entry point of ``python -m hybridnet.kvstore.dist.server`` (DMLC_* environment)."""
    from . import run_role
    return run_role("server")


if __name__ == "__main__":
    sys.exit(main())
