"""Train the classic MXNet MLP on handwritten digits with the Module API (``mod.fit``).

Without arguments it trains on the real handwritten digits scikit-learn ships (1,797 8x8
grey images, split 80/20 by example/digits.py; nothing is downloaded) and reaches about 98%
test accuracy in a few seconds. With ``--data-dir`` it reads MNIST's four idx files
(``train-images-idx3-ubyte`` ..., gzipped or not) from that directory instead (28x28 images).

    python example/train_mnist.py                      # digits, 20 epochs
    python example/train_mnist.py --data-dir ~/mnist   # MNIST
    python example/train_mnist.py --quick              # CI: fewer epochs
    python example/train_mnist.py --plot mlp           # also render the network (mlp.pdf)
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits import load_digits  # noqa: E402  example/digits.py

import hybridnet as mx  # noqa: E402


def get_data(data_dir, batch_size):
    """Train and test iterators (images shaped (n, 1, side, side), labels 0..9)."""
    if data_dir:
        mnist = mx.test_utils.get_mnist(data_dir)
        train_x, train_y = mnist["train_data"], mnist["train_label"]
        test_x, test_y = mnist["test_data"], mnist["test_label"]
    else:
        train_x, train_y, test_x, test_y = load_digits()
        train_x, test_x = train_x.reshape(-1, 1, 8, 8), test_x.reshape(-1, 1, 8, 8)
    train_iter = mx.io.NDArrayIter(train_x, train_y, batch_size, shuffle=True)
    test_iter = mx.io.NDArrayIter(test_x, test_y, batch_size)
    return train_iter, test_iter


def get_mlp():
    """Flatten -> FC 64 -> ReLU -> FC 32 -> ReLU -> FC 10 -> SoftmaxOutput."""
    data = mx.sym.var("data")
    data = mx.sym.flatten(data=data)
    fc1 = mx.sym.FullyConnected(data=data, num_hidden=64)
    act1 = mx.sym.Activation(data=fc1, act_type="relu")
    fc2 = mx.sym.FullyConnected(data=act1, num_hidden=32)
    act2 = mx.sym.Activation(data=fc2, act_type="relu")
    fc3 = mx.sym.FullyConnected(data=act2, num_hidden=10)
    return mx.sym.SoftmaxOutput(data=fc3, name="softmax")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="directory with MNIST's idx files (default: digits)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--quick", action="store_true", help="8 epochs (for CI)")
    parser.add_argument("--plot", metavar="FILE", help="render the network to FILE.pdf")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mx.random.seed(42)
    np.random.seed(42)                  # NDArrayIter shuffles with numpy's generator

    train_iter, test_iter = get_data(args.data_dir, args.batch_size)
    mlp = get_mlp()
    graph = mx.viz.plot_network(mlp, title="mlp", shape={"data": train_iter.provide_data[0].shape})
    if args.plot:
        try:
            graph.render(args.plot, cleanup=True)
        except Exception as err:   # graphviz raises its own ExecutableNotFound without `dot`
            print(f"cannot render the network ({err}); install Graphviz's `dot`")

    mlp_model = mx.mod.Module(symbol=mlp, context=mx.cpu())
    mlp_model.fit(train_iter, eval_data=test_iter, optimizer="sgd",
                  optimizer_params={"learning_rate": args.lr, "momentum": 0.9},
                  initializer=mx.init.Xavier(), eval_metric="acc",
                  batch_end_callback=mx.callback.Speedometer(args.batch_size, 100),
                  num_epoch=8 if args.quick else args.epochs)

    # score() counts the padding of the last batch, as MXNet does; predict() drops it
    probs = mlp_model.predict(test_iter).asnumpy()
    test_iter.reset()
    labels = np.concatenate([b.label[0].asnumpy()[:b.label[0].shape[0] - b.pad]
                             for b in test_iter])
    print(f"test accuracy: {(probs.argmax(axis=1) == labels).mean():.4f} "
          f"({len(labels)} test images)")


if __name__ == "__main__":
    main()
