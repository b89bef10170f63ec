"""``mx.nd``: the eager NDArray API.

Every registry operator is here as a function (``nd.relu``, ``nd.FullyConnected``); internal
ones (leading underscore) are in ``nd._internal``, all of them in ``nd.op``; namespaced ones in
``nd.random``, ``nd.linalg``, ``nd.contrib``.
"""
from __future__ import annotations

import types

from .. import ops as _ops  # noqa: F401  (registers every operator)
from . import register as _register
from . import fluent as _fluent
from .creation import arange, eye, from_dlpack, from_numpy, full, linspace, moveaxis, ones, zeros
from .ndarray import NDArray, array, call_op, empty, waitall
from .ndarray import (add, divide, equal, greater, greater_equal, lesser, lesser_equal,
                      logical_and, logical_or, logical_xor, maximum, minimum, modulo, multiply,
                      not_equal, power, subtract, to_dlpack_for_read, to_dlpack_for_write,
                      true_divide)
from .serialization import load, load_frombuffer, save
from . import random  # noqa: E402  (mx.nd.random: needs the registry functions)
from .utils_ops import concatenate, onehot_encode, split_v2

op = types.ModuleType("hybridnet.ndarray.op")
_internal = types.ModuleType("hybridnet.ndarray._internal")
_namespaces = {"op": op, "_internal": _internal}
_register.populate(globals(), _namespaces)
_fluent.attach()


def publish(op_name: str) -> None:
    """Expose an operator registered after import (CustomOp does this)."""
    from ..ops.registry import get_op
    _register.publish(globals(), _namespaces, op_name, get_op(op_name))
    _fluent.attach()


__all__ = ["NDArray", "array", "empty", "zeros", "ones", "full", "arange", "linspace", "eye",
           "from_numpy", "from_dlpack", "to_dlpack_for_read", "to_dlpack_for_write", "add",
           "subtract", "multiply", "divide", "true_divide", "modulo",
           "power", "maximum", "minimum", "equal", "not_equal", "greater", "greater_equal",
           "lesser", "lesser_equal", "logical_and", "logical_or", "logical_xor",
           "moveaxis", "waitall", "call_op", "op", "publish", "save", "load", "load_frombuffer",
           "concatenate", "onehot_encode", "split_v2"]
