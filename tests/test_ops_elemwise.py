"""Elementwise operators: unary math, same-shape / broadcast / scalar binary ops, add_n.

Forward against numpy, gradients against finite differences, shape inference (with the
broadcast error path), and MXNet's quirks: rounding rules, integer dtypes with float scalars,
x mod 0 == 0, where tied maximum/minimum gradients go, comparisons as 0/1 in the input dtype.
"""
import math

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests

_v = np.vectorize


def _erfinv(y):
    """Inverse erf by Newton's method on math.erf (float64, for the reference)."""
    y = np.asarray(y, np.float64)
    x = np.zeros_like(y)
    erf = _v(math.erf)
    for _ in range(60):
        x = x - (erf(x) - y) / (2 / math.sqrt(math.pi) * np.exp(-x * x))
    return x


def _init(lo, hi, signed=False):
    """Inputs uniform in [lo, hi] (times a random sign when ``signed``)."""
    def init(rng, i, shape):
        x = rng.uniform(lo, hi, shape)
        return x * rng.choice([-1, 1], shape) if signed else x
    return init


def _away_from_kinks(rng, i, shape):
    """Normal values at least 0.05 from 0 and from the nearest half-integer."""
    x = rng.standard_normal(shape) * 2
    frac = x - np.floor(x)
    return np.where(np.abs(frac - 0.5) < 0.05, x + 0.1, np.where(np.abs(x) < 0.05, 0.3, x))


POS, UNIT, NONZERO = _init(0.5, 3), _init(-0.9, 0.9), _init(0.5, 2, signed=True)
_D = np.float64

# name: (numpy reference, input init (None = standard normal), differentiable)
UNARY = {
    "relu": (lambda x: np.maximum(x, 0), _away_from_kinks, True),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x.astype(_D))), None, True),
    "tanh": (np.tanh, None, True),
    "softsign": (lambda x: x / (1 + np.abs(x)), _away_from_kinks, True),
    "exp": (np.exp, None, True),
    "expm1": (np.expm1, None, True),
    "log": (np.log, POS, True),
    "log2": (np.log2, POS, True),
    "log10": (np.log10, POS, True),
    "log1p": (np.log1p, POS, True),
    "sqrt": (np.sqrt, POS, True),
    "rsqrt": (lambda x: 1 / np.sqrt(x.astype(_D)), POS, True),
    "cbrt": (np.cbrt, POS, True),
    "rcbrt": (lambda x: 1 / np.cbrt(x.astype(_D)), NONZERO, True),
    "square": (np.square, None, True),
    "abs": (np.abs, _away_from_kinks, True),
    "sign": (np.sign, _away_from_kinks, False),
    "negative": (np.negative, None, True),
    "reciprocal": (lambda x: 1 / x.astype(_D), NONZERO, True),
    "sin": (np.sin, None, True),
    "cos": (np.cos, None, True),
    "tan": (np.tan, UNIT, True),
    "arcsin": (np.arcsin, UNIT, True),
    "arccos": (np.arccos, UNIT, True),
    "arctan": (np.arctan, None, True),
    "sinh": (np.sinh, None, True),
    "cosh": (np.cosh, None, True),
    "arcsinh": (np.arcsinh, None, True),
    "arccosh": (np.arccosh, _init(1.2, 3), True),
    "arctanh": (np.arctanh, UNIT, True),
    "degrees": (np.degrees, None, True),
    "radians": (np.radians, None, True),
    "floor": (np.floor, _away_from_kinks, False),
    "ceil": (np.ceil, _away_from_kinks, False),
    "trunc": (np.trunc, _away_from_kinks, False),
    "fix": (np.trunc, _away_from_kinks, False),
    "round": (lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5), _away_from_kinks, False),
    "rint": (np.rint, _away_from_kinks, False),
    "erf": (_v(math.erf), None, True),
    "erfinv": (_erfinv, UNIT, True),
    "gamma": (_v(math.gamma), _init(0.5, 3), True),
    "gammaln": (_v(math.lgamma), _init(0.5, 3), True),
    "logical_not": (lambda x: (x == 0).astype(x.dtype), _away_from_kinks, False),
    "identity": (lambda x: x, None, True),
    "_copy": (lambda x: x, None, True),
    "stop_gradient": (lambda x: x, None, False),
    "BlockGrad": (lambda x: x, None, False),
    "zeros_like": (np.zeros_like, None, False),
    "ones_like": (np.ones_like, None, False),
}

_SPECIAL_TOL = {"erf", "erfinv", "gamma", "gammaln", "tan", "rcbrt", "rsqrt"}


def _mod_ref(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0, np.mod(a, b))


def _cmp(fn):
    return lambda a, b: fn(a, b).astype(a.dtype)


# key: (numpy reference, init, differentiable)
BINARY = {
    "add": (np.add, None, True),
    "sub": (np.subtract, None, True),
    "mul": (np.multiply, None, True),
    "div": (lambda a, b: a / b, NONZERO, True),
    "mod": (_mod_ref, NONZERO, True),
    "power": (np.power, POS, True),
    "maximum": (np.maximum, None, True),
    "minimum": (np.minimum, None, True),
    "hypot": (np.hypot, None, True),
    "equal": (_cmp(np.equal), None, False),
    "not_equal": (_cmp(np.not_equal), None, False),
    "greater": (_cmp(np.greater), None, False),
    "greater_equal": (_cmp(np.greater_equal), None, False),
    "lesser": (_cmp(np.less), None, False),
    "lesser_equal": (_cmp(np.less_equal), None, False),
    "logical_and": (_cmp(np.logical_and), None, False),
    "logical_or": (_cmp(np.logical_or), None, False),
    "logical_xor": (_cmp(np.logical_xor), None, False),
}
_SAME_SHAPE = {"add": "elemwise_add", "sub": "elemwise_sub", "mul": "elemwise_mul",
               "div": "elemwise_div"}

# name: (reference f(x, s), init, scalar, differentiable)
SCALAR = {
    "_plus_scalar": (lambda x, s: x + s, None, 1.5, True),
    "_minus_scalar": (lambda x, s: x - s, None, 0.5, True),
    "_rminus_scalar": (lambda x, s: s - x, None, 2.0, True),
    "_mul_scalar": (lambda x, s: x * s, None, -1.5, True),
    "_div_scalar": (lambda x, s: x / s, None, 4.0, True),
    "_rdiv_scalar": (lambda x, s: s / x, NONZERO, 2.0, True),
    "_mod_scalar": (_mod_ref, None, 1.5, True),
    "_rmod_scalar": (lambda x, s: _mod_ref(np.full_like(x, s), x), NONZERO, 3.0, True),
    "_power_scalar": (np.power, POS, 2.5, True),
    "_rpower_scalar": (lambda x, s: np.power(s, x), None, 1.7, True),
    "_maximum_scalar": (np.maximum, None, 0.2, True),
    "_minimum_scalar": (np.minimum, None, 0.2, True),
    "_hypot_scalar": (np.hypot, None, 2.0, True),
    "_equal_scalar": (_cmp(np.equal), None, 1.0, False),
    "_not_equal_scalar": (_cmp(np.not_equal), None, 1.0, False),
    "_greater_scalar": (_cmp(np.greater), None, 0.1, False),
    "_greater_equal_scalar": (_cmp(np.greater_equal), None, 0.1, False),
    "_lesser_scalar": (_cmp(np.less), None, 0.1, False),
    "_lesser_equal_scalar": (_cmp(np.less_equal), None, 0.1, False),
    "_logical_and_scalar": (_cmp(np.logical_and), None, 1.0, False),
    "_logical_or_scalar": (_cmp(np.logical_or), None, 0.0, False),
    "_logical_xor_scalar": (_cmp(np.logical_xor), None, 1.0, False),
}


def _unary_case(name, ref, init, grad):
    tol = dict(rtol=1e-4, atol=1e-5) if name in _SPECIAL_TOL else {}
    return OpCase(name, [(3, 4)], {}, lambda x: ref(x), init=init, grad=grad, id=name, **tol)


def _scalar_ref(fn):
    return lambda x, scalar: fn(x, np.float32(scalar))


CASES = [_unary_case(n, *spec) for n, spec in UNARY.items()]
CASES += [
    OpCase("clip", [(3, 4)], {"a_min": -0.5, "a_max": 0.7},
           lambda x, a_min, a_max: np.clip(x, a_min, a_max), id="clip"),
    OpCase("hard_sigmoid", [(3, 4)], {"alpha": 0.3, "beta": 0.4},
           lambda x, alpha, beta: np.clip(alpha * x + beta, 0, 1), id="hard_sigmoid"),
]
for _key, (_ref, _init_fn, _grad) in BINARY.items():
    _name = _SAME_SHAPE.get(_key, f"_{_key}")
    CASES.append(OpCase(_name, [(3, 4), (3, 4)], {}, _ref, init=_init_fn, grad=_grad, id=_name))
    CASES.append(OpCase(f"broadcast_{_key}", [(2, 3, 4), (3, 1)], {}, _ref, init=_init_fn,
                        grad=_grad, id=f"broadcast_{_key}"))
CASES += [
    OpCase("broadcast_plus", [(2, 1), (1, 3)], {}, np.add, id="broadcast_plus"),
    OpCase("broadcast_minus", [(4,), (2, 1, 4)], {}, np.subtract, id="broadcast_minus"),
    OpCase("_plus", [(2, 3), (2, 3)], {}, np.add, id="_plus"),
    OpCase("add_n", [(2, 3), (2, 3), (2, 3)], {}, lambda *xs: sum(xs), id="add_n"),
    OpCase("ElementWiseSum", [(4,), (4,)], {}, lambda *xs: sum(xs), id="ElementWiseSum"),
]
for _name, (_ref, _init_fn, _s, _grad) in SCALAR.items():
    CASES.append(OpCase(_name, [(3, 4)], {"scalar": _s}, _scalar_ref(_ref), init=_init_fn,
                        grad=_grad, id=_name))


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- MXNet's quirks ---------------------------------------------------------------------------
HALVES = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51]


def test_round_goes_away_from_zero_and_rint_goes_down_on_halves():
    x = mx.nd.array(HALVES)
    np.testing.assert_array_equal(mx.nd.round(x).asnumpy(), [-3, -2, -1, 1, 2, 3, 0, -1])
    np.testing.assert_array_equal(mx.nd.rint(x).asnumpy(), [-3, -2, -1, 0, 1, 2, 0, -1])
    np.testing.assert_array_equal(mx.nd.fix(x).asnumpy(), [-2, -1, 0, 0, 1, 2, 0, 0])


def test_rounding_family_has_zero_gradient():
    x = mx.nd.array([0.3, 1.7])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.round(x) + mx.nd.floor(x) + mx.nd.sign(x) + mx.nd.stop_gradient(x)
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])


@pytest.mark.parametrize("op, scalar, want", [
    ("_plus_scalar", 1.5, [4, 5, -6]), ("_mul_scalar", 1.5, [3, 4, -7]),
    ("_div_scalar", 2.0, [1, 2, -3]), ("_mod_scalar", 3.0, [0, 1, 2]),
    ("_rdiv_scalar", 2.5, [0, 0, 0]), ("_minus_scalar", 0.7, [3, 4, -7]),
    ("_greater_scalar", 3.5, [0, 1, 0]), ("_power_scalar", -2.0, [0, 0, 0]),
    ("_rpower_scalar", 2.7, [8, 16, 0]),
])
def test_integer_arrays_with_float_scalars(op, scalar, want):
    # MXNet casts the scalar to the array's dtype first (1.5 -> 1 for int32), and keeps int32
    y = getattr(mx.nd._internal, op)(mx.nd.array([3, 4, -7], dtype="int32"), scalar=scalar)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y.asnumpy(), want)


def test_integer_math_truncates_like_mxnet():
    i = mx.nd.array([1, 2, 5], dtype="int32")
    np.testing.assert_array_equal(mx.nd.sigmoid(i).asnumpy(), [0, 0, 0])
    np.testing.assert_array_equal(mx.nd.rsqrt(i).asnumpy(), [1, 0, 0])
    np.testing.assert_array_equal(mx.nd.sqrt(i).asnumpy(), [1, 1, 2])
    np.testing.assert_array_equal(mx.nd.exp(i).asnumpy(), [2, 7, 148])
    np.testing.assert_array_equal(
        mx.nd.broadcast_power(mx.nd.array([7, -7, 3], dtype="int32"),
                              mx.nd.array([2, 3, -2], dtype="int32")).asnumpy(), [49, -343, 0])


def test_mod_by_zero_is_zero():
    x = mx.nd.array([5, -5, 3.5, 0])
    np.testing.assert_array_equal((x % 0).asnumpy(), [0, 0, 0, 0])
    np.testing.assert_array_equal(
        mx.nd.broadcast_mod(x, mx.nd.array([0, 3, -2, 1])).asnumpy(), [0, 1, -0.5, 0])
    np.testing.assert_array_equal((mx.nd.array([3, 4, -7], dtype="int32") % 0).asnumpy(),
                                  [0, 0, 0])


def _grads(fn, *arrays):
    xs = [mx.nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
    y.backward()
    return [x.grad.asnumpy() for x in xs]


def test_tied_maximum_minimum_send_the_gradient_to_the_left_operand():
    ga, gb = _grads(mx.nd.maximum, [1, 2, 3], [1, 3, 2])
    np.testing.assert_array_equal(ga, [1, 0, 1])
    np.testing.assert_array_equal(gb, [0, 1, 0])
    ga, gb = _grads(mx.nd.minimum, [1, 2, 3], [1, 3, 2])
    np.testing.assert_array_equal(ga, [1, 1, 0])
    np.testing.assert_array_equal(gb, [0, 0, 1])
    (g,) = _grads(lambda a: mx.nd.maximum(a, 2), [1, 2, 3])
    np.testing.assert_array_equal(g, [0, 1, 1])
    ga, gb = _grads(mx.nd.broadcast_maximum, [[1, 2], [3, 0]], [[1, 1]])
    np.testing.assert_array_equal(ga, [[1, 1], [1, 0]])
    np.testing.assert_array_equal(gb, [[0, 1]])


def test_mod_gradients():
    ga, gb = _grads(mx.nd.broadcast_mod, [5, -5, 3.5], [3, 3, -2])
    np.testing.assert_array_equal(ga, [1, 1, 1])
    np.testing.assert_array_equal(gb, [-1, 2, 2])          # -floor(a / b)
    (g,) = _grads(lambda a: 7.0 % a, [3, -2, 2.5])
    np.testing.assert_array_equal(g, [-2, 4, -2])


def test_comparisons_return_zero_one_in_the_input_dtype():
    a = mx.nd.array([1, 2, 3])
    for y in (a > 1.5, a == mx.nd.array([1, 0, 3]), mx.nd.broadcast_lesser(a, mx.nd.array([2]))):
        assert y.dtype == np.float32
    np.testing.assert_array_equal((a > 1.5).asnumpy(), [0, 1, 1])
    i = mx.nd.array([1, 2], dtype="int32")
    assert (i == i).dtype == np.int32
    np.testing.assert_array_equal(mx.nd.logical_not(mx.nd.array([0, 1, -2])).asnumpy(), [1, 0, 0])


def test_add_n_with_many_inputs_and_out():
    xs = [mx.nd.array(np.full((2,), k, np.float32)) for k in range(1, 6)]
    out = mx.nd.zeros((2,))
    assert mx.nd.add_n(*xs, out=out) is out
    np.testing.assert_array_equal(out.asnumpy(), [15, 15])


# ---- shape inference and errors ------------------------------------------------------------------
def test_broadcast_shape_inference_and_error():
    op = get_op("broadcast_add")
    p = op.default_params
    assert op.infer_shape(p, [(2, 1, 4), (3, 1)])[1] == [(2, 3, 4)]
    assert op.infer_shape(p, [(0, 3), (1, 3)])[1] == [(0, 3)]
    assert op.infer_shape(p, [None, (1, 3)])[1] == [None]
    with pytest.raises(ShapeError, match=r"broadcast_add: operands with shapes \(2, 3\) and "
                                         r"\(4, 3\) cannot be broadcast together"):
        mx.nd.broadcast_add(mx.nd.zeros((2, 3)), mx.nd.zeros((4, 3)))
    with pytest.raises(ShapeError, match=r"operands with shapes \(2, 3\) and \(2, 4\)"):
        mx.nd.zeros((2, 3)) * mx.nd.zeros((2, 4))


def test_same_shape_ops_fill_in_and_reject_mismatches():
    op = get_op("elemwise_add")
    ins, outs, _ = op.infer_shape(op.default_params, [(2, 0), None])
    assert ins == [(2, 0), (2, 0)] and outs == [(2, 0)]
    ins, outs, _ = op.infer_shape(op.default_params, [(2, 0), (0, 5)])
    assert outs == [(2, 5)]
    with pytest.raises(ShapeError, match=r"elemwise_add: input 1 has shape \(3, 2\), expected "
                                         r"\(2, 3\)"):
        mx.nd.elemwise_add(mx.nd.zeros((2, 3)), mx.nd.zeros((3, 2)))
    with pytest.raises(ShapeError, match="add_n: .*shape"):
        mx.nd.add_n(mx.nd.zeros((2, 3)), mx.nd.zeros((2, 3)), mx.nd.zeros((3,)))


def test_dtype_mismatch():
    with pytest.raises(DTypeError, match="elemwise_add: rhs has dtype int32, expected float32"):
        mx.nd.elemwise_add(mx.nd.zeros((2,)), mx.nd.zeros((2,), dtype="int32"))


def test_bad_parameters():
    x = mx.nd.zeros((2,))
    with pytest.raises(ParamError, match="clip: required parameter 'a_min' is missing"):
        mx.nd.clip(x, a_max=1)
    with pytest.raises(ParamError, match="clip: parameter 'a_max' got 'big': expected a number"):
        mx.nd.clip(x, a_min=0, a_max="big")
    with pytest.raises(ParamError, match="_plus_scalar: unknown parameter 'value'; valid "
                                         "parameters: scalar, is_int"):
        mx.nd._internal._plus_scalar(x, value=1)
    with pytest.raises(ParamError, match="hard_sigmoid: unknown parameter 'slope'"):
        mx.nd.hard_sigmoid(x, slope=0.1)
    with pytest.raises(ParamError, match="relu: unknown parameter 'alpha'; valid parameters: "
                                         r"\(none\)"):
        mx.nd.relu(x, alpha=1)


def test_scalar_params_parse_from_json_strings():
    p = get_op("_plus_scalar").parse_params({"scalar": "1.5", "is_int": "False"})
    assert p.scalar == 1.5 and p.is_int is False
    p = get_op("clip").parse_params({"a_min": "-inf", "a_max": "0.5"})
    assert p.a_min == -math.inf and p.a_max == 0.5
