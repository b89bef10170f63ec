"""One epoch of ``Module.fit``: hybridnet vs MXNet 1.9.1, and Module's overhead over a bare loop.

The workload of issue 5: 60,000 synthetic MNIST-shaped samples (1x28x28, 10 classes), the
FCN-R network (784-2048-4096-1024-10, ReLU, SoftmaxOutput), batch 100, SGD (lr 0.01,
momentum 0.9), metric 'acc', one context -- one epoch of ``mod.fit(train_iter, ...)``
timed end to end (bind, init, 600 batches, metric, callbacks).

Runs, each in a fresh process, alternating in rounds so machine load hits all alike:

* ``hn``: hybridnet ``Module.fit``;
* ``hn-bare``: hybridnet without Module: one executor, the same batches copied in, forward,
  backward, ``Updater`` calls per parameter, the same accuracy metric -- what Module must not
  be slower than (its overhead = hn / hn-bare - 1);
* ``mxnet``: MXNet 1.9.1 ``Module.fit`` (OMP_NUM_THREADS=2; HYBRIDNET_MXNET_PYTHON, default
  /tmp/mxref/bin/python).

Prints per run the wall time and the process CPU time of the epoch; then the medians and the
ratios hn / mxnet (target <= 1.0) and hn / hn-bare.

    python benchmark/fit.py [--rounds 2] [--samples 60000] [--quick]

This file imports only the standard library and numpy at the top: MXNet's interpreter runs it
as a worker (``--worker RUN SAMPLES``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MXNET_PYTHON = os.environ.get("HYBRIDNET_MXNET_PYTHON", "/tmp/mxref/bin/python")
BATCH = 100
SIZES = (2048, 4096, 1024, 10)
RUNS = ("hn", "hn-bare", "mxnet")


def data(samples: int):
    rng = np.random.RandomState(0)
    x = rng.rand(samples, 1, 28, 28).astype(np.float32)
    y = rng.randint(0, 10, size=samples).astype(np.float32)
    return x, y


def fcn(mx):
    net = mx.sym.flatten(mx.sym.var("data"))
    for i, n in enumerate(SIZES):
        net = mx.sym.FullyConnected(net, num_hidden=n, name=f"fc{i}")
        if i + 1 < len(SIZES):
            net = mx.sym.Activation(net, act_type="relu")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def fit_epoch(mx, x, y) -> None:
    it = mx.io.NDArrayIter(x, y, batch_size=BATCH)
    mod = mx.mod.Module(fcn(mx), context=mx.cpu())
    mod.fit(it, num_epoch=1, optimizer="sgd", eval_metric="acc",
            optimizer_params={"learning_rate": 0.01, "momentum": 0.9},
            initializer=mx.init.Xavier())
    mod.get_params()[0]["fc0_weight"].asnumpy()          # wait for the last update


def bare_epoch(mx, x, y) -> None:
    """What Module.fit does, by hand: executor, copies, updater, metric."""
    it = mx.io.NDArrayIter(x, y, batch_size=BATCH)
    net = fcn(mx)
    exe = net.simple_bind(mx.cpu(), data=(BATCH,) + x.shape[1:], softmax_label=(BATCH,),
                          grad_req={n: "write" for n in net.list_arguments()
                                    if n not in ("data", "softmax_label")})
    names = [n for n in net.list_arguments() if n not in ("data", "softmax_label")]
    init = mx.init.Xavier()
    for n in names:
        init(mx.init.InitDesc(n), exe.arg_dict[n])
    opt = mx.optimizer.create("sgd", learning_rate=0.01, momentum=0.9, rescale_grad=1 / BATCH,
                              param_idx2name=dict(enumerate(names)))
    updater = mx.optimizer.get_updater(opt)
    metric = mx.metric.create("acc")
    weights = [exe.arg_dict[n] for n in names]
    grads = [exe.grad_dict[n] for n in names]
    for batch in it:
        batch.data[0].copyto(exe.arg_dict["data"])
        batch.label[0].copyto(exe.arg_dict["softmax_label"])
        exe.forward(is_train=True)
        exe.backward()
        updater(list(range(len(names))), grads, weights)
        metric.update(batch.label, exe.outputs)
    weights[0].asnumpy()


def worker(run: str, samples: int) -> None:
    x, y = data(samples)
    if run == "mxnet":
        import mxnet as mx
    else:
        sys.path.insert(0, ROOT)
        import hybridnet as mx
    import logging
    logging.basicConfig(level=logging.WARNING)
    wall, cpu = time.perf_counter(), time.process_time()
    (bare_epoch if run == "hn-bare" else fit_epoch)(mx, x, y)
    print("RESULT " + json.dumps({"wall": time.perf_counter() - wall,
                                  "cpu": time.process_time() - cpu}))


def run_worker(run: str, samples: int):
    python = MXNET_PYTHON if run == "mxnet" else sys.executable
    env = dict(os.environ)
    if run == "mxnet":
        env["OMP_NUM_THREADS"] = "2"
    proc = subprocess.run([python, os.path.abspath(__file__), "--worker", run, str(samples)],
                          capture_output=True, text=True, env=env, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  {run} failed:\n{proc.stderr[-2000:]}")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--quick", action="store_true", help="6,000 samples, one round")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    samples, rounds = (6000, 1) if args.quick else (args.samples, args.rounds)
    runs = [r for r in args.runs.split(",") if r]
    if "mxnet" in runs and not os.path.exists(MXNET_PYTHON):
        print(f"MXNet not found at {MXNET_PYTHON}: skipping it")
        runs.remove("mxnet")
    print(f"Module.fit, 1 epoch: {samples} samples, FCN-R 784-2048-4096-1024-10, batch {BATCH}; "
          f"{rounds} round(s), runs alternate; load average {os.getloadavg()[0]:.1f}")
    results: dict = {r: [] for r in runs}
    for rnd in range(rounds):
        order = runs if rnd % 2 == 0 else runs[::-1]
        for run in order:
            res = run_worker(run, samples)
            if res is not None:
                results[run].append(res)
                print(f"  round {rnd}: {run:8s} wall {res['wall']:7.2f} s   cpu "
                      f"{res['cpu']:7.2f} s")
    med = {r: {k: statistics.median(x[k] for x in v) for k in ("wall", "cpu")}
           for r, v in results.items() if v}
    print(f"\n{'run':10s}{'wall (s)':>10s}{'cpu (s)':>10s}{'samples/s':>12s}")
    for r, m in med.items():
        print(f"{r:10s}{m['wall']:10.2f}{m['cpu']:10.2f}{samples / m['wall']:12.0f}")
    if "hn" in med and "mxnet" in med:
        print(f"hybridnet / MXNet wall time: {med['hn']['wall'] / med['mxnet']['wall']:.2f}x "
              f"(target <= 1.0x)")
    if "hn" in med and "hn-bare" in med:
        print(f"Module overhead over the bare loop: wall "
              f"{med['hn']['wall'] / med['hn-bare']['wall'] - 1:+.1%}, cpu "
              f"{med['hn']['cpu'] / med['hn-bare']['cpu'] - 1:+.1%}")


if __name__ == "__main__":
    main()
