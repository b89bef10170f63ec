"""Symbolic test helpers with MXNet 1.x's signatures (re-exported by ``mx.test_utils``).

``check_symbolic_forward`` / ``check_symbolic_backward`` compare an executor's outputs and
gradients with expected numpy arrays; ``check_numeric_gradient_symbol`` compares them with finite
differences (float64, along random directions); ``check_consistency`` runs one symbol on several
devices (cpu(0) vs cpu(1), or cpu vs gpu) and compares; ``simple_forward`` is a one-call forward.
"""
from __future__ import annotations

import numpy as np

from ..context import Context, cpu

__all__ = ["check_symbolic_forward", "check_symbolic_backward", "check_numeric_gradient_symbol",
           "check_consistency", "simple_forward"]


def _np(x):
    return x.asnumpy() if hasattr(x, "asnumpy") else np.asarray(x)


def _by_name(values, names: list[str], what: str) -> dict:
    """A dict name -> value from a list (in ``names`` order) or a dict."""
    if values is None:
        return {}
    if isinstance(values, dict):
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(f"{what} names {', '.join(unknown)}, which are not among "
                             f"{', '.join(names)}")
        return dict(values)
    values = list(values)
    if len(values) != len(names):
        raise ValueError(f"{what} has {len(values)} entries for {len(names)} names "
                         f"({', '.join(names)})")
    return dict(zip(names, values))


def _ctx(ctx):
    from ..test_utils import default_context
    return ctx or default_context()


def _nd(value, ctx, dtype):
    from .. import ndarray as nd
    arr = _np(value)
    return nd.array(arr, ctx=ctx, dtype=dtype if dtype is not None else arr.dtype)


def _bind(sym, location, aux_states, ctx, grad_req, dtype, grads=None):
    names = sym.list_arguments()
    loc = _by_name(location, names, "location")
    missing = [n for n in names if n not in loc]
    if missing:
        raise ValueError(f"location lacks arrays for {', '.join(missing)}")
    args = {k: _nd(v, ctx, dtype) for k, v in loc.items()}
    aux = {k: _nd(v, ctx, dtype) for k, v in
           _by_name(aux_states, sym.list_auxiliary_states(), "aux_states").items()}
    if grads is None:
        from .. import ndarray as nd
        grads = {k: nd.zeros(a.shape, ctx, a._data.dtype) for k, a in args.items()}
    return sym.bind(ctx, args, args_grad=grads, grad_req=grad_req, aux_states=aux)


def _compare(got, want, rtol, atol, names, equal_nan):
    from ..test_utils import assert_almost_equal
    assert_almost_equal(got, want, rtol=rtol, atol=atol, names=names, equal_nan=equal_nan)


def check_symbolic_forward(sym, location, expected, rtol=None, atol=None, aux_states=None,
                           ctx=None, equal_nan=False, dtype=np.float32):
    """Bind ``sym`` to ``location``, run forward (inference) and compare with ``expected``.

    Args:
        location: argument values, a list in ``list_arguments`` order or a dict.
        expected: output values, a list or a dict by output name.
    Returns:
        The outputs as numpy arrays.
    """
    ctx = _ctx(ctx)
    exe = _bind(sym, location, aux_states, ctx, "null", dtype)
    outputs = [o.asnumpy() for o in exe.forward(is_train=False)]
    want = _by_name(expected, sym.list_outputs(), "expected")
    for name, got in zip(sym.list_outputs(), outputs):
        if name in want:
            _compare(got, _np(want[name]), rtol, atol, (f"output {name}", "expected"), equal_nan)
    return outputs


def check_symbolic_backward(sym, location, out_grads, expected, rtol=None, atol=None,
                            aux_states=None, grad_req="write", ctx=None, grad_stypes=None,
                            equal_nan=False, dtype=np.float32):
    """Run forward (training) and backward with ``out_grads``; compare gradients with ``expected``.

    With ``grad_req='add'`` the gradient buffers start from random values and must end at
    those values plus ``expected``.

    Returns:
        ``{argument name: gradient as numpy}``.
    """
    from .. import ndarray as nd
    ctx = _ctx(ctx)
    names = sym.list_arguments()
    want = _by_name(expected, names, "expected")
    reqs = grad_req if isinstance(grad_req, dict) else {n: grad_req for n in names}
    rng = np.random.RandomState(0)
    initial, grads = {}, {}
    for name in names:
        loc = _np(_by_name(location, names, "location")[name])
        start = rng.standard_normal(loc.shape) if reqs.get(name) == "add" else np.zeros(loc.shape)
        initial[name] = start.astype(dtype if dtype is not None else loc.dtype)
        grads[name] = nd.array(initial[name], ctx=ctx, dtype=initial[name].dtype)
    exe = _bind(sym, location, aux_states, ctx, reqs, dtype, grads)
    exe.forward(is_train=True)
    if out_grads is not None:
        og = _by_name(out_grads, sym.list_outputs(), "out_grads")
        out_grads = [None if og.get(n) is None else _nd(og[n], ctx, dtype)
                     for n in sym.list_outputs()]
    exe.backward(out_grads)
    result = {}
    for name in names:
        g = exe.grad_dict[name]
        if g is None:
            continue
        result[name] = g.asnumpy()
        if name in want:
            target = _np(want[name]) + (initial[name] if reqs.get(name) == "add" else 0)
            _compare(result[name], target, rtol, atol, (f"gradient of {name}", "expected"),
                     equal_nan)
    return result


def check_numeric_gradient_symbol(sym, location, aux_states=None, numeric_eps=1e-4, rtol=1e-3,
                                  atol=None, grad_nodes=None, use_forward_train=True, ctx=None,
                                  dtype=np.float64):
    """Executor gradients of ``sym`` against central finite differences (float64).

    The scalar differentiated is ``sum(head_i * output_i)`` with random heads; each argument in
    ``grad_nodes`` (names, or a dict name -> grad_req; default every argument) is checked along
    a random direction, so a failure names the argument whose gradient is wrong.
    """
    from .. import ndarray as nd
    ctx = _ctx(ctx)
    names = sym.list_arguments()
    loc = {k: _np(v).astype(np.float64) for k, v in _by_name(location, names,
                                                              "location").items()}
    aux = {k: _np(v).astype(np.float64) for k, v in
           _by_name(aux_states, sym.list_auxiliary_states(), "aux_states").items()}
    check = list(grad_nodes) if grad_nodes is not None else list(names)
    reqs = {n: ("write" if n in check else "null") for n in names}
    exe = _bind(sym, loc, aux, ctx, reqs, np.float64)
    rng = np.random.RandomState(0)
    outputs = exe.forward(is_train=use_forward_train)
    heads = [rng.standard_normal(o.shape) for o in outputs]
    exe.backward([nd.array(h, ctx=ctx, dtype=np.float64) for h in heads])
    analytic = {n: exe.grad_dict[n].asnumpy() for n in check}

    def objective(values):
        for name, value in values.items():
            exe.arg_dict[name][:] = value
        for name, value in aux.items():        # forward in training mode may update aux
            exe.aux_dict[name][:] = value
        outs = exe.forward(is_train=use_forward_train)
        return sum(float((o.asnumpy() * h).sum()) for o, h in zip(outs, heads))

    atol = 1e-6 if atol is None else atol
    for name in check:
        v = rng.standard_normal(loc[name].shape)
        v /= max(np.linalg.norm(v), 1e-12)
        plus = dict(loc, **{name: loc[name] + numeric_eps * v})
        minus = dict(loc, **{name: loc[name] - numeric_eps * v})
        numeric = (objective(plus) - objective(minus)) / (2 * numeric_eps)
        got = float((analytic[name] * v).sum())
        if not np.isclose(got, numeric, rtol=rtol, atol=atol):
            raise AssertionError(
                f"gradient of argument '{name}' is wrong: along a random direction the "
                f"executor gives {got!r}, finite differences give {numeric!r} (rtol={rtol}, "
                f"atol={atol})")


_DTYPE_TOL = {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 1e-3,
              np.dtype(np.float64): 1e-5, np.dtype(np.uint8): 0, np.dtype(np.int32): 0,
              np.dtype(np.int64): 0}


def _tolerances(value, default):
    """Per-dtype tolerances from a number, a dict dtype -> number, or None (the defaults)."""
    tols = dict(default)
    if isinstance(value, dict):
        tols.update({np.dtype(k): v for k, v in value.items()})
    elif value is not None:
        tols = {k: value for k in tols}
    return tols


def check_consistency(sym, ctx_list, scale=1.0, grad_req="write", arg_params=None,
                      aux_params=None, rtol=None, atol=None, raise_on_err=True, ground_truth=None,
                      equal_nan=False, use_uniform=False, rand_type=np.float64, *, tol=None):
    """Run ``sym`` (or one symbol per entry) on every context of ``ctx_list`` and compare.

    Each entry is a dict: ``{'ctx': mx.cpu(0), 'data': (2, 3), 'type_dict': {...}}``. Parameters
    are random (shared by all runs), then forward (training) and backward with the same random
    head gradients; outputs and gradients are compared with the most precise run, to ``rtol``
    and ``atol`` (MXNet 1.9's names; each a number or a dict dtype -> tolerance, default by
    dtype). ``tol`` (older MXNet 1.x) sets both.

    Returns:
        The ground truth: ``{name: numpy array}`` of outputs and gradients of the most precise run.
    """
    from .. import ndarray as nd
    if not ctx_list:
        raise ValueError("check_consistency needs at least one context in ctx_list")
    syms = list(sym) if isinstance(sym, (list, tuple)) else [sym] * len(ctx_list)
    if len(syms) != len(ctx_list):
        raise ValueError(f"{len(syms)} symbols for {len(ctx_list)} contexts")
    rtols = _tolerances(rtol if rtol is not None else tol, _DTYPE_TOL)
    atols = _tolerances(atol if atol is not None else tol, _DTYPE_TOL)
    exes = []
    for s, spec in zip(syms, ctx_list):
        spec = dict(spec)
        ctx = spec.pop("ctx")
        if not isinstance(ctx, Context):
            raise TypeError(f"ctx_list entries need a Context under 'ctx', got {ctx!r}")
        type_dict = spec.pop("type_dict", None)
        exes.append(s.simple_bind(ctx, grad_req=grad_req, type_dict=type_dict, **spec))
    precision = [max(np.dtype(a._data.dtype).itemsize for a in e.arg_arrays) if e.arg_arrays
                 else 0 for e in exes]
    best = int(np.argmax(precision))
    rng = np.random.RandomState(0)
    arg_values = {}
    for name, arr in exes[best].arg_dict.items():
        if arg_params is not None and name in arg_params:
            arg_values[name] = _np(arg_params[name])
        elif use_uniform:
            arg_values[name] = rng.uniform(-scale, scale, arr.shape).astype(rand_type)
        else:
            arg_values[name] = (rng.standard_normal(arr.shape) * scale).astype(rand_type)
    aux_values = {name: _np(aux_params[name]) if aux_params and name in aux_params
                  else np.zeros(arr.shape) for name, arr in exes[best].aux_dict.items()}
    for exe in exes:
        for name, arr in exe.arg_dict.items():
            arr[:] = arg_values[name].astype(arr._data.dtype)
        for name, arr in exe.aux_dict.items():
            arr[:] = aux_values[name].astype(arr._data.dtype)
    outputs = [[o.asnumpy() for o in exe.forward(is_train=True)] for exe in exes]
    heads = [rng.standard_normal(o.shape) * scale for o in outputs[best]]
    for exe in exes:
        if grad_req != "null":
            exe.backward([nd.array(h, ctx=exe._ctx, dtype=o._data.dtype)
                          for h, o in zip(heads, exe.outputs)])
    truth = {}
    for name, value in zip(syms[best].list_outputs(), outputs[best]):
        truth[name] = value
    for name, g in exes[best].grad_dict.items():
        if g is not None:
            truth[name + "_grad"] = g.asnumpy()
    if ground_truth is not None:
        truth.update({k: _np(v) for k, v in ground_truth.items()})
    errors = []
    for i, exe in enumerate(exes):
        if i == best:
            continue
        found = dict(zip(syms[i].list_outputs(), outputs[i]))
        found.update({n + "_grad": g.asnumpy() for n, g in exe.grad_dict.items()
                      if g is not None})
        for name, want in truth.items():
            got = found.get(name)
            if got is None:
                continue
            dt = np.dtype(got.dtype)
            try:
                _compare(got, want, rtols.get(dt, 1e-3), atols.get(dt, 1e-3),
                         (f"{name} on {ctx_list[i]['ctx']}",
                                           f"{name} on {ctx_list[best]['ctx']}"), equal_nan)
            except AssertionError as err:
                errors.append(str(err))
    if errors and raise_on_err:
        raise AssertionError("check_consistency found differences:\n" + "\n".join(errors))
    return truth


def simple_forward(sym, ctx=None, is_train=False, **inputs):
    """Bind ``sym`` to the numpy ``inputs``, run forward, return numpy output(s)."""
    ctx = ctx or cpu()
    exe = _bind(sym, inputs, None, ctx, "null", np.float32)
    outputs = [o.asnumpy() for o in exe.forward(is_train=is_train)]
    return outputs[0] if len(outputs) == 1 else outputs


def check_speed(sym, location=None, ctx=None, N=20, grad_req=None, typ="whole", **kwargs):
    """Seconds per iteration of ``sym``: forward + backward (``typ='whole'``, the outputs as
    head gradients) or forward only (``typ='forward'``), after one warm-up run (MXNet 1.x).

    ``location`` maps argument names to numpy arrays (random normal values when None; then
    ``kwargs`` give the shapes to ``simple_bind``).
    """
    import time

    from ..ndarray import waitall
    if typ not in ("whole", "forward"):
        raise ValueError(f"check_speed: typ must be 'whole' or 'forward', got {typ!r}")
    ctx = ctx or cpu()
    grad_req = grad_req or "write"
    if location is None:
        exe = sym.simple_bind(ctx, grad_req=grad_req, **kwargs)
        location = {k: np.random.normal(size=a.shape) for k, a in exe.arg_dict.items()}
    else:
        exe = sym.simple_bind(ctx, grad_req=grad_req,
                              **{k: np.shape(v) for k, v in location.items()})
    for name, value in location.items():
        exe.arg_dict[name][:] = np.asarray(_np(value)).astype(exe.arg_dict[name]._data.dtype)

    def step():
        exe.forward(is_train=typ == "whole")
        if typ == "whole":
            exe.backward(out_grads=exe.outputs)
    step()
    waitall()
    tic = time.time()
    for _ in range(N):
        step()
    waitall()
    return (time.time() - tic) / N
