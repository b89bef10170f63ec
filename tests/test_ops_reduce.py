"""Reductions: sum, mean, prod, max, min, nansum, nanprod, norm, argmax, argmin,
argmax_channel, moments."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def _axes(x, axis, exclude=False):
    if axis is None or axis == ():
        return tuple(range(x.ndim))
    axes = tuple(a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    return tuple(i for i in range(x.ndim) if i not in axes) if exclude else axes


def _legacy(a):
    a = np.asarray(a)
    return a.reshape(1) if a.ndim == 0 else a


def _ref(fn):
    """A numpy reference with MXNet's axis / keepdims / exclude rules."""
    def ref(x, axis=None, keepdims=False, exclude=False):
        return _legacy(fn(x, axis=_axes(x, axis, exclude), keepdims=keepdims))
    return ref


def _positive(rng, i, shape):
    return rng.uniform(0.5, 1.5, shape)


def _with_nans(rng, i, shape):
    x = rng.standard_normal(shape)
    x[rng.uniform(size=shape) < 0.3] = np.nan
    return x


def _norm_ref(x, ord=2, axis=None, keepdims=False, out_dtype=None):
    axes = _axes(x, axis)
    x = x.astype(np.float64)
    y = np.abs(x).sum(axes, keepdims=keepdims) if ord == 1 else \
        np.sqrt((x * x).sum(axes, keepdims=keepdims))
    return _legacy(y)


def _arg_ref(fn):
    def ref(x, axis=None, keepdims=False):
        if axis is None:
            out = np.asarray(fn(x)).reshape((1,) * x.ndim if keepdims else (1,))
        else:
            out = fn(x, axis=axis)
            out = np.expand_dims(out, axis) if keepdims else out
        return _legacy(out).astype(x.dtype)
    return ref


def _moments_ref(x, axes=None, keepdims=False):
    ax = _axes(x, axes)
    return [_legacy(x.mean(ax, keepdims=keepdims)), _legacy(x.var(ax, keepdims=keepdims))]


CASES = []
for _name, _fn in [("sum", np.sum), ("mean", np.mean), ("max", np.max), ("min", np.min),
                   ("nansum", np.nansum)]:
    for _params in [{}, {"axis": 1}, {"axis": (0, 2)}, {"axis": -1, "keepdims": True},
                    {"axis": 1, "exclude": True}, {"axis": (), "keepdims": True}]:
        CASES.append(OpCase(_name, [(2, 3, 4)], _params, _ref(_fn), id=f"{_name}{_params}"))
for _params in [{}, {"axis": 1}, {"axis": (0, 2), "keepdims": True},
                {"axis": 0, "exclude": True}]:
    CASES.append(OpCase("prod", [(2, 3, 4)], _params, _ref(np.prod), init=_positive,
                        id=f"prod{_params}"))
CASES += [
    OpCase("sum_axis", [(3, 5)], {"axis": 0}, _ref(np.sum), id="sum_axis"),
    OpCase("max_axis", [(3, 5)], {"axis": 1}, _ref(np.max), id="max_axis"),
    OpCase("min_axis", [(3, 5)], {"axis": 1, "keepdims": True}, _ref(np.min), id="min_axis"),
    OpCase("nansum", [(3, 4)], {"axis": 1}, _ref(np.nansum), init=_with_nans, id="nansum-nan"),
    OpCase("nanprod", [(3, 4)], {"axis": 0}, _ref(np.nanprod), init=_with_nans,
           id="nanprod-nan"),
    OpCase("nanprod", [(2, 3)], {}, _ref(np.nanprod), init=_positive, id="nanprod-all"),
    OpCase("norm", [(2, 3, 4)], {}, _norm_ref, rtol=1e-5, id="norm"),
    OpCase("norm", [(2, 3, 4)], {"axis": 1}, _norm_ref, id="norm-axis"),
    OpCase("norm", [(2, 3, 4)], {"axis": (0, 2), "keepdims": True}, _norm_ref, id="norm-2axes"),
    OpCase("norm", [(3, 4)], {"ord": 1, "axis": -1}, _norm_ref, id="norm-l1"),
    OpCase("argmax", [(3, 4)], {"axis": 1}, _arg_ref(np.argmax), grad=False, id="argmax"),
    OpCase("argmax", [(3, 4)], {}, _arg_ref(np.argmax), grad=False, id="argmax-flat"),
    OpCase("argmax", [(2, 3, 4)], {"axis": 0, "keepdims": True}, _arg_ref(np.argmax),
           grad=False, id="argmax-keepdims"),
    OpCase("argmin", [(3, 4)], {"axis": -1}, _arg_ref(np.argmin), grad=False, id="argmin"),
    OpCase("argmin", [(3, 4)], {"keepdims": True}, _arg_ref(np.argmin), grad=False,
           id="argmin-flat-keepdims"),
    OpCase("argmax_channel", [(3, 4)], {}, lambda x: np.argmax(x, 1).astype(x.dtype),
           grad=False, id="argmax_channel"),
    OpCase("argmax_channel", [(2, 3, 4)], {}, lambda x: np.argmax(x, 1).astype(x.dtype),
           grad=False, id="argmax_channel-3d"),
    OpCase("moments", [(2, 3, 4)], {"axes": (1,)}, _moments_ref, id="moments"),
    OpCase("moments", [(2, 3, 4)], {"axes": (0, 2), "keepdims": True}, _moments_ref,
           id="moments-keepdims"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- MXNet's dtype rules ---------------------------------------------------------------------
def test_integer_sums_wrap_and_integer_means_truncate():
    x = mx.nd.array([[100, 44, 44], [-100, -44, -45]], dtype="int8")
    s = mx.nd.sum(x, axis=1)
    assert s.dtype == np.int8
    np.testing.assert_array_equal(s.asnumpy(), np.array([188 - 256, -189 + 256], np.int8))
    m = mx.nd.mean(mx.nd.array([[1, 3, 3], [-2, -2, 0]], dtype="int32"), axis=1)
    assert m.dtype == np.int32
    np.testing.assert_array_equal(m.asnumpy(), [2, -1])      # 7/3 -> 2, -4/3 -> -1 (truncated)


def test_float16_sum_accumulates_in_float32():
    s = mx.nd.sum(mx.nd.ones((5000,), dtype="float16"))
    assert s.dtype == np.float16 and float(s.asscalar()) == 5000.0


def test_argmax_returns_the_input_dtype_and_the_first_of_ties():
    for dt in ("float32", "float64", "int32", "uint8"):
        y = mx.nd.argmax(mx.nd.array([[1, 3, 3], [2, 2, 0]], dtype=dt), axis=1)
        assert y.dtype == np.dtype(dt)
        np.testing.assert_array_equal(y.asnumpy(), [1, 0])


def test_norm_out_dtype_and_integer_input():
    x = mx.nd.array([[3, 4], [6, 8]])
    y = mx.nd.norm(x, axis=1, out_dtype="float64")
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.asnumpy(), [5, 10])
    yi = mx.nd.norm(mx.nd.array([[1, 3, 3], [2, 2, 0]], dtype="int32"), axis=1)
    assert yi.dtype == np.int32
    np.testing.assert_array_equal(yi.asnumpy(), [4, 2])     # sqrt(19), sqrt(8) truncated


def test_exclude_and_empty_axis_rules():
    x = mx.nd.array(np.arange(24).reshape(2, 3, 4))
    assert mx.nd.sum(x, axis=(), exclude=True).shape == (1,)
    assert mx.nd.sum(x, axis=(0, 1, 2), exclude=True).shape == (2, 3, 4)
    np.testing.assert_array_equal(mx.nd.sum(x, axis=1, exclude=True).asnumpy(),
                                  np.arange(24).reshape(2, 3, 4).sum((0, 2)))


# ---- gradients with MXNet's tie rule and the exact rules at zeros --------------------------
def _grad(fn, x, dtype="float32"):
    a = mx.nd.array(x, dtype=dtype)
    a.attach_grad()
    with mx.autograd.record():
        y = fn(a)
    y.backward()
    return a.grad.asnumpy()


def test_max_min_gradient_goes_to_every_tied_element():
    x = [[1, 3, 3], [2, 2, 0]]
    np.testing.assert_array_equal(_grad(lambda a: mx.nd.max(a, axis=1), x),
                                  [[0, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(_grad(lambda a: mx.nd.min(a, axis=1), x),
                                  [[1, 0, 0], [0, 0, 1]])


def test_prod_gradient_is_exact_at_zeros():
    g = _grad(lambda a: mx.nd.prod(a, axis=1), [[1, 3, 3], [2, 2, 0], [0, 5, 0]], "float64")
    np.testing.assert_array_equal(g, [[9, 3, 3], [0, 0, 4], [0, 0, 0]])


def test_nanprod_gradient_skips_nans():
    g = _grad(lambda a: mx.nd.nanprod(a, axis=1), [[np.nan, 2, 3], [0, 4, np.nan]], "float64")
    np.testing.assert_array_equal(g, [[0, 3, 2], [4, 0, 0]])


def test_norm_gradient_at_zero_is_zero():
    g = _grad(lambda a: mx.nd.norm(a, axis=1), np.zeros((2, 3)))
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


def test_argmax_has_zero_gradient():
    np.testing.assert_array_equal(_grad(lambda a: mx.nd.argmax(a, axis=1) * 1, [[1, 2], [4, 3]]),
                                  np.zeros((2, 2)))


def test_moments_gradient_of_mean_and_variance():
    x = np.array([[1.0, 2, 4], [4, 3, 0]])
    a = mx.nd.array(x, dtype="float64")
    a.attach_grad()
    with mx.autograd.record():
        mean, var = mx.nd.moments(a, axes=(1,))
        loss = mean * 2 + var * 3
    loss.backward()
    want = 2 / 3 + 3 * 2 * (x - x.mean(1, keepdims=True)) / 3
    np.testing.assert_allclose(a.grad.asnumpy(), want)


def test_grad_req_add_accumulates():
    op = get_op("sum")
    p = op.parse_params({"axis": 1})
    ctx = mx.ops.resource.op_context(mx.cpu())
    dx = np.ones((2, 3), np.float32)
    op.backward(ctx, p, [np.array([1.0, 2.0], np.float32)], [np.zeros((2, 3), np.float32)],
                [None], [], [dx], ["add"])
    np.testing.assert_array_equal(dx, [[2, 2, 2], [3, 3, 3]])


# ---- partial shape inference and errors ----------------------------------------------------
def test_infer_shape_with_unknowns():
    op = get_op("sum")
    assert op.infer_shape(op.parse_params({"axis": 1}), [None])[1] == [None]
    assert op.infer_shape(op.parse_params({"axis": 1}), [(0, 5, 3)])[1] == [(0, 3)]
    am = get_op("argmax")
    assert am.infer_shape(am.parse_params({"axis": 0}), [(0, 4)])[1] == [(4,)]


def test_bad_axis_names_the_op_and_the_shape():
    x = mx.nd.zeros((2, 3, 4))
    with pytest.raises(ShapeError, match=r"sum: axis=3 is out of range for data of shape "
                                         r"\(2, 3, 4\)"):
        mx.nd.sum(x, axis=3)
    with pytest.raises(ShapeError, match=r"sum: axis=\(1, 1\) names an axis twice"):
        mx.nd.sum(x, axis=(1, 1))
    with pytest.raises(ShapeError, match="max over axis 1 of data \\(2, 0\\): it is empty"):
        mx.nd.max(mx.nd.zeros((2, 0)), axis=1).wait_to_read()
    with pytest.raises(ShapeError, match="argmax over axis 1 of data \\(3, 0\\)"):
        mx.nd.argmax(mx.nd.zeros((3, 0))).asnumpy()
    with pytest.raises(ShapeError, match="argmax_channel: data must have at least 2 dims"):
        mx.nd.argmax_channel(mx.nd.zeros((3,)))


def test_bad_parameters():
    x = mx.nd.zeros((2, 3))
    with pytest.raises(ParamError, match="unknown parameter 'axes'; valid parameters: axis, "
                                         "keepdims, exclude"):
        mx.nd.sum(x, axes=1)
    with pytest.raises(ParamError, match="parameter 'keepdims' got 'maybe'"):
        mx.nd.sum(x, keepdims="maybe")
    with pytest.raises(ParamError, match="norm: parameter 'ord' got 3: only ord=1 and ord=2"):
        mx.nd.norm(x, ord=3)
    with pytest.raises(ParamError, match="norm: parameter 'out_dtype'"):
        mx.nd.norm(x, out_dtype="complex64")


def test_params_parse_from_json_strings():
    op = get_op("sum")
    p = op.parse_params({"axis": "(0, 2)", "keepdims": "True", "exclude": "0"})
    assert (p.axis, p.keepdims, p.exclude) == ((0, 2), True, False)
    assert get_op("max_axis") is get_op("max") and get_op("sum_axis") is op


def test_fluent_methods():
    x = mx.nd.array(np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(x.sum(axis=1).asnumpy(), [3, 12])
    np.testing.assert_array_equal(x.max(1).asnumpy(), [2, 5])
    np.testing.assert_array_equal(x.argmin(axis=0).asnumpy(), [0, 0, 0])
    np.testing.assert_allclose(x.norm().asnumpy(), [np.sqrt(55)], rtol=1e-6)
