"""One MLP, two styles: a Symbol bound into an Executor, and the same network eagerly.

1. Declare the network with ``mx.sym``, ``simple_bind`` it, and train with the Executor:
   ``forward(is_train=True)`` / ``backward()`` (SoftmaxOutput is a loss head, so no head
   gradient is needed) and an SGD step on the executor's own arrays.
2. Run the trained weights eagerly with ``mx.nd`` -- the same registry kernels -- and check that
   both give the same predictions.
3. Record the eager computation with autograd, turn it into a Symbol (``autograd.get_symbol``),
   save it in MXNet's JSON format, load it back and evaluate it.

The data is scikit-learn's handwritten digits (8x8 images), so nothing is downloaded.

    python example/imperative_and_symbolic.py [--epochs 20]
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from digits import load_digits  # example/digits.py: scikit-learn's digits, split 80/20

import hybridnet as mx


def build_network():
    data = mx.sym.var("data")
    fc1 = mx.sym.FullyConnected(data, num_hidden=64, name="fc1")
    act = mx.sym.Activation(fc1, act_type="relu", name="relu1")
    fc2 = mx.sym.FullyConnected(act, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(fc2, name="softmax")


def train_symbolic(net, train_x, train_y, epochs: int, batch_size: int, lr: float):
    params = [n for n in net.list_arguments() if n not in ("data", "softmax_label")]
    exe = net.simple_bind(mx.cpu(), data=(batch_size, 64),
                          grad_req={n: "write" for n in params})
    rng = np.random.RandomState(1)
    for name in params:
        shape = exe.arg_dict[name].shape
        exe.arg_dict[name][:] = rng.normal(0, 1 / np.sqrt(shape[-1]), shape) \
            if name.endswith("weight") else 0
    n = len(train_x) // batch_size * batch_size
    for epoch in range(epochs):
        order = np.random.RandomState(epoch).permutation(len(train_x))[:n]
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            exe.forward(is_train=True, data=train_x[idx], softmax_label=train_y[idx])
            exe.backward()
            for name in params:               # SGD on the bound arrays (engine-ordered)
                weight, grad = exe.arg_dict[name], exe.grad_dict[name]
                weight[:] = weight - (lr / batch_size) * grad
    return {name: exe.arg_dict[name] for name in params}


def eager_logits(weights, x):
    h = mx.nd.FullyConnected(x, weights["fc1_weight"], weights["fc1_bias"], num_hidden=64)
    h = mx.nd.Activation(h, act_type="relu")
    return mx.nd.FullyConnected(h, weights["fc2_weight"], weights["fc2_bias"], num_hidden=10)


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args(argv)
    train_x, train_y, test_x, test_y = load_digits()

    # 1. symbolic training
    net = build_network()
    print("arguments:", net.list_arguments())
    weights = train_symbolic(net, train_x, train_y, args.epochs, args.batch_size, args.lr)

    # 2. the same weights, evaluated by the symbol and eagerly
    test_exe = net.simple_bind(mx.cpu(), data=test_x.shape, grad_req="null")
    test_exe.copy_params_from(weights)
    symbolic = test_exe.forward(data=test_x)[0].asnumpy().argmax(axis=1)
    eager = eager_logits(weights, mx.nd.array(test_x)).asnumpy().argmax(axis=1)
    accuracy = float((symbolic == test_y).mean())
    print(f"test accuracy {accuracy:.4f}; symbolic and eager predictions agree: "
          f"{bool((symbolic == eager).all())}")

    # 3. eager code -> autograd tape -> Symbol -> MXNet JSON -> Symbol again
    x = mx.nd.array(test_x[:5])
    x.attach_grad()
    with mx.autograd.record():
        logits = eager_logits(weights, x)
    traced = mx.autograd.get_symbol(logits)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "traced-symbol.json")
        traced.save(path)
        loaded = mx.sym.load(path)
    print("traced graph arguments:", loaded.list_arguments())
    inputs = dict(zip(loaded.list_arguments(), [x, weights["fc1_weight"], weights["fc1_bias"],
                                                weights["fc2_weight"], weights["fc2_bias"]]))
    replay = loaded.eval(mx.cpu(), **inputs)[0].asnumpy()
    print("replayed logits match:", bool(np.allclose(replay, logits.asnumpy(), atol=1e-5)))
    return accuracy


if __name__ == "__main__":
    main()
