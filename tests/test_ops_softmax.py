"""softmax, log_softmax, softmin, SoftmaxActivation, softmax_cross_entropy."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, HybridNetError, ParamError, ShapeError
from hybridnet.ops import get_op
from hybridnet.ops.nn.softmax import softmax_into
from hybridnet.ops.registry import OpContext
from op_harness import OpCase, table_tests


def _np_softmax(x, axis=-1, temperature=None):
    x = x.astype(np.float64) / (temperature or 1.0)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _ref_softmax(x, axis=-1, temperature=None, dtype=None, use_length=False):
    return _np_softmax(x, axis, temperature)


def _ref_log_softmax(x, axis=-1, temperature=None, dtype=None, use_length=False):
    return np.log(_np_softmax(x, axis, temperature))


def _ref_softmin(x, axis=-1, temperature=None, dtype=None, use_length=False):
    return _np_softmax(-x, axis, temperature)


def _ref_softmax_length(x, length, axis=-1, **_):
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.zeros_like(x)
    for idx in np.ndindex(*x.shape[:-1]):
        n = int(length[idx])
        if n:
            out[idx][:n] = _np_softmax(x[idx][:n])
    return np.moveaxis(out, -1, axis)


def _ref_softmax_activation(x, mode="instance"):
    # MXNet 1.9: instance = the last axis (the whole instance for 2-D data), channel = axis 1
    return _np_softmax(x, -1 if mode == "instance" else 1)


def _ref_sce(x, label):
    logp = np.log(_np_softmax(x, 1))
    return np.array([-logp[np.arange(len(label)), label.astype(int)].sum()])


CASES = [
    OpCase("softmax", [(3, 5)], {}, _ref_softmax, id="softmax"),
    OpCase("softmax", [(2, 3, 4)], {"axis": 1}, _ref_softmax, id="softmax-axis1"),
    OpCase("softmax", [(2, 3, 4)], {"axis": 0, "temperature": 2.5}, _ref_softmax,
           id="softmax-temperature"),
    OpCase("softmax", [(4, 6)], {"dtype": "float64"}, _ref_softmax, id="softmax-dtype64"),
    OpCase("softmax", [(3, 5), np.array([5, 2, 0], np.int32)], {"use_length": True},
           _ref_softmax_length, grad_inputs=[0], id="softmax-length"),
    OpCase("softmax", [(4, 3, 2), np.array([[1, 4], [0, 2], [3, 3]], np.int64)],
           {"use_length": True, "axis": 0}, _ref_softmax_length, grad_inputs=[0],
           id="softmax-length-axis0"),
    OpCase("log_softmax", [(3, 5)], {}, _ref_log_softmax, id="log_softmax"),
    OpCase("log_softmax", [(2, 3, 4)], {"axis": 1, "temperature": 0.5}, _ref_log_softmax,
           id="log_softmax-axis1-T"),
    OpCase("softmin", [(3, 5)], {}, _ref_softmin, id="softmin"),
    OpCase("softmin", [(2, 3, 4)], {"axis": 1, "temperature": 3.0}, _ref_softmin,
           id="softmin-axis1-T"),
    OpCase("SoftmaxActivation", [(4, 6)], {}, _ref_softmax_activation,
           id="SoftmaxActivation-instance"),
    OpCase("SoftmaxActivation", [(2, 3, 2, 2)], {}, _ref_softmax_activation,
           id="SoftmaxActivation-instance-4d"),
    OpCase("SoftmaxActivation", [(2, 3, 2, 2)], {"mode": "channel"}, _ref_softmax_activation,
           id="SoftmaxActivation-channel"),
    OpCase("softmax_cross_entropy", [(4, 3), np.array([0, 2, 1, 2], np.float32)], {},
           _ref_sce, grad_inputs=[0], id="softmax_cross_entropy"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_output_dtype_follows_the_dtype_parameter():
    x = mx.nd.array(np.random.randn(2, 3).astype(np.float16), dtype=np.float16)
    y = mx.nd.softmax(x, dtype="float32")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.asnumpy(), _np_softmax(x.asnumpy().astype(np.float32)),
                               rtol=1e-6)
    assert mx.nd.softmax(x).dtype == np.float16


def test_large_inputs_are_stable():
    x = mx.nd.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    for fn in (mx.nd.softmax, mx.nd.log_softmax, mx.nd.softmin):
        assert np.all(np.isfinite(fn(x).asnumpy()))
    np.testing.assert_allclose(mx.nd.softmax(x).asnumpy()[1], [1 / 3] * 3, rtol=1e-6)


def test_length_input_shape_and_type_inference():
    op = get_op("softmax")
    p = op.parse_params({"use_length": True, "axis": 1})
    assert op.list_inputs(p) == ["data", "length"]
    assert op.list_inputs(op.parse_params({})) == ["data"]
    ins, outs, _ = op.infer_shape(p, [(2, 5, 3), None])
    assert ins[1] == (2, 3) and outs == [(2, 5, 3)]
    with pytest.raises(ShapeError, match=r"softmax: length \(for data \(2, 5, 3\) and axis=1\) "
                                         r"has shape \(2,\), expected \(2, 3\)"):
        op.infer_shape(p, [(2, 5, 3), (2,)])
    _, outs, _ = op.infer_shape(p, [None, None])
    assert outs == [None]
    ins, outs, _ = op.infer_type(p, [np.dtype(np.float32), None])
    assert ins[1] == np.int32 and outs == [np.float32]
    with pytest.raises(DTypeError, match="softmax: length has dtype float32, expected an integer"):
        op.infer_type(p, [np.dtype(np.float32), np.dtype(np.float32)])


def test_use_length_is_softmax_only():
    with pytest.raises(HybridNetError, match="log_softmax: use_length=True is not supported"):
        mx.nd.log_softmax(mx.nd.ones((2, 3)), use_length=True)


def test_softmax_cross_entropy_head_gradient_scales_the_result():
    x = np.random.randn(3, 4).astype(np.float32)
    label = np.array([1, 0, 3], np.float32)
    xa = mx.nd.array(x)
    xa.attach_grad()
    with mx.autograd.record():
        loss = mx.nd.softmax_cross_entropy(xa, mx.nd.array(label))
    loss.backward(mx.nd.array([2.5]))
    want = (_np_softmax(x, 1) - np.eye(4)[label.astype(int)]) * 2.5
    np.testing.assert_allclose(xa.grad.asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy_errors():
    op = get_op("softmax_cross_entropy")
    p = op.parse_params({})
    with pytest.raises(ShapeError, match=r"label \(for data \(4, 3\)\) has shape \(3,\), "
                                         r"expected \(4,\)"):
        op.infer_shape(p, [(4, 3), (3,)])
    with pytest.raises(ShapeError, match="data has shape \\(4, 3, 2\\), expected 2 dimensions"):
        op.infer_shape(p, [(4, 3, 2), None])
    assert op.infer_shape(p, [(4, 3), None])[0] == [(4, 3), (4,)]
    out = mx.nd.softmax_cross_entropy(mx.nd.ones((2, 3)), mx.nd.array([0, 3]))
    with pytest.raises(HybridNetError, match="label 3 is out of range for 3 classes"):
        out.asnumpy()


def test_softmax_activation_channel_needs_two_dims():
    with pytest.raises(ShapeError, match="mode='channel' needs data with a channel axis"):
        mx.nd.SoftmaxActivation(mx.nd.ones((3,)), mode="channel")


def test_bad_parameters():
    with pytest.raises(ParamError, match="softmax: parameter 'axis' got 'last'"):
        mx.nd.softmax(mx.nd.ones((2, 2)), axis="last")
    with pytest.raises(ParamError, match="parameter 'dtype' got 'int32'|dtype"):
        mx.nd.softmax(mx.nd.ones((2, 2)), dtype="complex64")
    with pytest.raises(ParamError, match="SoftmaxActivation: parameter 'mode' got 'spatial'"):
        mx.nd.SoftmaxActivation(mx.nd.ones((2, 2)), mode="spatial")
    p = get_op("softmax").parse_params({"axis": "1", "temperature": "2.0", "use_length": "False"})
    assert (p.axis, p.temperature, p.use_length) == (1, 2.0, False)


# ---- the numba fast paths (ops/kernels/softmax.py) against the numpy formulas ---------------
def test_blocked_softmax_is_bitwise_the_reference():
    from hybridnet.ops.kernels import softmax as fast
    rng = np.random.RandomState(0)
    x = (rng.standard_normal((2000, 300)) * 20).astype(np.float32)   # several row blocks
    x[2, 5] = np.inf                 # inf in a row: that row becomes nan, as in numpy
    x[3] = -np.inf
    for log in (False, True):
        want = np.empty((2000, 600), np.float32)[:, ::2]   # not contiguous: the numpy path
        with np.errstate(invalid="ignore"):
            got = np.empty_like(x)
            fast.softmax_rows(x, got, log)
            softmax_into(np, x, 1, want, log=log)
            inplace = x.copy()
            fast.softmax_rows(inplace, inplace, log)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(inplace, want)
    assert np.isnan(got[2]).all() and np.isnan(got[3]).all()


def test_cross_entropy_gradient_kernel_matches_numpy_exactly():
    from hybridnet.ops.kernels import softmax as fast
    rng = np.random.RandomState(1)
    prob = rng.uniform(0, 1, (6, 11)).astype(np.float32)
    target = np.array([0, 10, -1, 11, 3, 3])          # -1 and 11: no one-hot entry
    scale = np.float32(0.37)
    onehot = target[:, None] == np.arange(11)
    want = (prob - onehot) * scale
    got = np.empty_like(prob)
    fast.ce_grad_rows(prob, target, scale, got, False)
    np.testing.assert_array_equal(got, want)
    fast.ce_grad_rows(prob, target, scale, got, True)
    np.testing.assert_array_equal(got, want + want)
    inplace = prob.copy()
    fast.ce_grad_rows(inplace, target, scale, inplace, False)
    np.testing.assert_array_equal(inplace, want)


def test_cross_entropy_gradient_split_over_threads_matches_numpy_exactly():
    # 3 MB of rows: parallel_slices splits them (engine/parallel.py SPLIT_MIN_BYTES)
    from hybridnet.ops.kernels import softmax as fast
    rng = np.random.RandomState(3)
    prob = rng.uniform(0, 1, (300, 2500)).astype(np.float32)
    target = rng.randint(-2, 2502, 300)
    scale = np.float32(1 / 64)
    want = (prob - (target[:, None] == np.arange(2500))) * scale
    got = rng.uniform(0, 1, prob.shape).astype(np.float32)
    start = got.copy()
    fast.ce_grad_rows(prob, target, scale, got, True)
    np.testing.assert_array_equal(got, start + want)
    fast.ce_grad_rows(prob, target, scale, prob, False)
    np.testing.assert_array_equal(prob, want)


@pytest.mark.parametrize("normalization", ["null", "batch", "valid"])
def test_softmax_output_fast_and_reference_gradients_agree(normalization):
    # a non-contiguous gradient buffer takes the numpy reference path
    op = get_op("SoftmaxOutput")
    p = op.parse_params({"normalization": normalization, "grad_scale": 0.5})
    rng = np.random.RandomState(2)
    prob = rng.uniform(0, 1, (5, 9)).astype(np.float32)
    label = np.array([1, 8, 0, 4.7, 2], np.float32)
    fast_grad = np.empty_like(prob)
    wide = np.zeros((5, 18), np.float32)
    ctx = OpContext(np, mx.cpu(), None)
    op.backward(ctx, p, [None], [prob, label], [prob], [], [fast_grad, None], ["write", "null"])
    op.backward(ctx, p, [None], [prob, label], [prob], [], [wide[:, ::2], None],
                ["write", "null"])
    np.testing.assert_array_equal(fast_grad, wide[:, ::2])
