"""Random sampling: seeding, per-device streams, distribution moments, shapes, dtypes, errors."""
import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import ParamError
from hybridnet.ops import get_op

N = 200_000      # samples for moment checks: standard errors well under the tolerances used


def _draws():
    """One call of every sampler; returns numpy results (used for reproducibility checks)."""
    r = mx.nd.random
    probs = mx.nd.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    return [r.uniform(-2, 3, shape=(3, 4)), r.normal(1, 2, shape=5), r.randn(2, 2),
            r.randint(0, 100, shape=6), r.exponential(2.0, shape=4), r.gamma(2, 3, shape=4),
            r.poisson(4, shape=4), r.negative_binomial(3, 0.4, shape=4),
            r.generalized_negative_binomial(2, 0.3, shape=4), r.multinomial(probs, shape=3),
            r.shuffle(mx.nd.arange(10)), r.uniform_like(mx.nd.zeros((2, 3))),
            r.normal(mx.nd.array([0.0, 5.0]), mx.nd.array([1.0, 0.1]), shape=3),
            mx.nd.random.poisson(mx.nd.array([1.0, 10.0]), shape=2)]


def test_seed_makes_every_sampler_reproducible():
    mx.random.seed(42)
    first = [x.asnumpy() for x in _draws()]
    mx.random.seed(42)
    second = [x.asnumpy() for x in _draws()]
    mx.random.seed(43)
    third = [x.asnumpy() for x in _draws()]
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, third))


def test_seed_reproducible_when_draws_run_on_engine_workers():
    # big arrays are not run inline: the engine orders the draws through the device rng var
    def run():
        outs = [mx.nd.random.uniform(shape=(300_000,)) for _ in range(4)]
        outs += [mx.nd.random.normal(shape=(100_000,)) for _ in range(3)]
        return [o.asnumpy() for o in outs]
    mx.random.seed(7)
    a = run()
    mx.random.seed(7)
    b = run()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_devices_have_their_own_streams():
    mx.random.seed(5)
    a0 = mx.nd.random.uniform(shape=8, ctx=mx.cpu(0)).asnumpy()
    a1 = mx.nd.random.uniform(shape=8, ctx=mx.cpu(1)).asnumpy()
    assert not np.array_equal(a0, a1)
    mx.random.seed(5)
    b1 = mx.nd.random.uniform(shape=8, ctx=mx.cpu(1)).asnumpy()   # order across devices is free
    b0 = mx.nd.random.uniform(shape=8, ctx=mx.cpu(0)).asnumpy()
    np.testing.assert_array_equal(a0, b0)
    np.testing.assert_array_equal(a1, b1)


def test_seed_one_device_leaves_others_alone():
    mx.random.seed(11)
    mx.nd.random.uniform(shape=3, ctx=mx.cpu(1)).wait_to_read()
    ref = mx.nd.random.uniform(shape=3, ctx=mx.cpu(0)).asnumpy()
    mx.random.seed(11)
    mx.random.seed(99, ctx=mx.cpu(1))
    mx.nd.random.uniform(shape=3, ctx=mx.cpu(1)).wait_to_read()
    np.testing.assert_array_equal(mx.nd.random.uniform(shape=3, ctx=mx.cpu(0)).asnumpy(), ref)
    mx.random.seed(99, ctx=mx.cpu(1))
    c = mx.nd.random.uniform(shape=3, ctx=mx.cpu(1)).asnumpy()
    mx.random.seed(99, ctx=mx.cpu(1))
    np.testing.assert_array_equal(mx.nd.random.uniform(shape=3, ctx=mx.cpu(1)).asnumpy(), c)


def test_seed_argument_errors():
    with pytest.raises(ValueError, match="seed_state must be an int"):
        mx.random.seed(1.5)
    with pytest.raises(ValueError, match="ctx must be 'all' or a Context"):
        mx.random.seed(1, ctx="cpu")


def test_namespaces():
    assert mx.rnd is mx.random
    assert mx.random.uniform is mx.nd.random.uniform
    for name in ("uniform", "normal", "random_uniform", "random_normal", "random_randint",
                 "random_exponential", "random_gamma", "random_poisson",
                 "random_negative_binomial", "random_generalized_negative_binomial",
                 "sample_uniform", "sample_normal", "sample_multinomial", "shuffle"):
        assert callable(getattr(mx.nd, name)), name
    assert get_op("uniform") is get_op("_random_uniform") is get_op("random_uniform")
    assert get_op("shuffle") is get_op("_shuffle")


# ---- moments ----------------------------------------------------------------------------------
MOMENTS = [
    # (sampler call, expected mean, expected variance)
    (lambda: mx.nd.random.uniform(-1, 3, shape=N), 1.0, 16 / 12),
    (lambda: mx.nd.random.normal(2, 0.5, shape=N), 2.0, 0.25),
    (lambda: mx.nd.random.randn(N, loc=-1, scale=3), -1.0, 9.0),
    (lambda: mx.nd.random.exponential(2.0, shape=N), 2.0, 4.0),
    (lambda: mx.nd.random.gamma(3.0, 0.5, shape=N), 1.5, 0.75),
    (lambda: mx.nd.random.poisson(4.0, shape=N), 4.0, 4.0),
    (lambda: mx.nd.random.negative_binomial(3, 0.4, shape=N), 4.5, 11.25),
    (lambda: mx.nd.random.generalized_negative_binomial(2.0, 0.3, shape=N), 2.0, 3.2),
    (lambda: mx.nd.random.randint(-5, 5, shape=N), -0.5, 8.25),
    (lambda: mx.nd.random.uniform(shape=N, dtype="float64"), 0.5, 1 / 12),
    (lambda: mx.nd.random.normal(shape=N, dtype="float16"), 0.0, 1.0),
    (lambda: mx.nd.random.normal_like(mx.nd.zeros((N,)), loc=3, scale=2), 3.0, 4.0),
    (lambda: mx.nd.random.exponential_like(mx.nd.zeros((N,)), lam=4), 0.25, 1 / 16),
    (lambda: mx.nd.random.generalized_negative_binomial(3.0, 0.0, shape=N), 3.0, 3.0),
]


@pytest.mark.parametrize("i", range(len(MOMENTS)))
def test_distribution_moments(i):
    mx.random.seed(100 + i)
    draw, mean, var = MOMENTS[i]
    x = draw().asnumpy().astype(np.float64)
    assert x.shape == (N,)
    assert abs(x.mean() - mean) < 0.02 * max(1.0, np.sqrt(var)), (x.mean(), mean)
    assert abs(x.var() - var) < 0.05 * var, (x.var(), var)


def test_uniform_and_randint_ranges():
    mx.random.seed(0)
    u = mx.nd.random.uniform(2, 2.5, shape=N).asnumpy()
    assert u.min() >= 2 and u.max() < 2.5
    r = mx.nd.random.randint(3, 7, shape=N).asnumpy()
    assert set(np.unique(r)) == {3, 4, 5, 6}


def test_sample_ops_one_distribution_per_element():
    mx.random.seed(1)
    low, high = mx.nd.array([0.0, 10.0, -5.0]), mx.nd.array([1.0, 12.0, -4.0])
    x = mx.nd.random.uniform(low, high, shape=(N // 10,)).asnumpy()
    assert x.shape == (3, N // 10)
    np.testing.assert_allclose(x.mean(axis=1), [0.5, 11.0, -4.5], atol=0.02)
    assert (x.min(axis=1) >= low.asnumpy()).all() and (x.max(axis=1) < high.asnumpy()).all()
    mu, sigma = mx.nd.array([[0.0, 5.0]]), mx.nd.array([[1.0, 0.1]])
    y = mx.nd.sample_normal(mu, sigma, shape=(N // 10,)).asnumpy()
    assert y.shape == (1, 2, N // 10)
    np.testing.assert_allclose(y.std(axis=-1), [[1.0, 0.1]], rtol=0.03)
    lam = mx.nd.random.exponential(mx.nd.array([1.0, 4.0]), shape=N // 10).asnumpy()
    np.testing.assert_allclose(lam.mean(axis=1), [1.0, 4.0], rtol=0.03)
    g = mx.nd.random.gamma(mx.nd.array([2.0]), mx.nd.array([3.0]), shape=N // 10).asnumpy()
    np.testing.assert_allclose(g.mean(), 6.0, rtol=0.03)
    nb = mx.nd.random.negative_binomial(mx.nd.array([3.0, 2.0]), mx.nd.array([0.4, 1.0]),
                                        shape=N // 10).asnumpy()
    np.testing.assert_allclose(nb.mean(axis=1), [4.5, 0.0], atol=0.1)
    gnb = mx.nd.random.generalized_negative_binomial(
        mx.nd.array([3.0, 2.0]), mx.nd.array([0.0, 0.5]), shape=N // 10).asnumpy()
    np.testing.assert_allclose(gnb.mean(axis=1), [3.0, 2.0], atol=0.05)
    np.testing.assert_allclose(gnb.var(axis=1), [3.0, 4.0], rtol=0.06)
    po = mx.nd.random.poisson(mx.nd.array([0.0, 7.0]), shape=N // 10).asnumpy()
    assert (po[0] == 0).all() and abs(po[1].mean() - 7.0) < 0.1


def test_multinomial_frequencies_and_unnormalised_rows():
    mx.random.seed(2)
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.0, 0.5], [0.25, 0.25, 0.5]])
    s = mx.nd.random.multinomial(mx.nd.array(probs), shape=N // 10).asnumpy()
    for row, p in zip(s, probs):
        freq = np.bincount(row, minlength=3) / row.size
        np.testing.assert_allclose(freq, p, atol=0.01)
    # MXNet compares a uniform draw in [0, 1) with the running sum: [0.2, 0.3] puts the
    # missing 0.5 of the mass on the last category
    t = mx.nd.random.multinomial(mx.nd.array([0.2, 0.3]), shape=N // 10).asnumpy()
    np.testing.assert_allclose(np.bincount(t, minlength=2) / t.size, [0.2, 0.8], atol=0.01)


def test_shuffle_permutes_first_axis():
    mx.random.seed(3)
    x = mx.nd.array(np.arange(20).reshape(10, 2))
    seen = set()
    for _ in range(20):
        y = mx.nd.random.shuffle(x).asnumpy()
        assert sorted(map(tuple, y)) == sorted(map(tuple, x.asnumpy()))
        assert (y[:, 1] == y[:, 0] + 1).all()       # rows move whole
        seen.add(tuple(y[:, 0]))
    assert len(seen) > 15
    np.testing.assert_array_equal(x.asnumpy(), np.arange(20).reshape(10, 2))   # input intact


# ---- shapes, dtypes, devices, out= -----------------------------------------------------------
def test_default_shape_dtype_and_device():
    x = mx.nd.random.uniform()
    assert x.shape == (1,) and x.dtype == np.float32 and x.context == mx.cpu(0)
    assert mx.nd.random.normal(shape=3).shape == (3,)
    assert mx.nd.random.normal(shape=(2, 3), dtype="float64").dtype == np.float64
    assert mx.nd.random.poisson(2, shape=2, dtype="float16").dtype == np.float16
    assert mx.nd.random.randint(0, 3, shape=2).dtype == np.int32
    assert mx.nd.random.randint(0, 2 ** 40, shape=2, dtype="int64").dtype == np.int64
    assert mx.nd.random.uniform(shape=2, ctx=mx.cpu(2)).context == mx.cpu(2)
    with mx.cpu(1):
        assert mx.nd.random.normal(shape=2).context == mx.cpu(1)
    p = mx.nd.array([1.0, 2.0], ctx=mx.cpu(1))
    assert mx.nd.random.normal(p, p, shape=2).context == mx.cpu(1)
    like = mx.nd.random.uniform_like(mx.nd.zeros((2, 2), dtype="float64", ctx=mx.cpu(3)))
    assert like.shape == (2, 2) and like.dtype == np.float64 and like.context == mx.cpu(3)


@pytest.mark.parametrize("data_shape,shape,want", [
    ((3,), (), (1,)), ((3,), (2, 3), (2, 3)), ((2, 3), 2, (2, 2)), ((2, 3), (), (2,)),
    ((4, 2, 3), (5,), (4, 2, 5))])
def test_multinomial_shapes(data_shape, shape, want):
    data = mx.nd.ones(data_shape) / data_shape[-1]
    s = mx.nd.random.multinomial(data, shape=shape)
    assert s.shape == want and s.dtype == np.int32
    s, lp = mx.nd.random.multinomial(data, shape=shape, get_prob=True, dtype="float32")
    assert s.dtype == np.float32 and lp.shape == want and lp.dtype == np.float32
    np.testing.assert_allclose(lp.asnumpy(), np.log(1.0 / data_shape[-1]), rtol=1e-6)


def test_out_supplies_shape_dtype_and_device():
    out = mx.nd.zeros((3, 2), dtype="float64", ctx=mx.cpu(1))
    r = mx.nd.random.uniform(5, 6, out=out)
    assert r is out
    v = out.asnumpy()
    assert (v >= 5).all() and (v < 6).all()
    with pytest.raises(mx.base.ShapeError, match=r"out\[0\] has shape \(3,\), expected \(2,\)"):
        mx.nd.random.uniform(shape=(2,), out=mx.nd.zeros((3,)))


def test_infer_shape_with_unknowns():
    op = get_op("_random_uniform")
    assert op.infer_shape(op.parse_params({}), [])[1] == [None]
    assert op.infer_shape(op.parse_params({"shape": "(2, 3)"}), [])[1] == [(2, 3)]
    sample = get_op("_sample_normal")
    p = sample.parse_params({"shape": (4,)})
    assert sample.infer_shape(p, [None, None])[1] == [None]
    assert sample.infer_shape(p, [(2, 3), None]) == ([(2, 3), (2, 3)], [(2, 3, 4)], [])
    with pytest.raises(mx.base.ShapeError, match=r"sigma has shape \(3,\), expected \(2,\)"):
        sample.infer_shape(p, [(2,), (3,)])
    multi = get_op("_sample_multinomial")
    assert multi.infer_shape(multi.parse_params({"get_prob": True}), [None])[1] == [None, None]


def test_params_parse_from_json_strings():
    op = get_op("_random_normal")
    p = op.parse_params({"loc": "1.5", "scale": "2", "shape": "(2, 2)", "ctx": "cpu(1)",
                         "dtype": "float64"})
    assert (p.loc, p.scale, p.shape, p.ctx, p.dtype) == (1.5, 2.0, (2, 2), mx.cpu(1),
                                                          np.dtype("float64"))
    assert op.parse_params({"ctx": ""}).ctx is None       # MXNet's "current device"


# ---- errors -------------------------------------------------------------------------------------
def test_bad_parameters_are_clear_errors():
    with pytest.raises(ParamError, match=r"dtype' got int32: expected one of float16, float32"):
        mx.nd.random.uniform(shape=2, dtype="int32")
    with pytest.raises(ParamError, match=r"_random_uniform: low must be <= high, got 1.0, 0.0"):
        mx.nd.random.uniform(1, 0, shape=2)
    with pytest.raises(ParamError, match="scale must be > 0"):
        mx.nd.random.normal(0, -1, shape=2)
    with pytest.raises(ParamError, match=r"low must be < high, got low=5, high=5"):
        mx.nd.random.randint(5, 5, shape=2)
    with pytest.raises(ParamError, match="does not fit dtype int32; use dtype='int64'"):
        mx.nd.random.randint(0, 2 ** 40, shape=2)
    with pytest.raises(ParamError, match="expected one of int32, int64"):
        mx.nd.random.randint(0, 4, shape=2, dtype="float32")
    with pytest.raises(ParamError, match="unknown parameter 'foo'"):
        mx.nd.random.uniform(0, 1, shape=2, foo=3)
    with pytest.raises(TypeError, match="all numbers or all NDArrays, got low=NDArray, high=int"):
        mx.nd.random.uniform(mx.nd.array([0.0]), 2)
    with pytest.raises(TypeError, match="randn needs a shape"):
        mx.nd.random.randn()
    with pytest.raises(TypeError, match="low must be an integer"):
        mx.nd.random.randint(0.5, 3)
    with pytest.raises(ParamError, match="expected one of float16, float32, float64, int32, uint8"):
        mx.nd.random.multinomial(mx.nd.array([0.5, 0.5]), dtype="int64")


def test_bad_parameter_arrays_fail_at_wait():
    x = mx.nd.random.uniform(mx.nd.array([0.0, 2.0]), mx.nd.array([1.0, 1.0]), shape=2)
    with pytest.raises(ValueError, match="_sample_uniform: low must be <= high for every element"):
        x.asnumpy()


# ---- gradients ----------------------------------------------------------------------------------
def test_multinomial_log_prob_gradient():
    # d/dp log p[idx] = 1/p[idx] at each drawn index, times the head gradient
    probs = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], np.float32)
    x = mx.nd.array(probs)
    x.attach_grad()
    with mx.autograd.record():
        s, lp = mx.nd.random.multinomial(x, shape=3, get_prob=True)
    lp.backward(mx.nd.ones_like(lp) * 2)
    want = np.zeros_like(probs)
    for b, row in enumerate(s.asnumpy()):
        for idx in row:
            want[b, idx] += 2 / probs[b, idx]
    np.testing.assert_allclose(x.grad.asnumpy(), want, rtol=1e-6)


def test_like_and_sample_ops_have_zero_gradient_shuffle_none():
    x = mx.nd.array([0.5, 1.5, 2.5])
    x.attach_grad()
    with mx.autograd.record():
        y = (mx.nd.random.uniform_like(x) * x).sum()
    y.backward()
    assert x.grad.shape == (3,)
    with mx.autograd.record():
        z = mx.nd.random.normal(x, mx.nd.ones_like(x), shape=2)
    z.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), np.zeros(3))
    with mx.autograd.record():
        w = mx.nd.random.shuffle(x)
    with pytest.raises(mx.MXNetError, match="_shuffle is not differentiable"):
        w.backward()


@pytest.mark.gpu
def test_gpu_sampling_and_seed():
    mx.random.seed(1)
    a = mx.nd.random.normal(shape=(1000,), ctx=mx.gpu(0))
    assert a.context == mx.gpu(0)
    mx.random.seed(1)
    b = mx.nd.random.normal(shape=(1000,), ctx=mx.gpu(0))
    np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert abs(a.asnumpy().mean()) < 0.2
    s = mx.nd.random.multinomial(mx.nd.array([[0.5, 0.5]], ctx=mx.gpu(0)), shape=10)
    assert s.shape == (1, 10)


# ---- mx.sym.random: MXNet's Python samplers over the same operators --------------------------
def _sym_draws():
    """The symbolic twins of the first calls of ``_draws`` (same operators, same order)."""
    r, v = mx.sym.random, mx.sym.var
    probs = mx.nd.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    graphs = [(r.uniform(-2, 3, shape=(3, 4)), {}), (r.normal(1, 2, shape=5), {}),
              (r.randn(2, 2), {}), (r.randint(0, 100, shape=6), {}),
              (r.exponential(2.0, shape=4), {}), (r.gamma(2, 3, shape=4), {}),
              (r.poisson(4, shape=4), {}), (r.negative_binomial(3, 0.4, shape=4), {}),
              (r.generalized_negative_binomial(2, 0.3, shape=4), {}),
              (r.multinomial(v("p"), shape=3, get_prob=False), {"p": probs}),
              (r.shuffle(v("x")), {"x": mx.nd.arange(10)}),
              (r.uniform_like(v("z")), {"z": mx.nd.zeros((2, 3))}),
              (r.normal(v("mu"), v("sigma"), shape=3), {"mu": mx.nd.array([0.0, 5.0]),
                                                        "sigma": mx.nd.array([1.0, 0.1])}),
              (r.poisson(v("lam"), shape=2), {"lam": mx.nd.array([1.0, 10.0])})]
    return [g.eval(**inputs)[0] for g, inputs in graphs]


def test_symbolic_samplers_draw_what_the_eager_ones_draw():
    mx.random.seed(99)
    eager = [a.asnumpy() for a in _draws()]
    mx.random.seed(99)
    symbolic = [a.asnumpy() for a in _sym_draws()]
    for e, s in zip(eager, symbolic):
        assert e.dtype == s.dtype and e.shape == s.shape
        np.testing.assert_array_equal(e, s)


def test_symbolic_sampler_nodes_are_mxnets():
    # node ops, names and attributes as MXNet 1.9.1 writes them
    import json
    r, v = mx.sym.random, mx.sym.var

    def nodes(s):
        return [(n["op"], n["name"], n.get("attrs")) for n in json.loads(s.tojson())["nodes"]
                if n["op"] != "null"]
    assert nodes(r.uniform(0, 1, shape=(2,), name="u")) == \
        [("_random_uniform", "u", {"high": "1", "low": "0", "shape": "(2,)"})]
    assert nodes(r.normal(v("m"), v("s"), shape=3, name="n")) == \
        [("_sample_normal", "n", {"shape": "3"})]
    assert nodes(r.exponential(scale=2.0, shape=(2,), name="e")) == \
        [("_random_exponential", "e", {"lam": "0.5", "shape": "(2,)"})]
    with mx.name.NameManager():          # fresh auto-name counters
        assert nodes(r.exponential(v("sc"), name="es")) == \
            [("_rdiv_scalar", "_rdivscalar0", {"scalar": "1.0"}),
             ("_sample_exponential", "es", None)]
    mn = r.multinomial(v("p"), shape=4, name="mn")
    assert nodes(mn) == [("_sample_multinomial", "mn",
                          {"dtype": "int32", "get_prob": "True", "shape": "4"})]
    assert mn.list_outputs() == ["mn_output0", "mn_output1"]
    assert nodes(r.gamma(2, 3, shape=2, dtype="float64", name="g")) == \
        [("_random_gamma", "g", {"alpha": "2", "beta": "3", "dtype": "float64", "shape": "2"})]
    with pytest.raises(TypeError, match="all numbers or all Symbols"):
        r.uniform(v("a"), 1)
    with pytest.raises(TypeError, match="low must be an integer"):
        r.randint(0.5, 3)
