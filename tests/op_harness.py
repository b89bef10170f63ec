"""Table-driven operator tests (STYLE.md rule 7).

A test module lists ``OpCase`` rows -- the operator, its inputs, parameters and a numpy
reference -- and parametrizes the generic checks over them:

* ``check_forward``: ``nd.<op>`` against the numpy reference;
* ``check_gradient``: autograd against finite differences (float64, random directions);
* ``check_infer_shape``: the registry's shape inference gives the reference's output shapes;
* ``check_symbolic`` (once the Symbol front end exists): bind/forward/backward agree with eager.

Seeds are fixed per case and printed on failure through the case id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import hybridnet as mx
from hybridnet.test_utils import assert_almost_equal, check_numeric_gradient


@dataclass
class OpCase:
    """One operator call and its numpy reference.

    ``inputs`` are numpy arrays, or shapes (filled from a normal distribution, or by ``init``).
    ``ref(*inputs, **params)`` returns the expected output (or a list of them).
    ``grad`` False skips the gradient check (non-differentiable ops); ``grad_inputs`` limits
    which inputs are checked (e.g. not integer indices).
    """
    op: str
    inputs: list
    params: dict = field(default_factory=dict)
    ref: Callable | None = None
    grad: bool = True
    grad_inputs: list | None = None
    dtype: Any = np.float32
    rtol: float = 1e-5
    atol: float = 1e-6
    grad_rtol: float = 1e-3
    grad_atol: float = 1e-6
    init: Callable | None = None
    id: str = ""
    seed: int = 0

    def arrays(self):
        rng = np.random.RandomState(self.seed)
        out = []
        for i, x in enumerate(self.inputs):
            if isinstance(x, tuple):
                arr = self.init(rng, i, x) if self.init else rng.standard_normal(x)
                out.append(np.asarray(arr).astype(self.dtype))
            else:
                out.append(np.asarray(x))
        return out

    def parsed(self, arrays):
        """(the registry operator, its parsed params) for a call on ``arrays`` -- a variadic
        operator's input count filled in when the case leaves it out."""
        from hybridnet.ops import get_op
        op = get_op(self.op)
        params = dict(self.params)
        if op.variadic is not None and op.variadic not in params:
            params[op.variadic] = len(arrays)
        return op, op.parse_params(params)

    def __str__(self):
        return self.id or f"{self.op}{self.params}"


def call(case: OpCase, *nd_inputs):
    fn = _nd_function(case.op)
    return fn(*nd_inputs, **case.params)


def _nd_function(name):
    for ns in (mx.nd, mx.nd.op):
        if hasattr(ns, name):
            return getattr(ns, name)
    raise AttributeError(f"mx.nd has no function {name}")


def check_forward(case: OpCase):
    arrays = case.arrays()
    got = call(case, *[mx.nd.array(a, dtype=a.dtype) for a in arrays])
    want = case.ref(*arrays, **case.params)
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, (list, tuple)) else [want]
    assert len(got) == len(want), f"{case}: {len(got)} outputs, reference has {len(want)}"
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape, f"{case}: shape {g.shape}, reference {w.shape}"
        assert_almost_equal(g.asnumpy(), w, rtol=case.rtol, atol=case.atol)


def check_gradient(case: OpCase):
    arrays = case.arrays()
    which = case.grad_inputs
    fixed = {}
    if which is not None:
        fixed = {i: a for i, a in enumerate(arrays) if i not in which}

    def fn(*xs):
        full, it = [], iter(xs)
        for i in range(len(arrays)):
            full.append(mx.nd.array(fixed[i], dtype=fixed[i].dtype) if i in fixed else next(it))
        return call(case, *full)
    varying = [a.astype(np.float64) for i, a in enumerate(arrays) if i not in fixed]
    check_numeric_gradient(fn, varying, rtol=case.grad_rtol, atol=case.grad_atol, seed=case.seed)


def check_infer_shape(case: OpCase):
    arrays = case.arrays()
    op, p = case.parsed(arrays)
    n_aux = len(op.aux_names(p))
    args = arrays[:len(arrays) - n_aux] if n_aux else arrays
    _, out_shapes, _ = op.infer_shape(p, [a.shape for a in args])
    want = case.ref(*arrays, **case.params)
    want = want if isinstance(want, (list, tuple)) else [want]
    n_vis = len(op.output_names(p))
    assert [tuple(s) for s in out_shapes[:n_vis]] == [np.asarray(w).shape for w in want]


def table_tests(cases: list) -> tuple:
    """The three tests every operator table gets, parametrized over ``cases``:
    ``test_forward``, ``test_gradient`` (the cases with ``grad=True``) and ``test_infer_shape``.

    A test module binds them to its own names so pytest collects them there::

        test_forward, test_gradient, test_infer_shape = table_tests(CASES)
    """
    import pytest

    @pytest.mark.parametrize("case", cases, ids=str)
    def test_forward(case):
        check_forward(case)

    @pytest.mark.parametrize("case", [c for c in cases if c.grad], ids=str)
    def test_gradient(case):
        check_gradient(case)

    @pytest.mark.parametrize("case", cases, ids=str)
    def test_infer_shape(case):
        check_infer_shape(case)

    return test_forward, test_gradient, test_infer_shape
