"""Fluent methods: ``x.sum(axis=1)`` is ``sym.sum(x, axis=1)``, for MXNet's list of operators.

The same method list as NDArray's, attached from the registry; methods Symbol defines itself
(``reshape``, ``astype``) are never replaced.
"""
from __future__ import annotations

from ..ndarray.fluent import FLUENT_METHODS
from ..ops.registry import find_op
from .symbol import Symbol

__all__ = ["attach"]


def _method(op_name):
    def method(self, *args, **kwargs):
        from . import op as ops_namespace
        return ops_namespace.__dict__[op_name](self, *args, **kwargs)
    method.__name__ = op_name
    method.__doc__ = f"Same as ``mx.sym.{op_name}(self, ...)``."
    return method


def attach() -> None:
    """Add every fluent method whose operator is registered."""
    for name in FLUENT_METHODS:
        if name in Symbol.__dict__ or find_op(name) is None:
            continue
        setattr(Symbol, name, _method(name))
