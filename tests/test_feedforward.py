"""mx.model.FeedForward: trains, predicts and scores like MXNet 1.9.1
(tests/fixtures/gen_feedforward.py), reads MXNet's checkpoint, takes numpy arrays, pickles,
and rejects bad input clearly."""
from __future__ import annotations

import logging
import os
import pickle

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError
from hybridnet.test_utils import assert_almost_equal
from replay_iter import ReplayIter

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "feedforward")
REF = np.load(os.path.join(FIX, "feedforward.npz"))
PARAMS = ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias")
OPT = {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3}
X, Y = REF["in/x"], REF["in/y"]


def mlp():
    net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=16, name="fc1")
    net = mx.sym.Activation(net, act_type="tanh", name="tanh1")
    net = mx.sym.FullyConnected(net, num_hidden=3, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def start_params():
    return {k: mx.nd.array(REF[f"in/{k}"]) for k in PARAMS}


def check_case(case, model):
    for k in PARAMS:
        assert_almost_equal(model.arg_params[k], REF[f"{case}/{k}"], rtol=1e-4, atol=1e-5)
    pred = model.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == (60, 3)
    assert_almost_equal(pred, REF[f"{case}/predict"], rtol=1e-4, atol=1e-5)
    assert model.score(mx.io.NDArrayIter(X, Y, batch_size=20)) == pytest.approx(
        float(REF[f"{case}/score"]))


@pytest.mark.parametrize("case, kw", [
    ("epoch_size", dict(ctx=mx.cpu(), num_epoch=2, epoch_size=2)),
    ("two_dev", dict(ctx=[mx.cpu(0), mx.cpu(1)], num_epoch=1)),
])
def test_fit_matches_mxnet(case, kw):
    model = mx.model.FeedForward(mlp(), arg_params=start_params(), numpy_batch_size=25,
                                 **kw, **OPT)
    model.fit(mx.io.NDArrayIter(X, Y, batch_size=20))
    check_case(case, model)


def test_mxnet_checkpoint_loads_predicts_and_trains_on(tmp_path):
    model = mx.model.FeedForward.load(os.path.join(FIX, "mx_ff"), 2, num_epoch=3,
                                      epoch_size=2, numpy_batch_size=25, **OPT)
    assert model.begin_epoch == 2
    assert_almost_equal(model.predict(X), REF["epoch_size/predict"], rtol=1e-4, atol=1e-5)
    model.fit(mx.io.NDArrayIter(X, Y, batch_size=20))
    check_case("resume", model)
    model.save(str(tmp_path / "ff"))
    assert (tmp_path / "ff-0003.params").exists()
    again = mx.model.FeedForward.load(str(tmp_path / "ff"), 3)
    assert_almost_equal(again.predict(X), model.predict(X))


def blobs(n, seed):
    rng = np.random.RandomState(seed)
    centers = np.random.RandomState(0).randn(3, 8) * 2
    y = rng.randint(0, 3, n)
    return (centers[y] + rng.randn(n, 8) * 0.5).astype(np.float32), y.astype(np.float32)


def test_numpy_fit_with_eval_pair_callbacks_and_return_data(caplog):
    (x, y), (vx, vy) = blobs(230, 1), blobs(57, 2)
    epochs, batches = [], []
    with pytest.warns(DeprecationWarning, match="FeedForward has been deprecated"):
        model = mx.model.FeedForward(mlp(), num_epoch=4, numpy_batch_size=32,
                                     initializer=mx.init.Xavier(), learning_rate=0.2)
    with caplog.at_level(logging.INFO):
        model.fit(x, y.reshape(-1, 1), eval_data=(vx, vy),
                  epoch_end_callback=lambda e, s, a, x_: epochs.append((e, sorted(a))),
                  batch_end_callback=lambda p: batches.append(p.nbatch))
    assert epochs == [(e, sorted(PARAMS)) for e in range(4)]
    assert len(batches) == 4 * 7            # 230 examples, batch 32: 7 full batches
    assert "Epoch[3] Validation-accuracy=" in caplog.text
    out, data, label = model.predict(vx, return_data=True)
    assert out.shape == (57, 3) and data.shape == (57, 8)
    assert_almost_equal(data, vx)
    assert np.mean(out.argmax(axis=1) == vy) >= 0.95
    assert model.score(mx.io.NDArrayIter(vx, vy, batch_size=10)) >= 0.95
    assert model.predict(vx, num_batch=1).shape == (32, 3)
    clone = pickle.loads(pickle.dumps(model))
    assert_almost_equal(clone.predict(vx), out)


def test_create_trains_on_two_devices():
    x, y = blobs(200, 3)
    model = mx.model.FeedForward.create(mlp(), x, y, ctx=[mx.cpu(0), mx.cpu(1)], num_epoch=3,
                                        numpy_batch_size=20, initializer=mx.init.Xavier(),
                                        learning_rate=0.2)
    assert np.mean(model.predict(x).argmax(axis=1) == y) >= 0.95


def test_bad_input():
    x, y = blobs(20, 4)
    model = mx.model.FeedForward(mlp(), num_epoch=1)
    with pytest.raises(ValueError, match="y must be specified"):
        model.fit(x)
    with pytest.raises(ValueError, match="X has 20 examples but y has 19 labels"):
        model.fit(x, y[:19])
    with pytest.raises(ValueError, match=r"labels must be 1-D or \(n, 1\), got shape \(20, 2\)"):
        model.fit(x, np.stack([y, y], axis=1))
    with pytest.raises(TypeError, match="X must be a DataIter, an NDArray or a numpy array"):
        model.fit([[1, 2]], y)
    with pytest.raises(TypeError, match="eval_data must be a DataIter or an"):
        model.fit(x, y, eval_data="val")
    with pytest.raises(HybridNetError, match=r"no parameters; fit\(\) it"):
        model.predict(x)
    with pytest.raises(ValueError, match="num_epoch is not set"):
        mx.model.FeedForward(mlp()).fit(x, y)
    with pytest.raises(TypeError, match="must be a Symbol or a function"):
        mx.model.FeedForward("net")
    extra = {**start_params(), "bogus": mx.nd.zeros(1)}
    with pytest.raises(HybridNetError, match="arg_params has bogus"):
        mx.model.FeedForward(mlp(), num_epoch=1, arg_params=extra).fit(x, y)
    tolerant = mx.model.FeedForward(mlp(), num_epoch=1, arg_params=extra,
                                    allow_extra_params=True)
    assert sorted(tolerant.arg_params) == sorted(PARAMS)


def two_lengths(n_batches, seed):
    """Token sequences of length 6 and 3 (bucket keys); label: is token 1 in the sequence."""
    rng = np.random.RandomState(seed)
    batches = []
    for k in range(n_batches):
        length = (6, 3)[k % 2]
        x = rng.randint(0, 4, (10, length))
        batches.append(mx.io.DataBatch(
            [mx.nd.array(x)], [mx.nd.array((x == 1).any(axis=1))], bucket_key=length,
            provide_data=[mx.io.DataDesc("data", x.shape)],
            provide_label=[mx.io.DataDesc("softmax_label", (10,))]))
    return ReplayIter(batches, 10, 6, [mx.io.DataDesc("data", (10, 6))],
                      [mx.io.DataDesc("softmax_label", (10,))])


def test_sym_gen_trains_through_buckets():
    def sym_gen(length):
        net = mx.sym.Embedding(mx.sym.var("data"), input_dim=4, output_dim=8, name="embed")
        net = mx.sym.max(mx.sym.FullyConnected(net, num_hidden=8, flatten=False, name="step"),
                         axis=1)
        net = mx.sym.FullyConnected(mx.sym.relu(net), num_hidden=2, name="out")
        return mx.sym.SoftmaxOutput(net, name="softmax")

    model = mx.model.FeedForward(sym_gen, num_epoch=20, initializer=mx.init.Xavier(),
                                 optimizer="adam", learning_rate=0.05)
    train = two_lengths(20, seed=0)
    model.fit(train)
    assert model.symbol.list_arguments()[0] == "data"       # the default bucket's symbol
    assert model.score(two_lengths(10, seed=1)) >= 0.9
    with pytest.raises(HybridNetError, match="needs a default_bucket_key"):
        plain = mx.io.NDArrayIter(np.zeros((10, 6)), np.zeros(10), batch_size=5)
        mx.model.FeedForward(sym_gen, num_epoch=1).fit(plain)
