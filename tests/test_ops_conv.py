"""Convolution and Deconvolution: forward vs plain numpy references, gradients vs finite
differences, the im2col kernels vs their slicing versions, batch chunking, grad_req 'add',
shape inference (weights from data, partial shapes) and every parameter / shape error."""
import os
import subprocess
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.engine import parallel
from hybridnet.ops import get_op
from hybridnet.ops.kernels import im2col as i2c
from hybridnet.ops.nn import convolution as conv_mod
from hybridnet.ops.registry import OpContext
from op_harness import OpCase, table_tests


# ---- plain references -----------------------------------------------------------------------
def _tuples(kernel, stride, dilate, pad):
    nd = len(kernel)
    return (tuple(stride) or (1,) * nd, tuple(dilate) or (1,) * nd, tuple(pad) or (0,) * nd)


def conv_ref(x, w, b=None, *, kernel, num_filter, stride=(), dilate=(), pad=(), num_group=1,
             no_bias=False, **_):
    """Direct convolution: every output position is a dot product of a window and a filter."""
    nd = len(kernel)
    stride, dilate, pad = _tuples(kernel, stride, dilate, pad)
    x, w = x.astype(np.float64), w.astype(np.float64)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in pad])
    n, c = x.shape[:2]
    cg, fg = c // num_group, num_filter // num_group
    out_sp = [(xp.shape[2 + i] - dilate[i] * (kernel[i] - 1) - 1) // stride[i] + 1
              for i in range(nd)]
    out = np.zeros((n, num_filter) + tuple(out_sp))
    axes = list(range(1, nd + 2))
    for pos in np.ndindex(*out_sp):
        window = tuple(slice(pos[i] * stride[i], pos[i] * stride[i] + dilate[i] * (kernel[i] - 1)
                             + 1, dilate[i]) for i in range(nd))
        win = xp[(slice(None), slice(None)) + window]
        for g in range(num_group):
            out[(slice(None), slice(g * fg, (g + 1) * fg)) + pos] = np.tensordot(
                win[:, g * cg:(g + 1) * cg], w[g * fg:(g + 1) * fg], axes=(axes, axes))
    if not no_bias:
        out += b.reshape((1, -1) + (1,) * nd)
    return out


def deconv_ref(x, w, b=None, *, kernel, num_filter, stride=(), dilate=(), pad=(), adj=(),
               target_shape=(), num_group=1, no_bias=True, **_):
    """Transposed convolution by scattering: every input element adds weight * value into its
    output window; the result is cropped by pad (and extended by adj)."""
    nd = len(kernel)
    stride, dilate, pad = _tuples(kernel, stride, dilate, pad)
    adj = tuple(adj) or (0,) * nd
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c = x.shape[:2]
    full = [stride[i] * (x.shape[2 + i] - 1) + dilate[i] * (kernel[i] - 1) + 1
            for i in range(nd)]
    if target_shape:                      # MXNet: pad = ceil(excess / 2), adj = excess % 2
        pad = tuple((f - t + 1) // 2 for f, t in zip(full, target_shape))
        adj = tuple((f - t) % 2 for f, t in zip(full, target_shape))
    big = np.zeros((n, num_filter) + tuple(f + a for f, a in zip(full, adj)))
    cg, fg = c // num_group, num_filter // num_group
    for pos in np.ndindex(*x.shape[2:]):
        window = tuple(slice(pos[i] * stride[i], pos[i] * stride[i] + dilate[i] * (kernel[i] - 1)
                             + 1, dilate[i]) for i in range(nd))
        for g in range(num_group):
            contrib = np.tensordot(x[(slice(None), slice(g * cg, (g + 1) * cg)) + pos],
                                   w[g * cg:(g + 1) * cg], axes=([1], [0]))
            big[(slice(None), slice(g * fg, (g + 1) * fg)) + window] += contrib
    out_sp = [full[i] - 2 * pad[i] + adj[i] for i in range(nd)]
    out = big[(slice(None), slice(None)) + tuple(slice(pad[i], pad[i] + out_sp[i])
                                                 for i in range(nd))]
    if not no_bias:
        out = out + b.reshape((1, -1) + (1,) * nd)
    return out


def _conv(shape, f, kernel, bias=True, group=1, **kw):
    c = shape[1]
    ins = [shape, (f, c // group) + tuple(kernel)] + ([(f,)] if bias else [])
    params = dict(kernel=kernel, num_filter=f, num_group=group, no_bias=not bias, **kw)
    return OpCase("Convolution", ins, params, conv_ref, rtol=1e-4, atol=1e-5,
                  id=f"Convolution-{len(kernel)}d-" + "-".join(f"{k}{v}" for k, v in
                                                                 sorted(params.items())))


def _deconv(shape, f, kernel, bias=False, group=1, **kw):
    c = shape[1]
    ins = [shape, (c, f // group) + tuple(kernel)] + ([(f,)] if bias else [])
    params = dict(kernel=kernel, num_filter=f, num_group=group, no_bias=not bias, **kw)
    return OpCase("Deconvolution", ins, params, deconv_ref, rtol=1e-4, atol=1e-5,
                  id=f"Deconvolution-{len(kernel)}d-" + "-".join(f"{k}{v}" for k, v in
                                                                   sorted(params.items())))


CASES = [
    _conv((2, 3, 7, 7), 4, (3, 3)),
    _conv((2, 3, 7, 6), 4, (3, 3), pad=(1, 1)),
    _conv((2, 3, 8, 7), 5, (3, 2), stride=(2, 1), pad=(1, 0)),
    _conv((2, 3, 9, 9), 2, (3, 3), dilate=(2, 2), pad=(2, 1)),
    _conv((2, 4, 6, 6), 6, (3, 3), group=2, pad=(1, 1)),
    _conv((2, 3, 5, 5), 3, (3, 3), group=3, bias=False),            # depthwise
    _conv((1, 2, 5, 5), 3, (5, 5)),                                   # kernel = input
    _conv((2, 3, 11), 4, (3,), stride=(2,), pad=(1,)),
    _conv((2, 4, 10), 4, (2,), dilate=(3,), group=2),
    _conv((1, 2, 5, 6, 4), 3, (2, 3, 2), stride=(1, 2, 1), pad=(1, 0, 1)),
    _conv((1, 4, 4, 5, 5), 2, (3, 3, 3), dilate=(1, 2, 1), pad=(1, 2, 1), group=2),
    _deconv((2, 3, 4, 4), 2, (3, 3)),
    _deconv((2, 3, 4, 5), 4, (3, 3), stride=(2, 2), pad=(1, 1), bias=True),
    _deconv((2, 3, 4, 4), 2, (3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1)),
    _deconv((1, 2, 3, 4), 2, (4, 4), stride=(2, 3), pad=(1, 1), adj=(1, 2)),
    _deconv((2, 3, 4, 4), 2, (3, 3), stride=(2, 2), target_shape=(8, 8)),
    _deconv((2, 3, 4, 4), 2, (3, 3), stride=(2, 2), target_shape=(7, 8)),
    _deconv((2, 4, 3, 3), 6, (3, 3), stride=(2, 2), group=2, dilate=(2, 1)),
    _deconv((2, 3, 5), 2, (4,), stride=(2,), pad=(1,), bias=True),
    _deconv((1, 2, 3, 3, 2), 2, (2, 3, 2), stride=(2, 1, 2), adj=(1, 0, 1)),
    # stride 1 but pad > dilate * (kernel - 1): the data gradient is no convolution of dy
    # (ConvView.data_grad_geo), so col2im computes it
    _conv((2, 3, 5, 6), 2, (2, 3), pad=(2, 1)),
    # stride 1 and at least as many input as output channels: the data gradient is a
    # convolution of dy (for Deconvolution: its forward)
    _deconv((2, 2, 4, 5), 3, (3, 2), pad=(1, 1)),
    _conv((2, 4, 6, 5), 3, (3, 3), pad=(1, 1)),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- full gradients: every element against finite differences of the reference ------------
def _numeric_grads(ref, arrays, params, head, eps=1e-6):
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros(a.shape)
        for idx in np.ndindex(*a.shape):
            vals = []
            for sign in (1, -1):
                moved = [b.copy() for b in arrays]
                moved[i][idx] += sign * eps
                vals.append((ref(*moved, **params) * head).sum())
            g[idx] = (vals[0] - vals[1]) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("case", [CASES[2], CASES[4], CASES[8], CASES[13], CASES[16],
                                  CASES[17]], ids=str)
def test_every_gradient_element_matches_finite_differences(case):
    arrays = [a.astype(np.float64) for a in case.arrays()]
    head = np.random.RandomState(1).standard_normal(case.ref(*arrays, **case.params).shape)
    nds = [mx.nd.array(a, dtype=np.float64) for a in arrays]
    for a in nds:
        a.attach_grad()
    with mx.autograd.record():
        out = getattr(mx.nd, case.op)(*nds, **case.params)
    out.backward(mx.nd.array(head, dtype=np.float64))
    for i, want in enumerate(_numeric_grads(case.ref, arrays, case.params, head)):
        np.testing.assert_allclose(nds[i].grad.asnumpy(), want, rtol=1e-6, atol=1e-8,
                                   err_msg=f"{case}: gradient of input {i}")


# ---- grad_req 'add', batch chunking, the slicing kernels -----------------------------------
def _run_backward(op_name, params, arrays, head, req, init=None):
    op = get_op(op_name)
    p = op.parse_params(params)
    ctx = OpContext(np, mx.cpu(), None)
    _, outs, _ = op.infer_shape(p, [a.shape for a in arrays])
    y = np.empty(outs[0], arrays[0].dtype)
    op.forward(ctx, p, arrays, [], [y], True)
    grads = [np.array(g, copy=True) for g in init] if init else \
        [np.empty_like(a) for a in arrays]
    op.backward(ctx, p, [head], arrays, [y], [], grads, [req] * len(arrays))
    return y, grads


@pytest.mark.parametrize("case", [CASES[4], CASES[12], CASES[16]], ids=str)
def test_grad_req_add_accumulates_into_the_given_buffers(case):
    arrays = case.arrays()
    rng = np.random.RandomState(3)
    y, _ = _run_backward(case.op, case.params, arrays, None, "null")
    head = rng.standard_normal(y.shape).astype(np.float32)
    _, written = _run_backward(case.op, case.params, arrays, head, "write")
    start = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    _, added = _run_backward(case.op, case.params, arrays, head, "add", init=start)
    for s, w, a in zip(start, written, added):
        np.testing.assert_allclose(a, s + w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [CASES[i] for i in (1, 4, 8, 12, 13, 20, 21, 22)], ids=str)
def test_chunking_the_batch_gives_the_same_results(case, monkeypatch):
    """The im2col + BLAS route (every dtype but float32 on the CPU) cut into one-sample chunks
    gives its whole-batch results."""
    rng = np.random.RandomState(5)
    arrays = [(rng.standard_normal((5,) + a.shape[1:]) if i == 0 else a).astype(np.float64)
              for i, a in enumerate(case.arrays())]
    y, _ = _run_backward(case.op, case.params, arrays, None, "null")
    head = rng.standard_normal(y.shape)
    whole = _run_backward(case.op, case.params, arrays, head, "write")
    monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)            # one sample per chunk
    chunked = _run_backward(case.op, case.params, arrays, head, "write")
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(chunked[1], whole[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# shapes that fill several GEMM tiles: more filters than a tile row (NR) or column (MR)
# holds, with remainders; channel x tap rows past one tile; panels that cross samples
PANEL_CASES = [
    _conv((3, 5, 9, 9), 40, (3, 3), pad=(1, 1)),
    _conv((2, 12, 7, 8), 18, (3, 3), group=2, stride=(2, 1), pad=(1, 1)),
    _conv((4, 9, 6, 5), 33, (2, 2), dilate=(2, 2), bias=False),
    _conv((2, 7, 13), 11, (5,), pad=(2,)),
    _conv((1, 3, 4, 5, 6), 9, (2, 3, 3), pad=(1, 1, 1)),
    _conv((5, 70, 3, 3), 64, (3, 3), pad=(1, 1)),
    _conv((2, 2, 9, 9), 40, (3, 3), pad=(1, 1)),           # few channels: dx by col2im
    _deconv((3, 40, 5, 5), 12, (3, 3), stride=(2, 2), pad=(1, 1)),
    _deconv((2, 10, 6, 6), 36, (3, 3), pad=(1, 1)),
]


@pytest.mark.parametrize("req", ["write", "add"])
@pytest.mark.parametrize("case", PANEL_CASES, ids=str)
def test_panel_kernels_match_the_im2col_blas_route(case, req):
    """float32 runs on the fused panel kernels (kernels/conv_panels.py), float64 on im2col +
    BLAS: both give the same outputs and gradients, for req 'write' and 'add'."""
    rng = np.random.RandomState(7)
    arrays = [rng.standard_normal(a.shape).astype(np.float32) for a in case.arrays()]
    y, _ = _run_backward(case.op, case.params, arrays, None, "null")
    head = rng.standard_normal(y.shape).astype(np.float32)
    start = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    got = _run_backward(case.op, case.params, arrays, head, req, init=start)
    want = _run_backward(case.op, case.params, [a.astype(np.float64) for a in arrays],
                         head.astype(np.float64), req, init=[a.astype(np.float64)
                                                             for a in start])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("req", ["write", "add"])
@pytest.mark.parametrize("case", [CASES[i] for i in (1, 4, 8, 12, 13, 16, 20, 21, 22)], ids=str)
def test_batch_split_over_threads_matches_one_pass(case, req, monkeypatch):
    """Convolution / Deconvolution split into 3 batch slices (forced for these small shapes)
    give the one-pass outputs and gradients, for req 'write' and 'add'."""
    rng = np.random.RandomState(6)
    arrays = [rng.standard_normal((5,) + a.shape[1:]).astype(np.float32) if i == 0 else a
              for i, a in enumerate(case.arrays())]
    y, _ = _run_backward(case.op, case.params, arrays, None, "null")
    head = rng.standard_normal(y.shape).astype(np.float32)
    start = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    monkeypatch.setattr(parallel, "policy_threads", lambda: 1)
    one_pass = _run_backward(case.op, case.params, arrays, head, req, init=start)
    monkeypatch.setattr(parallel, "policy_threads", lambda: 3)
    monkeypatch.setattr(parallel, "SPLIT_MIN_BYTES", 0)
    split = _run_backward(case.op, case.params, arrays, head, req, init=start)
    np.testing.assert_allclose(split[0], one_pass[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(split[1], one_pass[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_numba_im2col_col2im_match_the_slicing_versions():
    rng = np.random.RandomState(0)
    checked = 0
    while checked < 25:
        kernel, stride = tuple(rng.randint(1, 4, 3)), tuple(rng.randint(1, 3, 3))
        pad, dilate = tuple(rng.randint(0, 3, 3)), tuple(rng.randint(1, 3, 3))
        size = tuple(rng.randint(4, 9, 2)) + (rng.randint(4, 40),)   # rows of 1-5 8-wide moves
        out_sp = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                       for s, k, st, p, d in zip(size, kernel, stride, pad, dilate))
        if min(out_sp) <= 0:
            continue
        geo = kernel + stride + pad + dilate
        x = rng.standard_normal((2, 3) + size)
        col = np.empty((3 * int(np.prod(kernel)), 2 * int(np.prod(out_sp))))
        col_ref = np.empty_like(col)
        i2c.im2col(np, x, col, geo, out_sp)
        i2c.im2col_xp(np, x, col_ref, geo, out_sp)
        np.testing.assert_array_equal(col, col_ref, err_msg=f"im2col geo={geo}")
        start = rng.standard_normal(x.shape)
        dx, dx_ref = start.copy(), start.copy()
        i2c.col2im(np, col, dx, geo, out_sp)
        i2c.col2im_xp(np, col, dx_ref, geo, out_sp)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12,
                                   err_msg=f"col2im geo={geo}")
        checked += 1


@pytest.mark.parametrize("case", [CASES[3], CASES[12], CASES[9]], ids=str)
def test_float16_runs_through_the_slicing_kernels(case):
    arrays = [a.astype(np.float16) for a in case.arrays()]
    got = getattr(mx.nd, case.op)(*[mx.nd.array(a, dtype=np.float16) for a in arrays],
                                  **case.params)
    assert got.dtype == np.float16
    want = case.ref(*[a.astype(np.float64) for a in arrays], **case.params)
    np.testing.assert_allclose(got.asnumpy().astype(np.float64), want, rtol=2e-2, atol=5e-2)


def test_non_contiguous_output_buffer_is_written():
    case = CASES[1]
    arrays = case.arrays()
    op = get_op("Convolution")
    p = op.parse_params(case.params)
    _, outs, _ = op.infer_shape(p, [a.shape for a in arrays])
    big = np.zeros(outs[0][:-1] + (outs[0][-1] * 2,), np.float32)
    view = big[..., ::2]
    op.forward(OpContext(np, mx.cpu(), None), p, arrays, [], [view], False)
    np.testing.assert_allclose(view, conv_ref(*arrays, **case.params), rtol=1e-4, atol=1e-5)
    assert not big[..., 1::2].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_gradient_buffers_are_written(dtype):
    """Non-contiguous dx and dw buffers (strided views; transposed, Fortran-ordered) get the
    gradients of contiguous ones (float32 runs the panel kernels, float64 im2col + BLAS)."""
    case = CASES[4]
    arrays = [a.astype(dtype) for a in case.arrays()]
    y, _ = _run_backward(case.op, case.params, arrays, None, "null")
    head = np.random.RandomState(8).standard_normal(y.shape).astype(dtype)
    _, want = _run_backward(case.op, case.params, arrays, head, "write")
    op = get_op(case.op)
    for make in (lambda shape: np.zeros(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2],
                 lambda shape: np.zeros(shape[::-1], dtype).T):
        grads = [make(a.shape) for a in arrays]
        op.backward(OpContext(np, mx.cpu(), None), op.parse_params(case.params), [head],
                    arrays, [y], [], grads, ["write"] * len(arrays))
        for g, w in zip(grads, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# ---- shape inference ------------------------------------------------------------------------
def _infer(op_name, shapes, **params):
    op = get_op(op_name)
    return op.infer_shape(op.parse_params(params), shapes)


def test_convolution_infers_weight_and_bias_from_data():
    ins, outs, aux = _infer("Convolution", [(8, 6, 32, 32), None, None], kernel=(5, 5),
                            num_filter=16, num_group=2, pad=(2, 2), stride=(2, 2))
    assert ins == [(8, 6, 32, 32), (16, 3, 5, 5), (16,)] and outs == [(8, 16, 16, 16)]
    assert aux == []
    ins, outs, _ = _infer("Convolution", [(4, 3, 10), None], kernel=(3,), num_filter=2,
                          no_bias=True)
    assert ins == [(4, 3, 10), (2, 3, 3)] and outs == [(4, 2, 8)]
    assert get_op("Convolution").list_inputs(get_op("Convolution").parse_params(
        {"kernel": (3,), "num_filter": 2, "no_bias": True})) == ["data", "weight"]


def test_convolution_partial_shapes():
    kw = dict(kernel=(3, 3), num_filter=4)
    assert _infer("Convolution", [(0, 3, 5, 5), None, None], **kw)[1] == [(0, 4, 3, 3)]
    ins, outs, _ = _infer("Convolution", [(2, 0, 5, 5), None, None], **kw)
    assert ins[1] == (4, 0, 3, 3) and outs == [(2, 4, 3, 3)]
    assert _infer("Convolution", [(2, 3, 0, 5), None, None], **kw)[1] == [(2, 4, 0, 3)]
    ins, outs, _ = _infer("Convolution", [None, None, None], **kw)
    assert ins == [None, (4, 0, 3, 3), (4,)] and outs == [None]
    ins, outs, _ = _infer("Convolution", [(2, 0, 5, 5), (4, 3, 3, 3), None], **kw)
    assert ins[0] == (2, 3, 5, 5) and outs == [(2, 4, 3, 3)]           # channels from weight


def test_deconvolution_infers_weight_pad_and_adj():
    ins, outs, _ = _infer("Deconvolution", [(1, 6, 4, 4), None], kernel=(3, 3), num_filter=4,
                          num_group=2)
    assert ins == [(1, 6, 4, 4), (6, 2, 3, 3)] and outs == [(1, 4, 6, 6)]
    ins, outs, _ = _infer("Deconvolution", [(1, 3, 4, 4), None, None], kernel=(3, 3),
                          num_filter=2, no_bias=False, stride=(2, 2), dilate=(2, 2),
                          pad=(1, 1), adj=(1, 1))
    assert ins[2] == (2,) and outs == [(1, 2, 10, 10)]                 # MXNet: (1, 2, 10, 10)
    for target in ((7, 7), (8, 8), (9, 9)):
        _, outs, _ = _infer("Deconvolution", [(1, 3, 4, 4), None], kernel=(3, 3),
                            num_filter=2, stride=(2, 2), target_shape=target)
        assert outs == [(1, 2) + target]


def test_weight_shape_mismatch_names_both_shapes_and_their_origin():
    with pytest.raises(ShapeError, match=r"Convolution: weight has shape \(4, 3, 3, 2\), "
                                         r"expected \(4, 3, 3, 3\) from data \(2, 3, 7, 7\), "
                                         r"num_filter=4"):
        _infer("Convolution", [(2, 3, 7, 7), (4, 3, 3, 2), None], kernel=(3, 3), num_filter=4)
    with pytest.raises(ShapeError, match=r"bias has shape \(5,\), expected \(4,\)"):
        _infer("Convolution", [(2, 3, 7, 7), None, (5,)], kernel=(3, 3), num_filter=4)
    with pytest.raises(ShapeError, match=r"Deconvolution: weight has shape \(2, 2, 3, 3\), "
                                         r"expected \(3, 2, 3, 3\)"):
        _infer("Deconvolution", [(2, 3, 4, 4), (2, 2, 3, 3)], kernel=(3, 3), num_filter=2)
    with pytest.raises(ShapeError, match="weight has shape"):
        mx.nd.Convolution(mx.nd.ones((1, 3, 5, 5)), mx.nd.ones((2, 3, 2, 2)),
                          mx.nd.ones((2,)), kernel=(3, 3), num_filter=2)


@pytest.mark.parametrize("op_name", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("params, pattern", [
    (dict(kernel=(3, 3), stride=(1,)), r"stride=\(1,\) has 1 dimension\(s\) but "
                                       r"kernel=\(3, 3\) has 2"),
    (dict(kernel=(3, 3), pad=(1, 1, 1)), r"pad=\(1, 1, 1\) has 3 dimension\(s\) but "
                                         r"kernel=\(3, 3\) has 2"),
    (dict(kernel=(3,), dilate=(1, 1)), r"dilate=\(1, 1\) has 2 dimension\(s\)"),
    (dict(kernel=(3, 3, 3, 3)), r"kernel=\(3, 3, 3, 3\) must have 1, 2 or 3 dimensions"),
    (dict(kernel=(3, 0)), r"kernel=\(3, 0\) must be positive"),
    (dict(kernel=(3, 3), stride=(0, 1)), r"stride=\(0, 1\) must be positive"),
    (dict(kernel=(3, 3), num_group=4), r"num_filter=6 is not divisible by num_group=4"),
    (dict(kernel=(3, 3), layout="NCW"), r"layout='NCW' does not match the 2-D kernel"),
    (dict(kernel=(3, 3), layout="NHWC"), r"layout='NHWC' is not supported; use the "
                                         r"channel-first layout 'NCHW'"),
])
def test_bad_parameters_name_the_operator_and_values(op_name, params, pattern):
    with pytest.raises(ParamError, match=f"{op_name}: {pattern}"):
        _infer(op_name, [(2, 4, 9, 9), None], num_filter=6, no_bias=True, **params)


def test_shape_errors_name_the_operator_and_values():
    with pytest.raises(ShapeError, match=r"Convolution: data has 5 channels \(shape "
                                         r"\(2, 5, 9, 9\)\), which is not divisible by "
                                         r"num_group=2"):
        _infer("Convolution", [(2, 5, 9, 9), None, None], kernel=(3, 3), num_filter=4,
               num_group=2)
    with pytest.raises(ShapeError, match=r"Convolution: kernel=\(7, 7\) \(dilated to \(7, 7\)"
                                         r"\) is larger than the padded input: data "
                                         r"\(1, 4, 5, 5\) with pad=\(0, 0\)"):
        _infer("Convolution", [(1, 4, 5, 5), None, None], kernel=(7, 7), num_filter=4)
    with pytest.raises(ShapeError, match=r"dilated to \(7, 3\)"):
        _infer("Convolution", [(1, 4, 5, 5), None, None], kernel=(3, 3), dilate=(3, 1),
               num_filter=4)
    with pytest.raises(ShapeError, match=r"Convolution: data has shape \(1, 4, 5, 5\), "
                                         r"expected 5 dimensions \(batch, channel, depth, "
                                         r"height, width\) for the 3-D kernel"):
        _infer("Convolution", [(1, 4, 5, 5), None, None], kernel=(3, 3, 3), num_filter=4)
    with pytest.raises(ShapeError, match=r"Deconvolution: target_shape=\(10, 10\) is too big: "
                                         r"data \(1, 3, 4, 4\) with kernel=\(3, 3\) and "
                                         r"stride=\(2, 2\) gives at most 9"):
        _infer("Deconvolution", [(1, 3, 4, 4), None], kernel=(3, 3), stride=(2, 2),
               num_filter=2, target_shape=(10, 10))
    with pytest.raises(ParamError, match=r"Deconvolution: adj=\(2, 2\) must be smaller than "
                                         r"stride=\(2, 2\)"):
        _infer("Deconvolution", [(1, 3, 4, 4), None], kernel=(3, 3), stride=(2, 2),
               num_filter=2, adj=(2, 2))


def test_params_parse_from_json_strings_and_defaults_match_mxnet():
    op = get_op("Convolution")
    p = op.parse_params({"kernel": "(3, 3)", "num_filter": "8", "no_bias": "True",
                         "pad": "[1, 1]", "cudnn_tune": "None", "workspace": "2048"})
    assert p.kernel == (3, 3) and p.pad == (1, 1) and p.no_bias is True and p.workspace == 2048
    assert (p.num_group, p.stride, p.dilate, p.layout, p.cudnn_off) == (1, (), (), None, False)
    d = get_op("Deconvolution").parse_params({"kernel": (2, 2), "num_filter": 3})
    assert d.no_bias is True and d.workspace == 512 and d.adj == () and d.target_shape == ()
    assert get_op("Deconvolution").list_inputs(d) == ["data", "weight"]
    assert [q.name for q in get_op("Deconvolution").params][:8] == [
        "kernel", "stride", "dilate", "pad", "adj", "target_shape", "num_filter", "num_group"]


@pytest.mark.gpu
def test_gpu_convolution_matches_cpu():
    case = CASES[4]
    arrays = case.arrays()
    cpu = mx.nd.Convolution(*[mx.nd.array(a) for a in arrays], **case.params)
    gpu = mx.nd.Convolution(*[mx.nd.array(a, ctx=mx.gpu(0)) for a in arrays], **case.params)
    np.testing.assert_allclose(gpu.asnumpy(), cpu.asnumpy(), rtol=1e-4, atol=1e-5)


# what numba targets on a CPU without AVX-512 (Haswell)
_HASWELL = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cx16,+f16c,+fma,+lzcnt,+movbe,+popcnt,+sse,+sse2,"
            "+sse3,+sse4.1,+sse4.2,+ssse3")


def test_panel_kernels_with_eight_float_vectors(tmp_path):
    """On CPUs without AVX-512 the GEMM tile uses 8-float vectors and a 2 x 32 tile: the tile's
    and the panel kernels' tests pass again in a process whose numba compiles for Haswell."""
    script = ("import sys, pytest\n"
              "from hybridnet.ops.kernels import gemm_tile\n"
              "assert (gemm_tile.VW, gemm_tile.MR) == (8, 2), (gemm_tile.VW, gemm_tile.MR)\n"
              f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '{__file__}', "
              "'test_gemm_tile.py', '-k', 'panel_kernels_match or tile_matches']))\n")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=_HASWELL,
               NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600, cwd=os.path.dirname(__file__))
    # pytest exits 0 only when tests were collected and all passed (5: none collected)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
