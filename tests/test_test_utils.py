"""mx.test_utils: the MXNet 1.x helpers users test with (names, signatures, behaviour)."""
import os

import numpy as np
import pytest

import hybridnet as mx
from hybridnet import test_utils as tu


def test_available_after_import_like_mxnet():
    assert mx.test_utils is tu
    for name in ("assert_almost_equal", "almost_equal", "same", "assert_exception",
                 "rand_ndarray", "rand_shape_2d", "rand_shape_3d", "rand_shape_nd",
                 "random_arrays", "default_context", "set_default_context", "numeric_grad",
                 "check_numeric_gradient", "environment", "get_mnist",
                 "check_symbolic_forward", "check_symbolic_backward", "check_consistency",
                 "simple_forward", "default_dtype", "assert_almost_equal_ignore_nan",
                 "assert_allclose", "get_rtol", "get_atol", "check_speed"):
        assert callable(getattr(mx.test_utils, name)), name


def test_almost_equal_uses_per_dtype_defaults():
    one = np.ones(3, np.float32)
    assert tu.almost_equal(one, one + 1e-5) and not tu.almost_equal(one, one + 1e-2)
    assert tu.almost_equal(mx.nd.ones((3,)), one)                  # NDArrays are accepted
    assert not tu.almost_equal(np.ones(3), np.ones(3) + 1e-4)       # float64: rtol 1e-5
    assert tu.almost_equal(np.ones(3), np.ones(3) + 1e-4, rtol=1e-3)
    assert not tu.almost_equal(np.zeros(3), np.zeros(3) + 1e-19)    # ... and atol 1e-20
    assert tu.almost_equal(np.array([np.nan]), np.array([np.nan]), equal_nan=True)
    assert not tu.almost_equal(np.array([np.nan]), np.array([np.nan]))
    assert not tu.almost_equal(np.ones(2), np.ones((2, 2)), use_broadcast=False)
    assert (tu.get_rtol(), tu.get_atol(), tu.get_rtol(dtype=np.float16), tu.get_atol(0.5)) \
        == (1e-5, 1e-20, 1e-2, 0.5)
    assert tu.default_dtype() is np.float32


def test_assert_almost_equal_names_the_worst_elements():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = a.copy()
    b[1, 0] = 3.5
    with pytest.raises(AssertionError, match=r"(?s)1 of 4 elements differ.*at \(1, 0\): "
                                             r"x=3\.0 y=3\.5"):
        tu.assert_almost_equal(a, b, names=("x", "y"))
    with pytest.raises(AssertionError, match="shape mismatch"):
        tu.assert_almost_equal(np.ones(2), np.ones(3))
    tu.assert_almost_equal(a, b, rtol=0.2)
    tu.assert_almost_equal(a, b, 0.2, 0, ("x", "y"))               # MXNet's positional order


def test_nan_tolerant_and_numpy_style_variants():
    a, b = np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, np.nan])
    tu.assert_almost_equal_ignore_nan(a, b)
    with pytest.raises(AssertionError):
        tu.assert_almost_equal_ignore_nan(a, b + 1)
    tu.assert_allclose(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    with pytest.raises(AssertionError):
        tu.assert_allclose(np.ones(2), np.ones(2) + 1e-6)          # rtol 1e-7, atol 0


def test_same_and_assert_exception():
    assert tu.same(np.arange(3), mx.nd.arange(3).astype("int64"))
    assert not tu.same(np.ones(2), np.ones(3)) and not tu.same(np.ones(2), np.zeros(2))

    def fails(x):
        raise KeyError(x)
    tu.assert_exception(fails, KeyError, "k")
    with pytest.raises(AssertionError, match="did not raise ValueError"):
        tu.assert_exception(lambda: None, ValueError)
    with pytest.raises(KeyError):                                    # other errors propagate
        tu.assert_exception(fails, ValueError, "k")


def test_random_shapes_and_arrays():
    np.random.seed(0)
    for _ in range(20):
        d0, d1 = tu.rand_shape_2d(3, 4)
        assert 1 <= d0 <= 3 and 1 <= d1 <= 4
        assert all(1 <= d <= m for d, m in zip(tu.rand_shape_3d(2, 3, 4), (2, 3, 4)))
        nd_shape = tu.rand_shape_nd(5, dim=2)
        assert isinstance(nd_shape, tuple) and len(nd_shape) == 5 and max(nd_shape) <= 2
    one, two = tu.random_arrays((2, 3), (4,))
    assert (one.shape, two.shape, one.dtype) == ((2, 3), (4,), np.float32)
    assert tu.random_arrays((2, 2)).shape == (2, 2)                  # one shape: one array
    r = tu.rand_ndarray((3, 4), dtype="float64")
    assert (r.shape, r.dtype, r.stype) == ((3, 4), np.float64, "default")
    assert 0 <= r.asnumpy().min() and r.asnumpy().max() < 1
    with pytest.raises(mx.base.HybridNetError, match="storage type 'csr' is not supported"):
        tu.rand_ndarray((2, 2), "csr")


def test_default_context_can_be_set():
    old = tu.default_context()
    assert old == mx.cpu(0)
    try:
        tu.set_default_context(mx.cpu(1))
        assert tu.default_context() == mx.cpu(1)
        assert tu.rand_ndarray((2,)).context == mx.cpu(1)
    finally:
        tu.set_default_context(old)


def test_environment_sets_unsets_and_restores():
    os.environ.pop("HN_TU_A", None)
    os.environ["HN_TU_B"] = "keep"
    with tu.environment("HN_TU_A", "1"):
        assert os.environ["HN_TU_A"] == "1"
    assert "HN_TU_A" not in os.environ
    with pytest.raises(RuntimeError):
        with tu.environment({"HN_TU_A": "2", "HN_TU_B": None}):
            assert os.environ["HN_TU_A"] == "2" and "HN_TU_B" not in os.environ
            raise RuntimeError
    assert "HN_TU_A" not in os.environ and os.environ.pop("HN_TU_B") == "keep"
    with pytest.raises(ValueError, match=r"\(name, value\) or a dict"):
        with tu.environment("HN_TU_A"):
            pass


def test_numeric_grad_of_an_executor_like_mxnet():
    a, b = mx.sym.Variable("a"), mx.sym.Variable("b")
    exe = (mx.sym.exp(a) * b).simple_bind(mx.cpu(), a=(2, 2), b=(2, 2))
    x = np.array([[0.1, -0.3], [0.5, 0.2]], np.float32)
    y = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
    grads = tu.numeric_grad(exe, {"a": x, "b": y}, eps=1e-2)
    np.testing.assert_allclose(grads["a"], np.exp(x) * y, rtol=1e-3)
    np.testing.assert_allclose(grads["b"], np.exp(x), rtol=1e-3)
    assert grads["a"].dtype == np.float32
    np.testing.assert_array_equal(exe.arg_dict["a"].asnumpy(), x)    # values restored


def test_numeric_grad_of_a_function_and_type_errors():
    x = np.array([0.5, 1.5])
    gx, gy = tu.numeric_grad(lambda u, v: [mx.nd.sin(u) * v, v], [x, x * 2], eps=1e-5)
    np.testing.assert_allclose(gx, np.cos(x) * x * 2, rtol=1e-8)
    np.testing.assert_allclose(gy, np.sin(x) + 1, rtol=1e-8)
    with pytest.raises(TypeError, match="an Executor or a function"):
        tu.numeric_grad(3, [x])


def test_check_numeric_gradient_eager_form_passes_and_fails():
    tu.check_numeric_gradient(lambda u, v: mx.nd.tanh(u) * v, [np.random.rand(3, 2),
                                                              np.random.rand(3, 2)], seed=1)

    class WrongGradient(mx.autograd.Function):
        def forward(self, u):
            return u * u

        def backward(self, dy):
            return dy * 3

    with pytest.raises(AssertionError, match="gradient of input 0 is wrong"):
        tu.check_numeric_gradient(lambda u: WrongGradient()(u), [np.random.rand(4)], seed=2)


def test_zero_size_shapes_when_allowed():
    np.random.seed(3)
    dims = [d for _ in range(200) for d in tu.rand_shape_2d(2, 2, allow_zero_size=True)
            + tu.rand_shape_3d(1, 1, 1, allow_zero_size=True)
            + tu.rand_shape_nd(2, 1, allow_zero_size=True)]
    assert set(dims) == {0, 1, 2}
    assert min(d for _ in range(50) for d in tu.rand_shape_nd(3, 1)) == 1


def test_check_consistency_tolerances_by_mxnet_names():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    sym = mx.sym.elemwise_mul(mx.sym.exp(a), b, name="m")
    ctx_list = [{"ctx": mx.cpu(0), "a": (3,), "b": (3,), "type_dict": {"a": np.float64,
                                                                        "b": np.float64}},
                {"ctx": mx.cpu(1), "a": (3,), "b": (3,), "type_dict": {"a": np.float16,
                                                                        "b": np.float16}}]
    truth = tu.check_consistency(sym, ctx_list)                    # float16 default: 1e-1
    assert sorted(truth) == ["a_grad", "b_grad", "m_output"]
    assert truth["a_grad"].dtype == np.float64                      # the most precise run
    with pytest.raises(AssertionError, match="found differences"):
        tu.check_consistency(sym, ctx_list, rtol=1e-7, atol=1e-9)
    with pytest.raises(AssertionError, match="found differences"):
        tu.check_consistency(sym, ctx_list, tol={np.float16: 1e-7})   # older MXNet's name
    result = tu.check_consistency(sym, ctx_list, rtol=1e-7, atol=1e-9, raise_on_err=False)
    assert set(result) == set(truth)


def test_check_speed_times_forward_and_backward():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=4, name="fc")
    whole = tu.check_speed(net, ctx=mx.cpu(), N=3, data=(2, 5))
    forward = tu.check_speed(net, location={"data": np.ones((2, 5)), "fc_weight": np.ones((4, 5)),
                                            "fc_bias": np.zeros(4)}, N=3, typ="forward")
    assert 0 < whole < 5 and 0 < forward < 5
    with pytest.raises(ValueError, match="typ must be 'whole' or 'forward'"):
        tu.check_speed(net, typ="backward", data=(2, 5))
