"""``local`` and ``device`` KVStores: one process, values on this machine's devices.

* ``init`` copies the value into the store (once per key: a second init is an error).
* ``push`` sums a key's per-device values (copies to the store's device and adds, all engine
  work) and then either overwrites the stored value with the sum (no updater) or calls
  ``updater(key, summed, stored)`` (``set_optimizer`` installs
  ``mx.optimizer.get_updater(opt)``).
* ``pull`` copies the stored value into every output, on whatever device each lives.

``local`` keeps its values on ``cpu(0)`` (MXNet uses pinned CPU memory); ``device`` keeps each
value on the device of its initial value and reduces there, and supports 2-bit gradient
compression: each device's gradient is quantized to {-t, 0, +t} with its own error-feedback
residual before the sum. Every other name without 'dist' (``local_allreduce_cpu``, ``nccl``,
...) is a local store of that type name, as in MXNet. ``priority`` is accepted and ignored:
the engine orders this work by its data dependencies alone.
"""
from __future__ import annotations

import numpy as np

from ..base import HybridNetError, ShapeError, shape_str
from ..context import cpu
from ..engine import get_engine
from ..ndarray import NDArray, zeros
from .base import KVStore

__all__ = ["KVStoreLocal"]


class KVStoreLocal(KVStore):
    """The single-process store: ``mx.kv.create('local')`` or ``mx.kv.create('device')``."""

    def __init__(self, name: str = "local"):
        super().__init__()
        self._type = name
        self._on_device = "device" in name or "nccl" in name
        self._store: dict = {}
        self._compression = None
        self._residuals: dict = {}       # (key, device index in the push list) -> residual

    @property
    def type(self) -> str:
        return self._type

    def _stored(self, key, what: str) -> NDArray:
        arr = self._store.get(key)
        if arr is None:
            raise HybridNetError(f"kv.{what}: key {key!r} has not been initialized; call "
                                 f"kv.init({key!r}, value) first")
        return arr

    def init(self, key, value) -> None:
        for k, vals in self._groups(key, value, "init"):
            if k in self._store or len(vals) > 1:
                raise HybridNetError(f"kv.init: duplicate init of key {k!r}; call kv.init (or "
                                     f"kv.broadcast) once per key with one value")
            src = vals[0]
            ctx = src.context if self._on_device else cpu(0)
            stored = zeros(src.shape, ctx, dtype=src.dtype)
            src.copyto(stored)
            self._store[k] = stored

    def push(self, key, value, priority: int = 0) -> None:
        for k, vals in self._groups(key, value, "push"):
            stored = self._stored(k, "push")
            for i, v in enumerate(vals):
                if v.shape != stored.shape:
                    raise ShapeError("kv.push", f"value {i} of key {k!r} has shape "
                                                f"{shape_str(v.shape)}, the stored value has "
                                                f"{shape_str(stored.shape)}")
            merged = self._reduce(k, vals, stored)
            if self._updater is not None:
                self._updater(k, merged, stored)
            else:
                merged.copyto(stored)

    def _reduce(self, key, vals: list, stored: NDArray) -> NDArray:
        """The sum of ``vals`` on the store's device (compressed first when enabled)."""
        if self._compression is not None:
            vals = [self._compress(key, i, v) for i, v in enumerate(vals)]
        merged = zeros(stored.shape, stored.context, dtype=stored.dtype)
        vals[0].copyto(merged)
        for v in vals[1:]:
            merged += v.as_in_context(stored.context)
        return merged

    def _compress(self, key, index: int, value: NDArray) -> NDArray:
        """``value`` quantized by 2-bit compression with this (key, device)'s residual."""
        codec = self._compression
        residual = self._residuals.get((key, index))
        if residual is None:
            residual = self._residuals[(key, index)] = np.zeros(value.size, np.float32)
        out = zeros(value.shape, value.context, dtype=value.dtype)
        src, dst, n = value._data, out._data, value.size

        def run():
            grad = np.asarray(src, dtype=np.float32).reshape(-1)
            dst[...] = codec.decode(codec.encode(grad, residual), n).reshape(dst.shape)
        get_engine().push(run, [value._var], [out._var], value.context, "normal", 0,
                          "kv.compress_2bit", False)
        return out

    def pull(self, key, out=None, priority: int = 0, ignore_sparse: bool = True) -> None:
        if out is None:
            raise HybridNetError("kv.pull needs out= (the arrays to fill)")
        for k, outs in self._groups(key, out, "pull"):
            stored = self._stored(k, "pull")
            for i, o in enumerate(outs):
                if o.shape != stored.shape:
                    raise ShapeError("kv.pull", f"out {i} of key {k!r} has shape "
                                                f"{shape_str(o.shape)}, the stored value has "
                                                f"{shape_str(stored.shape)}")
                stored.copyto(o)

    def set_optimizer(self, optimizer) -> None:
        """Run ``optimizer`` on every push (``updater(key, grad, weight)`` in this process)."""
        from ..optimizer import get_updater
        self._set_updater(get_updater(optimizer))

    def set_gradient_compression(self, compression_params: dict) -> None:
        if not self._on_device:
            super().set_gradient_compression(compression_params)
        from .dist.compression import TwoBitCompression, parse_compression
        params = parse_compression(compression_params)
        self._compression = (TwoBitCompression(params["threshold"])
                             if params["type"] == "2bit" else None)
        self._residuals = {}
