"""mx.kv local/device stores: MXNet's semantics (init 1, push 2+3 -> pull 5), lists of keys,
per-device values on cpu(0)/cpu(1), updaters and optimizers, str keys, 2-bit compression on
'device', optimizer state files, create() name parsing, and errors."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ShapeError

SHAPE = (2, 3)


def test_create_names():
    assert mx.kv.create().type == "local"
    assert mx.kv.create("Device").type == "device"
    assert mx.kv.create("local_allreduce_cpu").type == "local_allreduce_cpu"
    kv = mx.kv.create("local")
    assert (kv.rank, kv.num_workers) == (0, 1)
    assert mx.kvstore.create is mx.kv.create
    with pytest.raises(TypeError, match="name must be a string"):
        mx.kv.create(3)


def test_registry_store_wins():
    @mx.kv.KVStoreBase.register
    class MyTestStore(mx.kv.KVStore):
        @property
        def type(self):
            return "myteststore"

    assert isinstance(mx.kv.create("MyTestStore"), MyTestStore)
    with pytest.warns(UserWarning, match="overriding existing kvstore"):
        @mx.kv.KVStoreBase.register
        class MyTestStore(mx.kv.KVStore):  # noqa: F811
            pass


def test_init_push_sum_pull():
    kv = mx.kv.create("local")
    kv.init(3, mx.nd.ones(SHAPE))
    out = mx.nd.zeros(SHAPE)
    kv.pull(3, out=out)
    assert (out.asnumpy() == 1).all()
    kv.push(3, [mx.nd.ones(SHAPE) * 2, mx.nd.ones(SHAPE) * 3])
    kv.pull(3, out=out)
    assert (out.asnumpy() == 5).all()          # overwritten by the sum, not added to 1


@pytest.mark.parametrize("name", ["local", "device"])
def test_per_device_values_and_outputs(name):
    kv = mx.kv.create(name)
    devs = [mx.cpu(0), mx.cpu(1)]
    kv.init("w", mx.nd.zeros(SHAPE, ctx=devs[1]))
    kv.push("w", [mx.nd.ones(SHAPE, ctx=d) * (i + 1) for i, d in enumerate(devs)])
    outs = [mx.nd.zeros(SHAPE, ctx=d) for d in devs]
    kv.pull("w", out=outs)
    for o, d in zip(outs, devs):
        assert o.context == d and (o.asnumpy() == 3).all()
    assert kv._store["w"].context == (devs[1] if name == "device" else mx.cpu(0))


def test_lists_of_keys():
    kv = mx.kv.create()
    keys = [5, 7, 9]
    kv.init(keys, [mx.nd.ones(SHAPE)] * 3)
    kv.push(keys, [[mx.nd.ones(SHAPE)] * 4, mx.nd.ones(SHAPE) * 2, [mx.nd.ones(SHAPE)] * 2])
    outs = [[mx.nd.zeros(SHAPE), mx.nd.zeros(SHAPE)], mx.nd.zeros(SHAPE), [mx.nd.zeros(SHAPE)]]
    kv.pull(keys, out=outs)
    assert [o.asnumpy()[0, 0] for o in outs[0]] == [4, 4]
    assert outs[1].asnumpy()[0, 0] == 2 and outs[2][0].asnumpy()[0, 0] == 2


def test_updater_called_with_merged_and_stored():
    kv = mx.kv.create()
    calls = []

    def updater(key, grad, weight):
        calls.append((key, grad.asnumpy().copy(), weight.asnumpy().copy()))
        weight[:] = weight + grad * 2

    kv._set_updater(updater)
    kv.init("a", mx.nd.ones(SHAPE))
    kv.push("a", [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE, ctx=mx.cpu(1))])
    out = mx.nd.zeros(SHAPE)
    kv.pull("a", out=out)
    assert calls[0][0] == "a"
    assert (calls[0][1] == 2).all() and (calls[0][2] == 1).all()
    assert (out.asnumpy() == 5).all()
    kv.set_updater(lambda key, grad, weight: weight.__setitem__(slice(None), grad + 100))
    kv.push("a", mx.nd.ones(SHAPE))                  # the public name replaces the updater
    kv.pull("a", out=out)
    assert (out.asnumpy() == 101).all() and len(calls) == 1


def test_set_optimizer_sgd_matches_updater():
    kv = mx.kv.create()
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9))
    assert kv.is_capable("optimizer")
    kv.init(0, mx.nd.ones(SHAPE))
    ref_w = mx.nd.ones(SHAPE)
    ref = mx.optimizer.get_updater(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9))
    out = mx.nd.zeros(SHAPE)
    for step in range(3):
        g = mx.nd.array(np.full(SHAPE, step + 1.0))
        kv.push(0, [g, g.copyto(mx.cpu(1))])
        ref(0, g * 2, ref_w)
        kv.pull(0, out=out)
        np.testing.assert_allclose(out.asnumpy(), ref_w.asnumpy(), rtol=1e-6)


def test_pushpull_and_broadcast():
    kv = mx.kv.create()
    kv.init(1, mx.nd.ones((2,)))
    vals = [mx.nd.ones((2,)), mx.nd.ones((2,)) * 2]
    kv.pushpull(1, vals)
    assert [v.asnumpy().tolist() for v in vals] == [[3, 3], [3, 3]]
    out = mx.nd.zeros((2,))
    kv.pushpull(1, mx.nd.ones((2,)) * 7, out=out)
    assert out.asnumpy().tolist() == [7, 7]
    outs = [mx.nd.zeros((2,)), mx.nd.zeros((2,), ctx=mx.cpu(1))]
    kv.broadcast(9, mx.nd.ones((2,)) * 4, out=outs)
    assert [o.asnumpy().tolist() for o in outs] == [[4, 4], [4, 4]]


def test_row_sparse_pull_dense_fallback():
    kv = mx.kv.create()
    kv.init("emb", mx.nd.array(np.arange(12.0).reshape(4, 3)))
    out = mx.nd.zeros((4, 3))
    kv.row_sparse_pull("emb", out=out, row_ids=mx.nd.array([0, 2]))
    want = np.arange(12.0).reshape(4, 3)
    want[[1, 3]] = 0
    np.testing.assert_array_equal(out.asnumpy(), want)
    with pytest.raises(mx.MXNetError, match="needs out= and row_ids="):
        kv.row_sparse_pull("emb", out=out)


def test_pull_converts_dtype():
    kv = mx.kv.create()
    kv.init(20, mx.nd.ones((2,), dtype="float16"))
    out = mx.nd.zeros((2,))
    kv.pull(20, out=out)
    assert out.dtype == np.float32 and out.asnumpy().tolist() == [1, 1]


def test_device_gradient_compression_matches_mxnet():
    # expected values from MXNet 1.9.1: threshold 0.5, two devices pushing the same gradient
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init("w", mx.nd.zeros((4,)))
    grad = [0.3, 0.6, -0.7, 1.2]
    out = mx.nd.zeros((4,))
    kv.push("w", [mx.nd.array(grad), mx.nd.array(grad, ctx=mx.cpu(1))])
    kv.pull("w", out=out)
    assert out.asnumpy().tolist() == [0, 1, -1, 1]
    kv.push("w", [mx.nd.array(grad), mx.nd.array(grad, ctx=mx.cpu(1))])
    kv.pull("w", out=out)
    assert out.asnumpy().tolist() == [1, 1, -1, 1]       # residuals carried over


def test_compression_errors():
    with pytest.raises(mx.MXNetError, match="not supported for this type of kvstore"):
        mx.kv.create("local").set_gradient_compression({"type": "2bit", "threshold": 0.5})
    with pytest.raises(mx.MXNetError, match="unknown gradient compression type '1bit'"):
        mx.kv.create("device").set_gradient_compression({"type": "1bit"})


def test_optimizer_states_save_load(tmp_path):
    kv = mx.kv.create()
    kv.set_optimizer(mx.optimizer.Adam())
    kv.init([0, 1], [mx.nd.ones(SHAPE), mx.nd.ones((3,))])
    kv.push([0, 1], [mx.nd.ones(SHAPE), mx.nd.ones((3,))])
    fname = str(tmp_path / "kv.states")
    kv.save_optimizer_states(fname)
    kv2 = mx.kv.create()
    kv2.set_optimizer(mx.optimizer.Adam())
    kv2.load_optimizer_states(fname)
    for k in (0, 1):
        for a, b in zip(kv._updater.states[k], kv2._updater.states[k]):
            np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    kv.save_optimizer_states(fname, dump_optimizer=True)
    kv3 = mx.kv.create()
    kv3.set_optimizer(mx.optimizer.SGD())
    kv3.load_optimizer_states(fname)
    assert isinstance(kv3._updater.optimizer, mx.optimizer.Adam)


def test_optimizer_states_need_an_optimizer(tmp_path):
    kv = mx.kv.create()
    with pytest.raises(mx.MXNetError, match=r"no optimizer; call kv.set_optimizer"):
        kv.save_optimizer_states(str(tmp_path / "x"))
    kv._set_updater(lambda k, g, w: None)
    with pytest.raises(mx.MXNetError, match="plain function"):
        kv.load_optimizer_states(str(tmp_path / "x"))


def test_key_and_value_errors():
    kv = mx.kv.create()
    kv.init(3, mx.nd.ones((2,)))
    with pytest.raises(mx.MXNetError, match="duplicate init of key 3"):
        kv.init(3, mx.nd.ones((2,)))
    with pytest.raises(mx.MXNetError, match="duplicate init of key 4"):
        kv.init(4, [mx.nd.ones((2,)), mx.nd.ones((2,))])
    with pytest.raises(mx.MXNetError, match=r"key 'a' is str but this store uses int keys"):
        kv.init("a", mx.nd.ones((2,)))
    with pytest.raises(mx.MXNetError, match="key 8 has not been initialized"):
        kv.push(8, mx.nd.ones((2,)))
    with pytest.raises(mx.MXNetError, match="key 8 has not been initialized"):
        kv.pull(8, out=mx.nd.ones((2,)))
    with pytest.raises(ShapeError, match=r"value 0 of key 3 has shape \(3,\), the stored value "
                                         r"has \(2,\)"):
        kv.push(3, mx.nd.ones((3,)))
    with pytest.raises(ShapeError, match=r"out 0 of key 3 has shape \(3,\)"):
        kv.pull(3, out=mx.nd.ones((3,)))
    with pytest.raises(mx.MXNetError, match="needs out="):
        kv.pull(3)
    with pytest.raises(TypeError, match="must be NDArrays"):
        kv.push(3, np.ones(2))
    with pytest.raises(TypeError, match="keys must be int or str"):
        kv.push(3.5, mx.nd.ones((2,)))
    with pytest.raises(mx.MXNetError, match="2 keys need a list of 2 values"):
        kv.push([3, 4], mx.nd.ones((2,)))
    with pytest.raises(ValueError, match="Unknown capability: 'foo'"):
        kv.is_capable("foo")


def test_dist_names_go_to_the_distributed_store(monkeypatch):
    import hybridnet.kvstore.dist as dist
    seen = []
    monkeypatch.setattr(dist, "create_dist", lambda name: seen.append(name) or "dist-store")
    assert mx.kv.create("dist_sync") == "dist-store"
    assert mx.kv.create("DIST_async") == "dist-store"
    assert seen == ["dist_sync", "dist_async"]
