"""Python operators with mx.operator.CustomOp, used eagerly and inside a bound Symbol.

Two custom operators, written with NumPy:

* ``relu6``: min(max(x, 0), 6) with its gradient; its ``cap`` keyword argument arrives in the
  prop as a string, exactly as MXNet passes it.
* ``softmax_ce``: a loss head (``need_top_grad=False``) taking ``data`` and ``label``; its
  backward is softmax minus one-hot, so ``Executor.backward()`` needs no head gradient.

A two-layer network built with them trains on a toy problem (points inside vs outside a
circle) through ``simple_bind``; the custom ops run on the engine like built-in ones.

    python example/custom_op.py
"""
from __future__ import annotations

import numpy as np

import hybridnet as mx


class ReLU6(mx.operator.CustomOp):
    def __init__(self, cap: float):
        self.cap = cap

    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0].asnumpy()
        self.assign(out_data[0], req[0], mx.nd.array(np.clip(x, 0, self.cap)))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        x = in_data[0].asnumpy()
        inside = ((x > 0) & (x < self.cap)).astype(np.float32)
        self.assign(in_grad[0], req[0], out_grad[0] * mx.nd.array(inside))


@mx.operator.register("relu6")
class ReLU6Prop(mx.operator.CustomOpProp):
    def __init__(self, cap="6"):
        super().__init__(need_top_grad=True)
        self.cap = float(cap)            # keyword arguments arrive as strings

    def create_operator(self, ctx, in_shapes, in_dtypes):
        return ReLU6(self.cap)


class SoftmaxCE(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0].asnumpy()
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.assign(out_data[0], req[0], mx.nd.array(e / e.sum(axis=1, keepdims=True)))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        label = in_data[1].asnumpy().astype(int)
        grad = out_data[0].asnumpy()
        grad[np.arange(len(label)), label] -= 1
        self.assign(in_grad[0], req[0], mx.nd.array(grad / len(label)))
        self.assign(in_grad[1], req[1], mx.nd.zeros(label.shape))


@mx.operator.register("softmax_ce")
class SoftmaxCEProp(mx.operator.CustomOpProp):
    def __init__(self):
        super().__init__(need_top_grad=False)     # a loss head

    def list_arguments(self):
        return ["data", "label"]

    def infer_shape(self, in_shape):
        return [in_shape[0], [in_shape[0][0]]], [in_shape[0]], []

    def create_operator(self, ctx, in_shapes, in_dtypes):
        return SoftmaxCE()


def toy_data(n: int, seed: int):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    y = ((x ** 2).sum(axis=1) < 0.5).astype(np.float32)
    return x, y


def main() -> float:
    # eagerly, like any operator (and differentiable under autograd)
    x = mx.nd.array([[-1.0, 3.0, 9.0]])
    print("relu6 eager:", mx.nd.Custom(x, op_type="relu6", cap=6).asnumpy())

    data, label = mx.sym.var("data"), mx.sym.var("label")
    hidden = mx.sym.Custom(mx.sym.FullyConnected(data, num_hidden=32, name="fc1"),
                           op_type="relu6", cap=4, name="act1")
    net = mx.sym.Custom(mx.sym.FullyConnected(hidden, num_hidden=2, name="fc2"), label,
                        op_type="softmax_ce", name="loss")
    print("arguments:", net.list_arguments())
    batch = 64
    params = ["fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"]
    exe = net.simple_bind(mx.cpu(), data=(batch, 2), grad_req={p: "write" for p in params})
    rng = np.random.RandomState(0)
    for p in params:
        exe.arg_dict[p][:] = rng.normal(0, 0.5, exe.arg_dict[p].shape)
    train_x, train_y = toy_data(2048, seed=1)
    for epoch in range(15):
        for i in range(0, len(train_x), batch):
            exe.forward(is_train=True, data=train_x[i:i + batch], label=train_y[i:i + batch])
            exe.backward()                             # no head gradient: a loss head
            for p in params:
                exe.arg_dict[p][:] = exe.arg_dict[p] - 0.5 * exe.grad_dict[p]
    test_x, test_y = toy_data(batch, seed=2)
    prob = exe.forward(data=test_x, label=test_y)[0].asnumpy()
    accuracy = float((prob.argmax(axis=1) == test_y).mean())
    print(f"toy test accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
