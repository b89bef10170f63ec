"""Every ``HYBRIDNET_*`` setting, declared once with its type, default and one line of doc.

Code reads settings through ``config.get(NAME)`` and never looks at ``os.environ`` itself. A
setting is read from the environment each time it is asked for, so tests can change it with
``mx.test_utils.environment``. Where MXNet had an equivalent variable it is accepted as a fallback
(``MXNET_ENGINE_TYPE`` for ``HYBRIDNET_ENGINE_TYPE``), so existing launch scripts keep working.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from .base import HybridNetError

__all__ = ["Setting", "SETTINGS", "get", "describe"]


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected 0/1/true/false, got {text!r}")


@dataclass(frozen=True)
class Setting:
    """One environment setting: its name, how to parse it, its default and what it does."""
    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    aliases: tuple = ()

    def read(self) -> Any:
        for key in (self.name,) + self.aliases:
            text = os.environ.get(key)
            if text is not None:
                try:
                    return self.parse(text)
                except ValueError as err:
                    raise HybridNetError(
                        f"environment variable {key}={text!r} is invalid: {err}") from None
        return self.default


def _engine_type(text: str) -> str:
    # MXNet's names for the threaded engines all mean our ThreadedEngine.
    known = {"threadedengine": "ThreadedEngine", "threadedengineperdevice": "ThreadedEngine",
             "threadedenginepooled": "ThreadedEngine", "naiveengine": "NaiveEngine"}
    key = text.strip().lower()
    if key not in known:
        raise ValueError("expected ThreadedEngine or NaiveEngine")
    return known[key]


def _int(text: str) -> int:
    return int(text.strip())


def _float(text: str) -> float:
    return float(text.strip())


def _str(text: str) -> str:
    return text.strip()


SETTINGS: dict[str, Setting] = {s.name: s for s in [
    Setting("HYBRIDNET_ENGINE_TYPE", _engine_type, "ThreadedEngine",
            "ThreadedEngine (asynchronous, default) or NaiveEngine (runs every op inline; for debugging)",
            ("MXNET_ENGINE_TYPE",)),
    Setting("HYBRIDNET_CPU_WORKER_NTHREADS", _int, 1,
            "worker threads per CPU device for compute work", ("MXNET_CPU_WORKER_NTHREADS",)),
    Setting("HYBRIDNET_GPU_WORKER_NTHREADS", _int, 2,
            "worker threads per GPU device for compute work", ("MXNET_GPU_WORKER_NTHREADS",)),
    Setting("HYBRIDNET_IO_NTHREADS", _int, 2,
            "threads of the shared pool that runs copies and I/O work (prop 'copy' / 'io')"),
    Setting("HYBRIDNET_ENGINE_INLINE_SIZE", _int, 65536,
            "an eager op whose inputs are ready and whose outputs hold at most this many elements "
            "runs in the calling thread (a thread hand-off costs more than the op); 0 disables"),
    Setting("HYBRIDNET_ENGINE_BULK_SIZE", _int, 0,
            "default bulk size for eager ops (see mx.engine.set_bulk_size); 0 = no bulking"),
    Setting("HYBRIDNET_NUM_BLAS_THREADS", _int, 0,
            "threads BLAS may use (0 = leave BLAS's own default)", ("OMP_NUM_THREADS",)),
]}


def get(name: str) -> Any:
    """The current value of setting ``name`` (environment first, then its default)."""
    try:
        setting = SETTINGS[name]
    except KeyError:
        raise HybridNetError(f"unknown setting {name!r}; known settings: "
                             f"{', '.join(sorted(SETTINGS))}") from None
    return setting.read()


def describe() -> str:
    """A table of every setting, its default and its doc (the README lists the same)."""
    rows = [f"{s.name} (default {s.default!r}): {s.doc}" for s in SETTINGS.values()]
    return "\n".join(rows)
