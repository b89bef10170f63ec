"""Array creation: ``zeros, ones, full, empty, arange, linspace, eye, *_like, moveaxis``.

Constant arrays are filled at once (their memory is ready the moment they exist), so creating
them costs no engine work.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..base import HybridNetError
from ..context import Context, current_context
from ..ops.creation import arange_values, cast_fill_value, linspace_values
from ..ops.params import parse_dtype
from .ndarray import NDArray, call_op

__all__ = ["zeros", "ones", "full", "arange", "linspace", "eye", "moveaxis", "from_numpy",
           "from_dlpack"]


def _shape(shape) -> tuple:
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def _dtype(dtype):
    return parse_dtype(dtype) if dtype is not None else np.dtype(np.float32)


def zeros(shape, ctx: Context | None = None, dtype=None, stype=None, **kwargs) -> NDArray:
    """An array of zeros: ``mx.nd.zeros((2, 3), ctx=mx.cpu(), dtype='float32')``."""
    if stype not in (None, "default"):
        raise HybridNetError(f"zeros: storage type {stype!r} is not supported; only 'default' "
                             f"(dense) arrays exist in hybridnet")
    ctx = ctx or current_context()
    return NDArray(ctx.xp.zeros(_shape(shape), _dtype(dtype)), ctx)


def ones(shape, ctx: Context | None = None, dtype=None, **kwargs) -> NDArray:
    """An array of ones."""
    ctx = ctx or current_context()
    return NDArray(ctx.xp.ones(_shape(shape), _dtype(dtype)), ctx)


def full(shape, val, ctx: Context | None = None, dtype=np.float32, out=None) -> NDArray:
    """An array filled with ``val`` (written into ``out`` when given); integer dtypes get
    MXNet's C cast of the value (2.7 -> 2, 300 -> 44 in uint8)."""
    if out is not None:
        out[:] = val
        return out
    ctx = ctx or current_context()
    dt = _dtype(dtype)
    return NDArray(ctx.xp.full(_shape(shape), cast_fill_value(val, dt), dt), ctx)


def arange(start, stop=None, step=1.0, repeat=1, infer_range=None, ctx=None,
           dtype=np.float32) -> NDArray:
    """Evenly spaced values in [start, stop), each repeated ``repeat`` times (MXNet's arange).

    Integer dtypes cast start and step first, as MXNet does (int32 with step 1.5 steps by 1).
    ``infer_range`` is accepted for compatibility (MXNet deprecated it); it changes nothing.
    """
    values = arange_values(start, stop, step, repeat, _dtype(dtype))
    ctx = ctx or current_context()
    return NDArray(ctx.xp.asarray(values), ctx)


def linspace(start, stop, num, endpoint=True, ctx=None, dtype=np.float32) -> NDArray:
    """``num`` evenly spaced values from start to stop."""
    ctx = ctx or current_context()
    return NDArray(ctx.xp.asarray(linspace_values(start, stop, num, endpoint, _dtype(dtype))), ctx)


def eye(N, M=0, k=0, ctx=None, dtype=np.float32, **kwargs) -> NDArray:
    """A 2-D array with ones on the k-th diagonal."""
    ctx = ctx or current_context()
    return NDArray(ctx.xp.eye(int(N), int(M) or None, int(k), dtype=_dtype(dtype)), ctx)


def moveaxis(tensor: NDArray, source, destination) -> NDArray:
    """Move axes of ``tensor`` to new positions (a transpose)."""
    nd = tensor.ndim
    src = [source] if isinstance(source, numbers.Integral) else list(source)
    dst = [destination] if isinstance(destination, numbers.Integral) else list(destination)
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination need the same number of axes")
    for what, axes in (("source", src), ("destination", dst)):
        for a in axes:
            if not -nd <= a < nd:
                raise ValueError(f"moveaxis: {what} axis {a} is out of range for an array of "
                                 f"{nd} dims")
    src = [s % nd for s in src]
    dst = [d % nd for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"moveaxis: repeated axes in source {source} or destination "
                         f"{destination}")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return call_op("transpose", tensor, axes=tuple(order))




def from_numpy(ndarray: np.ndarray, zero_copy: bool = True) -> NDArray:
    """An NDArray on ``cpu(0)`` holding ``ndarray``'s values with its dtype (``mx.nd.from_numpy``).

    With ``zero_copy=True`` (a C-contiguous array of a supported dtype) the NDArray uses the
    numpy array's memory, and the numpy array is made read-only -- as in MXNet, the NDArray now
    owns the values. Otherwise the values are copied.
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(ndarray).__name__}")
    dt = parse_dtype(ndarray.dtype)
    if not zero_copy or not ndarray.flags.c_contiguous or ndarray.dtype != dt:
        return NDArray(np.array(ndarray, dtype=dt, order="C"), Context.default_ctx)
    if not ndarray.flags.writeable:
        raise ValueError("from_numpy(zero_copy=True) needs a writeable array (it takes over its "
                         "memory); pass zero_copy=False to copy a read-only one")
    view = ndarray.view()        # stays writeable for the NDArray after the original is locked
    ndarray.flags.writeable = False
    return NDArray(view, Context.default_ctx)


class _Capsule:
    """Lets numpy import a bare DLPack capsule (it only imports objects with ``__dlpack__``)."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, *args, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)            # kDLCPU: capsules from CPU frameworks


def from_dlpack(dlpack) -> NDArray:
    """An NDArray on ``cpu(0)`` sharing the memory of a CPU DLPack tensor (``mx.nd.from_dlpack``).

    ``dlpack`` is a capsule (``x.to_dlpack_for_read()``, ``torch.utils.dlpack.to_dlpack(t)``) or
    any object with ``__dlpack__`` (a numpy array, a torch CPU tensor). The dtype must be one
    NDArrays support.
    """
    is_capsule = not hasattr(dlpack, "__dlpack__")
    try:
        host = np.from_dlpack(_Capsule(dlpack) if is_capsule else dlpack)
    except (TypeError, BufferError, RuntimeError) as err:
        raise HybridNetError(f"from_dlpack: cannot import this tensor on the CPU: {err}") from None
    parse_dtype(host.dtype)
    if is_capsule and not host.flags.writeable:
        host = _writable_alias(host)
    return NDArray(host, Context.default_ctx)


class _Alias:
    """Holds the array interface of a writable alias and keeps the imported owner alive."""

    def __init__(self, owner: np.ndarray):
        self.owner = owner
        iface = dict(owner.__array_interface__)
        iface["data"] = (iface["data"][0], False)
        self.__array_interface__ = iface


def _writable_alias(host: np.ndarray) -> np.ndarray:
    """A writable array over ``host``'s memory. numpy marks bare capsules read-only because they
    carry no read-only flag; MXNet's capsules (``to_dlpack_for_write``) mean writable memory."""
    return np.asarray(_Alias(host))
