"""Dropout: identity in inference, MXNet's inverted scaling in training, mask reuse in backward."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op, resource
from op_harness import OpCase, table_tests


def _identity(x, **_):
    return x


CASES = [
    # outside training mode Dropout is the identity (and so is p=0 in training)
    OpCase("Dropout", [(4, 5)], {}, _identity, grad=False, id="Dropout-inference"),
    OpCase("Dropout", [(2, 3, 4)], {"p": 0.3, "axes": (1,)}, _identity, grad=False,
           id="Dropout-inference-axes"),
    OpCase("Dropout", [(4, 5)], {"p": 0.0}, _identity, id="Dropout-p0"),
    OpCase("Dropout", [(3, 4)], {"p": 0.0, "mode": "always"}, _identity, id="Dropout-p0-always"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def _train(x, **params):
    with mx.autograd.train_mode():
        return mx.nd.Dropout(mx.nd.array(x), **params).asnumpy()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_training_drops_a_fraction_p_and_scales_the_rest(p):
    y = _train(np.ones((200, 500), np.float32), p=p)
    dropped = (y == 0).mean()
    # 100000 Bernoulli draws: the dropped fraction is within 5 standard deviations of p
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / y.size)
    np.testing.assert_allclose(np.unique(y[y != 0]), [1 / (1 - p)], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / y.size)     # expectation preserved


def test_mode_always_drops_in_inference_too():
    y = mx.nd.Dropout(mx.nd.ones((100, 100)), p=0.5, mode="always").asnumpy()
    assert 0.4 < (y == 0).mean() < 0.6
    np.testing.assert_array_equal(mx.nd.Dropout(mx.nd.ones((10, 10)), p=0.5).asnumpy(), 1)


def test_axes_share_one_mask():
    y = _train(np.ones((6, 50, 40), np.float32), p=0.5, axes=(0, 2))
    # every (i, :, k) column pattern is the same: the mask varies only along axis 1
    assert np.all(y == y[:1, :, :1])
    assert 0 < (y[0, :, 0] == 0).sum() < 50
    y = _train(np.ones((3, 4)), p=0.5, axes=(-1,))
    assert np.all(y == y[:, :1])


def test_backward_uses_the_forward_mask():
    x = mx.nd.array(np.random.uniform(1, 2, (30, 40)).astype(np.float32))
    x.attach_grad()
    g = np.random.randn(30, 40).astype(np.float32)
    with mx.autograd.record():
        y = mx.nd.Dropout(x, p=0.4)
    y.backward(mx.nd.array(g))
    mask = y.asnumpy() / x.asnumpy()
    kept = mask != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(mask[kept], 1 / 0.6, rtol=1e-5)
    np.testing.assert_allclose(x.grad.asnumpy(), g * mask, rtol=1e-5)


def test_backward_after_an_inference_forward_is_the_identity():
    x = mx.nd.array(np.random.randn(5, 6).astype(np.float32))
    x.attach_grad()
    with mx.autograd.record(train_mode=False):
        y = mx.nd.Dropout(x, p=0.9)
    y.backward()
    np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
    np.testing.assert_array_equal(x.grad.asnumpy(), 1)


def test_hidden_mask_output():
    op = get_op("Dropout")
    p = op.parse_params({"p": 0.2})
    assert op.output_names(p) == ["output"] and op.num_outputs(p) == 2
    assert op.infer_shape(p, [(3, 4)])[1] == [(3, 4), (3, 4)]


def test_seeded_draws_are_reproducible():
    x = np.ones((20, 20), np.float32)
    resource.seed(42)
    a = _train(x, p=0.5)
    resource.seed(42)
    b = _train(x, p=0.5)
    c = _train(x, p=0.5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_p_one_gives_zeros_and_float64_is_kept():
    assert np.all(_train(np.ones((4, 4)), p=1.0) == 0)
    with mx.autograd.train_mode():
        y = mx.nd.Dropout(mx.nd.ones((4, 4), dtype=np.float64), p=0.5)
    assert y.dtype == np.float64


def test_bad_parameters():
    with pytest.raises(ParamError, match=r"Dropout: parameter 'p' got 1.5: expected a "
                                         r"probability in \[0, 1\]"):
        mx.nd.Dropout(mx.nd.ones((2, 2)), p=1.5)
    with pytest.raises(ParamError, match="Dropout: parameter 'mode' got 'test'"):
        mx.nd.Dropout(mx.nd.ones((2, 2)), mode="test")
    with pytest.raises(ShapeError, match=r"Dropout: axes=\(2,\) has axis 2, out of range for "
                                         r"data \(2, 2\)"):
        mx.nd.Dropout(mx.nd.ones((2, 2)), axes=(2,))
    p = get_op("Dropout").parse_params({"p": "0.25", "axes": "(0, 1)", "cudnn_off": "True"})
    assert (p.p, p.axes, p.cudnn_off) == (0.25, (0, 1), True)
