"""MXNet's pickle format for optimizer states (``Updater.get_states`` / ``.states`` files).

MXNet 1.x pickles ``{index: state}`` (or ``(states, optimizer)``) where every array is an
``mxnet.ndarray.ndarray.NDArray`` reduced to ``NDArray(None)`` plus the state
``{'handle': bytearray(<single-array record of the .params format>)}``. ``dumps`` writes exactly
that for our NDArrays, so MXNet can read our files, and ``loads`` reads both MXNet's files and
ours without MXNet installed: the MXNet class name is mapped to a placeholder that is turned
back into our NDArray afterwards; an optimizer pickled by MXNet (``dump_optimizer=True``)
becomes the hybridnet optimizer of the same name with MXNet's attributes (its lr_scheduler
likewise). These are local files, trusted like MXNet trusts them; the
distributed store never pickles (see ``Updater.state_arrays``).
"""
from __future__ import annotations

import io
import pickle

from ..base import HybridNetError
from ..ndarray import NDArray

__all__ = ["dumps", "loads"]

_MX_MODULE, _MX_CLASS = "mxnet.ndarray.ndarray", "NDArray"


class _MXNDArrayRef:
    """What an MXNet NDArray unpickles to here, until ``_restore`` makes it an NDArray."""

    def __init__(self, handle=None):
        self.handle = handle

    def __setstate__(self, state):
        self.handle = state["handle"]


class _Pickler(pickle._Pickler):  # the Python pickler: it lets us name MXNet's class
    def reducer_override(self, obj):
        if isinstance(obj, NDArray):
            from ..ndarray.serialization import array_to_bytes
            return _MXNDArrayRef, (None,), {"handle": bytearray(array_to_bytes(obj))}
        return NotImplemented

    def save_global(self, obj, name=None):
        if obj is _MXNDArrayRef:
            self.save(_MX_MODULE)
            self.save(_MX_CLASS)
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == (_MX_MODULE, _MX_CLASS):
            return _MXNDArrayRef
        if module.startswith("mxnet.optimizer"):       # MXNet's optimizer -> ours, by name
            from .optimizer import _REGISTRY
            klass = _REGISTRY.get(name.lower())
            if klass is None:
                raise pickle.UnpicklingError(f"the states name MXNet's optimizer {name}, which "
                                             f"hybridnet does not have")
            return klass
        if module == "mxnet.lr_scheduler":
            from .. import lr_scheduler
            if not hasattr(lr_scheduler, name):
                raise pickle.UnpicklingError(f"the states name MXNet's lr_scheduler {name}, "
                                             f"which hybridnet does not have")
            return getattr(lr_scheduler, name)
        return super().find_class(module, name)


def dumps(obj) -> bytes:
    """Pickle ``obj`` with its NDArrays in MXNet's form (protocol 4, like MXNet on Python 3)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=4).dump(obj)
    return buf.getvalue()


def _restore(obj):
    if isinstance(obj, _MXNDArrayRef):
        from ..ndarray.serialization import array_from_bytes
        return array_from_bytes(bytes(obj.handle))
    if isinstance(obj, tuple):
        return tuple(_restore(x) for x in obj)
    if isinstance(obj, list):
        return [_restore(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _restore(v) for k, v in obj.items()}
    return obj


def loads(data: bytes):
    """Unpickle optimizer states written by ``dumps`` or by MXNet 1.x."""
    try:
        obj = _Unpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise HybridNetError(f"cannot read optimizer states ({len(data)} bytes): {err}") from err
    if isinstance(obj, tuple) and len(obj) == 2:       # (states, optimizer)
        return _restore(obj[0]), obj[1]
    return _restore(obj)
