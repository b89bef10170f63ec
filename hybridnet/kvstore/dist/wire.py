"""The wire format of the distributed KVStore: authenticated multipart messages, never pickles.

A message is one ZeroMQ multipart message::

    [header] [data 0] ... [data n-1] [mac]

or, when its data frames hold less than 64 KiB in all (flag ONE_FRAME), a single frame
``header + data 0 + ... + data n-1 + mac``: every part sent or received costs a call that
releases the GIL, which is most of a small message's cost in a process with busy threads.

``header`` is a fixed little-endian struct (``_FIXED`` below: magic ``HNKV``, version, command,
flags, number of data frames, job id, sender and receiver role/rank, the sender's process nonce,
a per-connection sequence number, a request id, the key, the body length), then one u64 length
per data frame, then a JSON object (the command's small arguments: dtype, shape, round, ...).
Data frames are raw array bytes, sent and received without copies. The header carries every
data frame's length, so even in ``header`` mode a frame of another size is rejected. ``mac``
(32 bytes) is, by auth mode and message:

- ``header``: HMAC-SHA256(secret, header);
- ``curve``: the same, on connections that CurveZMQ encrypts and authenticates (keys derived
  from the secret, see ``Codec.curve_keys``; the transport sets them up);
- ``full``, data frames under 64 KiB in all: HMAC-SHA256(secret, header + data frames) (flag
  MAC_PAYLOAD);
- ``full``, bigger data: HMAC-SHA256(secret, header + NH digest of the data frames) (flags
  MAC_PAYLOAD|MAC_NH), NH keyed by a key derived from the secret (kvstore/dist/nh.py: a
  universal hash whose output the HMAC hides). NH runs at ~10 GB/s against SHA-256's
  ~1.7 GB/s, so big arrays cost the same four passes per push+pull at a sixth of the time.
  A sender answering with bytes it received (or one value to many pullers) reuses their
  digest (``Message.digest``) instead of hashing them again.

**Streams.** A message with 1 MiB of data or more (flag STREAM, any auth mode) travels as a
sequence of ZeroMQ messages on one connection::

    [header + head MAC]  [chunk 0]  [chunk 1] ...  [mac]

The head MAC is HMAC-SHA256(secret, "\x01stream-head" + header): the receiver knows who sends
what (and that the sequence number is fresh) before it accepts a single data byte. The final
``mac`` is the message's MAC as above, so it still covers the header and every data byte; the
sender computes it while ZeroMQ already moves the data. Chunks are

- for a reply (flag REPLY): each data frame cut in chunks of ``STREAM_CHUNK`` bytes (the last
  one shorter). The receiver takes each chunk straight into the reply's destination -- a
  worker's pull is received into the pulled array (``Transport.sink_for``) -- and hashes it
  (NH, 'full' mode) while the next one arrives: no copy and no hashing is left when the last
  byte is in;
- for a request: each data frame whole, received without a copy and kept as the value (a
  server adopts pushed bytes; cutting them would cost it a copy, and chunks queued in ZeroMQ
  while it copies would raise its peak memory).

A stream whose chunks or MAC are wrong is dropped as a whole (``StreamIn``); what it wrote to
its destination is then garbage, and the transport reports the failure (``on_stream_error``).

Receiving is strict and bounded: sizes are checked before anything is parsed, the MAC before
the JSON, and the sender's sequence number must grow (``PeerTable``). A frame that fails any
check raises ``WireError`` with a short ``reason``; the transport drops it, counts it and logs it
at bounded size -- a bad frame never crashes a node.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from ...base import HybridNetError
from .nh import BLOCK_BYTES, derive_key, frame_digest, nh_digest, nh_hash_into, warm_up

__all__ = ["Role", "Cmd", "Flag", "Message", "Codec", "WireError", "PeerTable", "role_name",
           "array_meta", "frame_array", "parse_secret", "job_bytes", "MAC_SIZE", "VERSION",
           "NH_MIN", "STREAM_MIN", "STREAM_CHUNK", "StreamIn"]

MAGIC = b"HNKV"
VERSION = 2
MAC_SIZE = 32
MAX_FRAMES = 4096
MAX_BODY = 1 << 20
NH_MIN = 1 << 16               # data bytes from which 'full' mode MACs the NH digest
STREAM_MIN = 1 << 20           # data bytes from which a message is sent as a stream
STREAM_CHUNK = 1 << 20         # data bytes per stream chunk (a multiple of nh.BLOCK_BYTES)
_STREAM_HEAD = b"\x01stream-head"    # domain of a stream head's MAC (other MACs start "HNKV")
ONE_FRAME_MAX = 1 << 16        # data bytes below which a message is one frame
_FIXED = struct.Struct("<4sBBHH16sBBiiQQQqI")
_LEN = struct.Struct("<Q")


class WireError(HybridNetError, ValueError):
    """A frame that is not a valid, authentic message of this job; ``reason`` is a short tag."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class Role(enum.IntEnum):
    """Node roles; the values are ps-lite's group bits."""
    SCHEDULER = 1
    SERVER = 2
    WORKER = 4


def role_name(role: int) -> str:
    try:
        return Role(role).name.lower()
    except ValueError:
        return f"role{role}"


class Cmd(enum.IntEnum):
    """Message commands: membership (scheduler) first, then key-value (servers)."""
    REGISTER = 1        # node -> scheduler: role, requested rank, host, port, pid
    NODE_TABLE = 2      # scheduler -> node: every node's role, rank, address, nonce
    BARRIER = 3         # node -> scheduler: group, generation; reply when all arrived
    ABORT = 5           # scheduler -> node: the job stops, body names the cause
    FAIL = 6            # node -> scheduler: this node failed (reason), stop the job
    LEAVE = 7           # worker -> server/scheduler: no more pushes from me (clean exit)
    SHUTDOWN = 8        # scheduler -> server: every worker left, exit 0
    INIT = 20           # worker 0 -> server: initial value of a key
    PUSH = 21           # worker -> server: a gradient (or 2-bit codes); answered only if refused
    PULL = 22           # worker -> server: current value (after my last push's round)
    SET_MODE = 23       # worker 0 -> server: sync or async
    SET_OPTIMIZER = 24  # worker 0 -> server: optimizer spec (JSON, never a pickle)
    SET_COMPRESSION = 25  # worker 0 -> server: {'type': '2bit', 'threshold': t}
    STATE_GET = 26      # worker -> server: optimizer state arrays of one key
    STATE_SET = 27      # worker -> server: load optimizer state arrays of one key
    STATS = 28          # worker -> server: counters (tests, benchmarks, debugging)
    SYNC = 29           # worker -> server: answered after every earlier message of the worker


class Flag:
    """Message flag bits (plain ints: flag arithmetic runs on every message)."""
    REPLY = 0x1
    ERROR = 0x2
    MAC_PAYLOAD = 0x4   # the MAC covers data frames too (auth mode 'full')
    MAC_NH = 0x20        # ... through their NH digest (kvstore/dist/nh.py)
    ONE_FRAME = 0x40    # data and MAC follow the header in its frame
    STREAM = 0x80       # header, data chunks and MAC follow as messages (see Codec.encode_streamed)
    ASYNC = 0x8         # a push sent by a dist_async store
    COMPRESSED = 0x10   # the data frame holds 2-bit codes


_NOT_MAC_FLAGS = 0xFFFF ^ (Flag.MAC_PAYLOAD | Flag.MAC_NH | Flag.ONE_FRAME | Flag.STREAM)
_COMMANDS = frozenset(int(c) for c in Cmd)
_ROLES = frozenset(int(r) for r in Role)
_DTYPES = {name: np.dtype(name) for name in
           ("float16", "float32", "float64", "uint8", "int8", "int32", "int64", "bool")}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


def parse_secret(text: str) -> bytes:
    """The 32-byte job secret from its 64-hex-digit form (the value is never echoed)."""
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise HybridNetError(
            "HYBRIDNET_KVSTORE_SECRET must be 64 hexadecimal digits (32 bytes), the same on "
            "every node of the job; python -m hybridnet.launch makes one for you")
    return secret


def job_bytes(job_id: str) -> bytes:
    """The 16-byte job id carried by every message."""
    return hashlib.sha256(job_id.encode()).digest()[:16]


@dataclass
class Message:
    """One decoded (or to-be-encoded) message; ``frames`` are buffers (bytes, memoryview,
    contiguous numpy arrays or zmq Frames)."""
    cmd: int
    flags: int = 0
    key: int = 0
    req: int = 0
    body: dict = field(default_factory=dict)
    frames: list = field(default_factory=list)
    src_role: int = 0
    src_rank: int = -1
    dst_role: int = 0
    dst_rank: int = -1
    nonce: int = 0
    seq: int = 0
    # NH digest of ``frames`` ('full' mode, big data): set by ``decode`` from the verified
    # frames; given to ``encode``, it is used instead of hashing the frames again (a server
    # answering pulls with a buffer it received, or with one value for every worker)
    digest: bytes | None = None
    # a stream head's header bytes, as received (``Codec.decode``); its data follows
    stream: bytes | None = None

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & Flag.REPLY)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & Flag.ERROR)

    def describe(self) -> str:
        """One log line of metadata: never payload bytes, never the secret."""
        try:
            name = Cmd(self.cmd).name
        except ValueError:
            name = str(self.cmd)
        kind = "error" if self.is_error else ("reply" if self.is_reply else "request")
        sizes = [_frame_len(f) for f in self.frames]
        return (f"{name} {kind} {role_name(self.src_role)}{self.src_rank}->"
                f"{role_name(self.dst_role)}{self.dst_rank} key={self.key} req={self.req} "
                f"seq={self.seq} frames={sizes}")


def _frame_len(frame) -> int:
    if isinstance(frame, np.ndarray):
        return frame.nbytes
    if isinstance(frame, memoryview):
        return frame.nbytes
    return len(frame)


def _frame_view(frame):
    """A buffer of ``frame`` for hashing, without copying."""
    buf = getattr(frame, "buffer", None)      # zmq.Frame
    if buf is not None:
        return buf
    if isinstance(frame, np.ndarray):
        return memoryview(frame).cast("B")
    return frame


class Codec:
    """Encodes and authenticates messages for one node of one job.

    Args:
        secret: the job's 32-byte key.
        job_id: the job id (any string; hashed to 16 bytes).
        mode: ``'full'`` (MAC over header and data), ``'header'`` (MAC over the header, which
            holds every data frame's length) or ``'curve'`` (header MAC on CurveZMQ
            connections); see the module docstring.
        max_frame: largest data frame (bytes) accepted.
        one_frame_max: messages with less data (bytes) than this are sent as one frame.
    """

    def __init__(self, secret: bytes, job_id: str, mode: str = "full",
                 max_frame: int = 4 << 30, one_frame_max: int = ONE_FRAME_MAX):
        if len(secret) != 32:
            raise HybridNetError("the job secret must be 32 bytes")
        if mode not in ("full", "header", "curve"):
            raise HybridNetError(f"auth mode must be 'full', 'header' or 'curve', got {mode!r}")
        # HMAC-SHA256 (RFC 2104) with the padded key's two hash states computed once: each
        # message then costs two state copies, not a new HMAC object (its key setup).
        block = secret.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._nh_key = derive_key(secret)
        if mode == "full":
            warm_up(self._nh_key)
        self.job = job_bytes(job_id)
        self.mode = mode
        self.max_frame = int(max_frame)
        self.one_frame_max = int(one_frame_max)

    def __repr__(self):                    # never show the secret
        return f"<Codec mode={self.mode}>"

    def _hmac(self, *parts) -> bytes:
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def curve_keys(self) -> dict:
        """The job's CurveZMQ keys (Z85): every node's ROUTER serves with the ``server`` pair,
        every DEALER connects with the ``client`` pair, and a connection whose client key is
        not the job's is refused. Both pairs derive from the secret (HMAC-SHA256 of a label),
        so only the job's nodes can complete a handshake."""
        import zmq
        from zmq.utils import z85
        keys = {}
        for role in ("server", "client"):
            secret = z85.encode(self._hmac(b"\x02curve-" + role.encode()))
            keys[role] = (zmq.curve_public(secret), secret)
        return keys

    def digest(self, frames) -> bytes | None:
        """The NH digest the MAC of a message with these data frames covers
        (``Message.digest``), or None if this mode MACs them otherwise."""
        if self.mode != "full" or sum(map(_frame_len, frames)) < NH_MIN:
            return None
        return nh_digest([_frame_view(frame) for frame in frames], self._nh_key)

    def _mac(self, header: bytes, msg: Message, flags: int) -> bytes:
        """The MAC of ``msg`` under ``header`` carrying ``flags`` (see the module docstring);
        for NH-MACed data, ``msg.digest`` is computed unless given."""
        if not flags & Flag.MAC_PAYLOAD:
            return self._hmac(header)
        if flags & Flag.MAC_NH:
            if msg.digest is None:
                msg.digest = nh_digest([_frame_view(f) for f in msg.frames], self._nh_key)
            return self._hmac(header, msg.digest)
        return self._hmac(header, *map(_frame_view, msg.frames))

    def encode(self, msg: Message) -> list:
        """The multipart parts of ``msg``: header bytes, the data frames as given, the MAC
        (data under STREAM_MIN; bigger messages are streams, see ``encode_streamed``)."""
        parts, chunks, trailer = self.encode_streamed(msg)
        if trailer is not None:
            raise WireError("stream", f"{sum(map(_frame_len, msg.frames))} bytes of data are "
                                      f"sent as a stream (Codec.encode_streamed)")
        return parts

    def encode_streamed(self, msg: Message) -> tuple:
        """``(parts, chunks, trailer)``: the parts of ``msg`` as one message, ``[]`` and None;
        or, for a stream (STREAM_MIN bytes of data and more), the parts of its head message,
        the chunk buffers (each sent as its own message, without copies) and a function
        computing the final MAC (called after the chunks were queued: the sender hashes while
        ZeroMQ moves the data)."""
        flags = msg.flags & _NOT_MAC_FLAGS
        sizes = [_frame_len(f) for f in msg.frames]
        size = sum(sizes)
        if self.mode == "full":
            flags |= Flag.MAC_PAYLOAD
            if size >= NH_MIN:
                flags |= Flag.MAC_NH
        if size >= STREAM_MIN:
            flags |= Flag.STREAM
        elif size < self.one_frame_max:
            flags |= Flag.ONE_FRAME
        body = json.dumps(msg.body, separators=(",", ":")).encode() if msg.body else b""
        if len(body) > MAX_BODY:
            raise WireError("body_size", f"message body of {len(body)} bytes exceeds {MAX_BODY}")
        if len(msg.frames) > MAX_FRAMES:
            raise WireError("frame_count", f"{len(msg.frames)} data frames exceed {MAX_FRAMES}")
        parts = [_FIXED.pack(MAGIC, VERSION, msg.cmd, flags, len(msg.frames), self.job,
                             msg.src_role, msg.dst_role, msg.src_rank, msg.dst_rank,
                             msg.nonce, msg.seq, msg.req, msg.key, len(body))]
        parts.append(struct.pack(f"<{len(sizes)}Q", *sizes))
        parts.append(body)
        header = b"".join(parts)
        if flags & Flag.STREAM:
            chunks = []
            for frame in msg.frames:
                view = memoryview(_frame_view(frame)).cast("B")
                step = STREAM_CHUNK if flags & Flag.REPLY else max(1, view.nbytes)
                chunks += [view[i:i + step] for i in range(0, view.nbytes, step)]
            head = header + self._hmac(_STREAM_HEAD, header)
            return [head], chunks, lambda: self._mac(header, msg, flags)
        mac = self._mac(header, msg, flags)
        if flags & Flag.ONE_FRAME:
            return [b"".join([header, *map(_frame_view, msg.frames), mac])], [], None
        return [header, *msg.frames, mac], [], None

    @staticmethod
    def frame_sizes(header: bytes) -> tuple:
        """The data frame sizes a header announces (unchecked; () if it is no header)."""
        if len(header) < _FIXED.size or header[:4] != MAGIC:
            return ()
        count = min(int.from_bytes(header[8:10], "little"),
                    (len(header) - _FIXED.size) // _LEN.size)
        return struct.unpack_from(f"<{count}Q", header, _FIXED.size)

    def decode(self, parts: list) -> Message:
        """Check and decode received parts (bytes or zmq Frames); raise ``WireError``. The head
        of a stream decodes to a message without data whose ``stream`` is set (``StreamIn``
        receives the rest)."""
        if not parts:
            raise WireError("frame_count", "an empty message")
        head = parts[0]
        if type(head) is not bytes:
            head = head.bytes if hasattr(head, "bytes") else bytes(head)
        if len(head) < _FIXED.size:
            raise WireError("short_header", f"header of {len(head)} bytes < {_FIXED.size}")
        (magic, version, cmd, flags, nframes, job, src_role, dst_role, src_rank, dst_rank,
         nonce, seq, req, key, body_len) = _FIXED.unpack_from(head)
        if magic != MAGIC:
            raise WireError("magic", f"bad magic {magic!r}")
        if version != VERSION:
            raise WireError("version", f"protocol version {version}, this node speaks {VERSION}")
        if job != self.job:
            raise WireError("wrong_job", "message of another job (job id differs)")
        one_frame = flags & Flag.ONE_FRAME
        stream = flags & Flag.STREAM
        count = 1 if one_frame or stream else nframes + 2
        if len(parts) != count:
            raise WireError("frame_count", f"header announces {nframes} data frames"
                                           f"{' in its frame' if one_frame else ''}, message "
                                           f"has {len(parts)} parts")
        if body_len > MAX_BODY:
            raise WireError("body_size", f"body of {body_len} bytes exceeds {MAX_BODY}")
        expected = _FIXED.size + nframes * _LEN.size + body_len
        if len(head) < expected or (len(head) != expected and not (one_frame or stream)):
            raise WireError("header_size", f"header of {len(head)} bytes, fields say {expected}")
        lengths = struct.unpack_from(f"<{nframes}Q", head, _FIXED.size)
        for i, length in enumerate(lengths):
            if length > self.max_frame:
                raise WireError("frame_size", f"frame {i} announces {length} bytes > limit "
                                              f"{self.max_frame}")
        if stream:
            if one_frame or len(head) != expected + MAC_SIZE:
                raise WireError("header_size", f"stream head of {len(head)} bytes, fields say "
                                               f"{expected} + MAC")
            data, mac, header = [], head[expected:], head[:expected]
        elif one_frame:
            total = expected + sum(lengths) + MAC_SIZE
            if len(head) != total:
                raise WireError("frame_size", f"frame of {len(head)} bytes, its header "
                                              f"announces {total}")
            view, data, offset = memoryview(head), [], expected
            for length in lengths:
                data.append(view[offset:offset + length])
                offset += length
            mac, header = head[offset:], head[:expected]
        else:
            data = parts[1:-1]
            for i, length in enumerate(lengths):
                actual = _frame_len(data[i])
                if actual != length:
                    raise WireError("frame_size", f"frame {i} has {actual} bytes, header says "
                                                  f"{length}")
            mac, header = parts[-1], head
            mac = mac.bytes if hasattr(mac, "bytes") else bytes(mac)
        if bool(flags & Flag.MAC_PAYLOAD) != (self.mode == "full"):
            sender = "full" if flags & Flag.MAC_PAYLOAD else "header"
            raise WireError("auth_mode", f"sender authenticates in '{sender}' mode, this node "
                                         f"in '{self.mode}' (HYBRIDNET_KVSTORE_AUTH differs)")
        received = Message(cmd, flags & _NOT_MAC_FLAGS, key, req, {}, list(data), src_role,
                           src_rank, dst_role, dst_rank, nonce, seq)
        wanted = self._hmac(_STREAM_HEAD, header) if stream else self._mac(header, received,
                                                                            flags)
        if len(mac) != MAC_SIZE or not hmac.compare_digest(mac, wanted):
            raise WireError("bad_mac", "authentication failed (wrong secret or altered frame)")
        if cmd not in _COMMANDS:
            raise WireError("unknown_command", f"command {cmd}")
        if src_role not in _ROLES or dst_role not in _ROLES:
            raise WireError("bad_role", f"roles {src_role}->{dst_role}")
        if body_len:
            raw = head[expected - body_len:expected]
            try:
                body = json.loads(raw.decode())    # (str: no encoding detection)
            except (ValueError, RecursionError) as err:   # UnicodeDecodeError included
                raise WireError("bad_body", f"body is not JSON ({type(err).__name__})") from None
            if not isinstance(body, dict):
                raise WireError("bad_body", f"body is a JSON {type(body).__name__}, not an object")
            received.body = body
        if stream:
            received.stream = header
        return received


class StreamIn:
    """The rest of a stream whose head ``msg`` was decoded (and its sender admitted): the
    chunks due, where they go, their NH hashes, and the final check.

    Args:
        codec: the receiving node's ``Codec``.
        msg: the decoded head (``msg.stream`` set).
        frames: for a reply, one writable uint8 array per data frame, of the announced sizes:
            where the chunks go (the message's ``frames`` once complete). None for a request,
            whose frames arrive whole (``chunk_received(frame)``).
    """

    def __init__(self, codec: Codec, msg: Message, frames: list | None):
        self.codec, self.msg = codec, msg
        self.sizes = Codec.frame_sizes(msg.stream)
        self.frames = frames if frames is not None else []
        self.into_buffers = frames is not None
        step = STREAM_CHUNK if msg.is_reply else None
        self._chunks = [(i, start, min(step or size, size - start))
                        for i, size in enumerate(self.sizes)
                        for start in range(0, size, step or max(1, size))]
        self._next = 0
        self._flags = int.from_bytes(msg.stream[6:8], "little")
        self._hashes = ([np.empty(2 * (-(-size // BLOCK_BYTES)), np.uint64) for size in self.sizes]
                        if self._flags & Flag.MAC_NH else None)

    def next_size(self) -> int | None:
        """The byte size of the next chunk, or None: the MAC is next."""
        return self._chunks[self._next][2] if self._next < len(self._chunks) else None

    def next_buffer(self):
        """Where the next chunk goes (a uint8 array of its size), or None: it comes whole and
        is handed to ``chunk_received``."""
        if not self.into_buffers:
            return None
        i, start, size = self._chunks[self._next]
        return self.frames[i][start:start + size]

    def chunk_received(self, frame=None) -> None:
        """The next chunk has arrived (into ``next_buffer``, or as ``frame``): hash it while
        the next one arrives."""
        i, start, size = self._chunks[self._next]
        self._next += 1
        if frame is not None:
            self.frames.append(frame)
            data = _frame_view(frame)
        else:
            data = self.frames[i][start:start + size]
        if self._hashes is not None:
            first = 2 * (start // BLOCK_BYTES)
            nh_hash_into(data, self.codec._nh_key,
                         self._hashes[i][first:first + 2 * (-(-size // BLOCK_BYTES))])

    def finish(self, mac: bytes) -> Message:
        """The complete message, if ``mac`` is its MAC; else ``WireError``."""
        msg, header = self.msg, self.msg.stream
        msg.frames, msg.stream = list(self.frames), None
        if self._hashes is not None:
            msg.digest = b"".join(frame_digest(size, out)
                                  for size, out in zip(self.sizes, self._hashes))
        if len(mac) != MAC_SIZE or not hmac.compare_digest(
                mac, self.codec._mac(header, msg, self._flags)):
            raise WireError("bad_mac", "authentication of a stream failed (wrong secret or "
                                       "altered data)")
        return msg


def _who(msg: Message) -> str:
    return f"{role_name(msg.src_role)} rank {msg.src_rank}"


class PeerTable:
    """Who may send to this node, and the last sequence number seen from each sender.

    A sender is its process nonce; it is bound to one (role, rank) and one connection identity.
    Before the membership is fixed (``close``), new senders of the roles in ``open_roles`` are
    admitted on their first authentic message; afterwards only the senders ``expect``-ed from
    the node table are. A message whose sequence number does not grow is a replay.
    """

    def __init__(self, open_roles=()):
        self._peers: dict = {}             # nonce -> [role, rank, last_seq, identity]
        self._ranks: dict = {}             # (role, rank) -> nonce, for ranks >= 0
        self.open_roles = set(open_roles)

    def expect(self, role: int, rank: int, nonce: int) -> None:
        peer = self._peers.get(nonce)
        if peer is None:
            self._peers[nonce] = [role, rank, 0, None]
        else:
            peer[1] = rank
        if rank >= 0:
            self._ranks[(role, rank)] = nonce

    def close(self) -> None:
        """Admit no new senders from now on (membership is fixed)."""
        self.open_roles = set()

    def forget(self, nonce: int) -> None:
        peer = self._peers.pop(nonce, None)
        if peer is not None and self._ranks.get((peer[0], peer[1])) == nonce:
            del self._ranks[(peer[0], peer[1])]

    def check(self, identity: bytes, msg: Message) -> None:
        """Raise ``WireError`` unless ``msg`` may come from this sender on this connection."""
        peer = self._peers.get(msg.nonce)
        if peer is None:
            if msg.src_role not in self.open_roles:
                raise WireError("unknown_sender", f"{_who(msg)} (nonce {msg.nonce:#x}) is not a member "
                                                  f"of this job")
            if msg.src_rank >= 0 and (msg.src_role, msg.src_rank) in self._ranks:
                raise WireError("rank_taken", f"{_who(msg)} is already held by another process")
            peer = self._peers[msg.nonce] = [msg.src_role, msg.src_rank, 0, identity]
            if msg.src_rank >= 0:
                self._ranks[(msg.src_role, msg.src_rank)] = msg.nonce
        role, rank, last, ident = peer
        if msg.src_role != role or (rank >= 0 and msg.src_rank != rank):
            raise WireError("wrong_rank", f"message claims {_who(msg)}, but its sender is registered "
                                          f"as {role_name(role)} rank {rank}")
        if ident is None:
            peer[3] = identity
        elif ident != identity:
            raise WireError("wrong_connection", f"{_who(msg)} sent on a connection that is not its own")
        if msg.seq <= last:
            raise WireError("replay", f"{_who(msg)} sequence number {msg.seq} <= last seen {last}")
        peer[2] = msg.seq


# ---- arrays on the wire ----------------------------------------------------------------------
def array_meta(arr: np.ndarray) -> dict:
    """The JSON description of an array sent as a data frame."""
    dtype = arr.dtype
    return {"dtype": _DTYPE_NAMES.get(dtype) or dtype.name, "shape": list(arr.shape)}


def frame_array(msg: Message, index: int = 0, meta: dict | None = None) -> np.ndarray:
    """Data frame ``index`` of ``msg`` as a read-only array (no copy), checked against the
    dtype and shape in ``meta`` (default: the message body); ``WireError`` if they disagree."""
    meta = msg.body if meta is None else meta
    if index >= len(msg.frames):
        raise WireError("frame_count", f"{Cmd(msg.cmd).name} needs data frame {index}, message "
                                       f"has {len(msg.frames)}")
    dtype = _DTYPES.get(meta.get("dtype")) if isinstance(meta.get("dtype"), str) else None
    if dtype is None:
        raise WireError("bad_dtype", f"dtype {str(meta.get('dtype'))[:40]!r} is not one of "
                                     f"{', '.join(_DTYPES)}")
    shape = meta.get("shape")
    if (not isinstance(shape, list) or len(shape) > 32
            or not all(type(d) is int and 0 <= d < 1 << 48 for d in shape)):
        raise WireError("bad_shape", f"shape {str(shape)[:60]} is not a list of sizes")
    frame = msg.frames[index]
    nbytes = _frame_len(frame)
    needed = math.prod(shape) * dtype.itemsize
    if needed != nbytes:
        raise WireError("size_mismatch", f"{dtype.name} array of shape {tuple(shape)} needs "
                                         f"{needed} bytes, frame has {nbytes}")
    return np.frombuffer(_frame_view(frame), dtype=dtype).reshape(shape)
