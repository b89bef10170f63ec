"""LeNet on the handwritten digits with the Module API.

The 8x8 digit images go in as 1x8x8 (NCHW) images through two Convolution + Pooling stages
and two FullyConnected layers; ``mod.fit`` trains it with momentum SGD, ``mod.score`` reports
the test accuracy and ``mx.viz.print_summary`` the per-layer parameter counts.

    python example/lenet.py [--epochs 10] [--batch-size 32] [--seed 0]
"""
from __future__ import annotations

import argparse
import logging

import numpy as np
from digits import load_digits  # example/digits.py: scikit-learn's digits, split 80/20

import hybridnet as mx


def lenet():
    """conv 5x5 (16) -> tanh -> max-pool 2 -> conv 3x3 (32) -> tanh -> max-pool 2 -> FC 64 ->
    tanh -> FC 10 -> softmax (padding keeps the 8x8 maps at 8x8 before each pool)."""
    data = mx.sym.var("data")
    net = mx.sym.Convolution(data, kernel=(5, 5), pad=(2, 2), num_filter=16, name="conv1")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh1")
    net = mx.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool1")
    net = mx.sym.Convolution(net, kernel=(3, 3), pad=(1, 1), num_filter=32, name="conv2")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh2")
    net = mx.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool2")
    net = mx.sym.flatten(net)
    net = mx.sym.FullyConnected(net, num_hidden=64, name="fc1")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh3")
    net = mx.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the initializer and the shuffles: the same run every time")
    args = parser.parse_args(argv)
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    train_x, train_y, test_x, test_y = load_digits()
    images = (1, 8, 8)                           # one grey channel, 8x8 pixels
    train_iter = mx.io.NDArrayIter(train_x.reshape(-1, *images), train_y,
                                   batch_size=args.batch_size, shuffle=True)
    test_iter = mx.io.NDArrayIter(test_x.reshape(-1, *images), test_y,
                                  batch_size=args.batch_size)

    net = lenet()
    mx.viz.print_summary(net, shape={"data": (args.batch_size, *images)})
    mod = mx.mod.Module(net, context=mx.cpu())
    mod.fit(train_iter, eval_data=test_iter, num_epoch=args.epochs,
            initializer=mx.init.Xavier(magnitude=2.0),
            optimizer="sgd", optimizer_params={"learning_rate": args.lr, "momentum": 0.9})
    accuracy = dict(mod.score(test_iter, "acc"))["accuracy"]
    print(f"lenet test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
