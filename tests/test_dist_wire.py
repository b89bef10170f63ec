"""The distributed KVStore's wire format: framing, HMAC, replay, job id, peer binding, fuzzing."""
import ast
import hashlib
import hmac
import random
import struct
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zmq

from hybridnet.kvstore.dist.transport import Transport, new_nonce
from hybridnet.kvstore.dist.wire import (Cmd, Codec, Flag, Message, PeerTable, Role, WireError,
                                         array_meta, frame_array, parse_secret)

from dist_helpers import Cluster, free_port

SECRET = bytes(range(32))


def codec(mode="full", secret=SECRET, job="job-1", **kw):
    return Codec(secret, job, mode, **kw)


def split_one_frame(frame: bytes, data_bytes: int) -> tuple:
    """(header, data, mac) of a one-frame message holding ``data_bytes`` of data."""
    header_len = len(frame) - data_bytes - 32
    return frame[:header_len], frame[header_len:-32], frame[-32:]


def push_message(arr, **kw):
    fields = dict(key=7, req=3, body=array_meta(arr), frames=[arr], src_role=Role.WORKER,
                  src_rank=1, dst_role=Role.SERVER, dst_rank=0, nonce=99, seq=5)
    return Message(Cmd.PUSH, **{**fields, **kw})


def roundtrip(c, msg, decoder=None):
    parts = c.encode(msg)
    wire = [bytes(p) if not isinstance(p, np.ndarray) else p.tobytes() for p in parts]
    return (decoder or c).decode(wire)


@pytest.mark.parametrize("mode", ["full", "header"])
def test_roundtrip_keeps_every_field_and_the_array(mode):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = roundtrip(codec(mode), push_message(arr, flags=Flag.ASYNC))
    assert (got.cmd, got.key, got.req, got.src_role, got.src_rank, got.dst_rank, got.nonce,
            got.seq) == (Cmd.PUSH, 7, 3, Role.WORKER, 1, 0, 99, 5)
    assert got.flags == Flag.ASYNC
    np.testing.assert_array_equal(frame_array(got), arr)


def test_array_frames_are_sent_without_copies():
    arr = np.ones(100000, np.float32)
    parts = codec().encode(push_message(arr))
    assert parts[1] is arr                      # the caller's buffer itself is a frame


def test_wrong_secret_is_rejected():
    parts = codec().encode(push_message(np.ones(3, np.float32)))
    with pytest.raises(WireError, match="bad_mac"):
        codec(secret=bytes(32)).decode([bytes(p) for p in parts])


@pytest.mark.parametrize("one_frame", [True, False])
def test_full_mode_detects_altered_array_bytes_header_mode_binds_sizes(one_frame):
    arr = np.ones(16, np.float32)

    def altered(parts, data):
        if not one_frame:
            return [parts[0], data, parts[2]]
        header, _, mac = split_one_frame(parts[0], arr.nbytes)
        return [header + data + mac]
    for mode in ("full", "header"):
        parts = [bytes(p) for p in codec(mode, one_frame_max=1 << 16 if one_frame else 0)
                 .encode(push_message(arr))]
        assert len(parts) == (1 if one_frame else 3)
        np.testing.assert_array_equal(frame_array(codec(mode).decode(parts)), arr)
        if mode == "full":
            with pytest.raises(WireError, match="bad_mac"):
                codec(mode).decode(altered(parts, np.full(16, 2, np.float32).tobytes()))
        else:      # documented: header mode authenticates sizes, not array bytes
            np.testing.assert_array_equal(frame_array(codec(mode).decode(
                altered(parts, np.full(16, 2, np.float32).tobytes()))), 2)
        with pytest.raises(WireError, match="frame_size"):
            codec(mode).decode(altered(parts, np.full(15, 2, np.float32).tobytes()))


def test_small_messages_are_one_frame_and_a_receiver_takes_both_forms():
    arr = np.arange(16, dtype=np.float32)
    (one,) = codec().encode(push_message(arr))
    header, data, mac = split_one_frame(one, arr.nbytes)
    assert data == arr.tobytes()
    assert mac == hmac.new(SECRET, header + data, hashlib.sha256).digest()
    parts = codec(one_frame_max=0).encode(push_message(arr))
    assert len(parts) == 3 and parts[1] is arr
    for wire in ([one], [bytes(parts[0]), arr.tobytes(), parts[2]]):
        np.testing.assert_array_equal(frame_array(codec().decode(wire)), arr)
    with pytest.raises(WireError, match="frame_count"):
        codec().decode([one, b""])                      # a one-frame message with a tail
    big = np.zeros(1 << 14, np.float32)                 # 64 KiB: frames of their own
    assert len(codec().encode(push_message(big))) == 3


def test_auth_mode_mismatch_is_named():
    parts = [bytes(p) for p in codec("header").encode(push_message(np.ones(2, np.float32)))]
    with pytest.raises(WireError, match="auth_mode.*'header'.*'full'"):
        codec("full").decode(parts)


def test_other_job_is_rejected_even_with_the_same_secret():
    parts = [bytes(p) for p in codec(job="job-1").encode(push_message(np.ones(2, np.float32)))]
    with pytest.raises(WireError, match="wrong_job"):
        codec(job="job-2").decode(parts)


def test_replay_wrong_rank_and_strangers_are_rejected():
    c = codec()
    table = PeerTable()
    table.expect(Role.WORKER, 1, 99)
    table.close()
    msg = roundtrip(c, push_message(np.ones(2, np.float32)))
    table.check(b"id-a", msg)
    with pytest.raises(WireError, match="replay"):
        table.check(b"id-a", msg)                        # the same frame again
    forged = roundtrip(c, push_message(np.ones(2, np.float32)))
    forged.src_rank, forged.seq = 0, 6                   # right key, another rank's name
    with pytest.raises(WireError, match="wrong_rank"):
        table.check(b"id-a", forged)
    other = roundtrip(c, push_message(np.ones(2, np.float32)))
    other.seq = 7
    with pytest.raises(WireError, match="wrong_connection"):
        table.check(b"id-b", other)
    stranger = roundtrip(c, push_message(np.ones(2, np.float32)))
    stranger.nonce = 12345
    with pytest.raises(WireError, match="unknown_sender"):
        table.check(b"id-c", stranger)


def test_open_table_refuses_a_second_holder_of_a_rank():
    table = PeerTable(open_roles={Role.WORKER})
    a = Message(Cmd.REGISTER, src_role=Role.WORKER, src_rank=0, nonce=1, seq=1)
    b = Message(Cmd.REGISTER, src_role=Role.WORKER, src_rank=0, nonce=2, seq=1)
    table.check(b"a", a)
    with pytest.raises(WireError, match="rank_taken"):
        table.check(b"b", b)


@pytest.mark.parametrize("meta, reason", [
    ({"dtype": "float64", "shape": [4]}, "size_mismatch"),
    ({"dtype": "object", "shape": [4]}, "bad_dtype"),
    ({"dtype": "float32", "shape": [-4]}, "bad_shape"),
    ({"dtype": "float32", "shape": "4"}, "bad_shape"),
    ({"dtype": "float32", "shape": [5]}, "size_mismatch"),
])
def test_frame_array_checks_dtype_and_shape_against_bytes(meta, reason):
    msg = Message(Cmd.PUSH, frames=[np.ones(4, np.float32).tobytes()])
    with pytest.raises(WireError, match=reason):
        frame_array(msg, 0, meta)


def test_secret_must_be_64_hex_digits_and_is_never_echoed():
    assert parse_secret("ab" * 32) == bytes([0xAB]) * 32
    with pytest.raises(Exception, match="64 hexadecimal digits") as info:
        parse_secret("topsecret-value")
    assert "topsecret" not in str(info.value)
    assert "Codec" in repr(codec()) and SECRET.hex() not in repr(codec())


def test_no_pickle_in_the_distributed_code():
    """D18: nothing that handles network input may even import a deserializer of code."""
    root = Path(__file__).resolve().parents[1] / "hybridnet"
    files = sorted((root / "kvstore" / "dist").glob("*.py")) + [root / "launch.py"]
    banned = {"pickle", "cPickle", "marshal", "cloudpickle", "dill", "shelve", "jsonpickle"}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("eval", "exec"):
                names = [node.func.id]
            assert not banned.intersection(names) and "eval" not in names and \
                "exec" not in names, f"{path.name}:{node.lineno} uses {names}"


@contextmanager
def _server_client_and_raw(c):
    """A server transport, a worker transport connected to it as "s", and a raw DEALER socket
    connected to the server too (a peer that sends whatever bytes it likes)."""
    server = Transport(c, Role.SERVER, 0, new_nonce(), send_timeout=2.0)
    port = server.bind("127.0.0.1")
    client = Transport(c, Role.WORKER, 0, new_nonce(), send_timeout=2.0)
    client.connect("s", Role.SERVER, 0, "127.0.0.1", port)
    server.peers.open_roles = {Role.WORKER}
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield server, client, raw
    finally:
        raw.close()
        client.close(0)
        server.close(0)


def test_transport_delivers_and_drops_bad_frames_without_dying():
    c = codec()
    with _server_client_and_raw(c) as (server, client, raw):
        raw.send_multipart([b"\x00" * 5])
        raw.send_multipart([b"HNKV", b"x", b"y"])
        arr = np.arange(70000, dtype=np.float32)
        client.send("s", push_message(arr))
        got, deadline = None, time.monotonic() + 5
        while (got is None or sum(server.drops.counts.values()) < 2) and \
                time.monotonic() < deadline:
            got = server.recv(0.1) or got     # connections are not ordered among each other
        identity, msg = got
        np.testing.assert_array_equal(frame_array(msg), arr)
        assert sum(server.drops.counts.values()) == 2
        assert server.bytes_recv[(Role.WORKER, 0)] == client.bytes_sent[(Role.SERVER, 0)] > arr.nbytes


# ---- fuzzing a live server while a real client trains against it (D20) --------------------
def _fuzz_frames(rng: random.Random, secret: bytes, job: str, n: int):
    """``n`` malformed messages of many kinds (one-frame and multipart)."""
    c = Codec(secret, job, one_frame_max=0)
    push = Message(Cmd.PUSH, key=0, body={"dtype": "float32", "shape": [100]},
                   frames=[np.zeros(100, np.float32)], src_role=Role.WORKER, src_rank=0, nonce=1,
                   seq=1, dst_role=Role.SERVER, dst_rank=0)
    good = [bytes(p) for p in c.encode(push)]
    (one,) = Codec(secret, job).encode(push)
    # the head of a stream (1 MiB of data) from a sender that is no member, then its chunks
    big = Message(Cmd.PUSH, key=0, body={"dtype": "uint8", "shape": [1 << 20]},
                  frames=[bytes(1 << 20)], src_role=Role.WORKER, src_rank=0, nonce=1, seq=3,
                  dst_role=Role.SERVER, dst_rank=0)
    (stream_head,), stream_chunks, _ = c.encode_streamed(big)

    def flipped(frame: bytes) -> list:
        i = rng.randrange(len(frame))
        return [frame[:i] + bytes([frame[i] ^ (1 << rng.randrange(8))]) + frame[i + 1:]]
    stranger = [bytes(p) for p in c.encode(Message(Cmd.STATS, src_role=Role.WORKER, src_rank=0,
                                                   dst_role=Role.SERVER, nonce=4242, seq=1))]
    unknown = [bytes(p) for p in c.encode(Message(99, src_role=Role.WORKER, src_rank=0,
                                                  dst_role=Role.SERVER, nonce=1, seq=2))]
    kinds = [
        lambda: [rng.randbytes(rng.randint(0, 200))],
        lambda: [rng.randbytes(rng.randint(0, 200)) for _ in range(rng.randint(2, 6))],
        lambda: [good[0][:rng.randint(0, len(good[0]) - 1)]] + good[1:],      # truncated
        lambda: good[:1] + good[2:],                                          # frame missing
        lambda: good[:2] + good[1:],                                          # frame added
        lambda: good[:1] + [good[1][:-4]] + good[2:],                         # lens != payload
        lambda: [good[0][:72] + struct.pack("<Q", (1 << 62)) + good[0][80:]] + good[1:],
        lambda: [good[0][:4] + bytes([rng.randint(2, 255)]) + good[0][5:]] + good[1:],
        lambda: [good[0][:5] + bytes([rng.randint(40, 255)]) + good[0][6:]] + good[1:],
        lambda: good[:-1] + [rng.randbytes(32)],                              # forged MAC
        lambda: [good[0][:10] + rng.randbytes(16) + good[0][26:]] + good[1:],  # other job
        lambda: stranger,                                                     # not a member
        lambda: unknown,                                                      # unknown command
        lambda: [b"HNKV" + rng.randbytes(rng.randint(60, 120))] + [b""] + [rng.randbytes(32)],
        lambda: [one[:rng.randint(0, len(one) - 1)]],                        # truncated
        lambda: [one + rng.randbytes(rng.randint(1, 64))],                    # too long
        lambda: [one, rng.randbytes(rng.randint(0, 64))],                     # extra part
        lambda: flipped(one),                                                 # altered bit
        lambda: [stream_head],                                                # not a member
        lambda: flipped(stream_head),                                         # altered head
        lambda: [bytes(stream_chunks[0][:rng.randint(0, 4096)])],             # a stray chunk
        lambda: [rng.randbytes(32)],                                          # a stray MAC
    ]
    for _ in range(n):
        yield rng.choice(kinds)()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fuzzing_the_server_and_scheduler_never_kills_them(tmp_path):
    server_port = free_port()
    flag = tmp_path / "done"
    with Cluster(tmp_path, 1, 1, "fuzzed", {"flag": str(flag)},
                 server_env={0: {"PORT": str(server_port)}}) as job:
        job.wait_for_output("worker0", "ready", 30)
        secret = bytes.fromhex(job.env["HYBRIDNET_KVSTORE_SECRET"])
        rss_before = _rss_kib(job["server0"].pid)
        ctx = zmq.Context()
        socks = []
        for port in (server_port, int(job.env["DMLC_PS_ROOT_PORT"])):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 0)
            s.connect(f"tcp://127.0.0.1:{port}")
            socks.append(s)
        rng = random.Random(1234)
        sent = 0
        for i, parts in enumerate(_fuzz_frames(rng, secret, job.env["HYBRIDNET_KVSTORE_JOB_ID"],
                                               10000)):
            socks[i % 10 == 0].send_multipart(parts)     # 10% go to the scheduler
            sent += 1
        time.sleep(1.0)
        rss_after = _rss_kib(job["server0"].pid)
        flag.write_text("x")
        job.wait(60)          # every node survived and then ended cleanly
        for s in socks:
            s.close()
        ctx.term()
        job.assert_ok()
        result = job["worker0"].result()
        drops = result["stats"]["drops"]
        assert sum(drops.values()) >= 0.85 * sent, drops        # the rest went to the scheduler
        assert {"bad_mac", "frame_count", "frame_size", "header_size", "magic", "version",
                "unknown_sender", "unknown_command", "wrong_job"} <= set(drops), \
            drops
        assert result["refused"] == 11 * result["rounds"]
        assert rss_after - rss_before < 16 * 1024
        err = job["server0"].err
        assert len(err.splitlines()) < 200 and max(map(len, err.splitlines())) < 400



def test_link_monitor_sees_a_handshake_that_completes_during_connect(monkeypatch):
    """The liveness monitor is attached before connecting: a link whose handshake is over by
    the time connect() returns (a busy machine) must not look down from the start."""
    c = codec()
    server = Transport(c, Role.SCHEDULER, 0, new_nonce(), send_timeout=2.0)
    port = server.bind("127.0.0.1")
    client = Transport(c, Role.WORKER, 0, new_nonce(), send_timeout=2.0)
    plain_connect = zmq.Socket.connect

    def slow_connect(sock, address):
        result = plain_connect(sock, address)
        time.sleep(0.5)              # the handshake completes meanwhile
        return result
    monkeypatch.setattr(zmq.Socket, "connect", slow_connect)
    try:
        client.connect("s", Role.SCHEDULER, 0, "127.0.0.1", port, monitor=True)
        deadline = time.monotonic() + 5
        while client.link_down_for("s", time.monotonic()) > 0:
            assert time.monotonic() < deadline, "the link never came up"
            time.sleep(0.01)
    finally:
        client.close(0)
        server.close(0)


def test_codec_mac_is_hmac_sha256_over_header_and_frames():
    arr = np.arange(10, dtype=np.float32)
    for mode in ("full", "header"):
        parts = codec(mode, one_frame_max=0).encode(push_message(arr))
        covered = parts[0] + (arr.tobytes() if mode == "full" else b"")
        assert parts[-1] == hmac.new(SECRET, covered, hashlib.sha256).digest()


def test_big_arrays_in_full_mode_are_macd_through_their_nh_digest():
    from hybridnet.kvstore.dist import nh, wire
    arr = np.random.RandomState(0).rand(wire.NH_MIN // 4).astype(np.float32)
    parts = codec().encode(push_message(arr))
    head = parts[0]
    assert struct.unpack_from("<H", head, 6)[0] & (Flag.MAC_PAYLOAD | Flag.MAC_NH) == \
        Flag.MAC_PAYLOAD | Flag.MAC_NH
    digest = nh.nh_digest([arr.tobytes()], nh.derive_key(SECRET))
    assert parts[-1] == hmac.new(SECRET, head + digest, hashlib.sha256).digest()
    wire_parts = [bytes(p) if not isinstance(p, np.ndarray) else p.tobytes() for p in parts]
    np.testing.assert_array_equal(frame_array(codec().decode(wire_parts)), arr)
    for offset in (0, arr.nbytes // 2 + 1, arr.nbytes - 1):      # any one altered byte
        tampered = list(wire_parts)
        data = bytearray(tampered[1])
        data[offset] ^= 0x01
        tampered[1] = bytes(data)
        with pytest.raises(WireError, match="bad_mac"):
            codec().decode(tampered)
    downgraded = list(wire_parts)          # claiming SHA-256 instead changes the header
    flags = struct.unpack_from("<H", head, 6)[0] & ~Flag.MAC_NH
    downgraded[0] = head[:6] + struct.pack("<H", flags) + head[8:]
    with pytest.raises(WireError, match="bad_mac"):
        codec().decode(downgraded)
    smaller = codec().encode(push_message(arr[:wire.NH_MIN // 4 - 1]))
    assert not struct.unpack_from("<H", smaller[0], 6)[0] & Flag.MAC_NH


def test_nodes_binding_in_a_port_range_leave_the_schedulers_port_alone():
    """The launcher picks the scheduler's port from --port-range before the scheduler binds it;
    a server or worker starting first must not take it (CI once saw the scheduler fail with
    'Address already in use')."""
    low = free_port()
    for _ in range(20):              # the search starts at a random port of the range
        node = Transport(codec(), Role.SERVER, 0, new_nonce(), send_timeout=2.0)
        try:
            assert node.bind("127.0.0.1", 0, (low, low + 1), avoid=low) == low + 1
        finally:
            node.close(0)


def _receive_stream(c, parts, chunks, mac, into=None):
    """Decode a stream as a receiver does: the head, each chunk into its buffer, the MAC."""
    from hybridnet.kvstore.dist.wire import StreamIn
    head = c.decode([bytes(p) for p in parts])
    sizes = Codec.frame_sizes(head.stream)
    stream = StreamIn(c, head, [np.empty(n, np.uint8) for n in sizes] if head.is_reply else None)
    for chunk in chunks:
        assert stream.next_size() == len(chunk)
        target = stream.next_buffer()
        if head.is_reply:
            target[:] = np.frombuffer(chunk, np.uint8)
            stream.chunk_received()
        else:
            assert target is None
            stream.chunk_received(bytes(chunk))
    assert stream.next_size() is None
    return stream.finish(mac)


@pytest.mark.parametrize("mode", ["full", "header"])
def test_megabyte_messages_are_streams_of_chunks_checked_as_a_whole(mode):
    from hybridnet.kvstore.dist import wire
    c = codec(mode)
    arr = np.random.RandomState(1).rand((wire.STREAM_CHUNK * 5 // 2 + 100) // 4) \
        .astype(np.float32)
    request = c.encode_streamed(push_message(arr))      # a request's frames go whole
    assert len(request[1]) == 1 and len(request[1][0]) == arr.nbytes
    got = _receive_stream(c, request[0], request[1], request[2]())
    np.testing.assert_array_equal(frame_array(got), arr)
    parts, chunks, trailer = c.encode_streamed(push_message(arr, flags=Flag.REPLY))
    assert len(parts) == 1 and len(chunks) == 3                 # 2.5 chunks of data, + 100 B
    assert [len(ch) for ch in chunks] == [wire.STREAM_CHUNK] * 2 + [arr.nbytes - 2 *
                                                                      wire.STREAM_CHUNK]
    assert all(np.shares_memory(np.frombuffer(ch, np.uint8), arr) for ch in chunks)  # no copy
    header = parts[0][:-32]
    assert parts[0][-32:] == hmac.new(SECRET, b"\x01stream-head" + header,
                                      hashlib.sha256).digest()
    mac = trailer()
    if mode == "full":     # the MAC a one-message form would carry: header + NH digest
        assert mac == hmac.new(SECRET, header + c.digest([arr]), hashlib.sha256).digest()
    else:
        assert mac == hmac.new(SECRET, header, hashlib.sha256).digest()
    got = _receive_stream(c, parts, chunks, mac)
    np.testing.assert_array_equal(frame_array(got), arr)
    assert (got.cmd, got.key, got.seq, got.flags, got.stream) == (Cmd.PUSH, 7, 5, Flag.REPLY,
                                                                   None)
    assert got.digest == (c.digest([arr]) if mode == "full" else None)
    with pytest.raises(WireError, match="stream"):     # the one-message form does not exist
        c.encode(push_message(arr))
    with pytest.raises(WireError, match="bad_mac"):    # a forged or altered head
        c.decode([parts[0][:40] + bytes([parts[0][40] ^ 1]) + parts[0][41:]])
    with pytest.raises(WireError, match="bad_mac"):    # a chunk's MAC is no head MAC
        c.decode([header + mac])
    if mode == "full":     # any altered, moved or swapped data byte fails the final check
        for offset in (0, wire.STREAM_CHUNK + 7, arr.nbytes - 1):
            data = bytearray(arr.tobytes())
            data[offset] ^= 0x10
            tampered = [bytes(data[i:i + wire.STREAM_CHUNK])
                        for i in range(0, len(data), wire.STREAM_CHUNK)]
            with pytest.raises(WireError, match="bad_mac"):
                _receive_stream(c, parts, tampered, mac)
        with pytest.raises(WireError, match="bad_mac"):
            _receive_stream(c, parts, [chunks[1], chunks[0], chunks[2]], mac)
    smaller = c.encode_streamed(push_message(arr[:(wire.STREAM_MIN // 4) - 1]))
    assert smaller[1] == [] and smaller[2] is None


def test_transport_receives_streams_into_the_given_buffers_and_drops_broken_ones():
    from hybridnet.kvstore.dist import wire
    c = codec()
    arr = np.random.RandomState(3).rand(wire.STREAM_CHUNK * 3 // 8).astype(np.float32)
    failed = []
    with _server_client_and_raw(c) as (server, client, raw):
        sink = np.zeros(arr.nbytes, np.uint8)
        server.sink_for = lambda head: [sink] if head.key == 1 else None
        server.on_stream_error = lambda head, err: failed.append((head.key, err.reason))

        def receive(count):
            got, deadline = [], time.monotonic() + 10
            while len(got) < count and time.monotonic() < deadline:
                item = server.recv(0.1)
                if item is not None:
                    got.append(item[1])
            return got
        client.send("s", push_message(arr, key=1, flags=Flag.REPLY))
        client.send("s", push_message(arr, key=2, flags=Flag.REPLY))
        client.send("s", push_message(arr, key=1))     # a request: whole, without a copy
        one, two, request = receive(3)
        assert one.frames[0] is sink and np.array_equal(frame_array(one), arr)
        assert np.array_equal(frame_array(two), arr) and frame_array(two).flags.writeable
        assert isinstance(request.frames[0], zmq.Frame) and request.frames[0] is not sink
        assert np.array_equal(frame_array(request), arr) and request.digest == c.digest([arr])
        assert client.bytes_sent[(Role.SERVER, 0)] == server.bytes_recv[(Role.WORKER, 0)]
        # an admitted peer whose stream is altered in flight: dropped, its sink reported
        parts, chunks, trailer = c.encode_streamed(Message(
            Cmd.PUSH, Flag.REPLY, key=1, body=array_meta(arr), frames=[arr],
            src_role=Role.WORKER, src_rank=5, dst_role=Role.SERVER, dst_rank=0, nonce=77, seq=1))
        raw.send(parts[0])
        raw.send(bytes(chunks[0]))
        raw.send(bytes(chunks[1])[:-1] + b"\x00")
        raw.send(trailer())
        # ... and a stream cut by another message: dropped as a whole
        parts, chunks, trailer = c.encode_streamed(Message(
            Cmd.PUSH, Flag.REPLY, key=2, body=array_meta(arr), frames=[arr],
            src_role=Role.WORKER, src_rank=5, dst_role=Role.SERVER, dst_rank=0, nonce=77, seq=2))
        raw.send(parts[0])
        raw.send_multipart([b"a", b"b"])
        client.send("s", push_message(arr, key=3))      # the good client is still served
        (three,) = receive(1)
        assert three.key == 3 and np.array_equal(frame_array(three), arr)
        deadline = time.monotonic() + 5
        while sum(server.drops.counts.values()) < 2 and time.monotonic() < deadline:
            server.recv(0.1)
        assert server.drops.counts["bad_mac"] == 1 and server.drops.counts["stream"] == 1
        assert failed == [(1, "bad_mac")]


def test_a_given_digest_is_used_instead_of_hashing_and_decode_returns_it():
    from hybridnet.kvstore.dist import wire
    arr = np.random.RandomState(2).rand(wire.NH_MIN // 4).astype(np.float32)
    c = codec()
    assert c.digest([arr]) is not None and codec("header").digest([arr]) is None
    assert c.digest([arr[:-1]]) is None                  # small data is MACed byte by byte
    got = c.decode([bytes(p) if not isinstance(p, np.ndarray) else p.tobytes()
                    for p in c.encode(push_message(arr))])
    assert got.digest == c.digest([arr])
    # a reply reusing that digest is accepted; a stale one (other bytes) is rejected
    reply = push_message(arr, digest=got.digest)
    np.testing.assert_array_equal(frame_array(roundtrip(c, reply)), arr)
    stale = push_message(arr + 1, digest=got.digest)
    with pytest.raises(WireError, match="bad_mac"):
        roundtrip(c, stale)


def test_a_request_names_where_its_streamed_reply_goes_until_the_stream_starts():
    from hybridnet.kvstore.dist.errors import KVStoreDistError
    from hybridnet.kvstore.dist.requests import Requests
    requests = Requests()
    first, second = requests.new(1, "pull a"), requests.new(1, "pull b")
    buf = np.zeros(8, np.uint8)
    requests.set_sink(first, [buf])
    assert requests.sink_for(Message(Cmd.PULL, Flag.REPLY, req=first.req)) == [buf]
    assert requests.sink_for(Message(Cmd.PULL, Flag.REPLY, req=second.req)) is None
    requests.set_sink(second, [buf])          # too late: its reply already started elsewhere
    assert second.sink is None
    assert requests.sink_for(Message(Cmd.PULL, Flag.REPLY, req=999)) is None  # nobody waits
    done = []
    requests.when_done(first, done.append)
    requests.fail_req(first.req, KVStoreDistError("reply rejected; output undefined"))
    assert done == [first]
    with pytest.raises(KVStoreDistError, match="output undefined"):
        first.wait(1)
    requests.fail_req(first.req, KVStoreDistError("again"))     # no longer waiting: no-op
    assert str(first.error) == "reply rejected; output undefined"
