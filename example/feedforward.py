"""The older ``mx.model.FeedForward`` API (MXNet 0.x scripts) on the handwritten digits.

``FeedForward`` takes numpy arrays directly (``fit(X, y, eval_data=(X_val, y_val))``), the
optimizer's arguments as keywords, and predicts numpy arrays. The model is saved as MXNet's
checkpoint files, loaded back with ``FeedForward.load`` and must predict the same.

    python example/feedforward.py [--epochs 20]
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import warnings

import numpy as np
from digits import load_digits  # example/digits.py: scikit-learn's digits, split 80/20

import hybridnet as mx


def mlp():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=64, name="fc1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("ignore", DeprecationWarning)   # FeedForward is deprecated API

    train_x, train_y, test_x, test_y = load_digits()
    model = mx.model.FeedForward(mlp(), ctx=mx.cpu(), num_epoch=args.epochs,
                                 numpy_batch_size=args.batch_size,
                                 initializer=mx.init.Xavier(),
                                 learning_rate=args.lr, momentum=0.9, wd=1e-4)
    model.fit(X=train_x, y=train_y, eval_data=(test_x, test_y),
              batch_end_callback=mx.callback.Speedometer(args.batch_size, 20))
    probs = model.predict(test_x)
    accuracy = float(np.mean(probs.argmax(axis=1) == test_y))

    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "digits_mlp")
        model.save(prefix)                       # digits_mlp-symbol.json, -00NN.params
        print("saved:", sorted(os.listdir(tmp)))
        loaded = mx.model.FeedForward.load(prefix, args.epochs)
        print("loaded model predicts the same:",
              bool(np.allclose(loaded.predict(test_x), probs, atol=1e-6)))
    print(f"feedforward test accuracy: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
