"""Train a small MLP on real handwritten digits with eager NDArrays and autograd.

The data is the UCI handwritten digits set (8x8 images, 1,797 samples) that scikit-learn
ships, so nothing is downloaded. The loop is plain Python: forward under autograd.record(),
backward, and an SGD step written with NDArray arithmetic.

    python example/mlp_autograd.py [--epochs 30] [--batch-size 32] [--lr 0.1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from digits import load_digits  # example/digits.py: scikit-learn's digits, split 80/20

from hybridnet import autograd, nd


def init_params(sizes, seed: int = 0):
    """Weights ~ N(0, 1/fan_in), zero biases; each marked for gradients."""
    rng = np.random.RandomState(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = nd.array(rng.normal(0, 1 / np.sqrt(fan_in), (fan_in, fan_out)))
        b = nd.zeros((fan_out,))
        params += [w, b]
    for p in params:
        p.attach_grad()
    return params


def forward(params, x):
    """Logits of the MLP: affine layers with ReLU between them."""
    h = x
    for i in range(0, len(params), 2):
        h = nd.dot(h, params[i]) + params[i + 1]
        if i + 2 < len(params):
            h = nd.relu(h)
    return h


def accuracy(params, x, y) -> float:
    pred = forward(params, nd.array(x)).argmax(axis=1).asnumpy()
    return float((pred == y).mean())


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)

    train_x, train_y, test_x, test_y = load_digits()
    params = init_params([64, 64, 10])
    n = len(train_x)
    for epoch in range(args.epochs):
        start, total = time.time(), 0.0
        order = np.random.RandomState(epoch).permutation(n)
        for i in range(0, n, args.batch_size):
            idx = order[i:i + args.batch_size]
            x, y = nd.array(train_x[idx]), nd.array(train_y[idx])
            with autograd.record():
                logits = forward(params, x)
                loss = -nd.pick(nd.log_softmax(logits), y).mean()
            loss.backward()
            for p in params:                     # plain SGD, in place
                p[:] = p - args.lr * p.grad
            total += loss.asscalar() * len(idx)
        print(f"epoch {epoch + 1:2d}  loss {total / n:.4f}  "
              f"test accuracy {accuracy(params, test_x, test_y):.4f}  "
              f"({time.time() - start:.2f}s)")
    acc = accuracy(params, test_x, test_y)
    print(f"final test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
