"""mx.optimizer: every rule against MXNet 1.9.1 (fixtures), the fast paths against the numpy
references, the base-class rules (lr/wd multipliers, schedules, counting), Updater states in
MXNet's pickle format and as plain arrays, the to_spec/from_spec wire form, and the fused ops."""
import json
import os
import pickle
import warnings

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, ShapeError
from hybridnet.ops.registry import get_op
from hybridnet.optimizer.optimizer import state_to_numpy

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
with open(os.path.join(FIXTURES, "optimizer.json")) as _f:
    META = json.load(_f)
ARRAYS = np.load(os.path.join(FIXTURES, "optimizer.npz"))
NAMES = {int(k): v for k, v in META["names"].items()}
CONFIGS = list(enumerate(META["configs"]))


def _config_id(item):
    k, c = item
    return f"{k}-{c['name']}-{c['dtype']}"


def make_optimizer(cfg):
    kw = dict(cfg["kwargs"])
    lr_mult, wd_mult = kw.pop("lr_mult", None), kw.pop("wd_mult", None)
    if "lr_scheduler" in kw:
        cls, params = kw["lr_scheduler"]
        kw["lr_scheduler"] = getattr(mx.lr_scheduler, cls)(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = mx.optimizer.create(cfg["name"], param_idx2name=NAMES, **kw)
    if lr_mult:
        opt.set_lr_mult(lr_mult)
    if wd_mult:
        opt.set_wd_mult(wd_mult)
    return opt


def flat(state):
    if state is None:
        return []
    if isinstance(state, (mx.nd.NDArray, np.ndarray)):
        return [np.asarray(state)]
    return [a for s in state for a in flat(s)]


def tol(dtype):
    return (2e-3, 2e-3) if dtype == "float16" else (1e-5, 5e-6)


@pytest.mark.parametrize("item", CONFIGS, ids=_config_id)
def test_matches_mxnet(item):
    """Several steps of each rule give MXNet's weights and final states."""
    k, cfg = item
    dtype = cfg["dtype"]
    opt = make_optimizer(cfg)
    updater = mx.optimizer.get_updater(opt)
    weights = {i: mx.nd.array(ARRAYS[f"c{k}_w{i}_init"], dtype=dtype) for i in NAMES}
    rtol, atol = tol(dtype)
    for step in range(META["steps"]):
        for i in NAMES:
            updater(i, mx.nd.array(ARRAYS[f"c{k}_g{i}_s{step}"], dtype=dtype), weights[i])
            np.testing.assert_allclose(weights[i].asnumpy(), ARRAYS[f"c{k}_w{i}_s{step}"],
                                       rtol=rtol, atol=atol, err_msg=f"step {step} index {i}")
    for i in NAMES:
        got = flat(updater.states[i])
        assert len(got) == cfg["num_states"][str(i)]
        for j, s in enumerate(got):
            np.testing.assert_allclose(s, ARRAYS[f"c{k}_st{i}_{j}"], rtol=rtol,
                                       atol=atol, err_msg=f"state {j} of index {i}")
    assert opt.num_update == cfg["num_update"]


@pytest.mark.parametrize("item", CONFIGS, ids=_config_id)
def test_fast_path_matches_reference(item):
    """The engine/fused-op path equals the readable numpy reference, step by step."""
    k, cfg = item
    dtype = cfg["dtype"]
    fast, ref = make_optimizer(cfg), make_optimizer(cfg)
    updater = mx.optimizer.get_updater(fast)
    rtol, atol = tol(dtype)
    for i in NAMES:
        w = mx.nd.array(ARRAYS[f"c{k}_w{i}_init"], dtype=dtype)
        w_ref = w.asnumpy()
        state = state_to_numpy(ref.create_state_multi_precision(i, w))
        for step in range(META["steps"]):
            g = ARRAYS[f"c{k}_g{i}_s{step}"]
            updater(i, mx.nd.array(g, dtype=dtype), w)
            w_ref, state = ref.reference_step(i, w_ref, g, state)
            np.testing.assert_allclose(w.asnumpy(), w_ref, rtol=rtol, atol=atol)
        for a, b in zip(flat(updater.states[i]), flat(state)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def test_sgld_noise_statistics():
    """SGLD = the deterministic reference step plus N(0, sqrt(lr)) noise from the device rng."""
    opt = mx.optimizer.create("sgld", learning_rate=0.04, wd=0.1)
    ref = mx.optimizer.create("sgld", learning_rate=0.04, wd=0.1)
    w0 = np.random.uniform(-1, 1, (200, 100)).astype(np.float32)
    g = np.random.normal(size=w0.shape).astype(np.float32)
    w = mx.nd.array(w0)
    opt.update(0, w, mx.nd.array(g), None)
    det, _ = ref.reference_step(0, w0, g, None)
    noise = w.asnumpy() - det
    assert abs(noise.mean()) < 0.005
    assert abs(noise.std() - 0.2) < 0.005


def test_sgld_seeded_reproducible():
    from hybridnet.ops import resource
    results = []
    for _ in range(2):
        resource.seed(7)
        w = mx.nd.zeros((5,))
        mx.optimizer.create("sgld").update(0, w, mx.nd.ones((5,)), None)
        results.append(w.asnumpy())
    np.testing.assert_array_equal(results[0], results[1])


# ---- base-class rules ------------------------------------------------------------------------
def test_registry_names_and_create_error():
    for name in ("sgd", "ccsgd", "nag", "adam", "adagrad", "adadelta", "rmsprop", "adamax",
                 "nadam", "ftrl", "ftml", "signum", "sgld", "dcasgd", "lamb", "lars", "lbsgd",
                 "test", "groupadagrad"):
        assert isinstance(mx.optimizer.create(name.upper()), mx.optimizer.Optimizer)
    with pytest.raises(ValueError, match=r"Cannot find optimizer 'nosuch'.*adam.*sgd"):
        mx.optimizer.create("nosuch")
    assert mx.optimizer.Optimizer.create_optimizer("sgd").__class__ is mx.optimizer.SGD


def test_register_custom_and_override_warning():
    @mx.optimizer.register
    class MyRule(mx.optimizer.Optimizer):
        def update(self, index, weight, grad, state):
            weight[:] = weight - grad

    assert isinstance(mx.optimizer.create("myrule"), MyRule)
    with pytest.warns(UserWarning, match="overriding existing optimizer"):
        @mx.optimizer.register
        class MyRule(mx.optimizer.Optimizer):  # noqa: F811
            pass
    with pytest.raises(TypeError, match="Optimizer subclass"):
        mx.optimizer.register(int)


def test_default_learning_rate_and_scheduler_override():
    assert mx.optimizer.SGD().learning_rate == 0.01
    assert mx.optimizer.Adam().learning_rate == 0.001
    sched = mx.lr_scheduler.FactorScheduler(step=10, base_lr=0.5)
    assert mx.optimizer.SGD(lr_scheduler=sched).learning_rate == 0.5
    with pytest.warns(UserWarning, match="overwritten"):
        opt = mx.optimizer.SGD(learning_rate=0.2, lr_scheduler=sched)
    assert sched.base_lr == 0.2 and opt.learning_rate == 0.2
    with pytest.raises(UserWarning, match="LRScheduler of the optimizer has already been"):
        opt.set_learning_rate(0.1)
    plain = mx.optimizer.SGD()
    plain.set_learning_rate(0.3)
    assert plain.learning_rate == 0.3
    with pytest.raises(DeprecationWarning, match="set_lr_mult"):
        plain.set_lr_scale({})


def test_wd_mult_defaults_by_name():
    opt = mx.optimizer.SGD(wd=0.1, param_idx2name={0: "fc_weight", 1: "fc_bias",
                                                   2: "bn_gamma", 3: "bn_beta"})
    assert [opt._get_wd(i) for i in range(4)] == [0.1, 0.0, 0.1, 0.0]
    assert opt._get_wd(9) == 0.1                     # unknown index: plain wd
    lars = mx.optimizer.LARS(wd=0.1, param_idx2name={0: "bn_gamma", 1: "fc_weight"})
    assert [lars._get_wd(i) for i in range(2)] == [0.0, 0.1]
    opt.set_wd_mult({"fc_bias": 0.5, 2: 3.0})
    assert opt._get_wd(1) == 0.05 and opt._get_wd(2) == pytest.approx(0.3)
    assert opt._get_wd(3) == 0.0                     # the name-based zeros are rebuilt


def test_symbol_attr_multipliers():
    class FakeSym:   # the two methods the optimizer reads from a Symbol
        def attr_dict(self):
            return {"fc_weight": {"__lr_mult__": "2.0", "__wd_mult__": "0.5"}, "data": {}}

        def list_arguments(self):
            return ["data", "fc_weight", "fc_bias"]

    opt = mx.optimizer.SGD(learning_rate=0.1, wd=0.2, sym=FakeSym(),
                           param_idx2name={0: "fc_weight", 1: "fc_bias"})
    assert opt._get_lr(0) == pytest.approx(0.2) and opt._get_wd(0) == pytest.approx(0.1)
    assert opt._get_lr(1) == pytest.approx(0.1) and opt._get_wd(1) == 0.0
    opt.set_lr_mult({"fc_weight": 3.0})          # explicit multipliers override attributes
    assert opt._get_lr(0) == pytest.approx(0.3)


def test_param_dict_multipliers():
    class P:
        lr_mult, wd_mult = 0.5, 4.0

    opt = mx.optimizer.SGD(learning_rate=0.1, wd=0.01, param_dict={0: P()})
    assert opt._get_lr(0) == pytest.approx(0.05) and opt._get_wd(0) == pytest.approx(0.04)
    assert "param_dict" not in opt.__getstate__()


def test_update_counts_per_device_and_begin_num_update():
    opt = mx.optimizer.Adam(begin_num_update=5)
    updater = mx.optimizer.get_updater(opt)
    w0, w1 = mx.nd.ones((2,), ctx=mx.cpu(0)), mx.nd.ones((2,), ctx=mx.cpu(1))
    updater(0, mx.nd.ones((2,), ctx=mx.cpu(0)), w0)
    updater(1, mx.nd.ones((2,), ctx=mx.cpu(1)), w1)
    assert opt._all_index_update_counts[0] == {0: 6}
    assert opt._all_index_update_counts[1] == {1: 6}
    assert opt.num_update == 6
    np.testing.assert_allclose(w0.asnumpy(), w1.asnumpy())
    assert updater.states[0][0].context == mx.cpu(0)
    assert updater.states[1][0].context == mx.cpu(1)


def test_updater_lists_and_bytes_index():
    updater = mx.optimizer.get_updater(mx.optimizer.SGD(learning_rate=1.0))
    ws = [mx.nd.ones((2,)), mx.nd.ones((3,))]
    updater([0, 1], [mx.nd.ones((2,)), mx.nd.ones((3,)) * 2], ws)
    np.testing.assert_allclose(ws[0].asnumpy(), 0.0)
    np.testing.assert_allclose(ws[1].asnumpy(), -1.0)
    updater(b"w", mx.nd.ones((2,)), ws[0])
    assert "w" in updater.states


def test_fp16_without_multi_precision_warns():
    with pytest.warns(UserWarning, match="multi_precision=True"):
        mx.optimizer.Adam().create_state_multi_precision(0, mx.nd.ones((2,), dtype="float16"))


# ---- states: MXNet's pickle format and plain arrays -------------------------------------------
def _trained_updater(name="adam", **kw):
    updater = mx.optimizer.get_updater(mx.optimizer.create(name, **kw))
    w = {0: mx.nd.array(np.arange(4.0)), "b": mx.nd.array(np.ones((2, 2)))}
    for _ in range(2):
        for k, arr in w.items():
            updater(k, mx.nd.array(np.full(arr.shape, 0.5)), arr)
    return updater, w


def test_states_pickle_round_trip():
    updater, _ = _trained_updater("rmsprop", centered=True)
    blob = updater.get_states()
    other = mx.optimizer.get_updater(mx.optimizer.create("rmsprop", centered=True))
    other.set_states(blob)
    assert set(other.states) == {0, "b"} and isinstance(other.states[0], tuple)
    for k in other.states:
        for a, b in zip(flat(updater.states[k]), flat(other.states[k])):
            np.testing.assert_array_equal(a, b)
    assert other.states_synced == {0: False, "b": False}


def test_states_pickle_names_mxnet_ndarray_class():
    updater, _ = _trained_updater("sgd", momentum=0.9)
    blob = updater.get_states()
    assert b"mxnet.ndarray.ndarray" in blob and b"hybridnet" not in blob


def test_states_dump_optimizer():
    updater, _ = _trained_updater("sgd", momentum=0.9, learning_rate=0.3)
    other = mx.optimizer.get_updater(mx.optimizer.SGD())
    other.set_states(updater.get_states(dump_optimizer=True))
    assert isinstance(other.optimizer, mx.optimizer.SGD)
    assert other.optimizer.lr == 0.3 and other.optimizer.momentum == 0.9


def test_loads_mxnet_states_file():
    """A .states blob pickled by MXNet 1.9.1 (config 1: SGD momentum) loads here."""
    with open(os.path.join(FIXTURES, "optimizer_sgd_states.bin"), "rb") as f:
        blob = f.read()
    updater = mx.optimizer.get_updater(mx.optimizer.SGD(momentum=0.9))
    updater.set_states(blob)
    for i in NAMES:
        np.testing.assert_array_equal(updater.states[i].asnumpy(), ARRAYS[f"c1_st{i}_0"])


def test_set_states_rejects_garbage():
    updater = mx.optimizer.get_updater(mx.optimizer.SGD())
    with pytest.raises(mx.MXNetError, match="cannot read optimizer states"):
        updater.set_states(b"not a pickle")
    with pytest.raises(mx.MXNetError, match="must unpickle to a dict"):
        updater.set_states(pickle.dumps([1, 2]))


def test_loaded_states_move_to_weight_device():
    updater, _ = _trained_updater("sgd", momentum=0.9)
    other = mx.optimizer.get_updater(mx.optimizer.SGD(momentum=0.9))
    other.set_states(updater.get_states())
    w = mx.nd.ones((4,), ctx=mx.cpu(1))
    other(0, mx.nd.ones((4,), ctx=mx.cpu(1)), w)
    assert other.states[0].context == mx.cpu(1) and other.states_synced[0]


def test_state_arrays_round_trip_is_json_and_numpy():
    updater, weights = _trained_updater("adam", wd=0.1)
    arrays, meta = updater.state_arrays()
    assert all(isinstance(a, np.ndarray) for a in arrays) and len(arrays) == 4
    meta = json.loads(json.dumps(meta))
    fresh = mx.optimizer.get_updater(mx.optimizer.create("adam", wd=0.1))
    fresh.load_state_arrays(arrays, meta)
    assert fresh.optimizer._index_update_count == {0: 2, "b": 2}
    # both continue identically (Adam's bias correction depends on the restored counts)
    w_a, w_b = weights[0].copy(), weights[0].copy()
    updater(0, mx.nd.ones((4,)), w_a)
    fresh(0, mx.nd.ones((4,)), w_b)
    np.testing.assert_array_equal(w_a.asnumpy(), w_b.asnumpy())


def test_state_arrays_keeps_none_and_nesting():
    updater = mx.optimizer.get_updater(mx.optimizer.SGD(multi_precision=True))
    updater(0, mx.nd.ones((2,), dtype="float16"), mx.nd.ones((2,), dtype="float16"))
    arrays, meta = updater.state_arrays()
    assert meta["states"] == [[0, {"tuple": [None, {"a": 0}]}]]
    fresh = mx.optimizer.get_updater(mx.optimizer.SGD(multi_precision=True))
    fresh.load_state_arrays(arrays, meta)
    assert fresh.states[0][0] is None and fresh.states[0][1].dtype == np.float32
    with pytest.raises(mx.MXNetError, match="refers to array 3"):
        fresh.load_state_arrays([], {"states": [[0, {"a": 3}]]})


# ---- the wire spec --------------------------------------------------------------------------
def test_spec_round_trip_json():
    sched = mx.lr_scheduler.FactorScheduler(step=3, factor=0.5, base_lr=0.4)
    opt = mx.optimizer.create("sgd", momentum=0.9, wd=0.01, rescale_grad=0.25,
                              clip_gradient=1.0, lr_scheduler=sched,
                              param_idx2name={0: "fc_weight", 1: "fc_bias"})
    opt.set_lr_mult({"fc_weight": 0.5})
    opt.rescale_grad = 0.125           # changed after construction: the spec has the new value
    spec = json.loads(json.dumps(opt.to_spec()))
    assert spec["name"] == "sgd" and spec["class"] == "hybridnet.optimizer.sgd:SGD"
    assert spec["lr_scheduler"]["class"] == "hybridnet.lr_scheduler:FactorScheduler"
    back = mx.optimizer.from_spec(spec)
    assert isinstance(back, mx.optimizer.SGD)
    assert (back.momentum, back.wd, back.rescale_grad, back.clip_gradient) == \
        (0.9, 0.01, 0.125, 1.0)
    assert back.idx2name == {0: "fc_weight", 1: "fc_bias"}
    assert back._get_lr(0) == pytest.approx(0.2) and back._get_wd(1) == 0.0
    # identical updates
    w1, w2 = mx.nd.ones((3,)), mx.nd.ones((3,))
    u1, u2 = mx.optimizer.get_updater(opt), mx.optimizer.get_updater(back)
    for _ in range(4):
        u1(0, mx.nd.ones((3,)), w1)
        u2(0, mx.nd.ones((3,)), w2)
    np.testing.assert_array_equal(w1.asnumpy(), w2.asnumpy())


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adagrad", "ftrl", "lamb", "signum",
                                  "nadam", "lars", "dcasgd", "ftml", "adadelta", "lbsgd",
                                  "groupadagrad"])
def test_spec_round_trip_every_rule(name):
    opt = mx.optimizer.create(name, wd=0.05)
    back = mx.optimizer.from_spec(json.loads(json.dumps(opt.to_spec())))
    assert type(back) is type(opt)
    assert {k: v for k, v in vars(back).items() if k != "_ctor_args"} == \
        {k: v for k, v in vars(opt).items() if k != "_ctor_args"}


class Custom(mx.optimizer.SGD):      # importable by path, not registered
    pass


def test_spec_import_path_and_errors():
    spec = Custom(momentum=0.5).to_spec()
    assert spec["name"] is None and spec["class"] == f"{__name__}:Custom"
    assert isinstance(mx.optimizer.from_spec(spec), Custom)
    with pytest.raises(ValueError, match="importing its class is not allowed"):
        mx.optimizer.from_spec(spec, allow_import=False)
    bad = dict(spec, **{"class": "no_such_module_xyz:Thing"})
    with pytest.raises(ValueError, match="cannot be imported.*registered optimizers: "):
        mx.optimizer.from_spec(bad)
    with pytest.raises(ValueError, match="made by Optimizer.to_spec"):
        mx.optimizer.from_spec({"name": "sgd"})
    with pytest.raises(ValueError, match="not plain JSON"):
        mx.optimizer.SGD(momentum=object()).to_spec()


# ---- the fused operators -------------------------------------------------------------------
def test_sgd_update_without_out_leaves_weight():
    w, g = mx.nd.array([1.0, 2.0]), mx.nd.array([0.5, -0.5])
    new = mx.nd.sgd_update(w, g, lr=0.1, wd=0.1)
    np.testing.assert_allclose(new.asnumpy(), [1.0 * 0.99 - 0.05, 2.0 * 0.99 + 0.05], rtol=1e-6)
    np.testing.assert_array_equal(w.asnumpy(), [1.0, 2.0])


def test_fused_op_structure_and_inference():
    op = get_op("mp_sgd_mom_update")
    p = op.parse_params({"lr": 0.1})
    assert op.list_inputs(p) == ["weight", "grad", "mom", "weight32"]
    ins, outs, aux = op.infer_shape(p, [None, (2, 3)])
    assert ins == [(2, 3), (2, 3)] and outs == [(2, 3)] and aux == [(2, 3), (2, 3)]
    ins, outs, aux = op.infer_shape(p, [None, None])
    assert outs == [None]
    _, out_t, aux_t = op.infer_type(p, [np.float16, None])
    assert out_t == [np.float16] and aux_t == [np.float32, np.float32]
    with pytest.raises(ShapeError, match=r"mp_sgd_mom_update: input 1 has shape \(3,\)"):
        op.infer_shape(p, [(2,), (3,)])
    with pytest.raises(DTypeError, match="grad has dtype float64, expected float16"):
        op.infer_type(p, [np.float16, np.float64])
    with pytest.raises(mx.MXNetError, match="required parameter 'lr'"):
        mx.nd.sgd_update(mx.nd.ones((2,)), mx.nd.ones((2,)))


def test_lamb_phase_ops():
    w = np.array([3.0, 4.0], np.float32)
    g = np.array([1.0, -1.0], np.float32)
    mean, var = mx.nd.zeros((2,)), mx.nd.zeros((2,))
    d = mx.nd.lamb_update_phase1(mx.nd.array(w), mx.nd.array(g), mean, var, t=1, wd=0.0)
    np.testing.assert_allclose(d.asnumpy(), g / (1 + 1e-6), rtol=1e-5)
    np.testing.assert_allclose(mean.asnumpy(), 0.1 * g, rtol=1e-6)
    r1, r2 = mx.nd.array([5.0]), mx.nd.array([np.sqrt(2.0)])
    out = mx.nd.lamb_update_phase2(mx.nd.array(w), d, r1, r2, lr=0.1, upper_bound=2.0)
    np.testing.assert_allclose(out.asnumpy(), w - 0.1 * 2.0 / np.sqrt(2.0) * d.asnumpy(),
                               rtol=1e-5)


FUSED_CASES = [
    ("sgd_update", 0, {"lr": 0.1, "wd": 0.01}),
    ("sgd_update", 0, {"lr": 0.1, "wd": 0.01, "clip_gradient": 0.3, "rescale_grad": 0.5}),
    ("sgd_mom_update", 1, {"lr": 0.1, "wd": 0.01, "momentum": 0.9, "clip_gradient": 0.3}),
    ("nag_mom_update", 1, {"lr": 0.1, "wd": 0.01, "momentum": 0.9, "clip_gradient": 0.3}),
    ("adam_update", 2, {"lr": 0.01, "wd": 0.01, "clip_gradient": 0.3, "rescale_grad": 0.7}),
    ("adam_update", 2, {"lr": 0.01}),
    ("rmsprop_update", 1, {"lr": 0.01, "wd": 0.01, "clip_weights": 0.5, "clip_gradient": 0.3}),
    ("rmspropalex_update", 3, {"lr": 0.01, "wd": 0.01, "clip_weights": 0.5}),
]


@pytest.mark.parametrize("name, n_aux, params", FUSED_CASES)
def test_numba_kernels_match_xp_fallback(name, n_aux, params):
    """The single-pass CPU loops (contiguous float32) equal the xp code path (taken here for
    Fortran-ordered arrays) over several steps, states included."""
    from hybridnet.ops.resource import op_context
    op = get_op(name)
    p = op.parse_params(params)
    rng = np.random.RandomState(1)
    w = rng.uniform(-1, 1, (6, 5)).astype(np.float32)
    aux = [np.abs(rng.uniform(0, 0.5, (6, 5))).astype(np.float32) for _ in range(n_aux)]
    if name == "rmspropalex_update":
        aux[1] *= 0.1                                  # keep n - gbar^2 positive
    fast = [w.copy(), [a.copy() for a in aux]]
    slow = [np.asfortranarray(w), [np.asfortranarray(a) for a in aux]]
    octx = op_context(mx.cpu())
    for _ in range(3):
        g = rng.normal(size=w.shape).astype(np.float32)
        op.forward(octx, p, [fast[0], g], fast[1], [fast[0]], True)
        op.forward(octx, p, [slow[0], np.asfortranarray(g)], slow[1], [slow[0]], True)
        np.testing.assert_allclose(fast[0], slow[0], rtol=2e-6, atol=2e-7)
        for a, b in zip(fast[1], slow[1]):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("name, kw", [("sgd", {"momentum": 0.9, "wd": 0.1}),
                                      ("adagrad", {"wd": 0.1, "clip_gradient": 0.5}),
                                      ("adam", {"wd": 0.1}), ("rmsprop", {"centered": True})])
def test_float16_weights_take_the_xp_path(name, kw):
    """fp16 weights without multi_precision run the xp kernels (numba has no float16)."""
    fast, ref = mx.optimizer.create(name, **kw), mx.optimizer.create(name, **kw)
    updater = mx.optimizer.get_updater(fast)
    w0 = np.random.RandomState(2).uniform(-1, 1, (4, 3)).astype(np.float16)
    w = mx.nd.array(w0, dtype="float16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = state_to_numpy(ref.create_state_multi_precision(0, w))
    w_ref = w0
    for step in range(3):
        g = np.random.RandomState(step).normal(size=w0.shape).astype(np.float16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            updater(0, mx.nd.array(g, dtype="float16"), w)
        w_ref, state = ref.reference_step(0, w_ref, g, state)
    np.testing.assert_allclose(w.asnumpy().astype(np.float32), w_ref.astype(np.float32),
                               rtol=5e-3, atol=5e-3)


def test_fused_update_checks_shapes_and_devices():
    from hybridnet.optimizer.optimizer import fused_update
    with pytest.raises(ShapeError, match=r"sgd_mom_update: mom has shape \(3,\), the weight "
                                         r"has \(2,\)"):
        fused_update("sgd_mom_update", mx.nd.ones((2,)), mx.nd.ones((2,)), mx.nd.ones((3,)),
                     lr=0.1)
    with pytest.raises(mx.MXNetError, match=r"grad is on cpu\(1\), the weight on cpu\(0\)"):
        fused_update("sgd_update", mx.nd.ones((2,)), mx.nd.ones((2,), ctx=mx.cpu(1)), lr=0.1)


def test_group_adagrad_matches_mxnet():
    assert mx.optimizer.contrib.GroupAdaGrad is mx.optimizer.GroupAdaGrad   # MXNet's home
    ref = np.load(os.path.join(FIXTURES, "optimizer_groupadagrad.npz"))
    kw = {"learning_rate": 0.1, "clip_gradient": 0.8, "rescale_grad": 0.5}
    opt = mx.optimizer.create("groupadagrad", **kw)
    ref_opt = mx.optimizer.create("groupadagrad", **kw)
    updater = mx.optimizer.get_updater(opt)
    w = mx.nd.array(ref["w_init"])
    w_ref, state = ref["w_init"], np.zeros((5, 1), np.float32)
    for step in range(4):
        updater(0, mx.nd.array(ref[f"g_s{step}"]), w)
        w_ref, state = ref_opt.reference_step(0, w_ref, ref[f"g_s{step}"], state)
        np.testing.assert_allclose(w.asnumpy(), ref[f"w_s{step}"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(w_ref, ref[f"w_s{step}"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(updater.states[0].asnumpy(), ref["state"], rtol=1e-5)
    with pytest.raises(ValueError, match="needs 2-D weights"):
        opt.create_state(1, mx.nd.ones((3,)))
    with pytest.raises(ValueError, match="does not support weight decay"):
        mx.optimizer.create("groupadagrad", wd=0.1).update(0, w, w, updater.states[0])


def test_loads_mxnet_states_with_optimizer():
    """MXNet's dump_optimizer=True blob (config 6: SGD momentum + FactorScheduler) becomes our
    SGD and FactorScheduler, which continue the run exactly like a fresh hybridnet one."""
    with open(os.path.join(FIXTURES, "optimizer_sgd_states_dump.bin"), "rb") as f:
        blob = f.read()
    updater = mx.optimizer.get_updater(mx.optimizer.Adam())
    updater.set_states(blob)
    opt = updater.optimizer
    assert type(opt) is mx.optimizer.SGD and opt.momentum == 0.9
    assert type(opt.lr_scheduler) is mx.lr_scheduler.FactorScheduler
    assert opt.num_update == META["steps"]
    for i in NAMES:
        np.testing.assert_array_equal(updater.states[i].asnumpy(), ARRAYS[f"c6_st{i}_0"])
    # one more step equals continuing our own run of the same configuration
    ours = mx.optimizer.get_updater(make_optimizer(META["configs"][6]))
    w_ours = mx.nd.array(ARRAYS["c6_w0_init"])
    for step in range(META["steps"]):
        ours(0, mx.nd.array(ARRAYS[f"c6_g0_s{step}"]), w_ours)
        ours(1, mx.nd.array(ARRAYS[f"c6_g1_s{step}"]), mx.nd.array(ARRAYS["c6_w1_init"]))
    w_loaded = mx.nd.array(ARRAYS[f"c6_w0_s{META['steps'] - 1}"])
    g = mx.nd.ones(w_ours.shape)
    ours(0, g, w_ours)
    updater(0, g, w_loaded)
    np.testing.assert_allclose(w_loaded.asnumpy(), w_ours.asnumpy(), rtol=1e-5, atol=1e-6)
    assert "learning_rate" in opt.to_spec()["params"]


def test_numba_kernels_keep_nan_and_zero_division_like_numpy():
    """A NaN gradient stays NaN (no silent clipping), and a zero denominator gives inf/nan
    instead of raising inside an engine task, as the numpy path and MXNet do."""
    from hybridnet.ops.kernels import optimizer as kernels
    w = np.ones(4, np.float32)
    g = np.array([np.nan, 1, 1, 1], np.float32)
    kernels.sgd(w, g, w, 0.1, 0.0, 1.0, -1.0)
    assert np.isnan(w[0]) and w[1] == np.float32(0.9)
    w, n = np.ones(2, np.float32), np.zeros(2, np.float32)
    kernels.rmsprop(w, np.zeros(2, np.float32), n, w, 0.1, 0.9, 0.0, 0.0, 1.0, -1.0, -1.0)
    assert np.isnan(w).all()                     # 0 / sqrt(0): nan, as numpy gives
