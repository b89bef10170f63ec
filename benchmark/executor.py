"""Executor overhead, memory planning and bind time.

1. Forward + backward of FCN-R (784-2048-4096-1024-10, batch 64) and AlexNet-R (batch 128,
   3x32x32 input; conv 5x5 32/32/64 pad 2, each followed by relu and 3x3/2 max pooling; FC 10;
   SoftmaxOutput) through ``simple_bind`` executors, against calling the same registry kernels
   directly in a Python loop over preallocated numpy buffers (target: overhead <= 10%), in
   wall time and in CPU time of the process (steadier on a shared machine).
   With real MXNet 1.9.1 available (HYBRIDNET_MXNET_PYTHON, default /tmp/mxref/bin/python),
   its executor is timed on the same nets in a subprocess for reference.
2. Planned vs naive (one buffer per array) memory of AlexNet-R training (target <= 60%).
3. ``simple_bind`` of a 200-layer MLP (target < 0.5 s).

    python benchmark/executor.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hybridnet as mx  # noqa: E402
from hybridnet.ops import get_op, resource  # noqa: E402

# layer specs shared by both nets: (op, params, takes weight+bias)
FCN = [("FullyConnected", {"num_hidden": 2048}, True), ("Activation", {"act_type": "relu"}, False),
       ("FullyConnected", {"num_hidden": 4096}, True), ("Activation", {"act_type": "relu"}, False),
       ("FullyConnected", {"num_hidden": 1024}, True), ("Activation", {"act_type": "relu"}, False),
       ("FullyConnected", {"num_hidden": 10}, True)]
_POOL = ("Pooling", {"kernel": (3, 3), "stride": (2, 2), "pool_type": "max"}, False)
ALEXNET = [("Convolution", {"kernel": (5, 5), "num_filter": 32, "pad": (2, 2)}, True),
           ("Activation", {"act_type": "relu"}, False), _POOL,
           ("Convolution", {"kernel": (5, 5), "num_filter": 32, "pad": (2, 2)}, True),
           ("Activation", {"act_type": "relu"}, False), _POOL,
           ("Convolution", {"kernel": (5, 5), "num_filter": 64, "pad": (2, 2)}, True),
           ("Activation", {"act_type": "relu"}, False), _POOL,
           ("Flatten", {}, False), ("FullyConnected", {"num_hidden": 10}, True)]
NETS = {"FCN-R": (FCN, (64, 784)), "AlexNet-R": (ALEXNET, (128, 3, 32, 32))}


def build_symbol(layers):
    x = mx.sym.var("data")
    for i, (op, params, _) in enumerate(layers):
        x = getattr(mx.sym, op)(x, name=f"l{i}", **params)
    return mx.sym.SoftmaxOutput(x, name="softmax")


def bind(layers, shape):
    sym = build_symbol(layers)
    params = [n for n in sym.list_arguments() if n not in ("data", "softmax_label")]
    exe = sym.simple_bind(mx.cpu(), grad_req={n: "write" for n in params}, data=shape)
    rng = np.random.RandomState(0)
    for name, arr in exe.arg_dict.items():
        if name == "softmax_label":
            arr[:] = rng.randint(0, 10, arr.shape)
        else:
            arr[:] = rng.standard_normal(arr.shape).astype(np.float32) * 0.05
    return exe


class DirectLoop:
    """The same kernels called in a plain Python loop over preallocated buffers (the baseline)."""

    def __init__(self, exe, layers, shape):
        args = {k: v.asnumpy() for k, v in exe.arg_dict.items()}
        self.octx = resource.op_context(mx.cpu())
        self.fwd, self.bwd = [], []
        x = args["data"]
        entries = []
        for i, (name, params, weighted) in enumerate(layers):
            op = get_op(name)
            p = op.parse_params(params)
            ins = [x] + ([args[f"l{i}_weight"], args[f"l{i}_bias"]] if weighted else [])
            _, outs, _ = op.infer_shape(p, [a.shape for a in ins])
            outs = [np.empty(s, np.float32) for s in outs]
            entries.append((op, p, ins, outs))
            x = outs[0]
        loss = get_op("SoftmaxOutput")
        lp = loss.parse_params({})
        label = args["softmax_label"]
        prob = np.empty(x.shape, np.float32)
        self.fwd = [(op.forward, p, ins, outs) for op, p, ins, outs in entries]
        self.fwd.append((loss.forward, lp, [x, label], [prob]))
        grad_in = np.empty(x.shape, np.float32)
        self.bwd.append((loss.backward, lp, [np.ones_like(prob)], [x, label], [prob],
                         [grad_in, None], ["write", "null"]))
        g = grad_in
        for i in range(len(entries) - 1, -1, -1):
            op, p, ins, outs = entries[i]
            ig = [np.empty(a.shape, np.float32) for a in ins]
            req = ["write"] * len(ins)
            if i == 0:
                ig[0], req[0] = None, "null"
            og = [g] + [None] * (len(outs) - 1)
            self.bwd.append((op.backward, p, og, ins, outs, ig, req))
            g = ig[0]

    def run(self):
        octx = self.octx
        for fn, p, ins, outs in self.fwd:
            fn(octx, p, ins, [], outs, True)
        for fn, p, og, ins, outs, ig, req in self.bwd:
            fn(octx, p, og, ins, outs, [], ig, req)


def interleaved(exe, loop, repeat, clock):
    """Best times of the executor and of the direct loop, measured alternately (a busy
    machine slows both alike). ``clock``: time.perf_counter (wall) or time.process_time (CPU
    seconds of this process, all threads: steadier when other programs share the machine)."""
    def step():
        exe.forward(is_train=True)
        exe.backward()
        mx.nd.waitall()
    step()
    loop.run()
    t_exe = t_loop = float("inf")
    for _ in range(repeat):
        t = clock()
        step()
        t_exe = min(t_exe, clock() - t)
        t = clock()
        loop.run()
        t_loop = min(t_loop, clock() - t)
    return t_exe, t_loop


_MXNET_SNIPPET = """
import json, sys, time, numpy as np, mxnet as mx
layers, shape, repeat = json.loads(sys.argv[1])
x = mx.sym.var("data")
for i, (op, params, _) in enumerate(layers):
    x = getattr(mx.sym, op)(x, name="l%d" % i, **{k: tuple(v) if isinstance(v, list) else v
                                                  for k, v in params.items()})
exe = mx.sym.SoftmaxOutput(x, name="softmax").simple_bind(mx.cpu(), data=tuple(shape))
rng = np.random.RandomState(0)
for name, arr in exe.arg_dict.items():
    arr[:] = rng.randint(0, 10, arr.shape) if name == "softmax_label" else \\
        rng.standard_normal(arr.shape) * 0.05
def step():
    exe.forward(is_train=True); exe.backward(); mx.nd.waitall()
step()
best = float("inf")
for _ in range(repeat):
    t = time.perf_counter(); step(); best = min(best, time.perf_counter() - t)
print(json.dumps(best))
"""


def time_mxnet(layers, shape, repeat):
    python = os.environ.get("HYBRIDNET_MXNET_PYTHON", "/tmp/mxref/bin/python")
    if not os.path.exists(python):
        return None
    try:
        out = subprocess.run([python, "-c", _MXNET_SNIPPET, json.dumps([layers, shape, repeat])],
                             capture_output=True, text=True, timeout=900)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def check_same_result(exe, loop):
    exe.forward(is_train=True)
    exe.backward()
    loop.run()
    got = exe.grad_dict["l0_weight"].asnumpy()
    want = loop.bwd[-1][5][1]
    return float(np.max(np.abs(got - want)))


def memory_report(exe):
    plan = exe._plan
    return plan.planned_bytes, plan.naive_bytes


def deep_mlp_bind_time(depth=200, width=64):
    x = mx.sym.var("data")
    for i in range(depth):
        x = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=width, name=f"fc{i}"),
                              act_type="relu", name=f"relu{i}")
    sym = mx.sym.SoftmaxOutput(x, name="softmax")
    t = time.perf_counter()
    sym.simple_bind(mx.cpu(), data=(32, width))
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-mxnet", action="store_true", help="skip the MXNet reference")
    args = parser.parse_args()
    repeat = 3 if args.quick else 10
    print(f"{'net':<10} {'executor ms':>12} {'direct loop ms':>15} {'overhead':>9} "
          f"{'CPU overhead':>13} {'MXNet ms':>9}")
    results = {}
    for name, (layers, shape) in NETS.items():
        exe = bind(layers, shape)
        loop = DirectLoop(exe, layers, shape)
        diff = check_same_result(exe, loop)
        t_exe, t_loop = interleaved(exe, loop, repeat, time.perf_counter)
        c_exe, c_loop = interleaved(exe, loop, repeat, time.process_time)
        t_mx = None if args.no_mxnet else time_mxnet(layers, shape, repeat)
        mx_txt = f"{t_mx * 1e3:9.1f}" if t_mx else f"{'n/a':>9}"
        print(f"{name:<10} {t_exe * 1e3:12.1f} {t_loop * 1e3:15.1f} {t_exe / t_loop - 1:9.1%} "
              f"{c_exe / c_loop - 1:13.1%} {mx_txt}   (max |grad diff| vs loop {diff:.1e})")
        results[name] = exe
    planned, naive = memory_report(results["AlexNet-R"])
    print(f"\nAlexNet-R training memory: planned {planned / 2**20:.1f} MiB vs naive "
          f"{naive / 2**20:.1f} MiB = {planned / naive:.1%} (target <= 60%)")
    print(f"simple_bind of a 200-layer MLP: {deep_mlp_bind_time():.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
