"""Transport: one node's ZeroMQ sockets, addresses and byte counters.

Every node binds one ROUTER socket that receives all its inbound messages (read by a single
thread), and connects one DEALER socket per peer it sends to (any thread may send; a lock per
peer keeps each socket used by one thread at a time and numbers the messages). Sockets therefore
carry traffic in one direction only, as in ps-lite, and no socket is ever shared by two threads
at once. Array frames of 64 KiB and more are sent without copies (``copy=False``); with
``track=True`` the caller gets trackers telling when ZeroMQ no longer reads the buffer. A
stream (wire.py, flag STREAM: 1 MiB of data and more) is sent as its messages in a row under
the peer's lock. A streamed reply's chunks are received straight into their destination with
``recv_into`` -- what ``sink_for`` names (a worker's pulled array) or a new buffer -- and a
stream that fails after its data went to a ``sink_for`` buffer is reported to
``on_stream_error``; a streamed request's frames arrive whole, without a copy.

Liveness: ZMTP heartbeats run on every socket, answered by libzmq's own I/O thread (no GIL),
so a busy process stays alive while a dead, frozen or cut-off one loses its connection. A
monitored DEALER (``connect(..., monitor=True)``) records when its link went down;
``link_down_for`` tells how long it has been down (0 while it is up).

Encryption (auth mode ``curve``): every ROUTER is a CurveZMQ server and every DEALER a client,
with the job's keys (``Codec.curve_keys``); a ZAP handler thread admits only the job's client
key, so a process without the secret cannot even connect. libzmq encrypts and authenticates
each message in its I/O thread (no GIL).

Addresses: host names are resolved here (they work as well as IPs); a node binds the address it
advertises (``0.0.0.0`` only with HYBRIDNET_KVSTORE_BIND_ALL) on a port inside
HYBRIDNET_KVSTORE_PORT_RANGE when one is set.
"""
from __future__ import annotations

import collections
import fcntl
import logging
import os
import random
import socket
import struct
import threading
import time

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from ...base import HybridNetError
from .wire import MAC_SIZE, Codec, Message, PeerTable, StreamIn, WireError, role_name

__all__ = ["Transport", "TransportError", "resolve_host", "interface_ip", "route_ip", "new_nonce"]

log = logging.getLogger("hybridnet.kvstore.dist")

_ZERO_COPY_MIN = 1 << 16
_DROP_LOG_FIRST = 3          # drops of one reason logged in full before sampling
_DROP_LOG_EVERY = 1000       # then one summary line per this many drops


class TransportError(HybridNetError, ConnectionError):
    """A socket could not bind, connect or send in time."""


def resolve_host(host: str, what: str = "host") -> str:
    """The IPv4 address of ``host`` (a name or an IP)."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise TransportError(f"cannot resolve {what} {host!r}: {err}") from None
    return infos[0][4][0]


def interface_ip(name: str) -> str:
    """The IPv4 address of network interface ``name`` (Linux)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(sock.fileno(), 0x8915,  # SIOCGIFADDR
                             struct.pack("256s", name.encode()[:15]))
    except OSError as err:
        raise TransportError(f"network interface {name!r} (DMLC_INTERFACE) has no IPv4 "
                             f"address: {err.strerror}") from None
    finally:
        sock.close()
    return socket.inet_ntoa(packed[20:24])


def route_ip(target_ip: str) -> str:
    """The local IPv4 address the kernel would use to reach ``target_ip``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((target_ip, 9))      # no packet is sent for a UDP connect
        return sock.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        sock.close()


class _Out:
    """A DEALER to one peer, with its lock, sequence counter, address and link monitor."""
    __slots__ = ("sock", "lock", "seq", "address", "role", "rank", "monitor", "down_since")

    def __init__(self, sock, address, role, rank):
        self.sock, self.address, self.role, self.rank = sock, address, role, rank
        self.lock = threading.Lock()
        self.seq = 0
        self.monitor = None
        self.down_since: float | None = time.monotonic()   # down until the first handshake


class _DropLog:
    """Counts dropped frames by reason and logs them at bounded size and rate."""

    def __init__(self, node: str):
        self.node = node
        self.counts = collections.Counter()

    def drop(self, reason: str, detail: str, peer: str) -> None:
        self.counts[reason] += 1
        n = self.counts[reason]
        if n <= _DROP_LOG_FIRST:
            log.warning("%s: dropped a frame from %s (%s)", self.node, peer[:64], detail[:200])
        elif n % _DROP_LOG_EVERY == 0:
            log.warning("%s: dropped %d frames so far for reason %r", self.node, n, reason)


class Transport:
    """The sockets of one node.

    Args:
        codec: the job's ``Codec``.
        role, rank: this node (rank -1 until the scheduler assigns it).
        nonce: this process's random 64-bit id (its DEALERs' ZeroMQ identity).
        send_timeout: seconds a send may wait for a full queue before failing.
    """

    def __init__(self, codec: Codec, role: int, rank: int, nonce: int, send_timeout: float,
                 heartbeat: tuple | None = None, verbose: int = 0):
        self.codec, self.role, self.rank, self.nonce = codec, role, rank, nonce
        self.verbose = verbose
        self._send_timeout_ms = max(1, int(send_timeout * 1000))
        self._heartbeat = heartbeat
        self._ctx = zmq.Context(io_threads=1)
        self._curve = codec.curve_keys() if codec.mode == "curve" else None
        self._auth = None
        if self._curve is not None:
            from zmq.auth.thread import ThreadAuthenticator
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve_callback("*", _JobKey(self._curve["client"][0]))
        self._router = None
        self._poller = zmq.Poller()
        self._out: dict = {}
        self._out_lock = threading.Lock()
        self.peers = PeerTable()
        self.address: tuple | None = None
        self.bytes_sent = collections.Counter()    # (role, rank) -> bytes
        self.bytes_recv = collections.Counter()
        self.messages_recv = 0
        self.drops = _DropLog(self.name)
        self._streams: dict = {}   # identity -> StreamIn being received on that connection
        # sink_for(head) -> writable uint8 arrays for a stream's data frames, or None (a new
        # buffer each); on_stream_error(head, error): a stream into such buffers failed
        self.sink_for = None
        self.on_stream_error = None

    @property
    def name(self) -> str:
        return f"{role_name(self.role)} {self.rank}"

    # ---- inbound -------------------------------------------------------------------------
    def bind(self, host: str, port: int = 0, port_range: tuple | None = None,
             bind_all: bool = False, avoid: int = 0) -> int:
        """Bind the ROUTER on ``host`` (an IP) and return the port.

        ``port`` > 0 forces a port; else the first free port of ``port_range`` (tried from a
        random start) other than ``avoid`` -- the scheduler's port, which the launcher picked
        from the same range and the scheduler may not have bound yet -- else an OS-chosen one.
        """
        router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, self.codec.max_frame + (1 << 20))
        if self._curve is not None:
            router.curve_secretkey = self._curve["server"][1]
            router.curve_server = True
        if self._heartbeat:
            self._set_heartbeat(router)
        where = "0.0.0.0" if bind_all else host
        if port:
            candidates = [port]
        elif port_range:
            low, high = port_range
            candidates = [p for p in range(low, high + 1) if p != avoid]
            start = random.randrange(len(candidates))
            candidates = candidates[start:] + candidates[:start]
        else:
            candidates = [0]
        last = None
        for cand in candidates:
            try:
                if cand == 0:
                    router.bind(f"tcp://{where}:*")
                    cand = int(router.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
                else:
                    router.bind(f"tcp://{where}:{cand}")
                self._router = router
                self._poller.register(router, zmq.POLLIN)
                self.address = (host, cand)
                return cand
            except zmq.ZMQError as err:
                last = err
        router.close()
        span = f"port {port}" if port else (f"ports {port_range[0]}-{port_range[1]}"
                                            if port_range else "an OS-chosen port")
        raise TransportError(f"{self.name}: cannot listen on {where} at {span}: {last} "
                             f"(set HYBRIDNET_KVSTORE_PORT_RANGE or PORT, or free the port)")

    def recv(self, timeout: float) -> tuple | None:
        """Wait up to ``timeout`` seconds for one valid message; return (identity, Message).

        Invalid frames are dropped (counted in ``drops.counts``) and waiting goes on; so is a
        stream's head or chunk (None until the stream is complete).
        """
        if not self._poller.poll(int(timeout * 1000)):
            return None
        router = self._router
        identity = router.recv()
        stream = self._streams.get(identity) if self._streams else None
        if stream is not None:
            return self._recv_stream(identity, stream)
        parts = []
        sizes = ()
        while router.getsockopt(zmq.RCVMORE):
            # Frames the header announces as big arrive without a copy; small ones are cheaper
            # copied (a zmq.Frame costs more than copying a few KiB).
            i = len(parts) - 1
            big = 0 <= i < len(sizes) and sizes[i] >= _ZERO_COPY_MIN
            parts.append(router.recv(copy=not big))
            if i < 0:
                sizes = self.codec.frame_sizes(parts[0])
        try:
            msg = self.codec.decode(parts)
            self.peers.check(identity, msg)
        except WireError as err:
            self.drops.drop(err.reason, str(err), repr(identity))
            return None
        nbytes = sum(len(p) for p in parts)
        self.bytes_recv[(msg.src_role, msg.src_rank)] += nbytes
        if msg.stream is not None:
            self._open_stream(identity, msg)
            return None
        return self._delivered(identity, msg)

    def _delivered(self, identity: bytes, msg: Message) -> tuple:
        self.messages_recv += 1
        if self.verbose >= 2:
            log.info("%s: recv %s", self.name, msg.describe())
        return identity, msg

    def _open_stream(self, identity: bytes, head: Message) -> None:
        """An admitted sender's stream starts. A reply's data goes to ``sink_for``'s buffers
        when they fit the announced sizes, else to new ones."""
        buffers = sunk = None
        if head.is_reply:
            sizes = self.codec.frame_sizes(head.stream)
            buffers = self.sink_for(head) if self.sink_for is not None else None
            if buffers is not None and (len(buffers) != len(sizes) or any(
                    not isinstance(b, np.ndarray) or b.dtype != np.uint8 or b.ndim != 1
                    or b.size != n or not b.flags.writeable for b, n in zip(buffers, sizes))):
                buffers = None
            sunk = buffers is not None
            if buffers is None:
                buffers = [np.empty(n, np.uint8) for n in sizes]
        self._streams[identity] = (StreamIn(self.codec, head, buffers), sunk)

    def _recv_stream(self, identity: bytes, entry) -> tuple | None:
        """The next message of the stream open on connection ``identity``: a chunk, or the
        final MAC."""
        stream, sunk = entry
        router = self._router
        due = stream.next_size()
        peer = (stream.msg.src_role, stream.msg.src_rank)
        if due is not None:
            target = stream.next_buffer()
            if target is not None:
                size, frame = router.recv_into(target), None
            else:
                frame = router.recv(copy=due < _ZERO_COPY_MIN)
                size = len(frame)
            failure = None
            if size != due:
                failure = f"a chunk of {size} bytes where {due} were due"
            elif router.getsockopt(zmq.RCVMORE):
                failure = "a multipart message where a chunk was due"
            if failure is None:
                self.bytes_recv[peer] += size
                stream.chunk_received(frame)
                return None
        else:
            mac = router.recv()
            failure = None if not router.getsockopt(zmq.RCVMORE) else \
                "a multipart message where its MAC was due"
            if failure is None:
                del self._streams[identity]
                try:
                    msg = stream.finish(mac)
                except WireError as err:
                    self._stream_failed(identity, stream, sunk, err)
                    return None
                self.bytes_recv[peer] += len(mac)
                return self._delivered(identity, msg)
        while router.getsockopt(zmq.RCVMORE):     # the rest of the offending message
            router.recv()
        self._streams.pop(identity, None)
        self._stream_failed(identity, stream, sunk, WireError("stream", failure))
        return None

    def _stream_failed(self, identity: bytes, stream: StreamIn, sunk: bool,
                       err: WireError) -> None:
        self.drops.drop(err.reason, str(err), repr(identity))
        if sunk and self.on_stream_error is not None:
            self.on_stream_error(stream.msg, err)

    # ---- outbound ------------------------------------------------------------------------
    def connect(self, key, role: int, rank: int, host: str, port: int,
                monitor: bool = False) -> None:
        """Open (or reuse) the DEALER named ``key`` to peer (role, rank) at host:port;
        ``monitor`` tracks whether the link is up (read with ``link_down_for``)."""
        with self._out_lock:
            if key in self._out:
                return
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.ROUTING_ID, b"n" + self.nonce.to_bytes(8, "little"))
            sock.setsockopt(zmq.LINGER, 2000)
            sock.setsockopt(zmq.SNDHWM, 100000)
            sock.setsockopt(zmq.SNDTIMEO, self._send_timeout_ms)
            if self._curve is not None:
                sock.curve_serverkey = self._curve["server"][0]
                sock.curve_publickey, sock.curve_secretkey = self._curve["client"]
            if self._heartbeat:
                self._set_heartbeat(sock)
            out = _Out(sock, f"{host}:{port}", role, rank)
            if monitor:
                # Before connecting: a handshake that completed before the monitor existed
                # would never be reported, and the link would look down from the start.
                out.monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED |
                                                      zmq.EVENT_DISCONNECTED)
            try:
                sock.connect(f"tcp://{host}:{port}")
            except zmq.ZMQError as err:
                self._close_out(out, 0)
                raise TransportError(f"{self.name}: cannot connect to {role_name(role)} {rank} "
                                     f"at {host}:{port}: {err}") from None
            self._out[key] = out

    def link_down_for(self, key, now: float) -> float:
        """Seconds the monitored link ``key`` has been down (0 while up). Call from one
        thread only (it reads the link's monitor events)."""
        out = self._out.get(key)
        if out is None or out.monitor is None:
            return 0.0
        while out.monitor.poll(0):
            event = recv_monitor_message(out.monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if out.down_since is not None and self.verbose >= 1:
                    log.info("%s: link to %s %d at %s is up", self.name, role_name(out.role),
                             out.rank, out.address)
                out.down_since = None
            elif out.down_since is None:
                out.down_since = time.monotonic()
                if self.verbose >= 1:
                    log.info("%s: link to %s %d at %s went down", self.name,
                             role_name(out.role), out.rank, out.address)
        return 0.0 if out.down_since is None else now - out.down_since

    def set_rank(self, key, rank: int) -> None:
        """Record the rank the scheduler gave the peer behind ``key``."""
        self._out[key].rank = rank

    def disconnect(self, key) -> None:
        with self._out_lock:
            out = self._out.pop(key, None)
        if out is not None:
            with out.lock:
                self._close_out(out, 0)

    @staticmethod
    def _close_out(out: _Out, linger_ms: int) -> None:
        if out.monitor is not None:
            out.sock.disable_monitor()
            out.monitor.close(0)
        out.sock.close(linger_ms)

    def send(self, key, msg: Message, track: bool = False) -> list:
        """Send ``msg`` to peer ``key``; return trackers of zero-copy frames if ``track``."""
        out = self._out.get(key)
        if out is None:
            raise TransportError(f"{self.name}: no connection to peer {key!r}")
        role, rank = out.role, out.rank
        msg.src_role, msg.src_rank, msg.nonce = self.role, self.rank, self.nonce
        msg.dst_role, msg.dst_rank = role, rank
        trackers = []
        with out.lock:
            out.seq += 1
            msg.seq = out.seq
            parts, chunks, trailer = self.codec.encode_streamed(msg)
            last = len(parts) - 1
            nbytes = 0
            try:
                for i, part in enumerate(parts):
                    nbytes += self._send_part(out.sock, part, zmq.SNDMORE if i < last else 0,
                                              track, trackers)
                for chunk in chunks:             # a stream: one message per chunk
                    nbytes += self._send_part(out.sock, chunk, 0, track, trackers)
                if trailer is not None:        # hashed while ZeroMQ sends the data
                    mac = trailer()
                    out.sock.send(mac)
                    nbytes += len(mac)
            except zmq.Again:
                raise TransportError(
                    f"{self.name}: sending to {role_name(role)} {rank} at {out.address} timed "
                    f"out after {self._send_timeout_ms / 1000:.1f} s (peer not reading)") from None
            except zmq.ZMQError as err:
                raise TransportError(f"{self.name}: sending to {role_name(role)} {rank} at "
                                     f"{out.address} failed: {err}") from None
            self.bytes_sent[(role, rank)] += nbytes
        if self.verbose >= 2:
            log.info("%s: send %s", self.name, msg.describe())
        return trackers

    @staticmethod
    def _send_part(sock, part, flags: int, track: bool, trackers: list) -> int:
        """Send one frame (big buffers without a copy); return its size."""
        size = part.nbytes if isinstance(part, (np.ndarray, memoryview)) else len(part)
        if size >= _ZERO_COPY_MIN and not isinstance(part, bytes):
            if isinstance(part, np.ndarray):
                part = memoryview(part).cast("B")
            tracker = sock.send(part, flags, copy=False, track=track)
            if track:
                trackers.append(tracker)
        else:
            sock.send(part, flags)
        return size

    def _set_heartbeat(self, sock) -> None:
        # ZMTP heartbeats let ZeroMQ notice a silently dead TCP connection and reconnect.
        interval, timeout = self._heartbeat
        sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(interval * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(timeout * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TTL, max(100, int(timeout * 1000)))

    def close(self, linger: float = 1.0) -> None:
        """Close every socket (pending sends get ``linger`` seconds to leave)."""
        with self._out_lock:
            for out in self._out.values():
                with out.lock:
                    self._close_out(out, int(linger * 1000))
            self._out.clear()
        self._streams.clear()
        if self._router is not None:
            self._poller.unregister(self._router)
            self._router.close(0)
            self._router = None
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()


class _JobKey:
    """ZAP credentials check: only the job's client key may connect (auth mode 'curve')."""

    def __init__(self, key: bytes):
        self.key = key

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.key


def new_nonce() -> int:
    """A random 64-bit process id (nonzero) for the wire header and socket identity."""
    return int.from_bytes(os.urandom(8), "little") | 1
