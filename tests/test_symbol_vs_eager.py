"""Every operator test table (``CASES`` in tests/test_ops_*.py) run through the Symbol path.

For each case: build ``mx.sym.<op>`` over variables, bind it (memory planning, in-place reuse and
bulk execution included), run forward in inference mode and compare with the eager ``mx.nd.<op>``
call; then run forward in training mode and backward with random head gradients and compare
every input gradient with eager autograd. Both paths run the same registry kernels, so they must
agree to rounding; a disagreement points at the Executor (or at an operator's ``inplace`` /
``bwd_inputs`` hints). New operator families are covered as soon as their table lands.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.test_utils import assert_almost_equal
from op_harness import call


def _collect():
    cases = []
    for path in sorted(Path(__file__).parent.glob("test_ops_*.py")):
        module = importlib.import_module(path.stem)
        for case in getattr(module, "CASES", []):
            cases.append((f"{path.stem[len('test_ops_'):]}-{case}", case))
    return cases


_ALL = _collect()


def _sym_function(name):
    for ns in (mx.sym, mx.sym.op):
        if hasattr(ns, name):
            return getattr(ns, name)
    raise AttributeError(f"mx.sym has no function {name}")


def _layout(case, arrays):
    """(op, params, names of the case's inputs, how many of them are auxiliary states)."""
    op, p = case.parsed(arrays)
    return op, p, len(op.aux_names(p))


def _seed_if_random(op):
    if op.random:
        mx.random.seed(1234)


def _bind(case, arrays, n_aux, grad_req):
    variables = [mx.sym.var(f"in{i}") for i in range(len(arrays))]
    sym = _sym_function(case.op)(*variables, **case.params)
    nd_arrays = {f"in{i}": mx.nd.array(a, dtype=a.dtype) for i, a in enumerate(arrays)}
    arg_names, aux_names = sym.list_arguments(), sym.list_auxiliary_states()
    assert len(aux_names) == n_aux
    args = {n: nd_arrays[n] for n in arg_names}
    aux = {n: nd_arrays[n] for n in aux_names}
    grads = {n: mx.nd.zeros(args[n].shape, dtype=args[n].dtype) for n in arg_names
             if grad_req[n] != "null"}
    exe = sym.bind(mx.cpu(), args, args_grad=grads, grad_req=grad_req, aux_states=aux)
    return sym, exe


def _tol(case):
    return max(case.rtol, 1e-5), max(case.atol, 1e-6)


@pytest.mark.parametrize("case", [pytest.param(c, id=i) for i, c in _ALL])
def test_forward_matches_eager(case):
    arrays = case.arrays()
    op, p, n_aux = _layout(case, arrays)
    _seed_if_random(op)
    want = call(case, *[mx.nd.array(a, dtype=a.dtype) for a in arrays])
    want = want if isinstance(want, list) else [want]
    names = [f"in{i}" for i in range(len(arrays) - n_aux)]
    _, exe = _bind(case, arrays, n_aux, {n: "null" for n in names})
    _seed_if_random(op)
    got = exe.forward(is_train=False)
    assert len(got) == len(want)
    rtol, atol = _tol(case)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert_almost_equal(g.asnumpy(), w.asnumpy(), rtol=rtol, atol=atol, equal_nan=True)


def _grad_names(case, arrays, n_aux):
    """Inputs whose gradients are compared: float arguments (not aux), within grad_inputs."""
    n_args = len(arrays) - n_aux
    which = range(n_args) if case.grad_inputs is None else case.grad_inputs
    return [f"in{i}" for i in which if i < n_args and arrays[i].dtype.kind == "f"]


def _differentiable(case) -> bool:
    arrays = case.arrays()
    op, _, n_aux = _layout(case, arrays)
    return op.backward is not None and bool(_grad_names(case, arrays, n_aux))


@pytest.mark.parametrize("case", [pytest.param(c, id=i) for i, c in _ALL if _differentiable(c)])
def test_backward_matches_eager(case):
    arrays = case.arrays()
    op, p, n_aux = _layout(case, arrays)
    wanted = _grad_names(case, arrays, n_aux)
    rng = np.random.RandomState(case.seed + 7)
    # eager: autograd in training mode with random head gradients
    nd_in = [mx.nd.array(a, dtype=a.dtype) for a in arrays]
    for i, x in enumerate(nd_in):
        if f"in{i}" in wanted:
            x.attach_grad()
    _seed_if_random(op)
    with mx.autograd.record(train_mode=True):
        outs = call(case, *nd_in)
    outs = outs if isinstance(outs, list) else [outs]
    heads = [mx.nd.array(rng.standard_normal(o.shape), dtype=o.dtype) for o in outs]
    mx.autograd.backward(outs, heads)
    # symbolic: the same computation bound with grad_req write for the compared inputs
    reqs = {f"in{i}": ("write" if f"in{i}" in wanted else "null")
            for i in range(len(arrays) - n_aux)}
    _, exe = _bind(case, arrays, n_aux, reqs)
    _seed_if_random(op)
    got_outs = exe.forward(is_train=True)
    exe.backward(heads)
    rtol, atol = _tol(case)
    for g, w in zip(got_outs, outs):
        assert_almost_equal(g.asnumpy(), w.asnumpy(), rtol=rtol, atol=atol, equal_nan=True)
    for i, x in enumerate(nd_in):
        name = f"in{i}"
        if name in wanted:
            assert_almost_equal(exe.grad_dict[name].asnumpy(), x.grad.asnumpy(), rtol=rtol,
                                atol=atol, names=(f"executor d{name}", f"autograd d{name}"),
                                equal_nan=True)
