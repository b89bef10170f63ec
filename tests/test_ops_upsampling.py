"""UpSampling: nearest (one or several inputs, concat / sum) and bilinear (a depthwise
Deconvolution) vs plain numpy references, gradients, shape inference and errors."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def nearest_ref(*xs, scale, multi_input_mode="concat", **_):
    """Repeat every input to the first one's size times scale; concatenate or sum."""
    oh = xs[0].shape[2] * scale
    ups = [np.repeat(np.repeat(x.astype(np.float64), oh // x.shape[2], axis=2),
                     oh // x.shape[2], axis=3) for x in xs]
    return sum(ups) if multi_input_mode == "sum" else np.concatenate(ups, axis=1)


def bilinear_ref(x, w, *, scale, **_):
    """Transposed convolution written as: insert scale-1 zeros between pixels, pad fully,
    correlate every channel with its flipped kernel."""
    k = 2 * scale - scale % 2
    pad = int(np.ceil((scale - 1) / 2))
    n, c, h, wd = x.shape
    z = np.zeros((n, c, (h - 1) * scale + 1, (wd - 1) * scale + 1))
    z[:, :, ::scale, ::scale] = x
    z = np.pad(z, [(0, 0), (0, 0)] + [(k - 1 - pad, k - 1 - pad)] * 2)
    flipped = w[:, 0, ::-1, ::-1].astype(np.float64)
    out = np.zeros((n, c, h * scale, wd * scale))
    for i, j in np.ndindex(h * scale, wd * scale):
        out[:, :, i, j] = (z[:, :, i:i + k, j:j + k] * flipped).sum(axis=(2, 3))
    return out


def _near(shapes, scale, mode="concat"):
    return OpCase("UpSampling", list(shapes), dict(scale=scale, sample_type="nearest",
                                                   multi_input_mode=mode),
                  nearest_ref, id=f"UpSampling-nearest-{scale}-{mode}-{shapes}")


def _bilinear(shape, scale):
    k = 2 * scale - scale % 2
    return OpCase("UpSampling", [shape, (shape[1], 1, k, k)],
                  dict(scale=scale, sample_type="bilinear", num_filter=shape[1]),
                  bilinear_ref, rtol=1e-4, atol=1e-5, id=f"UpSampling-bilinear-{scale}-{shape}")


CASES = [
    _near([(2, 3, 3, 4)], 2),
    _near([(1, 2, 2, 3)], 3),
    _near([(2, 2, 4, 4), (2, 3, 2, 2)], 2),
    _near([(1, 2, 4, 4), (1, 2, 2, 2), (1, 2, 1, 1)], 1, "sum"),
    _near([(1, 3, 2, 2), (1, 1, 4, 4)], 2),
    _bilinear((2, 3, 3, 4), 2),
    _bilinear((1, 2, 3, 3), 3),
    _bilinear((1, 2, 2, 3), 4),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_nearest_gradient_sums_each_block_back_to_its_input():
    x = mx.nd.array(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2))
    y = mx.nd.array(np.arange(2, dtype=np.float32).reshape(1, 2, 1, 1) + 10)
    x.attach_grad()
    y.attach_grad()
    with mx.autograd.record():
        z = mx.nd.UpSampling(x, y, scale=2, sample_type="nearest")
    z.backward(mx.nd.array(np.arange(64, dtype=np.float32).reshape(z.shape)))
    # the values MXNet 1.9.1 gives for this call
    np.testing.assert_array_equal(x.grad.asnumpy().ravel(), [10, 18, 42, 50, 74, 82, 106, 114])
    np.testing.assert_array_equal(y.grad.asnumpy().ravel(), [632, 888])


def test_bilinear_is_the_deconvolution_it_stands_for():
    rng = np.random.RandomState(0)
    x = mx.nd.array(rng.standard_normal((2, 3, 4, 5)))
    for scale in (2, 3, 4):
        k = 2 * scale - scale % 2
        w = mx.nd.array(rng.standard_normal((3, 1, k, k)))
        up = mx.nd.UpSampling(x, w, scale=scale, sample_type="bilinear", num_filter=3)
        de = mx.nd.Deconvolution(x, w, kernel=(k, k), stride=(scale, scale),
                                 pad=(scale // 2, scale // 2), num_filter=3, num_group=3)
        assert up.shape == (2, 3, 4 * scale, 5 * scale)
        np.testing.assert_array_equal(up.asnumpy(), de.asnumpy())


def test_bilinear_kernel_keeps_a_constant_image_constant_inside():
    scale, k = 2, 4
    f = np.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2 * f)
    taps = 1 - np.abs(np.arange(k) / f - c)
    w = np.tile(np.outer(taps, taps), (2, 1, 1, 1)).astype(np.float32)
    out = mx.nd.UpSampling(mx.nd.ones((1, 2, 4, 4)) * 3, mx.nd.array(w), scale=scale,
                           sample_type="bilinear", num_filter=2).asnumpy()
    np.testing.assert_allclose(out[:, :, 1:-1, 1:-1], 3, rtol=1e-6)


def test_inputs_shapes_and_params():
    op = get_op("UpSampling")
    p = op.parse_params({"scale": 2, "sample_type": "nearest", "num_args": 3})
    assert op.list_inputs(p) == ["arg0", "arg1", "arg2"]
    p = op.parse_params({"scale": "2", "sample_type": "bilinear", "num_args": "1",
                         "num_filter": "4"})
    assert op.list_inputs(p) == ["data", "weight"]
    assert op.infer_shape(p, [(1, 4, 5, 5), None]) == \
        ([(1, 4, 5, 5), (4, 1, 4, 4)], [(1, 4, 10, 10)], [])
    p = op.parse_params({"scale": 2, "sample_type": "nearest", "num_args": 2})
    assert op.infer_shape(p, [(1, 2, 4, 4), None])[1] == [None]
    assert op.parse_params({"scale": 2, "sample_type": "nearest", "num_args": 1}).workspace \
        == 512
    with pytest.raises(ParamError, match="required parameter 'sample_type'"):
        op.parse_params({"scale": 2, "num_args": 1})


@pytest.mark.parametrize("shapes, params, error, pattern", [
    ([(1, 2, 4, 4), (1, 3, 3, 3)], {}, ShapeError,
     r"UpSampling: input arg1 of shape \(1, 3, 3, 3\) cannot be upsampled to the output size "
     r"\(8, 8\) by one integer factor"),
    ([(1, 2, 4, 4), (1, 3, 2, 4)], {}, ShapeError, r"arg1 of shape \(1, 3, 2, 4\) cannot"),
    ([(1, 2, 4, 4), (2, 3, 2, 2)], {}, ShapeError,
     r"UpSampling: input arg1 has batch size 2 \(shape \(2, 3, 2, 2\)\), expected 1 like arg0"),
    ([(1, 2, 4, 4), (1, 3, 2, 2)], {"multi_input_mode": "sum"}, ShapeError,
     r"UpSampling: multi_input_mode='sum' needs equal channel counts; arg1 has 3, arg0 has 2"),
    ([(1, 2, 4)], {}, ShapeError, r"UpSampling: input arg0 has shape \(1, 2, 4\); expected 4 "
                                  r"dimensions \(batch, channel, height, width\)"),
    ([(1, 2, 4, 4)], {"scale": 0}, ParamError, r"UpSampling: scale=0 must be positive"),
])
def test_nearest_errors(shapes, params, error, pattern):
    op = get_op("UpSampling")
    kw = dict(scale=2, sample_type="nearest", num_args=len(shapes))
    kw.update(params)
    with pytest.raises(error, match=pattern):
        op.infer_shape(op.parse_params(kw), shapes)


def test_bilinear_errors():
    op = get_op("UpSampling")
    p = op.parse_params({"scale": 2, "sample_type": "bilinear", "num_args": 2,
                         "num_filter": 3})
    with pytest.raises(ShapeError, match=r"UpSampling: bilinear upsampling needs num_filter "
                                         r"equal to the channels of data \(1, 2, 4, 4\), got "
                                         r"num_filter=3"):
        op.infer_shape(p, [(1, 2, 4, 4), None])
    with pytest.raises(ShapeError, match=r"UpSampling: weight has shape \(3, 1, 3, 3\), "
                                         r"expected \(3, 1, 4, 4\) .* \(bilinear upsampling "
                                         r"by 2 is a Deconvolution with kernel=\(4, 4\)\)"):
        op.infer_shape(p, [(1, 3, 4, 4), (3, 1, 3, 3)])
    p0 = op.parse_params({"scale": 2, "sample_type": "bilinear", "num_args": 2})
    with pytest.raises(ParamError, match=r"bilinear upsampling needs num_filter \(the number "
                                         r"of channels\), got 0"):
        op.infer_shape(p0, [None, None])
