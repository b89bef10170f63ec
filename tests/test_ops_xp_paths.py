"""The generic ``xp`` code paths of the operators (the ones cupy arrays take on a GPU), run on
the CPU and compared with the CPU fast paths.

There is no GPU here nor in CI, yet every kernel dispatches on the array type: numba and other
CPU-only routes are chosen by ``type(a) is np.ndarray`` or ``ctx.xp is np``, and everything else
takes numpy-style code written against ``ctx.xp``. This module runs every case of the operator
tables at the registry level (``OpDef.forward`` / ``backward``) twice on the same inputs:

* the CPU path: plain numpy arrays and ``OpContext(xp=numpy)``;
* the device path: ``DeviceArray`` inputs (a numpy subclass, so ``type(a) is np.ndarray`` is
  False) and ``OpContext(xp=DEVICE_XP)`` (numpy behind a module proxy, so ``xp is np`` is False),

then compares outputs, updated aux states and input gradients (req 'write' and 'add').

``DeviceArray`` behaves like a cupy array where that matters for finding GPU bugs: an operation
mixing it with a plain numpy array (``np.empty`` used where ``xp.empty`` was meant, a host
array as ``out=``) raises TypeError as cupy does. Numpy's own Python-level implementations
(``np.pad``, ``np.einsum``...) build plain temporaries internally and return them; those
are trusted: checks are off inside them and their array results come back as DeviceArray, as
cupy's own functions return cupy arrays. The proxy's creation functions (``xp.empty``,
``xp.arange``...) return DeviceArray for the same reason, and so do reductions to a scalar
(numpy gives an ``np.float32`` that would then pass for a host array, cupy a 0-d array).
Numba refuses DeviceArray as it refuses cupy arrays, so a CPU kernel reached without its
type check fails. The device's random generator has cupy.random.Generator's interface (fewer
methods, stricter parameter types) and draws numpy's numbers, so both paths see the same draws.

Not reachable this way (cupy-only APIs; those rows skip from the call on): ``cupyx.scatter_add``
(kernels/scatter.py ``add_at``: the backward of Embedding, take, batch_take, gather_nd and
_sample_multinomial; their forwards are compared) and ``cupyx.scipy.special``
(elemwise.py's erf, erfinv, gamma, gammaln, digamma and LeakyReLU's gelu).
"""
import dataclasses
import importlib
import threading
import types

import numpy as np
import pytest
from numba.core.typing.typeof import typeof_impl

from hybridnet.ops.registry import ZERO_GRAD, OpContext

_TABLES = ("test_ops_conv", "test_ops_pooling", "test_ops_fc", "test_ops_softmax",
           "test_ops_loss", "test_ops_norm", "test_ops_rnn", "test_ops_embedding",
           "test_ops_activation", "test_ops_elemwise", "test_ops_reduce", "test_ops_dropout",
           "test_ops_pad_crop", "test_ops_sequence", "test_ops_upsampling", "test_ops_index",
           "test_ops_linalg", "test_ops_shape", "test_ops_optimizer")


def _more_cases():
    """Rows of the other tables in those modules: loss heads' gradient options
    (test_ops_loss._LOSSES, with every SoftmaxOutput option of _SO_OPTIONS on each of its
    layouts) and the fused RNN with dropout between layers (test_ops_rnn's pipelining test)."""
    import test_ops_loss as loss
    import test_ops_rnn as rnn
    from op_harness import OpCase

    def uniform(rng, i, shape):
        return rng.uniform(0, 1, shape)
    cases = []
    for i, (op, shape, label, params, _) in enumerate(loss._LOSSES):
        inputs = [shape] if op in ("MakeLoss", "make_loss") else \
            [shape, shape if label is None else label]
        options = loss._SO_OPTIONS if op == "SoftmaxOutput" else [{}]
        cases += [OpCase(op, inputs, dict(params, **extra), init=uniform, dtype=np.float64,
                         id=f"{op}-{i}-{extra}") for extra in options]
    cases += [rnn._case(mode, 3, False, t=5, n=2, c=3, h=4, p=0.4)
              for mode in ("lstm", "gru", "rnn_tanh")]
    return cases + _untabled_cases()


def _untabled_cases():
    """The operators no table has a row for: array creation, random draws (the same seeded
    generator on both paths), and the optimizer updates test_ops_optimizer leaves out
    (mixed-precision ones with float16 weights and float32 masters)."""
    from op_harness import OpCase
    rng = np.random.RandomState(5)

    def u(shape, lo=-1.0, hi=1.0, dtype=np.float32):
        return rng.uniform(lo, hi, shape).astype(dtype)
    s = (3, 4)
    cases = [OpCase(op, [], params) for op, params in [
        ("_zeros", {"shape": s}), ("_ones", {"shape": s, "dtype": "float64"}),
        ("_full", {"shape": s, "value": 2.5}), ("_eye", {"N": 3, "M": 4, "k": 1}),
        ("_arange", {"start": 1, "stop": 7, "step": 1.5, "repeat": 2}),
        ("_linspace", {"start": 0, "stop": 1, "num": 5}),
        ("_random_uniform", {"low": -1, "high": 2, "shape": s}),
        ("_random_normal", {"loc": 1, "scale": 2, "shape": s}),
        ("_random_gamma", {"alpha": 2, "beta": 0.5, "shape": s}),
        ("_random_exponential", {"lam": 2, "shape": s}),
        ("_random_poisson", {"lam": 3, "shape": s}),
        ("_random_negative_binomial", {"k": 3, "p": 0.4, "shape": s}),
        ("_random_generalized_negative_binomial", {"mu": 2, "alpha": 0.5, "shape": s}),
        ("_random_randint", {"low": -3, "high": 9, "shape": s})]]
    cases += [OpCase(f"_random_{name}_like", [u(s)], params) for name, params in [
        ("uniform", {"low": 1, "high": 3}), ("normal", {}), ("gamma", {"alpha": 3}),
        ("exponential", {}), ("poisson", {"lam": 2}), ("negative_binomial", {"k": 2, "p": 0.3}),
        ("generalized_negative_binomial", {"alpha": 0.3})]]
    pos = (0.5, 2.0)
    cases += [OpCase(f"_sample_{name}", [u((2,), *a), u((2,), *b)], {"shape": (3,)})
              for name, a, b in [("uniform", (-1, 0), (1, 2)), ("normal", (-1, 1), pos),
                                 ("gamma", pos, pos), ("negative_binomial", (1, 4), (0.2, 0.8)),
                                 ("generalized_negative_binomial", pos, pos)]]
    cases += [OpCase(f"_sample_{name}", [u((2,), *pos)], {"shape": (3,)})
              for name in ("exponential", "poisson")]
    probs = u((2, 5), 0.1, 1)
    probs /= probs.sum(axis=1, keepdims=True)
    cases += [OpCase("_sample_multinomial", [probs], {"shape": (3,), "get_prob": True}),
              OpCase("_shuffle", [u((5, 3))])]
    w16, g16, w32 = u(s, dtype=np.float16), u(s, dtype=np.float16), u(s)
    cases += [OpCase(op, [w16, g16, *extra, w32], dict(params, lr=0.1), id=op) for op, extra,
              params in [("mp_sgd_update", [], {"wd": 0.01}),
                         ("mp_sgd_mom_update", [u(s)], {"momentum": 0.9, "clip_gradient": 0.5}),
                         ("mp_nag_mom_update", [u(s)], {"momentum": 0.9, "wd": 0.01})]]
    cases += [OpCase("mp_lamb_update_phase1", [w16, g16, u(s), u(s, 0.1, 1), w32],
                     {"t": 2, "wd": 0.01}),
              OpCase("mp_lamb_update_phase2", [w16, u(s), u((1,), 1, 2), u((1,), 1, 2), w32],
                     {"lr": 0.1, "lower_bound": 0.1, "upper_bound": 5.0}),
              OpCase("lamb_update_phase1", [u(s), u(s), u(s), u(s, 0.1, 1)],
                     {"t": 2, "wd": 0.01, "clip_gradient": 0.5}),
              OpCase("lamb_update_phase2", [u(s), u(s), u((1,), 1, 2), u((1,), 1, 2)],
                     {"lr": 0.1}),
              OpCase("ftml_update", [u(s), u(s), u(s, 0, 1), u(s, 0, 1), u(s)],
                     {"lr": 0.1, "t": 2, "wd": 0.01, "clip_grad": 0.5}),
              OpCase("rmspropalex_update", [u(s), u(s), u(s, 0.5, 1), u(s, 0, 0.1), u(s)],
                     {"lr": 0.01, "wd": 0.01, "clip_weights": 0.5}),
              OpCase("signum_update", [u(s), u(s), u(s)],
                     {"lr": 0.1, "momentum": 0.9, "wd_lh": 0.01})]
    return cases


# not named CASES: test_symbol_vs_eager.py collects every test_ops_*.py module's CASES
TABLE_ROWS = [(f"{m[len('test_ops_'):]}-{c}", c) for m in _TABLES
              for c in importlib.import_module(m).CASES]
TABLE_ROWS += [(f"more-{c}", c) for c in _more_cases()]


# ---- the stand-in for cupy ------------------------------------------------------------------
_inside_numpy = threading.local()      # depth of numpy's own implementations on this thread


def _trusted() -> bool:
    return getattr(_inside_numpy, "depth", 0) > 0


def _to_device(value):
    """Plain numpy arrays in a result (also inside tuples/lists) as DeviceArray."""
    if type(value) is np.ndarray:
        return value.view(DeviceArray)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v) for v in value)
    return value


def _to_host(value):
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_host(v) for v in value)
    return value


def _check_not_mixed(what, arrays):
    if _trusted():
        return
    for a in arrays:
        if type(a) is np.ndarray:
            raise TypeError(f"{what}: a host numpy array {a.shape} {a.dtype} mixed with device "
                            f"arrays (cupy raises here too)")


def _arrays_in(args, kwargs):
    """The arrays among a function's arguments (also inside lists and tuples)."""
    found = []
    for v in list(args) + list(kwargs.values()):
        if isinstance(v, (list, tuple)):
            found += _arrays_in(v, {})
        elif isinstance(v, np.ndarray):
            found.append(v)
    return found


def _check_no_partial_overlap(what, inputs, out):
    """numpy buffers an elementwise call whose output overlaps an input in another layout
    (``x[1:] += x[:-1]``); cupy does not, and its result is then undefined."""
    for o in out:
        for a in inputs:
            if isinstance(a, np.ndarray) and a is not o and np.shares_memory(a, o) and \
                    (a.__array_interface__["data"][0], a.strides, a.shape) != \
                    (o.__array_interface__["data"][0], o.strides, o.shape):
                raise ValueError(f"{what}: output overlaps an input in another layout (cupy "
                                 f"gives undefined results)")


class DeviceArray(np.ndarray):
    """A numpy array that takes the device (cupy) code paths: see the module docstring."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out", ())
        _check_not_mixed(f"{ufunc.__name__}.{method}", list(inputs) + list(out))
        if method == "__call__" and not _trusted():
            _check_no_partial_overlap(ufunc.__name__, inputs, out)
        if out:
            kwargs["out"] = _to_host(tuple(out))
        result = getattr(ufunc, method)(*_to_host(inputs), **kwargs)
        if out:
            return out[0] if len(out) == 1 else tuple(out)
        if isinstance(result, np.generic):      # cupy gives 0-d arrays where numpy gives scalars
            return np.asarray(result).view(DeviceArray)
        return _to_device(result)

    def __array_function__(self, func, types_, args, kwargs):
        if not _trusted() and np.ndarray in types_:
            _check_not_mixed(func.__name__, _arrays_in(args, kwargs))
        _inside_numpy.depth = getattr(_inside_numpy, "depth", 0) + 1
        try:
            return _to_device(func._implementation(*args, **kwargs))
        finally:
            _inside_numpy.depth -= 1


# numba takes ndarray subclasses as plain arrays; cupy arrays it refuses. Make it refuse these
# too, so a CPU kernel reached without its type check fails here as it would on a GPU.
DeviceArray.__numba_array_subtype_dispatch__ = True     # skip numba's C fast path for them


@typeof_impl.register(DeviceArray)
def _refuse_in_numba(value, context):
    raise TypeError(f"a device array {value.shape} {value.dtype} was passed to a CPU numba "
                    f"kernel")


class _DeviceModule(types.ModuleType):
    """``numpy`` seen as another array module: ``xp is np`` is False, and functions creating
    arrays from nothing (``xp.empty``, ``xp.arange``, ``xp.asarray(list)``) return
    DeviceArray. Ufuncs, types, dtypes and submodules are numpy's own."""

    def __init__(self):
        super().__init__("device_numpy")

    def __getattr__(self, name):
        attr = getattr(np, name)
        if callable(attr) and not isinstance(attr, (type, np.ufunc)):
            def call(*args, **kwargs):
                return _to_device(attr(*args, **kwargs))
            call.__name__ = name
            setattr(self, name, call)
            return call
        return attr


DEVICE_XP = _DeviceModule()


# cupy.random.Generator's methods (recent cupy: cupy/random/_generator_api.pyx; older releases
# lack uniform and more) and how many of their leading arguments are distribution parameters,
# which cupy takes only as cupy arrays or Python float/int (numpy scalars and host arrays
# raise). No normal, permutation, shuffle, choice or negative_binomial.
_CUPY_GENERATOR = {"random": 0, "uniform": 0, "integers": 0, "standard_normal": 0,
                   "standard_exponential": 0, "exponential": 0, "standard_gamma": 1,
                   "gamma": 1, "poisson": 1, "beta": 2, "binomial": 2, "chisquare": 1,
                   "dirichlet": 1, "f": 2, "geometric": 1, "hypergeometric": 3,
                   "logseries": 1, "power": 1}
_NOT_PARAMETERS = ("size", "dtype", "out", "method", "endpoint")


class _DeviceRandom:
    """The device's random generator: numpy's draws, returned as DeviceArray, behind the
    interface cupy's Generator has (see _CUPY_GENERATOR)."""

    def __init__(self, rng):
        self._rng = rng

    def __getattr__(self, name):
        if name not in _CUPY_GENERATOR:
            raise AttributeError(f"cupy.random.Generator has no method {name!r}")
        method = getattr(self._rng, name)

        def draw(*args, **kwargs):
            given = list(args[:_CUPY_GENERATOR[name]]) + \
                [v for k, v in kwargs.items() if k not in _NOT_PARAMETERS]
            for v in given:
                if not (isinstance(v, DeviceArray) or type(v) in (float, int)):
                    raise TypeError(f"cupy's Generator.{name} takes a cupy array or a Python "
                                    f"float/int as parameter, got {type(v).__name__}")
            host = {k: _to_host(v) for k, v in kwargs.items()}
            return _to_device(method(*_to_host(args), **host))
        return draw


# ---- running one case on both paths ---------------------------------------------------------
def _rows_sorted(a):
    """The rows of ``a`` in lexicographic order: what a shuffle keeps whatever it draws."""
    flat = a.reshape(a.shape[0], -1)
    return flat[np.lexsort(flat.T[::-1])]


# operators whose device path draws differently (cupy's Generator has no permutation, so
# _shuffle sorts random keys instead): their outputs are compared up to this
_SAME_UP_TO = {"_shuffle": _rows_sorted}


def _setup(case):
    arrays = case.arrays()
    op, p = case.parsed(arrays)
    n_aux = len(op.aux_names(p))
    args, aux = arrays[:len(arrays) - n_aux], arrays[len(arrays) - n_aux:]
    _, out_shapes, _ = op.infer_shape(p, [a.shape for a in args])
    _, out_types, _ = op.infer_type(p, [a.dtype for a in args])
    return op, p, args, aux, list(zip(out_shapes, out_types))


class _Path:
    """One operator call on the CPU path (``device`` False) or the device path."""

    def __init__(self, case, device: bool):
        self.op, self.p, args, aux, self.outs = _setup(case)
        self.device, self.seed = device, case.seed
        self.xp = DEVICE_XP if device else np
        rng = np.random.Generator(np.random.MT19937(case.seed))
        self.ctx = OpContext(self.xp, None, _DeviceRandom(rng) if device else rng)
        self.n_vis = len(self.op.output_names(self.p))
        self.args, self.aux = args, aux
        self.inputs = [self.put(a) for a in args]

    def put(self, a):
        return a.copy().view(DeviceArray) if self.device else a.copy()

    def got(self, a, what):
        if self.device:
            assert type(a) is DeviceArray, f"{self.op.name}: {what} became {type(a).__name__}"
        return np.array(a)

    def forward(self, is_train: bool) -> dict:
        """Visible outputs, aux states and inputs (hidden outputs are each path's own business)."""
        self.state = [self.put(a) for a in self.aux]
        # the two paths' buffers start different: an element either leaves unwritten shows
        self.outputs = [self.put(np.full(s, -3 if self.device else 7, t)) for s, t in self.outs]
        self.op.forward(self.ctx, self.p, self.inputs, self.state, self.outputs, is_train)
        canonical = _SAME_UP_TO.get(self.op.name, lambda a: a)
        results = {f"output {i}": canonical(self.got(o, f"output {i}"))
                   for i, o in enumerate(self.outputs[:self.n_vis])}
        results.update({f"aux {i}": self.got(a, f"aux {i}") for i, a in enumerate(self.state)})
        # inputs too: the optimizer updates change their state inputs in place
        results.update({f"input {i}": self.got(a, f"input {i}")
                        for i, a in enumerate(self.inputs)})
        return results

    def backward(self, req: str) -> dict:
        """Input gradients after the last forward; 'write' buffers start as NaN (so an element
        left unwritten shows), 'add' buffers as random values."""
        rng = np.random.RandomState(self.seed + 1)
        out_grads = [self.put(rng.standard_normal(o.shape).astype(o.dtype))
                     if i < self.n_vis else None for i, o in enumerate(self.outputs)]
        reqs = [req if a.dtype.kind == "f" else "null" for a in self.args]
        in_grads = [None if r == "null" else
                    self.put(rng.standard_normal(a.shape).astype(a.dtype) if r == "add"
                             else np.full(a.shape, np.nan, a.dtype))
                    for a, r in zip(self.args, reqs)]
        self.op.backward(self.ctx, self.p, out_grads, self.inputs, self.outputs, self.state,
                         in_grads, reqs)
        return {f"gradient {i}": self.got(g, f"gradient {i}")
                for i, g in enumerate(in_grads) if g is not None}


def _compare(name, case, got, want, what):
    assert got.keys() == want.keys(), what
    tol = (1e-5, 1e-6) if case.dtype == np.float64 else (1e-4, 1e-5)
    for key, w in want.items():
        g = got[key]
        assert (g.shape, g.dtype) == (w.shape, w.dtype), f"{name}: {what} {key}"
        # NaN outputs may be right (log of a negative); a NaN gradient is an element the
        # 'write' backward left as the buffer started
        np.testing.assert_allclose(g, w, *tol, equal_nan=not key.startswith("gradient"),
                                   err_msg=f"{name}: {what} {key}")


def _cupy_only(err: ModuleNotFoundError):
    if err.name is None or err.name.split(".")[0] not in ("cupy", "cupyx"):
        raise err
    pytest.skip(f"this device path calls a cupy-only API ({err.name})")


@pytest.mark.parametrize("name, case", TABLE_ROWS, ids=[n for n, _ in TABLE_ROWS])
def test_device_path_matches_cpu_path(name, case):
    cpu, device = _Path(case, False), _Path(case, True)
    try:
        for is_train in (False, True):
            _compare(name, case, device.forward(is_train), cpu.forward(is_train),
                     f"forward(is_train={is_train})")
        if cpu.op.backward is None or cpu.op.backward is ZERO_GRAD:
            return
        for req in ("write", "add"):
            _compare(name, case, device.backward(req), cpu.backward(req), f"backward({req})")
    except ModuleNotFoundError as err:
        _cupy_only(err)


# float16 is what GPUs train in; numba has no float16, so on the CPU these rows only ever run
# in float32. Every float32 row drawn from shapes, in float16 on the device path, against the
# float32 CPU path: loose tolerances (float16 rounding), but no overflow, NaN or crash.
HALF_ROWS = [(n, dataclasses.replace(c, dtype=np.float16)) for n, c in TABLE_ROWS
             if c.dtype == np.float32 and all(isinstance(x, tuple) for x in c.inputs)]


@pytest.mark.parametrize("name, case", HALF_ROWS, ids=[n for n, _ in HALF_ROWS])
def test_device_path_in_float16_matches_cpu_path_in_float32(name, case):
    cpu = _Path(dataclasses.replace(case, dtype=np.float32), False)
    device = _Path(case, True)
    try:
        for is_train in (False, True):
            want, got = cpu.forward(is_train), device.forward(is_train)
            for key in want:
                np.testing.assert_allclose(got[key].astype(np.float32), want[key], 2e-2, 2e-2,
                                           err_msg=f"{name}: forward({is_train}) {key}")
        if cpu.op.backward is None or cpu.op.backward is ZERO_GRAD:
            return
        want, got = cpu.backward("write"), device.backward("write")
        for key in want:
            np.testing.assert_allclose(got[key].astype(np.float32), want[key], 5e-2, 5e-2,
                                       equal_nan=False, err_msg=f"{name}: backward {key}")
    except ModuleNotFoundError as err:
        _cupy_only(err)


def test_the_stand_in_behaves_like_cupy_where_the_device_paths_rely_on_it(monkeypatch):
    import numba

    from hybridnet.ops.kernels import im2col
    dev = DEVICE_XP.ones((2, 3))
    assert type(dev) is DeviceArray and DEVICE_XP is not np
    assert type(dev.sum()) is DeviceArray and dev.sum().shape == ()
    assert type(DEVICE_XP.concatenate([dev, dev])) is DeviceArray
    with pytest.raises(TypeError, match="host numpy array"):
        dev + np.ones(3)
    with pytest.raises(TypeError, match="host numpy array"):
        DEVICE_XP.concatenate([dev, np.ones((2, 3))])
    with pytest.raises(ValueError, match="overlaps an input"):
        dev[:, 1:] += dev[:, :-1]
    with pytest.raises(TypeError, match="CPU numba kernel"):
        numba.njit(lambda a: a.sum())(dev)
    rng = _DeviceRandom(np.random.default_rng(0))
    assert type(rng.poisson(dev, size=(2, 3))) is DeviceArray
    assert not hasattr(rng, "permutation") and not hasattr(rng, "normal")
    with pytest.raises(TypeError, match="Generator.standard_gamma takes a cupy array"):
        rng.standard_gamma(np.float64(2.0), size=(2,))
    # a device array let through to the numba im2col fails, so the comparison cannot pass
    # by running the CPU kernels twice
    monkeypatch.setattr(im2col, "_use_numba", lambda a, b: True)
    case = next(c for name, c in TABLE_ROWS if name.startswith("conv-Convolution"))
    with pytest.raises(TypeError, match="CPU numba kernel"):
        test_device_path_matches_cpu_path("conv", case)
