"""BucketingModule: buckets of a sequence model share one set of parameters and the executor
memory, train like MXNet 1.9.1 (tests/fixtures/gen_bucketing.py) and like a plain Module per
bucket with the same parameters, save and load in MXNet's bucketing checkpoint layout, and
refuse bad input clearly."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError
from hybridnet.module import ModuleStateError
from hybridnet.test_utils import assert_almost_equal

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
from gen_bucketing import BATCH, CLASSES, VOCAB, make_sym_gen  # noqa: E402  (the fixture's network)
from replay_iter import ReplayIter  # noqa: E402

KEYS = (12, 8, 4)          # the default (largest) bucket first
# Embed each token, a tanh layer per step, average over the sequence, classify.
sym_gen = make_sym_gen(mx)


def most_frequent(x):
    counts = np.stack([(x == c).sum(axis=1) for c in range(CLASSES)], axis=1)
    return counts.argmax(axis=1)


def make_batches(n_per_key=6, seed=0, label=most_frequent):
    """Batches of random token sequences of each bucket length, labelled by ``label(x)``
    (default: the most frequent token of 0..2)."""
    rng = np.random.RandomState(seed)
    batches = []
    for i in range(n_per_key):
        for key in KEYS:
            x = rng.randint(0, VOCAB, size=(BATCH, key))
            y = label(x)
            batches.append(mx.io.DataBatch(
                [mx.nd.array(x)], [mx.nd.array(y)], bucket_key=key,
                provide_data=[mx.io.DataDesc("data", (BATCH, key))],
                provide_label=[mx.io.DataDesc("softmax_label", (BATCH,))]))
    return batches


def bucket_iter(batches):
    """The batches replayed as BucketSentenceIter would give them."""
    return ReplayIter(batches, BATCH, KEYS[0], [mx.io.DataDesc("data", (BATCH, KEYS[0]))],
                      [mx.io.DataDesc("softmax_label", (BATCH,))])


def start_params(seed=1):
    rng = np.random.RandomState(seed)
    shapes = {"embed_weight": (VOCAB, 8), "step_weight": (16, 8), "step_bias": (16,),
              "out_weight": (CLASSES, 16), "out_bias": (CLASSES,)}
    return {k: mx.nd.array(rng.uniform(-0.5, 0.5, s)) for k, s in shapes.items()}


def bound(**kw):
    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=KEYS[0], **kw)
    mod.bind(data_shapes=[("data", (BATCH, KEYS[0]))],
             label_shapes=[("softmax_label", (BATCH,))])
    mod.init_params(arg_params=start_params())
    return mod


FIX = os.path.join(os.path.dirname(__file__), "fixtures", "bucketing")
REF = np.load(os.path.join(FIX, "bucketing.npz"))
REF_STEPS = 6


def ref_batch(k):
    x, y = REF[f"in/x{k}"], REF[f"in/y{k}"]
    return mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)], bucket_key=x.shape[1],
                           provide_data=[mx.io.DataDesc("data", x.shape)],
                           provide_label=[mx.io.DataDesc("softmax_label", y.shape)])


@pytest.mark.parametrize("case, context", [("single", None),
                                           ("two_dev", [mx.cpu(0), mx.cpu(1)])])
def test_steps_match_mxnet(case, context):
    """Momentum SGD through buckets 12, 8, 4, 12, 8, 4: the optimizer state of each
    parameter carries across buckets exactly as in MXNet."""
    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=12, context=context or mx.cpu())
    mod.bind(data_shapes=[("data", (BATCH, 12))], label_shapes=[("softmax_label", (BATCH,))])
    names = ("embed_weight", "step_weight", "step_bias", "out_weight", "out_bias")
    mod.init_params(arg_params={k: mx.nd.array(REF[f"in/{k}"]) for k in names})
    mod.init_optimizer(kvstore="local", optimizer="sgd",
                       optimizer_params={"learning_rate": 0.5, "momentum": 0.9, "wd": 1e-3})
    for k in range(REF_STEPS):
        mod.forward_backward(ref_batch(k))
        assert_almost_equal(mod.get_outputs()[0], REF[f"{case}/step{k}/out"], rtol=1e-4,
                            atol=1e-6)
        mod.update()
        params = mod.get_params()[0]
        for name in names:
            assert_almost_equal(params[name], REF[f"{case}/step{k}/{name}"], rtol=1e-4,
                                atol=1e-5)


def test_mxnet_bucketing_checkpoint_loads():
    mod = mx.mod.BucketingModule.load(os.path.join(FIX, "mx_bucket"), REF_STEPS,
                                      sym_gen=sym_gen, default_bucket_key=12)
    mod.bind(data_shapes=[("data", (BATCH, 12))], for_training=False)
    params = mod.get_params()[0]
    for name in params:
        assert_almost_equal(params[name], REF[f"single/step{REF_STEPS - 1}/{name}"])
    mod.forward(ref_batch(2))
    assert mod.get_outputs()[0].shape == (BATCH, CLASSES)


def test_buckets_share_parameters_gradients_and_memory():
    mod = bound()
    for batch in make_batches(1):
        mod.forward(batch)
    assert sorted(mod._buckets) == sorted(KEYS)
    default = mod._buckets[KEYS[0]]._exec_group
    for key in KEYS[1:]:
        group = mod._buckets[key]._exec_group
        for mine, theirs in zip(group.param_arrays + group.grad_arrays,
                                default.param_arrays + default.grad_arrays):
            assert mine[0] is theirs[0]
        assert group.execs[0]._pool is default.execs[0]._pool


def test_training_equals_a_plain_module_per_bucket():
    """SGD steps through the buckets give the parameters that a fresh Module per batch
    (bound for that bucket's length, given the current parameters) gives."""
    opt = {"learning_rate": 0.5}
    batches = make_batches(2)
    mod = bound()
    mod.init_optimizer(optimizer="sgd", optimizer_params=opt)
    params = start_params()
    for batch in batches:
        mod.forward_backward(batch)
        mod.update()
        plain = mx.mod.Module(sym_gen(batch.bucket_key)[0])
        plain.bind(batch.provide_data, batch.provide_label)
        plain.init_params(arg_params=params)
        plain.init_optimizer(optimizer="sgd", optimizer_params=opt)
        plain.forward_backward(batch)
        plain.update()
        params = {k: v.copy() for k, v in plain.get_params()[0].items()}
        for k, v in params.items():
            assert_almost_equal(mod.get_params()[0][k], v, rtol=1e-5, atol=1e-6)
    # and a batch of each bucket predicts what a plain module with these parameters predicts
    for batch in batches[:len(KEYS)]:
        mod.forward(batch, is_train=False)
        plain = mx.mod.Module(sym_gen(batch.bucket_key)[0])
        plain.bind(batch.provide_data, batch.provide_label, for_training=False)
        plain.init_params(arg_params=params)
        plain.forward(batch)
        assert_almost_equal(mod.get_outputs()[0], plain.get_outputs()[0], rtol=1e-5)
        assert mod.output_shapes == plain.output_shapes


def test_fit_learns_over_three_bucket_lengths():
    train = bucket_iter(make_batches(12, seed=0))
    test = bucket_iter(make_batches(4, seed=7))
    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=KEYS[0])
    mod.fit(train, eval_data=test, num_epoch=12, optimizer="adam",
            optimizer_params={"learning_rate": 0.05}, initializer=mx.init.Xavier())
    assert sorted(mod._buckets) == sorted(KEYS)
    acc = dict(mod.score(test, "acc"))["accuracy"]
    assert acc >= 0.8, acc
    preds = mod.predict(test, merge_batches=False)
    assert [p[0].shape for p in preds] == [(BATCH, CLASSES)] * len(test.batches)


def lstm_sym_gen(seq_len):
    """An LSTM over the embedded tokens (time-major), classifying from the last step; the
    LSTM's begin states are Module state inputs (zeros), not parameters."""
    data = mx.sym.var("data")
    net = mx.sym.Embedding(data, input_dim=VOCAB, output_dim=8, name="embed")
    net = mx.sym.transpose(net, axes=(1, 0, 2))
    net = mx.sym.RNN(net, mx.sym.var("lstm_parameters", init=mx.init.Uniform(0.3)),
                     mx.sym.var("lstm_state"), mx.sym.var("lstm_state_cell"), state_size=8,
                     num_layers=1, mode="lstm", name="lstm")
    net = mx.sym.FullyConnected(mx.sym.SequenceLast(net), num_hidden=CLASSES, name="out")
    return mx.sym.SoftmaxOutput(net, name="softmax"), ("data",), ("softmax_label",)


def test_lstm_buckets_learn_a_sequence_task():
    """The label is the token before the last (mod 3): the LSTM must remember it."""
    mx.random.seed(0)

    def label(x):
        return x[:, -2] % CLASSES

    train = bucket_iter(make_batches(10, seed=0, label=label))
    test = bucket_iter(make_batches(4, seed=9, label=label))
    mod = mx.mod.BucketingModule(lstm_sym_gen, default_bucket_key=KEYS[0],
                                 state_names=["lstm_state", "lstm_state_cell"])
    mod.fit(train, num_epoch=15, optimizer="adam", optimizer_params={"learning_rate": 0.05},
            initializer=mx.init.Xavier())
    assert dict(mod.score(test, "acc"))["accuracy"] >= 0.9
    assert sorted(mod.get_params()[0]) == ["embed_weight", "lstm_parameters", "out_bias",
                                           "out_weight"]
    assert [s.shape for s in mod.get_states()] == [(1, BATCH, 8)] * 2


def test_two_devices_equal_one():
    batches = make_batches(1)
    outs = []
    for ctx in (mx.cpu(), [mx.cpu(0), mx.cpu(1)]):
        mod = bound(context=ctx)
        mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.5})
        for batch in batches:
            mod.forward_backward(batch)
            mod.update()
        outs.append(mod.get_params()[0])
    for k in outs[0]:
        assert_almost_equal(outs[0][k], outs[1][k], rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
    mod = bound()
    for batch in make_batches(1):
        mod.forward(batch)
    prefix = str(tmp_path / "bucket")
    mod.save_checkpoint(prefix, 3)
    for key in KEYS:
        assert (tmp_path / f"bucket-{key}-symbol.json").exists()
    assert sorted(int(k) for k in mx.nd.load(prefix + ".buckets")[0].asnumpy()) == \
        sorted(KEYS)
    loaded = mx.mod.BucketingModule.load(prefix, 3, sym_gen=sym_gen,
                                         default_bucket_key=KEYS[0])
    loaded.bind(data_shapes=[("data", (BATCH, KEYS[0]))], for_training=False)
    for batch in make_batches(1):
        mod.forward(batch, is_train=False)
        loaded.forward(batch)
        assert_almost_equal(loaded.get_outputs()[0], mod.get_outputs()[0])


def test_bad_input():
    def picky_gen(key):
        if key not in KEYS:
            raise KeyError(key)
        return sym_gen(key)

    with pytest.raises(ValueError, match="default_bucket_key is required"):
        mx.mod.BucketingModule(sym_gen)
    with pytest.raises(TypeError, match=r"must return \(symbol, data_names, label_names\)"):
        mx.mod.BucketingModule(lambda key: sym_gen(key)[0], default_bucket_key=4)
    mod = mx.mod.BucketingModule(picky_gen, default_bucket_key=KEYS[0])
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before forward\(\)"):
        mod.forward(make_batches(1)[0])
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before switch_bucket\(\)"):
        mod.switch_bucket(4, [("data", (BATCH, 4))])
    mod.bind(data_shapes=[("data", (BATCH, KEYS[0]))],
             label_shapes=[("softmax_label", (BATCH,))])
    with pytest.raises(ModuleStateError, match=r"call init_params\(\) before forward\(\)"):
        mod.forward(make_batches(1)[0])
    mod.init_params()
    with pytest.raises(ModuleStateError, match=r"call init_optimizer\(\) before update\(\)"):
        mod.update()
    unknown = mx.io.DataBatch([mx.nd.zeros((BATCH, 5))], [mx.nd.zeros((BATCH,))],
                              bucket_key=5)
    with pytest.raises(HybridNetError, match=r"sym_gen\(5\) failed: KeyError"):
        mod.forward(unknown)
    wrong = mx.io.DataBatch([mx.nd.zeros((BATCH, 7))], [mx.nd.zeros((BATCH,))],
                            bucket_key=4, provide_data=[mx.io.DataDesc("data", (BATCH, 4))])
    with pytest.raises(mx.base.ShapeError, match=r"'data' has shape \(8, 7\), the module is "
                                                 r"bound with \(8, 4\)"):
        mod.forward(wrong)
    with pytest.raises(HybridNetError, match="shared_module is not supported"):
        mod.bind([("data", (BATCH, 4))], force_rebind=True, shared_module=mod)


def test_bucket_with_other_parameters_is_refused():
    def gen(key):
        symbol, data, label = sym_gen(key)
        if key == 4:         # a bucket with its own extra layer
            symbol = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(
                symbol, num_hidden=CLASSES, name="extra"), name="softmax")
        return symbol, data, label

    mod = mx.mod.BucketingModule(gen, default_bucket_key=KEYS[0])
    mod.bind(data_shapes=[("data", (BATCH, KEYS[0]))],
             label_shapes=[("softmax_label", (BATCH,))])
    mod.init_params()
    with pytest.raises(HybridNetError, match=r"bucket 4.s parameters differ .*\(extra "
                                             "extra_bias, extra_weight"):
        mod.forward(make_batches(1)[2])


def test_force_rebind_for_inference_keeps_the_trained_parameters():
    mod = bound()
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.5})
    for batch in make_batches(1):
        mod.forward_backward(batch)
        mod.update()
    trained = {k: v.copy() for k, v in mod.get_params()[0].items()}
    mod.bind(data_shapes=[("data", (BATCH, KEYS[0]))], for_training=False, force_rebind=True)
    assert not mod.for_training and list(mod._buckets) == [KEYS[0]]
    for name, value in mod.get_params()[0].items():
        assert_almost_equal(value, trained[name])
    mod.forward(make_batches(1)[1])
    assert mod.get_outputs()[0].shape == (BATCH, CLASSES)
    with pytest.raises(mx.base.HybridNetError, match="for_training=False"):
        mod.backward()
