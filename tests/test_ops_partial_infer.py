"""Shape inference with unknowns, for every case of the core tensor operator tables.

The Symbol front end calls ``infer_shape`` with unknown inputs (None) and unknown dims (0): it
must never crash, must agree with the full answer wherever it gives one, and must give the full
answer once everything is known again.
"""
import importlib

import numpy as np
import pytest

from hybridnet.ops import get_op

_MODULES = ("test_ops_elemwise", "test_ops_reduce", "test_ops_shape", "test_ops_index",
            "test_ops_linalg")
_CASES = [(f"{m[len('test_ops_'):]}-{c}", c) for m in _MODULES
          for c in importlib.import_module(m).CASES]


def _setup(case):
    arrays = case.arrays()
    return (*case.parsed(arrays), [a.shape for a in arrays])


def _agrees(partial, full):
    """A partial shape agrees with the full one where it says anything."""
    if partial is None:
        return True
    return len(partial) == len(full) and all(p in (0, f) for p, f in zip(partial, full))


@pytest.mark.parametrize("name, case", _CASES, ids=[n for n, _ in _CASES])
def test_unknown_inputs_and_dims(name, case):
    op, p, shapes = _setup(case)
    _, full, _ = op.infer_shape(p, list(shapes))
    # every input unknown
    _, outs, _ = op.infer_shape(p, [None] * len(shapes))
    assert len(outs) == len(full)
    assert all(_agrees(o, f) for o, f in zip(outs, full)), (outs, full)
    # one input unknown at a time; then each input with its first dim unknown
    for i in range(len(shapes)):
        for partial in (None, tuple(0 if j == 0 else d for j, d in enumerate(shapes[i]))):
            trial = list(shapes)
            trial[i] = partial
            ins, outs, _ = op.infer_shape(p, trial)
            assert all(_agrees(o, f) for o, f in zip(outs, full)), (trial, outs, full)
            assert all(_agrees(s, t) for s, t in zip(ins, shapes)), (trial, ins)


def test_unknown_dims_propagate():
    reshape = get_op("Reshape")
    assert reshape.infer_shape(reshape.parse_params({"shape": (0, -1)}), [(0, 3, 4)])[1] == \
        [(0, 12)]
    dot = get_op("dot")
    assert dot.infer_shape(dot.parse_params({}), [(0, 8), (8, 4)])[1] == [(0, 4)]
    concat = get_op("Concat")
    ins, outs, _ = concat.infer_shape(concat.parse_params({"num_args": 2, "dim": 0}),
                                      [(0, 3), (2, 3)])
    assert ins == [(0, 3), (2, 3)] and outs == [(0, 3)]
    take = get_op("take")
    assert take.infer_shape(take.parse_params({}), [(10, 0), (0, 5)])[1] == [(0, 5, 0)]
    assert np.prod(get_op("sum").infer_shape(get_op("sum").parse_params({"axis": 0}),
                                             [(0, 7)])[1][0]) == 7


@pytest.mark.parametrize("name, case", _CASES, ids=[n for n, _ in _CASES])
def test_unknown_input_types(name, case):
    op, p, _ = _setup(case)
    types = [a.dtype for a in case.arrays()]
    _, full, _ = op.infer_type(p, list(types))
    assert all(t is not None for t in full)
    for i in range(len(types)):
        trial = list(types)
        trial[i] = None
        ins, outs, _ = op.infer_type(p, trial)
        assert all(o is None or np.dtype(o) == np.dtype(f) for o, f in zip(outs, full))
        assert all(s is None or np.dtype(s) == np.dtype(t) for s, t in zip(ins, types))
    _, outs, _ = op.infer_type(p, [None] * len(types))
    assert all(o is None or np.dtype(o) == np.dtype(f) for o, f in zip(outs, full))
