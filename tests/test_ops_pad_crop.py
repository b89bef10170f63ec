"""Pad (constant/edge/reflect) and Crop (h_w, crop-like, offset, center_crop)."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def _ref_pad(x, mode, pad_width, constant_value=0.0):
    pairs = [(pad_width[2 * i], pad_width[2 * i + 1]) for i in range(x.ndim)]
    extra = {"constant_values": constant_value} if mode == "constant" else {}
    return np.pad(x.astype(np.float64), pairs, mode=mode, **extra)


def _ref_crop(*data, num_args=None, offset=(0, 0), h_w=(0, 0), center_crop=False):
    x = data[0]
    h, w = data[1].shape[2:4] if len(data) == 2 else h_w
    if center_crop:
        y0, x0 = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    else:
        y0, x0 = offset
    return x[:, :, y0:y0 + h, x0:x0 + w]


_NCHW_PAD = (0, 0, 0, 0, 1, 2, 2, 1)
CASES = [
    OpCase("Pad", [(2, 2, 3, 4)], {"mode": "constant", "pad_width": _NCHW_PAD}, _ref_pad,
           id="Pad-constant"),
    OpCase("Pad", [(2, 2, 3, 4)], {"mode": "constant", "pad_width": _NCHW_PAD,
                                   "constant_value": -2.5}, _ref_pad, id="Pad-constant-value"),
    OpCase("Pad", [(2, 2, 3, 4)], {"mode": "edge", "pad_width": _NCHW_PAD}, _ref_pad,
           id="Pad-edge"),
    OpCase("Pad", [(2, 2, 3, 4)], {"mode": "reflect", "pad_width": _NCHW_PAD}, _ref_pad,
           id="Pad-reflect"),
    OpCase("pad", [(1, 2, 3, 3, 4)], {"mode": "reflect", "pad_width": (0, 0, 0, 0, 1, 1, 2, 0,
                                                                      3, 3)},
           _ref_pad, id="pad-reflect-5d"),
    OpCase("Pad", [(3, 4)], {"mode": "edge", "pad_width": (2, 1, 0, 3)}, _ref_pad,
           id="Pad-edge-2d-any-axis"),
    OpCase("Crop", [(2, 3, 6, 7), (2, 3, 3, 4)], {"num_args": 2}, _ref_crop, grad_inputs=[0],
           id="Crop-like"),
    OpCase("Crop", [(2, 3, 6, 7), (1, 1, 3, 4)], {"num_args": 2, "offset": (2, 1)}, _ref_crop,
           grad_inputs=[0], id="Crop-like-offset"),
    OpCase("Crop", [(2, 3, 6, 7), (2, 3, 3, 4)], {"num_args": 2, "center_crop": True},
           _ref_crop, grad_inputs=[0], id="Crop-like-center"),
    OpCase("Crop", [(2, 3, 6, 7)], {"num_args": 1, "h_w": (2, 3), "offset": (1, 2)}, _ref_crop,
           id="Crop-h_w"),
    OpCase("Crop", [(2, 3, 6, 7)], {"num_args": 1, "h_w": (2, 3), "center_crop": True},
           _ref_crop, id="Crop-h_w-center"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_pad_gradient_folds_the_border_back(mode):
    x = mx.nd.zeros((1, 1, 1, 3))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Pad(x, mode=mode, pad_width=(0, 0, 0, 0, 0, 0, 2, 2))
    y.backward(mx.nd.array(np.arange(1, 8, dtype=np.float32).reshape(1, 1, 1, 7)))
    # padded row copies input positions: edge [0 0 | 0 1 2 | 2 2], reflect [2 1 | 0 1 2 | 1 0]
    want = {"edge": [1 + 2 + 3, 4, 5 + 6 + 7], "reflect": [3 + 7, 2 + 4 + 6, 1 + 5]}[mode]
    np.testing.assert_array_equal(x.grad.asnumpy().ravel(), want)


def test_crop_like_input_gets_zero_gradient():
    a, b = mx.nd.ones((1, 1, 4, 4)), mx.nd.ones((1, 1, 2, 2))
    a.attach_grad()
    b.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Crop(a, b, center_crop=True)
    y.backward()
    want = np.zeros((4, 4))
    want[1:3, 1:3] = 1
    np.testing.assert_array_equal(a.grad.asnumpy()[0, 0], want)
    np.testing.assert_array_equal(b.grad.asnumpy(), 0)


def test_shape_inference_with_unknowns():
    pad = get_op("Pad")
    p = pad.parse_params({"mode": "constant", "pad_width": _NCHW_PAD})
    assert pad.infer_shape(p, [None])[1] == [None]
    assert pad.infer_shape(p, [(0, 2, 3, 4)])[1] == [(0, 2, 6, 7)]
    crop = get_op("Crop")
    q = crop.parse_params({"num_args": 2})
    assert crop.infer_shape(q, [(2, 3, 6, 7), None])[1] == [None]
    assert crop.infer_shape(q, [None, (2, 3, 2, 2)])[1] == [None]
    assert crop.infer_shape(q, [(2, 3, 6, 7), (9, 9, 2, 5)])[1] == [(2, 3, 2, 5)]


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"Pad: pad_width=\(0, 0, 1, 1\) has 4 entries, "
                                         r"expected 8 \(before and after for each of the 4 axes"):
        mx.nd.Pad(mx.nd.ones((1, 1, 2, 2)), mode="constant", pad_width=(0, 0, 1, 1))
    with pytest.raises(ShapeError, match=r"Pad: reflect padding of axis 3 by \(0, 2\) must be "
                                         r"smaller than its size 2"):
        mx.nd.Pad(mx.nd.ones((1, 1, 2, 2)), mode="reflect", pad_width=(0, 0, 0, 0, 0, 0, 0, 2))
    with pytest.raises(ShapeError, match="negative"):
        mx.nd.Pad(mx.nd.ones((2, 2)), mode="edge", pad_width=(0, -1, 0, 0))
    with pytest.raises(ShapeError, match=r"Crop: offset=\(5, 5\) with crop size \(2, 3\) runs "
                                         r"past data \(2, 3, 6, 7\)"):
        mx.nd.Crop(mx.nd.ones((2, 3, 6, 7)), h_w=(2, 3), offset=(5, 5))
    with pytest.raises(ShapeError, match=r"Crop: cannot crop \(8, 3\) out of data"):
        mx.nd.Crop(mx.nd.ones((2, 3, 6, 7)), h_w=(8, 3))
    with pytest.raises(ShapeError, match=r"Crop: h_w=\(0, 0\) must give a positive"):
        mx.nd.Crop(mx.nd.ones((2, 3, 6, 7)))
    with pytest.raises(ShapeError, match=r"Crop: data has shape \(6, 7\), expected 4 "
                                         r"dimensions"):
        mx.nd.Crop(mx.nd.ones((6, 7)), h_w=(2, 2))
    with pytest.raises(ShapeError, match="num_args=3: Crop takes 1 input"):
        mx.nd.Crop(mx.nd.ones((1, 1, 4, 4)), mx.nd.ones((1, 1, 2, 2)), mx.nd.ones((1, 1, 2, 2)))


def test_bad_parameters():
    with pytest.raises(ParamError, match="Pad: required parameter 'mode' is missing"):
        mx.nd.Pad(mx.nd.ones((2, 2)), pad_width=(1, 1, 1, 1))
    with pytest.raises(ParamError, match="Pad: parameter 'mode' got 'wrap'"):
        mx.nd.Pad(mx.nd.ones((2, 2)), mode="wrap", pad_width=(1, 1, 1, 1))
    p = get_op("Pad").parse_params({"mode": "edge", "pad_width": "(0, 0, 0, 0, 1, 1, 1, 1)",
                                    "constant_value": "0"})
    assert p.pad_width == (0, 0, 0, 0, 1, 1, 1, 1)
    q = get_op("Crop").parse_params({"num_args": "2", "offset": "(1, 1)",
                                     "center_crop": "True"})
    assert (q.num_args, q.offset, q.center_crop) == (2, (1, 1), True)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_random_widths_match_numpy(mode):
    rng = np.random.RandomState(5)
    for _ in range(10):
        shape = tuple(rng.randint(2, 6, rng.randint(1, 5)))
        pw = tuple(int(rng.randint(0, n)) for n in shape for _ in range(2))
        x = rng.standard_normal(shape).astype(np.float32)
        got = mx.nd.Pad(mx.nd.array(x), mode=mode, pad_width=pw, constant_value=0.5).asnumpy()
        np.testing.assert_array_equal(got, _ref_pad(x, mode, pw, 0.5).astype(np.float32))
