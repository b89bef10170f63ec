"""SequenceMask, SequenceLast, SequenceReverse (time-major and batch-major, with lengths)."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError, ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def _tm(x, axis):
    return x if axis == 0 else np.swapaxes(x, 0, 1)


def _lens(x, length, axis):
    steps = _tm(x, axis).shape[0]
    return [steps] * _tm(x, axis).shape[1] if length is None else [int(v) for v in length]


def _ref_mask(x, length=None, use_sequence_length=False, value=0.0, axis=0):
    out = _tm(x.astype(np.float64), axis).copy()
    for n, k in enumerate(_lens(x, length, axis)):
        out[max(k, 0):, n] = value
    return _tm(out, axis)


def _ref_last(x, length=None, use_sequence_length=False, axis=0):
    t = _tm(x.astype(np.float64), axis)
    return np.stack([t[k - 1, n] for n, k in enumerate(_lens(x, length, axis))])


def _ref_reverse(x, length=None, use_sequence_length=False, axis=0):
    out = _tm(x.astype(np.float64), axis).copy()
    for n, k in enumerate(_lens(x, length, axis)):
        out[:k, n] = out[:k, n][::-1]
    return _tm(out, axis)


_LEN3 = np.array([1, 4, 2.7], np.float32)
_ON = {"use_sequence_length": True}
CASES = [
    OpCase("SequenceMask", [(4, 3, 2)], {}, _ref_mask, id="SequenceMask-no-length"),
    OpCase("SequenceMask", [(4, 3, 2), _LEN3], dict(_ON, value=-1.0), _ref_mask,
           grad_inputs=[0], id="SequenceMask"),
    OpCase("SequenceMask", [(3, 4, 2), np.array([0, 4, 9], np.int32)], dict(_ON, axis=1),
           _ref_mask, grad_inputs=[0], id="SequenceMask-axis1-extreme-lengths"),
    OpCase("SequenceMask", [(5, 2)], {}, _ref_mask, id="SequenceMask-2d"),
    OpCase("SequenceLast", [(4, 3, 2)], {}, _ref_last, id="SequenceLast-no-length"),
    OpCase("SequenceLast", [(4, 3, 2), _LEN3], _ON, _ref_last, grad_inputs=[0],
           id="SequenceLast"),
    OpCase("SequenceLast", [(3, 4, 2), _LEN3], dict(_ON, axis=1), _ref_last,
           grad_inputs=[0], id="SequenceLast-axis1"),
    OpCase("SequenceLast", [(4, 2), np.array([2, 3], np.float32)], _ON, _ref_last,
           grad_inputs=[0], id="SequenceLast-2d"),
    OpCase("SequenceReverse", [(4, 3, 2)], {}, _ref_reverse, id="SequenceReverse-no-length"),
    OpCase("SequenceReverse", [(4, 3, 2), _LEN3], _ON, _ref_reverse, grad_inputs=[0],
           id="SequenceReverse"),
    OpCase("SequenceReverse", [(3, 4, 2), np.array([0, 4, 2], np.int64)], dict(_ON, axis=1),
           _ref_reverse, grad_inputs=[0], id="SequenceReverse-axis1"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_inputs_depend_on_use_sequence_length():
    for name in ("SequenceMask", "SequenceLast", "SequenceReverse"):
        op = get_op(name)
        assert op.list_inputs(op.parse_params({})) == ["data"]
        assert op.list_inputs(op.parse_params(_ON)) == ["data", "sequence_length"]


def test_shape_inference_fills_the_length_shape():
    op = get_op("SequenceLast")
    ins, outs, _ = op.infer_shape(op.parse_params(dict(_ON, axis=1)), [(3, 5, 2), None])
    assert ins[1] == (3,) and outs == [(3, 2)]
    op = get_op("SequenceMask")
    ins, outs, _ = op.infer_shape(op.parse_params(_ON), [(3, 5, 2), None])
    assert ins[1] == (5,) and outs == [(3, 5, 2)]
    ins, outs, _ = op.infer_shape(op.parse_params(_ON), [None, (5,)])
    assert outs == [None]
    with pytest.raises(ShapeError, match=r"SequenceMask: sequence_length \(for data "
                                         r"\(3, 5, 2\) and axis=0\) has shape \(3,\), expected "
                                         r"\(5,\)"):
        op.infer_shape(op.parse_params(_ON), [(3, 5, 2), (3,)])


def test_length_gradient_is_zero():
    x, length = mx.nd.ones((4, 3)), mx.nd.array([1, 2, 3])
    x.attach_grad()
    length.attach_grad()
    with mx.autograd.record():
        y = mx.nd.SequenceLast(x, length, use_sequence_length=True)
    y.backward()
    np.testing.assert_array_equal(length.grad.asnumpy(), 0)
    want = np.zeros((4, 3))
    want[[0, 1, 2], [0, 1, 2]] = 1
    np.testing.assert_array_equal(x.grad.asnumpy(), want)


@pytest.mark.parametrize("op,bad", [("SequenceLast", 0), ("SequenceLast", 5),
                                    ("SequenceReverse", 5)])
def test_out_of_range_lengths_are_errors(op, bad):
    y = getattr(mx.nd, op)(mx.nd.ones((4, 2)), mx.nd.array([2, bad]), use_sequence_length=True)
    with pytest.raises(HybridNetError, match=rf"{op}: sequence_length\[1\] = {bad} is out of "
                                             rf"range; expected \d <= length <= 4"):
        y.asnumpy()


def test_errors():
    with pytest.raises(ShapeError, match=r"SequenceMask: axis=2: the time axis must be 0"):
        mx.nd.SequenceMask(mx.nd.ones((2, 3, 4)), axis=2)
    with pytest.raises(ShapeError, match=r"SequenceLast: data has shape \(4,\), expected at "
                                         r"least 2 dimensions"):
        mx.nd.SequenceLast(mx.nd.ones((4,)))
    with pytest.raises(HybridNetError, match="missing input"):
        mx.nd.SequenceMask(mx.nd.ones((2, 3)), use_sequence_length=True)
    with pytest.raises(ParamError, match="SequenceMask: parameter 'value' got 'pad'"):
        mx.nd.SequenceMask(mx.nd.ones((2, 3)), value="pad")
    p = get_op("SequenceMask").parse_params({"use_sequence_length": "True", "value": "-1e9",
                                             "axis": "1"})
    assert (p.use_sequence_length, p.value, p.axis) == (True, -1e9, 1)
