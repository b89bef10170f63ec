"""Indexing and sorting operators: slice, slice_axis, slice_like, _slice_assign(_scalar), take,
batch_take, pick, one_hot, where, gather_nd, scatter_nd, fill_element_0index, sort, argsort,
topk."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from op_harness import OpCase, table_tests


def _f32(*values):
    return np.array(values, dtype=np.float32)


def _slice_ref(x, begin, end, step=()):
    key = tuple(slice(b, e, step[i] if step else None) for i, (b, e) in enumerate(zip(begin, end)))
    return x[key]


def _slice_axis_ref(x, axis, begin, end):
    key = [slice(None)] * x.ndim
    key[axis] = slice(begin, end)
    return x[tuple(key)]


def _slice_like_ref(x, like, axes=()):
    key = [slice(None)] * x.ndim
    for a in (axes or range(like.ndim)):
        key[a] = slice(0, like.shape[a])
    return x[tuple(key)]


def _slice_assign_ref(lhs, rhs, begin, end, step=()):
    out = lhs.copy()
    out[tuple(slice(b, e, step[i] if step else None)
              for i, (b, e) in enumerate(zip(begin, end)))] = rhs
    return out


def _slice_assign_scalar_ref(x, scalar=0.0, begin=(), end=(), step=()):
    return _slice_assign_ref(x, scalar, begin, end, step)


def _positions(idx, n, mode):
    pos = idx.astype(np.int64)
    return np.mod(pos, n) if mode == "wrap" else np.clip(pos, 0, n - 1)


def _take_ref(a, idx, axis=0, mode="clip"):
    return np.take(a, _positions(idx, a.shape[axis], mode), axis=axis)


def _pick_ref(x, idx, axis=-1, keepdims=False, mode="clip"):
    pos = _positions(idx, x.shape[axis], mode)
    out = np.take_along_axis(x, np.expand_dims(pos, axis), axis)
    return out if keepdims else out.squeeze(axis)


def _one_hot_ref(idx, depth, on_value=1.0, off_value=0.0, dtype="float32"):
    pos = idx.astype(np.int64)
    out = np.full(idx.shape + (depth,), off_value, dtype)
    for i in np.ndindex(idx.shape):
        if 0 <= pos[i] < depth:
            out[i + (pos[i],)] = on_value
    return out


def _where_ref(c, x, y):
    if c.ndim == 1 and x.ndim > 1:
        c = c.reshape((-1,) + (1,) * (x.ndim - 1))
    return np.where(c != 0, x, y)


def _gather_nd_ref(data, idx):
    return data[tuple(idx.astype(np.int64))]


def _scatter_nd_ref(data, idx, shape):
    out = np.zeros(shape, data.dtype)
    out[tuple(idx.astype(np.int64))] = data
    return out


def _fill_ref(lhs, mhs, rhs):
    out = lhs.copy()
    out[np.arange(lhs.shape[0]), rhs.astype(np.int64)] = mhs
    return out


def _order(x, axis, ascend):
    return np.argsort(x if ascend else -x, axis=axis, kind="stable")


def _flat(x, axis):
    return (x.reshape(-1), 0) if axis is None else (x, axis)


def _sort_ref(x, axis=-1, is_ascend=True):
    x, axis = _flat(x, axis)
    return np.take_along_axis(x, _order(x, axis, is_ascend), axis)


def _argsort_ref(x, axis=-1, is_ascend=True, dtype="float32"):
    x, axis = _flat(x, axis)
    return _order(x, axis, is_ascend).astype(dtype)


def _topk_ref(x, axis=-1, k=1, ret_typ="indices", is_ascend=False, dtype="float32"):
    data, ax = _flat(x, axis)
    kk = k if k > 0 else data.shape[ax]
    idx = np.take(_order(data, ax, is_ascend), np.arange(kk), axis=ax)
    values = np.take_along_axis(data, idx, ax)
    if ret_typ == "mask":
        mask = np.zeros_like(data)
        np.put_along_axis(mask, idx, 1, ax)
        return mask.reshape(x.shape)
    return {"value": values, "indices": idx.astype(dtype),
            "both": [values, idx.astype(dtype)]}[ret_typ]


CASES = [
    OpCase("slice", [(3, 4, 5)], {"begin": (1, None), "end": (3, None)}, _slice_ref, id="slice"),
    OpCase("slice", [(3, 4, 5)], {"begin": (None, 3, 4), "end": (None, 0, None),
                                  "step": (None, -1, -2)}, _slice_ref, id="slice-negative-step"),
    OpCase("slice", [(3, 4)], {"begin": (-2, -10), "end": (None, 10)}, _slice_ref,
           id="slice-clipped"),
    OpCase("crop", [(4, 4)], {"begin": (0, 1), "end": (4, 3), "step": (2, 1)}, _slice_ref,
           id="crop"),
    OpCase("slice_axis", [(3, 4, 5)], {"axis": 1, "begin": 1, "end": None}, _slice_axis_ref,
           id="slice_axis"),
    OpCase("slice_axis", [(3, 4, 5)], {"axis": -1, "begin": -3, "end": -1}, _slice_axis_ref,
           id="slice_axis-negative"),
    OpCase("slice_like", [(3, 4, 5), (2, 3, 5)], {}, _slice_like_ref, grad_inputs=[0],
           id="slice_like"),
    OpCase("slice_like", [(3, 4, 5), (1, 2)], {"axes": (0, 1)}, _slice_like_ref,
           grad_inputs=[0], id="slice_like-axes"),
    OpCase("_slice_assign", [(3, 4), (2, 2)], {"begin": (0, 1), "end": (3, None),
                                               "step": (2, 2)}, _slice_assign_ref,
           id="_slice_assign"),
    OpCase("_slice_assign_scalar", [(3, 4)], {"scalar": 2.5, "begin": (1,), "end": (None,)},
           _slice_assign_scalar_ref, id="_slice_assign_scalar"),
    OpCase("take", [(4, 3), _f32(0, 3, 3, 1)], {}, _take_ref, grad_inputs=[0], id="take"),
    OpCase("take", [(4, 3), _f32(-1, 5, 1.7, 2.2)], {}, _take_ref, grad_inputs=[0],
           id="take-clip"),
    OpCase("take", [(4, 3), _f32(-1, 5, 4, -6)], {"mode": "wrap"}, _take_ref, grad_inputs=[0],
           id="take-wrap"),
    OpCase("take", [(2, 3, 4), np.array([[0, 2], [1, 1]], np.float32)], {"axis": 1},
           _take_ref, grad_inputs=[0], id="take-axis1-2d-indices"),
    OpCase("take", [(2, 3), np.array([2, 0], np.int32)], {"axis": -1, "mode": "raise"},
           _take_ref, grad_inputs=[0], id="take-int-indices"),
    OpCase("batch_take", [(3, 4), _f32(0, 3, 9)], {},
           lambda a, i: a[np.arange(3), np.clip(i.astype(int), 0, 3)], grad_inputs=[0],
           id="batch_take"),
    OpCase("pick", [(3, 4), _f32(0, 3, 1)], {}, _pick_ref, grad_inputs=[0], id="pick"),
    OpCase("pick", [(3, 4), _f32(2, 0, 1, 1)], {"axis": 0, "keepdims": True}, _pick_ref,
           grad_inputs=[0], id="pick-axis0-keepdims"),
    OpCase("pick", [(3, 4), _f32(-1, 5, 4)], {"mode": "wrap"}, _pick_ref, grad_inputs=[0],
           id="pick-wrap"),
    OpCase("choose_element_0index", [(2, 3), _f32(2, 1)], {}, _pick_ref, grad_inputs=[0],
           id="choose_element_0index"),
    OpCase("one_hot", [_f32(1, 0, -1, 5, 2.7)], {"depth": 3}, _one_hot_ref, grad=False,
           id="one_hot"),
    OpCase("one_hot", [np.array([[1, 0], [2, 2]], np.int32)],
           {"depth": 3, "on_value": 5, "off_value": -1, "dtype": "int32"}, _one_hot_ref,
           grad=False, id="one_hot-int"),
    OpCase("where", [np.array([[1, 0, 2], [0, 0, 1]], np.float32), (2, 3), (2, 3)], {},
           _where_ref, grad_inputs=[1, 2], id="where"),
    OpCase("where", [_f32(1, 0), (2, 3), (2, 3)], {}, _where_ref, grad_inputs=[1, 2],
           id="where-rows"),
    OpCase("gather_nd", [(3, 4, 2), np.array([[0, 2, 2], [1, -1, 1]], np.float32)], {},
           _gather_nd_ref, grad_inputs=[0], id="gather_nd"),
    OpCase("gather_nd", [(3, 4), np.array([[[0, 1], [2, 2]]], np.float32)], {},
           _gather_nd_ref, grad_inputs=[0], id="gather_nd-rows"),
    OpCase("scatter_nd", [(3,), np.array([[0, 1, 1], [2, 0, 3]], np.float32)],
           {"shape": (2, 4)}, _scatter_nd_ref, grad_inputs=[0], id="scatter_nd"),
    OpCase("scatter_nd", [(2, 3), np.array([[3, 0]], np.float32)], {"shape": (4, 3)},
           _scatter_nd_ref, grad_inputs=[0], id="scatter_nd-rows"),
    OpCase("fill_element_0index", [(3, 4), (3,), _f32(1, 0, 3)], {}, _fill_ref,
           grad_inputs=[0, 1], id="fill_element_0index"),
    # sorting
    OpCase("sort", [(3, 5)], {}, _sort_ref, id="sort"),
    OpCase("sort", [(3, 5)], {"axis": 0, "is_ascend": False}, _sort_ref, id="sort-desc-axis0"),
    OpCase("sort", [(2, 3)], {"axis": None}, _sort_ref, id="sort-flat"),
    OpCase("argsort", [(3, 5)], {}, _argsort_ref, grad=False, id="argsort"),
    OpCase("argsort", [(3, 5)], {"is_ascend": False, "dtype": "int32", "axis": 0},
           _argsort_ref, grad=False, id="argsort-desc-int32"),
    OpCase("topk", [(3, 5)], {}, _topk_ref, grad=False, id="topk"),
    OpCase("topk", [(3, 5)], {"k": 2, "ret_typ": "value"}, _topk_ref, id="topk-value"),
    OpCase("topk", [(3, 5)], {"k": 3, "ret_typ": "both", "axis": 0, "is_ascend": True},
           _topk_ref, id="topk-both-ascending"),
    OpCase("topk", [(3, 5)], {"k": 2, "ret_typ": "mask"}, _topk_ref, grad=False, id="topk-mask"),
    OpCase("topk", [(3, 5)], {"k": 4, "ret_typ": "value", "axis": None}, _topk_ref,
           id="topk-flat"),
    OpCase("topk", [(3, 5)], {"k": 0, "ret_typ": "indices", "dtype": "int64"}, _topk_ref,
           grad=False, id="topk-all"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- MXNet behaviours ----------------------------------------------------------------------
def _grad(fn, *arrays):
    xs = [mx.nd.array(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with mx.autograd.record():
        y = fn(*xs)
    y.backward()
    return [x.grad.asnumpy() for x in xs]


def test_gather_gradients_add_up_over_repeated_indices():
    a = np.array([[1.0, 2], [3, 4], [5, 6]])
    (g,) = _grad(lambda x: mx.nd.take(x, mx.nd.array([0, 0, 2, -1])), a)
    np.testing.assert_array_equal(g, [[3, 3], [0, 0], [1, 1]])     # -1 clips to row 0
    (g,) = _grad(lambda x: mx.nd.gather_nd(x, mx.nd.array([[0, 0, 2], [1, 1, 0]])), a)
    np.testing.assert_array_equal(g, [[0, 2], [0, 0], [1, 0]])


def test_scatter_nd_last_write_wins_and_gradient_gathers():
    out = mx.nd.scatter_nd(mx.nd.array([1, 2, 3]), mx.nd.array([[0, 1, 0], [1, 1, 1]]),
                           shape=(2, 2))
    np.testing.assert_array_equal(out.asnumpy(), [[0, 3], [0, 2]])
    (g,) = _grad(lambda d: mx.nd.scatter_nd(d, mx.nd.array([[0, 1, 0], [1, 1, 1]]),
                                            shape=(2, 2)), np.array([1.0, 2, 3]))
    np.testing.assert_array_equal(g, [1, 1, 1])


def test_sort_orders_are_stable_both_ways():
    x = mx.nd.array([[3, 1, 2, 1], [5, 5, 0, 4]])
    np.testing.assert_array_equal(mx.nd.argsort(x).asnumpy(), [[1, 3, 2, 0], [2, 3, 0, 1]])
    np.testing.assert_array_equal(mx.nd.argsort(x, is_ascend=False).asnumpy(),
                                  [[0, 2, 1, 3], [0, 1, 3, 2]])
    values, indices = mx.nd.topk(x, k=2, ret_typ="both")
    np.testing.assert_array_equal(values.asnumpy(), [[3, 2], [5, 5]])
    np.testing.assert_array_equal(indices.asnumpy(), [[0, 2], [0, 1]])
    assert indices.dtype == np.float32
    ints = mx.nd.sort(mx.nd.array([[1, 3, 2]], dtype="int32"), is_ascend=False)
    assert ints.dtype == np.int32
    np.testing.assert_array_equal(ints.asnumpy(), [[3, 2, 1]])


def test_sort_and_topk_gradients_go_back_to_the_source_positions():
    (g,) = _grad(lambda x: mx.nd.sort(x) * mx.nd.array([[1, 2, 3]]), np.array([[3.0, 1, 2]]))
    np.testing.assert_array_equal(g, [[3, 1, 2]])
    (g,) = _grad(lambda x: mx.nd.topk(x, k=2, ret_typ="value") * mx.nd.array([[1, 2]]),
                 np.array([[3.0, 1, 2, 1]]))
    np.testing.assert_array_equal(g, [[1, 0, 2, 0]])
    (g,) = _grad(lambda x: mx.nd.topk(x, k=2, ret_typ="mask") * 1, np.array([[3.0, 1, 2]]))
    np.testing.assert_array_equal(g, [[0, 0, 0]])


def test_index_inputs_get_zero_gradients():
    ga, gi = _grad(lambda a, i: mx.nd.pick(a, i), np.array([[1.0, 2], [3, 4]]),
                   np.array([1.0, 0]))
    np.testing.assert_array_equal(ga, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(gi, [0, 0])
    gc, gx, gy = _grad(lambda c, x, y: mx.nd.where(c, x, y), np.array([1.0, 0, 1]),
                       np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))
    np.testing.assert_array_equal(gc, [0, 0, 0])
    np.testing.assert_array_equal(gx, [1, 0, 1])
    np.testing.assert_array_equal(gy, [0, 1, 0])


def test_recorded_basic_indexing_uses_slice():
    x = mx.nd.array(np.arange(12.0).reshape(3, 4))
    x.attach_grad()
    with mx.autograd.record():
        y = x[1:, ::-2] * 2
    y.backward()
    np.testing.assert_array_equal(y.asnumpy(), np.arange(12.0).reshape(3, 4)[1:, ::-2] * 2)
    want = np.zeros((3, 4))
    want[1:, ::-2] = 2
    np.testing.assert_array_equal(x.grad.asnumpy(), want)


def test_grad_req_add():
    op = get_op("take")
    p = op.parse_params({})
    ctx = mx.ops.resource.op_context(mx.cpu())
    da = np.ones((3, 2), np.float32)
    idx = np.array([0, 0], np.float32)
    op.backward(ctx, p, [np.ones((2, 2), np.float32)], [np.zeros((3, 2), np.float32), idx],
                [None], [], [da, None], ["add", "null"])
    np.testing.assert_array_equal(da, [[3, 3], [1, 1], [1, 1]])


def test_fluent_methods():
    x = mx.nd.array([[3.0, 1, 2]])
    np.testing.assert_array_equal(x.sort().asnumpy(), [[1, 2, 3]])
    np.testing.assert_array_equal(x.topk(k=2, ret_typ="value").asnumpy(), [[3, 2]])
    np.testing.assert_array_equal(x.take(mx.nd.array([0])).asnumpy(), [[3, 1, 2]])
    np.testing.assert_array_equal(x.slice_axis(axis=1, begin=1, end=3).asnumpy(), [[1, 2]])
    np.testing.assert_array_equal(mx.nd.array([1, 0]).one_hot(2).asnumpy(), [[0, 1], [1, 0]])


# ---- errors --------------------------------------------------------------------------------
def test_shape_errors():
    x = mx.nd.zeros((2, 3))
    with pytest.raises(ShapeError, match=r"slice: step\[1\] must not be 0"):
        mx.nd.slice(x, begin=(0, 0), end=(1, 1), step=(1, 0))
    with pytest.raises(ShapeError, match=r"slice: begin=\(0,\) and end=\(1, 1\) must have the "
                                         r"same length"):
        mx.nd.slice(x, begin=(0,), end=(1, 1))
    with pytest.raises(ShapeError, match=r"slice: begin=\(0, 0, 0\) slices 3 axes but data "
                                         r"\(2, 3\) has 2"):
        mx.nd.slice(x, begin=(0, 0, 0), end=(1, 1, 1))
    with pytest.raises(ShapeError, match=r"slice_axis: begin=2, end=1 do not select"):
        mx.nd.slice_axis(x, axis=1, begin=2, end=1)
    with pytest.raises(ShapeError, match=r"slice_like: shape_like \(5, 3\) is larger than data "
                                         r"\(2, 3\) on axis 0"):
        mx.nd.slice_like(x, mx.nd.zeros((5, 3)))
    with pytest.raises(ShapeError, match=r"where: condition has shape \(3,\), expected \(2, 3\)"):
        mx.nd.where(mx.nd.zeros((3,)), x, x)
    with pytest.raises(ShapeError, match=r"where: y has shape \(3, 2\), expected \(2, 3\)"):
        mx.nd.where(x, x, mx.nd.zeros((3, 2)))
    with pytest.raises(ShapeError, match=r"pick: axis=None is not supported"):
        mx.nd.pick(x, mx.nd.zeros((2,)), axis=None)
    with pytest.raises(ShapeError, match=r"pick: index has shape \(3,\), expected \(2,\)"):
        mx.nd.pick(x, mx.nd.zeros((3,)))
    with pytest.raises(ShapeError, match=r"topk: k=4 is larger than axis -1 of data \(2, 3\)"):
        mx.nd.topk(x, k=4)
    with pytest.raises(ShapeError, match=r"batch_take: indices has shape \(3,\)"):
        mx.nd.batch_take(x, mx.nd.zeros((3,)))
    with pytest.raises(ShapeError, match=r"_slice_assign: rhs has shape \(2, 2\), expected "
                                         r"\(1, 3\)"):
        mx.nd._internal._slice_assign(x, mx.nd.zeros((2, 2)), begin=(0,), end=(1,))
    with pytest.raises(ShapeError, match=r"scatter_nd: data has shape \(3,\), expected \(2,\)"):
        mx.nd.scatter_nd(mx.nd.zeros((3,)), mx.nd.zeros((1, 2)), shape=(4,))


def test_out_of_range_indices_raise_index_error_at_wait():
    x = mx.nd.zeros((2, 3))
    y = mx.nd.take(x, mx.nd.array([0, 2]), mode="raise")
    with pytest.raises(IndexError, match="take: index 2 is out of bounds for an axis of size 2"):
        y.wait_to_read()
    z = mx.nd.gather_nd(x, mx.nd.array([[0, 5]]))
    with pytest.raises(IndexError, match="gather_nd: index 5 is out of bounds for axis 0"):
        z.asnumpy()


def test_bad_parameters():
    x = mx.nd.zeros((2, 3))
    with pytest.raises(ParamError, match="take: parameter 'mode' got 'nearest': expected one "
                                         "of clip, raise, wrap"):
        mx.nd.take(x, mx.nd.zeros((1,)), mode="nearest")
    with pytest.raises(ParamError, match="slice: parameter 'begin' got 'abc'"):
        mx.nd.slice(x, begin="abc", end=(1,))
    with pytest.raises(ParamError, match="slice: parameter 'end' got \\(1.5,\\): entry 1.5"):
        mx.nd.slice(x, begin=(0,), end=(1.5,))
    with pytest.raises(ParamError, match="one_hot: required parameter 'depth' is missing"):
        mx.nd.one_hot(x)
    with pytest.raises(ParamError, match="topk: parameter 'ret_typ' got 'values'"):
        mx.nd.topk(x, ret_typ="values")
    with pytest.raises(ParamError, match="topk: unknown parameter 'largest'; valid parameters: "
                                         "axis, k, ret_typ, is_ascend, dtype"):
        mx.nd.topk(x, largest=True)


def test_params_from_json_strings():
    p = get_op("slice").parse_params({"begin": "(None, 1)", "end": "(2, None)",
                                      "step": "(None, -1)"})
    assert (p.begin, p.end, p.step) == ((None, 1), (2, None), (None, -1))
    p = get_op("slice_axis").parse_params({"axis": "1", "begin": "0", "end": "None"})
    assert (p.axis, p.begin, p.end) == (1, 0, None)
    p = get_op("topk").parse_params({"axis": "None", "k": "3", "is_ascend": "True"})
    assert (p.axis, p.k, p.is_ascend) == (None, 3, True)


@pytest.mark.parametrize("shape, axis, k, ascend", [
    ((6, 40), -1, 3, False), ((6, 40), 1, 5, True), ((40, 3, 5), 0, 7, False),
    ((2, 64), -1, 16, False), ((50,), 0, 1, True)])
def test_topk_partition_path_matches_the_full_sort(shape, axis, k, ascend):
    from hybridnet.ops.sort import first_k, first_k_partitioned
    rng = np.random.RandomState(k)
    data = rng.randint(0, 6, shape).astype(np.float32)         # many ties
    fast = first_k_partitioned(data, axis, k, ascend)
    np.testing.assert_array_equal(fast, first_k(np, data, axis, k, ascend))
    with_nan = data.copy()
    with_nan.reshape(-1)[::3] = np.nan
    assert first_k_partitioned(with_nan, axis, k, ascend) is None or \
        np.array_equal(first_k_partitioned(with_nan, axis, k, ascend),
                       first_k(np, with_nan, axis, k, ascend))
