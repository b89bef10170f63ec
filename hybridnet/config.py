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


def _port_range(text: str):
    low, sep, high = text.strip().partition("-")
    if not sep:
        raise ValueError("expected 'LOW-HIGH', e.g. 9000-9100")
    low, high = int(low), int(high)
    if not 0 < low <= high < 65536:
        raise ValueError(f"expected 0 < LOW <= HIGH < 65536, got {low}-{high}")
    return (low, high)


def _auth_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in ("full", "header", "curve"):
        raise ValueError("expected 'full', 'header' or 'curve'")
    return mode


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
    Setting("HYBRIDNET_SAVE_FSYNC", _parse_bool, True,
            "nd.save flushes its temporary file to disk before renaming it over the target, so "
            "a checkpoint survives a power loss; 0 skips the flush (faster for many small files)"),
    Setting("HYBRIDNET_NUM_BLAS_THREADS", _int, 0,
            "threads numpy's BLAS may use, set when the engine starts, and the threads a large "
            "operator (FullyConnected, Convolution, pooling, softmax) splits its work over; "
            "0 = cores // "
            "HYBRIDNET_CPU_WORKER_NTHREADS (see hybridnet/engine/blas.py); 1 suits a "
            "machine shared with other busy programs", ("OMP_NUM_THREADS",)),
    Setting("HYBRIDNET_CPU_POOL_MB", _int, 1024,
            "free memory (MB) kept for reuse by large eager CPU arrays, which saves the page "
            "faults of fresh allocations every step (engine/storage.py); 0 disables"),
    Setting("HYBRIDNET_MNIST_DIR", _str, "",
            "directory holding MNIST's idx files (gzip or not) for mx.test_utils.get_mnist(), "
            "which never downloads"),
    # ---- distributed KVStore (kvstore/dist, launch.py); DMLC_* names accepted as in ps-lite --
    Setting("HYBRIDNET_ROLE", _str, "",
            "distributed role of this process: scheduler, server or worker", ("DMLC_ROLE",)),
    Setting("HYBRIDNET_PS_ROOT_URI", _str, "",
            "scheduler host name or IP", ("DMLC_PS_ROOT_URI",)),
    Setting("HYBRIDNET_PS_ROOT_PORT", _int, 0, "scheduler port", ("DMLC_PS_ROOT_PORT",)),
    Setting("HYBRIDNET_NUM_SERVER", _int, 0, "number of servers in the job",
            ("DMLC_NUM_SERVER",)),
    Setting("HYBRIDNET_NUM_WORKER", _int, 0, "number of workers in the job",
            ("DMLC_NUM_WORKER",)),
    Setting("HYBRIDNET_NODE_RANK", _int, -1,
            "rank this node asks for within its role (the launcher sets its task index; -1: "
            "the scheduler assigns ranks by sorted host:port)"),
    Setting("HYBRIDNET_INTERFACE", _str, "",
            "network interface whose IPv4 address this node binds and advertises",
            ("DMLC_INTERFACE",)),
    Setting("HYBRIDNET_NODE_HOST", _str, "",
            "host name or IP this node binds and advertises (wins over the interface)",
            ("DMLC_NODE_HOST",)),
    Setting("HYBRIDNET_NODE_PORT", _int, 0, "force this node's listening port", ("PORT",)),
    Setting("HYBRIDNET_KVSTORE_PORT_RANGE", _port_range, None,
            "'A-B': every listening port of the job lies in [A, B] (default: OS-chosen)"),
    Setting("HYBRIDNET_KVSTORE_BIND_ALL", _parse_bool, False,
            "listen on 0.0.0.0 instead of the advertised address only",
            ("DMLC_USE_KUBERNETES",)),
    Setting("HYBRIDNET_KVSTORE_SECRET", _str, "",
            "the job's 32-byte secret as 64 hex digits (the launcher makes one per job); "
            "every message is authenticated with it; never printed"),
    Setting("HYBRIDNET_KVSTORE_JOB_ID", _str, "",
            "job id carried by every message (the launcher makes one; default: derived from "
            "the scheduler address)"),
    Setting("HYBRIDNET_KVSTORE_AUTH", _auth_mode, "full",
            "'full': header and array bytes authenticated (HMAC-SHA256; arrays of 64 KiB and "
            "more through their NH universal hash, kvstore/dist/nh.py); 'header': the header "
            "only (it binds sizes, command, sender and sequence number); 'curve': CurveZMQ "
            "encryption of every connection, keys derived from the job secret, plus the "
            "header HMAC"),
    Setting("HYBRIDNET_KVSTORE_HEARTBEAT_INTERVAL", _float, 1.0,
            "seconds between ZMTP heartbeats on every connection of a distributed job"),
    Setting("HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT", _float, 15.0,
            "seconds after which a node whose connection died (or stopped answering "
            "heartbeats) is declared dead and the job stops"),
    Setting("HYBRIDNET_KVSTORE_RENDEZVOUS_TIMEOUT", _float, 30.0,
            "seconds the scheduler waits for every node to register before stopping the job"),
    Setting("HYBRIDNET_KVSTORE_STALL_WARN", _float, 60.0,
            "seconds a sync round may wait for missing ranks before the server logs them"),
    Setting("HYBRIDNET_KVSTORE_STALL_ABORT", _float, 600.0,
            "seconds a sync round may wait for missing ranks before the job stops (0: never)"),
    Setting("HYBRIDNET_KVSTORE_ABORT_GRACE", _float, 1.0,
            "seconds a worker whose job was stopped gets to raise the error in user code "
            "before the process exits by itself (negative: never force the exit)"),
    Setting("HYBRIDNET_KVSTORE_BIGARRAY_BOUND", _int, 1000000,
            "arrays with at least this many elements are split over all servers",
            ("MXNET_KVSTORE_BIGARRAY_BOUND",)),
    Setting("HYBRIDNET_KVSTORE_MAX_MESSAGE_MB", _int, 4096,
            "largest message part (MiB) a node accepts; bigger ones are dropped unread"),
    Setting("HYBRIDNET_KVSTORE_ALLOW_IMPORT", _parse_bool, True,
            "servers may import an optimizer class named by 'module:Class' in an authenticated "
            "set_optimizer request (registered optimizers never need an import)"),
    Setting("HYBRIDNET_KVSTORE_ROLE_AT_IMPORT", _parse_bool, True,
            "like MXNet, 'import hybridnet' in a process with DMLC_ROLE=server|scheduler runs "
            "that role and exits"),
    Setting("HYBRIDNET_VERBOSE", _int, 0,
            "distributed logging: 1 = rendezvous table, 2 = one line per message (no payloads)",
            ("PS_VERBOSE",)),
    Setting("HYBRIDNET_UPDATE_ON_KVSTORE", _parse_bool, True,
            "Module lets a KVStore that can run the optimizer update the weights (1) or "
            "updates them on each device after summing gradients through it (0)",
            ("MXNET_UPDATE_ON_KVSTORE",)),
    Setting("HYBRIDNET_PROFILER_AUTOSTART", _parse_bool, False,
            "start mx.profiler (set_state('run')) when hybridnet is imported",
            ("MXNET_PROFILER_AUTOSTART",)),
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
