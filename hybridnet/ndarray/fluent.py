"""Fluent methods: ``x.sum(axis=1)`` is ``nd.sum(x, axis=1)``, for MXNet's list of operators.

Methods are attached from the registry, so each one forwards to the same operator the ``nd``
function runs; methods NDArray defines itself (``reshape``, ``astype``...) are never replaced.
"""
from __future__ import annotations

from ..ops.registry import find_op
from .ndarray import NDArray, call_op

__all__ = ["FLUENT_METHODS", "attach"]

# MXNet 1.x's fluent methods that map one-to-one to an operator of the same name
FLUENT_METHODS = (
    "reshape_like", "zeros_like", "ones_like", "broadcast_axes", "broadcast_to",
    "broadcast_like", "repeat", "pad", "swapaxes", "split", "slice", "slice_axis", "slice_like",
    "take", "one_hot", "pick", "sort", "topk", "argsort", "argmax", "argmax_channel", "argmin",
    "clip", "abs", "sign", "flatten", "shape_array", "size_array", "expand_dims", "tile",
    "transpose", "flip", "depth_to_space", "space_to_depth", "diag", "sum", "nansum", "prod",
    "nanprod", "mean", "max", "min", "norm", "round", "rint", "fix", "floor", "ceil", "trunc",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "degrees", "radians", "sinh", "cosh",
    "tanh", "arcsinh", "arccosh", "arctanh", "exp", "expm1", "log", "log10", "log2", "log1p",
    "sqrt", "rsqrt", "cbrt", "rcbrt", "square", "reciprocal", "relu", "sigmoid", "softmax",
    "log_softmax", "softmin", "squeeze",
)


def _method(op_name):
    def method(self, *args, **kwargs):
        return call_op_with_positional(op_name, self, *args, **kwargs)
    method.__name__ = op_name
    method.__doc__ = f"Same as ``mx.nd.{op_name}(self, ...)``."
    return method


def call_op_with_positional(op_name, *args, **kwargs):
    """Call the ``nd`` function (which maps positional parameters like MXNet's)."""
    from . import op as ops_namespace
    fn = ops_namespace.__dict__.get(op_name)
    if fn is None:
        return call_op(op_name, *args, **kwargs)
    return fn(*args, **kwargs)


def attach() -> None:
    """Add every fluent method whose operator is registered."""
    for name in FLUENT_METHODS:
        if name in NDArray.__dict__ or find_op(name) is None:
            continue
        setattr(NDArray, name, _method(name))
