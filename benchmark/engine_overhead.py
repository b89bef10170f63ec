"""Per-op overhead of the eager path: a tiny op (c = a + b on 10 floats) and a 1000-op chain.

Prints microseconds per op (wall and CPU time, best of 5) for hybridnet, numpy, and -- when
available in the same run -- real MXNet 1.9.1 (run in its own venv: HYBRIDNET_MXNET_PYTHON,
default /tmp/mxref/bin/python) and PyTorch, each in a subprocess so they share no interpreter.

    python benchmark/engine_overhead.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SNIPPETS = {
    "hybridnet": """
        import hybridnet as mx
        a = mx.nd.ones((10,)); b = mx.nd.ones((10,))
        def tiny(): return a + b
        def chain():
            c = a
            for _ in range(1000): c = c + b
            c.wait_to_read()
        sync = mx.nd.waitall
    """,
    "numpy": """
        import numpy as np
        a = np.ones(10, np.float32); b = np.ones(10, np.float32)
        def tiny(): return a + b
        def chain():
            c = a
            for _ in range(1000): c = c + b
        sync = lambda: None
    """,
    "mxnet": """
        import mxnet as mx
        a = mx.nd.ones((10,)); b = mx.nd.ones((10,))
        def tiny(): return a + b
        def chain():
            c = a
            for _ in range(1000): c = c + b
            c.wait_to_read()
        sync = mx.nd.waitall
    """,
    "torch": """
        import torch
        torch.set_num_threads(2)
        a = torch.ones(10); b = torch.ones(10)
        def tiny(): return a + b
        def chain():
            c = a
            for _ in range(1000): c = c + b
        sync = lambda: None
    """,
}

_MEASURE = """
import json, time
for _ in range(3): chain()
sync()
n = 20000
best = {"tiny_us": float('inf'), "tiny_cpu_us": float('inf'),
        "chain_us": float('inf'), "chain_cpu_us": float('inf')}
for _ in range(5):
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n): tiny()
    sync()
    best["tiny_us"] = min(best["tiny_us"], (time.perf_counter() - t) / n * 1e6)
    best["tiny_cpu_us"] = min(best["tiny_cpu_us"], (time.process_time() - c) / n * 1e6)
for _ in range(5):
    t, c = time.perf_counter(), time.process_time()
    chain(); sync()
    best["chain_us"] = min(best["chain_us"], (time.perf_counter() - t) / 1000 * 1e6)
    best["chain_cpu_us"] = min(best["chain_cpu_us"], (time.process_time() - c) / 1000 * 1e6)
print(json.dumps(best))
"""


def _run(name: str, python: str) -> dict | None:
    code = textwrap.dedent(_SNIPPETS[name]) + _MEASURE
    env = dict(os.environ, OMP_NUM_THREADS="2")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600,
                             env=env, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"  {name}: not measured ({err})", file=sys.stderr)
        return None
    if out.returncode != 0:
        print(f"  {name}: not measured ({out.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    mxnet_python = os.environ.get("HYBRIDNET_MXNET_PYTHON", "/tmp/mxref/bin/python")
    runs = {"hybridnet": sys.executable, "numpy": sys.executable, "torch": sys.executable}
    if os.path.exists(mxnet_python):
        runs["mxnet"] = mxnet_python
    results = {name: _run(name, py) for name, py in runs.items()}
    print(f"{'framework':<10} {'tiny op (us)':>13} {'CPU (us)':>9} {'1000-op chain (us/op)':>22} "
          f"{'CPU (us/op)':>12}")
    for name, r in results.items():
        if r:
            print(f"{name:<10} {r['tiny_us']:>13.2f} {r['tiny_cpu_us']:>9.2f} "
                  f"{r['chain_us']:>22.2f} {r['chain_cpu_us']:>12.2f}")
    hn, mx_ = results.get("hybridnet"), results.get("mxnet")
    if hn and mx_:
        print(f"\nhybridnet / MXNet: tiny {hn['tiny_us'] / mx_['tiny_us']:.2f}x, "
              f"chain {hn['chain_us'] / mx_['chain_us']:.2f}x  (target: <= 5 us per tiny op; "
              f"CPU time is the steadier number on a busy machine)")

if __name__ == "__main__":
    main()
