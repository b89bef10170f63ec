"""Devices: ``mx.cpu(i)``, ``mx.gpu(i)``, ``mx.Context`` and the current-context stack.

``cpu(0)`` and ``cpu(1)`` are distinct devices: each has its own engine workers, and a copy
between them is real engine work, so multi-device code is testable on a machine without GPUs.
Arrays on ``gpu(i)`` live in cupy, which is imported only when a GPU is first asked for.
"""
from __future__ import annotations

import re
import threading

import numpy as np

from .base import HybridNetError

__all__ = ["Context", "cpu", "gpu", "cpu_pinned", "current_context", "num_gpus",
           "gpu_memory_info"]

_DEVTYPE2STR = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
_STR2DEVTYPE = {v: k for k, v in _DEVTYPE2STR.items()}
_state = threading.local()
_cupy = None


def _import_cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415  (GPU support is optional and imported on demand)
        except ImportError as err:
            raise HybridNetError(
                "a GPU context was requested but cupy is not installed; "
                "install hybridnet[gpu] (cupy-cuda12x) on a machine with CUDA") from err
        _cupy = cupy
    return _cupy


class Context:
    """A device: ``Context('cpu', 0)``, ``Context('gpu', 1)`` or ``Context(other_ctx)``.

    Usable as ``with mx.cpu(1):`` to make it the default device for new arrays. Contexts are
    interned -- ``mx.cpu(0) is mx.cpu(0)`` -- so comparing and hashing them is cheap.
    """
    __slots__ = ("device_typeid", "device_id", "__weakref__")
    devtype2str = _DEVTYPE2STR
    devstr2type = _STR2DEVTYPE
    _interned: dict = {}

    def __new__(cls, device_type, device_id: int = 0):
        if isinstance(device_type, Context):
            return device_type
        key = (device_type, device_id)
        ctx = cls._interned.get(key)
        if ctx is not None:
            return ctx
        if device_type not in _STR2DEVTYPE:
            raise HybridNetError(f"unknown device type {device_type!r}; expected one of "
                                 f"{', '.join(_STR2DEVTYPE)}")
        if int(device_id) < 0:
            raise HybridNetError(f"device id must be >= 0, got {device_id}")
        ctx = object.__new__(cls)
        ctx.device_typeid, ctx.device_id = _STR2DEVTYPE[device_type], int(device_id)
        return cls._interned.setdefault((device_type, int(device_id)),
                                        cls._interned.setdefault(key, ctx))

    def __reduce__(self):
        return (Context, (self.device_type, self.device_id))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    @property
    def device_type(self) -> str:
        """'cpu', 'gpu', 'cpu_pinned' or 'cpu_shared'."""
        return _DEVTYPE2STR[self.device_typeid]

    @property
    def is_gpu(self) -> bool:
        """Whether arrays on this device live in GPU memory (cupy)."""
        return self.device_typeid == 2

    @property
    def xp(self):
        """The array module holding this device's data: numpy, or cupy for a GPU."""
        if self.device_typeid != 2:
            return np
        cupy = _import_cupy()
        if self.device_id >= num_gpus():
            raise HybridNetError(f"{self} requested but only {num_gpus()} GPU(s) are visible")
        return cupy

    def __repr__(self):
        return f"{self.device_type}({self.device_id})"

    __str__ = __repr__

    def __enter__(self):
        stack = _stack()
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()

    def empty_cache(self):
        """Release cached device memory (a no-op on CPU)."""
        if self.is_gpu:
            _import_cupy().get_default_memory_pool().free_all_blocks()

    @classmethod
    def parse(cls, text) -> "Context":
        """Parse ``'cpu(0)'`` / ``'gpu(1)'`` (how contexts appear in operator parameters)."""
        if isinstance(text, Context):
            return text
        match = re.fullmatch(r"\s*(cpu|gpu|cpu_pinned|cpu_shared)\((\d+)\)\s*", str(text))
        if not match:
            raise HybridNetError(f"cannot parse a context from {text!r}; expected e.g. 'cpu(0)'")
        return cls(match.group(1), int(match.group(2)))


def _stack() -> list:
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def cpu(device_id: int = 0) -> Context:
    """The CPU device ``device_id`` (distinct ids are distinct engine devices)."""
    return Context("cpu", device_id)


def cpu_pinned(device_id: int = 0) -> Context:
    """Page-locked CPU memory; on this backend it is ordinary CPU memory."""
    return Context("cpu_pinned", device_id)


def gpu(device_id: int = 0) -> Context:
    """The GPU ``device_id``; arrays there need cupy (checked when first used)."""
    return Context("gpu", device_id)


def current_context() -> Context:
    """The innermost ``with ctx:`` device of this thread, or ``cpu(0)``."""
    stack = _stack()
    return stack[-1] if stack else Context.default_ctx


Context.default_ctx = Context("cpu", 0)


def num_gpus() -> int:
    """How many GPUs cupy can see (0 when cupy or CUDA is missing)."""
    try:
        cupy = _import_cupy()
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no cupy, no driver, no device: all mean zero GPUs here
        return 0


def gpu_memory_info(device_id: int = 0) -> tuple:
    """(free, total) bytes of GPU ``device_id``; a HybridNetError without cupy or that GPU."""
    cupy = gpu(device_id).xp
    with cupy.cuda.Device(device_id):
        free, total = cupy.cuda.runtime.memGetInfo()
    return int(free), int(total)
