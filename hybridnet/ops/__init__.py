"""The operator registry and every operator family.

Importing this package registers all operators; the front ends (``mx.nd``, ``mx.sym``) then
build their functions from ``list_ops()``. Families live one per module.
"""
from __future__ import annotations

from . import binary, elemwise, nn, optimizer_ops  # noqa: F401  (registration side effects)
from . import index, join, linalg, reduce, shape, sort  # noqa: F401  (tensor operators)
from . import random  # noqa: F401  (random sampling operators: registration)
from . import creation  # noqa: F401  (_zeros/_ones/_full/_arange graph constants)
from .params import Param, REQUIRED
from .registry import (ZERO_GRAD, OpContext, OpDef, Params, assign, find_op, get_op, list_ops,
                       register)

__all__ = ["OpDef", "Param", "REQUIRED", "ZERO_GRAD", "OpContext", "Params", "assign",
           "register", "get_op", "find_op", "list_ops"]
