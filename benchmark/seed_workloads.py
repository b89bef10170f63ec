"""Training-step time of the seed benchmark's workloads in hybridnet, MXNet 1.9.1 and PyTorch.

One training step = forward + backward + SGD-momentum update (lr 0.01, momentum 0.9,
rescale_grad 1/batch), float32, random data, timed after warm-up until the update is done.
Workloads (issue 8):

* ``fcn64`` / ``fcn1024``: FCN-R 784-2048-4096-1024-10 (ReLU, softmax), batch 64 / 1024
* ``alexnet``: AlexNet-R for Cifar-10 (conv 5x5 pad 2 3->32, max pool 3x3/2, conv 32->32, pool,
  conv 32->64, pool, FC 10, ReLU after each conv), batch 128
* ``lstm``: embedding 10k->256, 2-layer LSTM 256 (fused RNN op), sequence 32, FC + softmax
  over 10k words at every step, batch 64

Frameworks, each in its own process (a fresh interpreter per workload and round; the
frameworks take turns, so load from other programs hits all alike):

* ``hn-module``: hybridnet through ``mx.mod.Module`` (forward_backward + update); while the
  Module class is not there, an Executor + Updater loop doing exactly what Module does
* ``hn-eager``: hybridnet NDArray + autograd, the same updater
* ``mxnet``: MXNet 1.9.1 Module, OMP_NUM_THREADS=2 (HYBRIDNET_MXNET_PYTHON, default
  /tmp/mxref/bin/python)
* ``torch``: PyTorch (torch.set_num_threads(2)), nn modules + optim.SGD

Each process reports the median step time of its timed steps and its peak RSS; the table
shows the median over rounds, hybridnet's ratios to MXNet and to the fastest peer, and the
fraction of the GEMM limit: the workload's matrix-product FLOPs (forward + both backward
products of every layer, 6 * batch * fan_in * fan_out) divided by numpy's float32 GEMM rate on
the FCN-R batch-1024 products, measured in this run.

    python benchmark/seed_workloads.py [--workloads fcn64,alexnet] [--rounds 3] [--quick]

This file imports only the standard library and numpy at the top, because MXNet's
interpreter runs it as a worker (``--worker FRAMEWORK WORKLOAD STEPS``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MXNET_PYTHON = os.environ.get("HYBRIDNET_MXNET_PYTHON", "/tmp/mxref/bin/python")

LR, MOMENTUM = 0.01, 0.9
FCN_SIZES = (784, 2048, 4096, 1024, 10)
VOCAB, EMBED, HIDDEN, LAYERS, SEQ = 10000, 256, 256, 2, 32

# name: (batch, timed steps, timed steps with --quick)
WORKLOADS = {"fcn64": (64, 20, 6), "fcn1024": (1024, 6, 3), "alexnet": (128, 15, 5),
             "lstm": (64, 6, 3)}
FRAMEWORKS = ("hn-module", "hn-eager", "mxnet", "torch")
WARMUP = 5


def gemm_flops(workload: str) -> float:
    """Matrix-product FLOPs of one training step (3 products per layer, 2 FLOPs per MAC)."""
    batch = WORKLOADS[workload][0]
    if workload.startswith("fcn"):
        return 6.0 * batch * sum(a * b for a, b in zip(FCN_SIZES[:-1], FCN_SIZES[1:]))
    if workload == "alexnet":
        # (C_in, C_out, output side) of the three 5x5 convolutions, then the 576->10 FC
        convs = [(3, 32, 32), (32, 32, 15), (32, 64, 7)]
        return 6.0 * batch * (sum(ci * co * 25 * s * s for ci, co, s in convs) + 576 * 10)
    rnn = LAYERS * SEQ * 4 * HIDDEN * (EMBED + HIDDEN)
    return 6.0 * batch * (rnn + SEQ * HIDDEN * VOCAB)


def numpy_gemm_rate(repeat: int = 5) -> float:
    """FLOP/s numpy reaches on the three products of each FCN-R batch-1024 layer."""
    rng = np.random.RandomState(0)
    layers = []
    for n_in, n_out in zip(FCN_SIZES[:-1], FCN_SIZES[1:]):
        x = rng.standard_normal((1024, n_in)).astype(np.float32)
        w = rng.standard_normal((n_out, n_in)).astype(np.float32)
        dy = rng.standard_normal((1024, n_out)).astype(np.float32)
        layers.append((x, w, dy, np.empty((1024, n_out), np.float32), np.empty_like(x),
                       np.empty_like(w)))

    def run():
        for x, w, dy, y, dx, dw in layers:
            np.matmul(x, w.T, out=y)
            np.matmul(dy, w, out=dx)
            np.matmul(dy.T, x, out=dw)
    run()
    best = min(_timed(run) for _ in range(repeat))
    return gemm_flops("fcn1024") / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---- workers: build a training step, return (step function, sync function) ------------------
def _random_batch(workload: str, rng):
    batch = WORKLOADS[workload][0]
    if workload.startswith("fcn"):
        data = rng.standard_normal((batch, 784)).astype(np.float32)
        label = rng.randint(0, 10, batch).astype(np.float32)
    elif workload == "alexnet":
        data = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
        label = rng.randint(0, 10, batch).astype(np.float32)
    else:       # time-major (T, N) word ids, one label per word
        data = rng.randint(0, VOCAB, (SEQ, batch)).astype(np.float32)
        label = rng.randint(0, VOCAB, (SEQ, batch)).astype(np.float32)
    return data, label


def _mx_symbol(mx, workload: str):
    """The workload as a symbol (the same code builds it for MXNet and hybridnet)."""
    batch = WORKLOADS[workload][0]
    data = mx.sym.var("data")
    if workload.startswith("fcn"):
        x = data
        for i, n in enumerate(FCN_SIZES[1:]):
            x = mx.sym.FullyConnected(x, num_hidden=n, name=f"fc{i}")
            if i < len(FCN_SIZES) - 2:
                x = mx.sym.Activation(x, act_type="relu", name=f"relu{i}")
        return mx.sym.SoftmaxOutput(x, name="softmax")
    if workload == "alexnet":
        x = data
        for i, n in enumerate((32, 32, 64)):
            x = mx.sym.Convolution(x, kernel=(5, 5), pad=(2, 2), num_filter=n, name=f"conv{i}")
            x = mx.sym.Activation(x, act_type="relu", name=f"relu{i}")
            x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name=f"pool{i}")
        x = mx.sym.FullyConnected(mx.sym.Flatten(x), num_hidden=10, name="fc")
        return mx.sym.SoftmaxOutput(x, name="softmax")
    x = mx.sym.Embedding(data, input_dim=VOCAB, output_dim=EMBED, name="embed")
    zeros = mx.sym.zeros(shape=(LAYERS, batch, HIDDEN))
    params = mx.sym.var("lstm_parameters", init=mx.init.Uniform(0.05))
    x = mx.sym.RNN(x, params, zeros, zeros, mode="lstm",
                   state_size=HIDDEN, num_layers=LAYERS, name="lstm")
    x = mx.sym.FullyConnected(mx.sym.reshape(x, shape=(-1, HIDDEN)), num_hidden=VOCAB,
                              name="pred")
    label = mx.sym.reshape(mx.sym.var("softmax_label"), shape=(-1,))
    return mx.sym.SoftmaxOutput(x, label, name="softmax")


def _module_step(mx, workload: str):
    """MXNet's (or hybridnet's) Module: bind, init, SGD; a step = forward_backward + update."""
    batch = WORKLOADS[workload][0]
    data, label = _random_batch(workload, np.random.RandomState(0))
    sym = _mx_symbol(mx, workload)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=["softmax_label"],
                        context=mx.cpu())
    mod.bind(data_shapes=[("data", data.shape)], label_shapes=[("softmax_label", label.shape)])
    mod.init_params(mx.init.Uniform(0.05))
    mod.init_optimizer(optimizer="sgd", optimizer_params={
        "learning_rate": LR, "momentum": MOMENTUM, "rescale_grad": 1.0 / batch})
    batch_ = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)])

    def step():
        mod.forward_backward(batch_)
        mod.update()
    return step, mx.nd.waitall


def _executor_step(mx, workload: str):
    """hybridnet before Module exists: what Module.forward_backward + update do on one device
    (simple_bind with gradients for the parameters only, copy the batch in, forward, backward,
    the updater on every (index, grad, weight))."""
    batch = WORKLOADS[workload][0]
    data, label = _random_batch(workload, np.random.RandomState(0))
    sym = _mx_symbol(mx, workload)
    inputs = ("data", "softmax_label")
    params = [n for n in sym.list_arguments() if n not in inputs]
    exe = sym.simple_bind(mx.cpu(), grad_req={n: "write" if n in params else "null"
                                              for n in sym.list_arguments()},
                          data=data.shape, softmax_label=label.shape)
    init = mx.init.Uniform(0.05)
    for name in params:
        init(mx.init.InitDesc(name), exe.arg_dict[name])
    updater = mx.optimizer.get_updater(mx.optimizer.SGD(
        learning_rate=LR, momentum=MOMENTUM, rescale_grad=1.0 / batch))
    pairs = [(i, exe.grad_dict[n], exe.arg_dict[n]) for i, n in enumerate(params)]
    data_nd, label_nd = mx.nd.array(data), mx.nd.array(label)

    def step():
        exe.forward(is_train=True, data=data_nd, softmax_label=label_nd)
        exe.backward()
        for i, g, w in pairs:
            updater(i, g, w)
    return step, mx.nd.waitall


def _eager_step(mx, workload: str):
    """hybridnet NDArray + autograd: the same layers as ``mx.nd`` calls, same updater."""
    batch = WORKLOADS[workload][0]
    rng = np.random.RandomState(0)
    data, label = (mx.nd.array(a) for a in _random_batch(workload, rng))
    sym = _mx_symbol(mx, workload)
    shapes, _, _ = sym.infer_shape(data=data.shape, softmax_label=label.shape)
    params = {n: mx.nd.array(rng.uniform(-0.05, 0.05, s).astype(np.float32))
              for n, s in zip(sym.list_arguments(), shapes) if n not in ("data", "softmax_label")}
    for p in params.values():
        p.attach_grad()
    nd = mx.nd
    if workload.startswith("fcn"):
        def net():
            x = data
            for i in range(len(FCN_SIZES) - 1):
                x = nd.FullyConnected(x, params[f"fc{i}_weight"], params[f"fc{i}_bias"],
                                      num_hidden=FCN_SIZES[i + 1])
                if i < len(FCN_SIZES) - 2:
                    x = nd.Activation(x, act_type="relu")
            return nd.SoftmaxOutput(x, label)
    elif workload == "alexnet":
        def net():
            x = data
            for i, n in enumerate((32, 32, 64)):
                x = nd.Convolution(x, params[f"conv{i}_weight"], params[f"conv{i}_bias"],
                                   kernel=(5, 5), pad=(2, 2), num_filter=n)
                x = nd.Pooling(nd.Activation(x, act_type="relu"), kernel=(3, 3),
                               stride=(2, 2), pool_type="max")
            x = nd.FullyConnected(nd.Flatten(x), params["fc_weight"], params["fc_bias"],
                                  num_hidden=10)
            return nd.SoftmaxOutput(x, label)
    else:
        state = nd.zeros((LAYERS, batch, HIDDEN))

        def net():
            x = nd.Embedding(data, params["embed_weight"], input_dim=VOCAB, output_dim=EMBED)
            x = nd.RNN(x, params["lstm_parameters"], state, state, mode="lstm",
                       state_size=HIDDEN, num_layers=LAYERS)
            x = nd.FullyConnected(x.reshape((-1, HIDDEN)), params["pred_weight"],
                                  params["pred_bias"], num_hidden=VOCAB)
            return nd.SoftmaxOutput(x, label.reshape((-1,)))
    updater = mx.optimizer.get_updater(mx.optimizer.SGD(
        learning_rate=LR, momentum=MOMENTUM, rescale_grad=1.0 / batch))
    pairs = [(i, p.grad, p) for i, p in enumerate(params.values())]

    def step():
        with mx.autograd.record():
            out = net()
        out.backward()
        for i, g, w in pairs:
            updater(i, g, w)
    return step, mx.nd.waitall


def _torch_step(workload: str):
    import torch
    from torch import nn
    torch.set_num_threads(2)
    torch.manual_seed(0)
    batch = WORKLOADS[workload][0]
    data, label = _random_batch(workload, np.random.RandomState(0))
    label = torch.from_numpy(label.astype(np.int64))
    if workload.startswith("fcn"):
        layers = []
        for i, (a, b) in enumerate(zip(FCN_SIZES[:-1], FCN_SIZES[1:])):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(FCN_SIZES) - 2 else [])
        model = nn.Sequential(*layers)
        data = torch.from_numpy(data)
    elif workload == "alexnet":
        layers = []
        for c_in, c_out in ((3, 32), (32, 32), (32, 64)):
            layers += [nn.Conv2d(c_in, c_out, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2)]
        model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(576, 10))
        data = torch.from_numpy(data)
    else:
        class LSTMNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(VOCAB, EMBED)
                self.lstm = nn.LSTM(EMBED, HIDDEN, LAYERS)
                self.pred = nn.Linear(HIDDEN, VOCAB)

            def forward(self, x):
                return self.pred(self.lstm(self.embed(x))[0].reshape(-1, HIDDEN))
        model = LSTMNet()
        data = torch.from_numpy(data.astype(np.int64))
        label = label.reshape(-1)
    # sum of the per-sample losses scaled by 1/batch, like MXNet's rescale_grad
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        opt.zero_grad(set_to_none=False)
        (loss_fn(model(data), label) / batch).backward()
        opt.step()
    return step, lambda: None


def worker(framework: str, workload: str, steps: int) -> None:
    """Build ``workload`` in ``framework``, warm up, time ``steps`` steps, print JSON."""
    if framework == "torch":
        step, sync = _torch_step(workload)
    elif framework == "mxnet":
        import mxnet as mx
        step, sync = _module_step(mx, workload)
    else:
        sys.path.insert(0, ROOT)
        import hybridnet as mx
        if framework == "hn-eager":
            step, sync = _eager_step(mx, workload)
        elif hasattr(mx, "mod"):
            step, sync = _module_step(mx, workload)
        else:
            step, sync = _executor_step(mx, workload)
    for _ in range(WARMUP):     # synced like the timed steps: no run-ahead inflating RSS
        step()
        sync()
    times, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"time": statistics.median(times), "cpu": statistics.median(cpu),
                      "rss": rss}))


# ---- the driver ---------------------------------------------------------------------------
def _skip_reason(framework: str, workload: str) -> str:
    if framework == "mxnet" and not os.path.exists(MXNET_PYTHON):
        return f"{MXNET_PYTHON} not found (set HYBRIDNET_MXNET_PYTHON)"
    if workload == "lstm" and framework.startswith("hn"):
        sys.path.insert(0, ROOT)
        from hybridnet.ops import registry
        try:
            registry.get_op("RNN")
        except Exception:       # noqa: BLE001  (any failure means: no fused RNN op)
            return "hybridnet has no fused RNN operator yet"
    return ""


def run_worker(framework: str, workload: str, steps: int):
    """Run one worker process; (result dict or None, error text)."""
    python = MXNET_PYTHON if framework == "mxnet" else sys.executable
    env = dict(os.environ, OMP_NUM_THREADS="2", MXNET_STORAGE_FALLBACK_LOG_VERBOSE="0")
    try:
        run = subprocess.run([python, os.path.abspath(__file__), "--worker", framework,
                              workload, str(steps)], capture_output=True, text=True,
                             timeout=1800, env=env, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, str(err)
    if run.returncode != 0:
        return None, (run.stderr.strip().splitlines() or ["exit %d" % run.returncode])[-1]
    return json.loads(run.stdout.strip().splitlines()[-1]), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help=f"comma-separated subset of {', '.join(FRAMEWORKS)}")
    parser.add_argument("--rounds", type=int, default=3, help="processes per framework")
    parser.add_argument("--quick", action="store_true", help="1 round, fewer timed steps")
    parser.add_argument("--worker", nargs=3, metavar=("FRAMEWORK", "WORKLOAD", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    workloads = args.workloads.split(",")
    frameworks = args.frameworks.split(",")
    for name in workloads + frameworks:
        if name not in WORKLOADS and name not in FRAMEWORKS:
            parser.error(f"unknown workload or framework {name!r}")
    rounds = 1 if args.quick else args.rounds
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, {rounds} round(s)", flush=True)
    times = {(f, w): [] for f in frameworks for w in workloads}
    cpus = {(f, w): [] for f in frameworks for w in workloads}
    rss = {(f, w): 0 for f in frameworks for w in workloads}
    notes, rates = {}, []
    for r in range(rounds):
        rates.append(numpy_gemm_rate())
        for w in workloads:
            steps = WORKLOADS[w][2 if args.quick else 1]
            # rotate the order each round so no framework always runs first
            order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
            for f in order:
                reason = _skip_reason(f, w)
                if reason:
                    notes[(f, w)] = reason
                    continue
                got, err = run_worker(f, w, steps)
                if got is None:
                    notes[(f, w)] = err
                    continue
                times[(f, w)].append(got["time"])
                cpus[(f, w)].append(got["cpu"])
                rss[(f, w)] = max(rss[(f, w)], got["rss"])
            print(f"  round {r + 1}/{rounds} {w}: " + ", ".join(
                f"{f} {times[(f, w)][-1] * 1e3:.1f} ms" for f in order if times[(f, w)]
                and len(times[(f, w)]) == r + 1), flush=True)
    rate = statistics.median(rates)
    print_table(workloads, frameworks, {k: statistics.median(v) for k, v in times.items() if v},
                {k: statistics.median(v) for k, v in cpus.items() if v}, rss, rate, notes)


def print_table(workloads, frameworks, med, cpu, rss, rate, notes) -> None:
    print(f"\nmedian wall ms per training step (numpy GEMM rate {rate / 1e9:.0f} GFLOP/s, "
          f"load average now {os.getloadavg()[0]:.1f})")
    head = f"{'workload':<9}" + "".join(f"{f:>11}" for f in frameworks)
    head += f"{'mod/MXNet':>10}{'eager/MX':>9}{'/fastest':>9}{'limit ms':>9}{'of limit':>9}"
    print(head)
    for w in workloads:
        row = f"{w:<9}" + "".join(f"{med[(f, w)] * 1e3:>11.1f}" if (f, w) in med
                                  else f"{'-':>11}" for f in frameworks)
        ours, eager, ref = med.get(("hn-module", w)), med.get(("hn-eager", w)), med.get(
            ("mxnet", w))
        peers = [med[(f, w)] for f in ("mxnet", "torch") if (f, w) in med]
        row += f"{ours / ref:>9.2f}x" if ours and ref else f"{'-':>10}"
        row += f"{eager / ref:>8.2f}x" if eager and ref else f"{'-':>9}"
        row += f"{ours / min(peers):>8.2f}x" if ours and peers else f"{'-':>9}"
        limit = gemm_flops(w) / rate
        row += f"{limit * 1e3:>9.1f}" + (f"{limit / ours:>9.0%}" if ours else f"{'-':>9}")
        print(row)
    print("\nCPU ms per step (all threads of the process; steadier than wall time on a busy "
          "machine, but counts BLAS/OpenMP threads spinning)")
    for w in workloads:
        row = f"{w:<9}" + "".join(f"{cpu[(f, w)] * 1e3:>11.1f}" if (f, w) in cpu
                                  else f"{'-':>11}" for f in frameworks)
        ours, eager, ref = cpu.get(("hn-module", w)), cpu.get(("hn-eager", w)), cpu.get(
            ("mxnet", w))
        row += f"{ours / ref:>9.2f}x" if ours and ref else f"{'-':>10}"
        row += f"{eager / ref:>8.2f}x" if eager and ref else f"{'-':>9}"
        print(row)
    print("\npeak RSS MiB")
    for w in workloads:
        print(f"{w:<9}" + "".join(f"{rss[(f, w)] / 2 ** 20:>11.0f}" if rss[(f, w)]
                                  else f"{'-':>11}" for f in frameworks))
    for (f, w), why in sorted(notes.items()):
        print(f"note: {f} {w} not measured: {why}")
    print("targets: hn-module <= 1.0x MXNet, hn-eager <= 1.3x, fcn1024 >= 80% of the GEMM limit, "
          "peak RSS <= MXNet's")


if __name__ == "__main__":
    main()
