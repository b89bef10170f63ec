"""Shape, layout, joining, splitting, tiling and broadcasting operators."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests

# MXNet's Reshape table (its docstring's examples plus corner cases), each checked with MXNet
# 1.9.1; tests/fixtures/ops_core.json carries MXNet's own answers for the same table.
RESHAPE_TABLE = [
    ((2, 3, 4), (4, 0, 2), False, (4, 3, 2)),
    ((2, 3, 4), (2, 0, 0), False, (2, 3, 4)),
    ((2, 3, 4), (6, 1, -1), False, (6, 1, 4)),
    ((2, 3, 4), (3, -1, 8), False, (3, 1, 8)),
    ((2, 3, 4), (-1,), False, (24,)),
    ((2, 3, 4), (-2,), False, (2, 3, 4)),
    ((2, 3, 4), (2, -2), False, (2, 3, 4)),
    ((2, 3, 4), (-2, 1, 1), False, (2, 3, 4, 1, 1)),
    ((2, 3, 4, 5), (-3, -3), False, (6, 20)),
    ((2, 3, 4), (0, -3), False, (2, 12)),
    ((2, 3, 4), (-3, -2), False, (6, 4)),
    ((2, 3, 4), (-3, -1), False, (6, 4)),
    ((2, 3, 4), (-4, 1, 2, -2), False, (1, 2, 3, 4)),
    ((2, 3, 4), (2, -4, -1, 3, -2), False, (2, 1, 3, 4)),
    ((2, 3, 4), (2, -4, 3, -1, -2), False, (2, 3, 1, 4)),
    ((2, 3, 4), (-4, -1, 1, 0, 0), False, (2, 1, 3, 4)),
    ((4,), (-4, 2, 2), False, (2, 2)),
    ((2, 3, 4), (0, -1, 0), False, (2, 3, 4)),
    ((10, 5, 4), (-1, 0), False, (40, 5)),
    ((10, 5, 4), (-1, 0), True, (50, 4)),
    ((2, 3, 4), (0, -1), True, (3, 8)),
    ((2, 3, 4), (-1, 3, 2), True, (4, 3, 2)),
    ((2, 3, 4), (1, -1, 2), True, (1, 12, 2)),
    ((2, 3, 4, 5), (-3, -3), True, (6, 20)),
]


@pytest.mark.parametrize("data, shape, reverse, want", RESHAPE_TABLE)
def test_reshape_codes_match_mxnet(data, shape, reverse, want):
    x = mx.nd.array(np.arange(np.prod(data)).reshape(data))
    y = mx.nd.reshape(x, shape=shape, reverse=reverse)
    assert y.shape == want
    np.testing.assert_array_equal(y.asnumpy().reshape(-1), np.arange(np.prod(data)))
    assert x.reshape(shape, reverse=reverse).shape == want       # the view path agrees


@pytest.mark.parametrize("data, shape, message", [
    ((2, 3, 4, 5), (-3, 4), r"cannot reshape data of shape \(2, 3, 4, 5\) \(size 120\) into "
                            r"\(6, 4\) \(size 24\)"),
    ((2, 3, 4), (-3, -3), r"code -3 at position 1 .* no dimension left"),
    ((2, 3, 4), (-4, 4, 4), r"-4 cannot split dimension 2"),
    ((2, 3, 4), (2, -1, -1), r"more than one -1"),
    ((2, 3, 4), (5, 5), r"\(size 24\) into \(5, 5\) \(size 25\)"),
    ((2, 3, 4), (-1, 5), r"24 is not divisible by 5"),
    ((2, 3, 4), (-5, 2), r"-5 is not a valid size or special code"),
    ((2, 3, 4), (-4, 1), r"-4 at position 0 must be followed by two values"),
])
def test_reshape_errors(data, shape, message):
    with pytest.raises(ShapeError, match="^Reshape: .*" + message):
        mx.nd.reshape(mx.nd.zeros(data), shape=shape)


def test_reshape_legacy_target_shape():
    x = mx.nd.zeros((2, 3, 4))
    assert mx.nd.Reshape(x, target_shape=(6, 0)).shape == (6, 4)
    assert mx.nd.Reshape(x, target_shape=(0, 0), keep_highest=True).shape == (2, 12)
    with pytest.raises(ShapeError, match="either shape or target_shape"):
        mx.nd.Reshape(x)


def test_reshape_partial_inference():
    op = get_op("Reshape")
    infer = lambda s, **kw: op.infer_shape(op.parse_params(kw), [s])[1][0]  # noqa: E731
    assert infer((0, 3, 4), shape=(0, -1)) == (0, 12)
    assert infer((0, 3, 4), shape=(-1, 4)) == (0, 4)
    assert infer((2, 0, 4), shape=(-3, -2)) == (0, 4)
    assert infer((0, 3, 4), shape=(-3, -1)) == (0, 0)         # the unknown was merged away
    assert infer((0, 3, 4), shape=(-1, 0), reverse=True) == (0, 4)
    assert infer((5, 0, 4), shape=(-1, 0), reverse=True) == (0, 4)
    assert infer((0, 3, 0), shape=(0, 3, -1)) == (0, 3, 0)
    assert infer(None, shape=(6, 4)) == (6, 4)
    assert infer(None, shape=(-1, 4)) is None
    # the flatten operator and concat fill in what they can
    assert get_op("Flatten").infer_shape(None, [(0, 3, 4)])[1] == [(0, 12)]
    assert get_op("Flatten").infer_shape(None, [(5, 0, 4)])[1] == [(5, 0)]


def _d2s(x, block_size):
    n, c, h, w = x.shape
    b = block_size
    return x.reshape(n, b, b, c // b // b, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(
        n, c // b // b, h * b, w * b)


def _s2d(x, block_size):
    n, c, h, w = x.shape
    b = block_size
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(
        n, c * b * b, h // b, w // b)


def _diag(x, k=0, axis1=0, axis2=1):
    return np.diag(x, k) if x.ndim == 1 else np.diagonal(x, k, axis1, axis2)


def _split(x, num_outputs, axis=1, squeeze_axis=False):
    parts = np.split(x, num_outputs, axis=axis)
    return [p.squeeze(axis) if squeeze_axis else p for p in parts]


def _split_v2(x, indices, axis=1, squeeze_axis=False, sections=0):
    parts = np.split(x, sections if sections else list(indices[1:]), axis=axis)
    return [p.squeeze(axis) if squeeze_axis else p for p in parts]


def _reshape_like(lhs, rhs, lhs_begin=None, lhs_end=None, rhs_begin=None, rhs_end=None):
    lb, le = lhs_begin or 0, lhs.ndim if lhs_end is None else lhs_end
    rb, re_ = rhs_begin or 0, rhs.ndim if rhs_end is None else rhs_end
    return lhs.reshape(lhs.shape[:lb] + rhs.shape[rb:re_] + lhs.shape[le:])


def _broadcast_like(lhs, rhs, lhs_axes=None, rhs_axes=None):
    if lhs_axes is None:
        return np.broadcast_to(lhs, rhs.shape)
    shape = list(lhs.shape)
    for a, b in zip(lhs_axes, rhs_axes):
        shape[a] = rhs.shape[b]
    return np.broadcast_to(lhs, shape)


def _broadcast_axis(x, axis, size):
    shape = list(x.shape)
    for a, n in zip(axis, size):
        shape[a] = n
    return np.broadcast_to(x, shape)


CASES = [
    OpCase("Reshape", [(2, 3, 4)], {"shape": (-3, -2)}, lambda x, shape: x.reshape(6, 4),
           id="Reshape-codes"),
    OpCase("reshape", [(2, 3, 4)], {"shape": (-1, 0), "reverse": True},
           lambda x, shape, reverse: x.reshape(6, 4), id="reshape-reverse"),
    OpCase("Flatten", [(2, 3, 4)], {}, lambda x: x.reshape(2, 12), id="Flatten"),
    OpCase("flatten", [(5,)], {}, lambda x: x.reshape(5, 1), id="flatten-1d"),
    OpCase("transpose", [(2, 3, 4)], {}, lambda x: x.transpose(), id="transpose"),
    OpCase("transpose", [(2, 3, 4)], {"axes": (1, 0, 2)},
           lambda x, axes: x.transpose(axes), id="transpose-axes"),
    OpCase("transpose", [(2, 3, 4)], {"axes": (-1, 0, 1)},
           lambda x, axes: x.transpose(2, 0, 1), id="transpose-negative"),
    OpCase("expand_dims", [(2, 3)], {"axis": -1}, lambda x, axis: x[..., None], id="expand_dims"),
    OpCase("expand_dims", [(2, 3)], {"axis": 1}, lambda x, axis: x[:, None], id="expand_dims-1"),
    OpCase("squeeze", [(1, 2, 1, 3)], {}, lambda x: x.squeeze(), id="squeeze"),
    OpCase("squeeze", [(1, 2, 1, 3)], {"axis": (0,)}, lambda x, axis: x.squeeze(0),
           id="squeeze-axis"),
    OpCase("squeeze", [(1, 1)], {}, lambda x: x.reshape(1), id="squeeze-to-1"),
    OpCase("SwapAxis", [(2, 3, 4)], {"dim1": 0, "dim2": 2}, lambda x, dim1, dim2:
           x.swapaxes(0, 2), id="SwapAxis"),
    OpCase("swapaxes", [(2, 3, 4)], {"dim1": 1, "dim2": -1}, lambda x, dim1, dim2:
           x.swapaxes(1, 2), id="swapaxes-negative"),
    OpCase("depth_to_space", [(1, 8, 2, 3)], {"block_size": 2}, _d2s, id="depth_to_space"),
    OpCase("space_to_depth", [(2, 2, 4, 6)], {"block_size": 2}, _s2d, id="space_to_depth"),
    OpCase("reshape_like", [(2, 3, 4), (6, 4)], {}, _reshape_like, grad_inputs=[0],
           id="reshape_like"),
    OpCase("reshape_like", [(30, 7), (15, 2, 4)],
           {"lhs_begin": 0, "lhs_end": 1, "rhs_begin": 0, "rhs_end": 2}, _reshape_like,
           grad_inputs=[0], id="reshape_like-ranges"),
    OpCase("diag", [(4,)], {}, _diag, id="diag-1d"),
    OpCase("diag", [(3,)], {"k": -1}, _diag, id="diag-1d-below"),
    OpCase("diag", [(3, 4)], {"k": 1}, _diag, id="diag-2d"),
    OpCase("diag", [(2, 3, 4)], {"k": 1, "axis1": 0, "axis2": 2}, _diag, id="diag-3d"),
    OpCase("Cast", [(2, 3)], {"dtype": "float32"}, lambda x, dtype: x.astype(np.float32),
           grad_rtol=1e-2, id="Cast"),
    OpCase("cast", [(2, 3)], {"dtype": "int32"}, lambda x, dtype: x.astype(np.int32),
           grad=False, id="cast-int"),
    OpCase("_copyto", [(2, 3)], {}, lambda x: x, id="_copyto"),
    OpCase("shape_array", [(2, 3, 4)], {}, lambda x: np.array(x.shape, np.int64), grad=False,
           id="shape_array"),
    OpCase("size_array", [(2, 3, 4)], {}, lambda x: np.array([x.size], np.int64), grad=False,
           id="size_array"),
    # joining and splitting
    OpCase("Concat", [(2, 3), (2, 1), (2, 2)], {}, lambda *xs: np.concatenate(xs, 1),
           id="Concat"),
    OpCase("concat", [(2, 3), (1, 3)], {"dim": 0}, lambda *xs, dim: np.concatenate(xs, 0),
           id="concat-dim0"),
    OpCase("concat", [(2, 3, 1), (2, 3, 2)], {"dim": -1},
           lambda *xs, dim: np.concatenate(xs, -1), id="concat-negative"),
    OpCase("stack", [(2, 3), (2, 3), (2, 3)], {"axis": 1}, lambda *xs, axis: np.stack(xs, 1),
           id="stack"),
    OpCase("stack", [(2, 3), (2, 3)], {"axis": -1}, lambda *xs, axis: np.stack(xs, -1),
           id="stack-last"),
    OpCase("SliceChannel", [(2, 6, 2)], {"num_outputs": 3}, _split, id="SliceChannel"),
    OpCase("split", [(3, 4)], {"num_outputs": 3, "axis": 0, "squeeze_axis": True}, _split,
           id="split-squeeze"),
    OpCase("_split_v2", [(2, 6)], {"indices": (0, 1, 4)}, _split_v2, id="_split_v2"),
    OpCase("_split_v2", [(4, 3)], {"indices": (), "sections": 2, "axis": 0}, _split_v2,
           id="_split_v2-sections"),
    OpCase("tile", [(2, 3)], {"reps": (2,)}, lambda x, reps: np.tile(x, reps), id="tile"),
    OpCase("tile", [(2, 3)], {"reps": (2, 1, 3)}, lambda x, reps: np.tile(x, reps),
           id="tile-more-dims"),
    OpCase("repeat", [(2, 3)], {"repeats": 2}, lambda x, repeats: np.repeat(x, 2),
           id="repeat-flat"),
    OpCase("repeat", [(2, 3)], {"repeats": 3, "axis": -1},
           lambda x, repeats, axis: np.repeat(x, 3, -1), id="repeat-axis"),
    OpCase("reverse", [(2, 3, 4)], {"axis": (0, 2)}, lambda x, axis: x[::-1, :, ::-1],
           id="reverse"),
    OpCase("flip", [(2, 3)], {"axis": (-1,)}, lambda x, axis: x[:, ::-1], id="flip"),
    OpCase("broadcast_to", [(1, 3)], {"shape": (4, 0)},
           lambda x, shape: np.broadcast_to(x, (4, 3)), id="broadcast_to"),
    OpCase("broadcast_axis", [(1, 2, 1)], {"axis": (0, 2), "size": (2, 3)}, _broadcast_axis,
           id="broadcast_axis"),
    OpCase("broadcast_axes", [(2, 1)], {"axis": (1,), "size": (4,)}, _broadcast_axis,
           id="broadcast_axes"),
    OpCase("broadcast_like", [(1, 3), (4, 3)], {}, _broadcast_like, grad_inputs=[0],
           id="broadcast_like"),
    OpCase("broadcast_like", [(2, 1), (4, 5)], {"lhs_axes": (1,), "rhs_axes": (0,)},
           _broadcast_like, grad_inputs=[0], id="broadcast_like-axes"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- MXNet behaviours ----------------------------------------------------------------------
def test_cast_gradient_comes_back_in_the_input_dtype():
    x = mx.nd.array([1.5, 2.5], dtype="float32")
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.cast(x, dtype="float16")
    y.backward()
    assert y.dtype == np.float16 and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.asnumpy(), [1, 1])


def test_copyto_is_recorded_by_autograd():
    x = mx.nd.array([1.0, 2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = x.copyto(mx.cpu()) * 3
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [3, 3])


def test_split_gradient_with_unused_outputs():
    x = mx.nd.array(np.arange(6.0).reshape(2, 3))
    x.attach_grad()
    with mx.autograd.record():
        parts = mx.nd.split(x, num_outputs=3, axis=1)
        y = parts[1] * 2
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[0, 2, 0], [0, 2, 0]])


def test_split_v2_wrapper_and_method():
    x = mx.nd.array(np.arange(24.0).reshape(2, 3, 4))
    parts = mx.nd.split_v2(x, (1, 3), axis=2)
    assert [p.shape for p in parts] == [(2, 3, 1), (2, 3, 2), (2, 3, 1)]
    np.testing.assert_array_equal(parts[1].asnumpy(), np.arange(24.0).reshape(2, 3, 4)[..., 1:3])
    assert [p.shape for p in x.split_v2(2, axis=0, squeeze_axis=True)] == [(3, 4), (3, 4)]
    with pytest.raises(TypeError, match="indices_or_sections must be an int or a tuple"):
        mx.nd.split_v2(x, 1.5)


def test_concatenate_and_onehot_encode():
    a, b = mx.nd.zeros((2, 1)), mx.nd.ones((2, 2))
    np.testing.assert_array_equal(mx.nd.concatenate([a, b], axis=1).asnumpy(),
                                  [[0, 1, 1], [0, 1, 1]])
    assert mx.nd.concatenate([a], always_copy=False) is a
    assert mx.nd.concatenate([a]) is not a
    out = mx.nd.zeros((3, 4))
    assert mx.nd.onehot_encode(mx.nd.array([0, 3, 1]), out) is out
    np.testing.assert_array_equal(out.asnumpy(), np.eye(4)[[0, 3, 1]])


def test_ndarray_reshape_is_a_view_with_codes():
    x = mx.nd.zeros((2, 3, 4))
    y = x.reshape((-3, -2))
    y[:] = 7
    assert y.shape == (6, 4) and float(x.sum().asscalar()) == 7 * 24


def test_grad_req_add_in_join_ops():
    op = get_op("Concat")
    p = op.parse_params({"num_args": 2, "dim": 0})
    ctx = mx.ops.resource.op_context(mx.cpu())
    a, b = np.zeros((1, 2), np.float32), np.zeros((2, 2), np.float32)
    da, db = np.ones((1, 2), np.float32), np.ones((2, 2), np.float32)
    g = np.arange(6, dtype=np.float32).reshape(3, 2)
    op.backward(ctx, p, [g], [a, b], [None], [], [da, db], ["add", "write"])
    np.testing.assert_array_equal(da, [[1, 2]])
    np.testing.assert_array_equal(db, [[2, 3], [4, 5]])


def test_concat_infers_unknown_inputs():
    op = get_op("Concat")
    p = op.parse_params({"num_args": 3, "dim": 1})
    ins, outs, _ = op.infer_shape(p, [(2, 3), None, (0, 4)])
    assert ins == [(2, 3), (2, 0), (2, 4)] and outs == [(2, 0)]
    ins, outs, _ = op.infer_shape(p, [(2, 3), (2, 5), (0, 4)])
    assert outs == [(2, 12)]


# ---- errors --------------------------------------------------------------------------------
def test_shape_errors_name_op_argument_and_shapes():
    x = mx.nd.zeros((2, 3))
    with pytest.raises(ShapeError, match=r"Concat: input 1 has shape \(1, 3\), expected "
                                         r"\(2, 3\) like input 0 .*except on axis 1"):
        mx.nd.concat(x, mx.nd.zeros((1, 3)), dim=1)
    with pytest.raises(ShapeError, match=r"stack: input 1 has shape \(3, 2\), expected \(2, 3\)"):
        mx.nd.stack(x, mx.nd.zeros((3, 2)))
    with pytest.raises(ShapeError, match=r"SliceChannel: cannot split axis 1 of size 3 .*"
                                         r"num_outputs=2"):
        mx.nd.split(x, num_outputs=2)
    with pytest.raises(ShapeError, match=r"squeeze: axis 1 of data \(2, 3\) has size 3"):
        mx.nd.squeeze(x, axis=1)
    with pytest.raises(ShapeError, match=r"broadcast_to: cannot broadcast data of shape "
                                         r"\(2, 3\) to \(2, 4\)"):
        mx.nd.broadcast_to(x, shape=(2, 4))
    with pytest.raises(ShapeError, match=r"broadcast_to: shape=\(2, 3, 1\) has 3 dims"):
        mx.nd.broadcast_to(x, shape=(2, 3, 1))
    with pytest.raises(ShapeError, match=r"broadcast_like: lhs \(2, 3\) and rhs \(2, 3, 4\)"):
        mx.nd.broadcast_like(x, mx.nd.zeros((2, 3, 4)))
    with pytest.raises(ShapeError, match=r"reshape_like: lhs \(2, 3\) \(size 6\) cannot take "
                                         r"the shape \(4, 2\)"):
        mx.nd.reshape_like(x, mx.nd.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"expand_dims: axis=3 is out of range for data of "
                                         r"shape \(2, 3\); expected -3 <= axis < 3"):
        mx.nd.expand_dims(x, axis=3)
    with pytest.raises(ShapeError, match=r"transpose: axes=\(0, 0\) names an axis twice"):
        mx.nd.transpose(x, axes=(0, 0))
    with pytest.raises(ShapeError, match=r"transpose: axes=\(0,\) has 1 entries"):
        mx.nd.transpose(x, axes=(0,))
    with pytest.raises(ShapeError, match=r"diag: diagonal k=5 does not exist"):
        mx.nd.diag(x, k=5)
    with pytest.raises(ShapeError, match=r"depth_to_space: channels of data \(1, 3, 2, 2\)"):
        mx.nd.depth_to_space(mx.nd.zeros((1, 3, 2, 2)), block_size=2)
    with pytest.raises(ShapeError, match=r"_split_v2: indices=\(0, 4\) must be increasing"):
        mx.nd._internal._split_v2(x, indices=(0, 4), axis=1)


def test_bad_parameters():
    x = mx.nd.zeros((2, 3))
    with pytest.raises(ParamError, match="Reshape: unknown parameter 'shap'; valid parameters: "
                                         "shape, reverse, target_shape, keep_highest"):
        mx.nd.reshape(x, shap=(3, 2))
    with pytest.raises(ParamError, match="Reshape: parameter 'shape' got 'abc'"):
        mx.nd.reshape(x, shape="abc")
    with pytest.raises(ParamError, match="tile: parameter 'reps' got \\(0, 2\\)"):
        mx.nd.tile(x, reps=(0, 2))
    with pytest.raises(ParamError, match="repeat: parameter 'repeats' got -1"):
        mx.nd.repeat(x, repeats=-1)
    with pytest.raises(ParamError, match="Cast: parameter 'dtype'"):
        mx.nd.cast(x, dtype="complex64")
    with pytest.raises(ParamError, match="required parameter 'num_outputs' is missing"):
        mx.nd.split(x)
    with pytest.raises(DTypeError, match="Concat: arg1 has dtype int32, expected float32"):
        mx.nd.concat(x, mx.nd.zeros((2, 3), dtype="int32"))


def test_params_from_json_strings():
    p = get_op("Reshape").parse_params({"shape": "(-3, -2)", "reverse": "False"})
    assert p.shape == (-3, -2) and p.reverse is False
    p = get_op("SliceChannel").parse_params({"num_outputs": "3", "squeeze_axis": "1"})
    assert p.num_outputs == 3 and p.squeeze_axis is True
    assert get_op("split") is get_op("SliceChannel") and get_op("flip") is get_op("reverse")
