"""Forward + backward time of the dense and convolutional layers, side by side with numpy's
GEMMs and real MXNet 1.9.1 in the same run.

* FullyConnected on the FCN-R shapes (784 -> 2048 -> 4096 -> 1024 -> 10, batch 64 and 1024):
  hybridnet's op (forward + backward into preallocated buffers, as the Executor runs it, and
  the eager ``nd`` + autograd path) against the three BLAS products numpy needs for the same
  layer (``x @ W.T``, ``dy @ W``, ``dy.T @ x`` with ``out=``). "of GEMM" is numpy's time over
  ours: the fraction of numpy's GEMM throughput the layer reaches (target >= 80%).
* Convolution + Pooling on the AlexNet-R layers (batch 128; 5x5 convolutions with pad 2:
  3->32 on 32x32, 32->32 on 15x15, 32->64 on 7x7; each followed by 3x3 stride-2 max pooling),
  eager ``nd`` + autograd in both frameworks, all inputs needing gradients. Target: at most
  1.5x MXNet's time.
* Fused RNN, LSTM with 2 layers, hidden 256, sequence 32, batch 64 (input 256), eager ``nd`` +
  autograd in both frameworks: at most 1.2x MXNet's time.

MXNet runs in a subprocess with its own interpreter (HYBRIDNET_MXNET_PYTHON, default
/tmp/mxref/bin/python) and OMP_NUM_THREADS=2; without it the MXNet column is skipped. Every
number is the best of several repeats, and the two frameworks take turns (``--quick``: one
turn), so load from other processes on a shared machine hits both alike.

    python benchmark/ops.py [--quick] [section ...]     # sections: fc conv_pool lstm
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import hybridnet as mx  # noqa: E402
from hybridnet.ops import get_op  # noqa: E402
from hybridnet.ops.nn.rnn import rnn_param_size  # noqa: E402
from hybridnet.ops.registry import OpContext  # noqa: E402

FC_SIZES = (784, 2048, 4096, 1024, 10)
FC_BATCHES = (64, 1024)
# (name, op, data shape, params)
CONV_LAYERS = [
    ("conv1 3->32 @32x32", "Convolution", (128, 3, 32, 32),
     dict(kernel=(5, 5), pad=(2, 2), num_filter=32)),
    ("pool1 3x3/2 @32x32", "Pooling", (128, 32, 32, 32),
     dict(kernel=(3, 3), stride=(2, 2), pool_type="max")),
    ("conv2 32->32 @15x15", "Convolution", (128, 32, 15, 15),
     dict(kernel=(5, 5), pad=(2, 2), num_filter=32)),
    ("pool2 3x3/2 @15x15", "Pooling", (128, 32, 15, 15),
     dict(kernel=(3, 3), stride=(2, 2), pool_type="max")),
    ("conv3 32->64 @7x7", "Convolution", (128, 32, 7, 7),
     dict(kernel=(5, 5), pad=(2, 2), num_filter=64)),
    ("pool3 3x3/2 @7x7", "Pooling", (128, 64, 7, 7),
     dict(kernel=(3, 3), stride=(2, 2), pool_type="max")),
]


# (sequence, batch, hidden = input size, layers)
LSTM_SHAPE = (32, 64, 256, 2)


def best_of(fn, repeat: int, number: int = 1, sync=lambda: None,
            clock=time.perf_counter) -> float:
    """Best mean time of ``number`` calls over ``repeat`` rounds, after one warm-up call
    (``clock=time.process_time``: CPU time of all the process's threads)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        for _ in range(number):
            fn()
        sync()
        best = min(best, (clock() - t) / number)
    return best


def _layer_inputs(op: str, shape, params, rng):
    data = rng.standard_normal(shape).astype(np.float32)
    if op == "Pooling":
        return [data]
    if op == "FullyConnected":
        n_in = int(np.prod(shape[1:]))
        return [data, rng.standard_normal((params["num_hidden"], n_in)).astype(np.float32)
                * 0.05, np.zeros(params["num_hidden"], np.float32)]
    f = params["num_filter"]
    w = rng.standard_normal((f, shape[1]) + params["kernel"]).astype(np.float32) * 0.05
    return [data, w, np.zeros(f, np.float32)]


# ---- hybridnet ------------------------------------------------------------------------------
def hybridnet_eager(op: str, arrays, params, repeat: int, clock=time.perf_counter) -> float:
    """Forward + backward through ``mx.nd`` and autograd, every input needing a gradient."""
    inputs = [mx.nd.array(a) for a in arrays]
    for x in inputs:
        x.attach_grad()
    fn = getattr(mx.nd, op)

    def step():
        with mx.autograd.record():
            y = fn(*inputs, **params)
        y.backward()
    return best_of(step, repeat, sync=mx.nd.waitall, clock=clock)


def hybridnet_op(op_name: str, arrays, params, repeat: int) -> float:
    """Forward + backward of the registry entry into preallocated buffers (the Executor's
    way of running an operator: no allocation, no engine hand-off)."""
    op = get_op(op_name)
    p = op.parse_params(params)
    ctx = OpContext(np, mx.cpu(), None)
    _, outs, _ = op.infer_shape(p, [a.shape for a in arrays])
    _, types, _ = op.infer_type(p, [a.dtype for a in arrays])
    # hidden outputs too (RNN's workspace, max pooling's int32 argmax)
    ys = [np.empty(s, t) for s, t in zip(outs, types)]
    heads = [np.ones_like(ys[0])] + [None] * (len(ys) - 1)
    grads = [np.empty_like(a) for a in arrays]
    req = ["write"] * len(arrays)

    def step():
        op.forward(ctx, p, arrays, [], ys, True)
        op.backward(ctx, p, heads, arrays, ys, [], grads, req)
    return best_of(step, repeat)


def numpy_fc_gemms(arrays, repeat: int) -> float:
    """The three BLAS products of one dense layer's forward + backward, straight in numpy."""
    x, w, _ = arrays
    y = np.empty((x.shape[0], w.shape[0]), np.float32)
    dy = np.ones_like(y)
    dx, dw = np.empty_like(x), np.empty_like(w)

    def step():
        np.matmul(x, w.T, out=y)
        np.matmul(dy, w, out=dx)
        np.matmul(dy.T, x, out=dw)
    return best_of(step, repeat)


# ---- MXNet, in its own interpreter ------------------------------------------------------------
_MXNET_SCRIPT = """
import json, sys, time
import numpy as np
import mxnet as mx
spec = json.loads(sys.argv[1])
rng = np.random.RandomState(0)
def best_of(fn, repeat):
    fn(); mx.nd.waitall()
    wall, cpu = float('inf'), float('inf')
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time(); fn(); mx.nd.waitall()
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return wall, cpu
out = []
for op, shapes, params in spec["layers"]:
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    inputs = [mx.nd.array(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    for x in inputs:
        x.attach_grad()
    fn = getattr(mx.nd, op)
    def step():
        with mx.autograd.record():
            y = fn(*inputs, **params)
        y.backward()
    out.append(best_of(step, spec["repeat"]))
print(json.dumps(out))
"""


def mxnet_times(layers, repeat: int):
    """Forward + backward (wall, CPU) times of ``layers`` [(op, input shapes, params)] in MXNet
    1.9.1, or None (with the reason) when its interpreter is not available."""
    python = os.environ.get("HYBRIDNET_MXNET_PYTHON", "/tmp/mxref/bin/python")
    if not os.path.exists(python):
        return None, f"MXNet not measured: {python} not found (set HYBRIDNET_MXNET_PYTHON)"
    spec = json.dumps({"layers": layers, "repeat": repeat})
    env = dict(os.environ, OMP_NUM_THREADS="2", MXNET_STORAGE_FALLBACK_LOG_VERBOSE="0")
    try:
        run = subprocess.run([python, "-c", textwrap.dedent(_MXNET_SCRIPT), spec],
                             capture_output=True, text=True, timeout=1800, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"MXNet not measured: {err}"
    if run.returncode != 0:
        return None, f"MXNet not measured: {run.stderr.strip().splitlines()[-1:]}"
    return [tuple(t) for t in json.loads(run.stdout.strip().splitlines()[-1])], ""


def _ms(t) -> str:
    return f"{t * 1e3:9.2f}" if t is not None else f"{'-':>9}"


# ---- sections ---------------------------------------------------------------------------------
def _rounds(measure_ours, mx_layers, repeat: int, rounds: int):
    """Alternate our measurements and MXNet's ``rounds`` times and keep the best of each, so
    load from other processes on a shared machine hits both sides alike."""
    ours, theirs, note = None, None, ""
    for _ in range(rounds):
        got = measure_ours()
        ours = got if ours is None else [tuple(min(a, b) for a, b in zip(r, g))
                                         for r, g in zip(ours, got)]
        mxt, note = mxnet_times(mx_layers, repeat)
        if mxt is not None:
            theirs = mxt if theirs is None else [tuple(min(a, b) for a, b in zip(r, g))
                                                 for r, g in zip(theirs, mxt)]
    return ours, theirs, note


def fc_section(repeat: int, rounds: int) -> None:
    rng = np.random.RandomState(0)
    layers, mx_layers = [], []
    for batch in FC_BATCHES:
        for n_in, n_out in zip(FC_SIZES[:-1], FC_SIZES[1:]):
            params = {"num_hidden": n_out}
            arrays = _layer_inputs("FullyConnected", (batch, n_in), params, rng)
            layers.append((f"batch {batch:4d} {n_in:4d}->{n_out:<4d}", arrays, params,
                           6.0 * batch * n_in * n_out))
            mx_layers.append(("FullyConnected", [a.shape for a in arrays], params))

    def measure():
        return [(numpy_fc_gemms(arrays, repeat),
                 hybridnet_op("FullyConnected", arrays, params, repeat),
                 hybridnet_eager("FullyConnected", arrays, params, repeat))
                for _, arrays, params, _ in layers]
    ours, mxt, note = _rounds(measure, mx_layers, repeat, rounds)
    print("FullyConnected forward + backward (ms; 'of GEMM' = numpy GEMM time / ours)")
    print(f"{'layer':<24}{'numpy GEMMs':>12}{'op':>10}{'of GEMM':>9}{'GFLOP/s':>9}"
          f"{'eager':>10}{'of GEMM':>9}{'MXNet':>10}")
    tot = np.zeros(4)
    for i, ((name, _, _, flops), (gemm, op_t, eager)) in enumerate(zip(layers, ours)):
        m = mxt[i][0] if mxt else None
        print(f"{name:<24}{_ms(gemm):>12}{_ms(op_t):>10}{gemm / op_t:>8.0%} "
              f"{flops / op_t / 1e9:>8.1f}{_ms(eager):>10}{gemm / eager:>8.0%} {_ms(m):>9}")
        tot += (gemm, op_t, eager, m or 0)
    print(f"{'total':<24}{_ms(tot[0]):>12}{_ms(tot[1]):>10}{tot[0] / tot[1]:>8.0%} {'':>8}"
          f"{_ms(tot[2]):>10}{tot[0] / tot[2]:>8.0%} {_ms(tot[3] if mxt else None):>9}")
    if note:
        print(note)
    print()


def conv_pool_section(repeat: int, rounds: int) -> None:
    rng = np.random.RandomState(0)
    layers = [(name, op, _layer_inputs(op, shape, params, rng), params)
              for name, op, shape, params in CONV_LAYERS]
    mx_layers = [(op, [a.shape for a in arrays], params) for _, op, arrays, params in layers]

    def measure():
        return [(hybridnet_eager(op, arrays, params, repeat),
                 hybridnet_op(op, arrays, params, repeat)) for _, op, arrays, params in layers]
    ours, mxt, note = _rounds(measure, mx_layers, repeat, rounds)
    print("AlexNet-R convolution + pooling forward + backward, batch 128 (ms; GFLOP/s of the "
          "op's three products: forward, weight and data gradient)")
    print(f"{'layer':<22}{'hybridnet':>10}{'(op only)':>10}{'GFLOP/s':>9}{'MXNet':>10}"
          f"{'ratio':>8}")
    tot = np.zeros(3)
    for i, ((name, op, arrays, params), (eager, op_t)) in enumerate(zip(layers, ours)):
        m = mxt[i][0] if mxt else None
        ratio = f"{eager / m:>7.2f}x" if m else f"{'-':>8}"
        rate = ""
        if op == "Convolution":     # 2 FLOPs per MAC, N * C * (kh * kw) * F * output positions
            n, c, h, w = arrays[0].shape                   # (pad keeps the size here)
            kh, kw = params["kernel"]
            rate = f"{6 * n * c * kh * kw * params['num_filter'] * h * w / op_t / 1e9:.0f}"
        print(f"{name:<22}{_ms(eager):>10}{_ms(op_t):>10}{rate:>9}{_ms(m):>10}{ratio}")
        tot += (eager, op_t, m or 0)
    ratio = f"{tot[0] / tot[2]:>7.2f}x" if mxt else f"{'-':>8}"
    print(f"{'total':<22}{_ms(tot[0]):>10}{_ms(tot[1]):>10}{'':>9}"
          f"{_ms(tot[2] if mxt else None):>10}"
          f"{ratio}   (target: <= 1.50x)")
    if note:
        print(note)
    print()


def lstm_section(repeat: int, rounds: int) -> None:
    seq_len, batch, hidden, layers = LSTM_SHAPE
    params = {"state_size": hidden, "num_layers": layers, "mode": "lstm"}
    size = rnn_param_size("lstm", hidden, hidden, layers, False)
    shapes = [(seq_len, batch, hidden), (size,), (layers, batch, hidden), (layers, batch, hidden)]
    rng = np.random.RandomState(0)
    # MXNet's side draws every input from N(0, 1) too; the weights' scale does not change the work
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]

    def measure():
        return [(hybridnet_eager("RNN", arrays, params, repeat),
                 hybridnet_op("RNN", arrays, params, repeat),
                 hybridnet_eager("RNN", arrays, params, repeat, clock=time.process_time))]
    ours, mxt, note = _rounds(measure, [("RNN", shapes, params)], repeat, rounds)
    (eager, op_t, eager_cpu), = ours
    m, m_cpu = mxt[0] if mxt else (None, None)
    ratio = f"{eager / m:>7.2f}x" if m else f"{'-':>8}"
    cpu_ratio = f"{eager_cpu / m_cpu:>7.2f}x" if m_cpu else f"{'-':>8}"
    print(f"Fused RNN: LSTM forward + backward, {layers} layers, hidden {hidden}, sequence "
          f"{seq_len}, batch {batch}, input {hidden} (ms; all inputs need gradients; CPU = "
          f"CPU time of all threads, steadier on a busy machine)")
    print(f"{'':<22}{'hybridnet':>10}{'(op only)':>10}{'MXNet':>10}{'ratio':>8}")
    print(f"{'RNN lstm, wall':<22}{_ms(eager):>10}{_ms(op_t):>10}{_ms(m):>10}{ratio}   "
          f"(target: <= 1.20x)")
    print(f"{'RNN lstm, CPU':<22}{_ms(eager_cpu):>10}{'':>10}{_ms(m_cpu):>10}{cpu_ratio}")
    if note:
        print(note)
    print()


# Sections run in order; each prints its own table (``_rounds`` alternates its measurements
# with MXNet's).
SECTIONS = [fc_section, conv_pool_section, lstm_section]


def main() -> None:
    quick = "--quick" in sys.argv
    repeat, rounds = (3, 1) if quick else (5, 3)
    print(f"hybridnet {mx.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    wanted = [a for a in sys.argv[1:] if not a.startswith("--")]
    for section in SECTIONS:
        if not wanted or section.__name__[:-len("_section")] in wanted:
            section(repeat, rounds)


if __name__ == "__main__":
    main()
