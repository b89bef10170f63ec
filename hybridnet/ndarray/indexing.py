"""``NDArray.__getitem__`` / ``__setitem__`` with MXNet 1.x semantics.

* Basic indexing (ints, slices with steps, ``...``, ``None``) returns a view sharing memory when
  the result is contiguous, else a copy -- as MXNet does. Integer-indexing every axis gives shape
  ``(1,)``: legacy NDArrays have no 0-d results.
* Advanced indexing (lists, numpy or NDArray index arrays) follows numpy's rules and copies.
* Under ``autograd.record()`` reads go through operators (``slice``, ``take``, ``gather_nd``) so
  gradients flow; writing into an array autograd recorded is an error, as in MXNet.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import autograd
from ..base import ShapeError, shape_str
from ..engine import get_engine

__all__ = ["get_item", "set_item"]


def _is_basic(key) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    for k in parts:
        if isinstance(k, bool) or not (isinstance(k, (numbers.Integral, slice, type(None)))
                                       or k is Ellipsis):
            return False
    return True


def _index_array(k):
    from .ndarray import NDArray
    if isinstance(k, NDArray):
        k = k.asnumpy()
    arr = np.asarray(k)
    if arr.dtype == np.bool_:
        # MXNet 1.x reads a bool mask as the integer indices 0/1 -- a silent wrong answer
        raise IndexError("boolean mask indexing is not supported by NDArray; index with the "
                         "positions instead, e.g. x[np.nonzero(mask)[0]]")
    if arr.dtype.kind == "f":
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise IndexError("index arrays must hold whole numbers")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise IndexError(f"cannot index with an array of dtype {arr.dtype}")
    return arr


def _normalize_advanced(key):
    parts = key if isinstance(key, tuple) else (key,)
    out = []
    for k in parts:
        if isinstance(k, (numbers.Integral, slice, type(None))) or k is Ellipsis:
            out.append(k)
        else:
            out.append(_index_array(k))
    return tuple(out)


def _ellipsis_at(parts) -> int:
    """Position of ``...`` in ``parts`` or -1 (by identity: parts may hold numpy arrays)."""
    for i, k in enumerate(parts):
        if k is Ellipsis:
            return i
    return -1


def _expand_ellipsis(ndim, parts):
    i = _ellipsis_at(parts)
    if i < 0:
        return parts
    n_real = sum(1 for k in parts if k is not None and k is not Ellipsis)
    return parts[:i] + (slice(None),) * (ndim - n_real) + parts[i + 1:]


def _check_bounds(shape, key):
    """IndexError naming the axis for an out-of-range integer index (numpy would say less)."""
    parts = _expand_ellipsis(len(shape), key if isinstance(key, tuple) else (key,))
    axis = 0
    for k in parts:
        if k is None:
            continue
        if axis >= len(shape):
            raise IndexError(f"too many indices for an array of shape {shape_str(shape)}")
        size = shape[axis]
        if isinstance(k, numbers.Integral) and not -size <= k < size:
            raise IndexError(f"index {k} is out of bounds for axis {axis} with size {size}")
        if isinstance(k, np.ndarray) and k.size and (k.max() >= size or k.min() < -size):
            bad = k.max() if k.max() >= size else k.min()
            raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {size}")
        axis += 1


def _result_shape(shape, key):
    """The shape ``x[key]`` has, computed without touching (or waiting for) the data."""
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=shape,
                                            strides=(0,) * len(shape))
    return probe[key].shape


def get_item(x, key):
    """``x[key]``: a view for contiguous basic indexing, otherwise a new array."""
    from .ndarray import NDArray, call_op
    if _is_basic(key):
        _check_bounds(x.shape, key)
        if autograd.is_recording():
            return _recorded_basic(x, key)
        parts = key if isinstance(key, tuple) else (key,)
        # a trailing ... makes numpy return a 0-d view instead of a scalar copy
        view = x._data[parts if _ellipsis_at(parts) >= 0 else parts + (Ellipsis,)]
        if view.ndim == 0 and any(isinstance(k, numbers.Integral) for k in parts):
            view = view.reshape(1)          # legacy NDArrays: integer indexing gives shape (1,)
        if view.flags.c_contiguous:
            return NDArray(view, x._ctx, x._var)
        return _copy_out(x, lambda data: data[key], view.shape)
    akey = _normalize_advanced(key)
    _check_bounds(x.shape, akey)
    shape = _result_shape(x.shape, akey)
    if not shape:
        shape = (1,)
    if autograd.is_recording():
        # as ``take`` from the flattened array, so autograd records it (and scatters gradients
        # back); the flat positions come from indexing an arange of x's shape, not the data
        itype = np.int32 if x.size < 2 ** 31 else np.int64
        positions = np.arange(x.size, dtype=itype).reshape(x.shape)[akey].reshape(shape)
        idx = NDArray(x._ctx.xp.asarray(positions), x._ctx)
        return call_op("take", call_op("Reshape", x, shape=(-1,)), idx, axis=0)
    return _copy_out(x, lambda data: data[akey].reshape(shape), shape)


def _copy_out(x, pick, shape):
    from .ndarray import NDArray
    out = NDArray(x._ctx.xp.empty(shape, x._data.dtype), x._ctx)
    src, dst = x._data, out._data

    def run():
        dst[...] = pick(src)
    get_engine().push(run, [x._var], [out._var], x._ctx, "normal", 0, "_getitem",
                      dst.size <= 65536)
    return out


def _recorded_basic(x, key):
    """Basic indexing through ``slice`` + ``Reshape`` so autograd records it."""
    from .ndarray import call_op
    parts = _expand_ellipsis(x.ndim, key if isinstance(key, tuple) else (key,))
    begin, end, step, final = [], [], [], []
    axis = 0
    for k in parts:
        if k is None:
            final.append(1)
            continue
        size = x.shape[axis]
        if isinstance(k, numbers.Integral):
            k = int(k) + size if k < 0 else int(k)
            begin.append(k)
            end.append(k + 1)
            step.append(1)
        else:
            b, e, s = k.indices(size)
            begin.append(b)
            end.append(e if (s > 0 or e >= 0) else None)
            step.append(s)
            final.append(len(range(b, e, s)))
        axis += 1
    for d in x.shape[axis:]:
        final.append(d)
    out = call_op("slice", x, begin=tuple(begin), end=tuple(end), step=tuple(step))
    if not final:
        final = [1]
    if tuple(final) != out.shape:
        out = call_op("Reshape", out, shape=tuple(final))
    return out


def set_item(x, key, value):
    """``x[key] = value`` with value a scalar, NDArray, numpy array or list (broadcast)."""
    from .ndarray import NDArray
    autograd.check_writable(x, "x[key] = value")
    if _is_basic(key):
        _check_bounds(x.shape, key)
        parts = key if isinstance(key, tuple) else (key,)
        target_key = parts if _ellipsis_at(parts) >= 0 else parts + (Ellipsis,)
        dst_shape = x._data[target_key].shape
    else:
        target_key = _normalize_advanced(key)
        _check_bounds(x.shape, target_key)
        dst_shape = _result_shape(x.shape, target_key)
    reads = []
    if isinstance(value, NDArray):
        if value._ctx != x._ctx:
            value = value.as_in_context(x._ctx)
        src = value._data
        reads.append(value._var)
        src_shape = value.shape
    elif isinstance(value, numbers.Number) or (isinstance(value, np.generic)):
        src, src_shape = value, ()
    else:
        src = np.array(value, dtype=x._data.dtype)        # copied now: the caller may change it
        if x._ctx.is_gpu:
            src = x._ctx.xp.asarray(src)
        src_shape = src.shape
    core = tuple(src_shape)
    while len(core) > len(dst_shape) and core[0] == 1:
        core = core[1:]                     # numpy drops leading 1-dims of the value, as MXNet
    try:
        if np.broadcast_shapes(core, dst_shape) != tuple(dst_shape):
            raise ValueError
    except ValueError:
        raise ShapeError("__setitem__", f"cannot assign a value of shape {shape_str(src_shape)} "
                                        f"to a region of shape {shape_str(dst_shape)}") from None
    data = x._data

    def run():
        data[target_key] = src
    get_engine().push(run, reads, [x._var], x._ctx, "normal", 0, "_setitem",
                      int(np.prod(dst_shape)) <= 65536)
