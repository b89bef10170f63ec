"""dist_sync / dist_async semantics on real multi-process jobs on 127.0.0.1.

Every expected number is recomputed here from the same deterministic gradients
(``dist_scenarios.grad``); sums are compared bitwise (SHA-256 of the bytes).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.kvstore.dist import states as dist_states
from hybridnet.kvstore.dist.compression import TwoBitCompression, packed_size
from hybridnet.kvstore.dist.worker import KVStoreDist

from dist_helpers import FAST, REPO, SCENARIOS, Cluster, clean_env
from dist_scenarios import (COMPRESSION_KEYS, COMPRESSION_T, SGD_KEYS, SUM_KEYS, digest, grad,
                            initial, sgd_optimizer)

BOUND = {"HYBRIDNET_KVSTORE_BIGARRAY_BOUND": "1000"}
FIXTURES = Path(__file__).with_name("fixtures")


# ---- job A: 2 workers x 2 servers: sums, second push, compression --------------------------
@pytest.fixture(scope="module")
def sums_job(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("sums"), 2, 2, "sums", {"rounds": 3}, env=BOUND) as job:
        job.wait(90)
        job.assert_ok()
        return [job[f"worker{r}"].result() for r in range(2)]


def test_sync_sums_are_bit_exact_in_rank_order(sums_job):
    for step in range(3):
        for key, (shape, dtype) in SUM_KEYS.items():
            expected = digest(grad(key, 0, step, shape, dtype) + grad(key, 1, step, shape, dtype))
            for result in sums_job:
                assert result["sums"][step][str(key)] == expected, (step, key)


def test_big_key_is_split_in_near_equal_slices_and_small_keys_spread(sums_job):
    stats = sums_job[0]["stats"]
    n = int(np.prod(SUM_KEYS[9][0]))
    assert [s["elements"]["9"] for s in stats] == [n // 2, n - n // 2]
    for key in (3, 11, 20):             # small keys: whole, on server (key * 9973) % S
        owners = [i for i, s in enumerate(stats) if str(key) in s["elements"]]
        assert owners == [(key * 9973) % 2]
    assert {(k * 9973) % 2 for k in (3, 11, 20)} == {0, 1}   # both servers own small keys


def test_second_push_in_one_round_is_refused_and_leaves_the_round_intact(sums_job):
    refused = sums_job[0]["second_push"]
    assert "pushed key 11 twice in round 0" in refused["error"]
    assert refused["latency"] < 1.0           # the other worker only pushed 2 s later
    assert sums_job[1]["second_push"]["value"] == [11.0] * 4    # 1 (first push) + 10


def test_a_push_asks_for_the_pull_that_follows_it(sums_job):
    shape, dtype = SUM_KEYS[3]

    def total(step):
        return digest(grad(3, 0, step, shape, dtype) + grad(3, 1, step, shape, dtype))
    for result in sums_job:
        early = result["early"]
        # round 1's pull is sent; rounds 2..10 ride on their pushes: 1 + 10 + ... messages
        assert early["messages"] == 10, early
        assert early["last"] == total(3 + 9)
        assert early["after_unused"] == total(3 + 11)


def _mxnet_2bit(grad_: np.ndarray, residual: np.ndarray, t: float) -> np.ndarray:
    """MXNet's quantize_2bit + dequantize, element by element (the readable reference)."""
    pos, neg = np.float32(t), np.float32(-t)
    out = np.zeros_like(grad_)
    for i in range(grad_.size):
        residual[i] += grad_[i]
        if residual[i] >= pos:
            out[i], residual[i] = pos, residual[i] - pos
        elif residual[i] <= neg:
            out[i], residual[i] = neg, residual[i] - neg
    return out


def test_compressed_pushes_match_the_reference_bit_for_bit(sums_job):
    residual = {(r, k): np.zeros(shape, np.float32) for r in range(2)
                for k, shape in COMPRESSION_KEYS.items()}
    for step in range(20):
        for key, shape in COMPRESSION_KEYS.items():
            total = sum(_mxnet_2bit(grad(key, r, step, shape, low=-1.2, high=1.2),
                                    residual[(r, key)], COMPRESSION_T) for r in range(2))
            for result in sums_job:
                assert result["compressed"][step][str(key)] == digest(total), (step, key)


def test_compressed_push_is_ceil_n_over_16_words_plus_a_small_header(sums_job):
    payload = packed_size(COMPRESSION_KEYS[21][0]) * 4
    assert payload == 252
    for result in sums_job:
        assert payload < result["push_bytes"] <= payload + 256


@pytest.mark.parametrize("t", [0.5, 0.3])
def test_codec_matches_real_mxnet(t):
    """Fixture from MXNet 1.9.1 (gen_dist_compression.py): two devices' compressed gradients
    decompressed and summed, 20 steps, n=37, multiples of t, zeros, carried residuals."""
    data = np.load(FIXTURES / "dist_2bit.npz")
    codec = TwoBitCompression(t)
    residual = [np.zeros(37, np.float32) for _ in range(2)]
    for g, pulled in zip(data[f"grads_{t}"], data[f"pulled_{t}"]):
        total = sum(codec.decode(codec.encode(g[d], residual[d]), 37) for d in range(2))
        assert np.array_equal(total, pulled)


def test_codec_equals_the_elementwise_reference_on_edge_cases():
    rng = np.random.RandomState(3)
    t = 0.25
    codec = TwoBitCompression(t)
    for n in (1, 15, 16, 17, 33, 100):
        fast, slow = np.zeros(n, np.float32), np.zeros(n, np.float32)
        for step in range(20):
            g = rng.uniform(-0.6, 0.6, n).astype(np.float32)
            g[: n // 3] = np.float32(t) * rng.randint(-2, 3, n // 3)
            g[n // 3: n // 2] = 0
            packed = codec.encode(g, fast)
            assert packed.dtype == np.float32 and packed.size == packed_size(n)
            np.testing.assert_array_equal(codec.decode(packed, n), _mxnet_2bit(g, slow, t))
            np.testing.assert_array_equal(fast, slow)


# ---- job B: 3 workers x 2 servers, server-side SGD, pickle forbidden everywhere ---------------
def reference_sgd(workers: int, steps: int):
    updater = mx.optimizer.get_updater(sgd_optimizer(mx, workers))
    weights = {k: mx.nd.array(initial(k, shape, dtype), dtype=dtype)
               for k, (shape, dtype) in SGD_KEYS.items()}
    for step in range(steps):
        for key, (shape, dtype) in SGD_KEYS.items():
            merged = grad(key, 0, step, shape, dtype)
            for r in range(1, workers):
                merged = merged + grad(key, r, step, shape, dtype)     # rank order
            updater(key, mx.nd.array(merged, dtype=dtype), weights[key])
    return updater, weights


@pytest.fixture(scope="module")
def sgd_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sgd")
    guard = Path(__file__).with_name("dist_pickle_guard")
    env = dict(BOUND, PYTHONPATH=f"{guard}{os.pathsep}{REPO}")
    with Cluster(tmp, 3, 2, "sgd", {"steps": 50, "save": str(tmp / "states")}, env=env) as job:
        job.wait(120)
        job.assert_ok()
        return tmp, [job[f"worker{r}"].result() for r in range(3)]


def test_server_sgd_equals_one_process_bitwise_with_pickle_forbidden(sgd_job):
    _, results = sgd_job
    _, weights = reference_sgd(3, 50)
    expected = {str(k): digest(w.asnumpy()) for k, w in weights.items()}
    for result in results:
        assert result == expected


def test_optimizer_states_saved_from_the_servers_equal_the_reference(sgd_job):
    tmp, _ = sgd_job
    arrays, meta = dist_states.load(str(tmp / "states"))
    updater, _ = reference_sgd(3, 50)
    ref_arrays, ref_meta = updater.state_arrays()
    ref = {k: lay for k, lay in ref_meta["states"]}
    assert sorted(k for k, _ in meta["states"]) == sorted(ref)
    for key, layout in meta["states"]:
        got = [arrays[i] for i in dist_states._leaves(layout, [])]
        want = [ref_arrays[i] for i in dist_states._leaves(ref[key], [])]
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g.reshape(w.shape), w), key


def test_states_load_into_a_job_with_another_server_count(sgd_job, tmp_path):
    tmp, _ = sgd_job
    with Cluster(tmp_path, 1, 1, "load", {"load": str(tmp / "states"),
                                          "weights": str(tmp / "states") + ".weights.npz"},
                 env=BOUND) as job:
        job.wait(60)
        job.assert_ok()
        got = job["worker0"].result()
    updater, weights = reference_sgd(3, 50)
    fresh = mx.optimizer.get_updater(sgd_optimizer(mx, 1))
    fresh.load_state_arrays(*updater.state_arrays())
    for key, (shape, dtype) in SGD_KEYS.items():
        fresh(key, mx.nd.array(grad(key, 0, 100, shape, dtype), dtype=dtype), weights[key])
    assert got == {str(k): digest(w.asnumpy()) for k, w in weights.items()}


def test_states_file_is_refused_when_it_is_not_one(tmp_path):
    bad = tmp_path / "x.states"
    bad.write_bytes(b"\x80\x04not an npz")
    with pytest.raises(mx.base.HybridNetError, match="not a distributed optimizer states file"):
        dist_states.load(str(bad))


# ---- job C: dist_async --------------------------------------------------------------------
def test_async_loses_no_update(tmp_path):
    with Cluster(tmp_path, 3, 1, "async", {"type": "dist_async", "pushes": 200}) as job:
        job.wait(90)
        job.assert_ok()
        result = job["worker0"].result()
    assert result["value"] == [600.0] * 5
    assert result["updates"] == {"0": 600}


# ---- uneven batches under the launcher ----------------------------------------------------
def test_uneven_batch_counts_finish(tmp_path):
    """Worker 0 takes 10 steps, worker 1 takes 11: worker 0 leaves, the 11th round completes
    with worker 1 alone, and the whole job exits 0 (MXNet hangs here, #7888)."""
    proc = subprocess.run(
        [sys.executable, "-m", "hybridnet.launch", "-n", "2", "-s", "1",
         *[x for k, v in FAST.items() for x in ("--env", f"{k}={v}")],
         sys.executable, str(SCENARIOS), "uneven", "{}"],
        env=clean_env(), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    results = sorted((json.loads(line[7:]) for line in proc.stdout.splitlines()
                      if line.startswith("RESULT ")), key=lambda r: r["rank"])
    assert results[0]["seen"] == [3.0] * 10
    assert results[1]["seen"] == [3.0] * 10 + [2.0]


def test_a_dist_store_needs_the_job_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("DMLC_", "HYBRIDNET_KVSTORE", "HYBRIDNET_PS_", "HYBRIDNET_NUM_")):
            monkeypatch.delenv(name)
    with pytest.raises(mx.base.HybridNetError, match="DMLC_PS_ROOT_URI.*hybridnet.launch"):
        KVStoreDist("dist_sync")
    with pytest.raises(mx.base.HybridNetError, match="unknown distributed KVStore type"):
        KVStoreDist("dist_fast")


def test_a_thousand_keys_on_four_workers_and_two_servers_lose_nothing(tmp_path):
    """Every pull of every round is the exact sum, and the servers counted every push and
    completed every round (benchmark/kvstore.py runs the same with 100 rounds). Each worker
    queues 1000 pushes and 1000 pulls at once: waits inside the engine's pool must not nest
    without bound (they did, and a lost task hung the job)."""
    keys, rounds = 1000, 2
    with Cluster(tmp_path, 4, 2, "keys", {"keys": keys, "rounds": rounds}) as job:
        job.wait(150)
        job.assert_ok()
        results = [job[f"worker{r}"].result() for r in range(4)]
    assert [r["wrong"] for r in results] == [0] * 4
    stats = results[0]["stats"]
    assert sum(s["pushes"] for s in stats) == 4 * keys * rounds
    updates = {k: n for s in stats for k, n in s["updates"].items()}
    assert updates == {str(k): rounds for k in range(keys)}
    assert all(s["keys"] > keys // 4 for s in stats)      # both servers own many keys


# ---- memory: zero copy (B8) and no leaks (B9) --------------------------------------------
def test_pushing_a_big_array_copies_little_and_rounds_leak_nothing(tmp_path):
    mib, steps = 64, 1000
    with Cluster(tmp_path, 1, 1, "memory", {"mib": mib, "steps": steps}) as job:
        job.wait(120)
        job.assert_ok()
        result = job["worker0"].result()
    size_kib = mib << 10
    worker = result["worker"][1]["hwm_kib"] - result["worker"][0]["hwm_kib"]
    server = result["server"][1]["hwm_kib"] - result["server"][0]["hwm_kib"]
    assert worker <= 1.25 * size_kib, (worker, size_kib)      # the array itself, no copy
    assert server <= 2.25 * size_kib, (server, size_kib)      # value + the received push
    assert result["big_ok"]
    # SGD with momentum from 0 on gradient 1: w_t = -0.1 * sum_{i<t} (1 + 0.9 + ... + 0.9^i)
    expected = -0.1 * sum((1 - 0.9 ** (i + 1)) / 0.1 for i in range(steps))
    assert abs(result["weight"] - expected) <= 1e-3 * abs(expected)
    early, late = result["rss"]["50"], result["rss"][str(steps)]
    for role in ("worker", "server"):
        assert late[role] <= max(1.10 * early[role], early[role] + 8 * 1024), (role, early, late)


# ---- restart from a checkpoint (C17) -------------------------------------------------------
def test_a_job_restarted_from_its_checkpoint_ends_bit_identical(tmp_path):
    """--max-restarts 1: worker 1 dies (SIGKILL) at step 37, the launcher restarts the whole
    job, which resumes from the step-30 checkpoint; the step-50 weights equal an uninterrupted
    one-process run bit for bit."""
    import json
    ckpt = str(tmp_path / "ckpt")
    proc = subprocess.run(
        [sys.executable, "-m", "hybridnet.launch", "-n", "2", "-s", "1", "--max-restarts", "1",
         *[x for k, v in FAST.items() for x in ("--env", f"{k}={v}")],
         sys.executable, str(SCENARIOS), "restart", json.dumps({"ckpt": ckpt})],
        env=clean_env(), capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "restarting the whole job (restart 1 of 1)" in proc.stderr
    assert "worker 1" in proc.stderr and "SIGKILL" in proc.stderr     # the cause, named
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines()
               if line.startswith("RESULT ")]
    assert [(r["attempt"], r["start"]) for r in results] == [(1, 30), (1, 30)]
    _, weights = reference_sgd(2, 50)
    expected = {str(k): digest(w.asnumpy()) for k, w in weights.items()}
    assert all(r["weights"] == expected for r in results)
