"""Activation and LeakyReLU: forward vs numpy, gradients vs finite differences, shapes, errors."""
import math

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from hybridnet.ops.registry import OpContext
from op_harness import OpCase, table_tests

_ERF = np.vectorize(math.erf)
_SELU_A, _SELU_L = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _away_from_zero(rng, i, shape):
    """Normal values with |x| >= 0.05, so finite differences never straddle a kink."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.05 * np.sign(x) + 0.05 * (x == 0), x)


def _act_ref(x, act_type):
    x = x.astype(np.float64)
    return {"relu": np.maximum(x, 0), "sigmoid": 1 / (1 + np.exp(-x)), "tanh": np.tanh(x),
            "softrelu": np.log1p(np.exp(x)), "softsign": x / (1 + np.abs(x))}[act_type]


def _leaky_ref(x, gamma=None, act_type="leaky", slope=0.25, lower_bound=0.125,
               upper_bound=0.334):
    x = x.astype(np.float64)
    if act_type == "leaky":
        return np.where(x > 0, x, slope * x)
    if act_type == "prelu":
        g = gamma.reshape((1, -1) + (1,) * (x.ndim - 2))
        return np.where(x > 0, x, g * x)
    if act_type == "elu":
        return np.where(x > 0, x, slope * np.expm1(x))
    if act_type == "selu":
        return _SELU_L * np.where(x > 0, x, _SELU_A * np.expm1(x))
    if act_type == "gelu":
        return 0.5 * x * (1 + _ERF(x / math.sqrt(2)))
    if act_type == "rrelu":      # inference: the mean slope, and the mask holds it
        s = (lower_bound + upper_bound) / 2
        return [np.where(x > 0, x, s * x), np.full(x.shape, s)]
    raise ValueError(act_type)


CASES = [
    OpCase("Activation", [(3, 4)], {"act_type": t}, lambda x, **k: _act_ref(x, k["act_type"]),
           init=_away_from_zero, id=f"Activation-{t}")
    for t in ("relu", "sigmoid", "tanh", "softrelu", "softsign")
] + [
    OpCase("Activation", [(2, 3, 4)], {"act_type": "softrelu"},
           lambda x, **k: np.logaddexp(0, x.astype(np.float64)),
           init=lambda r, i, s: r.standard_normal(s) * 30, id="Activation-softrelu-large"),
    OpCase("LeakyReLU", [(3, 5)], {}, _leaky_ref, init=_away_from_zero, id="LeakyReLU-default"),
    OpCase("LeakyReLU", [(3, 5)], {"act_type": "leaky", "slope": 0.1}, _leaky_ref,
           init=_away_from_zero, id="LeakyReLU-leaky"),
    OpCase("LeakyReLU", [(2, 3, 4), np.array([0.1, 0.2, 0.3], np.float32)],
           {"act_type": "prelu"}, _leaky_ref, init=_away_from_zero, id="LeakyReLU-prelu"),
    OpCase("LeakyReLU", [(2, 3, 2, 2), np.array([0.3], np.float32)], {"act_type": "prelu"},
           _leaky_ref, init=_away_from_zero, id="LeakyReLU-prelu-shared"),
    OpCase("LeakyReLU", [(4, 5)], {"act_type": "elu", "slope": 0.7}, _leaky_ref,
           init=_away_from_zero, id="LeakyReLU-elu"),
    OpCase("LeakyReLU", [(4, 5)], {"act_type": "selu"}, _leaky_ref, init=_away_from_zero,
           id="LeakyReLU-selu"),
    OpCase("LeakyReLU", [(4, 5)], {"act_type": "gelu"}, _leaky_ref, id="LeakyReLU-gelu"),
    OpCase("LeakyReLU", [(4, 5)], {"act_type": "rrelu"}, _leaky_ref, grad=False,
           id="LeakyReLU-rrelu-inference"),
]



test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_prelu_gamma_shape_is_inferred_from_the_channel_axis():
    op = get_op("LeakyReLU")
    p = op.parse_params({"act_type": "prelu"})
    assert op.list_inputs(p) == ["data", "gamma"]
    ins, outs, _ = op.infer_shape(p, [(8, 16, 5, 5), None])
    assert ins[1] == (16,) and outs == [(8, 16, 5, 5)]
    ins, outs, _ = op.infer_shape(p, [None, (16,)])
    assert ins[1] == (16,) and outs == [None]
    ins, outs, _ = op.infer_shape(p, [(8, 0, 5), None])       # channel still unknown
    assert ins[1] is None


def test_prelu_rejects_a_gamma_that_is_not_per_channel():
    op = get_op("LeakyReLU")
    p = op.parse_params({"act_type": "prelu"})
    with pytest.raises(ShapeError, match=r"LeakyReLU: gamma has shape \(4,\), expected \(3,\) "
                                         r"or \(1,\) for data \(2, 3, 4\)"):
        op.infer_shape(p, [(2, 3, 4), (4,)])
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        op.infer_shape(p, [(5,), None])
    with pytest.raises(ShapeError, match="gamma has shape"):
        mx.nd.LeakyReLU(mx.nd.ones((2, 3)), mx.nd.ones((2, 3)), act_type="prelu")


def test_non_prelu_takes_only_data_and_rrelu_has_a_mask_output():
    op = get_op("LeakyReLU")
    assert op.list_inputs(op.parse_params({})) == ["data"]
    p = op.parse_params({"act_type": "rrelu"})
    assert op.output_names(p) == ["output", "mask"]
    assert op.output_names(op.parse_params({"act_type": "elu"})) == ["output"]


def test_rrelu_training_draws_one_slope_per_element_within_the_bounds():
    x = mx.nd.array(-np.ones((200, 50), np.float32))
    x.attach_grad()
    with mx.autograd.record():
        out, mask = mx.nd.LeakyReLU(x, act_type="rrelu", lower_bound=0.1, upper_bound=0.3)
    g = np.random.randn(200, 50).astype(np.float32)
    out.backward(mx.nd.array(g))
    m = mask.asnumpy()
    assert m.min() >= 0.1 and m.max() <= 0.3
    assert abs(m.mean() - 0.2) < 0.01 and m.std() > 0.05          # U(0.1, 0.3): std 0.058
    np.testing.assert_allclose(out.asnumpy(), -m, rtol=1e-6)
    np.testing.assert_allclose(x.grad.asnumpy(), g * m, rtol=1e-6)


def test_rrelu_inference_uses_the_mean_slope_for_forward_and_backward():
    x = mx.nd.array(np.array([-2.0, 3.0], np.float32))
    x.attach_grad()
    with mx.autograd.record(train_mode=False):
        out, mask = mx.nd.LeakyReLU(x, act_type="rrelu")
    out.backward()
    s = (0.125 + 0.334) / 2
    np.testing.assert_allclose(out.asnumpy(), [-2 * s, 3.0], rtol=1e-6)
    np.testing.assert_allclose(x.grad.asnumpy(), [s, 1.0], rtol=1e-6)


def test_leaky_gradient_uses_the_input_sign_even_for_a_negative_slope():
    # MXNet: slope=-0.5 at x=-1 gives gradient -0.5 (not 1, which the output's sign would say)
    x = mx.nd.array([-1.0, 1.0])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.LeakyReLU(x, act_type="leaky", slope=-0.5)
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), [0.5, 1.0])
    np.testing.assert_allclose(x.grad.asnumpy(), [-0.5, 1.0])


def test_prelu_gamma_gradient_sums_over_everything_but_the_channel():
    rng = np.random.RandomState(3)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    g = rng.standard_normal((4, 3, 5)).astype(np.float32)
    for gamma, axes in ((np.array([0.1, 0.2, 0.3], np.float32), (0, 2)),
                        (np.array([0.2], np.float32), None)):
        xa, ga = mx.nd.array(x), mx.nd.array(gamma)
        ga.attach_grad()
        with mx.autograd.record():
            y = mx.nd.LeakyReLU(xa, ga, act_type="prelu")
        y.backward(mx.nd.array(g))
        want = (g * np.minimum(x, 0)).sum(axis=axes).reshape(gamma.shape)
        np.testing.assert_allclose(ga.grad.asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_selu_and_elu_do_not_overflow_for_large_inputs():
    x = mx.nd.array([-1000.0, 1000.0])
    for t in ("elu", "selu"):
        y = mx.nd.LeakyReLU(x, act_type=t).asnumpy()
        assert np.all(np.isfinite(y))


def test_bad_parameters():
    with pytest.raises(ParamError, match="Activation: required parameter 'act_type'"):
        mx.nd.Activation(mx.nd.ones((2,)))
    with pytest.raises(ParamError, match=r"act_type' got 'swish': expected one of"):
        mx.nd.Activation(mx.nd.ones((2,)), act_type="swish")
    with pytest.raises(ParamError, match="LeakyReLU: parameter 'act_type' got 'relu6'"):
        mx.nd.LeakyReLU(mx.nd.ones((2,)), act_type="relu6")
    with pytest.raises(ParamError, match="parameter 'slope' got 'steep'"):
        mx.nd.LeakyReLU(mx.nd.ones((2,)), slope="steep")


def test_params_parse_from_json_strings():
    op = get_op("LeakyReLU")
    p = op.parse_params({"act_type": "elu", "slope": "0.3", "upper_bound": "0.5"})
    assert (p.act_type, p.slope, p.upper_bound, p.lower_bound) == ("elu", 0.3, 0.5, 0.125)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, 1001])
def test_relu_kernels_match_numpy_write_add_and_in_place(dtype, size):
    op = get_op("Activation")
    p = op.parse_params({"act_type": "relu"})
    ctx = OpContext(np, mx.cpu(), None)
    rng = np.random.RandomState(0)
    x = rng.standard_normal(size).astype(dtype)
    x[:3] = [0.0, np.nan, -np.inf]
    y = np.empty_like(x)
    op.forward(ctx, p, [x], [], [y], True)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    g = rng.standard_normal(size).astype(dtype)
    g[3:6] = [np.nan, np.inf, 1.0]            # NaN / inf head gradients keep numpy's g * 0
    want = g * (y > 0)
    dx = np.empty_like(x)
    op.backward(ctx, p, [g], [x], [y], [], [dx], ["write"])
    np.testing.assert_array_equal(dx, want)
    acc = np.ones_like(x)
    op.backward(ctx, p, [g], [x], [y], [], [acc], ["add"])
    np.testing.assert_array_equal(acc, 1 + want)
    op.backward(ctx, p, [g], [x], [y], [], [g], ["inplace"])      # gradient over the head's
    np.testing.assert_array_equal(g, want)
    op.forward(ctx, p, [x], [], [x], True)                         # output over the input
    np.testing.assert_array_equal(x, y)


def test_relu_off_the_fast_path_gives_the_same_values():
    # an int array and a strided view take the numpy kernels
    x = mx.nd.array(np.arange(-3, 3, dtype=np.int32), dtype=np.int32)
    np.testing.assert_array_equal(mx.nd.Activation(x, act_type="relu").asnumpy(),
                                  [0, 0, 0, 0, 1, 2])
    base = np.random.RandomState(1).standard_normal((4, 6)).astype(np.float32)
    op, ctx = get_op("Activation"), OpContext(np, mx.cpu(), None)
    p = op.parse_params({"act_type": "relu"})
    out = np.zeros((4, 6), np.float32)
    op.forward(ctx, p, [base[:, ::2]], [], [out[:, ::2]], True)
    np.testing.assert_array_equal(out[:, ::2], np.maximum(base[:, ::2], 0))
    assert not out[:, 1::2].any()
