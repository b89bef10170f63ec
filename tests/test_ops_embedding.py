"""Embedding: lookup vs numpy, weight gradient (repeated indices accumulate), errors."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, HybridNetError, ParamError, ShapeError
from hybridnet.ops import get_op
from hybridnet.ops.kernels.scatter import add_at, scatter_add_rows
from op_harness import OpCase, table_tests


def _ref_embedding(data, weight, input_dim, output_dim, **_):
    return weight.astype(np.float64)[data.astype(np.int64)]


def _indices(high):
    def init(rng, i, shape):
        return rng.randint(0, high, shape) if i == 0 else rng.standard_normal(shape)
    return init


CASES = [
    OpCase("Embedding", [(5,), (7, 3)], {"input_dim": 7, "output_dim": 3}, _ref_embedding,
           init=_indices(7), grad_inputs=[1], id="Embedding-1d"),
    OpCase("Embedding", [(2, 6), (4, 5)], {"input_dim": 4, "output_dim": 5}, _ref_embedding,
           init=_indices(4), grad_inputs=[1], id="Embedding-2d-repeats"),
    OpCase("Embedding", [np.array([[0.0, 2.9], [1.2, 2.0]], np.float32), (3, 2)],
           {"input_dim": 3, "output_dim": 2}, _ref_embedding, grad_inputs=[1],
           id="Embedding-truncates-float-indices"),
    OpCase("Embedding", [np.array([[0, 2], [1, 1]], np.int32), (3, 4)],
           {"input_dim": 3, "output_dim": 4, "sparse_grad": True}, _ref_embedding,
           grad_inputs=[1], id="Embedding-int-indices-sparse-grad"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_weight_gradient_accumulates_repeated_indices():
    data = mx.nd.array([[1, 1, 3], [1, 0, 3]])
    weight = mx.nd.array(np.random.randn(5, 2))
    weight.attach_grad()
    g = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    with mx.autograd.record():
        y = mx.nd.Embedding(data, weight, input_dim=5, output_dim=2)
    y.backward(mx.nd.array(g))
    want = np.zeros((5, 2), np.float32)
    for (i, j), k in np.ndenumerate(data.asnumpy().astype(int)):
        want[k] += g[i, j]
    np.testing.assert_array_equal(weight.grad.asnumpy(), want)


def test_grad_req_add_accumulates_across_backwards():
    data = mx.nd.array([0, 2, 2])
    weight = mx.nd.array(np.ones((3, 2)))
    weight.attach_grad(grad_req="add")
    for _ in range(2):
        with mx.autograd.record():
            y = mx.nd.Embedding(data, weight, input_dim=3, output_dim=2)
        y.backward()
    np.testing.assert_array_equal(weight.grad.asnumpy(), [[2, 2], [0, 0], [4, 4]])


def test_out_of_range_index_is_an_error_at_the_next_wait():
    weight = mx.nd.ones((4, 3))
    # the call itself returns (the indices are only read when the kernel runs) ...
    y = mx.nd.Embedding(mx.nd.array([[0, 3], [4, 1]]), weight, input_dim=4, output_dim=3)
    # ... and the error surfaces at the wait, naming the index, where it is, and input_dim
    msg = r"Embedding: index 4 at data position \(1, 0\) is out of range for input_dim=4"
    with pytest.raises(HybridNetError, match=msg):
        y.asnumpy()
    with pytest.raises(HybridNetError, match=msg):      # the output stays failed
        y.wait_to_read()
    z = mx.nd.Embedding(mx.nd.array([-1.0]), weight, input_dim=4, output_dim=3)
    with pytest.raises(HybridNetError, match="index -1 at data position"):
        (z + 1).asnumpy()                               # the error flows to dependents


def test_shape_and_type_inference():
    op = get_op("Embedding")
    p = op.parse_params({"input_dim": 10, "output_dim": 4})
    ins, outs, _ = op.infer_shape(p, [(2, 3), None])
    assert ins[1] == (10, 4) and outs == [(2, 3, 4)]
    ins, outs, _ = op.infer_shape(p, [None, None])
    assert ins[1] == (10, 4) and outs == [None]
    with pytest.raises(ShapeError, match=r"Embedding: weight \(for input_dim=10, output_dim=4\) "
                                         r"has shape \(10, 5\), expected \(10, 4\)"):
        op.infer_shape(p, [(2, 3), (10, 5)])
    q = op.parse_params({"input_dim": 10, "output_dim": 4, "dtype": "float16"})
    ins, outs, _ = op.infer_type(q, [np.dtype(np.int32), None])
    assert ins == [np.int32, np.float16] and outs == [np.float16]
    y = mx.nd.Embedding(mx.nd.array([1, 2], dtype=np.int64),
                        mx.nd.ones((3, 2), dtype=np.float64), input_dim=3, output_dim=2,
                        dtype="float64")
    assert y.dtype == np.float64 and y.shape == (2, 2)


@pytest.mark.parametrize("m,v,d", [(50, 7, 3), (1000, 100, 16), (1, 1, 1)])
def test_scatter_add_kernel_matches_np_add_at(m, v, d):
    rng = np.random.RandomState(m)
    idx, rows = rng.randint(0, v, m), rng.standard_normal((m, d)).astype(np.float32)
    fast, ref = np.zeros((v, d), np.float32), np.zeros((v, d), np.float32)
    scatter_add_rows(np, fast, idx, rows)
    add_at(np, ref, idx, rows)
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-6)


def test_bad_parameters():
    with pytest.raises(ParamError, match="Embedding: required parameter 'input_dim' is missing"):
        mx.nd.Embedding(mx.nd.ones(2), mx.nd.ones((2, 2)), output_dim=2)
    with pytest.raises(ShapeError, match="input_dim=0 and output_dim=2 must both be at least 1"):
        mx.nd.Embedding(mx.nd.ones(2), mx.nd.ones((2, 2)), input_dim=0, output_dim=2)
    with pytest.raises(ParamError, match="Embedding: parameter 'dtype': 'float8' is not a dtype"):
        mx.nd.Embedding(mx.nd.ones(2), mx.nd.ones((2, 2)), input_dim=2, output_dim=2,
                        dtype="float8")
    p = get_op("Embedding").parse_params({"input_dim": "100", "output_dim": "8",
                                          "dtype": "float32", "sparse_grad": "True"})
    assert (p.input_dim, p.output_dim, p.dtype, p.sparse_grad) == (100, 8, np.float32, True)


def test_weight_dtype_is_followed_unless_dtype_is_set():
    op = get_op("Embedding")
    p = op.parse_params({"input_dim": 3, "output_dim": 2})
    assert op.infer_type(p, [np.dtype(np.float32), np.dtype(np.float64)])[1] == [np.float64]
    q = op.parse_params({"input_dim": 3, "output_dim": 2, "dtype": "float16"})
    with pytest.raises(DTypeError, match="Embedding: weight has dtype float64, expected float16 "
                                         "from dtype=float16"):
        op.infer_type(q, [np.dtype(np.float32), np.dtype(np.float64)])
