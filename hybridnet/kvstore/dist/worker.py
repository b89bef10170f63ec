"""``KVStoreDist``: the worker's distributed store (``mx.kv.create('dist_sync')``).

Types: ``dist_sync`` / ``dist`` (synchronous), ``dist_async``, and ``dist_device_sync`` /
``dist_sync_device`` / ``dist_async_device`` (values from several devices are summed on the
worker in list order before the push, as MXNet reduces them before sending).

Push and pull go through the engine on its copy/I-O pool (prop ``'copy'``), ordered per key by
a communication variable: a pull of key k runs after this worker's earlier push of k, and
writes its output array; compute that does not touch them overlaps the communication.
``priority`` orders ready work as in MXNet. Work on small arrays whose inputs are ready is sent
at once from the calling thread (a thread hand-off costs more than the send). A pull is two
pieces of engine work: sending the request (ordered after the key's push), then -- completed
from the receive thread when the replies arrive (``push_async``) -- writing the value to the
outputs. No engine thread ever waits for the network. A value of 1 MiB and more arrives as a
stream (wire.py) received straight into the pull's output array (the first ``out`` in host
memory, C-contiguous, of the key's dtype; each server's slice into its place) and checked
while it arrives: no copy and no hashing is left once its last byte is in. If such a reply
fails authentication, the pull fails with ``KVStoreDistError`` and that array's content is
undefined (as it is when the job aborts during the pull). In dist_sync, once a small key's push has
been followed by a pull, its next push asks the server for that pull's answer in advance
(``_ask_early_pull``), and the pull sends nothing: one message per push+pull.

Servers do not acknowledge accepted pushes: a worker's messages reach a server in order and are
handled in order, so the key's next pull (answered after the push is applied) and ``_barrier``
(a SYNC round trip to every server) observe it. A refused push (a second push in the same sync
round, a shape mismatch) is answered at once with the error, which fails the key's pull in
flight and is raised by the key's next push, pull or barrier.

Ownership: a key with fewer than HYBRIDNET_KVSTORE_BIGARRAY_BOUND elements lives on server
``(key * 9973) % num_servers`` (string keys use a stable 62-bit hash of the name, so every
worker agrees regardless of init order); a bigger one is cut into ``num_servers`` contiguous
slices of the flattened array (boundaries ``n * i // S``), slice i on server i.

When the job stops (a node died, stalled or failed), every pending and later call raises
``PeerFailure`` naming the cause, and the process exits with code 75 after
HYBRIDNET_KVSTORE_ABORT_GRACE seconds if user code has not exited by then. At normal
interpreter exit (or ``close()``), the worker tells the servers it leaves; the remaining workers'
rounds then complete without it (uneven data never hangs).
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
import sys
import threading
import weakref

import numpy as np

from ...base import HybridNetError
from ...context import cpu
from ...engine import COPY, Var, get_engine
from . import states as _states
from .compression import TwoBitCompression, parse_compression
from .errors import EXIT_ABORTED, PeerFailure
from .job import JobConfig
from .membership import Member, setup_logging
from .requests import refusal
from .transport import TransportError
from .wire import Cmd, Flag, Message, Role, array_meta, frame_array
from ..base import KVStore

__all__ = ["KVStoreDist"]

log = logging.getLogger("hybridnet.kvstore.dist")

_INLINE_BYTES = 1 << 16     # pushes up to this size are sent from the caller's thread if ready
_HOST = cpu(0)              # the context of communication work

_TYPES = ("dist", "dist_sync", "dist_async", "dist_device_sync", "dist_sync_device",
          "dist_async_device")


def key_id(key) -> int:
    """The wire id of a user key: the int itself, or a stable hash of a string key."""
    if isinstance(key, str):
        digest = hashlib.sha256(b"key:" + key.encode()).digest()
        return (int.from_bytes(digest[:8], "little") & ((1 << 62) - 1)) | (1 << 62)
    return int(key)


class _KeyInfo:
    """What the worker knows about one key."""
    __slots__ = ("name", "kid", "shape", "dtype", "dtype_name", "size", "slices", "var", "error",
                 "pulling", "residual", "inline", "early_pull", "pull_follows")

    def __init__(self, name, shape, dtype, slices):
        self.name, self.kid = name, key_id(name)
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.dtype_name = self.dtype.name     # (a numpy property costing microseconds)
        self.size = int(np.prod(self.shape))
        self.slices = slices          # [(server rank, start, stop)] of the flattened array
        self.var = Var(f"kv:{name}")  # orders this worker's pushes and pulls of the key
        self.error = None             # a server's refusal of a push, not raised yet
        self.pulling: set = set()     # Pendings of the pulls in flight
        self.residual = None          # 2-bit compression error feedback (float32, flat)
        self.inline = self.size * self.dtype.itemsize <= _INLINE_BYTES
        self.early_pull = None        # Pending of the pull asked for with the last push
        self.pull_follows = False     # a pull came after the last push (so ask with the next)

    def wire_shape(self, start: int, stop: int) -> list:
        return list(self.shape) if len(self.slices) == 1 else [stop - start]


class KVStoreDist(KVStore):
    """A worker's handle on the distributed key-value store (see the module docstring).

    Created by ``mx.kv.create('dist_sync')`` in a process started by ``python -m
    hybridnet.launch``; all workers must create it with the same type.
    """

    def __init__(self, name: str = "dist_sync"):
        if name not in _TYPES:
            raise HybridNetError(f"unknown distributed KVStore type {name!r}; expected one of "
                                 f"{', '.join(_TYPES)}")
        self._type = name
        self._sync = "_async" not in name
        super().__init__()
        self._keys: dict = {}
        self._by_kid: dict = {}       # wire id -> _KeyInfo (for refusals of pushes)
        self._compression: TwoBitCompression | None = None
        self._optimizer = None
        self._closed = False
        self._raised_here = False
        self._job = JobConfig.from_env("worker")
        setup_logging(self._job.verbose)
        self._member = Member(self._job, on_abort=self._on_abort,
                              on_unmatched=self._on_refused_push)
        self._member.start()
        if self.rank == 0:
            self._command_all(Cmd.SET_MODE, {"sync": self._sync}, "set the sync mode")
        self._member.barrier()
        _install_exit_hooks(self)

    # ---- properties ----------------------------------------------------------------------
    @property
    def type(self) -> str:
        """The type given to ``create`` (e.g. ``'dist_sync'``)."""
        return self._type

    @property
    def rank(self) -> int:
        """This worker's rank in [0, num_workers) (the launcher's task index)."""
        return self._member.rank

    @property
    def num_workers(self) -> int:
        return self._member.num_workers

    @property
    def num_servers(self) -> int:
        return self._member.num_servers

    def _info(self, key, what: str) -> _KeyInfo:
        info = self._keys.get(key)
        if info is None:
            raise HybridNetError(f"kv.{what}: key {key!r} was not initialized (call kv.init "
                                 f"first)")
        return info

    def _slices(self, size: int, kid: int) -> list:
        servers = self.num_servers
        if size < self._job.bigarray_bound or servers == 1:
            return [((kid * 9973) % servers, 0, size)]
        cuts = [size * i // servers for i in range(servers + 1)]
        return [(i, cuts[i], cuts[i + 1]) for i in range(servers) if cuts[i + 1] > cuts[i]]

    # ---- init / push / pull --------------------------------------------------------------
    def init(self, key, value) -> None:
        """``kv.init(key, value)``: worker 0's value becomes the stored one; all workers wait
        at a barrier so no push reaches a server before its key exists."""
        groups = self._groups(key, value, "init")
        pendings = []
        for name, vals in groups:
            if name in self._keys:
                raise HybridNetError(f"kv.init: key {name!r} is already initialized")
            arr = vals[0]
            info = _KeyInfo(name, arr.shape, arr.dtype, self._slices(arr.size, key_id(name)))
            self._keys[name] = self._by_kid[info.kid] = info
            if self.rank == 0:
                flat = np.ascontiguousarray(_host(arr)).reshape(-1)
                for server, start, stop in info.slices:
                    piece = flat[start:stop].reshape(info.wire_shape(start, stop))
                    msg = Message(Cmd.INIT, key=info.kid, body={**array_meta(piece),
                                                                "name": name},
                                  frames=[piece])
                    pendings.append(self._member.request((Role.SERVER, server), msg,
                                                         f"init of key {name!r}"))
        for pending in pendings:
            pending.wait(self._member.request_timeout)
        self._member.barrier()

    def push(self, key, value, priority: int = 0) -> None:
        """``kv.push(key, value, priority=0)``: send the (device-summed) value for this round."""
        for name, vals in self._groups(key, value, "push"):
            info = self._info(name, "push")
            merged = _sum(vals)
            self._check_value(info, merged, "push")
            get_engine().push(lambda info=info, merged=merged: self._push_now(info, merged),
                              [merged._var], [info.var], _HOST, COPY, priority,
                              f"kv.push({name!r})", inline=info.inline and not merged.context.is_gpu)

    def pull(self, key, out=None, priority: int = 0, ignore_sparse: bool = True) -> None:
        """``kv.pull(key, out, priority=0)``: fetch the stored value into every ``out``."""
        if out is None:
            raise HybridNetError("kv.pull needs out= (the arrays to fill)")
        for name, outs in self._groups(key, out, "pull"):
            self._pull_into(self._info(name, "pull"), outs, priority)

    def pushpull(self, key, value, out=None, priority: int = 0) -> None:
        """``kv.pushpull(key, value, out=None)``: push then pull (into ``value`` if no out)."""
        if self._compression is not None:
            raise HybridNetError("kv.pushpull is not supported with gradient compression "
                                 "(as in MXNet 1.x); use push then pull")
        super().pushpull(key, value, out, priority)

    def _check_value(self, info: _KeyInfo, arr, what: str) -> None:
        if tuple(arr.shape) != info.shape:
            raise HybridNetError(f"kv.{what}: key {info.name!r} has shape {info.shape}, the "
                                 f"value has {tuple(arr.shape)}")
        if self._compression is not None and np.dtype(arr.dtype) != np.float32:
            raise HybridNetError(f"kv.{what}: gradient compression supports float32 only, "
                                 f"key {info.name!r} is {np.dtype(arr.dtype).name}")

    def _push_now(self, info: _KeyInfo, merged) -> None:
        """Engine work: send one push per slice, raise errors of earlier pushes of the key."""
        self._raise_push_errors(info)
        flat = np.ascontiguousarray(_host(merged, wait=False)).reshape(-1)
        flags = 0 if self._sync else Flag.ASYNC
        codec = self._compression
        if codec is not None:
            flags |= Flag.COMPRESSED
            if info.residual is None:
                info.residual = np.zeros(info.size, np.float32)
        early = self._ask_early_pull(info)
        trackers = []
        for server, start, stop in info.slices:
            if codec is not None:
                piece = codec.encode(flat[start:stop], info.residual[start:stop])
                body = {"n": stop - start}
            else:
                piece = flat[start:stop]
                body = {"dtype": piece.dtype.name, "shape": info.wire_shape(start, stop)}
            if early is not None:
                body["pull"] = early.req
            msg = Message(Cmd.PUSH, flags, info.kid, 0, body, [piece])
            trackers += self._member.send(Role.SERVER, server, msg, track=True)
        for tracker in trackers:
            tracker.wait(self._job.heartbeat_timeout)

    def _ask_early_pull(self, info: _KeyInfo):
        """The Pending of the pull this push asks for in advance, or None.

        In dist_sync a pull issued after a push (and before the key's next push, which waits
        for it) returns the value of the round holding that push, whenever it is sent. So when
        the key's last push was followed by a pull, a small single-server key's push also asks
        the server to send that value when the round completes: the pull then sends nothing
        and takes the answer (one message per push+pull instead of two). An early answer
        nobody pulls is dropped at the next push."""
        unused, info.early_pull = info.early_pull, None
        if unused is not None:
            self._member.requests.cancel(unused)
            info.pulling.discard(unused)
        follows, info.pull_follows = info.pull_follows, False
        if not (follows and self._sync and info.inline and len(info.slices) == 1):
            return None
        member = self._member
        early = member.requests.new(1, f"pull of key {info.name!r} from server "
                                       f"{info.slices[0][0]}", member.request_timeout)
        info.pulling.add(early)     # a refusal of the push fails it
        info.early_pull = early
        return early

    @staticmethod
    def _raise_push_errors(info: _KeyInfo) -> None:
        """Raise (once) a server's refusal of one of this key's pushes."""
        error, info.error = info.error, None
        if error is not None:
            raise error

    def _on_refused_push(self, reply: Message) -> None:
        """Receive thread: a server refused a push (accepted ones get no answer)."""
        info = self._by_kid.get(reply.key)
        if reply.cmd != Cmd.PUSH or not reply.is_error or info is None:
            return               # a late answer to a request that timed out
        if info.error is None:
            info.error = refusal(reply)
        self._fail_pull(info)

    def _fail_pull(self, info: _KeyInfo) -> None:
        """Fail the key's pull in flight with the refusal of the push it came after (a
        refused push never completes its round, so the pull would wait for nothing)."""
        error = info.error
        if error is not None:
            for pending in list(info.pulling):
                self._member.requests.fail(pending, error)

    def _pull_into(self, info: _KeyInfo, outs: list, priority: int) -> None:
        for o in outs:
            if tuple(o.shape) != info.shape:
                raise HybridNetError(f"kv.pull: key {info.name!r} has shape {info.shape}, out "
                                     f"has {tuple(o.shape)}")

        sent = []
        member = self._member

        def request():
            info.pull_follows = True
            early, info.early_pull = info.early_pull, None
            if early is not None:     # asked for by the push: nothing to send
                self._fail_pull(info)
                sent.append([(early, 0, info.size)])
                return
            pendings = [(member.requests.new(1, f"pull of key {info.name!r} from server "
                                                f"{server}", member.request_timeout),
                         server, start, stop)
                        for server, start, stop in info.slices]
            info.pulling.update(p for p, _, _, _ in pendings)
            try:
                for pending, server, _, _ in pendings:
                    member.send(Role.SERVER, server, Message(Cmd.PULL, key=info.kid,
                                                             req=pending.req))
            except TransportError as err:
                for pending, _, _, _ in pendings:
                    member.requests.cancel(pending)
                    info.pulling.discard(pending)
                raise PeerFailure(str(err)) from None
            self._fail_pull(info)     # a refusal that came before the requests were listed
            sent.append([(p, start, stop) for p, _, start, stop in pendings])

        def receive(on_complete):
            pendings = sent.pop()
            # the pull owns ``into``'s write dependency from now on: a streamed reply (big
            # values) is received straight into it, each server's slice into its place
            into = _receivable(outs, info.dtype)
            if into is not None:
                flat = into._data.reshape(-1).view(np.uint8)
                size = info.dtype.itemsize
                for pending, start, stop in pendings:
                    member.requests.set_sink(pending, [flat[start * size:stop * size]])
            left = [len(pendings)]
            lock = threading.Lock()

            def arrived(_pending):    # the receive thread, or this one if already answered
                with lock:
                    left[0] -= 1
                    if left[0]:
                        return
                info.pulling.difference_update(p for p, _, _ in pendings)
                try:
                    self._store_pulled(info, pendings, outs, into)
                except Exception as err:  # the pull's failure, raised by waits on ``outs``
                    on_complete(err)
                    return
                on_complete()
            for pending, _, _ in pendings:
                member.requests.when_done(pending, arrived)
        engine = get_engine()
        what = f"kv.pull({info.name!r})"
        # The request is ordered after the key's push (it writes the key's var); sending it
        # costs less than a thread hand-off. The key's next push waits for the value (the
        # receive reads the key's var): a rank contributes once per round. The receive is
        # asynchronous: the replies complete it from the receive thread, so no engine thread
        # ever waits for the network (a thread blocked in a receive could hold up a push that
        # other workers, and so the servers' answer, wait for).
        engine.push(request, [], [info.var], _HOST, COPY, priority, what, inline=True)
        engine.push_async(receive, [info.var], [o._var for o in outs], _HOST, COPY, priority,
                          what, inline=True)

    def _store_pulled(self, info: _KeyInfo, pendings: list, outs: list, into) -> None:
        """Write the replies of a pull (one per slice) to ``outs``; raise its error. Replies
        received straight into ``into`` (one of ``outs``, or None) are not copied again."""
        error = next((p.error for p, _, _ in pendings if p.error is not None), None)
        if error is not None:
            if error is info.error:
                info.error = None         # a push's refusal is raised once
            raise error
        # a refused push is answered before the pull, which is then answered at once
        self._raise_push_errors(info)
        meta = {"dtype": info.dtype_name}
        if len(pendings) == 1 and into is None:    # one server holds the key: no gathering
            meta["shape"] = list(info.shape)
            value = frame_array(pendings[0][0].replies[0], 0, meta)
        else:
            value = (into._data if into is not None else np.empty(info.shape, info.dtype))
            flat = value.reshape(-1)
            for pending, start, stop in pendings:
                reply = pending.replies[0]
                meta["shape"] = info.wire_shape(start, stop)
                piece = frame_array(reply, 0, meta)      # checked, also if already in place
                if pending.sink is None or reply.frames[0] is not pending.sink[0]:
                    flat[start:stop] = piece.reshape(-1)
        for o in outs:
            if o is not into:
                _store(o, value)

    # ---- servers' optimizer and compression ----------------------------------------------
    def _command_all(self, cmd: int, body: dict, what: str, frames=()) -> list:
        pendings = [self._member.request((Role.SERVER, s), Message(cmd, body=body,
                                                                   frames=list(frames)),
                                         f"{what} on server {s}")
                    for s in range(self.num_servers)]
        return [p.wait(self._member.request_timeout)[0] for p in pendings]

    def set_optimizer(self, optimizer) -> None:
        """``kv.set_optimizer(opt)``: the servers run ``opt`` on every merged push.

        The optimizer travels as JSON (``Optimizer.to_spec()``: registered name or
        ``module:Class`` path plus plain parameters), never as a pickle. Worker 0 sends it; all
        workers wait at a barrier. A class defined in the script itself cannot be imported by
        the servers: put it in a module.
        """
        from ...optimizer import from_spec
        spec = optimizer.to_spec()
        if spec.get("name") is None and spec.get("class", "").startswith("__main__:"):
            raise HybridNetError(
                f"optimizer class {type(optimizer).__name__} is defined in the script "
                f"(__main__), which the servers cannot import; define it in a module they can "
                f"import, or register it with @mx.optimizer.register in such a module")
        from_spec(spec)      # a spec this worker cannot rebuild is refused here, clearly
        if self.rank == 0:
            self._command_all(Cmd.SET_OPTIMIZER, {"spec": spec}, "set_optimizer")
        self._optimizer = optimizer
        self._member.barrier()

    def set_gradient_compression(self, compression_params: dict) -> None:
        """``kv.set_gradient_compression({'type': '2bit', 'threshold': 0.5})`` (before pushes).

        Pushes of float32 keys then carry 2-bit codes with error feedback
        (``ceil(n/16)*4`` bytes); init and pull stay uncompressed, as in MXNet.
        """
        params = parse_compression(compression_params)
        if self.rank == 0:
            self._command_all(Cmd.SET_COMPRESSION, {"params": params},
                              "set_gradient_compression")
        self._compression = (TwoBitCompression(params["threshold"])
                             if params["type"] == "2bit" else None)
        self._member.barrier()

    def _set_updater(self, updater) -> None:
        raise HybridNetError("a dist KVStore updates on its servers, which cannot run a Python "
                             "function sent from a worker; use kv.set_optimizer(optimizer)")

    def _send_command_to_servers(self, head: int, body: str) -> None:
        raise HybridNetError("MXNet's raw server commands carry pickles, which hybridnet never "
                             "sends; use set_optimizer / set_gradient_compression")

    # ---- optimizer states ----------------------------------------------------------------
    def _layout(self) -> dict:
        return {name: (info.shape, info.slices) for name, info in self._keys.items()}

    def save_optimizer_states(self, fname: str, dump_optimizer: bool = False) -> None:
        """Fetch the optimizer states from every server and write them to ``fname``
        (any worker may call it; see ``states`` for the file format)."""
        get_engine().wait_all()
        replies = self._command_all(Cmd.STATE_GET, {}, "save_optimizer_states")
        per_server = []
        for reply in replies:
            metas = reply.body.get("arrays", [])
            per_server.append(([frame_array(reply, i, m) for i, m in enumerate(metas)],
                               reply.body.get("meta", {})))
        arrays, meta = _states.gather(self._layout(), per_server)
        meta["optimizer"] = (self._optimizer.to_spec()
                             if dump_optimizer and self._optimizer is not None else None)
        _states.save(fname, arrays, meta)

    def load_optimizer_states(self, fname: str) -> None:
        """Send states saved by ``save_optimizer_states`` to the servers (every worker calls
        it; worker 0 sends, all wait at a barrier). Call ``set_optimizer`` first."""
        arrays, meta = _states.load(fname)
        if self.rank == 0:
            get_engine().wait_all()
            parts = _states.scatter(self._layout(), arrays, meta, self.num_servers)
            pendings = []
            for server, (s_arrays, s_meta) in enumerate(parts):
                body = {"meta": s_meta, "arrays": [array_meta(a) for a in s_arrays]}
                pendings.append(self._member.request(
                    (Role.SERVER, server), Message(Cmd.STATE_SET, body=body, frames=s_arrays),
                    f"load_optimizer_states on server {server}"))
            for pending in pendings:
                pending.wait(self._member.request_timeout)
        self._member.barrier()

    # ---- synchronisation, stats, the end -------------------------------------------------
    def _barrier(self) -> None:
        """Wait until every worker (still in the job) calls ``_barrier``.

        This worker's earlier pushes have all been accepted (applied, in dist_async) by the
        servers when it returns, so ``push; waitall; _barrier`` on every worker, then ``pull``,
        sees every update (as in MXNet, whose pushes complete on the server's ACK).
        """
        get_engine().wait_all()
        # every server has handled (and answered any refusal of) this worker's pushes
        self._command_all(Cmd.SYNC, {}, "barrier")
        for info in self._keys.values():
            self._raise_push_errors(info)
        self._member.barrier()

    def _server_stats(self) -> list:
        """Counters of every server (pushes, updates per key, bytes, dropped frames)."""
        return [r.body for r in self._command_all(Cmd.STATS, {}, "stats")]

    def _on_abort(self, failure: PeerFailure) -> None:
        grace = self._job.abort_grace
        if grace < 0 or self._raised_here:
            return          # an exception of this process is on its way out with its own code

        def force_exit():
            sys.stderr.write(f"hybridnet: {failure}\n")
            sys.stderr.flush()
            os._exit(EXIT_ABORTED)
        timer = threading.Timer(grace, force_exit)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        """Leave the job: wait for this worker's pushes, tell servers and scheduler, close.

        Runs by itself at interpreter exit. Other workers go on; their rounds complete
        without this worker from now on.
        """
        if self._closed:
            return
        self._closed = True
        member = self._member
        if member.failure is None:
            try:
                for info in self._keys.values():
                    get_engine().wait_for_var(info.var)
                self._command_all(Cmd.LEAVE, {}, "leave")
                member.leave()
            except HybridNetError as err:
                log.warning("worker %d: leaving the job: %s", self.rank, err)
        member.close()


def _host(arr, wait: bool = True) -> np.ndarray:
    """The array's values as numpy (waits for them; copies from a GPU). Engine work that reads
    ``arr`` passes ``wait=False``: its values are ready, and waiting there would also wait for
    writes pushed after it (e.g. the next batch's gradient) -- a deadlock."""
    if wait:
        arr.wait_to_read()
    data = arr._data
    return data.get() if arr.context.is_gpu else data


def _receivable(outs: list, dtype: np.dtype):
    """The first of ``outs`` a reply can be received into: host memory, C-contiguous,
    writable, of the key's dtype (else None)."""
    for o in outs:
        data = o._data
        if (not o.context.is_gpu and isinstance(data, np.ndarray) and data.dtype == dtype
                and data.flags.c_contiguous and data.flags.writeable):
            return o
    return None


def _store(out, value: np.ndarray) -> None:
    if out.context.is_gpu:
        out._data[...] = out.context.xp.asarray(value)
    else:
        np.copyto(out._data, value, casting="unsafe")


def _sum(vals: list):
    """The values of several devices summed in list order (on the first one's device)."""
    merged = vals[0]
    for v in vals[1:]:
        merged = merged + v.as_in_context(merged.context)
    return merged


# ---- process-level hooks -------------------------------------------------------------------
_STORE: list = []


def _install_exit_hooks(store: KVStoreDist) -> None:
    """Leave cleanly at exit; stop the whole job at once on an uncaught exception."""
    ref = weakref.ref(store)
    _STORE[:] = [ref]

    def at_exit():
        s = ref()
        if s is not None:
            s.close()
    atexit.register(at_exit)
    previous = sys.excepthook

    def excepthook(etype, value, tb):
        s = ref()
        if s is not None and issubclass(etype, PeerFailure):
            previous(etype, value, tb)
            sys.stderr.flush()
            os._exit(EXIT_ABORTED)
        if s is not None and s._member.failure is None:
            s._raised_here = True
            s._member.abort(f"worker {s.rank} raised {etype.__name__}: {value}"[:2000])
        previous(etype, value, tb)
    sys.excepthook = excepthook


def current_store() -> KVStoreDist | None:
    """The process's dist store, if one was created."""
    ref = _STORE[0] if _STORE else None
    return ref() if ref is not None else None
