"""``mx.sym`` / ``mx.symbol``: the declarative Symbol API over the same registry operators.

Every registry operator is here as a function (``sym.FullyConnected``, ``sym.relu``); internal
ones (leading underscore) in ``sym._internal``, all of them in ``sym.op``; ``sym.random``,
``sym.linalg``, ``sym.contrib`` hold the namespaced ones. Plus ``var``/``Variable``, ``Group``,
``load``/``load_json``, constant nodes (``zeros, ones, full, arange``) and ``pow, power,
maximum, minimum, hypot`` that accept symbols or scalars::

    >>> data = mx.sym.var('data')
    >>> net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(data, num_hidden=10), name='softmax')
    >>> net.list_arguments()
    ['data', 'fullyconnected0_weight', 'fullyconnected0_bias', 'softmax_label']
"""
from __future__ import annotations

import numbers
import types

import numpy as np

from .. import ops as _ops  # noqa: F401  (registers every operator)
from ..ops.registry import get_op
from . import register as _register
from .compose import Group, create_op, var
from .executor import Executor
from .json import load, load_json
from .symbol import Symbol

Variable = var

op = types.ModuleType("hybridnet.symbol.op")
_internal = types.ModuleType("hybridnet.symbol._internal")
random = types.ModuleType("hybridnet.symbol.random")
linalg = types.ModuleType("hybridnet.symbol.linalg")
contrib = types.ModuleType("hybridnet.symbol.contrib")
_namespaces = {"op": op, "_internal": _internal, "random": random, "linalg": linalg,
               "contrib": contrib}


def _creation(op_name, hint, name, dtype, **params):
    params["dtype"] = np.dtype(dtype if dtype is not None else np.float32).name
    opdef = get_op(op_name)
    return create_op(opdef, opdef.parse_params(params), [], name=name, hint=hint)


def zeros(shape, dtype=None, name: str | None = None, **kwargs) -> Symbol:
    """A constant node of zeros (``_zeros``): ``mx.sym.zeros((2, 3))``."""
    return _creation("_zeros", "_zeros", name, dtype, shape=shape, **kwargs)


def ones(shape, dtype=None, name: str | None = None, **kwargs) -> Symbol:
    """A constant node of ones (``_ones``)."""
    return _creation("_ones", "_ones", name, dtype, shape=shape, **kwargs)


def full(shape, val, dtype=None, name: str | None = None, **kwargs) -> Symbol:
    """A constant node filled with ``val`` (``_full``)."""
    return _creation("_full", "_full", name, dtype, shape=shape, value=val, **kwargs)


def arange(start, stop=None, step=1.0, repeat=1, infer_range=False, name: str | None = None,
           dtype=None) -> Symbol:
    """Evenly spaced values in [start, stop) (``_arange``), each repeated ``repeat`` times."""
    return _creation("_arange", "_arange", name, dtype, start=start, stop=stop, step=step,
                     repeat=repeat, infer_range=infer_range)


def linspace(start, stop, num, endpoint=True, name: str | None = None, dtype=None) -> Symbol:
    """``num`` evenly spaced values from start to stop (``_linspace``)."""
    return _creation("_linspace", "_linspace", name, dtype, start=start, stop=stop, num=num,
                     endpoint=endpoint)


def eye(N, M=0, k=0, dtype=None, name: str | None = None, **kwargs) -> Symbol:
    """A constant 2-D node with ones on the k-th diagonal (``_eye``)."""
    return _creation("_eye", "_eye", name, dtype, N=N, M=M, k=k, **kwargs)


def split_v2(ary, indices_or_sections, axis: int = 0, squeeze_axis: bool = False) -> Symbol:
    """Split ``ary`` into ``indices_or_sections`` equal pieces (an int) or at the given split
    points (a tuple): MXNet's wrapper over ``_split_v2``, also the ``Symbol.split_v2`` method."""
    if isinstance(indices_or_sections, numbers.Integral) and \
            not isinstance(indices_or_sections, bool):
        indices, sections = [], int(indices_or_sections)
    elif isinstance(indices_or_sections, (tuple, list)):
        indices, sections = [0] + [int(i) for i in indices_or_sections], 0
    else:
        raise TypeError(f"split_v2: indices_or_sections must be an int or a tuple of ints, got "
                        f"{type(indices_or_sections).__name__}")
    opdef = get_op("_split_v2")     # lists, not tuples: the JSON stores "[0, 1, 3]" like MXNet
    p = opdef.parse_params({"indices": indices, "axis": axis, "squeeze_axis": squeeze_axis,
                            "sections": sections})
    return create_op(opdef, p, [ary], hint="_split_v2")


Symbol.split_v2 = split_v2


def _is_scalar(x) -> bool:
    return isinstance(x, numbers.Number) or (isinstance(x, np.generic) and np.ndim(x) == 0)


def _two_way(lhs, rhs, op_name, hint, scalar_name, scalar_hint, rscalar_name, rscalar_hint,
             python_fn):
    """One binary helper for symbols and scalars in either position."""
    if isinstance(lhs, Symbol) and isinstance(rhs, Symbol):
        opdef = get_op(op_name)
        return create_op(opdef, opdef.default_params, [lhs, rhs], hint=hint)
    if isinstance(lhs, Symbol) and _is_scalar(rhs):
        opdef = get_op(scalar_name)
        return create_op(opdef, opdef.parse_params({"scalar": rhs}), [lhs], hint=scalar_hint)
    if _is_scalar(lhs) and isinstance(rhs, Symbol):
        opdef = get_op(rscalar_name)
        return create_op(opdef, opdef.parse_params({"scalar": lhs}), [rhs], hint=rscalar_hint)
    if _is_scalar(lhs) and _is_scalar(rhs):
        return python_fn(lhs, rhs)
    raise TypeError(f"expected Symbols or numbers, got {type(lhs).__name__} and "
                    f"{type(rhs).__name__}")


def pow(base, exp):  # noqa: A001  (MXNet's name)
    """``base ** exp`` for symbols and/or scalars (same shapes for two symbols)."""
    return _two_way(base, exp, "_power", "_power", "_power_scalar", "_powerscalar",
                    "_rpower_scalar", "_rpowerscalar", lambda a, b: a ** b)


power = pow


def maximum(left, right):
    """Elementwise maximum of symbols and/or scalars."""
    return _two_way(left, right, "_maximum", "_maximum", "_maximum_scalar", "_maximumscalar",
                    "_maximum_scalar", "_maximumscalar", lambda a, b: a if a > b else b)


def minimum(left, right):
    """Elementwise minimum of symbols and/or scalars."""
    return _two_way(left, right, "_minimum", "_minimum", "_minimum_scalar", "_minimumscalar",
                    "_minimum_scalar", "_minimumscalar", lambda a, b: a if a < b else b)


def hypot(left, right):
    """Elementwise sqrt(left**2 + right**2) of symbols and/or scalars."""
    return _two_way(left, right, "_hypot", "_hypot", "_hypot_scalar", "_hypotscalar",
                    "_hypot_scalar", "_hypotscalar", lambda a, b: float(np.hypot(a, b)))


def publish(op_name: str) -> None:
    """Expose an operator registered after import (CustomOp does this)."""
    _register.publish(globals(), _namespaces, op_name, get_op(op_name))


_register.populate(globals(), _namespaces)
from . import sampling as _sampling  # noqa: E402
for _name in _sampling.__all__:       # MXNet's Python samplers over _random_* / _sample_* nodes
    random.__dict__[_name] = getattr(_sampling, _name)
from . import fluent as _fluent  # noqa: E402
_fluent.attach()

__all__ = ["Symbol", "Executor", "var", "Variable", "Group", "load", "load_json", "zeros",
           "ones", "full", "arange", "linspace", "eye", "split_v2", "pow", "power", "maximum", "minimum", "hypot", "op",
           "random", "linalg", "contrib", "publish"]
