"""NDArray: an n-dimensional array on a device, computed asynchronously by the engine.

An NDArray is a buffer (numpy, or cupy on a GPU), the engine Var that orders work on it, and its
device. Operators return at once with the result's shape and dtype known; the values arrive when
the engine has run the work. ``asnumpy()``, ``wait_to_read()`` and ``mx.nd.waitall()`` wait.
Basic slicing and ``reshape`` return views that share the buffer and the Var, as in MXNet.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from .. import autograd
from ..base import HybridNetError, ShapeError, shape_str
from ..context import Context, current_context
from ..engine import COPY, Var, get_engine
from ..ops.params import parse_dtype
from ..ops.registry import get_op
from .invoke import invoke

__all__ = ["NDArray", "call_op", "empty", "array", "waitall", "add", "subtract", "multiply",
           "divide", "true_divide", "modulo", "power", "maximum", "minimum", "equal",
           "not_equal", "greater", "greater_equal", "lesser", "lesser_equal", "logical_and",
           "logical_or", "logical_xor", "to_dlpack_for_read", "to_dlpack_for_write"]

_OPS: dict = {}


def call_op(name: str, *inputs, out=None, **params):
    """Invoke registry operator ``name`` eagerly on NDArray ``inputs`` with ``params``."""
    op = _OPS.get(name) or _load_op(name)
    return invoke(op, list(inputs), op.parse_params(params), out=out)


def _load_op(name):
    op = _OPS[name] = get_op(name)
    return op


_SCALAR_PARAMS: dict = {}


def _scalar_call(name, value):
    """(op, params) for a scalar operator, cached per (name, scalar value)."""
    key = (name, value)
    hit = _SCALAR_PARAMS.get(key)
    if hit is None:
        op = _OPS.get(name) or _load_op(name)
        hit = (op, op.parse_params({"scalar": float(value)}))
        if len(_SCALAR_PARAMS) < 4096:
            _SCALAR_PARAMS[key] = hit
    return hit


def _is_scalar(x) -> bool:
    return isinstance(x, numbers.Number) or (isinstance(x, np.generic) and x.ndim == 0)


class NDArray:
    """An array on a device whose values the engine computes asynchronously.

    Create one with ``mx.nd.array``, ``mx.nd.zeros``, ... rather than directly.
    """
    __slots__ = ("_data", "_var", "_ctx", "_ag", "__weakref__")
    __array_priority__ = 1000.0   # numpy scalars defer to our reflected operators

    def __init__(self, data, ctx: Context | None = None, var: Var | None = None):
        self._data = data
        self._ctx = ctx if ctx is not None else current_context()
        self._var = var if var is not None else Var()
        self._ag = None           # autograd: (node, output index), or GradInfo after attach_grad

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The shape, known at once (never waits)."""
        return self._data.shape

    @property
    def dtype(self):
        """The numpy type of the elements (``numpy.float32`` by default)."""
        return self._data.dtype.type

    @property
    def size(self) -> int:
        """The number of elements (the product of the shape)."""
        return int(self._data.size)

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self._data.ndim

    @property
    def context(self) -> Context:
        """The device holding the array (``cpu(0)``, ``gpu(1)``...); ``ctx`` is an alias."""
        return self._ctx

    ctx = context

    @property
    def stype(self) -> str:
        """The storage type: always ``'default'`` (dense) in hybridnet."""
        return "default"

    @property
    def writable(self) -> bool:
        """Whether the array may be written (always True)."""
        return True

    @property
    def handle(self):
        """The engine variable standing for this array's memory (MXNet's handle)."""
        return self._var

    @property
    def grad(self):
        """The gradient buffer attached by ``attach_grad`` (None otherwise)."""
        info = self._ag
        return info.grad if type(info) is autograd.GradInfo else None

    @property
    def T(self) -> "NDArray":
        """The array with its axes reversed (a copy; 1-D arrays come back unchanged)."""
        return call_op("transpose", self)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    # ---- synchronisation and conversion -----------------------------------------------------
    def wait_to_read(self) -> None:
        """Block until pending writes to this array are done; raise their error if one failed."""
        get_engine().wait_for_var(self._var)

    def asnumpy(self) -> np.ndarray:
        """A numpy copy of the values (waits for them)."""
        get_engine().wait_for_var(self._var)
        if self._ctx.is_gpu:
            return self._data.get()
        return np.array(self._data, copy=True)

    def asscalar(self):
        """The only element as a numpy scalar; ValueError unless size is 1."""
        if self.size != 1:
            raise ValueError(f"asscalar() needs an array of size 1, this one has shape "
                             f"{shape_str(self.shape)}")
        return self.asnumpy().reshape(-1)[0]

    def __array__(self, dtype=None, copy=None):
        arr = self.asnumpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __bool__(self) -> bool:
        if self.size == 0:
            return False
        if self.size == 1:
            return bool(self.asscalar())
        raise ValueError("the truth value of an NDArray with more than one element is "
                         "ambiguous; use .asnumpy().any() or .all()")

    def __float__(self):
        return float(self.asscalar())

    def __int__(self):
        return int(self.asscalar())

    def __index__(self):
        if not np.issubdtype(self._data.dtype, np.integer):
            raise TypeError("only integer arrays of size 1 can be used as an index")
        return int(self.asscalar())

    def __repr__(self) -> str:
        shape = "x".join(str(d) for d in self.shape)
        return f"\n{self.asnumpy()}\n<NDArray {shape} @{self._ctx}>"

    __str__ = __repr__

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __hash__(self):
        return id(self)

    # Pickling is MXNet's: NDArray(None) rebuilt from the state {'handle': <one array record>}
    # (see serialization.py), so hybridnet and MXNet pickles differ only in the class path.
    def __reduce__(self):
        return (NDArray, (None,), self.__getstate__())

    def __getstate__(self) -> dict:
        from .serialization import array_to_bytes
        return {"handle": bytearray(array_to_bytes(self))}

    def __setstate__(self, state: dict) -> None:
        from .serialization import array_from_bytes
        handle = state.get("handle") if isinstance(state, dict) else None
        if handle is None:
            raise HybridNetError("cannot unpickle an NDArray without data (its state has no "
                                 "'handle' bytes)")
        src = array_from_bytes(handle)
        self._data, self._ctx, self._var, self._ag = src._data, src._ctx, src._var, None

    # ---- copies -----------------------------------------------------------------------------
    def copyto(self, other):
        """Copy into ``other``: an NDArray of the same shape (returned), or a Context (a new array).

        The copy is engine work: it runs after pending writes to ``self``, and work on ``other``
        waits for it. Copying between dtypes converts.
        """
        if isinstance(other, Context):
            dst = NDArray(other.xp.empty(self.shape, self._data.dtype), other)
        elif isinstance(other, NDArray):
            if other is self:
                return other
            if other.shape != self.shape:
                raise ShapeError("copyto", f"destination has shape {shape_str(other.shape)}, "
                                           f"source has {shape_str(self.shape)}")
            autograd.check_writable(other, "copyto destination")
            dst = other
        else:
            raise TypeError(f"copyto expects an NDArray or a Context, got {type(other).__name__}")
        _push_copy(self, dst)
        if autograd.is_recording():
            op = _OPS.get("_copyto") or _load_op("_copyto")
            autograd._record(op, op.default_params, [self], [], [dst], autograd.is_training())
        return dst

    def copy(self) -> "NDArray":
        """A new array with the same values on the same device."""
        return self.copyto(self._ctx)

    def as_in_context(self, context: Context) -> "NDArray":
        """This array if it already lives on ``context``, else a copy there."""
        return self if context == self._ctx else self.copyto(context)

    as_in_ctx = as_in_context

    def astype(self, dtype, copy: bool = True) -> "NDArray":
        """The values converted to ``dtype`` (this array itself when ``copy=False`` and equal)."""
        dt = parse_dtype(dtype)
        if not copy and dt == self._data.dtype:
            return self
        return call_op("Cast", self, dtype=dt.name)

    def tostype(self, stype: str) -> "NDArray":
        """This array in storage type ``stype``; only ``'default'`` (dense) is supported."""
        if stype != "default":
            raise HybridNetError(f"storage type {stype!r} is not supported; only 'default'")
        return self

    def detach(self) -> "NDArray":
        """The same values (shared memory) cut off from the autograd graph."""
        return NDArray(self._data, self._ctx, self._var)

    def attach_grad(self, grad_req: str = "write", stype=None) -> None:
        """Allocate ``self.grad`` (zeros) and mark this array for gradients from ``backward``.

        ``grad_req='add'`` accumulates over backward calls; ``'null'`` detaches the array from
        gradient computation and leaves ``self.grad`` None, as in MXNet.
        """
        if grad_req not in ("write", "add", "null"):
            raise ValueError(f"grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        if grad_req == "null":
            self._ag = autograd.GradInfo(None, grad_req)
            return
        from .creation import zeros
        self._ag = autograd.GradInfo(zeros(self.shape, self._ctx, self._data.dtype), grad_req)

    def backward(self, out_grad=None, retain_graph: bool = False, train_mode: bool = True):
        """Compute gradients of this array w.r.t. the arrays marked with ``attach_grad``."""
        autograd.backward([self], None if out_grad is None else [out_grad],
                          retain_graph=retain_graph, train_mode=train_mode)

    # ---- in-place slice writes and DLPack -----------------------------------------------------
    def slice_assign(self, rhs: "NDArray", begin, end, step) -> "NDArray":
        """Write ``rhs`` into the region ``begin:end:step`` (one entry per axis, None = whole
        axis) of this array, in place; returns this array."""
        autograd.check_writable(self, "slice_assign")
        return call_op("_slice_assign", self, rhs, out=self, begin=begin, end=end, step=step)

    def slice_assign_scalar(self, value, begin, end, step) -> "NDArray":
        """Write the number ``value`` into the region ``begin:end:step``, in place."""
        autograd.check_writable(self, "slice_assign_scalar")
        return call_op("_slice_assign_scalar", self, out=self, scalar=float(value), begin=begin,
                       end=end, step=step)

    def to_dlpack_for_read(self):
        """A DLPack capsule sharing this array's memory, once pending writes are done."""
        self.wait_to_read()
        return self._data.__dlpack__()

    def to_dlpack_for_write(self):
        """A DLPack capsule sharing this array's memory, once pending reads and writes are done."""
        get_engine().push(lambda: None, [], [self._var], self._ctx, "normal", 0, "_dlpack", True)
        get_engine().wait_for_var(self._var)
        return self._data.__dlpack__()

    # ---- shape views ------------------------------------------------------------------------
    def reshape(self, *shape, **kwargs) -> "NDArray":
        """A view with a new shape; MXNet's special values 0, -1, -2, -3, -4 and ``reverse``."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        if "shape" in kwargs:
            shape = tuple(kwargs.pop("shape"))
        reverse = bool(kwargs.pop("reverse", False))
        if kwargs:
            raise TypeError(f"reshape got unexpected arguments {sorted(kwargs)}")
        if autograd.is_recording():
            return call_op("Reshape", self, shape=shape, reverse=reverse)
        op = get_op("Reshape")
        p = op.parse_params({"shape": shape, "reverse": reverse})
        new_shape = op.infer_shape(p, [self.shape])[1][0]
        # inference reads a 0 dim as "unknown", so it cannot check empty arrays' sizes
        if self.size == 0 and int(np.prod(new_shape)) != 0:
            raise ShapeError("Reshape", f"cannot reshape data of shape {shape_str(self.shape)} "
                                        f"(size {self.size}) into {shape_str(new_shape)} from "
                                        f"shape={shape_str(shape)}")
        return NDArray(self._data.reshape(new_shape), self._ctx, self._var)

    def broadcast_to(self, shape) -> "NDArray":
        """A new array broadcasting size-1 axes to ``shape``; unlike the ``broadcast_to``
        operator, the method first prepends size-1 axes when ``shape`` has more (MXNet 1.x)."""
        shape = tuple(shape)
        padded = (1,) * (len(shape) - self.ndim) + self.shape
        if len(shape) < self.ndim or any(a != b and a != 1 for a, b in zip(padded, shape)):
            raise ShapeError("broadcast_to", f"operands could not be broadcast together with "
                                             f"remapped shapes [original->remapped]: "
                                             f"{shape_str(self.shape)} and requested shape "
                                             f"{shape_str(shape)}")
        src = self.reshape(padded) if padded != self.shape else self
        return call_op("broadcast_to", src, shape=shape)

    def broadcast_like(self, other: "NDArray") -> "NDArray":
        """``self.broadcast_to(other.shape)``."""
        return self.broadcast_to(other.shape)

    # ---- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        from .indexing import get_item
        return get_item(self, key)

    def __setitem__(self, key, value):
        from .indexing import set_item
        set_item(self, key, value)

    # ---- arithmetic -------------------------------------------------------------------------
    def _binary(self, other, op_name, scalar_name):
        if isinstance(other, NDArray):
            op = _OPS.get(op_name) or _load_op(op_name)
            return invoke(op, [self, other], op.default_params)
        if _is_scalar(other):
            op, p = _scalar_call(scalar_name, other)
            return invoke(op, [self], p)
        raise TypeError(f"unsupported operand type for {op_name}: NDArray and "
                        f"{type(other).__name__}")

    def _rbinary(self, other, op_name, scalar_name):
        if _is_scalar(other):
            op, p = _scalar_call(scalar_name, other)
            return invoke(op, [self], p)
        raise TypeError(f"unsupported operand type for {op_name}: {type(other).__name__} and "
                        f"NDArray")

    def _inplace(self, other, op_name, scalar_name):
        autograd.check_writable(self, f"in-place {op_name}")
        if isinstance(other, NDArray):
            return call_op(op_name, self, other, out=self)
        if _is_scalar(other):
            return call_op(scalar_name, self, scalar=float(other), out=self)
        raise TypeError(f"unsupported operand type for {op_name}: NDArray and "
                        f"{type(other).__name__}")

    def __add__(self, o): return self._binary(o, "broadcast_add", "_plus_scalar")
    def __radd__(self, o): return self._rbinary(o, "broadcast_add", "_plus_scalar")
    def __iadd__(self, o): return self._inplace(o, "broadcast_add", "_plus_scalar")
    def __sub__(self, o): return self._binary(o, "broadcast_sub", "_minus_scalar")
    def __rsub__(self, o): return self._rbinary(o, "broadcast_sub", "_rminus_scalar")
    def __isub__(self, o): return self._inplace(o, "broadcast_sub", "_minus_scalar")
    def __mul__(self, o): return self._binary(o, "broadcast_mul", "_mul_scalar")
    def __rmul__(self, o): return self._rbinary(o, "broadcast_mul", "_mul_scalar")
    def __imul__(self, o): return self._inplace(o, "broadcast_mul", "_mul_scalar")
    def __truediv__(self, o): return self._binary(o, "broadcast_div", "_div_scalar")
    def __rtruediv__(self, o): return self._rbinary(o, "broadcast_div", "_rdiv_scalar")
    def __itruediv__(self, o): return self._inplace(o, "broadcast_div", "_div_scalar")
    __div__, __rdiv__, __idiv__ = __truediv__, __rtruediv__, __itruediv__
    def __mod__(self, o): return self._binary(o, "broadcast_mod", "_mod_scalar")
    def __rmod__(self, o): return self._rbinary(o, "broadcast_mod", "_rmod_scalar")
    def __imod__(self, o): return self._inplace(o, "broadcast_mod", "_mod_scalar")
    def __pow__(self, o): return self._binary(o, "broadcast_power", "_power_scalar")
    def __rpow__(self, o): return self._rbinary(o, "broadcast_power", "_rpower_scalar")
    def __eq__(self, o): return self._binary(o, "broadcast_equal", "_equal_scalar")
    def __ne__(self, o): return self._binary(o, "broadcast_not_equal", "_not_equal_scalar")
    def __gt__(self, o): return self._binary(o, "broadcast_greater", "_greater_scalar")
    def __ge__(self, o): return self._binary(o, "broadcast_greater_equal", "_greater_equal_scalar")
    def __lt__(self, o): return self._binary(o, "broadcast_lesser", "_lesser_scalar")
    def __le__(self, o): return self._binary(o, "broadcast_lesser_equal", "_lesser_equal_scalar")
    def __neg__(self): return call_op("negative", self)
    def __abs__(self): return call_op("abs", self)
    def __pos__(self): return self


# ---- functional forms: nd.add(lhs, rhs) etc. (NDArray or number on either side) ---------------
def _binary_function(name: str, array_op: str, scalar_op: str, rscalar_op: str, on_numbers):
    def fn(lhs, rhs):
        if isinstance(lhs, NDArray):
            return lhs._binary(rhs, array_op, scalar_op)
        if _is_scalar(lhs):
            if isinstance(rhs, NDArray):
                return rhs._rbinary(lhs, array_op, rscalar_op)
            if _is_scalar(rhs):
                return on_numbers(lhs, rhs)
        raise TypeError(f"{name}: arguments must be NDArrays or numbers, got "
                        f"{type(lhs).__name__} and {type(rhs).__name__}")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"``{name}(lhs, rhs)``: elementwise, broadcasting like numpy; either side may be "
                  f"a number (two numbers give a number).")
    return fn


def _flag(test):
    return lambda a, b: 1 if test(a, b) else 0


add = _binary_function("add", "broadcast_add", "_plus_scalar", "_plus_scalar", operator.add)
subtract = _binary_function("subtract", "broadcast_sub", "_minus_scalar", "_rminus_scalar",
                            operator.sub)
multiply = _binary_function("multiply", "broadcast_mul", "_mul_scalar", "_mul_scalar",
                            operator.mul)
divide = _binary_function("divide", "broadcast_div", "_div_scalar", "_rdiv_scalar",
                          operator.truediv)
true_divide = _binary_function("true_divide", "broadcast_div", "_div_scalar", "_rdiv_scalar",
                               operator.truediv)
modulo = _binary_function("modulo", "broadcast_mod", "_mod_scalar", "_rmod_scalar", operator.mod)
power = _binary_function("power", "broadcast_power", "_power_scalar", "_rpower_scalar",
                         operator.pow)
maximum = _binary_function("maximum", "broadcast_maximum", "_maximum_scalar", "_maximum_scalar",
                           max)
minimum = _binary_function("minimum", "broadcast_minimum", "_minimum_scalar", "_minimum_scalar",
                           min)
equal = _binary_function("equal", "broadcast_equal", "_equal_scalar", "_equal_scalar",
                         _flag(operator.eq))
not_equal = _binary_function("not_equal", "broadcast_not_equal", "_not_equal_scalar",
                             "_not_equal_scalar", _flag(operator.ne))
greater = _binary_function("greater", "broadcast_greater", "_greater_scalar", "_lesser_scalar",
                           _flag(operator.gt))
greater_equal = _binary_function("greater_equal", "broadcast_greater_equal",
                                 "_greater_equal_scalar", "_lesser_equal_scalar",
                                 _flag(operator.ge))
lesser = _binary_function("lesser", "broadcast_lesser", "_lesser_scalar", "_greater_scalar",
                          _flag(operator.lt))
lesser_equal = _binary_function("lesser_equal", "broadcast_lesser_equal", "_lesser_equal_scalar",
                                "_greater_equal_scalar", _flag(operator.le))
logical_and = _binary_function("logical_and", "broadcast_logical_and", "_logical_and_scalar",
                               "_logical_and_scalar", _flag(lambda a, b: a and b))
logical_or = _binary_function("logical_or", "broadcast_logical_or", "_logical_or_scalar",
                              "_logical_or_scalar", _flag(lambda a, b: a or b))
logical_xor = _binary_function("logical_xor", "broadcast_logical_xor", "_logical_xor_scalar",
                               "_logical_xor_scalar", _flag(lambda a, b: bool(a) != bool(b)))
BINARY_FUNCTIONS = ("add", "subtract", "multiply", "divide", "true_divide", "modulo", "power",
                    "maximum", "minimum", "equal", "not_equal", "greater", "greater_equal",
                    "lesser", "lesser_equal", "logical_and", "logical_or", "logical_xor")


def to_dlpack_for_read(data: NDArray):
    """``mx.nd.to_dlpack_for_read(x)``: see ``NDArray.to_dlpack_for_read``."""
    return data.to_dlpack_for_read()


def to_dlpack_for_write(data: NDArray):
    """``mx.nd.to_dlpack_for_write(x)``: see ``NDArray.to_dlpack_for_write``."""
    return data.to_dlpack_for_write()


def _transfer(src, dst_data, dst_ctx):
    """Copy buffer ``src`` into ``dst_data`` (numpy/cupy in any combination, converting dtype)."""
    if dst_ctx.is_gpu:
        import cupy  # noqa: PLC0415
        with cupy.cuda.Device(dst_ctx.device_id):
            dst_data[...] = cupy.asarray(src)
    elif not isinstance(src, np.ndarray):
        dst_data[...] = src.get()
    else:
        np.copyto(dst_data, src, casting="unsafe")


def _push_copy(src: NDArray, dst: NDArray) -> None:
    src_data, dst_data, dst_ctx = src._data, dst._data, dst._ctx
    get_engine().push(lambda: _transfer(src_data, dst_data, dst_ctx), [src._var], [dst._var],
                      dst_ctx, COPY if src._ctx != dst_ctx else "normal", 0, "_copyto",
                      src._ctx == dst_ctx and dst_data.size <= 65536)


def empty(shape, ctx: Context | None = None, dtype="float32") -> NDArray:
    """An uninitialised array (``mx.nd.empty``)."""
    ctx = ctx or current_context()
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    return NDArray(ctx.xp.empty(tuple(shape), parse_dtype(dtype or "float32")), ctx)


def array(source_array, ctx: Context | None = None, dtype=None) -> NDArray:
    """An NDArray holding a copy of ``source_array`` (NDArray, numpy array, list or scalar).

    The dtype is ``dtype``, else the source's dtype when the source is an NDArray, else float32
    (MXNet 1.x: even int64 numpy input becomes float32 unless a dtype is given).
    """
    ctx = ctx or current_context()
    if isinstance(source_array, NDArray):
        dt = parse_dtype(dtype) if dtype is not None else source_array._data.dtype
        dst = NDArray(ctx.xp.empty(source_array.shape, dt), ctx)
        _push_copy(source_array, dst)
        return dst
    dt = parse_dtype(dtype) if dtype is not None else np.dtype(np.float32)
    try:
        host = np.array(source_array, dtype=dt)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot make an NDArray from {type(source_array).__name__}: {err}") from None
    if ctx.is_gpu:
        return NDArray(ctx.xp.asarray(host), ctx)
    return NDArray(host, ctx)


def waitall() -> None:
    """Block until all pushed work has run; raise the first error no wait has raised yet."""
    get_engine().wait_all()
