"""Worker programs of the distributed tests: ``python dist_scenarios.py NAME 'JSON args'``.

Each scenario joins the job started by ``dist_helpers.Cluster`` (DMLC_* environment), runs,
and prints one ``RESULT <json>`` line. Gradients are deterministic functions of (key, rank,
step), so the tests recompute every expected number in their own process.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time

import numpy as np


def grad(key: int, rank: int, step: int, shape, dtype=np.float32, low=None, high=None):
    rs = np.random.RandomState((key * 1000003 + rank * 1009 + step) % (1 << 32))
    if low is not None:
        return rs.uniform(low, high, size=shape).astype(dtype)
    return rs.randn(*shape).astype(dtype)


def initial(key: int, shape, dtype=np.float32):
    return np.random.RandomState(key + 77).randn(*shape).astype(dtype)


def digest(arr: np.ndarray) -> str:
    arr = np.ascontiguousarray(arr)
    return hashlib.sha256(f"{arr.dtype}{arr.shape}".encode() + arr.tobytes()).hexdigest()


# The keys of the exactness scenarios: key -> (shape, dtype); key 9 exceeds the test's
# big-array bound (1000) and is split over the servers.
SUM_KEYS = {3: ((2, 3), np.float32), 9: ((50, 40), np.float32)}
SGD_KEYS = {0: ((10, 5), np.float32), 1: ((60, 30), np.float32), 2: ((7,), np.float16)}
COMPRESSION_T = 0.5
COMPRESSION_KEYS = {20: (37,), 21: (999,)}   # both under the bound: whole


def sgd_optimizer(mx, num_workers: int):
    return mx.optimizer.SGD(learning_rate=0.1, momentum=0.9, wd=1e-4,
                            rescale_grad=1.0 / num_workers, multi_precision=True)


def scenario_sums(kv, mx, rounds=3):
    """Exact sums (split key included), a second push in one round, 2-bit compression."""
    out = {"sums": []}
    for key, (shape, dtype) in SUM_KEYS.items():
        kv.init(key, mx.nd.array(initial(key, shape, dtype), dtype=dtype))
    for step in range(rounds):
        for key, (shape, dtype) in SUM_KEYS.items():
            kv.push(key, mx.nd.array(grad(key, kv.rank, step, shape, dtype), dtype=dtype))
        row = {}
        for key, (shape, dtype) in SUM_KEYS.items():
            o = mx.nd.zeros(shape, dtype=dtype)
            kv.pull(key, out=o)
            row[key] = digest(o.asnumpy())
        out["sums"].append(row)
    # -- a second push of one rank in one round is refused (A2)
    kv.init(11, mx.nd.zeros((4,)))
    if kv.rank == 0:
        kv.push(11, mx.nd.ones((4,)))
        kv.push(11, mx.nd.ones((4,)) * 5)
        start = time.monotonic()
        o = mx.nd.zeros((4,))
        kv.pull(11, out=o)
        try:
            o.wait_to_read()
            out["second_push"] = {"error": None}
        except mx.base.HybridNetError as err:
            out["second_push"] = {"error": str(err), "latency": time.monotonic() - start}
    else:
        time.sleep(2.0)
        kv.push(11, mx.nd.ones((4,)) * 10)
        o = mx.nd.zeros((4,))
        kv.pull(11, out=o)
        out["second_push"] = {"value": o.asnumpy().tolist()}
    kv._barrier()
    # -- a pull after a push is asked for by the next push: one message per round, and an
    # early answer nobody pulls (push, barrier, push) is dropped without harm
    from hybridnet.kvstore.dist.wire import Role
    shape, dtype = SUM_KEYS[3]
    conn = kv._member.transport._out[(Role.SERVER, kv._keys[3].slices[0][0])]
    o = mx.nd.zeros(shape, dtype=dtype)
    mx.nd.waitall()
    before = conn.seq
    for step in range(rounds, rounds + 10):
        kv.push(3, mx.nd.array(grad(3, kv.rank, step, shape, dtype), dtype=dtype))
        kv.pull(3, out=o)
    o.wait_to_read()
    out["early"] = {"messages": conn.seq - before, "last": digest(o.asnumpy())}
    kv.push(3, mx.nd.array(grad(3, kv.rank, rounds + 10, shape, dtype), dtype=dtype))
    kv._barrier()
    kv.push(3, mx.nd.array(grad(3, kv.rank, rounds + 11, shape, dtype), dtype=dtype))
    kv.pull(3, out=o)
    out["early"]["after_unused"] = digest(o.asnumpy())
    # -- 2-bit compression with error feedback (A4)
    kv.set_gradient_compression({"type": "2bit", "threshold": COMPRESSION_T})
    for key, shape in COMPRESSION_KEYS.items():
        kv.init(key, mx.nd.zeros(shape))
    out["compressed"] = []
    for step in range(20):
        row = {}
        for key, shape in COMPRESSION_KEYS.items():
            kv.push(key, mx.nd.array(grad(key, kv.rank, step, shape, low=-1.2, high=1.2)))
            o = mx.nd.zeros(shape)
            kv.pull(key, out=o)
            row[key] = digest(o.asnumpy())
        out["compressed"].append(row)
    server = kv._keys[21].slices[0][0]
    counter = kv._member.transport.bytes_sent
    mx.nd.waitall()
    before = counter[(Role.SERVER, server)]
    kv.push(21, mx.nd.ones(COMPRESSION_KEYS[21]))
    mx.nd.waitall()
    out["push_bytes"] = counter[(Role.SERVER, server)] - before
    o = mx.nd.zeros(COMPRESSION_KEYS[21])
    kv.pull(21, out=o)
    o.wait_to_read()
    out["stats"] = kv._server_stats()
    return out


def scenario_sgd(kv, mx, steps=50, save=None):
    """Server-side SGD (momentum, wd, an fp16 key with fp32 master weights) (A1)."""
    for key, (shape, dtype) in SGD_KEYS.items():
        kv.init(key, mx.nd.array(initial(key, shape, dtype), dtype=dtype))
    kv.set_optimizer(sgd_optimizer(mx, kv.num_workers))
    outs = {key: mx.nd.zeros(shape, dtype=dtype) for key, (shape, dtype) in SGD_KEYS.items()}
    for step in range(steps):
        for key, (shape, dtype) in SGD_KEYS.items():
            kv.push(key, mx.nd.array(grad(key, kv.rank, step, shape, dtype), dtype=dtype),
                    priority=-key)
        for key in SGD_KEYS:
            kv.pull(key, out=outs[key], priority=-key)
    result = {str(k): digest(o.asnumpy()) for k, o in outs.items()}
    if save and kv.rank == 0:
        kv.save_optimizer_states(save)
        np.savez(save + ".weights.npz", **{f"k{k}": o.asnumpy() for k, o in outs.items()})
    kv._barrier()
    return result


def scenario_restart(kv, mx, ckpt, steps=50, every=10, kill_at=37):
    """Server-side SGD that checkpoints every ``every`` steps (worker 0: weights and the
    servers' optimizer states, then the step) and resumes from the last checkpoint; in the
    first attempt worker 1 kills itself at step ``kill_at`` (C17, under --max-restarts)."""
    import signal
    attempt = int(os.environ["HYBRIDNET_RESTART_COUNT"])
    start = int(open(ckpt + ".step").read()) if os.path.exists(ckpt + ".step") else 0
    saved = np.load(ckpt + ".weights.npz") if start else None
    for key, (shape, dtype) in SGD_KEYS.items():
        value = saved[f"k{key}"] if start else initial(key, shape, dtype)
        kv.init(key, mx.nd.array(value, dtype=dtype))
    kv.set_optimizer(sgd_optimizer(mx, kv.num_workers))
    if start:
        kv.load_optimizer_states(ckpt + ".states")
    outs = {key: mx.nd.zeros(shape, dtype=dtype) for key, (shape, dtype) in SGD_KEYS.items()}
    for step in range(start, steps):
        if attempt == 0 and step == kill_at and kv.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        for key, (shape, dtype) in SGD_KEYS.items():
            kv.push(key, mx.nd.array(grad(key, kv.rank, step, shape, dtype), dtype=dtype))
            kv.pull(key, out=outs[key])
        mx.nd.waitall()              # a training step needs its weights before the next one
        if (step + 1) % every == 0 and kv.rank == 0:
            kv.save_optimizer_states(ckpt + ".states")
            with open(ckpt + ".tmp.npz", "wb") as f:
                np.savez(f, **{f"k{k}": o.asnumpy() for k, o in outs.items()})
            os.replace(ckpt + ".tmp.npz", ckpt + ".weights.npz")
            with open(ckpt + ".tmp", "w") as f:
                f.write(str(step + 1))
            os.replace(ckpt + ".tmp", ckpt + ".step")     # the checkpoint is complete
    return {"attempt": attempt, "start": start,
            "weights": {str(k): digest(o.asnumpy()) for k, o in outs.items()}}


def scenario_load(kv, mx, load, weights, steps=1):
    """A new job (other server count) loads the states and takes more steps."""
    saved = np.load(weights)
    for key, (shape, dtype) in SGD_KEYS.items():
        kv.init(key, mx.nd.array(saved[f"k{key}"], dtype=dtype))
    kv.set_optimizer(sgd_optimizer(mx, kv.num_workers))
    kv.load_optimizer_states(load)
    outs = {key: mx.nd.zeros(shape, dtype=dtype) for key, (shape, dtype) in SGD_KEYS.items()}
    for step in range(steps):
        for key, (shape, dtype) in SGD_KEYS.items():
            kv.push(key, mx.nd.array(grad(key, kv.rank, 100 + step, shape, dtype), dtype=dtype))
            kv.pull(key, out=outs[key])
    return {str(k): digest(o.asnumpy()) for k, o in outs.items()}


def scenario_async(kv, mx, pushes=200):
    """dist_async: every push is applied, none lost (A3)."""
    kv.init(0, mx.nd.zeros((5,)))
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=-1.0))   # weight += grad
    one = mx.nd.ones((5,))
    for _ in range(pushes):
        kv.push(0, one)
    mx.nd.waitall()
    kv._barrier()
    o = mx.nd.zeros((5,))
    kv.pull(0, out=o)
    return {"value": o.asnumpy().tolist(),
            "updates": kv._server_stats()[0]["updates"] if kv.rank == 0 else None}


def scenario_uneven(kv, mx, base=10):
    """Rank r takes base + r steps; the job must still finish (C16)."""
    kv.init(0, mx.nd.zeros((3,)))
    seen = []
    for _ in range(base + kv.rank):
        kv.push(0, mx.nd.ones((3,)) * (kv.rank + 1))
        o = mx.nd.zeros((3,))
        kv.pull(0, out=o)
        seen.append(float(o.asnumpy()[0]))
    return {"rank": kv.rank, "seen": seen}


def scenario_train(kv, mx, steps=1000, sleep=0.05, stall_rank=-1, stall_step=-1,
                   crash_rank=-1, crash_step=-1, crash="raise"):
    """A training loop that prints its steps (fault tests kill or freeze nodes meanwhile)."""
    kv.init(0, mx.nd.zeros((1000,)))
    o = mx.nd.zeros((1000,))
    for step in range(steps):
        if kv.rank == stall_rank and step == stall_step:
            time.sleep(600)          # alive (heartbeats go on) but never pushes again
        if kv.rank == crash_rank and step == crash_step:
            for i in range(25):
                print(f"noise line {i}", file=sys.stderr, flush=True)
            if crash == "kill":
                os.kill(os.getpid(), 9)
            raise RuntimeError(f"boom at step {step}")
        kv.push(0, mx.nd.ones((1000,)))
        kv.pull(0, out=o)
        o.wait_to_read()
        print(f"step {step}", flush=True)
        time.sleep(sleep)
    return {"steps": steps}


def scenario_fuzzed(kv, mx, flag):
    """Keep pushing and checking exact values while the test fuzzes the server's port; also
    send authenticated but invalid requests, which must be refused, not crash anything."""
    from hybridnet.kvstore.dist.wire import Cmd, Message, Role
    member = kv._member
    kv.init(0, mx.nd.zeros((100,)))
    refused = 0
    bad = [Message(Cmd.PUSH, key=0, body={"dtype": "float64", "shape": [100]},
                   frames=[np.zeros(100)]),
           Message(Cmd.PUSH, key=0, body={"dtype": "float32", "shape": [99]},
                   frames=[np.zeros(99, np.float32)]),
           Message(Cmd.PUSH, key=0, body={"dtype": "complex", "shape": [100]},
                   frames=[np.zeros(100, np.float32)]),
           Message(Cmd.PUSH, key=0, body={"dtype": "float32", "shape": "x"},
                   frames=[np.zeros(100, np.float32)]),
           Message(Cmd.PUSH, key=0, body={}, frames=[]),
           Message(Cmd.PULL, key=12345),
           Message(Cmd.INIT, key=0, body={"dtype": "float32", "shape": [100]},
                   frames=[np.zeros(100, np.float32)]),
           Message(Cmd.STATE_SET, body={"meta": 1}),
           Message(Cmd.SET_OPTIMIZER, body={"spec": {"name": "nosuch", "params": {}}}),
           Message(Cmd.SET_COMPRESSION, body={"params": {"type": "9bit"}}),
           Message(Cmd.BARRIER, body={"group": "nope"})]
    print("ready", flush=True)
    rounds = 0
    while not os.path.exists(flag) or rounds < 20:
        for msg in bad:
            pending = member.request((Role.SERVER, 0), msg, "bad request")
            try:
                pending.wait(10)
            except mx.base.HybridNetError:
                refused += 1
        value = np.full(100, rounds, np.float32)
        kv.push(0, mx.nd.array(value))
        o = mx.nd.zeros((100,))
        kv.pull(0, out=o)
        if not np.array_equal(o.asnumpy(), value):
            raise AssertionError(f"round {rounds}: pulled {o.asnumpy()[:3]}, pushed {value[:3]}")
        rounds += 1
    # the fuzzing sockets' backlog may still be draining on a busy machine: report the
    # server's counters once they stop moving
    stats, deadline = kv._server_stats()[0], time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        latest = kv._server_stats()[0]
        if latest["drops"] == stats["drops"]:
            break
        stats = latest
    return {"rounds": rounds, "refused": refused, "stats": stats}


def scenario_module(kv, mx, steps=4, batch=20):
    """Module training through the store: worker r takes rows [r*b, (r+1)*b) of each batch of
    ``batch`` (b = batch / workers) from tests/fixtures/module; returns the final params."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    from gen_module import OPT, inputs, mlp
    x, y, params = inputs()
    part = batch // kv.num_workers
    mod = mx.mod.Module(mlp(mx), context=mx.cpu())
    mod.bind(data_shapes=[("data", (part, 1, 6, 6))], label_shapes=[("softmax_label", (part,))])
    mod.init_params(arg_params={k: mx.nd.array(v) for k, v in params.items()})
    mod.init_optimizer(kvstore=kv, optimizer="sgd", optimizer_params=OPT)
    for k in range(steps):
        lo = (k * batch) % 60 + kv.rank * part
        mod.forward_backward(mx.io.DataBatch([mx.nd.array(x[lo:lo + part])],
                                             [mx.nd.array(y[lo:lo + part])]))
        mod.update()
    arg, _ = mod.get_params()
    return {"rescale_grad": mod._optimizer.rescale_grad,
            "update_on_kvstore": mod._update_on_kvstore,
            "params": {k: v.asnumpy().tolist() for k, v in arg.items()}}


def scenario_keys(kv, mx, keys=1000, rounds=3):
    """Many small keys: every worker pushes rank + 1 + round to every key each round and
    counts the pulls that differ from the exact sum (small integers are exact in float32)."""
    names = list(range(keys))
    kv.init(names, [mx.nd.zeros((4,)) for _ in names])
    outs = [mx.nd.zeros((4,)) for _ in names]
    workers = kv.num_workers
    wrong = 0
    start = time.perf_counter()
    for r in range(rounds):
        value = mx.nd.full((4,), kv.rank + 1 + r)
        kv.push(names, [value] * keys)
        kv.pull(names, out=outs)
        mx.nd.waitall()
        expected = workers * (workers + 1) // 2 + workers * r
        wrong += sum(int(not np.all(o.asnumpy() == expected)) for o in outs)
    seconds = time.perf_counter() - start
    kv._barrier()
    return {"rank": kv.rank, "wrong": wrong, "seconds": seconds,
            "stats": kv._server_stats() if kv.rank == 0 else None}


def scenario_memory(kv, mx, mib=64, steps=1000):
    """Memory (B8, B9): peak RSS around pushing one ``mib`` MiB array, then RSS over
    ``steps`` rounds of small keys with a server-side optimizer."""
    from hybridnet.kvstore.dist.server import memory_kib
    n = (mib << 20) // 4
    out = {"server": [kv._server_stats()[0]], "worker": [memory_kib()]}
    big = mx.nd.ones((n,))
    kv.init(100, big)
    kv.push(100, big)
    kv._barrier()                    # the server has the value and the round is complete
    out["worker"].append(memory_kib())
    out["server"].append(kv._server_stats()[0])
    kv.pull(100, out=big)          # the pulled value lands in the pushed array
    big.wait_to_read()
    out["big_ok"] = bool((big.asnumpy()[::4096] == 1).all())
    del big
    keys = list(range(4))
    kv.init(keys, [mx.nd.zeros((1000,)) for _ in keys])
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9))
    grads = [mx.nd.ones((1000,)) for _ in keys]
    outs = [mx.nd.zeros((1000,)) for _ in keys]
    out["rss"] = {}
    for step in range(1, steps + 1):
        kv.push(keys, grads)
        kv.pull(keys, out=outs)
        mx.nd.waitall()
        if step in (50, steps):
            out["rss"][step] = {"worker": memory_kib()["rss_kib"],
                                "server": kv._server_stats()[0]["rss_kib"]}
    out["weight"] = float(outs[0].asnumpy()[0])
    return out


def shard(x: np.ndarray, batch: int, rank: int, workers: int) -> np.ndarray:
    """Worker ``rank``'s rows: its contiguous share of every global batch of ``batch`` rows
    (so the workers' batches, concatenated in rank order, are the one-process batches)."""
    part = batch // workers
    rows = [np.arange(start + rank * part, start + (rank + 1) * part)
            for start in range(0, len(x), batch)]
    return x[np.concatenate(rows)]


def fit_module(mx, x, y, batch: int, kvstore, epochs: int) -> dict:
    """``Module.fit`` of tests/fixtures/gen_module.py's MLP from its fixed parameters (no
    shuffling); returns the final parameters as numpy arrays."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    from gen_module import OPT, inputs, mlp
    params = inputs()[2]
    mod = mx.mod.Module(mlp(mx), context=mx.cpu())
    mod.fit(mx.io.NDArrayIter(x, y, batch, shuffle=False), num_epoch=epochs, kvstore=kvstore,
            optimizer="sgd", optimizer_params=OPT,
            arg_params={k: mx.nd.array(v) for k, v in params.items()})
    return {k: v.asnumpy() for k, v in mod.get_params()[0].items()}


def scenario_fit(kv, mx, epochs=2, batch=20):
    """``Module.fit(kvstore='dist_sync')`` on this worker's shard of every batch."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    from gen_module import inputs
    x, y, _ = inputs()
    workers = kv.num_workers
    params = fit_module(mx, shard(x, batch, kv.rank, workers), shard(y, batch, kv.rank, workers),
                        batch // workers, "dist_sync", epochs)
    return {k: v.tolist() for k, v in params.items()}


def main() -> None:
    name = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    import hybridnet as mx
    kv = mx.kv.create(args.pop("type", "dist_sync"))
    result = globals()[f"scenario_{name}"](kv, mx, **args)
    sys.stdout.flush()
    # one write: workers under the launcher share one stdout
    os.write(1, ("RESULT " + json.dumps(result) + "\n").encode())


if __name__ == "__main__":
    main()
