"""The Executor: numbers against MXNet 1.9.1, binding (arrays used in place, errors that list
names and shapes), grad_req write/add/null, loss heads and head gradients, reshape, parameter
copies, monitoring, memory sharing between executors, the memory plan, training mode, and
errors raised inside kernels."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError, ShapeError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path.insert(0, FIXTURES)
import symbol_nets  # noqa: E402

EXEC = np.load(os.path.join(FIXTURES, "symbol", "symbol_exec.npz"))


def _fixture(name, kind):
    prefix = f"{name}/{kind}/"
    return {k[len(prefix):]: EXEC[k] for k in EXEC.files if k.startswith(prefix)}


def _load(exe, name):
    for key, value in _fixture(name, "arg").items():
        exe.arg_dict[key][:] = value
    for key, value in _fixture(name, "aux").items():
        exe.aux_dict[key][:] = value


def _mlp(hidden=8, out=4):
    data = mx.sym.var("data")
    fc1 = mx.sym.FullyConnected(data, num_hidden=hidden, name="fc1")
    relu = mx.sym.Activation(fc1, act_type="relu", name="relu1")
    fc2 = mx.sym.FullyConnected(relu, num_hidden=out, name="fc2")
    return mx.sym.SoftmaxOutput(fc2, name="softmax")


# ---- numbers against MXNet ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "group", "attrs", "arith"])
def test_forward_backward_match_mxnet(name):
    make, shapes = symbol_nets.NETS[name]
    exe = make(mx).simple_bind(mx.cpu(), **shapes)
    _load(exe, name)
    for i, out in enumerate(exe.forward(is_train=False)):
        np.testing.assert_allclose(out.asnumpy(), EXEC[f"{name}/infer_out{i}"], rtol=1e-5,
                                   atol=1e-6)
    outs = exe.forward(is_train=True)
    heads = [mx.nd.array(EXEC[f"{name}/head{i}"]) for i in range(len(outs))] \
        if f"{name}/head0" in EXEC.files else None
    exe.backward(heads)
    for i, out in enumerate(outs):
        np.testing.assert_allclose(out.asnumpy(), EXEC[f"{name}/train_out{i}"], rtol=1e-5,
                                   atol=1e-6)
    for key, want in _fixture(name, "grad").items():
        np.testing.assert_allclose(exe.grad_dict[key].asnumpy(), want, rtol=1e-4, atol=1e-5,
                                   err_msg=f"gradient of {key}")


def test_conv_net_with_batchnorm_matches_mxnet():
    make, shapes = symbol_nets.NETS["lenet"]
    exe = make(mx).simple_bind(mx.cpu(), **shapes)
    _load(exe, "lenet")
    np.testing.assert_allclose(exe.forward()[0].asnumpy(), EXEC["lenet/infer_out0"],
                               rtol=1e-4, atol=1e-6)
    # training (BatchNorm on batch statistics, moving statistics updated) without Dropout
    exe = symbol_nets.lenet(mx, dropout=False).simple_bind(mx.cpu(), **shapes)
    _load(exe, "lenet")
    np.testing.assert_allclose(exe.forward(is_train=True)[0].asnumpy(),
                               EXEC["lenet/train_out0"], rtol=1e-4, atol=1e-6)
    exe.backward()
    for key, want in _fixture("lenet", "grad").items():
        np.testing.assert_allclose(exe.grad_dict[key].asnumpy(), want, rtol=1e-3, atol=1e-5,
                                   err_msg=f"gradient of {key}")
    for key, want in _fixture("lenet", "aux_after").items():
        np.testing.assert_allclose(exe.aux_dict[key].asnumpy(), want, rtol=1e-4, atol=1e-6)


# ---- binding --------------------------------------------------------------------------------
def test_simple_bind_allocates_everything():
    exe = _mlp().simple_bind(mx.cpu(), data=(5, 3), type_dict={"data": "float64"},
                             grad_req={"fc1_weight": "write", "fc2_weight": "add"})
    assert [a.shape for a in exe.arg_arrays] == [(5, 3), (8, 3), (8,), (4, 8), (4,), (5,)]
    assert all(a.dtype == np.float64 for a in exe.arg_arrays)
    assert exe.grad_dict["data"] is None and exe.grad_dict["fc1_bias"] is None
    assert exe.grad_dict["fc2_weight"].shape == (4, 8)
    assert list(exe.output_dict) == ["softmax_output"] and exe.aux_arrays == []
    assert exe.outputs[0].shape == (5, 4)


def test_bind_uses_the_given_arrays_without_copies():
    a, b = mx.nd.array([1., 2.]), mx.nd.array([3., 4.])
    exe = (mx.sym.var("a") * mx.sym.var("b")).bind(mx.cpu(), {"a": a, "b": b})
    assert exe.arg_dict["a"] is a
    np.testing.assert_array_equal(exe.forward()[0].asnumpy(), [3, 8])
    a[:] = 10                                    # eager write, ordered before the next forward
    out = exe.forward()[0]
    np.testing.assert_array_equal(out.asnumpy(), [30, 40])
    # outputs are ordinary NDArrays: eager code and autograd consume them directly
    x = mx.nd.array([1., 1.])
    x.attach_grad()
    with mx.autograd.record():
        y = (exe.outputs[0] * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [30, 40])


def test_bind_errors_list_names_and_shapes():
    net = _mlp()
    with pytest.raises(ValueError, match=r"key `fc1_weight` is missing in `args` \(missing: "
                                         r"fc1_weight, fc1_bias, fc2_weight, fc2_bias, "
                                         r"softmax_label"):
        net.bind(mx.cpu(), {"data": mx.nd.ones((2, 3))})
    args = {n: mx.nd.ones(s) for n, s in zip(net.list_arguments(),
                                             net.infer_shape(data=(2, 3))[0])}
    with pytest.raises(ValueError, match=r"`args` has arrays for extra, which the symbol "
                                         r"does not take"):
        net.bind(mx.cpu(), dict(args, extra=mx.nd.ones(1)))
    with pytest.raises(ValueError, match="`args` has 2 arrays but the symbol takes 6"):
        net.bind(mx.cpu(), [mx.nd.ones(1), mx.nd.ones(1)])
    with pytest.raises(TypeError, match=r"`args\['data'\]` must be an NDArray"):
        net.bind(mx.cpu(), dict(args, data=np.ones((2, 3))))
    with pytest.raises(ShapeError, match=r"FullyConnected 'fc2': weight has shape \(4, 9\), "
                                         r"expected \(4, 8\)"):
        net.bind(mx.cpu(), dict(args, fc2_weight=mx.nd.ones((4, 9))))
    bn = mx.sym.BatchNorm(mx.sym.var("x"), name="bn")
    bn_args = {"x": mx.nd.ones((2, 3)), "bn_gamma": mx.nd.ones(3), "bn_beta": mx.nd.ones(3)}
    with pytest.raises(ValueError, match="`aux_states` is required: the symbol takes "
                                         "bn_moving_mean, bn_moving_var"):
        bn.bind(mx.cpu(), bn_args)
    with pytest.raises(ValueError, match="key `bn_moving_var` is missing in `aux_states`"):
        bn.bind(mx.cpu(), bn_args, aux_states={"bn_moving_mean": mx.nd.ones(3)})
    with pytest.raises(ShapeError, match=r"cannot infer the shapes of data \(known: \(\)\)"):
        net.simple_bind(mx.cpu())
    # names the symbol lacks are ignored, as MXNet does (Module passes label shapes to
    # prediction symbols without labels)
    exe = net.simple_bind(mx.cpu(), data=(2, 3), bogus=(1,), type_dict={"bogus": "int32"},
                          grad_req={"bogus": "write", "fc1_weight": "write"})
    assert "bogus" not in exe.arg_dict and exe.grad_dict["fc2_weight"] is None
    with pytest.raises(HybridNetError, match="model parallelism"):
        net.simple_bind(mx.cpu(), data=(2, 3), group2ctx={"dev1": mx.cpu(1)})
    with pytest.raises(HybridNetError, match=r"'data' is on cpu\(0\), the executor runs on "
                                             r"cpu\(1\)"):
        net.bind(mx.cpu(1), args)


def test_cyclic_graph_is_rejected():
    a = mx.sym.var("a")
    b = mx.sym.relu(a, name="b")
    b._compose(a=b)          # in-place composition wires b's output back into b
    with pytest.raises(HybridNetError, match="cycle through node 'b'"):
        b.list_arguments()


def test_disconnected_components_run_together():
    g = mx.sym.Group([mx.sym.var("a") * 2, mx.sym.relu(mx.sym.var("b"))])
    outs = g.eval(mx.cpu(), a=mx.nd.array([1., 2.]), b=mx.nd.array([-1., 3.]))
    assert [o.asnumpy().tolist() for o in outs] == [[2, 4], [0, 3]]


# ---- gradients ------------------------------------------------------------------------------
def _quadratic():
    x = mx.sym.var("x")
    w = mx.sym.var("w")
    # x feeds three nodes: its gradient is accumulated from all of them
    return mx.sym.Group([x * w + x * x, mx.sym.relu(x)]), x, w


def test_gradient_accumulates_over_consumers_and_grad_req_modes():
    sym, _, _ = _quadratic()
    x, w = np.array([1., -2., 3.]), np.array([0.5, 0.5, 2.])
    heads = [mx.nd.array([1., 2., 3.]), mx.nd.array([1., 1., 1.])]
    want_x = np.array([1., 2., 3.]) * (w + 2 * x) + (x > 0)
    for req, factor in (("write", 1), ("add", 2)):
        exe = sym.simple_bind(mx.cpu(), x=(3,), w=(3,), grad_req=req)
        exe.arg_dict["x"][:] = x
        exe.arg_dict["w"][:] = w
        for _ in range(2):
            exe.forward(is_train=True)
            exe.backward(heads)
        np.testing.assert_allclose(exe.grad_dict["x"].asnumpy(), factor * want_x)
    exe = sym.simple_bind(mx.cpu(), x=(3,), w=(3,), grad_req=["null", "write"])
    assert exe.grad_dict["x"] is None
    with pytest.raises(HybridNetError, match="grad_req for 'w' must be"):
        sym.simple_bind(mx.cpu(), x=(3,), w=(3,), grad_req={"w": "sometimes"})


def test_write_gradient_without_contributions_is_zeroed():
    x = mx.sym.var("x")
    sym = mx.sym.Group([mx.sym.BlockGrad(x) * 2, mx.sym.var("y") * 3])
    exe = sym.simple_bind(mx.cpu(), x=(2,), y=(2,))
    exe.grad_dict["x"][:] = 5
    exe.forward(is_train=True)
    exe.backward([mx.nd.ones(2), mx.nd.ones(2)])
    np.testing.assert_array_equal(exe.grad_dict["x"].asnumpy(), [0, 0])
    np.testing.assert_array_equal(exe.grad_dict["y"].asnumpy(), [3, 3])


def test_loss_heads_need_no_head_gradient_others_do():
    exe = _mlp().simple_bind(mx.cpu(), data=(2, 3))
    exe.forward(is_train=True)
    exe.backward()                     # SoftmaxOutput is a loss head
    relu = mx.sym.relu(mx.sym.var("x"), name="r")
    exe = relu.simple_bind(mx.cpu(), x=(2,))
    exe.forward(is_train=True)
    with pytest.raises(HybridNetError, match=r"output 0 \('r_output', from relu 'r'\) is not a "
                                             r"loss.*make_loss"):
        exe.backward()
    with pytest.raises(ShapeError, match=r"out_grads\[0\] has shape \(3,\), expected \(2,\)"):
        exe.backward([mx.nd.ones(3)])
    with pytest.raises(ValueError, match="unknown output names nope"):
        exe.backward({"nope": mx.nd.ones(2)})
    exe.backward({"r_output": mx.nd.ones(2)})
    exe.backward(mx.nd.ones(2))
    # a group of a loss and a blocked output needs no head gradients either
    data = mx.sym.var("data")
    fc = mx.sym.FullyConnected(data, num_hidden=3, name="fc")
    group = mx.sym.Group([mx.sym.MakeLoss(mx.sym.sum(fc)), mx.sym.BlockGrad(fc)])
    exe = group.simple_bind(mx.cpu(), data=(2, 4))
    exe.forward(is_train=True)
    exe.backward()
    np.testing.assert_allclose(exe.grad_dict["fc_bias"].asnumpy(), [2, 2, 2])


def test_output_that_is_a_variable():
    data = mx.sym.var("data")
    sym = mx.sym.Group([data, data * 3])
    exe = sym.simple_bind(mx.cpu(), data=(2,))
    exe.arg_dict["data"][:] = 2
    outs = exe.forward(is_train=True)
    assert outs[0] is exe.arg_dict["data"]
    exe.backward([mx.nd.ones(2), mx.nd.ones(2)])
    np.testing.assert_array_equal(exe.grad_dict["data"].asnumpy(), [4, 4])


# ---- forward kwargs, training mode, randomness ---------------------------------------------
def test_forward_kwargs_copy_into_arguments():
    exe = (mx.sym.var("a") + 1).simple_bind(mx.cpu(), a=(2,))
    np.testing.assert_array_equal(exe.forward(a=np.array([1, 2]))[0].asnumpy(), [2, 3])
    np.testing.assert_array_equal(exe.forward(a=mx.nd.array([5, 6]))[0].asnumpy(), [6, 7])
    with pytest.raises(ValueError, match="unknown argument 'b'"):
        exe.forward(b=mx.nd.ones(2))
    with pytest.raises(ShapeError, match=r"argument 'a' has shape \(2,\), got an array of "
                                         r"shape \(3,\)"):
        exe.forward(a=mx.nd.ones(3))


def test_is_train_reaches_kernels():
    drop = mx.sym.Dropout(mx.sym.var("x"), p=0.5)
    exe = drop.simple_bind(mx.cpu(), x=(1000,), grad_req="null")
    exe.arg_dict["x"][:] = 1
    np.testing.assert_array_equal(exe.forward(is_train=False)[0].asnumpy(), np.ones(1000))
    mx.random.seed(3)
    first = exe.forward(is_train=True)[0].asnumpy()
    assert 300 < (first == 0).sum() < 700 and set(np.unique(first)) == {0.0, 2.0}
    mx.random.seed(3)
    np.testing.assert_array_equal(exe.forward(is_train=True)[0].asnumpy(), first)


def test_kernel_errors_surface_at_the_next_wait_naming_the_node():
    sym = mx.sym.softmax_cross_entropy(mx.sym.var("x"), mx.sym.var("y"), name="sce")
    exe = sym.bind(mx.cpu(), {"x": mx.nd.ones((2, 3)), "y": mx.nd.array([0, 7])})
    exe.forward()
    with pytest.raises(HybridNetError, match="label 7 is out of range") as info:
        exe.outputs[0].asnumpy()
    assert any("node 'sce'" in note for note in getattr(info.value, "__notes__", []))


# ---- reshape, parameters, monitoring --------------------------------------------------------
def test_reshape_shares_parameters_and_memory():
    exe = _mlp().simple_bind(mx.cpu(), data=(4, 3))
    exe.arg_dict["fc1_weight"][:] = 0.5
    small = exe.reshape(data=(2, 3), softmax_label=(2,))
    assert small.arg_dict["fc1_weight"] is exe.arg_dict["fc1_weight"]
    assert small.grad_dict["fc1_weight"] is exe.grad_dict["fc1_weight"]
    assert small.arg_dict["data"].shape == (2, 3)
    # the smaller data array is a view of the original one
    small.arg_dict["data"][:] = 7
    assert exe.arg_dict["data"].asnumpy()[:2].tolist() == [[7, 7, 7]] * 2
    assert small.forward()[0].shape == (2, 4)
    with pytest.raises(ValueError, match=r"new shape of 'data' \(8, 3\) is larger than the "
                                         r"original \(4, 3\).*allow_up_sizing=True"):
        exe.reshape(data=(8, 3), softmax_label=(8,))
    big = exe.reshape(data=(8, 3), softmax_label=(8,), allow_up_sizing=True)
    assert big.forward()[0].shape == (8, 4)
    assert big.arg_dict["fc1_weight"] is exe.arg_dict["fc1_weight"]
    with pytest.raises(ValueError, match="shape of 'softmax_label' changed.*partial_shaping"):
        exe.reshape(data=(2, 3))
    assert exe.reshape(data=(2, 3), partial_shaping=True).arg_dict["softmax_label"].shape == (2,)


def test_copy_params_from():
    exe = _mlp().simple_bind(mx.cpu(), data=(2, 3))
    exe.copy_params_from({"fc1_bias": mx.nd.ones(8, dtype="float64")})
    np.testing.assert_array_equal(exe.arg_dict["fc1_bias"].asnumpy(), np.ones(8))
    assert exe.arg_dict["fc1_bias"].dtype == np.float32
    with pytest.raises(ValueError, match="'nope' is not one of the executor's arguments"):
        exe.copy_params_from({"nope": mx.nd.ones(1)})
    exe.copy_params_from({"nope": mx.nd.ones(1)}, allow_extra_params=True)
    with pytest.raises(ShapeError, match=r"'fc1_bias' has shape \(3,\)"):
        exe.copy_params_from({"fc1_bias": mx.nd.ones(3)})
    with pytest.raises(ValueError, match="auxiliary states"):
        exe.copy_params_from({}, {"moving": mx.nd.ones(1)})


def test_monitor_callback_sees_every_output_and_optionally_inputs():
    exe = _mlp().simple_bind(mx.cpu(), data=(2, 3))
    seen = {}
    exe.set_monitor_callback(lambda name, arr: seen.__setitem__(name, arr.asnumpy()))
    exe.forward()
    mx.nd.waitall()
    assert list(seen) == ["fc1_output", "relu1_output", "fc2_output", "softmax_output"]
    np.testing.assert_array_equal(seen["softmax_output"], exe.outputs[0].asnumpy())
    seen.clear()
    exe.set_monitor_callback(lambda name, arr: seen.__setitem__(name, arr), monitor_all=True)
    exe.forward()
    mx.nd.waitall()
    assert list(seen)[:4] == ["fc1_data", "fc1_weight", "fc1_bias", "fc1_output"]


def test_shared_exec_shares_parameters_and_memory_between_buckets():
    net = _mlp()
    params = [n for n in net.list_arguments() if n not in ("data", "softmax_label")]
    big = net.simple_bind(mx.cpu(), data=(8, 3))
    rng = np.random.RandomState(0)
    for name in params:
        big.arg_dict[name][:] = rng.standard_normal(big.arg_dict[name].shape)
    small = net.simple_bind(mx.cpu(), data=(2, 3), shared_exec=big, shared_arg_names=params)
    assert all(small.arg_dict[n] is big.arg_dict[n] for n in params)
    assert small._pool is big._pool
    x = rng.standard_normal((8, 3))
    reference = net.eval(mx.cpu(), data=mx.nd.array(x),
                         softmax_label=mx.nd.zeros(8), **{n: big.arg_dict[n] for n in params})
    for _ in range(2):           # alternate: each run must see its own, intact intermediates
        out_big = big.forward(data=x)[0]
        out_small = small.forward(data=x[:2])[0]
        np.testing.assert_allclose(out_big.asnumpy(), reference[0].asnumpy(), rtol=1e-5)
        np.testing.assert_allclose(out_small.asnumpy(), reference[0].asnumpy()[:2], rtol=1e-5)
    buffer = {}
    first = net.simple_bind(mx.cpu(), data=(4, 3), shared_buffer=buffer)
    second = net.simple_bind(mx.cpu(), data=(2, 3), shared_buffer=buffer)
    assert buffer["data"] is first.arg_dict["data"]
    assert second.arg_dict["data"]._var is first.arg_dict["data"]._var   # a view of it
    with pytest.raises(ValueError, match="shared_arg_names needs shared_exec"):
        net.simple_bind(mx.cpu(), data=(2, 3), shared_arg_names=params)


def test_memory_plan_reuses_and_reports():
    x = mx.sym.var("data")
    for i in range(6):
        x = mx.sym.Activation(mx.sym.FullyConnected(x, num_hidden=32, name=f"fc{i}"),
                              act_type="relu", name=f"relu{i}")
    net = mx.sym.SoftmaxOutput(x, name="softmax")
    infer = net.simple_bind(mx.cpu(), data=(16, 32), grad_req="null")
    train = net.simple_bind(mx.cpu(), data=(16, 32))
    for exe in (infer, train):
        plan = exe._plan
        assert plan.planned_bytes < plan.naive_bytes
        text = exe.debug_str()
        assert "Memory plan:" in text and f"planned {plan.planned_bytes} bytes" in text
        assert f"naive {plan.naive_bytes} bytes" in text and "Total" in text
    # inference keeps nothing for backward: a few slots serve the whole chain, relu in place
    assert len(infer._plan.slot_bytes) <= 4 and len(infer._plan.inplace) == 6
    assert train._plan.planned_bytes / train._plan.naive_bytes < 0.6
    assert "forward: 13 kernel calls in one engine task" in train.debug_str()
    # the loss head's constant gradient (16, 32) ones is one broadcast element, not 2 KB
    assert "constants: 4 bytes" in train.debug_str()


def test_planned_memory_gives_the_same_numbers_as_eager():
    # a branching graph with in-place candidates everywhere, against autograd
    x = mx.sym.var("x")
    a = mx.sym.relu(x)
    b = mx.sym.sigmoid(a) * a + mx.sym.tanh(a)
    c = mx.sym.relu(b - 0.5) + b * 2
    sym = mx.sym.sum(c * c)
    value = np.random.RandomState(1).standard_normal((4, 5)).astype(np.float32)
    exe = sym.simple_bind(mx.cpu(), x=value.shape)
    exe.arg_dict["x"][:] = value
    out = exe.forward(is_train=True)[0].asnumpy()
    exe.backward(mx.nd.ones(out.shape))
    xe = mx.nd.array(value)
    xe.attach_grad()
    with mx.autograd.record():
        ae = mx.nd.relu(xe)
        be = mx.nd.sigmoid(ae) * ae + mx.nd.tanh(ae)
        ce = mx.nd.relu(be - 0.5) + be * 2
        ye = mx.nd.sum(ce * ce)
    ye.backward()
    np.testing.assert_allclose(out, ye.asnumpy(), rtol=1e-5)
    np.testing.assert_allclose(exe.grad_dict["x"].asnumpy(), xe.grad.asnumpy(), rtol=1e-5)
    assert exe._plan.inplace, "expected in-place steps in this graph"


def test_executor_on_another_device():
    exe = _mlp().simple_bind(mx.cpu(1), data=(2, 3))
    assert exe.outputs[0].context == mx.cpu(1)
    assert exe.forward()[0].shape == (2, 4)
    assert "cpu(1)" in repr(exe)


# ---- mx.test_utils' symbolic helpers ----------------------------------------------------------
def test_symbolic_test_helpers():
    from hybridnet.test_utils import (check_consistency, check_numeric_gradient,
                                      check_symbolic_backward, check_symbolic_forward,
                                      simple_forward)
    a, b = mx.sym.var("a"), mx.sym.var("b")
    sym = mx.sym.FullyConnected(a * b, num_hidden=3, name="fc")
    rng = np.random.RandomState(0)
    x, y = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    w, bias = rng.standard_normal((3, 4)), rng.standard_normal(3)
    location = [x, y, w, bias]
    check_symbolic_forward(sym, location, [(x * y) @ w.T + bias], rtol=1e-4, atol=1e-5)
    with pytest.raises(AssertionError, match="output fc_output"):
        check_symbolic_forward(sym, location, [(x * y) @ w.T], rtol=1e-4, atol=1e-5)
    og = rng.standard_normal((2, 3))
    grads = {"a": (og @ w) * y, "b": (og @ w) * x, "fc_weight": og.T @ (x * y),
             "fc_bias": og.sum(0)}
    check_symbolic_backward(sym, location, [og], grads, rtol=1e-4, atol=1e-4)
    check_symbolic_backward(sym, location, [og], grads, rtol=1e-4, atol=1e-4, grad_req="add")
    with pytest.raises(AssertionError, match="gradient of a"):
        check_symbolic_backward(sym, location, [og], dict(grads, a=grads["a"] + 1), rtol=1e-4,
                                atol=1e-4)
    check_numeric_gradient(sym, location)
    check_numeric_gradient(sym, dict(zip(sym.list_arguments(), location)), grad_nodes=["a"])

    wrong = mx.sym.Custom(a, op_type="test_executor_wrong_grad")
    with pytest.raises(AssertionError, match="gradient of argument 'a' is wrong"):
        check_numeric_gradient(wrong, [x])
    truth = check_consistency(sym, [{"ctx": mx.cpu(0), "a": (2, 4), "b": (2, 4)},
                                    {"ctx": mx.cpu(1), "a": (2, 4), "b": (2, 4),
                                     "type_dict": {"a": np.float32}}])
    assert sorted(truth) == ["a_grad", "b_grad", "fc_bias_grad", "fc_output", "fc_weight_grad"]
    np.testing.assert_allclose(simple_forward(a * 2 + b, a=np.ones(3), b=np.arange(3)),
                               [2, 3, 4])


class _WrongGrad(mx.operator.CustomOp):
    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0] * in_data[0])

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        self.assign(in_grad[0], req[0], in_data[0] * out_grad[0])      # should be 2 * x


@mx.operator.register("test_executor_wrong_grad")
class _WrongGradProp(mx.operator.CustomOpProp):
    def create_operator(self, ctx, in_shapes, in_dtypes):
        return _WrongGrad()
