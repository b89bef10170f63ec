"""Loaded by every process of a guarded test job (this folder is put first on PYTHONPATH).

``pickle.loads``, ``pickle.load``, ``pickle.Unpickler`` and ``marshal.loads`` raise when called
from anything but the interpreter's import machinery or numba's on-disk cache (which unpickle
local files of their own): a distributed job that ever unpickled network input would fail.
"""
import marshal
import pickle
import sys

_ALLOWED = ("importlib", "_frozen_importlib", "zipimport", "numba")


def _guard(name, real):
    def guarded(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if not caller.startswith(_ALLOWED):
            raise RuntimeError(f"{name} called from {caller!r} in a guarded distributed job")
        return real(*args, **kwargs)
    return guarded


class _GuardedUnpickler(pickle.Unpickler):
    def __init__(self, *args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if not caller.startswith(_ALLOWED):
            raise RuntimeError(f"pickle.Unpickler used from {caller!r} in a guarded job")
        super().__init__(*args, **kwargs)


pickle.loads = _guard("pickle.loads", pickle.loads)
pickle.load = _guard("pickle.load", pickle.load)
pickle.Unpickler = _GuardedUnpickler
marshal.loads = _guard("marshal.loads", marshal.loads)
