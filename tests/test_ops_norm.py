"""BatchNorm, LayerNorm, InstanceNorm, GroupNorm, L2Normalization, LRN."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError, ShapeError
from hybridnet.ops import get_op
from hybridnet.ops.kernels import batchnorm as bn_kernels
from hybridnet.ops.kernels import lrn as lrn_kernels
from op_harness import OpCase, table_tests


def _pos_last_two(rng, i, shape):
    """BatchNorm inputs: normal data/gamma/beta/moving_mean, positive moving_var."""
    x = rng.standard_normal(shape)
    return np.abs(x) + 0.5 if i == 4 else x


def _bcast(v, ndim, axis):
    return v.reshape(tuple(-1 if i == axis % ndim else 1 for i in range(ndim)))


def _ref_bn_inference(x, gamma, beta, mm, mv, eps=1e-3, fix_gamma=True, axis=1,
                      output_mean_var=False, use_global_stats=False, **_):
    x = x.astype(np.float64)
    g = np.ones_like(gamma) if fix_gamma else gamma
    inv = 1 / np.sqrt(mv.astype(np.float64) + eps)
    y = (x - _bcast(mm, x.ndim, axis)) * _bcast(inv * g, x.ndim, axis) + _bcast(beta, x.ndim, axis)
    return [y, mm, inv] if output_mean_var else y


def _ref_bn_train(x, gamma, beta, eps=1e-3, fix_gamma=True, axis=1):
    x = x.astype(np.float64)
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    g = np.ones_like(gamma) if fix_gamma else gamma
    y = (x - _bcast(mean, x.ndim, axis)) / _bcast(np.sqrt(var + eps), x.ndim, axis)
    return y * _bcast(g, x.ndim, axis) + _bcast(beta, x.ndim, axis), mean, var


def _ref_layer_norm(x, gamma, beta, axis=-1, eps=1e-5, output_mean_var=False):
    x = x.astype(np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    std = np.sqrt(x.var(axis=axis, keepdims=True) + eps)
    y = (x - mean) / std * _bcast(gamma, x.ndim, axis) + _bcast(beta, x.ndim, axis)
    return [y, mean, std] if output_mean_var else y


def _ref_instance_norm(x, gamma, beta, eps=1e-3):
    x = x.astype(np.float64)
    axes = tuple(range(2, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return y * _bcast(gamma, x.ndim, 1) + _bcast(beta, x.ndim, 1)


def _ref_group_norm(x, gamma, beta, num_groups=1, eps=1e-5, output_mean_var=False):
    n = x.shape[0]
    xg = x.astype(np.float64).reshape(n, num_groups, -1)
    mean, std = xg.mean(axis=2, keepdims=True), np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    y = (xg - mean) / std * gamma.reshape(1, -1, 1) + beta.reshape(1, -1, 1)
    y = y.reshape(x.shape)
    return [y, mean.reshape(n, -1), std.reshape(n, -1)] if output_mean_var else y


def _ref_l2(x, eps=1e-10, mode="instance"):
    x = x.astype(np.float64)
    axes = {"instance": tuple(range(1, x.ndim)), "channel": (1,),
            "spatial": tuple(range(2, x.ndim))}[mode]
    return x / np.sqrt((x * x).sum(axis=axes, keepdims=True) + eps)


def _ref_lrn(x, nsize, alpha=1e-4, beta=0.75, knorm=2.0):
    x = x.astype(np.float64)
    half, c = (nsize - 1) // 2, x.shape[1]
    sq = np.zeros_like(x)
    for i in range(c):
        sq[:, i] = (x[:, max(0, i - half):i + half + 1] ** 2).sum(axis=1)
    return x / (knorm + alpha / nsize * sq) ** beta


_BN = [(2, 3, 2, 2), (3,), (3,), (3,), (3,)]
CASES = [
    OpCase("BatchNorm", _BN, {}, _ref_bn_inference, init=_pos_last_two, grad=False,
           id="BatchNorm-inference"),
    OpCase("BatchNorm", _BN, {"fix_gamma": False, "output_mean_var": True, "eps": 1e-5},
           _ref_bn_inference, init=_pos_last_two, grad=False, id="BatchNorm-inference-mv"),
    OpCase("BatchNorm", [(4, 5, 3), (3,), (3,), (3,), (3,)], {"axis": -1, "fix_gamma": False},
           _ref_bn_inference, init=_pos_last_two, grad=False, id="BatchNorm-axis-last"),
    OpCase("BatchNorm", _BN, {"use_global_stats": True, "fix_gamma": False},
           _ref_bn_inference, init=_pos_last_two, grad_inputs=[0, 1, 2],
           id="BatchNorm-global-stats"),
    OpCase("LayerNorm", [(3, 4, 5), (5,), (5,)], {}, _ref_layer_norm, id="LayerNorm"),
    OpCase("LayerNorm", [(3, 4, 5), (4,), (4,)], {"axis": 1}, _ref_layer_norm,
           id="LayerNorm-axis1"),
    # gradients reaching the mean/std outputs are ignored, as in MXNet: forward only
    OpCase("LayerNorm", [(3, 4, 5), (4,), (4,)], {"axis": 1, "output_mean_var": True},
           _ref_layer_norm, grad=False, id="LayerNorm-axis1-mv"),
    OpCase("InstanceNorm", [(2, 3, 4, 2), (3,), (3,)], {}, _ref_instance_norm,
           id="InstanceNorm"),
    OpCase("GroupNorm", [(2, 4, 3), (1,), (1,)], {}, _ref_group_norm, id="GroupNorm-1"),
    OpCase("GroupNorm", [(2, 6, 2, 2), (3,), (3,)], {"num_groups": 3}, _ref_group_norm,
           id="GroupNorm-3"),
    OpCase("GroupNorm", [(2, 6, 2, 2), (3,), (3,)], {"num_groups": 3, "output_mean_var": True},
           _ref_group_norm, grad=False, id="GroupNorm-3-mv"),
    OpCase("L2Normalization", [(3, 4, 2)], {}, _ref_l2, id="L2Normalization-instance"),
    OpCase("L2Normalization", [(3, 4, 2)], {"mode": "channel"}, _ref_l2,
           id="L2Normalization-channel"),
    OpCase("L2Normalization", [(3, 4, 2, 2)], {"mode": "spatial", "eps": 1e-3}, _ref_l2,
           id="L2Normalization-spatial"),
    OpCase("LRN", [(2, 5, 3, 3)], {"nsize": 3}, _ref_lrn, id="LRN-3"),
    OpCase("LRN", [(2, 6, 2, 2)], {"nsize": 4, "alpha": 0.5, "beta": 0.6, "knorm": 1.0},
           _ref_lrn, id="LRN-even"),
    OpCase("LRN", [(2, 7, 4)], {"nsize": 5, "alpha": 2.0}, _ref_lrn, id="LRN-5-3d"),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- BatchNorm in training mode ---------------------------------------------------------------
def _bn_arrays(shape=(4, 3, 2, 2), axis=1, seed=0, dtype=np.float32):
    rng = np.random.RandomState(seed)
    c = shape[axis]
    return (rng.standard_normal(shape).astype(dtype) * 2 + 1,
            rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype),
            rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype))


@pytest.mark.parametrize("params", [{}, {"fix_gamma": False}, {"axis": -1, "momentum": 0.7},
                                    {"fix_gamma": False, "eps": 1e-5, "axis": 2}], ids=str)
def test_batchnorm_training_normalizes_with_batch_stats_and_updates_moving_stats(params):
    axis = params.get("axis", 1)
    x, gamma, beta, mm, mv = _bn_arrays(axis=axis)
    mm_nd, mv_nd = mx.nd.array(mm), mx.nd.array(mv)
    with mx.autograd.train_mode():
        out, mean, inv_std = mx.nd.BatchNorm(mx.nd.array(x), mx.nd.array(gamma),
                                             mx.nd.array(beta), mm_nd, mv_nd,
                                             output_mean_var=True, **params)
    eps = params.get("eps", 1e-3)
    y, bmean, bvar = _ref_bn_train(x, gamma, beta, eps, params.get("fix_gamma", True), axis)
    np.testing.assert_allclose(out.asnumpy(), y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean.asnumpy(), bmean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv_std.asnumpy(), 1 / np.sqrt(bvar + eps), rtol=1e-5)
    m = params.get("momentum", 0.9)
    # MXNet's rule: moving = moving * momentum + batch * (1 - momentum), biased variance
    np.testing.assert_allclose(mm_nd.asnumpy(), mm * m + bmean * (1 - m), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mv_nd.asnumpy(), mv * m + bvar * (1 - m), rtol=1e-5)


def test_batchnorm_global_stats_and_inference_leave_moving_stats_alone():
    x, gamma, beta, mm, mv = _bn_arrays()
    for train, params in ((True, {"use_global_stats": True}), (False, {})):
        mm_nd, mv_nd = mx.nd.array(mm), mx.nd.array(mv)
        with mx.autograd.train_mode() if train else mx.autograd.predict_mode():
            out = mx.nd.BatchNorm(mx.nd.array(x), mx.nd.array(gamma), mx.nd.array(beta),
                                  mm_nd, mv_nd, **params)
        np.testing.assert_allclose(out.asnumpy(), _ref_bn_inference(x, gamma, beta, mm, mv),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(mm_nd.asnumpy(), mm)
        np.testing.assert_array_equal(mv_nd.asnumpy(), mv)


def _train_mode_numeric_check(fn, arrays, which, seed=0, eps=1e-5):
    """Autograd vs central differences with both forwards in training mode (float64)."""
    rng = np.random.RandomState(seed)
    nds = [mx.nd.array(a, dtype=np.float64) for a in arrays]
    for i in which:
        nds[i].attach_grad()
    with mx.autograd.record():
        out = fn(*nds)
    head = rng.standard_normal(out.shape)
    out.backward(mx.nd.array(head, dtype=np.float64))

    def loss(vals):
        with mx.autograd.train_mode():
            return float((fn(*[mx.nd.array(v, dtype=np.float64) for v in vals]).asnumpy()
                          * head).sum())
    for i in which:
        d = rng.standard_normal(arrays[i].shape)
        plus = [a + eps * d if j == i else a for j, a in enumerate(arrays)]
        minus = [a - eps * d if j == i else a for j, a in enumerate(arrays)]
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        analytic = float((nds[i].grad.asnumpy() * d).sum())
        assert np.isclose(analytic, numeric, rtol=1e-4, atol=1e-6), (i, analytic, numeric)


@pytest.mark.parametrize("params", [{"fix_gamma": False}, {"fix_gamma": False, "axis": -1},
                                    {}], ids=str)
def test_batchnorm_training_gradient_matches_finite_differences(params):
    arrays = [a.astype(np.float64) for a in _bn_arrays(shape=(3, 4, 5), axis=params.get(
        "axis", 1) % 3)]
    _train_mode_numeric_check(lambda *a: mx.nd.BatchNorm(*a, **params), arrays, [0, 1, 2])


def test_batchnorm_fix_gamma_gives_gamma_a_zero_gradient():
    x, gamma, beta, mm, mv = (mx.nd.array(a) for a in _bn_arrays())
    gamma.attach_grad()
    beta.attach_grad()
    g = np.random.randn(4, 3, 2, 2).astype(np.float32)
    with mx.autograd.record():
        out = mx.nd.BatchNorm(x, gamma, beta, mm, mv)
    out.backward(mx.nd.array(g))
    np.testing.assert_array_equal(gamma.grad.asnumpy(), 0)
    np.testing.assert_allclose(beta.grad.asnumpy(), g.sum(axis=(0, 2, 3)), rtol=1e-5)
    assert not np.all(gamma.asnumpy() == 1)             # the array itself is not overwritten


def test_batchnorm_structure_and_shape_inference():
    op = get_op("BatchNorm")
    p = op.parse_params({})
    assert op.list_inputs(p) == ["data", "gamma", "beta", "moving_mean", "moving_var"]
    assert op.output_names(p) == ["output"] and op.num_outputs(p) == 3
    assert op.output_names(op.parse_params({"output_mean_var": True})) == ["output", "mean",
                                                                          "var"]
    assert op.mutates_aux
    ins, outs, aux = op.infer_shape(p, [(8, 16, 5, 5), None, None])
    assert ins[1:] == [(16,), (16,)] and outs == [(8, 16, 5, 5), (16,), (16,)]
    assert aux == [(16,), (16,)]
    ins, outs, aux = op.infer_shape(p, [None, (16,), None])
    assert ins[2] == (16,) and aux == [(16,), (16,)] and outs[0] is None
    ins, outs, aux = op.infer_shape(op.parse_params({"axis": -1}), [(2, 3, 7), None, None])
    assert ins[1] == (7,)
    with pytest.raises(ShapeError, match=r"BatchNorm: gamma \(for data \(8, 16, 5, 5\)\) has "
                                         r"shape \(15,\), expected \(16,\)"):
        op.infer_shape(p, [(8, 16, 5, 5), (15,), None])
    with pytest.raises(ShapeError, match=r"BatchNorm: axis=4 is out of range for data "
                                         r"\(8, 16, 5, 5\)"):
        op.infer_shape(op.parse_params({"axis": 4}), [(8, 16, 5, 5), None, None])
    with pytest.raises(ShapeError, match=r"aux state moving_var has shape \(2,\), expected "
                                         r"\(3,\)"):
        mx.nd.BatchNorm(mx.nd.ones((2, 3)), mx.nd.ones(3), mx.nd.ones(3), mx.nd.ones(3),
                        mx.nd.ones(2))


def test_batchnorm_float16_data_keeps_float32_parameters():
    op = get_op("BatchNorm")
    ins, outs, aux = op.infer_type(op.parse_params({}), [np.dtype(np.float16), None, None])
    assert ins == [np.float16, np.float32, np.float32]
    assert outs == [np.float16, np.float32, np.float32] and aux == [np.float32, np.float32]
    x, gamma, beta, mm, mv = _bn_arrays()
    out = mx.nd.BatchNorm(mx.nd.array(x, dtype=np.float16), mx.nd.array(gamma),
                          mx.nd.array(beta), mx.nd.array(mm), mx.nd.array(mv))
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.asnumpy(), _ref_bn_inference(x, gamma, beta, mm, mv),
                               rtol=1e-2, atol=1e-2)


# ---- the others --------------------------------------------------------------------------------
def test_affine_norms_fill_gamma_beta_and_stat_shapes():
    cases = [("LayerNorm", {}, (2, 3, 4), (4,), (2, 3, 1)),
             ("LayerNorm", {"axis": 0}, (2, 3, 4), (2,), (1, 3, 4)),
             ("InstanceNorm", {}, (2, 3, 4, 4), (3,), (2, 3)),
             ("GroupNorm", {"num_groups": 2}, (2, 4, 3, 3), (2,), (2, 2))]
    for name, params, data, param, stat in cases:
        op = get_op(name)
        ins, outs, _ = op.infer_shape(op.parse_params(params), [data, None, None])
        assert ins[1:] == [param, param], name
        assert outs == [data, stat, stat], name
        assert op.infer_shape(op.parse_params(params), [None, None, None])[1][0] is None


def test_norm_shape_errors():
    with pytest.raises(ShapeError, match=r"GroupNorm: data has shape \(2, 5, 3\): its channels "
                                         r"\(axis 1\) must divide into num_groups=2 groups"):
        mx.nd.GroupNorm(mx.nd.ones((2, 5, 3)), mx.nd.ones(2), mx.nd.ones(2), num_groups=2)
    with pytest.raises(ShapeError, match=r"InstanceNorm: data has shape \(2, 5\), expected at "
                                         r"least 3 dimensions"):
        mx.nd.InstanceNorm(mx.nd.ones((2, 5)), mx.nd.ones(5), mx.nd.ones(5))
    with pytest.raises(ShapeError, match=r"LayerNorm: gamma \(for data \(2, 5\)\) has shape "
                                         r"\(4,\), expected \(5,\)"):
        mx.nd.LayerNorm(mx.nd.ones((2, 5)), mx.nd.ones(4), mx.nd.ones(5))
    with pytest.raises(ShapeError, match="L2Normalization: mode='spatial' needs data with at "
                                         "least 3 dimensions"):
        mx.nd.L2Normalization(mx.nd.ones((2, 5)), mode="spatial")
    with pytest.raises(ShapeError, match="LRN: nsize=0 must be at least 1"):
        mx.nd.LRN(mx.nd.ones((2, 5, 2)), nsize=0)


def test_gradients_into_the_statistics_outputs_are_ignored_like_mxnet():
    x = mx.nd.array(np.random.randn(2, 4, 3))
    x.attach_grad()
    for call in (lambda: mx.nd.LayerNorm(x, mx.nd.ones(3), mx.nd.zeros(3),
                                         output_mean_var=True),
                 lambda: mx.nd.GroupNorm(x, mx.nd.ones(2), mx.nd.zeros(2), num_groups=2,
                                         output_mean_var=True),
                 lambda: mx.nd.BatchNorm(x, mx.nd.ones(4), mx.nd.zeros(4), mx.nd.zeros(4),
                                         mx.nd.ones(4), output_mean_var=True)):
        with mx.autograd.record():
            outs = call()
        mx.autograd.backward([outs[1]], [mx.nd.ones(outs[1].shape)])
        np.testing.assert_array_equal(x.grad.asnumpy(), 0)


def test_hidden_outputs_exist_for_the_memory_planner():
    for name, params, n in (("L2Normalization", {}, 2), ("LRN", {"nsize": 3}, 2),
                            ("InstanceNorm", {}, 3), ("LayerNorm", {}, 3)):
        op = get_op(name)
        p = op.parse_params(params)
        assert op.num_outputs(p) == n and op.output_names(p) == ["output"]


@pytest.mark.parametrize("nsize", [1, 2, 3, 5, 8])
def test_lrn_numba_kernel_matches_the_reference(nsize):
    rng = np.random.RandomState(nsize)
    x = rng.standard_normal((3, 7, 4, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    outs = [np.empty_like(x) for _ in range(4)]
    lrn_kernels.lrn_forward(np, x, nsize, 0.3, 0.75, 2.0, outs[0], outs[1])
    lrn_kernels.lrn_forward_reference(np, x, nsize, 0.3, 0.75, 2.0, outs[2], outs[3])
    np.testing.assert_allclose(outs[0], outs[2], rtol=1e-6)
    np.testing.assert_allclose(outs[1], outs[3], rtol=1e-6)
    fast = lrn_kernels.lrn_backward(np, x, g, outs[1], nsize, 0.3, 0.75)
    ref = lrn_kernels.lrn_backward_reference(np, x, g, outs[1], nsize, 0.3, 0.75)
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-6)


def test_bad_parameters():
    with pytest.raises(ParamError, match="LRN: required parameter 'nsize' is missing"):
        mx.nd.LRN(mx.nd.ones((2, 3, 2)))
    with pytest.raises(ParamError, match="L2Normalization: parameter 'mode' got 'batch'"):
        mx.nd.L2Normalization(mx.nd.ones((2, 3)), mode="batch")
    with pytest.raises(ParamError, match="BatchNorm: parameter 'fix_gamma' got 'maybe'"):
        get_op("BatchNorm").parse_params({"fix_gamma": "maybe"})
    p = get_op("BatchNorm").parse_params({"eps": "2e-05", "fix_gamma": "False",
                                          "momentum": "0.99", "axis": "-1"})
    assert (p.eps, p.fix_gamma, p.momentum, p.axis) == (2e-5, False, 0.99, -1)


@pytest.mark.parametrize("shape,axis", [((4, 3, 5, 2), 1), ((6, 7), 1), ((3, 4, 5), 2),
                                        ((5, 2, 3), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_numba_kernels_match_the_reference(shape, axis, dtype):
    rng = np.random.RandomState(len(shape) + axis)
    x3 = bn_kernels.view3(rng.standard_normal(shape).astype(dtype) * 3 + 1, axis)
    g3 = bn_kernels.view3(rng.standard_normal(shape).astype(dtype), axis)
    acc = np.float64 if dtype == np.float64 else np.float32
    mean, var = bn_kernels.moments(np, x3, acc)
    rmean, rvar = bn_kernels.moments_reference(np, x3, acc)
    np.testing.assert_allclose(mean, rmean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, rvar, rtol=1e-5)
    c = x3.shape[1]
    a, b, k = (rng.standard_normal(c).astype(acc) for _ in range(3))
    outs = [np.empty_like(x3) for _ in range(4)]
    bn_kernels.affine(np, x3, a, b, outs[0])
    bn_kernels.affine_reference(np, x3, a, b, outs[1])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    sums = bn_kernels.grad_sums(np, g3, x3, mean)
    for got, want in zip(sums, bn_kernels.grad_sums_reference(np, g3, x3, mean)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    bn_kernels.grad_input(np, g3, x3, mean, a, b, k, outs[2])
    bn_kernels.grad_input_reference(np, g3, x3, mean, a, b, k, outs[3])
    np.testing.assert_allclose(outs[2], outs[3], rtol=1e-5, atol=1e-5)
