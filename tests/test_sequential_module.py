"""SequentialModule: a chain of modules computes, differentiates and trains exactly like one
Module running the whole symbol with the same parameters; take_labels/auto_wiring, and bad
input."""
from __future__ import annotations

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError
from hybridnet.module import ModuleStateError
from hybridnet.test_utils import assert_almost_equal

BATCH = 10


def features(data):
    net = mx.sym.FullyConnected(data, num_hidden=12, name="fc1")
    return mx.sym.Activation(net, act_type="relu", name="relu1")


def head(data):
    net = mx.sym.FullyConnected(data, num_hidden=3, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def chain(auto_wiring=True):
    seq = mx.mod.SequentialModule()
    seq.add(mx.mod.Module(features(mx.sym.var("data")), label_names=None))
    head_data = "feat" if auto_wiring else "relu1_output"
    seq.add(mx.mod.Module(head(mx.sym.var(head_data)), data_names=[head_data]),
            take_labels=True, auto_wiring=auto_wiring)
    return seq


def whole():
    return mx.mod.Module(head(features(mx.sym.var("data"))))


def toy_data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.randn(3, 5) * 2
    y = rng.randint(0, 3, n)
    x = centers[y] + rng.randn(n, 5) * 0.5
    return x.astype(np.float32), y.astype(np.float32)


def start_params():
    rng = np.random.RandomState(3)
    shapes = {"fc1_weight": (12, 5), "fc1_bias": (12,), "fc2_weight": (3, 12),
              "fc2_bias": (3,)}
    return {k: mx.nd.array(rng.uniform(-0.5, 0.5, s)) for k, s in shapes.items()}


def bound(mod):
    mod.bind(data_shapes=[("data", (BATCH, 5))], label_shapes=[("softmax_label", (BATCH,))])
    mod.init_params(arg_params=start_params())
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.3,
                                                          "momentum": 0.9})
    return mod


@pytest.mark.parametrize("auto_wiring", [True, False])
def test_chain_trains_like_one_module(auto_wiring):
    x, y = toy_data()
    seq, one = bound(chain(auto_wiring)), bound(whole())
    assert seq.output_shapes == one.output_shapes
    assert tuple(seq.label_shapes[0][1]) == (BATCH,)
    for k in range(4):
        batch = mx.io.DataBatch([mx.nd.array(x[k * BATCH:(k + 1) * BATCH])],
                                [mx.nd.array(y[k * BATCH:(k + 1) * BATCH])])
        for mod in (seq, one):
            mod.forward_backward(batch)
            mod.update()
        assert_almost_equal(seq.get_outputs()[0], one.get_outputs()[0], rtol=1e-5)
    seq_params, one_params = seq.get_params()[0], one.get_params()[0]
    assert sorted(seq_params) == sorted(one_params)
    for name, value in one_params.items():
        assert_almost_equal(seq_params[name], value, rtol=1e-5, atol=1e-6)


def test_input_gradients_reach_the_first_module():
    x, y = toy_data()
    batch = mx.io.DataBatch([mx.nd.array(x[:BATCH])], [mx.nd.array(y[:BATCH])])
    grads = []
    for mod in (chain(), whole()):
        mod.bind(data_shapes=[("data", (BATCH, 5))],
                 label_shapes=[("softmax_label", (BATCH,))], inputs_need_grad=True)
        mod.init_params(arg_params=start_params())
        mod.forward_backward(batch)
        grads.append(mod.get_input_grads()[0].asnumpy())
    assert np.abs(grads[0]).max() > 0
    assert_almost_equal(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_fit_score_predict():
    x, y = toy_data(200)
    train = mx.io.NDArrayIter(x[:150], y[:150], batch_size=BATCH, shuffle=True)
    val = mx.io.NDArrayIter(x[150:], y[150:], batch_size=BATCH)
    seq = chain()
    seq.fit(train, eval_data=val, num_epoch=5, optimizer_params={"learning_rate": 0.3},
            initializer=mx.init.Xavier())
    assert dict(seq.score(val, "acc"))["accuracy"] >= 0.95
    assert seq.predict(val).shape == (50, 3)
    assert sorted(seq.get_params()[0]) == ["fc1_bias", "fc1_weight", "fc2_bias",
                                           "fc2_weight"]


def test_bad_input():
    seq = mx.mod.SequentialModule()
    with pytest.raises(ModuleStateError, match="empty"):
        seq.bind([("data", (BATCH, 5))])
    with pytest.raises(ValueError, match='unknown meta "take_label", a typo'):
        seq.add(mx.mod.Module(features(mx.sym.var("data")), label_names=None),
                take_label=True)
    with pytest.raises(TypeError, match="expected a module"):
        seq.add(features(mx.sym.var("data")))
    seq = chain()
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before forward\(\)"):
        seq.forward(mx.io.DataBatch([mx.nd.zeros((BATCH, 5))]))
    seq.bind(data_shapes=[("data", (BATCH, 5))], label_shapes=[("softmax_label", (BATCH,))])
    with pytest.raises(ModuleStateError, match=r"call init_params\(\) before forward\(\)"):
        seq.forward(mx.io.DataBatch([mx.nd.zeros((BATCH, 5))]))
    with pytest.raises(HybridNetError, match="arg_params has bogus, which no module"):
        seq.init_params(arg_params={**start_params(), "bogus": mx.nd.zeros(1)})

    twice = mx.mod.SequentialModule()
    twice.add(mx.mod.Module(features(mx.sym.var("data")), label_names=None))
    twice.add(mx.mod.Module(features(mx.sym.var("data")), label_names=None), auto_wiring=True)
    twice.bind([("data", (BATCH, 5))])
    with pytest.raises(HybridNetError, match=r"Duplicated parameter names: name 'fc1_\w+' in "
                                             r"layer 1 .* already used in layer 0"):
        twice.init_params()
    two_inputs = mx.mod.SequentialModule()
    two_inputs.add(mx.mod.Module(features(mx.sym.var("data")), label_names=None))
    two_inputs.add(mx.mod.Module(mx.sym.var("a") + mx.sym.var("b"), data_names=["a", "b"],
                                 label_names=None), auto_wiring=True)
    with pytest.raises(HybridNetError, match=r"auto_wiring layer 1 has data names \['a', 'b'\]"
                                             r" but the previous layer gives 1 outputs"):
        two_inputs.bind([("data", (BATCH, 5))])
