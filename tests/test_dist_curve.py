"""Auth mode 'curve': CurveZMQ-encrypted connections whose keys derive from the job secret."""
import os
import time

import numpy as np
import zmq

from hybridnet.kvstore.dist.transport import Transport, new_nonce
from hybridnet.kvstore.dist.wire import Cmd, Codec, Message, Role, array_meta, frame_array

from dist_helpers import Cluster

SECRET = bytes(range(32))


def _message(arr):
    return Message(Cmd.PUSH, key=1, body=array_meta(arr), frames=[arr])


def _received(server: Transport, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = server.recv(0.05)
        if got is not None:
            return got[1]
    return None


def test_only_clients_holding_the_job_keys_get_through():
    codec = Codec(SECRET, "job", "curve")
    keys = codec.curve_keys()
    assert keys == Codec(SECRET, "job", "curve").curve_keys()          # every node agrees
    assert keys != Codec(bytes(32), "job", "curve").curve_keys()       # another job differs
    assert SECRET.hex().encode() not in b"".join(k for pair in keys.values() for k in pair)
    server = Transport(codec, Role.SERVER, 0, new_nonce(), send_timeout=2.0)
    port = server.bind("127.0.0.1")
    server.peers.open_roles = {Role.WORKER}
    client = Transport(codec, Role.WORKER, 0, new_nonce(), send_timeout=2.0)
    client.connect("s", Role.SERVER, 0, "127.0.0.1", port)
    ctx = zmq.Context()
    intruders = [ctx.socket(zmq.DEALER) for _ in range(2)]
    try:
        plain, impostor = intruders
        impostor.curve_serverkey = keys["server"][0]      # knows the server key, not the job's
        impostor.curve_publickey, impostor.curve_secretkey = zmq.curve_keypair()
        for sock in intruders:
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(f"tcp://127.0.0.1:{port}")
            sock.send_multipart(Codec(SECRET, "job", "curve").encode(
                Message(Cmd.STATS, src_role=Role.WORKER, src_rank=0, nonce=7, seq=1)))
        assert _received(server, 1.0) is None             # neither completed a handshake
        arr = np.arange(100000, dtype=np.float32)         # big enough for zero-copy frames
        client.send("s", _message(arr))
        msg = _received(server, 5.0)
        assert msg is not None and msg.src_rank == 0
        np.testing.assert_array_equal(frame_array(msg), arr)
        assert sum(server.drops.counts.values()) == 0     # nothing reached the wire layer
    finally:
        for sock in intruders:
            sock.close()
        ctx.term()
        client.close(0)
        server.close(0)


def test_a_curve_job_sums_exactly(tmp_path):
    with Cluster(tmp_path, 2, 1, "keys", {"keys": 20, "rounds": 3},
                 env={"HYBRIDNET_KVSTORE_AUTH": "curve"}) as job:
        job.wait(90)
        job.assert_ok()
        results = [job[f"worker{r}"].result() for r in range(2)]
    assert [r["wrong"] for r in results] == [0, 0]
    assert sum(s["pushes"] for s in results[0]["stats"]) == 2 * 20 * 3
