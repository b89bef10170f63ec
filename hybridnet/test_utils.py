"""``mx.test_utils``: the helpers MXNet 1.x users test with, same names and signatures.

Gradient checks run in float64 along random directions (one per input, so a failure names the
input whose gradient is wrong) -- cheap and precise.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from .base import HybridNetError
from .context import Context, cpu

__all__ = ["default_context", "set_default_context", "assert_almost_equal", "almost_equal",
           "same", "assert_exception", "rand_ndarray", "rand_shape_2d", "rand_shape_3d",
           "rand_shape_nd", "random_arrays", "numeric_grad", "check_numeric_gradient",
           "environment", "default_rtols", "default_atols", "default_dtype", "get_mnist",
           "assert_almost_equal_ignore_nan", "assert_allclose", "get_rtol", "get_atol"]

_default_ctx = [None]


def default_context() -> Context:
    """The device tests run on (``cpu(0)`` unless set)."""
    return _default_ctx[0] or cpu(0)


def set_default_context(ctx: Context) -> None:
    """Make ``ctx`` the device ``default_context()`` returns."""
    _default_ctx[0] = ctx


def default_rtols():
    """Relative tolerance per dtype that comparisons use when none is given."""
    return {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-5,
            np.dtype(np.bool_): 0, np.dtype(np.int8): 0, np.dtype(np.uint8): 0,
            np.dtype(np.int32): 0, np.dtype(np.int64): 0}


def default_atols():
    """Absolute tolerance per dtype that comparisons use when none is given."""
    return {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-20,
            np.dtype(np.bool_): 0, np.dtype(np.int8): 0, np.dtype(np.uint8): 0,
            np.dtype(np.int32): 0, np.dtype(np.int64): 0}


def _as_numpy(x):
    if hasattr(x, "asnumpy"):
        return x.asnumpy()
    return np.asarray(x)


def _tols(a, b, rtol, atol):
    dt = np.result_type(a.dtype, b.dtype) if a.dtype != b.dtype else a.dtype
    if rtol is None:
        rtol = default_rtols().get(np.dtype(dt), 1e-5)
    if atol is None:
        atol = default_atols().get(np.dtype(dt), 1e-20)
    return rtol, atol


def almost_equal(a, b, rtol=None, atol=None, equal_nan=False, use_broadcast=True) -> bool:
    """Whether ``a`` and ``b`` agree within ``|a - b| <= atol + rtol * |b|``."""
    a, b = _as_numpy(a), _as_numpy(b)
    if not use_broadcast and a.shape != b.shape:
        return False
    rtol, atol = _tols(a, b, rtol, atol)
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def assert_almost_equal(a, b, rtol=None, atol=None, names=("a", "b"), equal_nan=False,
                        use_broadcast=True, mismatches=(10, 10)):
    """Raise AssertionError showing the worst mismatches unless ``a`` and ``b`` agree."""
    a, b = _as_numpy(a), _as_numpy(b)
    if not use_broadcast and a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {names[0]} {a.shape} vs {names[1]} {b.shape}")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise AssertionError(f"shape mismatch: {names[0]} {a.shape} vs {names[1]} "
                             f"{b.shape}") from None
    rtol, atol = _tols(a, b, rtol, atol)
    if np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan):
        return
    a64, b64 = np.broadcast_arrays(a.astype(np.float64), b.astype(np.float64))
    err = np.abs(a64 - b64) - (atol + rtol * np.abs(b64))
    if equal_nan:
        err[np.isnan(a64) & np.isnan(b64)] = -1
    err[np.isnan(err)] = np.inf
    worst = np.argsort(err, axis=None)[::-1][:mismatches[0]]
    lines = [f"Items are not equal (rtol={rtol}, atol={atol}); "
             f"{int((err > 0).sum())} of {err.size} elements differ. Worst:"]
    for flat in worst:
        idx = np.unravel_index(flat, err.shape)
        if err[idx] <= 0:
            break
        lines.append(f"  at {tuple(int(i) for i in idx)}: {names[0]}={float(a64[idx])!r} "
                     f"{names[1]}={float(b64[idx])!r}")
    raise AssertionError("\n".join(lines))


def assert_almost_equal_ignore_nan(a, b, rtol=None, atol=None, names=("a", "b")):
    """``assert_almost_equal`` after zeroing the positions where either side is NaN."""
    a, b = np.array(_as_numpy(a), copy=True), np.array(_as_numpy(b), copy=True)
    nan = np.isnan(a) | np.isnan(b) if a.dtype.kind == b.dtype.kind == "f" else None
    if nan is not None:
        a[nan], b[nan] = 0, 0
    assert_almost_equal(a, b, rtol, atol, names)


def assert_allclose(a, b, rtol=1e-07, atol=0, equal_nan=True):
    """numpy-style closeness check (MXNet 1.x's helper): ``assert_almost_equal`` with these
    defaults."""
    assert_almost_equal(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def get_rtol(rtol=None, dtype=np.dtype(np.float64)):
    """``rtol``, or the default relative tolerance of ``dtype``."""
    return default_rtols()[np.dtype(dtype)] if rtol is None else rtol


def get_atol(atol=None, dtype=np.dtype(np.float64)):
    """``atol``, or the default absolute tolerance of ``dtype``."""
    return default_atols()[np.dtype(dtype)] if atol is None else atol


def same(a, b) -> bool:
    """Exact equality of values and shapes."""
    return np.array_equal(_as_numpy(a), _as_numpy(b))


def assert_exception(f, exception_type, *args, **kwargs):
    """Assert that ``f(*args, **kwargs)`` raises ``exception_type``."""
    try:
        f(*args, **kwargs)
    except exception_type:
        return
    raise AssertionError(f"{getattr(f, '__name__', f)} did not raise {exception_type.__name__}")


def rand_shape_2d(dim0=10, dim1=10, allow_zero_size=False):
    """A random 2-d shape with dims in [1, dim0] and [1, dim1] (from 0 if allow_zero_size)."""
    low = 0 if allow_zero_size else 1
    return np.random.randint(low, dim0 + 1), np.random.randint(low, dim1 + 1)


def rand_shape_3d(dim0=10, dim1=10, dim2=10, allow_zero_size=False):
    """A random 3-d shape with dims in [1, dim_i] (from 0 if allow_zero_size)."""
    low = 0 if allow_zero_size else 1
    return (np.random.randint(low, dim0 + 1), np.random.randint(low, dim1 + 1),
            np.random.randint(low, dim2 + 1))


def rand_shape_nd(num_dim, dim=10, allow_zero_size=False):
    """A random ``num_dim``-d shape with dims in [1, dim] (from 0 if allow_zero_size)."""
    low = 0 if allow_zero_size else 1
    return tuple(np.random.randint(low, dim + 1, size=num_dim).tolist())


def random_arrays(*shapes):
    """Standard-normal float32 numpy arrays of the given shapes (one array if one shape)."""
    arrays = [np.array(np.random.randn(), dtype=np.float32) if len(s) == 0
              else np.random.randn(*s).astype(np.float32) for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def rand_ndarray(shape, stype="default", density=None, dtype=None, modifier_func=None,
                 shuffle_csr_indices=False, distribution=None, ctx=None):
    """A random NDArray (uniform in [0, 1)) of ``shape``; only dense storage is supported."""
    from . import ndarray as nd
    if stype != "default":
        raise HybridNetError(f"rand_ndarray: storage type {stype!r} is not supported")
    arr = np.random.uniform(size=shape)
    if modifier_func is not None:
        arr = modifier_func(arr)
    return nd.array(arr, ctx=ctx or default_context(), dtype=dtype or np.float32)


@contextmanager
def environment(*args):
    """Temporarily set environment variables: ``environment('X', '1')`` or a dict; None unsets."""
    if len(args) == 2:
        changes = {args[0]: args[1]}
    elif len(args) == 1 and isinstance(args[0], dict):
        changes = args[0]
    else:
        raise ValueError("environment() takes (name, value) or a dict")
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _eager_loss(fn, arrays, head, ctx):
    """sum(head * fn(arrays)) over every output in float64 (plain sums when ``head`` is None)."""
    from . import ndarray as nd
    outs = fn(*[nd.array(a, ctx=ctx, dtype=np.float64) for a in arrays])
    outs = [outs] if not isinstance(outs, (list, tuple)) else list(outs)
    head = head if head is not None else [1.0] * len(outs)
    return sum(float((o.asnumpy().astype(np.float64) * h).sum()) for o, h in zip(outs, head))


def _directional_grads(fn, location, eps, directions, head, ctx):
    """Derivatives of ``sum(head * fn(*location))`` along ``directions[i]`` for each input i, by
    central differences in float64."""
    out = []
    for i, v in enumerate(directions):
        plus = [a + eps * v if j == i else a for j, a in enumerate(location)]
        minus = [a - eps * v if j == i else a for j, a in enumerate(location)]
        out.append((_eager_loss(fn, plus, head, ctx) - _eager_loss(fn, minus, head, ctx))
                   / (2 * eps))
    return out


def default_dtype():
    """The dtype MXNet's test helpers default to: float32."""
    return np.float32


def numeric_grad(executor, location, aux_states=None, eps=1e-4, use_forward_train=True,
                 dtype=default_dtype()):
    """Numeric gradient of the sum of the first output by central differences (MXNet 1.x).

    ``executor`` is an Executor and ``location`` maps argument names to numpy arrays (all of
    them are copied in; ``aux_states`` likewise): returns ``{name: gradient}`` for every float
    argument, each element perturbed by +-eps/2 in turn, as MXNet computes it. ``executor`` may
    also be a Python function of NDArrays with ``location`` a list of arrays: then the list of
    gradients of ``sum(fn(*arrays))`` (all outputs), computed in float64.
    """
    from . import ndarray as nd
    if not hasattr(executor, "arg_dict"):
        if not callable(executor):
            raise TypeError(f"numeric_grad expects an Executor or a function, got "
                            f"{type(executor).__name__}")
        return _numeric_grad_eager(executor, location, eps)
    location = {k: np.array(_as_numpy(v), order="C") for k, v in location.items()}
    for k, v in location.items():
        executor.arg_dict[k][:] = nd.array(v, dtype=dtype)
    grads = {k: np.zeros(v.shape, dtype=dtype) for k, v in location.items()}

    def first_output_sum():
        for key, val in (aux_states or {}).items():
            executor.aux_dict[key][:] = nd.array(_as_numpy(val), dtype=dtype)
        executor.forward(is_train=use_forward_train)
        return executor.outputs[0].asnumpy()

    for k, v in location.items():
        if v.dtype.kind != "f":
            continue
        flat, target = v.reshape(-1), executor.arg_dict[k]
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps / 2.0
            target[:] = nd.array(v, dtype=dtype)
            f_plus = first_output_sum()
            flat[i] = old - eps / 2.0
            target[:] = nd.array(v, dtype=dtype)
            f_minus = first_output_sum()
            grads[k].reshape(-1)[i] = (f_plus - f_minus).sum() / eps
            flat[i] = old
        target[:] = nd.array(v, dtype=dtype)
    return grads


def _numeric_grad_eager(fn, location, eps):
    location = [np.array(_as_numpy(a), dtype=np.float64) for a in location]
    ctx = default_context()
    grads = []
    for i, a in enumerate(location):
        g = np.zeros(a.shape)
        for j in range(a.size):
            step = np.zeros(a.size)
            step[j] = eps
            plus = [b + step.reshape(a.shape) if k == i else b for k, b in enumerate(location)]
            minus = [b - step.reshape(a.shape) if k == i else b for k, b in enumerate(location)]
            g.reshape(-1)[j] = (_eager_loss(fn, plus, None, ctx)
                                - _eager_loss(fn, minus, None, ctx)) / (2 * eps)
        grads.append(g)
    return grads


def check_numeric_gradient(sym, location, aux_states=None, numeric_eps=1e-4, rtol=1e-3,
                           atol=None, grad_nodes=None, use_forward_train=True, ctx=None,
                           grad_stype_dict=None, dtype=np.float64, seed=None):
    """Compare autograd gradients with finite differences.

    ``sym`` is a Python function of NDArrays (the eager form) or a Symbol (then ``location``
    maps argument names to arrays). For a function, each input's gradient is checked along a
    random direction in float64; ``grad_nodes`` (indices) limits which inputs are checked.
    """
    from . import autograd
    from . import ndarray as nd
    if not callable(sym) or hasattr(sym, "list_arguments"):
        from .symbol.testing import check_numeric_gradient_symbol
        return check_numeric_gradient_symbol(sym, location, aux_states, numeric_eps, rtol, atol,
                                             grad_nodes, use_forward_train, ctx, dtype)
    ctx = ctx or default_context()
    rng = np.random.RandomState(seed)
    location = [np.asarray(_as_numpy(a), dtype=np.float64) for a in location]
    arrays = [nd.array(a, ctx=ctx, dtype=np.float64) for a in location]
    for a in arrays:
        a.attach_grad()
    with autograd.record(train_mode=use_forward_train):
        outs = sym(*arrays)
    outs = [outs] if not isinstance(outs, (list, tuple)) else list(outs)
    head = [rng.standard_normal(o.shape) for o in outs]
    autograd.backward(outs, [nd.array(h, ctx=ctx, dtype=o.dtype) for o, h in zip(outs, head)])
    which = range(len(arrays)) if grad_nodes is None else grad_nodes
    directions = []
    for a in location:
        v = rng.standard_normal(a.shape)
        directions.append(v / max(np.linalg.norm(v), 1e-12))
    numeric = _directional_grads(sym, location, numeric_eps, directions, head, ctx)
    atol = 1e-6 if atol is None else atol
    for i in which:
        analytic = float((arrays[i].grad.asnumpy() * directions[i]).sum())
        if not np.isclose(analytic, numeric[i], rtol=rtol, atol=atol):
            raise AssertionError(
                f"gradient of input {i} is wrong: along a random direction autograd gives "
                f"{analytic!r}, finite differences give {numeric[i]!r} (rtol={rtol}, atol={atol})")


_MNIST_FILES = {"train_data": "train-images-idx3-ubyte", "train_label": "train-labels-idx1-ubyte",
                "test_data": "t10k-images-idx3-ubyte", "test_label": "t10k-labels-idx1-ubyte"}


def get_mnist(path: str | None = None) -> dict:
    """MNIST as numpy arrays, read from local idx files -- never downloaded.

    Looks in ``path``, else in the directory set by ``HYBRIDNET_MNIST_DIR``, else in the current
    directory (where MXNet's ``get_mnist`` leaves its downloads), for the four files
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).

    Returns:
        dict with ``train_data`` / ``test_data`` (n, 1, 28, 28) float32 scaled to [0, 1]
        (pixel / 255, as MXNet's) and ``train_label`` / ``test_label`` (n,) int8.

    Example::

        >>> mnist = mx.test_utils.get_mnist('~/data/mnist')
        >>> mnist['train_data'].shape
        (60000, 1, 28, 28)
    """
    from . import config  # noqa: PLC0415
    from .io.mnist_iter import read_idx  # noqa: PLC0415 (io is optional for test_utils users)
    if path is not None:
        where = [os.path.expanduser(path)]
    elif config.get("HYBRIDNET_MNIST_DIR"):
        where = [os.path.expanduser(config.get("HYBRIDNET_MNIST_DIR"))]
    else:
        where = [os.getcwd()]
    out = {}
    for key, name in _MNIST_FILES.items():
        found = [os.path.join(d, name + ext) for d in where for ext in ("", ".gz")
                 if os.path.isfile(os.path.join(d, name + ext))]
        if not found:
            raise FileNotFoundError(
                f"get_mnist: {name} (or {name}.gz) not found in {', '.join(where)}; put the four "
                f"MNIST idx files there, or pass get_mnist(path=...) or set HYBRIDNET_MNIST_DIR "
                f"(hybridnet never downloads)")
        arr = read_idx(found[0])
        if key.endswith("data"):
            out[key] = (arr.reshape(arr.shape[0], 1, 28, 28).astype(np.float32) / 255)
        else:
            out[key] = arr.astype(np.int8)
    return out


# the symbolic helpers (MXNet 1.x names and signatures) live with the Symbol front end
from .symbol.testing import (check_consistency, check_speed,  # noqa: E402
                             check_symbolic_backward, check_symbolic_forward, simple_forward)

__all__ += ["check_symbolic_forward", "check_symbolic_backward", "check_consistency",
            "simple_forward", "check_speed"]
