"""Data parallelism: one Module over two devices, ``context=[mx.cpu(0), mx.cpu(1)]``.

Each batch is split along its batch axis into one slice per device (sized by
``work_load_list``); every device runs forward and backward on its slice with its own copy of
the parameters, the KVStore sums the gradients and the optimizer updates every copy. The
result is the same training as on one device: this script trains both ways from the same
initial parameters on the same batches and compares the parameters and the test accuracy.

    python example/multi_device.py [--epochs 10] [--work-load 1 3]
"""
from __future__ import annotations

import argparse

import numpy as np
from digits import load_digits  # example/digits.py: scikit-learn's digits, split 80/20

import hybridnet as mx
from hybridnet.module.executor_group import split_input_slice


def mlp():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=64, name="fc1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def train(context, work_load, data, args, init):
    train_x, train_y, test_x, test_y = data
    # unshuffled iterators: both runs see the same batches in the same order
    train_iter = mx.io.NDArrayIter(train_x, train_y, batch_size=args.batch_size)
    test_iter = mx.io.NDArrayIter(test_x, test_y, batch_size=args.batch_size)
    mod = mx.mod.Module(mlp(), context=context, work_load_list=work_load)
    mod.fit(train_iter, num_epoch=args.epochs, arg_params=init, kvstore="local",
            optimizer="sgd", optimizer_params={"learning_rate": args.lr, "momentum": 0.9})
    return mod, dict(mod.score(test_iter, "acc"))["accuracy"]


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--work-load", type=float, nargs=2, default=[1, 1],
                        help="relative share of each batch for cpu(0) and cpu(1)")
    args = parser.parse_args(argv)
    data = load_digits()
    rng = np.random.RandomState(0)
    init = {"fc1_weight": rng.normal(0, 0.125, (64, 64)), "fc1_bias": np.zeros(64),
            "fc2_weight": rng.normal(0, 0.125, (10, 64)), "fc2_bias": np.zeros(10)}
    init = {k: mx.nd.array(v) for k, v in init.items()}

    devices = [mx.cpu(0), mx.cpu(1)]
    slices = split_input_slice(args.batch_size, args.work_load)
    print("batch of", args.batch_size, "split over", devices, "as",
          [(s.start, s.stop) for s in slices])
    two, two_acc = train(devices, args.work_load, data, args, init)
    one, one_acc = train(mx.cpu(), None, data, args, init)

    per_device = two.get_outputs(merge_multi_context=False)[0]
    print("last batch's outputs per device:", [tuple(o.shape) for o in per_device])
    two_params, one_params = two.get_params()[0], one.get_params()[0]
    diff = max(float(np.abs(two_params[k].asnumpy() - one_params[k].asnumpy()).max())
               for k in one_params)
    print(f"largest parameter difference, two devices vs one: {diff:.2e}")
    print("two devices equal one device:", diff < 1e-4 and abs(two_acc - one_acc) < 1e-9)
    print(f"one device test accuracy: {one_acc:.4f}")
    print(f"two devices test accuracy: {two_acc:.4f}")
    return two_acc


if __name__ == "__main__":
    main()
