"""Errors and small shared helpers.

Every error hybridnet raises on purpose is a ``HybridNetError`` (alias ``MXNetError``) or one of
its subclasses; the subclasses also inherit the Python built-in that fits, so ``except ValueError``
keeps working for code written against MXNet 1.7+.
"""
from __future__ import annotations

__all__ = ["HybridNetError", "MXNetError", "ShapeError", "DTypeError", "ParamError",
           "EngineError", "NotReadyError", "shape_str"]


class HybridNetError(Exception):
    """Base class of every error raised by hybridnet."""


MXNetError = HybridNetError


class ShapeError(HybridNetError, ValueError):
    """A shape does not fit what an operator or graph expects.

    ``op`` names the operator, ``node`` the graph node (or None when eager), ``detail`` says what
    and where. ``with_node`` re-labels the error with a graph node name, keeping the detail.
    """

    def __init__(self, op: str, detail: str, node: str | None = None):
        self.op, self.detail, self.node = op, detail, node
        where = f"{op} '{node}'" if node else op
        super().__init__(f"{where}: {detail}")

    def with_node(self, node: str) -> "ShapeError":
        err = ShapeError(self.op, self.detail, node)
        err.__cause__ = self.__cause__
        return err


class DTypeError(HybridNetError, TypeError):
    """A dtype does not fit what an operator expects."""


class ParamError(HybridNetError, ValueError):
    """An operator parameter is unknown, missing or has a bad value."""


class EngineError(HybridNetError, RuntimeError):
    """The dependency engine was misused (e.g. pushing after shutdown)."""


class NotReadyError(HybridNetError, RuntimeError):
    """Raised by internal code that reads an array before the engine produced it."""


def shape_str(shape) -> str:
    """Render a shape the way error messages show it: ``(32, 784)``."""
    if shape is None:
        return "unknown"
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"
