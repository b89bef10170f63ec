"""Matrix products: dot, batch_dot, linalg.gemm, linalg.gemm2."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def _dot_ref(a, b, transpose_a=False, transpose_b=False):
    """MXNet's N-d dot: lhs as a matrix over its last (or, transposed, first) axis."""
    if a.ndim == 1 and b.ndim == 1:
        return np.array([a @ b])
    A = a.reshape(a.shape[0], -1).T if transpose_a else a.reshape(-1, a.shape[-1])
    B = b.reshape(-1, b.shape[-1]).T if transpose_b else b.reshape(b.shape[0], -1)
    keep_a = a.shape[1:] if transpose_a else a.shape[:-1]
    keep_b = b.shape[:-1] if transpose_b else b.shape[1:]
    return (A @ B).reshape(keep_a + keep_b)


def _batch_dot_ref(a, b, transpose_a=False, transpose_b=False):
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return a @ b


def _gemm_ref(a, b, c=None, transpose_a=False, transpose_b=False, alpha=1.0, beta=1.0, axis=-2):
    a, b = np.moveaxis(a, axis, -2), np.moveaxis(b, axis, -2)
    out = alpha * _batch_dot_ref(a, b, transpose_a, transpose_b)
    if c is not None:
        out = out + beta * np.moveaxis(c, axis, -2)
    return np.moveaxis(out, -2, axis)


def _gemm2_ref(a, b, **params):
    return _gemm_ref(a, b, None, **params)


CASES = [
    OpCase("dot", [(3, 4), (4, 5)], {}, _dot_ref, id="dot"),
    OpCase("dot", [(4, 3), (4, 5)], {"transpose_a": True}, _dot_ref, id="dot-ta"),
    OpCase("dot", [(3, 4), (5, 4)], {"transpose_b": True}, _dot_ref, id="dot-tb"),
    OpCase("dot", [(4, 3), (5, 4)], {"transpose_a": True, "transpose_b": True}, _dot_ref,
           id="dot-ta-tb"),
    OpCase("dot", [(2, 3, 4), (4, 5)], {}, _dot_ref, id="dot-3d-2d"),
    OpCase("dot", [(2, 3, 4), (4, 2, 5)], {}, _dot_ref, id="dot-3d-3d"),
    OpCase("dot", [(4, 2, 3), (4, 5)], {"transpose_a": True}, _dot_ref, id="dot-3d-ta"),
    OpCase("dot", [(2, 3, 4), (5, 2, 4)], {"transpose_b": True}, _dot_ref, id="dot-3d-tb"),
    OpCase("dot", [(4,), (4,)], {}, _dot_ref, id="dot-vectors"),
    OpCase("dot", [(4,), (4, 3)], {}, _dot_ref, id="dot-vector-matrix"),
    OpCase("dot", [(2, 4), (4,)], {}, _dot_ref, id="dot-matrix-vector"),
    OpCase("dot", [(3, 4), (4, 5)], {}, _dot_ref, dtype=np.float64, id="dot-float64"),
    OpCase("batch_dot", [(2, 3, 4), (2, 4, 5)], {}, _batch_dot_ref, id="batch_dot"),
    OpCase("batch_dot", [(2, 4, 3), (2, 4, 5)], {"transpose_a": True}, _batch_dot_ref,
           id="batch_dot-ta"),
    OpCase("batch_dot", [(2, 3, 4), (2, 5, 4)], {"transpose_b": True}, _batch_dot_ref,
           id="batch_dot-tb"),
    OpCase("batch_dot", [(2, 2, 3, 4), (2, 2, 4, 5)], {}, _batch_dot_ref, id="batch_dot-4d"),
    OpCase("_linalg_gemm", [(3, 4), (4, 5), (3, 5)], {"alpha": 2.0, "beta": 0.5}, _gemm_ref,
           id="gemm"),
    OpCase("linalg_gemm", [(2, 4, 3), (2, 5, 4), (2, 3, 5)],
           {"transpose_a": True, "transpose_b": True}, _gemm_ref, id="gemm-batched-tt"),
    OpCase("_linalg_gemm", [(2, 3, 4), (4, 3, 5), (2, 3, 5)], {"axis": 0, "beta": -1.0},
           _gemm_ref, id="gemm-axis0"),
    OpCase("_linalg_gemm2", [(3, 4), (4, 5)], {"alpha": 3.0}, _gemm2_ref, id="gemm2"),
    OpCase("linalg_gemm2", [(6, 2, 7, 4), (6, 5, 7, 4)], {"axis": 1, "transpose_b": True},
           _gemm2_ref, id="gemm2-axis1-tb"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_linalg_namespace_and_aliases():
    a, b = mx.nd.ones((2, 3)), mx.nd.ones((3, 4))
    c = mx.nd.ones((2, 4))
    for fn in (mx.nd.linalg.gemm2, mx.nd.linalg_gemm2, mx.nd.op._linalg_gemm2):
        np.testing.assert_array_equal(fn(a, b).asnumpy(), np.full((2, 4), 3))
    for fn in (mx.nd.linalg.gemm, mx.nd.linalg_gemm):
        np.testing.assert_array_equal(fn(a, b, c, beta=2).asnumpy(), np.full((2, 4), 5))
    assert get_op("linalg_gemm") is get_op("_linalg_gemm")


def test_integer_dot():
    y = mx.nd.dot(mx.nd.array([[1, 2]], dtype="int32"), mx.nd.array([[3], [4]], dtype="int32"))
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y.asnumpy(), [[11]])


def test_large_dot_matches_numpy():
    rng = np.random.RandomState(1)
    a, b = rng.randn(64, 300).astype(np.float32), rng.randn(300, 128).astype(np.float32)
    got = mx.nd.dot(mx.nd.array(a), mx.nd.array(b)).asnumpy()
    np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)


def test_grad_req_add_and_null():
    op = get_op("dot")
    p = op.parse_params({"transpose_b": True})
    ctx = mx.ops.resource.op_context(mx.cpu())
    a, b = np.ones((2, 3), np.float32), np.full((4, 3), 2, np.float32)
    g = np.ones((2, 4), np.float32)
    da = np.ones((2, 3), np.float32)
    op.backward(ctx, p, [g], [a, b], [None], [], [da, None], ["add", "null"])
    np.testing.assert_array_equal(da, np.full((2, 3), 1 + 8))


def test_partial_inference():
    op = get_op("dot")
    assert op.infer_shape(op.parse_params({}), [(0, 4), (4, 5)])[1] == [(0, 5)]
    assert op.infer_shape(op.parse_params({}), [None, (4, 5)])[1] == [None]
    gemm = get_op("_linalg_gemm")
    ins, outs, _ = gemm.infer_shape(gemm.parse_params({}), [(3, 4), (4, 5), None])
    assert ins[2] == (3, 5) and outs == [(3, 5)]
    ins, outs, _ = gemm.infer_shape(gemm.parse_params({}), [None, None, (3, 5)])
    assert outs == [(3, 5)]


def test_shape_errors_name_both_shapes():
    with pytest.raises(ShapeError, match=r"dot: lhs \(2, 3\) and rhs \(4, 5\) do not fit: the "
                                         r"last axis of lhs has size 3, the first axis of rhs "
                                         r"has size 4"):
        mx.nd.dot(mx.nd.zeros((2, 3)), mx.nd.zeros((4, 5)))
    with pytest.raises(ShapeError, match=r"dot: cannot transpose a vector"):
        mx.nd.dot(mx.nd.zeros((3,)), mx.nd.zeros((3,)), transpose_a=True)
    with pytest.raises(ShapeError, match=r"batch_dot: lhs \(2, 3, 4\) and rhs \(3, 4, 5\) do "
                                         r"not fit"):
        mx.nd.batch_dot(mx.nd.zeros((2, 3, 4)), mx.nd.zeros((3, 4, 5)))
    with pytest.raises(ShapeError, match=r"batch_dot: .* must both be N-d with the same N >= 3"):
        mx.nd.batch_dot(mx.nd.zeros((3, 4)), mx.nd.zeros((4, 5)))
    with pytest.raises(ShapeError, match=r"_linalg_gemm: C has shape \(3, 4\), expected "
                                         r"\(3, 5\)"):
        mx.nd.linalg.gemm(mx.nd.zeros((3, 4)), mx.nd.zeros((4, 5)), mx.nd.zeros((3, 4)))
    with pytest.raises(ShapeError, match=r"_linalg_gemm2: axis=-1 is the column axis"):
        mx.nd.linalg.gemm2(mx.nd.zeros((3, 4)), mx.nd.zeros((4, 5)), axis=-1)


def test_bad_parameters():
    a = mx.nd.zeros((2, 2))
    with pytest.raises(ParamError, match="dot: unknown parameter 'trans_a'; valid parameters: "
                                         "transpose_a, transpose_b, forward_stype"):
        mx.nd.dot(a, a, trans_a=True)
    with pytest.raises(ParamError, match="dot: parameter 'transpose_a' got 'yes'"):
        mx.nd.dot(a, a, transpose_a="yes")
    with pytest.raises(ParamError, match="_linalg_gemm2: parameter 'alpha' got 'big'"):
        mx.nd.linalg.gemm2(a, a, alpha="big")
