"""mx.model: checkpoint files (names, keys, bytes, atomic writes, errors) and the KVStore
choice Module makes (MXNet's _create_kvstore rules)."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.model import _create_kvstore
from hybridnet.test_utils import assert_almost_equal, environment

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "module")


def small_net():
    net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    net = mx.sym.BatchNorm(net, name="bn")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def params():
    rng = np.random.RandomState(3)
    arg = {"fc_weight": mx.nd.array(rng.randn(3, 4)), "fc_bias": mx.nd.array(rng.randn(3)),
           "bn_gamma": mx.nd.ones((3,)), "bn_beta": mx.nd.zeros((3,))}
    aux = {"bn_moving_mean": mx.nd.array(rng.randn(3)), "bn_moving_var": mx.nd.ones((3,))}
    return arg, aux


def test_checkpoint_files_and_round_trip(tmp_path):
    prefix = str(tmp_path / "net")
    arg, aux = params()
    mx.model.save_checkpoint(prefix, 7, small_net(), arg, aux)
    assert sorted(os.listdir(tmp_path)) == ["net-0007.params", "net-symbol.json"]
    raw = mx.nd.load(prefix + "-0007.params")
    assert list(raw) == [f"arg:{k}" for k in arg] + [f"aux:{k}" for k in aux]
    sym, arg2, aux2 = mx.model.load_checkpoint(prefix, 7)
    assert sym.tojson() == small_net().tojson()
    for given, loaded in ((arg, arg2), (aux, aux2)):
        assert sorted(given) == sorted(loaded)
        for k in given:
            assert_almost_equal(loaded[k], given[k], rtol=0, atol=0)
    assert sorted(mx.model.load_params(prefix, 7)[1]) == sorted(aux)


def test_params_bytes_equal_mxnet_checkpoint(tmp_path):
    # re-saving MXNet's checkpoint gives the very same bytes
    _, arg, aux = mx.model.load_checkpoint(os.path.join(FIX, "mx_ckpt"), 2)
    prefix = str(tmp_path / "again")
    mx.model.save_checkpoint(prefix, 2, None, arg, aux)
    with open(os.path.join(FIX, "mx_ckpt-0002.params"), "rb") as a, \
            open(prefix + "-0002.params", "rb") as b:
        assert a.read() == b.read()


def test_devices_arrays_are_saved_from_the_cpu(tmp_path):
    arg = {"w": mx.nd.ones((2, 2), ctx=mx.cpu(1))}
    mx.model.save_checkpoint(str(tmp_path / "d"), 1, None, arg, {})
    with open(tmp_path / "d-0001.params", "rb") as f:
        data = f.read()
    # the record's context (dev_type 1, dev_id 0) follows magic, stype, ndim and two dims
    record = data[24:]
    assert np.frombuffer(record[4 + 4 + 4 + 16:4 + 4 + 4 + 16 + 8], np.int32).tolist() == [1, 0]


def test_interrupted_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    prefix = str(tmp_path / "net")
    arg, aux = params()
    mx.model.save_checkpoint(prefix, 1, small_net(), arg, aux)
    before = open(prefix + "-0001.params", "rb").read()

    def fail(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", fail)
    bigger = dict(arg, fc_weight=mx.nd.zeros((3, 4)))
    with pytest.raises(KeyboardInterrupt):
        mx.model.save_checkpoint(prefix, 1, None, bigger, aux)
    monkeypatch.undo()
    assert open(prefix + "-0001.params", "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["net-0001.params", "net-symbol.json"]


def test_missing_corrupt_and_foreign_files(tmp_path):
    prefix = str(tmp_path / "net")
    with pytest.raises(FileNotFoundError, match="net-symbol.json"):
        mx.model.load_checkpoint(prefix, 1)
    arg, aux = params()
    mx.model.save_checkpoint(prefix, 1, small_net(), arg, aux)
    with pytest.raises(FileNotFoundError, match="net-0002.params"):
        mx.model.load_checkpoint(prefix, 2)
    data = open(prefix + "-0001.params", "rb").read()
    with open(prefix + "-0002.params", "wb") as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(mx.MXNetError, match="net-0002.params"):
        mx.model.load_checkpoint(prefix, 2)
    mx.nd.save(prefix + "-0003.params", {"fc_weight": mx.nd.ones((3, 4))})
    with pytest.raises(mx.MXNetError, match="key 'fc_weight' is neither 'arg:<name>'"):
        mx.model.load_checkpoint(prefix, 3)
    mx.nd.save(prefix + "-0004.params", [mx.nd.ones((3, 4))])
    with pytest.raises(mx.MXNetError, match="without names"):
        mx.model.load_params(prefix, 4)


def test_module_load_refuses_a_checkpoint_that_does_not_match(tmp_path):
    prefix = str(tmp_path / "net")
    arg, aux = params()
    del arg["fc_bias"]
    arg["other_weight"] = mx.nd.ones((1,))
    mx.model.save_checkpoint(prefix, 1, small_net(), arg, aux)
    mod = mx.mod.Module.load(prefix, 1)
    with pytest.raises(mx.MXNetError, match="missing fc_bias; not in the network "
                                            "other_weight"):
        mod.bind(data_shapes=[("data", (2, 4))], for_training=False)
    with pytest.raises(FileNotFoundError, match="net-0001.states"):
        mx.mod.Module.load(prefix, 1, load_optimizer_states=True)


def test_module_checkpoint_with_optimizer_states_resumes_exactly(tmp_path):
    rng = np.random.RandomState(0)
    x, y = rng.rand(40, 4).astype(np.float32), rng.randint(0, 3, 40).astype(np.float32)
    it = mx.io.NDArrayIter(x, y, batch_size=10)
    opt = {"learning_rate": 0.1, "momentum": 0.9}
    arg, aux = params()
    full = mx.mod.Module(small_net())
    full.fit(it, num_epoch=2, optimizer_params=opt, arg_params=arg, aux_params=aux)
    # the same two epochs with a checkpoint (momentum states included) in between
    first = mx.mod.Module(small_net())
    first.fit(it, num_epoch=1, optimizer_params=opt, arg_params=arg, aux_params=aux)
    prefix = str(tmp_path / "r")
    first.save_checkpoint(prefix, 1, save_optimizer_states=True)
    assert sorted(os.listdir(tmp_path)) == ["r-0001.params", "r-0001.states", "r-symbol.json"]
    resumed = mx.mod.Module.load(prefix, 1, load_optimizer_states=True)
    with pytest.warns(UserWarning, match="already initialized"):    # as in MXNet
        resumed.fit(it, num_epoch=2, begin_epoch=1, optimizer_params=opt)
    for done, ref in zip(resumed.get_params(), full.get_params()):
        for k, v in ref.items():
            assert_almost_equal(done[k], v, rtol=1e-5, atol=1e-6)
    # without the states the momentum restarts from zero: a different result
    plain = mx.mod.Module.load(prefix, 1)
    with pytest.warns(UserWarning, match="already initialized"):
        plain.fit(it, num_epoch=2, begin_epoch=1, optimizer_params=opt)
    assert not np.allclose(plain.get_params()[0]["fc_weight"].asnumpy(),
                           full.get_params()[0]["fc_weight"].asnumpy())


def test_create_kvstore_follows_mxnet():
    big = {"w": mx.nd.zeros((1,))}
    assert _create_kvstore(None, 2, big) == (None, False)
    assert _create_kvstore("local", 1, big) == (None, False)
    kv, upd = _create_kvstore("local", 2, big)
    assert kv.type == "local" and upd is True
    kv, upd = _create_kvstore("device", 2, big)
    assert kv.type == "device" and upd is True
    with environment("MXNET_UPDATE_ON_KVSTORE", "0"):
        assert _create_kvstore("local", 2, big)[1] is False
    huge = {"w": SimpleNamespace(shape=(4097, 4096))}     # > 16M elements: devices update
    assert _create_kvstore("local", 2, huge)[1] is False
    assert _create_kvstore("device", 2, huge)[1] is True
    store = mx.kv.create("local")
    assert _create_kvstore(store, 1, big) == (store, True)
    with pytest.raises(TypeError, match="kvstore must be"):
        _create_kvstore(3, 1, big)


def test_batch_end_param_fields():
    p = mx.model.BatchEndParam(epoch=1, nbatch=2, eval_metric=None, locals={})
    assert (p.epoch, p.nbatch) == (1, 2) and p._fields == ("epoch", "nbatch", "eval_metric",
                                                           "locals")
