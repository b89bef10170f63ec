"""CustomOp: Python operators through ``mx.nd.Custom`` and ``mx.sym.Custom`` -- string keyword
arguments, shape/type inference, executor and autograd gradients, loss heads, auxiliary states,
errors raised inside, and waiting on arrays from inside a custom op."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError

SEEN_KWARGS = []


class _Scale(mx.operator.CustomOp):
    def __init__(self, factor):
        self.factor = factor

    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0] * in_data[0] * self.factor)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], 2 * self.factor * in_data[0] * out_grad[0])


@mx.operator.register("test_scaled_square")
class _ScaleProp(mx.operator.CustomOpProp):
    def __init__(self, factor="1"):
        super().__init__(need_top_grad=True)
        SEEN_KWARGS.append(factor)
        self.factor = float(factor)

    def create_operator(self, ctx, in_shapes, in_dtypes):
        return _Scale(self.factor)


class _SoftmaxLoss(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0].asnumpy()              # waiting inside a custom op must not deadlock
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.assign(out_data[0], req[0], mx.nd.array(e / e.sum(axis=1, keepdims=True)))
        aux[0][:] = aux[0] + 1                # count the forward calls

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        label = in_data[1].asnumpy().astype(int)
        grad = out_data[0].asnumpy()
        grad[np.arange(len(label)), label] -= 1
        self.assign(in_grad[0], req[0], mx.nd.array(grad))
        self.assign(in_grad[1], req[1], mx.nd.zeros(label.shape))


@mx.operator.register("test_softmax_loss")
class _SoftmaxLossProp(mx.operator.CustomOpProp):
    def __init__(self):
        super().__init__(need_top_grad=False)

    def list_arguments(self):
        return ["data", "label"]

    def list_auxiliary_states(self):
        return ["calls"]

    def infer_shape(self, in_shape):
        return [in_shape[0], [in_shape[0][0]]], [in_shape[0]], [[1]]

    def create_operator(self, ctx, in_shapes, in_dtypes):
        return _SoftmaxLoss()


class _Broken(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        raise ValueError("the custom op refuses this input")


@mx.operator.register("test_broken")
class _BrokenProp(mx.operator.CustomOpProp):
    def create_operator(self, ctx, in_shapes, in_dtypes):
        return _Broken()


class _SplitSum(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0] + in_data[1])
        self.assign(out_data[1], req[1], (in_data[0] - in_data[1]).astype("float64"))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        g0, g1 = out_grad[0], out_grad[1].astype("float32")
        self.assign(in_grad[0], req[0], g0 + g1)
        self.assign(in_grad[1], req[1], g0 - g1)


@mx.operator.register("test_split_sum")
class _SplitSumProp(mx.operator.CustomOpProp):
    def list_arguments(self):
        return ["a", "b"]

    def list_outputs(self):
        return ["sum", "diff"]

    def infer_type(self, in_type):
        return in_type, [in_type[0], np.float64], []

    def create_operator(self, ctx, in_shapes, in_dtypes):
        return _SplitSum()


def test_eager_custom_forward_backward_with_string_kwargs():
    SEEN_KWARGS.clear()
    x = mx.nd.array([1., 2., 3.])
    np.testing.assert_array_equal(mx.nd.Custom(x, op_type="test_scaled_square",
                                               factor=2).asnumpy(), [2, 8, 18])
    assert SEEN_KWARGS == ["2"]                 # kwargs reach the prop as strings (MXNet)
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Custom(x, op_type="test_scaled_square", factor=3)
    y.backward(mx.nd.array([1., 1., 2.]))
    np.testing.assert_array_equal(x.grad.asnumpy(), [6, 12, 36])


def test_symbolic_custom_op_in_an_executor():
    data = mx.sym.var("data")
    sym = mx.sym.Custom(data, op_type="test_scaled_square", factor="0.5", name="sq")
    stored = json.loads(sym.tojson())["nodes"][1]
    assert stored["op"] == "Custom" and stored["attrs"] == {"factor": "0.5",
                                                            "op_type": "test_scaled_square"}
    loaded = mx.sym.load_json(sym.tojson())
    exe = loaded.simple_bind(mx.cpu(), data=(2, 2), grad_req="add")
    value = np.array([[1., 2.], [3., 4.]])
    for _ in range(2):
        out = exe.forward(is_train=True, data=value)[0]
        exe.backward(mx.nd.ones((2, 2)))
    np.testing.assert_allclose(out.asnumpy(), 0.5 * value ** 2)
    np.testing.assert_allclose(exe.grad_dict["data"].asnumpy(), 2 * value)   # added twice


def test_custom_loss_head_with_label_and_aux_state():
    data = mx.sym.var("data")
    loss = mx.sym.Custom(data, op_type="test_softmax_loss", name="loss")
    assert loss.list_arguments() == ["data", "loss_label"]
    assert loss.list_auxiliary_states() == ["loss_calls"]
    assert loss.infer_shape(data=(3, 4)) == ([(3, 4), (3,)], [(3, 4)], [(1,)])
    exe = loss.simple_bind(mx.cpu(), data=(3, 4))
    x = np.random.RandomState(0).standard_normal((3, 4))
    exe.arg_dict["loss_label"][:] = [0, 3, 1]
    prob = exe.forward(is_train=True, data=x)[0].asnumpy()
    exe.backward()                                   # need_top_grad=False: a loss head
    e = np.exp(x - x.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prob, want, rtol=1e-5)
    want[np.arange(3), [0, 3, 1]] -= 1
    np.testing.assert_allclose(exe.grad_dict["data"].asnumpy(), want, rtol=1e-5, atol=1e-6)
    exe.forward(is_train=False)
    assert exe.aux_dict["loss_calls"].asnumpy().tolist() == [2]


def test_multiple_outputs_and_custom_infer_type():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    sym = mx.sym.Custom(a, b, op_type="test_split_sum", name="ss")
    assert sym.list_outputs() == ["ss_sum", "ss_diff"]
    assert sym.infer_type(a="float32")[1] == [np.float32, np.float64]
    exe = sym.simple_bind(mx.cpu(), a=(2,), b=(2,))
    outs = exe.forward(is_train=True, a=np.array([5., 1.]), b=np.array([2., 2.]))
    assert outs[1].dtype == np.float64
    np.testing.assert_array_equal(outs[0].asnumpy(), [7, 3])
    np.testing.assert_array_equal(outs[1].asnumpy(), [3, -1])
    exe.backward([mx.nd.array([1., 1.]), mx.nd.array([1., 2.], dtype="float64")])
    np.testing.assert_array_equal(exe.grad_dict["a"].asnumpy(), [2, 3])
    np.testing.assert_array_equal(exe.grad_dict["b"].asnumpy(), [0, -1])


def test_exception_inside_reaches_the_caller_with_its_own_message():
    out = mx.nd.Custom(mx.nd.ones(3), op_type="test_broken")
    with pytest.raises(ValueError, match="the custom op refuses this input"):
        out.asnumpy()
    exe = mx.sym.Custom(mx.sym.var("x"), op_type="test_broken").simple_bind(mx.cpu(), x=(2,))
    exe.forward()
    with pytest.raises(ValueError, match="the custom op refuses this input"):
        exe.outputs[0].wait_to_read()


def test_waiting_inside_a_custom_op_does_not_deadlock():
    # the loss op calls asnumpy() inside forward and backward; run it eagerly and bound,
    # from a helper thread so a deadlock fails the test instead of hanging it
    done = []

    def work():
        x = mx.nd.array(np.ones((4, 3)))
        label = mx.nd.array([0, 1, 2, 0])
        calls = mx.nd.zeros(1)
        out = mx.nd.Custom(x, label, calls, op_type="test_softmax_loss")
        done.append(out.asnumpy())
        exe = mx.sym.Custom(mx.sym.var("d"), op_type="test_softmax_loss").simple_bind(
            mx.cpu(), d=(4, 3))
        exe.forward(is_train=True)
        exe.backward()
        done.append(exe.grad_dict["d"].asnumpy())
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "custom op waiting on arrays deadlocked the engine"
    np.testing.assert_allclose(done[0], np.full((4, 3), 1 / 3), rtol=1e-6)


def test_registration_and_operator_listing_errors():
    with pytest.raises(ParamError, match=r"op_type 'nope' is not registered \(known: .*"
                                         r"test_broken"):
        mx.nd.Custom(mx.nd.ones(1), op_type="nope")
    with pytest.raises(ParamError, match="required parameter 'op_type' is missing"):
        mx.sym.Custom(mx.sym.var("x"))
    with pytest.raises(TypeError, match="decorates a CustomOpProp subclass"):
        mx.operator.register("bad")(object)
    with pytest.raises(ParamError, match=r"_ScaleProp\(bogus\) failed"):
        mx.nd.Custom(mx.nd.ones(1), op_type="test_scaled_square", bogus=1)
    names = mx.operator.get_all_registered_operators()
    assert "Custom" in names and "FullyConnected" in names and names == sorted(names)
    args = mx.operator.get_operator_arguments("FullyConnected")
    assert args.names[:4] == ["data", "weight", "bias", "num_hidden"]
    assert args.types[0] == "NDArray-or-Symbol" and args.types[3] == "int, required"
    assert mx.operator.get_operator_arguments("Custom").names == ["data", "op_type"]
