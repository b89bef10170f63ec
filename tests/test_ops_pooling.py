"""Pooling: every pool type and convention (1-D/2-D/3-D) vs a plain numpy reference,
gradients vs finite differences, the numba kernels vs their slicing versions, grad_req 'add',
output-size formulas, shape inference and every parameter / shape error."""
import itertools

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from hybridnet.ops.kernels import pooling as kern
from hybridnet.ops.nn.pooling import pool_geometry
from hybridnet.ops.registry import OpContext
from op_harness import OpCase, table_tests


def pool_ref(x, *, kernel=(), pool_type="max", global_pool=False, pooling_convention="valid",
             stride=(), pad=(), p_value=None, count_include_pad=None, **_):
    """Pooling written plainly: for each output position slice its window out of x."""
    x = x.astype(np.float64)
    size = x.shape[2:]
    nd = len(size)
    if global_pool:
        kernel, stride, pad, pooling_convention = size, (1,) * nd, (0,) * nd, "valid"
    stride, pad = tuple(stride) or (1,) * nd, tuple(pad) or (0,) * nd
    before, after, out = [], [], []
    for n, k, s, q in zip(size, kernel, stride, pad):
        if pooling_convention == "valid":
            o = int(np.floor((n + 2 * q - k) / s)) + 1
        elif pooling_convention == "full":
            o = int(np.ceil((n + 2 * q - k) / s)) + 1
        else:
            o = int(np.ceil(n / s))
            q = max((o - 1) * s + k - n, 0)
            before.append(q // 2)
            after.append(q - q // 2)
            out.append(o)
            continue
        before.append(q)
        after.append(q)
        out.append(o)
    y = np.zeros(x.shape[:2] + tuple(out))
    for pos in np.ndindex(*out):
        lo = [p * s - b for p, s, b in zip(pos, stride, before)]
        hi = [min(lo_ + k, n + a) for lo_, k, n, a in zip(lo, kernel, size, after)]
        win = x[(Ellipsis,) + tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, size))]
        cells = int(np.prod(win.shape[2:]))
        flat = win.reshape(x.shape[:2] + (-1,))
        if pool_type == "max":
            val = flat.max(-1) if cells else np.finfo(np.float32).min
        elif pool_type == "sum":
            val = flat.sum(-1)
        elif pool_type == "avg":
            count = int(np.prod([b - a for a, b in zip(lo, hi)])) \
                if count_include_pad is not False else cells
            val = flat.sum(-1) / count if count else 0
        else:
            val = np.cbrt((flat ** 3).sum(-1)) if p_value == 3 else \
                ((flat ** p_value).sum(-1)) ** (1.0 / p_value)
        y[(Ellipsis,) + pos] = val
    return y


def _case(shape, **params):
    return OpCase("Pooling", [shape], params, pool_ref, rtol=1e-5, atol=1e-5,
                  id="Pooling-" + "-".join(f"{k}{v}" for k, v in sorted(params.items()))
                  + f"-{shape}")


CASES = [
    _case((2, 3, 7, 7), kernel=(3, 3), stride=(2, 2)),
    _case((2, 3, 8, 7), kernel=(2, 3), stride=(2, 2), pad=(1, 1)),
    _case((1, 2, 7, 7), kernel=(3, 3), stride=(2, 2), pool_type="avg"),
    _case((1, 2, 6, 6), kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg"),
    _case((1, 2, 6, 6), kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg",
          count_include_pad=False),
    _case((1, 2, 6, 6), kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="avg",
          pooling_convention="full"),
    _case((1, 2, 5, 5), kernel=(2, 2), stride=(2, 2), pool_type="avg",
          pooling_convention="full", count_include_pad=False),
    _case((1, 2, 6, 6), kernel=(3, 3), stride=(2, 2), pad=(1, 1), pooling_convention="full"),
    _case((2, 2, 5, 6), kernel=(3, 2), stride=(2, 1), pad=(1, 0), pool_type="sum"),
    _case((1, 2, 5, 5), kernel=(3, 3), stride=(2, 2), pool_type="sum",
          pooling_convention="full"),
    _case((1, 2, 4, 5), kernel=(2, 2), pool_type="lp", p_value=1),
    _case((1, 2, 4, 5), kernel=(2, 2), stride=(2, 1), pool_type="lp", p_value=2),
    _case((1, 2, 4, 5), kernel=(2, 3), pad=(1, 1), pool_type="lp", p_value=3),
    _case((2, 3, 4, 5), global_pool=True),
    _case((2, 3, 4, 5), global_pool=True, pool_type="avg", kernel=(2, 2), pad=(1, 1)),
    _case((2, 3, 9), kernel=(3,), stride=(2,), pad=(1,)),
    _case((2, 3, 9), kernel=(4,), stride=(3,), pool_type="avg", pooling_convention="full"),
    _case((2, 3, 8), global_pool=True, pool_type="sum"),
    _case((1, 2, 4, 5, 6), kernel=(2, 2, 2), stride=(2, 2, 2)),
    _case((1, 2, 3, 3, 3), kernel=(2, 2, 2), stride=(2, 2, 2), pool_type="avg",
          pooling_convention="full"),
    _case((1, 2, 5, 4, 4), kernel=(3, 2, 2), stride=(1, 2, 2), pad=(1, 0, 1),
          pool_type="avg", count_include_pad=False),
    _case((1, 2, 3, 4, 4), global_pool=True, pool_type="avg"),
    _case((2, 2, 7), kernel=(3,), stride=(2,), pooling_convention="same"),
    _case((2, 2, 8), kernel=(4,), stride=(3,), pooling_convention="same", pool_type="avg"),
    _case((1, 2, 5, 6), kernel=(2, 3), stride=(2, 2), pooling_convention="same",
          pool_type="sum"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


def test_full_convention_with_empty_windows_gives_mxnets_values():
    # stride 3 > kernel 1 on 5 elements: the full convention makes a window past the data;
    # MXNet gives max the float's lowest value there and avg / sum zero
    x = mx.nd.array(np.arange(1, 26, dtype=np.float32).reshape(1, 1, 5, 5))
    low = np.finfo(np.float32).min
    got = mx.nd.Pooling(x, kernel=(1, 1), stride=(3, 3), pooling_convention="full").asnumpy()
    np.testing.assert_array_equal(got[0, 0], [[1, 4, low], [16, 19, low], [low, low, low]])
    for kind in ("avg", "sum"):
        got = mx.nd.Pooling(x, kernel=(1, 1), stride=(3, 3), pool_type=kind,
                            pooling_convention="full").asnumpy()
        np.testing.assert_array_equal(got[0, 0], [[1, 4, 0], [16, 19, 0], [0, 0, 0]])


def test_max_gradient_goes_to_the_first_maximum_only():
    # the window at (0, 1) holds two 5s: only the first (row-major) gets its gradient (MXNet
    # gives the same, float32 and float64)
    x = mx.nd.array(np.array([[[[1, 5, 5], [5, 2, 0], [0, 0, 0]]]], np.float32))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Pooling(x, kernel=(2, 2), stride=(1, 1))
    y.backward(mx.nd.array(np.array([[[[1, 10], [100, 1000]]]], np.float32)))
    np.testing.assert_array_equal(x.grad.asnumpy()[0, 0],
                                  [[0, 11, 0], [100, 1000, 0], [0, 0, 0]])


def test_valid_and_full_output_sizes_follow_mxnets_formulas_on_odd_sizes():
    op = get_op("Pooling")
    for n, k, s, q in itertools.product(range(3, 10), (1, 2, 3, 4), (1, 2, 3), (0, 1)):
        if k > n + 2 * q or q >= k:
            continue
        for conv, want in (("valid", (n + 2 * q - k) // s + 1),
                           ("full", int(np.ceil((n + 2 * q - k) / s)) + 1)):
            p = op.parse_params({"kernel": (k, k), "stride": (s, s), "pad": (q, q),
                                 "pooling_convention": conv})
            assert op.infer_shape(p, [(1, 1, n, n + 1)])[1][0][2] == want, (n, k, s, q, conv)
        p = op.parse_params({"kernel": (k,), "stride": (s,), "pooling_convention": "same"})
        assert op.infer_shape(p, [(1, 1, n)])[1][0] == (1, 1, -(-n // s))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_numba_kernels_match_the_slicing_versions(case):
    x = case.arrays()[0].astype(np.float64)
    p = get_op("Pooling").parse_params(case.params)
    g = pool_geometry(p, x.shape)
    kind = {"max": kern.MAX, "avg": kern.AVG, "sum": kern.SUM, "lp": kern.LP}[p.pool_type]
    args = (kind, g.kernel, g.stride, g.pad, g.limit, p.p_value or 1,
            p.count_include_pad is not False)
    xc = x.reshape((-1,) + (1,) * (5 - x.ndim) + x.shape[2:])
    y, y_ref = (np.empty((xc.shape[0],) + (1,) * (3 - len(g.out_sp)) + g.out_sp)
                for _ in range(2))
    kern.pool_forward(np, xc, y, *args)
    kern.pool_forward_xp(np, xc, y_ref, *args)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    dy = np.random.RandomState(1).standard_normal(y.shape)
    start = np.random.RandomState(2).standard_normal(xc.shape)
    dx, dx_ref = start.copy(), start.copy()
    kern.pool_backward(np, xc, y, dy, dx, *args)
    kern.pool_backward_xp(np, xc, y, dy, dx_ref, *args)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[3], CASES[12], CASES[19]], ids=str)
def test_float16_runs_through_the_slicing_kernels(case):
    x = case.arrays()[0].astype(np.float16)
    got = mx.nd.Pooling(mx.nd.array(x, dtype=np.float16), **case.params)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.asnumpy(), pool_ref(x, **case.params), rtol=1e-2, atol=1e-2)


def test_grad_req_add_and_non_contiguous_buffers():
    op = get_op("Pooling")
    p = op.parse_params({"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "pool_type": "avg"})
    ctx = OpContext(np, mx.cpu(), None)
    rng = np.random.RandomState(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = np.empty((2, 3, 3, 3), np.float32)
    op.forward(ctx, p, [x], [], [y], True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.empty_like(x)
    op.backward(ctx, p, [dy], [x], [y], [], [dx], ["write"])
    start = rng.standard_normal(x.shape).astype(np.float32)
    acc = start.copy()
    op.backward(ctx, p, [dy], [x], [y], [], [acc], ["add"])
    np.testing.assert_allclose(acc, start + dx, rtol=1e-6, atol=1e-6)
    big_y = np.zeros((2, 3, 3, 6), np.float32)
    op.forward(ctx, p, [x], [], [big_y[..., ::2]], True)
    np.testing.assert_array_equal(big_y[..., ::2], y)
    big_dx = np.zeros((2, 3, 6, 12), np.float32)
    op.backward(ctx, p, [dy], [x], [y], [], [big_dx[..., ::2]], ["write"])
    np.testing.assert_array_equal(big_dx[..., ::2], dx)
    assert not big_y[..., 1::2].any() and not big_dx[..., 1::2].any()


# ---- shape inference and errors --------------------------------------------------------------
def _infer(shapes, **params):
    op = get_op("Pooling")
    return op.infer_shape(op.parse_params(params), shapes)


def test_partial_and_global_shapes():
    # max pooling's second output is the hidden argmax, shaped like the first
    assert _infer([(0, 3, 7, 0)], kernel=(3, 3), stride=(2, 2)) == \
        ([(0, 3, 7, 0)], [(0, 3, 3, 0)] * 2, [])
    assert _infer([None], kernel=(3, 3)) == ([None], [None, None], [])
    assert _infer([None], kernel=(3, 3), pool_type="avg") == ([None], [None], [])
    assert _infer([(2, 3, 5)], global_pool=True)[1] == [(2, 3, 1)] * 2
    assert _infer([(2, 3, 4, 5, 6)], global_pool=True, kernel=(2,), pool_type="sum")[1] == \
        [(2, 3, 1, 1, 1)]
    p = get_op("Pooling").parse_params({"kernel": "(2, 2)", "pool_type": "lp", "p_value": "2",
                                        "count_include_pad": "False", "global_pool": "0"})
    assert (p.kernel, p.p_value, p.count_include_pad, p.global_pool) == ((2, 2), 2, False,
                                                                          False)
    d = get_op("Pooling").parse_params({})
    assert (d.pool_type, d.pooling_convention, d.count_include_pad, d.p_value) == \
        ("max", "valid", None, None)


@pytest.mark.parametrize("params, pattern", [
    (dict(), r"kernel is required unless global_pool=True"),
    (dict(kernel=(2, 2), stride=(1,)), r"stride=\(1,\) has 1 dimension\(s\) but "
                                       r"kernel=\(2, 2\) has 2"),
    (dict(kernel=(2, 2), pad=(1, 1, 1)), r"pad=\(1, 1, 1\) has 3 dimension\(s\)"),
    (dict(kernel=(2, 2, 2, 2)), r"kernel=\(2, 2, 2, 2\) must have 1, 2 or 3 dimensions"),
    (dict(kernel=(2, 0)), r"kernel=\(2, 0\) must be positive"),
    (dict(kernel=(2, 2), stride=(0, 1)), r"stride=\(0, 1\) must be positive"),
    (dict(kernel=(2, 2), pad=(2, 0)), r"pad=\(2, 0\) must be smaller than kernel=\(2, 2\)"),
    (dict(kernel=(2, 2), pool_type="lp"), r"pool_type='lp' needs p_value 1, 2 or 3, got None"),
    (dict(kernel=(2, 2), pool_type="lp", p_value=4), r"pool_type='lp' needs p_value 1, 2 or 3, "
                                                      r"got 4"),
    (dict(kernel=(3,), pad=(1,), pooling_convention="same"), r"pooling_convention='same' "
                                                             r"computes its own padding"),
    (dict(kernel=(2, 2), layout="NHWC"), r"layout='NHWC' is not supported for 2-D pooling; "
                                         r"use 'NCHW'"),
])
def test_bad_parameters_name_the_operator_and_values(params, pattern):
    with pytest.raises(ParamError, match=f"Pooling: {pattern}"):
        _infer([(1, 2, 6, 6)], **params)


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"Pooling: kernel=\(5, 5\) is larger than the padded "
                                         r"input: data \(1, 1, 4, 4\) with pad=\(0, 0\)"):
        _infer([(1, 1, 4, 4)], kernel=(5, 5))
    with pytest.raises(ShapeError, match=r"Pooling: data has shape \(1, 1, 4, 4, 4\), expected "
                                         r"4 dimensions for the 2-D kernel=\(2, 2\)"):
        _infer([(1, 1, 4, 4, 4)], kernel=(2, 2))
    with pytest.raises(ShapeError, match=r"Pooling: data has shape \(4, 4\); expected 3, 4 or "
                                         r"5 dimensions"):
        _infer([(4, 4)], kernel=(2,))
    with pytest.raises(ShapeError, match="larger than the padded input"):
        mx.nd.Pooling(mx.nd.ones((1, 1, 3, 3)), kernel=(4, 4))


@pytest.mark.gpu
def test_gpu_matches_cpu():
    for case in CASES[:5]:
        x = case.arrays()[0]
        cpu = mx.nd.Pooling(mx.nd.array(x), **case.params)
        gpu = mx.nd.Pooling(mx.nd.array(x, ctx=mx.gpu(0)), **case.params)
        np.testing.assert_allclose(gpu.asnumpy(), cpu.asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,kernel,stride,pad,limit_extra", [
    ((6, 1, 9, 11), (1, 3, 3), (1, 2, 2), (0, 0, 0), 0),
    ((4, 1, 8, 7), (1, 2, 3), (1, 1, 2), (0, 1, 1), 0),
    ((3, 1, 1, 10), (1, 1, 4), (1, 1, 3), (0, 0, 2), 0),
    # the shapes compiled with constant windows, inside and clipped by padding / 'full' windows
    ((5, 1, 12, 13), (1, 3, 3), (1, 2, 2), (0, 1, 1), 0),
    ((5, 1, 7, 8), (1, 3, 3), (1, 2, 2), (0, 1, 1), 1),
    ((5, 1, 9, 9), (1, 2, 2), (1, 2, 2), (0, 1, 1), 0),
    ((5, 1, 8, 8), (1, 2, 2), (1, 2, 2), (0, 0, 0), 1),
    ((5, 1, 6, 17), (1, 3, 3), (1, 1, 1), (0, 1, 1), 0),
    ((2, 1, 5, 5), (1, 1, 1), (1, 3, 3), (0, 0, 0), 1),
])
def test_2d_max_kernels_match_the_general_kernels(shape, kernel, stride, pad, limit_extra):
    # small integers: many ties, so the first-maximum rule is exercised; limit_extra > 0 makes
    # 'full'-convention windows that hang over the end (some without any data)
    x = np.random.RandomState(0).randint(-3, 4, shape).astype(np.float32)
    limit = tuple(n + q + (limit_extra if i else 0)
                  for i, (n, q) in enumerate(zip(shape[1:], pad)))
    out = tuple(-(-(lim + q - k) // s) + 1 if limit_extra and i else (n + 2 * q - k) // s + 1
                for i, (n, k, s, q, lim) in enumerate(zip(shape[1:], kernel, stride, pad, limit)))
    lowest = np.float32(np.finfo(np.float32).min)
    y, y_ref = (np.empty(shape[:1] + out, np.float32) for _ in range(2))
    argmax = np.empty(y.shape, np.int32)
    kern._max_forward_2d(x, y, argmax, kernel, stride, pad, limit, lowest)
    kern._max_forward(x, y_ref, kernel, stride, pad, limit, lowest)
    np.testing.assert_array_equal(y, y_ref)
    dy = np.random.RandomState(1).standard_normal(y.shape).astype(np.float32)
    dx, dx_ref = np.ones_like(x), np.ones_like(x)
    kern._max_backward_2d(argmax, dy, dx, False)
    kern._max_backward(x, dy, dx_ref, kernel, stride, pad, limit, lowest)
    np.testing.assert_array_equal(dx, dx_ref)
    fresh, fresh_ref = np.full_like(x, np.nan), np.zeros_like(x)
    kern._max_backward_2d(argmax, dy, fresh, True)                  # overwrites
    kern._max_backward(x, dy, fresh_ref, kernel, stride, pad, limit, lowest)
    np.testing.assert_array_equal(fresh, fresh_ref)


@pytest.mark.parametrize("shape,params", [
    ((3, 4, 9, 10), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))),
    ((2, 3, 7, 7), dict(kernel=(2, 2), stride=(2, 2), pooling_convention="full")),
    ((2, 3, 11), dict(kernel=(3,), stride=(2,))),
    ((1, 2, 4, 5, 6), dict(kernel=(2, 2, 2), stride=(2, 2, 2))),       # not recorded: 3-D
])
def test_max_backward_through_the_recorded_argmax_equals_finding_it_again(shape, params):
    op = get_op("Pooling")
    p = op.parse_params(params)
    ctx = OpContext(np, mx.cpu(), None)
    x = np.random.RandomState(0).randint(-3, 4, shape).astype(np.float32)    # many ties
    (_, (y_shape, arg_shape), _) = op.infer_shape(p, [x.shape])
    assert op.infer_type(p, [np.dtype(np.float32)])[1] == [np.float32, np.int32]
    dy = np.random.RandomState(1).standard_normal(y_shape).astype(np.float32)
    grads = {}
    for drop_record in (False, True):
        y, arg = np.empty(y_shape, np.float32), np.empty(arg_shape, np.int32)
        op.forward(ctx, p, [x], [], [y, arg], False)
        np.testing.assert_array_equal(y, pool_ref(x, **params))
        recorded = arg.reshape(-1)[0] != kern.NOT_RECORDED
        assert recorded == (len(shape) < 5)
        if recorded:       # in-plane index of the first maximum of each window
            planes = x.reshape(x.shape[0] * x.shape[1], -1)
            np.testing.assert_array_equal(
                np.take_along_axis(planes, np.maximum(arg.reshape(len(planes), -1), 0), 1),
                np.where(arg.reshape(len(planes), -1) >= 0, y.reshape(len(planes), -1),
                         np.finfo(np.float32).min))
        if drop_record:    # the backward then finds the argmaxes itself
            arg.reshape(-1)[0] = kern.NOT_RECORDED
        dx = np.full_like(x, np.nan)
        op.backward(ctx, p, [dy], [x], [y, arg], [], [dx], ["write"])
        acc = np.ones_like(x)
        op.backward(ctx, p, [dy], [x], [y, arg], [], [acc], ["add"])
        np.testing.assert_allclose(acc, dx + 1, rtol=1e-6)
        grads[drop_record] = dx
    np.testing.assert_array_equal(grads[True], grads[False])
    xc = x.reshape((-1,) + (1,) * (5 - x.ndim) + x.shape[2:])
    g = pool_geometry(p, x.shape)
    want = np.zeros_like(xc)
    kern.pool_backward_xp(np, xc, pool_ref(x, **params).astype(np.float32).reshape(
        (len(xc),) + (1,) * (5 - x.ndim) + g.out_sp), dy.reshape(
        (len(xc),) + (1,) * (5 - x.ndim) + g.out_sp), want, kern.MAX, g.kernel, g.stride,
        g.pad, g.limit)
    np.testing.assert_allclose(grads[True], want.reshape(x.shape), rtol=1e-6, atol=1e-6)


def test_max_gradient_is_the_same_when_recorded_in_inference_mode():
    x = mx.nd.array(np.random.RandomState(0).standard_normal((2, 3, 8, 8)))
    grads = []
    for train_mode in (True, False):
        x.attach_grad()
        with mx.autograd.record(train_mode=train_mode):
            y = mx.nd.Pooling(x, kernel=(3, 3), stride=(2, 2))
        y.backward(mx.nd.array(np.arange(np.prod(y.shape)).reshape(y.shape)))
        grads.append(x.grad.asnumpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    assert grads[0].sum() == np.arange(2 * 3 * 9).sum()
