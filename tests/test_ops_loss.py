"""Loss heads (SoftmaxOutput, regression outputs, SVMOutput, MakeLoss, make_loss) and smooth_l1.

A loss head's backward is the gradient of the loss it stands for, not of its output, so its
gradient is checked against finite differences of that loss (``_LOSSES``), and against a
loop-by-loop numpy reference of MXNet's rules for SoftmaxOutput's options.
"""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def _softmax(x, axis=-1):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def _ref_softmax_output(x, label, multi_output=False, preserve_shape=False, **_):
    if multi_output:
        return _softmax(x, 1)
    if preserve_shape:
        return _softmax(x, -1)
    return _softmax(x.reshape(x.shape[0], -1), 1).reshape(x.shape)


def _ref_smooth_l1(x, scalar=1.0):
    s2 = scalar * scalar
    return np.where(np.abs(x) < 1 / s2, 0.5 * s2 * x * x, np.abs(x) - 0.5 / s2)


def _labels(k):
    """init for (data, label) cases: normal data, integer labels in [0, k)."""
    def init(rng, i, shape):
        return rng.standard_normal(shape) if i == 0 else rng.randint(0, k, shape)
    return init


CASES = [
    OpCase("SoftmaxOutput", [(4, 5), (4,)], {}, _ref_softmax_output, grad=False,
           init=_labels(5), id="SoftmaxOutput"),
    OpCase("Softmax", [(4, 5), (4,)], {}, _ref_softmax_output, grad=False, init=_labels(5),
           id="Softmax-alias"),
    OpCase("SoftmaxOutput", [(2, 3, 2, 2), (2, 3, 2)], {}, _ref_softmax_output, grad=False,
           init=_labels(3), id="SoftmaxOutput-4d-flattened"),
    OpCase("SoftmaxOutput", [(2, 3, 4), (2, 4)], {"multi_output": True}, _ref_softmax_output,
           grad=False, init=_labels(3), id="SoftmaxOutput-multi"),
    OpCase("SoftmaxOutput", [(2, 3, 4), (2, 3)], {"preserve_shape": True},
           _ref_softmax_output, grad=False, init=_labels(4), id="SoftmaxOutput-preserve"),
    OpCase("LinearRegressionOutput", [(4, 3), (4, 3)], {}, lambda x, t, **k: x, grad=False,
           id="LinearRegressionOutput"),
    OpCase("LogisticRegressionOutput", [(4, 3), (4, 3)], {}, lambda x, t, **k: _sigmoid(x),
           grad=False, id="LogisticRegressionOutput"),
    OpCase("MAERegressionOutput", [(4, 1), (4,)], {}, lambda x, t, **k: x, grad=False,
           id="MAERegressionOutput"),
    OpCase("SVMOutput", [(4, 3), (4,)], {}, lambda x, t, **k: x, grad=False, init=_labels(3),
           id="SVMOutput"),
    OpCase("MakeLoss", [(3, 4)], {"grad_scale": 2.0}, lambda x, **k: x, grad=False,
           id="MakeLoss"),
    OpCase("make_loss", [(3, 4)], {}, lambda x: x, grad=False, id="make_loss"),
    OpCase("smooth_l1", [(4, 5)], {}, _ref_smooth_l1, id="smooth_l1"),
    OpCase("smooth_l1", [(4, 5)], {"scalar": 2.0}, _ref_smooth_l1, id="smooth_l1-sigma2"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- loss-head gradients against finite differences of the loss they stand for --------------
def _head_grad(op, x, label=None, **params):
    xa = mx.nd.array(x, dtype=np.float64)
    xa.attach_grad()
    inputs = [xa] if label is None else [xa, mx.nd.array(label, dtype=np.float64)]
    with mx.autograd.record():
        y = getattr(mx.nd, op)(*inputs, **params)
    y.backward(mx.nd.array(np.full(y.shape, 7.0)))        # a head gradient heads must ignore
    return xa.grad.asnumpy()


def _numeric(loss, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (loss(x + d) - loss(x - d)) / (2 * eps)
    return g


def _ce(x, label, axis):
    logp = np.log(_softmax(x, axis))
    return -(np.take_along_axis(logp, np.expand_dims(label.astype(int), axis), axis)).sum()


_LOSSES = [
    # (op, data shape, label, params, loss(x, label))
    ("SoftmaxOutput", (4, 5), np.array([0, 4, 2, 1.]), {}, lambda x, t: _ce(x, t, 1)),
    ("SoftmaxOutput", (4, 5), np.array([0, 4, 2, 1.]), {"grad_scale": 3.0,
                                                        "normalization": "batch"},
     lambda x, t: 3 * _ce(x, t, 1) / 4),
    ("SoftmaxOutput", (2, 3, 4), np.array([[0, 2, 1, 1], [2, 2, 0, 1.]]),
     {"multi_output": True, "normalization": "valid"}, lambda x, t: _ce(x, t, 1) / 8),
    ("SoftmaxOutput", (2, 4, 3), np.array([[0, 2, 1, 1], [2, 2, 0, 1.]]),
     {"preserve_shape": True}, lambda x, t: _ce(x, t, 2)),
    ("LinearRegressionOutput", (4, 3), None, {"grad_scale": 2.0},
     lambda x, t: 2 * 0.5 * ((x - t) ** 2).sum() / 3),
    ("LogisticRegressionOutput", (4, 3), None, {},
     lambda x, t: -(t * np.log(_sigmoid(x)) + (1 - t) * np.log(1 - _sigmoid(x))).sum() / 3),
    ("MAERegressionOutput", (2, 3, 2), None, {"grad_scale": 0.5},
     lambda x, t: 0.5 * np.abs(x - t).sum() / 6),
    ("SVMOutput", (4, 3), np.array([0, 2, 1, 1.]), {"margin": 1.5,
                                                     "regularization_coefficient": 0.5},
     lambda x, t: 0.5 * _svm_loss(x, t, 1.5, squared=True)),
    ("SVMOutput", (4, 3), np.array([0, 2, 1, 1.]), {"use_linear": True},
     lambda x, t: _svm_loss(x, t, 1.0, squared=False)),
    ("MakeLoss", (3, 4), None, {"grad_scale": 2.0, "normalization": "batch"},
     lambda x, t: 2 * x.sum() / 3),
    ("make_loss", (3, 4), None, {}, lambda x, t: x.sum()),
]


def _svm_loss(x, t, margin, squared):
    is_label = np.eye(x.shape[1], dtype=bool)[t.astype(int)]
    hinge = np.maximum(0, margin - np.where(is_label, x, -x))
    return (hinge ** 2).sum() if squared else hinge.sum()


@pytest.mark.parametrize("op,shape,label,params,loss", _LOSSES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(_LOSSES)])
def test_loss_head_gradient_is_the_gradient_of_its_loss(op, shape, label, params, loss):
    rng = np.random.RandomState(7)
    x = rng.standard_normal(shape)
    if label is None and "Regression" in op:
        label = rng.uniform(0, 1, shape)
    got = _head_grad(op, x, label, **params)
    want = _numeric(lambda v: loss(v, label), x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ---- SoftmaxOutput's options against a loop-by-loop reference of MXNet's rules -------------
def _ref_so_grad(x, label, grad_scale=1.0, ignore_label=-1.0, multi_output=False,
                 use_ignore=False, preserve_shape=False, normalization="null", out_grad=False,
                 smooth_alpha=0.0):
    if multi_output:
        n, k = x.shape[:2]
        prob = _softmax(x.reshape(n, k, -1), 1)
        labels = label.reshape(n, -1)
        grad = np.zeros_like(prob)
        for i in range(n):
            for j in range(prob.shape[2]):
                c = int(labels[i, j])
                if use_ignore and c == int(ignore_label):
                    continue
                grad[i, :, j] = prob[i, :, j] - (np.arange(k) == c)
        per = prob.shape[2]
        denom = {"null": per, "batch": per * n}.get(normalization)
    else:
        prob = _softmax(x, -1) if preserve_shape else _softmax(x.reshape(x.shape[0], -1), 1)
        prob = prob.reshape(-1, prob.shape[-1])
        labels = label.reshape(-1)
        k = prob.shape[1]
        grad = np.zeros_like(prob)
        for i in range(prob.shape[0]):
            c = int(labels[i])
            if use_ignore and c == int(ignore_label):
                continue
            target = np.where(np.arange(k) == c, 1 - smooth_alpha, smooth_alpha / (k - 1))
            grad[i] = prob[i] - target
        denom = {"null": 1, "batch": labels.size}.get(normalization)
    if denom is None:
        denom = max(int((labels.astype(int) != int(ignore_label)).sum()), 1)
    grad = grad * grad_scale / denom
    if out_grad:
        grad = grad * prob
    return grad.reshape(x.shape)


_SO_OPTIONS = [
    {}, {"normalization": "batch"}, {"normalization": "valid"},
    {"use_ignore": True}, {"use_ignore": True, "normalization": "valid"},
    {"use_ignore": True, "ignore_label": 2, "normalization": "batch"},
    {"grad_scale": 2.5}, {"smooth_alpha": 0.3}, {"smooth_alpha": 0.2, "use_ignore": True},
    {"out_grad": True},
]


@pytest.mark.parametrize("params", _SO_OPTIONS, ids=str)
@pytest.mark.parametrize("layout", ["2d", "multi", "preserve"])
def test_softmax_output_gradient_rules(params, layout):
    rng = np.random.RandomState(1)
    if layout == "2d":
        x, label = rng.standard_normal((5, 4)), np.array([0, 3, -1, 2, 7.])
    elif layout == "multi":
        x, label = rng.standard_normal((2, 3, 4)), np.array([[0, 2, -1, 1], [2, 2, 0, 5.]])
        params = dict(params, multi_output=True)
    else:
        x, label = rng.standard_normal((2, 3, 4)), np.array([[0, 2, 3], [-1, 3, 1.]])
        params = dict(params, preserve_shape=True)
    got = _head_grad("SoftmaxOutput", x, label, **params)
    np.testing.assert_allclose(got, _ref_so_grad(x, label, **params), rtol=1e-6, atol=1e-9)


def test_softmax_output_label_truncates_towards_zero():
    x = np.random.RandomState(0).standard_normal((4, 3))
    got = _head_grad("SoftmaxOutput", x, np.array([0.6, 1.5, 2.7, -0.5]))
    np.testing.assert_allclose(got, _softmax(x) - np.eye(3)[[0, 1, 2, 0]], rtol=1e-6)


def test_softmax_output_probability_label_ignores_normalization():
    rng = np.random.RandomState(0)
    x, target = rng.standard_normal((4, 3)), _softmax(rng.standard_normal((4, 3)))
    got = _head_grad("SoftmaxOutput", x, target, grad_scale=2.0, normalization="batch")
    np.testing.assert_allclose(got, 2 * (_softmax(x) - target), rtol=1e-6)


def test_softmax_output_all_ignored_with_valid_normalization_gives_zero():
    x = np.random.RandomState(0).standard_normal((3, 4))
    got = _head_grad("SoftmaxOutput", x, np.full(3, -1.0), use_ignore=True,
                     normalization="valid")
    np.testing.assert_array_equal(got, 0)


def test_softmax_output_multi_output_label_layouts():
    op = get_op("SoftmaxOutput")
    p = op.parse_params({"multi_output": True})
    assert op.infer_shape(p, [(4, 3, 5, 2), None])[0][1] == (4, 10)
    for label in [(4, 10), (4, 5, 2), (4, 1, 5, 2), (4, 0, 2)]:
        ins, outs, _ = op.infer_shape(p, [(4, 3, 5, 2), label])
        assert outs == [(4, 3, 5, 2)] and 0 not in ins[1]
    with pytest.raises(ShapeError, match=r"SoftmaxOutput: label has shape \(4, 5, 2, 1\), "
                                         r"expected \(4, 10\) or \(4, 5, 2\) for data "
                                         r"\(4, 3, 5, 2\)"):
        op.infer_shape(p, [(4, 3, 5, 2), (4, 5, 2, 1)])
    x = np.random.RandomState(0).standard_normal((2, 3, 2, 2))
    label = np.random.RandomState(1).randint(0, 3, (2, 2, 2)).astype(np.float64)
    g1 = _head_grad("SoftmaxOutput", x, label, multi_output=True)
    g2 = _head_grad("SoftmaxOutput", x, label.reshape(2, 4), multi_output=True)
    g3 = _head_grad("SoftmaxOutput", x, label.reshape(2, 1, 2, 2), multi_output=True)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(g1, g3)


def test_label_shape_errors_name_op_label_and_expected_shape():
    op = get_op("SoftmaxOutput")
    p = op.parse_params({})
    assert op.infer_shape(p, [(32, 10), None])[0][1] == (32,)
    with pytest.raises(ShapeError, match=r"SoftmaxOutput: label has shape \(31,\), expected "
                                         r"\(32,\) for data \(32, 10\)"):
        op.infer_shape(p, [(32, 10), (31,)])
    with pytest.raises(ShapeError, match=r"label has shape \(3,\), expected \(4,\)"):
        mx.nd.SoftmaxOutput(mx.nd.ones((4, 5)), mx.nd.ones((3,)))
    lin = get_op("LinearRegressionOutput")
    q = lin.parse_params({})
    assert lin.infer_shape(q, [(8, 1), None])[0][1] == (8,)
    assert lin.infer_shape(q, [(8, 3), None])[0][1] == (8, 3)
    assert lin.infer_shape(q, [(8, 3), (8, 3, 1)])[0][1] == (8, 3, 1)
    with pytest.raises(ShapeError, match=r"LinearRegressionOutput: label has shape \(8, 2\), "
                                         r"expected \(8, 3\) \(or another shape with 8 rows "
                                         r"and 24 elements\) for data \(8, 3\)"):
        lin.infer_shape(q, [(8, 3), (8, 2)])
    svm = get_op("SVMOutput")
    with pytest.raises(ShapeError, match=r"SVMOutput: label has shape \(4, 3\), expected "
                                         r"\(4,\) for data \(4, 3\)"):
        svm.infer_shape(svm.parse_params({}), [(4, 3), (4, 3)])


def test_partial_shapes_never_crash():
    for name in ("SoftmaxOutput", "LinearRegressionOutput", "SVMOutput"):
        op = get_op(name)
        p = op.parse_params({})
        assert op.infer_shape(p, [None, None])[1] == [None]
        assert op.infer_shape(p, [(0, 3), None])[1] == [(0, 3)]
        assert op.infer_shape(p, [None, (4,)])[0] == [None, (4,)]


def test_label_gradient_is_zero_and_label_dtype_may_differ():
    x = mx.nd.array(np.random.randn(3, 4))
    label = mx.nd.array([1, 0, 3], dtype=np.int32)
    x.attach_grad()
    label.attach_grad()
    with mx.autograd.record():
        y = mx.nd.SoftmaxOutput(x, label)
    y.backward()
    assert y.dtype == np.float32
    np.testing.assert_array_equal(label.grad.asnumpy(), 0)


def test_makeloss_valid_normalization_counts_elements_above_threshold():
    x = np.array([[0.5, -1.0, 0.05], [2.0, 0.2, -0.3]])
    got = _head_grad("MakeLoss", x, normalization="valid", valid_thresh=0.1)
    np.testing.assert_allclose(got, np.full(x.shape, 1 / 3))
    got = _head_grad("MakeLoss", -np.abs(x), normalization="valid", valid_thresh=0.1)
    np.testing.assert_allclose(got, 1.0)                   # nothing valid: divide by 1


def test_names_and_outputs():
    assert get_op("Softmax") is get_op("SoftmaxOutput")
    assert get_op("make_loss") is not get_op("MakeLoss")
    assert get_op("make_loss").output_names(get_op("make_loss").parse_params({})) == ["loss"]
    for name in ("SoftmaxOutput", "LinearRegressionOutput", "LogisticRegressionOutput",
                 "MAERegressionOutput", "SVMOutput"):
        op = get_op(name)
        assert op.is_loss and op.list_inputs(op.parse_params({})) == ["data", "label"]
    for name in ("MakeLoss", "make_loss"):
        op = get_op(name)
        assert op.is_loss and op.list_inputs(op.parse_params({})) == ["data"]
    assert not get_op("smooth_l1").is_loss


def test_bad_parameters():
    with pytest.raises(ParamError, match="SoftmaxOutput: parameter 'normalization' got 'mean'"):
        mx.nd.SoftmaxOutput(mx.nd.ones((2, 3)), mx.nd.ones((2,)), normalization="mean")
    with pytest.raises(ParamError, match="SoftmaxOutput: unknown parameter 'ignore_index'"):
        mx.nd.SoftmaxOutput(mx.nd.ones((2, 3)), mx.nd.ones((2,)), ignore_index=0)
    with pytest.raises(ParamError, match="MakeLoss: parameter 'grad_scale' got 'x'"):
        mx.nd.MakeLoss(mx.nd.ones((2, 3)), grad_scale="x")
    p = get_op("SoftmaxOutput").parse_params({"multi_output": "True", "ignore_label": "0",
                                              "normalization": "valid"})
    assert (p.multi_output, p.ignore_label, p.normalization) == (True, 0.0, "valid")
