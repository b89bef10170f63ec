"""mx.init: deterministic initializers and name dispatch against MXNet 1.9.1 fixtures, random
ones by their distributions and seeding, dumps/create, Load, Mixed, FusedRNN, errors."""
import json
import logging
import os

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.initializer import fused_rnn_layout

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ARRAYS = np.load(os.path.join(FIXTURES, "initializer.npz"))
with open(os.path.join(FIXTURES, "initializer.json")) as _f:
    DUMPS = json.load(_f)


def run(init, name, shape, attrs=None):
    arr = mx.nd.full(shape, -7.0)
    init(mx.init.InitDesc(name, attrs or {}), arr)
    return arr.asnumpy()


DETERMINISTIC = [
    ("bilinear_2345", lambda: run(mx.init.Bilinear(), "up_weight", (2, 3, 4, 5))),
    ("bilinear_1133", lambda: run(mx.init.Bilinear(), "up_weight", (1, 1, 3, 3))),
    ("bilinear_1166", lambda: run(mx.init.Bilinear(), "up_weight", (1, 1, 6, 6))),
    ("lstmbias", lambda: run(mx.init.LSTMBias(forget_bias=2.5), "lstm_bias_x", (16,),
                             {"__init__": mx.init.LSTMBias(forget_bias=2.5).dumps()})),
    ("constant", lambda: run(mx.init.Constant(0.3), "fc_weight", (2, 3))),
    ("constant_bias", lambda: run(mx.init.Constant(0.3), "fc_bias", (3,))),
    ("one_gamma", lambda: run(mx.init.Zero(), "bn_gamma", (3,))),
    ("zero_beta", lambda: run(mx.init.One(), "bn_beta", (3,))),
    ("attr_init", lambda: run(mx.init.Zero(), "x_weight", (2, 2), {"__init__": '["one", {}]'})),
    ("min", lambda: run(mx.init.One(), "q_min", (2,))),
    ("max", lambda: run(mx.init.Zero(), "q_max", (2,))),
    ("fused_lstm", lambda: run(mx.init.FusedRNN(mx.init.Constant(0.5), num_hidden=3,
                                                num_layers=2, mode="lstm", bidirectional=True,
                                                forget_bias=1.5),
                               "rnn_weight", (ARRAYS["fused_lstm"].size,))),
    ("fused_gru_global", lambda: run(mx.init.One(), "rnn_parameters",
                                     (ARRAYS["fused_gru_global"].size,),
                                     {"__init__": mx.init.FusedRNN(None, 2, 1, "gru").dumps()})),
]


@pytest.mark.parametrize("key, make", DETERMINISTIC, ids=[k for k, _ in DETERMINISTIC])
def test_matches_mxnet(key, make):
    np.testing.assert_allclose(make(), ARRAYS[key], rtol=1e-6)


@pytest.mark.parametrize("key, name", [("legacy_upsampling", "upsampling0_weight"),
                                       ("legacy_moving_var", "bn_moving_var"),
                                       ("legacy_moving_mean", "bn_moving_mean"),
                                       ("legacy_stn_bias", "stn_loc_bias")])
def test_legacy_string_names_match_mxnet(key, name):
    arr = mx.nd.full(ARRAYS[key].shape, -7.0)
    with pytest.warns(DeprecationWarning, match="InitDesc"):
        mx.init.Uniform()(name, arr)
    np.testing.assert_allclose(arr.asnumpy(), ARRAYS[key], rtol=1e-6)


def test_aux_states_by_name():
    assert (run(mx.init.Xavier(), "bn0_moving_mean", (3,)) == 0).all()
    assert (run(mx.init.Xavier(), "bn0_moving_var", (3,)) == 1).all()


MAKERS = {
    "xavier": lambda: mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2),
    "msraprelu": lambda: mx.init.MSRAPrelu(slope=0.1),
    "uniform": lambda: mx.init.Uniform(0.2),
    "normal": lambda: mx.init.Normal(),
    "constant": lambda: mx.init.Constant(2.0),
    "constant_array": lambda: mx.init.Constant(np.array([1.0, 2.0])),
    "orthogonal": lambda: mx.init.Orthogonal(),
    "zero": lambda: mx.init.Zero(),
    "lstmbias": lambda: mx.init.LSTMBias(),
    "fusedrnn": lambda: mx.init.FusedRNN(mx.init.Xavier(), 4, 2, "gru", True),
}


@pytest.mark.parametrize("key", sorted(MAKERS))
def test_dumps_matches_mxnet_and_round_trips(key):
    init = MAKERS[key]()
    assert init.dumps() == DUMPS[key]
    back = mx.init.create(init.dumps())
    assert type(back) is type(init)
    assert back.dumps() == init.dumps()


def test_create_forms_and_errors():
    assert isinstance(mx.init.create("xavier", magnitude=2), mx.init.Xavier)
    assert isinstance(mx.init.create("zeros"), mx.init.Zero)
    assert isinstance(mx.init.create("ONES"), mx.init.One)
    x = mx.init.Normal()
    assert mx.init.create(x) is x
    with pytest.raises(ValueError, match=r"Cannot find initializer 'nope'.*xavier"):
        mx.init.create("nope")
    with pytest.raises(ValueError, match="cannot parse initializer"):
        mx.init.create("[broken")
    with pytest.raises(TypeError, match="expects an Initializer, a name or a JSON string"):
        mx.init.create(3)


def test_unknown_name_error():
    with pytest.raises(ValueError, match=r"Unknown initialization pattern for data.*init="):
        run(mx.init.Xavier(), "data", (2, 2))


@pytest.mark.parametrize("make, match", [
    (lambda: mx.init.Xavier(rnd_type="cauchy"), "rnd_type must be"),
    (lambda: mx.init.Xavier(factor_type="mean"), "factor_type must be"),
    (lambda: mx.init.Orthogonal(rand_type="x"), "rand_type must be"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_xavier_rejects_vectors():
    with pytest.raises(ValueError, match=r"cannot be applied to vector fc_weight.*\(5,\)"):
        run(mx.init.Xavier(), "fc_weight", (5,))


@pytest.mark.parametrize("factor_type, factor", [("avg", (64 * 9 + 32 * 9) / 2),
                                                 ("in", 32 * 9), ("out", 64 * 9)])
def test_xavier_uniform_bounds(factor_type, factor):
    w = run(mx.init.Xavier(factor_type=factor_type, magnitude=3), "c_weight", (64, 32, 3, 3))
    bound = np.sqrt(3 / factor)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.98 * bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.03)


def test_gaussian_initializers_std():
    w = run(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2), "w_weight",
            (200, 100))
    assert w.std() == pytest.approx(np.sqrt(2 / 100), rel=0.03)
    w = run(mx.init.MSRAPrelu(factor_type="in", slope=0.0), "w_weight", (200, 100))
    assert w.std() == pytest.approx(np.sqrt(2 / 100), rel=0.03)
    w = run(mx.init.Normal(0.5), "w_weight", (200, 100))
    assert w.std() == pytest.approx(0.5, rel=0.03) and abs(w.mean()) < 0.02
    w = run(mx.init.Uniform(0.3), "w_weight", (200, 100))
    assert np.abs(w).max() <= 0.3 and w.std() == pytest.approx(0.3 / np.sqrt(3), rel=0.03)


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (3, 2, 2)])
def test_orthogonal(shape):
    w = run(mx.init.Orthogonal(scale=2.0, rand_type="normal"), "o_weight", shape)
    m = w.reshape(shape[0], -1) / 2.0
    small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(small, np.eye(small.shape[0]), atol=1e-5)


def test_same_seed_same_values():
    draws = []
    for _ in range(2):
        mx.random.seed(123)
        draws.append(run(mx.init.Xavier(), "fc_weight", (5, 7)))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], run(mx.init.Xavier(), "fc_weight", (5, 7)))


def test_mixed():
    init = mx.init.Mixed(["bias$", ".*"], [mx.init.Constant(3.0), mx.init.One()])
    b, w = mx.nd.zeros((2,)), mx.nd.zeros((2, 2))
    init(mx.init.InitDesc("fc_bias"), b)
    init(mx.init.InitDesc("fc_weight"), w)
    assert (b.asnumpy() == 0).all()           # Constant's rule for a *bias* name is 0
    assert (w.asnumpy() == 1).all()
    only = mx.init.Mixed(["^fc"], [mx.init.One()])
    with pytest.raises(ValueError, match=r"conv_weight did not match any pattern \(\^fc\)"):
        only(mx.init.InitDesc("conv_weight"), w)
    with pytest.raises(ValueError, match="2 patterns but 1 initializers"):
        mx.init.Mixed(["a", "b"], [mx.init.One()])


def test_load_from_dict_and_file(tmp_path):
    saved = {"arg:fc_weight": mx.nd.array(np.arange(6.0).reshape(2, 3)),
             "aux:bn_moving_var": mx.nd.array([4.0, 5.0])}
    path = str(tmp_path / "p.params")
    mx.nd.save(path, saved)
    for source in (saved, path):
        init = mx.init.Load(source, default_init=mx.init.One())
        w, v, b = mx.nd.zeros((2, 3)), mx.nd.zeros((2,)), mx.nd.zeros((3,))
        init("fc_weight", w)
        init("bn_moving_var", v)
        init(mx.init.InitDesc("fc_bias"), b)
        np.testing.assert_array_equal(w.asnumpy(), np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(v.asnumpy(), [4.0, 5.0])
        np.testing.assert_array_equal(b.asnumpy(), 0.0)
    strict = mx.init.Load(saved)
    with pytest.raises(ValueError, match=r"Cannot initialize other: not found.*bn_moving_var"):
        strict("other", mx.nd.zeros((1,)))
    with pytest.raises(ValueError, match=r"shape mismatch, target \(3, 2\) vs loaded \(2, 3\)"):
        strict("fc_weight", mx.nd.zeros((3, 2)))
    with pytest.raises(TypeError, match="dict of name -> NDArray"):
        mx.init.Load([1, 2])


def test_initdesc_carries_attrs_and_global_init():
    desc = mx.init.InitDesc("fc_weight", {"__lr_mult__": "2"})
    assert desc == "fc_weight" and desc.attrs["__lr_mult__"] == "2" and desc.global_init is None
    init = mx.init.One()
    init(desc, mx.nd.zeros((2, 2)))
    assert desc.global_init is init


def test_operators_give_their_input_variables_mxnets_init_hints():
    # MXNet's FSetInputVarAttrOnCompose: BatchNorm's moving statistics and PReLU's slope get an
    # __init__ attribute, on auto-created variables and on the user's ones that have none
    x = mx.sym.var("x")
    net = mx.sym.BatchNorm(x, moving_mean=mx.sym.var("mm"), gamma=mx.sym.var("g"), name="bn")
    net = mx.sym.LeakyReLU(net, gamma=mx.sym.var("pg"), act_type="prelu", name="pr")
    net = mx.sym.LeakyReLU(net, gamma=mx.sym.var("pg2", init=mx.init.One()), act_type="prelu",
                           name="pr2")
    net = mx.sym.LeakyReLU(net, act_type="prelu", name="pr3")
    hints = {k: v.get("__init__") for k, v in net.attr_dict().items()}
    assert hints == {"mm": '["zero", {}]', "bn_moving_var": '["one", {}]',
                     "pg": '["Constant", {"value": 0.25}]', "pr": None, "pg2": '["one", {}]',
                     "pr2": None, "pr3_gamma": '["Constant", {"value": 0.25}]', "pr3": None}
    attrs = net.attr_dict()
    slope = mx.nd.zeros((3,))
    mx.init.Xavier()(mx.init.InitDesc("pr3_gamma", attrs["pr3_gamma"]), slope)
    assert (slope.asnumpy() == 0.25).all()        # not the gamma rule's 1.0


def test_fused_rnn_layout_and_errors():
    pieces = fused_rnn_layout(4 * 3 * (5 + 3 + 2), 3, 1, "lstm", False)
    assert [p[0] for p in pieces[:5]] == ["l0_i2h_i_weight", "l0_i2h_f_weight",
                                         "l0_i2h_c_weight", "l0_i2h_o_weight",
                                         "l0_h2h_i_weight"]
    assert pieces[0][2] == (3, 5) and pieces[-1] == ("l0_h2h_o_bias", 117, (3,))
    with pytest.raises(ValueError, match="do not fit a lstm RNN"):
        fused_rnn_layout(100, 3, 1, "lstm", False)
    with pytest.raises(ValueError, match="mode must be one of"):
        fused_rnn_layout(100, 3, 1, "transformer", False)


def test_register_alias_equality_and_verbosity(caplog):
    @mx.init.register
    @mx.init.alias("myinit_alias")
    class MyInit(mx.init.Initializer):
        def __init__(self, v=1.0):
            super().__init__(v=v)
            self.v = v

        def _init_weight(self, _, arr):
            arr[:] = self.v

    assert isinstance(mx.init.create("myinit_alias", v=2.0), MyInit)
    assert mx.init.create('["myinit", {"v": 3.0}]') == MyInit(3.0)
    assert MyInit(3.0) != MyInit(2.0)
    init = MyInit(4.0).set_verbosity(True)
    with caplog.at_level(logging.INFO):
        init(mx.init.InitDesc("a_weight"), mx.nd.zeros((4,)))
    assert "Initialized a_weight as weight: 4.0" in caplog.text
