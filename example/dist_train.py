"""Data-parallel training across processes: ``Module.fit`` with a distributed KVStore.

Every worker trains the MLP of train_mnist.py on its own part of the handwritten digits
(``num_parts`` = number of workers, ``part_index`` = this worker's rank); the servers sum the
workers' gradients and run the optimizer, and every worker pulls the same new weights. Start it
with the launcher (one scheduler, 2 servers, 2 workers on this machine)::

    python -m hybridnet.launch -n 2 -s 2 python example/dist_train.py --kv-store dist_sync
    python -m hybridnet.launch -n 2 -s 1 python example/dist_train.py --kv-store dist_async
    python example/dist_train.py --kv-store local        # one process, for comparison

With ``dist_sync`` each step is the step one process would take on the workers' batches put
together (the learning rate applies to their mean gradient: ``rescale_grad`` = 1 / (batch x
workers)). ``--quick`` trains fewer epochs (CI).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits import load_digits  # noqa: E402  example/digits.py
from train_mnist import get_mlp  # noqa: E402

import hybridnet as mx  # noqa: E402


def part(array: np.ndarray, num_parts: int, part_index: int) -> np.ndarray:
    """Part ``part_index`` of ``num_parts`` near-equal contiguous parts of ``array``."""
    bounds = [len(array) * i // num_parts for i in range(num_parts + 1)]
    return array[bounds[part_index]:bounds[part_index + 1]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kv-store", default="dist_sync",
                        help="local, device, dist_sync, dist_async, dist_device_sync")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32, help="per worker")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="4 epochs (for CI)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mx.random.seed(42)
    np.random.seed(42)                  # the same shuffles on every worker

    kv = mx.kv.create(args.kv_store)
    num_parts, part_index = kv.num_workers, kv.rank
    train_x, train_y, test_x, test_y = load_digits()
    train_x, train_y = (part(a, num_parts, part_index) for a in (train_x, train_y))
    logging.info("worker %d of %d: %d training images", part_index, num_parts, len(train_x))
    shape = (-1, 1, 8, 8)
    train_iter = mx.io.NDArrayIter(train_x.reshape(shape), train_y, args.batch_size,
                                   shuffle=True)
    test_iter = mx.io.NDArrayIter(test_x.reshape(shape), test_y, args.batch_size)

    model = mx.mod.Module(symbol=get_mlp(), context=mx.cpu())
    model.fit(train_iter, eval_data=test_iter, kvstore=kv, optimizer="sgd",
              optimizer_params={"learning_rate": args.lr, "momentum": 0.9},
              initializer=mx.init.Xavier(), eval_metric="acc",
              num_epoch=4 if args.quick else args.epochs)
    accuracy = model.score(test_iter, "acc")[0][1]
    print(f"worker {part_index}: test accuracy: {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
