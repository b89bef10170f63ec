"""Typed operator parameters, parsed from Python values or from the strings a symbol JSON stores.

MXNet stores every parameter as the ``str()`` of what the user passed (``"(3, 3)"``, ``"True"``,
``"0.25"``); ``Param.parse`` accepts both forms and names the operator, the parameter and the bad
value when it cannot.
"""
from __future__ import annotations

import ast
from typing import Any

import numpy as np

from ..base import ParamError

__all__ = ["Param", "REQUIRED", "parse_dtype", "dtype_name", "DTYPE_NAMES"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()

# MXNet's dtype names (and numpy's spellings of them)
DTYPE_NAMES = ("float32", "float64", "float16", "uint8", "int8", "int32", "int64", "bool")
_DTYPE_ALIASES = {"bool_": "bool", "boolean": "bool", "float": "float32", "double": "float64",
                  "half": "float16", "int": "int32", "long": "int64"}


def parse_dtype(value, what: str = "dtype"):
    """A numpy dtype from a name, a numpy type or a dtype; None stays None."""
    if value is None or (isinstance(value, str) and value in ("None", "")):
        return None
    if isinstance(value, str):
        value = _DTYPE_ALIASES.get(value, value)
    try:
        dt = np.dtype(value)
    except TypeError:
        raise ParamError(f"{what}: {value!r} is not a dtype; expected one of "
                         f"{', '.join(DTYPE_NAMES)}") from None
    if dt.name not in DTYPE_NAMES:
        raise ParamError(f"{what}: dtype {dt.name} is not supported; expected one of "
                         f"{', '.join(DTYPE_NAMES)}")
    return dt


def dtype_name(dt) -> str:
    return np.dtype(dt).name


def _literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def _to_bool(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "1", "false", "0"):
        return v.strip().lower() in ("true", "1")
    raise ValueError("expected a boolean (True/False/1/0)")


def _to_int(v):
    if isinstance(v, str):
        v = _literal(v)
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    raise ValueError("expected an integer")


def _to_float(v):
    if isinstance(v, str):
        v = _literal(v)
        if isinstance(v, str):
            low = v.lower()
            if low in ("inf", "+inf", "infinity"):
                return float("inf")
            if low in ("-inf", "-infinity"):
                return float("-inf")
            if low == "nan":
                return float("nan")
    if isinstance(v, (bool, int, float, np.integer, np.floating)):
        return float(v)
    raise ValueError("expected a number")


def _to_tuple(v, conv):
    if isinstance(v, str):
        v = _literal(v)
        if isinstance(v, str):
            raise ValueError("expected a tuple such as (3, 3)")
    if isinstance(v, (list, tuple)):
        return tuple(conv(x) for x in v)
    if isinstance(v, np.ndarray):
        return tuple(conv(x) for x in v.tolist())
    return (conv(v),)


def _to_axis(v):
    """None, an int, or a tuple of ints (reductions' ``axis``)."""
    if isinstance(v, str):
        v = _literal(v)
    if v is None or v == ():
        return None if v is None else ()
    if isinstance(v, (list, tuple)):
        return tuple(_to_int(x) for x in v)
    return _to_int(v)


class Param:
    """One operator parameter.

    ``kind`` is one of: int, float, bool, str (``choices`` for an enum), shape (tuple of ints),
    floats (tuple of floats), axis (None, int or tuple), dtype, context, any. ``default`` is
    ``REQUIRED`` for required parameters; None means "optional, unset". ``optional=True`` lets
    ``None`` be given explicitly even when the default is not None.
    """
    __slots__ = ("name", "kind", "default", "doc", "choices", "optional")

    def __init__(self, name: str, kind: str, default: Any = REQUIRED, doc: str = "",
                 choices: tuple | None = None, optional: bool = False):
        self.name, self.kind, self.default, self.doc = name, kind, default, doc
        self.choices, self.optional = choices, optional

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def parse(self, op: str, value: Any) -> Any:
        """The typed value of ``value`` (Python value or JSON string); ParamError if bad."""
        if value is None or (isinstance(value, str) and value.strip() == "None"):
            if self.default is None or self.optional or self.kind in ("axis", "dtype", "any"):
                return None
            self._fail(op, value, "None is not allowed")
        try:
            kind = self.kind
            if kind == "int":
                out = _to_int(value)
            elif kind == "float":
                out = _to_float(value)
            elif kind == "bool":
                out = _to_bool(value)
            elif kind == "str":
                out = value if isinstance(value, str) else str(value)
                out = out.strip()
                if self.choices is not None:
                    if out not in self.choices:
                        raise ValueError(f"expected one of {', '.join(self.choices)}")
            elif kind == "shape":
                out = _to_tuple(value, _to_int)
            elif kind == "floats":
                out = _to_tuple(value, _to_float)
            elif kind == "axis":
                out = _to_axis(value)
            elif kind == "dtype":
                out = parse_dtype(value, f"{op}: parameter '{self.name}'")
            elif kind == "context":
                from ..context import Context
                out = Context.parse(value)
            elif kind == "any":
                out = value
            else:
                raise ValueError(f"unknown parameter kind {kind}")
        except ParamError:
            raise
        except (ValueError, TypeError) as err:
            self._fail(op, value, str(err))
        return out

    def _fail(self, op, value, why):
        raise ParamError(f"{op}: parameter '{self.name}' got {value!r}: {why}")

    def describe(self) -> str:
        if self.required:
            return f"{self.name} : {self.kind}, required"
        return f"{self.name} : {self.kind}, optional, default={self.default!r}"
