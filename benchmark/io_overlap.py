"""Does data preparation overlap training? Epoch time of "iterator + training" against each alone.

The iterator's batches cost as much GIL-free work (a numba ``nogil`` augmentation kernel,
calibrated) as one training step of an MLP (FullyConnected 784-4096-10, autograd, SGD) on
the same batch. Three epochs are timed:

* ``data``  -- only iterating (preparation cost),
* ``train`` -- only training, on batches prepared beforehand,
* ``both``  -- training on the iterator wrapped in ``PrefetchingIter``.

Perfect overlap gives ``both = max(data, train)``; none gives ``data + train``. Reported:
``both / max`` (target <= 1.2) and ``overlap = (data + train - both) / min(data, train)``
(1 = perfect, 0 = none; target >= 0.8).

BLAS gets one thread (``--blas-threads``), so on a 2-core machine training keeps one core busy
and data preparation has the other: the question is whether the two run at the same time.

Variants, each timed against its own "train only" epoch on prepared batches:

* ``manual`` -- a hand-written autograd loop over ``PrefetchingIter(it)``;
* ``fit`` -- ``Module.fit`` of the same MLP (symbolic) over the plain iterator: fit pushes
  batch k to the engine and fetches batch k+1 before waiting, so a GIL-free iterator
  overlaps with no wrapper (MXNet 1.9.1 measures -0.03..0.09 here);
* ``fit+prefetch`` -- ``Module.fit`` over ``PrefetchingIter(it)``.

    python benchmark/io_overlap.py [--batches 30] [--batch-size 256] [--hidden 4096]
                                   [--blas-threads=1]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":    # BLAS reads its thread count when numpy loads it
    _threads = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--blas-threads=")), "1")
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import warnings

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hybridnet as mx  # noqa: E402
from hybridnet import autograd  # noqa: E402


@numba.njit(nogil=True, cache=True)
def _augment(raw, reps, out):
    """Brightness/contrast jitter and normalisation, ``reps`` times (pure GIL-free compute)."""
    n, d = raw.shape
    for _ in range(reps):
        for i in range(n):
            gain = 1.0 + 0.001 * (i % 7)
            for j in range(d):
                v = raw[i, j] * gain + 0.5
                out[i, j] = (v - 127.5) / 58.0


class AugmentingIter(mx.io.DataIter):
    """Synthetic MNIST-like batches whose preparation runs a calibrated GIL-free kernel."""

    def __init__(self, batches: int, batch_size: int, reps: int):
        super().__init__(batch_size)
        rng = np.random.RandomState(0)
        self.raw = rng.randint(0, 256, (batches, batch_size, 784)).astype(np.uint8)
        self.labels = rng.randint(0, 10, (batches, batch_size)).astype(np.float32)
        self.reps = reps
        self.k = 0

    @property
    def provide_data(self):
        return [mx.io.DataDesc("data", (self.batch_size, 784))]

    @property
    def provide_label(self):
        return [mx.io.DataDesc("softmax_label", (self.batch_size,))]

    def reset(self):
        self.k = 0

    def next(self):
        if self.k >= len(self.raw):
            raise StopIteration
        out = np.empty((self.batch_size, 784), np.float32)
        _augment(self.raw[self.k], self.reps, out)
        label = self.labels[self.k]
        self.k += 1
        return mx.io.DataBatch([mx.nd.NDArray(out, mx.cpu())], [mx.nd.array(label)], pad=0)


class MLP:
    """784-hidden-10 MLP trained with autograd and sgd_update."""

    def __init__(self, hidden: int):
        rng = np.random.RandomState(1)
        self.hidden = hidden
        self.params = [mx.nd.array(rng.randn(hidden, 784) * 0.01), mx.nd.zeros((hidden,)),
                       mx.nd.array(rng.randn(10, hidden) * 0.01), mx.nd.zeros((10,))]
        for p in self.params:
            p.attach_grad()

    def step(self, batch) -> None:
        w1, b1, w2, b2 = self.params
        x, y = batch.data[0], batch.label[0]
        with autograd.record():
            h = mx.nd.relu(mx.nd.FullyConnected(x, w1, b1, num_hidden=self.hidden))
            out = mx.nd.FullyConnected(h, w2, b2, num_hidden=10)
            loss = mx.nd.softmax_cross_entropy(out, y)
        loss.backward()
        for p in self.params:
            mx.nd.sgd_update(p, p.grad, lr=0.01, out=p)
        loss.wait_to_read()       # one step at a time, as a real loop that logs the loss


class ListIter(mx.io.DataIter):
    """Batches prepared beforehand (the "train only" input of Module.fit)."""

    def __init__(self, batches: list):
        super().__init__(batches[0].data[0].shape[0])
        self.batches, self.k = batches, 0
        self.provide_data = [mx.io.DataDesc("data", batches[0].data[0].shape)]
        self.provide_label = [mx.io.DataDesc("softmax_label", batches[0].label[0].shape)]

    def reset(self):
        self.k = 0

    def next(self):
        if self.k >= len(self.batches):
            raise StopIteration
        self.k += 1
        return self.batches[self.k - 1]


class FitNet:
    """The MLP as a Symbol in a bound, initialised Module; ``epoch(it)`` runs one fit epoch."""

    def __init__(self, hidden: int, batch_size: int):
        data = mx.sym.var("data")
        h = mx.sym.Activation(mx.sym.FullyConnected(data, num_hidden=hidden, name="fc1"),
                              act_type="relu")
        net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(h, num_hidden=10, name="fc2"),
                                   name="softmax")
        self.mod = mx.mod.Module(net, logger=_QUIET)
        self.mod.bind([("data", (batch_size, 784))], [("softmax_label", (batch_size,))])
        self.mod.init_params(mx.init.Normal(0.01))
        self.mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.01})

    def epoch(self, it) -> float:
        start = time.perf_counter()
        with warnings.catch_warnings():     # "already initialized": the module is reused
            warnings.simplefilter("ignore")
            self.mod.fit(it, num_epoch=1)
        mx.nd.waitall()
        return time.perf_counter() - start


class _Quiet:
    """A logger for fit that says nothing (its per-epoch lines would clutter the report)."""

    def info(self, *args, **kwargs):
        pass

    warning = info


_QUIET = _Quiet()


def run_manual(it, nets) -> float:
    """Seconds for one epoch of a hand-written training loop over ``PrefetchingIter(it)``."""
    start = time.perf_counter()
    for batch in mx.io.PrefetchingIter(it):
        nets["manual"].step(batch)
    mx.nd.waitall()
    return time.perf_counter() - start


VARIANTS = {
    # name: (network key, epoch over the real iterator, epoch over prepared batches)
    "manual": ("manual", run_manual, lambda prepared, nets: time_train(prepared, nets["manual"])),
    "fit": ("fit", lambda it, nets: nets["fit"].epoch(it),
            lambda prepared, nets: nets["fit"].epoch(ListIter(prepared))),
    "fit+prefetch": ("fit", lambda it, nets: nets["fit"].epoch(mx.io.PrefetchingIter(it)),
                     lambda prepared, nets: nets["fit"].epoch(ListIter(prepared))),
}


def time_data(it) -> float:
    start = time.perf_counter()
    for batch in it:
        batch.data[0].wait_to_read()
    return time.perf_counter() - start


def time_train(batches, net) -> float:
    start = time.perf_counter()
    for batch in batches:
        net.step(batch)
    mx.nd.waitall()
    return time.perf_counter() - start


def calibrate(batch_size: int, step_seconds: float) -> int:
    """Kernel repetitions whose cost matches one training step."""
    raw = np.zeros((batch_size, 784), np.uint8)
    out = np.empty((batch_size, 784), np.float32)
    _augment(raw, 1, out)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        _augment(raw, 4, out)
        best = min(best, (time.perf_counter() - start) / 4)
    return max(1, round(step_seconds / best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=4096,
                        help="hidden units: large enough that a step is BLAS work, not Python")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many epochs")
    parser.add_argument("--blas-threads", default="1",
                        help="BLAS threads for training (give it as --blas-threads=N)")
    opts = parser.parse_args()
    net = MLP(opts.hidden)
    warm = AugmentingIter(4, opts.batch_size, 1)
    batches = list(warm)
    time_train(batches, net)                                   # warm up
    step = min(time_train(batches, net) for _ in range(3)) / len(batches)
    reps = calibrate(opts.batch_size, step)
    it = AugmentingIter(opts.batches, opts.batch_size, reps)
    prepared = list(it)
    it.reset()
    nets = {"manual": net, "fit": FitNet(opts.hidden, opts.batch_size)}
    nets["fit"].epoch(ListIter(batches))                      # warm up
    data = float("inf")
    train = {name: float("inf") for name in VARIANTS}
    both = {name: float("inf") for name in VARIANTS}
    busy = {name: 0.0 for name in VARIANTS}       # CPU seconds per wall second, best epoch
    for _ in range(opts.repeat):          # rounds alternate the variants; best of each counts
        data = min(data, time_data(it))
        it.reset()
        for name, (_, on_iter, on_prepared) in VARIANTS.items():
            train[name] = min(train[name], on_prepared(prepared, nets))
            cpu0 = time.process_time()
            seconds = on_iter(it, nets)
            if seconds < both[name]:
                both[name], busy[name] = seconds, (time.process_time() - cpu0) / seconds
            it.reset()
    print(f"{opts.batches} batches of {opts.batch_size}; one training step = {step * 1e3:.1f} ms, "
          f"augmentation kernel x{reps}")
    print(f"data only  {data:6.2f} s")
    for name in VARIANTS:
        seconds, alone = both[name], train[name]
        ratio = seconds / max(data, alone)
        overlap = (data + alone - seconds) / min(data, alone)
        print(f"{name:13s} train only {alone:6.2f} s   both {seconds:6.2f} s   both/max = "
              f"{ratio:.2f} (target <= 1.2)   overlap = {overlap:.2f} (target >= 0.8)   "
              f"cores busy {busy[name]:.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (another process's "
          f"load takes the core overlap needs)")


if __name__ == "__main__":
    main()
