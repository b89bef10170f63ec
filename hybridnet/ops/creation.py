"""Creation operators without inputs: ``_zeros``, ``_ones``, ``_full``, ``_arange``.

The eager ``mx.nd.zeros`` and friends fill arrays directly; these registry entries exist so a
*graph* can hold a constant (``mx.sym.zeros((2, 3))``) and so symbol files that contain them load.
Parameters are MXNet's: ``shape``, ``ctx`` (a device string, '' = the current one), ``dtype``
(default float32), ``value`` for ``_full``; ``start, stop, step, repeat, infer_range`` for
``_arange``.
"""
from __future__ import annotations

import math

import numpy as np

from ..base import ShapeError
from .params import Param
from .registry import OpDef, register

__all__ = ["cast_fill_value", "arange_values", "linspace_values"]


def cast_fill_value(value, dtype):
    """``value`` as MXNet stores it in ``dtype``: a C cast of the double, so integer types
    truncate towards zero and wrap around (300 -> 44 in uint8, -1 -> 255)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.array(float(value)).astype(np.int64).astype(dtype)[()]
    return np.array(value).astype(dtype)[()]


def arange_values(start, stop, step, repeat, dtype) -> np.ndarray:
    """MXNet's arange: ``ceil((stop - start) / step)`` values ``start + i * step`` computed in
    ``dtype`` (start and step are cast first: an int32 range with step 1.5 steps by 1), each
    repeated ``repeat`` times; ``stop=None`` means [0, start)."""
    if stop is None:
        start, stop = 0.0, start
    if step == 0:
        raise ShapeError("arange", "step must not be 0")
    if int(repeat) < 1:
        raise ShapeError("arange", f"repeat must be >= 1, got {repeat}")
    n = max(0, int(math.ceil((stop - start) / step)))
    dtype = np.dtype(dtype)
    first, stride = cast_fill_value(start, dtype), cast_fill_value(step, dtype)
    with np.errstate(over="ignore"):
        values = (first + np.arange(n).astype(dtype) * stride).astype(dtype)
    return np.repeat(values, int(repeat)) if repeat != 1 else values


class _DeviceParam(Param):
    """``ctx``: a Context or a device string; MXNet's empty string means the current device."""
    __slots__ = ()

    def parse(self, op, value):
        if isinstance(value, str) and value.strip() == "":
            return None
        return super().parse(op, value)


def _common(shape_default):
    return [Param("shape", "shape", shape_default, "the output shape"),
            _DeviceParam("ctx", "context", None, "device of the output ('' = current)"),
            Param("dtype", "dtype", np.dtype(np.float32), "output dtype")]


def _type_of(p, in_types):
    return [], [p.dtype or np.dtype(np.float32)], []


def _fill(value_of):
    def forward(ctx, p, inputs, aux, outputs, is_train):
        outputs[0].fill(value_of(p))
    return forward


def _constant_shape(name):
    def infer(p, in_shapes):
        if p.shape is None:
            raise ShapeError(name, "parameter shape is required")
        return [], [tuple(p.shape)], []
    return infer


for _name, _value, _doc in (("_zeros", lambda p: 0, "An array of zeros."),
                            ("_ones", lambda p: 1, "An array of ones.")):
    register(OpDef(_name, params=_common(()), inputs=(), infer_shape=_constant_shape(_name),
                   infer_type=_type_of, forward=_fill(_value), doc=_doc))

register(OpDef("_full", params=_common(None) + [Param("value", "float", doc="the fill value")],
               inputs=(), infer_shape=_constant_shape("_full"), infer_type=_type_of,
               forward=_fill(lambda p: cast_fill_value(p.value, p.dtype or np.float32)),
               doc="An array filled with ``value``."))


def linspace_values(start, stop, num, endpoint, dtype) -> np.ndarray:
    """``num`` evenly spaced values from start to stop (stop included when ``endpoint``),
    computed in float64 and then cast to ``dtype``."""
    if int(num) < 0:
        raise ShapeError("linspace", f"num must be >= 0, got {num}")
    return np.linspace(start, stop, int(num), endpoint=bool(endpoint)).astype(dtype)


def _arange_length(p) -> int:
    start, stop = (0.0, p.start) if p.stop is None else (p.start, p.stop)
    if p.step == 0:
        raise ShapeError("_arange", "step must not be 0")
    return max(0, int(math.ceil((stop - start) / p.step))) * p.repeat


def _arange_shape(p, in_shapes):
    if p.infer_range:
        raise ShapeError("_arange", "infer_range=True (a length taken from the graph) is not "
                                    "supported; give stop explicitly")
    if p.repeat < 1:
        raise ShapeError("_arange", f"repeat must be >= 1, got {p.repeat}")
    return [], [(_arange_length(p),)], []


def _arange_forward(ctx, p, inputs, aux, outputs, is_train):
    values = arange_values(p.start, p.stop, p.step, p.repeat, outputs[0].dtype)
    outputs[0][...] = ctx.xp.asarray(values)


register(OpDef(
    "_arange",
    params=[Param("start", "float", doc="start of the interval"),
            Param("stop", "float", None, "end of the interval (exclusive); None: [0, start)"),
            Param("step", "float", 1.0, "spacing between values"),
            Param("repeat", "int", 1, "how many times each value is repeated"),
            Param("infer_range", "bool", False, "take the length from the graph (unsupported)"),
            _DeviceParam("ctx", "context", None, "device of the output ('' = current)"),
            Param("dtype", "dtype", np.dtype(np.float32), "output dtype")],
    inputs=(), infer_shape=_arange_shape, infer_type=_type_of, forward=_arange_forward,
    doc="Evenly spaced values in [start, stop), each repeated ``repeat`` times."))


register(OpDef(
    "_linspace",
    params=[Param("start", "float", doc="the first value"),
            Param("stop", "float", doc="the last value (included when endpoint)"),
            Param("step", "float", 1.0, "accepted for MXNet compatibility (unused)"),
            Param("repeat", "int", 1, "accepted for MXNet compatibility (unused)"),
            Param("infer_range", "bool", False, "accepted for MXNet compatibility (unused)"),
            _DeviceParam("ctx", "context", None, "device of the output ('' = current)"),
            Param("dtype", "dtype", np.dtype(np.float32), "output dtype"),
            Param("num", "int", doc="how many values"),
            Param("endpoint", "bool", True, "include stop")],
    inputs=(), infer_shape=lambda p, in_shapes: ([], [(p.num,)], []), infer_type=_type_of,
    forward=lambda ctx, p, inputs, aux, outputs, is_train: outputs[0].__setitem__(
        Ellipsis, ctx.xp.asarray(linspace_values(p.start, p.stop, p.num, p.endpoint,
                                                 outputs[0].dtype))),
    doc="``num`` evenly spaced values from start to stop."))


def _eye_forward(ctx, p, inputs, aux, outputs, is_train):
    out = outputs[0]
    out[...] = ctx.xp.eye(out.shape[0], out.shape[1], p.k, dtype=out.dtype)


register(OpDef(
    "_eye",
    params=[Param("N", "int", doc="number of rows"),
            Param("M", "int", 0, "number of columns (0: N)"),
            Param("k", "int", 0, "the diagonal: 0 main, > 0 above, < 0 below"),
            _DeviceParam("ctx", "context", None, "device of the output ('' = current)"),
            Param("dtype", "dtype", np.dtype(np.float32), "output dtype")],
    inputs=(), infer_shape=lambda p, in_shapes: ([], [(p.N, p.M or p.N)], []),
    infer_type=_type_of, forward=_eye_forward,
    doc="A 2-D array with ones on the k-th diagonal and zeros elsewhere."))
