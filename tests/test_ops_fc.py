"""FullyConnected: forward vs numpy, gradients (finite differences and the closed form),
grad_req 'add', flatten on/off, shape inference (weight from data, partial shapes) and errors."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from hybridnet.ops.registry import OpContext
from op_harness import OpCase, table_tests


def fc_ref(x, w, b=None, *, num_hidden, no_bias=False, flatten=True):
    """Plain dense layer: rows of (flattened) x times w transposed, plus b."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    lead = x.shape[:1] if flatten else x.shape[:-1]
    out = x.reshape(int(np.prod(lead)), -1) @ w.T
    if not no_bias:
        out = out + b
    return out.reshape(tuple(lead) + (num_hidden,))


def _fc(shape, nh, bias=True, flatten=True, **kw):
    feat = int(np.prod(shape[1:])) if flatten else shape[-1]
    ins = [shape, (nh, feat)] + ([(nh,)] if bias else [])
    params = dict(num_hidden=nh, no_bias=not bias, flatten=flatten)
    return OpCase("FullyConnected", ins, params, fc_ref, rtol=1e-4, atol=1e-5,
                  id=f"FullyConnected-{shape}-{nh}-bias{bias}-flatten{flatten}", **kw)


CASES = [
    _fc((4, 7), 5),
    _fc((3, 2, 3, 2), 4),
    _fc((5, 6), 3, bias=False),
    _fc((2, 3, 6), 4, flatten=False),
    _fc((2, 2, 3, 5), 3, flatten=False, bias=False),
    _fc((6,), 2, flatten=False),
    _fc((1, 1), 1),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def _backward(params, arrays, head, req, init=None):
    op = get_op("FullyConnected")
    p = op.parse_params(params)
    ctx = OpContext(np, mx.cpu(), None)
    _, outs, _ = op.infer_shape(p, [a.shape for a in arrays])
    y = np.empty(outs[0], np.float32)
    op.forward(ctx, p, arrays, [], [y], True)
    grads = [g.copy() for g in init] if init else [np.empty_like(a) for a in arrays]
    op.backward(ctx, p, [head], arrays, [y], [], grads, [req] * len(arrays))
    return y, grads


@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=str)
def test_gradients_match_the_closed_form(case):
    x, w, b = case.arrays()
    head = np.random.RandomState(2).standard_normal(fc_ref(x, w, b, **case.params).shape)
    head = head.astype(np.float32)
    _, (dx, dw, db) = _backward(case.params, [x, w, b], head, "write")
    x2 = x.reshape(-1, w.shape[1]).astype(np.float64)
    h2 = head.reshape(-1, w.shape[0]).astype(np.float64)
    np.testing.assert_allclose(dx, (h2 @ w).reshape(x.shape), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, h2.T @ x2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, h2.sum(0), rtol=1e-5, atol=1e-5)


def test_grad_req_add_and_null():
    case = CASES[1]
    arrays = case.arrays()
    rng = np.random.RandomState(4)
    head = rng.standard_normal((3, 4)).astype(np.float32)
    _, written = _backward(case.params, arrays, head, "write")
    start = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    _, added = _backward(case.params, arrays, head, "add", init=start)
    for s, w, a in zip(start, written, added):
        np.testing.assert_allclose(a, s + w, rtol=1e-5, atol=1e-5)
    _, untouched = _backward(case.params, arrays, head, "null", init=start)
    for s, u in zip(start, untouched):
        np.testing.assert_array_equal(s, u)


def test_bias_add_and_sum_split_over_threads():
    # 2.4 MB outputs: the bias add and the bias gradient run as row slices on two threads
    # (engine/parallel.py); 'add' accumulates onto what was there
    rng = np.random.RandomState(5)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((600, 8), (1000, 8), (1000,)))
    head = rng.standard_normal((600, 1000)).astype(np.float32)
    y, written = _backward({"num_hidden": 1000}, [x, w, b], head, "write")
    h64 = head.astype(np.float64)
    np.testing.assert_allclose(y, fc_ref(x, w, b, num_hidden=1000), rtol=1e-4, atol=1e-4)
    for got, want in zip(written, (h64 @ w, h64.T @ x, h64.sum(0))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-4)
    start = [rng.standard_normal(a.shape).astype(np.float32) for a in (x, w, b)]
    _, added = _backward({"num_hidden": 1000}, [x, w, b], head, "add", init=start)
    for got, s, g in zip(added, start, written):
        np.testing.assert_allclose(got, s + g, rtol=1e-5, atol=1e-4)


def test_out_and_non_contiguous_output():
    x, w, b = CASES[0].arrays()
    out = mx.nd.zeros((4, 5))
    mx.nd.FullyConnected(mx.nd.array(x), mx.nd.array(w), mx.nd.array(b), num_hidden=5, out=out)
    np.testing.assert_allclose(out.asnumpy(), fc_ref(x, w, b, num_hidden=5), rtol=1e-5,
                               atol=1e-5)
    op = get_op("FullyConnected")
    big = np.zeros((4, 10), np.float32)
    op.forward(OpContext(np, mx.cpu(), None), op.parse_params({"num_hidden": 5}), [x, w, b],
               [], [big[:, ::2]], False)
    np.testing.assert_allclose(big[:, ::2], fc_ref(x, w, b, num_hidden=5), rtol=1e-5,
                               atol=1e-5)
    assert not big[:, 1::2].any()


def _infer(shapes, **params):
    op = get_op("FullyConnected")
    return op.infer_shape(op.parse_params(params), shapes)


def test_weight_and_bias_are_inferred_from_data():
    assert _infer([(32, 784), None, None], num_hidden=10) == \
        ([(32, 784), (10, 784), (10,)], [(32, 10)], [])
    assert _infer([(8, 3, 5), None, None], num_hidden=4)[0][1] == (4, 15)
    assert _infer([(8, 3, 5), None], num_hidden=4, flatten=False, no_bias=True) == \
        ([(8, 3, 5), (4, 5)], [(8, 3, 4)], [])
    assert _infer([(7,), None, None], num_hidden=4)[1] == [(7, 4)]      # as MXNet: 7 rows
    assert _infer([(7,), None, None], num_hidden=4, flatten=False)[1] == [(4,)]


def test_partial_shapes():
    assert _infer([(0, 3, 5), None, None], num_hidden=4) == \
        ([(0, 3, 5), (4, 15), (4,)], [(0, 4)], [])
    ins, outs, _ = _infer([(2, 3, 0), None, None], num_hidden=4, flatten=False)
    assert ins[1] == (4, 0) and outs == [(2, 3, 4)]
    ins, outs, _ = _infer([(2, 3, 0), (4, 6), None], num_hidden=4, flatten=False)
    assert ins[0] == (2, 3, 6)                                      # data's last axis from weight
    ins, outs, _ = _infer([(5, 0), (4, 6), None], num_hidden=4)
    assert ins[0] == (5, 6) and outs == [(5, 4)]
    ins, outs, _ = _infer([None, (4, 7), None], num_hidden=4)
    assert ins == [None, (4, 7), (4,)] and outs == [None]


def test_shape_errors_say_what_was_expected_and_why():
    with pytest.raises(ShapeError, match=r"FullyConnected: weight has shape \(10, 785\), "
                                         r"expected \(10, 784\) from data \(32, 784\) and "
                                         r"num_hidden=10"):
        _infer([(32, 784), (10, 785), None], num_hidden=10)
    with pytest.raises(ShapeError, match=r"weight has shape \(9, 784\), expected \(10, 784\)"):
        _infer([(32, 784), (9, 784), None], num_hidden=10)
    with pytest.raises(ShapeError, match=r"bias has shape \(5,\), expected \(4,\) for "
                                         r"num_hidden=4"):
        _infer([(2, 7), None, (5,)], num_hidden=4)
    with pytest.raises(ShapeError, match="weight has shape"):
        mx.nd.FullyConnected(mx.nd.ones((2, 7)), mx.nd.ones((4, 8)), mx.nd.ones((4,)),
                             num_hidden=4)


def test_parameters():
    op = get_op("FullyConnected")
    p = op.parse_params({"num_hidden": "10", "no_bias": "True", "flatten": "False"})
    assert (p.num_hidden, p.no_bias, p.flatten) == (10, True, False)
    assert op.list_inputs(p) == ["data", "weight"]
    assert op.list_inputs(op.parse_params({"num_hidden": 3})) == ["data", "weight", "bias"]
    with pytest.raises(ParamError, match="FullyConnected: required parameter 'num_hidden'"):
        op.parse_params({})
    with pytest.raises(ParamError, match=r"FullyConnected: num_hidden=0 must be positive"):
        _infer([(2, 3), None, None], num_hidden=0)
    with pytest.raises(ParamError, match="unknown parameter 'num_output'"):
        op.parse_params({"num_hidden": 2, "num_output": 3})


@pytest.mark.gpu
def test_gpu_matches_cpu():
    x, w, b = CASES[1].arrays()
    cpu = mx.nd.FullyConnected(mx.nd.array(x), mx.nd.array(w), mx.nd.array(b), num_hidden=4)
    g = mx.gpu(0)
    gpu = mx.nd.FullyConnected(mx.nd.array(x, ctx=g), mx.nd.array(w, ctx=g),
                               mx.nd.array(b, ctx=g), num_hidden=4)
    np.testing.assert_allclose(gpu.asnumpy(), cpu.asnumpy(), rtol=1e-5, atol=1e-5)
