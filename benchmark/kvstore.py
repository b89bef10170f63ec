"""Distributed KVStore speed (issue 7 targets), one run.

1. Bandwidth: push+pull of 4 KiB ... 64 MiB arrays between one worker and one server on
   loopback (``python -m hybridnet.launch -n 1 -s 1``), against a raw pyzmq DEALER/ROUTER echo
   of the same bytes (``copy=False`` both ways) measured in the same worker process,
   alternating the two in rounds; throughput = 2 * size / median round-trip time. Once per
   authentication mode (HYBRIDNET_KVSTORE_AUTH=full: HMAC over header and data; header: over
   the header, which binds every frame's length; curve: header HMAC on CurveZMQ-encrypted
   connections). Targets: >= 0.8x the raw echo at 16 and 64 MiB, a 4 KiB round trip <= 3x
   the raw one.
2. Latency of a 1 KB push+pull: one key at a time, and 100 keys in flight at once.
3. 1,000 keys x 100 rounds with 4 workers and 2 servers (tests/dist_scenarios.py 'keys'):
   every pulled value equals the exact sum of the pushes, and the servers count every push.

    python benchmark/kvstore.py [--quick] [--rounds N] [--repeat N] [--sizes B,B] [--auth M,M]

The bandwidth worker runs this same file under the launcher (``--part bandwidth``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource as _resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20]


def _cpu() -> float:
    usage = _resource.getrusage(_resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the raw echo --------------------------------------------------------------------------
def echo_server(port: int) -> None:
    """A ROUTER that sends every message back (no copies), until a 1-byte message."""
    import zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(f"tcp://127.0.0.1:{port}")
    print("ready", flush=True)
    while True:
        parts = sock.recv_multipart(copy=False)
        if len(parts[1]) == 1:
            break
        sock.send_multipart(parts, copy=False)
    sock.close(0)
    ctx.term()


class RawEcho:
    """A DEALER talking to ``echo_server`` in another process."""

    def __init__(self):
        import socket
        import zmq
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, __file__, "--echo", str(port)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def cpu_seconds(self) -> float:
        """CPU time the echo process has used so far (Linux)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def roundtrip(self, arr: np.ndarray) -> None:
        self.sock.send(memoryview(arr).cast("B"), copy=False)
        self.sock.recv(copy=False)

    def close(self) -> None:
        self.sock.send(b"x")
        self.proc.wait(10)
        self.sock.close(0)
        self.ctx.term()


# ---- worker parts (run under the launcher) -------------------------------------------------
def part_bandwidth(rounds: int, sizes: list) -> dict:
    import hybridnet as mx
    kv = mx.kv.create("dist_sync")
    echo = RawEcho()
    out = {"auth": os.environ.get("HYBRIDNET_KVSTORE_AUTH", "full"), "sizes": {}}
    for key, size in enumerate(sizes):
        src = mx.nd.array(np.random.RandomState(key).rand(size // 4).astype(np.float32))
        dst = mx.nd.zeros((size // 4,))
        kv.init(key, mx.nd.zeros((size // 4,)))
        raw_arr = src.asnumpy()
        n = rounds if size >= (1 << 20) else rounds * 20
        times = {"raw": [], "kv": []}
        cpus = {"raw": [], "kv": []}

        def kv_round(key=key, src=src, dst=dst):
            kv.push(key, src)
            kv.pull(key, out=dst)
            dst.wait_to_read()

        pair = [("raw", lambda arr=raw_arr: echo.roundtrip(arr)), ("kv", kv_round)]
        peer_cpu = {"raw": [0.0, echo.cpu_seconds],
                    "kv": [0.0, lambda: kv._server_stats()[0]["cpu_seconds"]]}
        for i in range(n + 2):
            if i == 2:          # the peers' CPU time over the timed rounds
                for name in peer_cpu:
                    peer_cpu[name][0] = peer_cpu[name][1]()
            for name, fn in (pair if i % 2 else pair[::-1]):    # alternate who goes first
                c0, t0 = _cpu(), time.perf_counter()
                fn()
                t, c = time.perf_counter() - t0, _cpu() - c0
                if i >= 2:           # two warm-ups
                    times[name].append(t)
                    cpus[name].append(c)
        peer = {name: (get() - start) / n for name, (start, get) in peer_cpu.items()}
        assert np.array_equal(dst.asnumpy(), raw_arr), "pulled value differs from the push"
        out["sizes"][str(size)] = {name: {"time": float(np.median(times[name])),
                                          "cpu": float(np.median(cpus[name])),
                                          "peer_cpu": peer[name]}
                                   for name in times}
    echo.close()
    # latency of 1 KB keys: one at a time, then 100 in flight
    base = len(sizes)
    keys = list(range(base, base + 100))
    vals = [mx.nd.ones((256,)) for _ in keys]
    outs = [mx.nd.zeros((256,)) for _ in keys]
    kv.init(keys, [mx.nd.zeros((256,)) for _ in keys])
    single = []
    for i in range(rounds * 20 + 5):
        t0 = time.perf_counter()
        kv.push(keys[0], vals[0])
        kv.pull(keys[0], out=outs[0])
        outs[0].wait_to_read()
        if i >= 5:
            single.append(time.perf_counter() - t0)
    batched = []
    for i in range(rounds + 2):
        t0 = time.perf_counter()
        kv.push(keys, vals)
        kv.pull(keys, out=outs)
        mx.nd.waitall()
        if i >= 2:
            batched.append((time.perf_counter() - t0) / len(keys))
    out["latency_1k"] = {"single": float(np.median(single)), "batched": float(np.median(batched))}
    return out


# ---- driver ------------------------------------------------------------------------------
def launch(workers: int, servers: int, command: list, env: dict) -> list:
    extra = [x for k, v in env.items() for x in ("--env", f"{k}={v}")]
    argv = [sys.executable, "-m", "hybridnet.launch", "-n", str(workers), "-s", str(servers),
            *extra, sys.executable, *command]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"job failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return [json.loads(line[7:]) for line in proc.stdout.splitlines()
            if line.startswith("RESULT ")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and keys")
    p.add_argument("--rounds", type=int, default=10, help="timed rounds per size")
    p.add_argument("--part", choices=["bandwidth"])
    p.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--key-rounds", type=int, default=100)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--auth", default="header,full,curve", help="auth modes to measure")
    p.add_argument("--repeat", type=int, default=1,
                   help="bandwidth jobs per auth mode (alternating modes); medians reported")
    args = p.parse_args()
    if args.echo:
        echo_server(args.echo)
        return
    if args.part:
        result = part_bandwidth(args.rounds, [int(s) for s in args.sizes.split(",")])
        os.write(1, ("RESULT " + json.dumps(result) + "\n").encode())
        return
    rounds = 3 if args.quick else args.rounds
    num_keys, key_rounds = (100, 10) if args.quick else (args.keys, args.key_rounds)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("\n1. push+pull vs raw pyzmq echo (1 worker, 1 server, loopback; median of "
          f"{rounds} rounds, then of {args.repeat} job(s) per mode; x = raw time / kv time)")
    print("   cpu ms: CPU time per round trip of the worker process (w) and its peer (p: the "
          "server, or the echo process)")
    print(f"{'auth':>7} {'size':>9} {'raw ms':>9} {'kv ms':>9} {'raw GB/s':>9} {'kv GB/s':>9} "
          f"{'ratio':>6} {'raw cpu w+p':>12} {'kv cpu w+p':>12}")
    modes = args.auth.split(",")
    runs = {auth: [] for auth in modes}
    for _ in range(args.repeat):            # the modes alternate run by run
        for auth in modes:
            (res,) = launch(1, 1, [__file__, "--part", "bandwidth", "--rounds", str(rounds),
                                   "--sizes", args.sizes], {"HYBRIDNET_KVSTORE_AUTH": auth})
            runs[auth].append(res)
    kv_times = {}
    for auth in modes:
        for size in runs[auth][0]["sizes"]:
            rs = [res["sizes"][size] for res in runs[auth]]
            raw, kvt, raw_w, raw_p, kv_w, kv_p = (
                float(np.median([r[who][what] for r in rs])) for who, what in
                (("raw", "time"), ("kv", "time"), ("raw", "cpu"), ("raw", "peer_cpu"),
                 ("kv", "cpu"), ("kv", "peer_cpu")))
            ratio = float(np.median([r["raw"]["time"] / r["kv"]["time"] for r in rs]))
            kv_times[(auth, int(size))] = kvt
            size = int(size)
            label = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
            print(f"{auth:>7} {label:>9} {raw * 1e3:9.3f} {kvt * 1e3:9.3f} "
                  f"{2 * size / raw / 1e9:9.2f} {2 * size / kvt / 1e9:9.2f} {ratio:6.2f} "
                  f"{raw_w * 1e3:5.1f}+{raw_p * 1e3:<5.1f} {kv_w * 1e3:6.1f}+{kv_p * 1e3:<5.1f}")
        single, batched = (float(np.median([res["latency_1k"][k] for res in runs[auth]]))
                           for k in ("single", "batched"))
        print(f"{auth:>7} 1 KB key push+pull latency: {single * 1e6:.0f} us one at a time, "
              f"{batched * 1e6:.0f} us per key with 100 keys in flight")
    if "header" in modes and "full" in modes:
        print("   full auth / header auth throughput (B10: >= 0.70 at 16 MiB): " + ", ".join(
            f"{size >> 20 if size >= 1 << 20 else size >> 10} {'MiB' if size >= 1 << 20 else 'KiB'}"
            f" {kv_times[('header', size)] / kv_times[('full', size)]:.2f}"
            for (auth, size) in kv_times if auth == "full"))
    print(f"\n3. {num_keys} keys x {key_rounds} rounds, 4 workers, 2 servers")
    # the scenario of tests/test_dist_kvstore.py, with more rounds
    res = launch(4, 2, [os.path.join(ROOT, "tests", "dist_scenarios.py"), "keys",
                        json.dumps({"keys": num_keys, "rounds": key_rounds})], {})
    wrong = sum(r["wrong"] for r in res)
    stats = next(r["stats"] for r in res if r["rank"] == 0)
    pushes = sum(s["pushes"] for s in stats)
    seconds = max(r["seconds"] for r in res)
    print(f"   wrong pulls {wrong}; pushes counted by the servers {pushes} of "
          f"{4 * num_keys * key_rounds}; {seconds:.1f} s "
          f"({seconds / key_rounds / num_keys * 1e6:.0f} us per key-round)")


if __name__ == "__main__":
    main()
