"""``mx.profiler``: time the engine's work and your own code; Chrome traces and summary tables.

    >>> mx.profiler.set_config(profile_all=True, filename='profile.json', aggregate_stats=True)
    >>> mx.profiler.set_state('run')
    >>> ... train ...
    >>> mx.profiler.set_state('stop')
    >>> mx.profiler.dump()                 # profile.json: open in chrome://tracing or Perfetto
    >>> print(mx.profiler.dumps())         # per-operator count / total / min / max / avg (ms)

While running, every engine task (each eager operator, copy, or executor forward/backward, which
run as one task per graph) is recorded with its name, device, thread and start/end time, by the
hook the engine calls around every task (``Engine.profiler``); inside an executor's pass each
operator is recorded too (``FullyConnected``, ``_backward_FullyConnected``, ...), so the
aggregate table times every layer like ``caffe time`` (the whole passes are in the
``executor`` category). ``profile_symbolic`` and
``profile_imperative`` both turn that on (the engine does not tell them apart);
``profile_memory``, ``profile_api``, ``continuous_dump`` and ``dump_period`` are accepted for
MXNet compatibility and record nothing more. Your own code can be timed with ``Domain``,
``Task``, ``Frame``, ``Event``, ``Counter`` and ``Marker`` (they record while the profiler runs
and is not paused). ``HYBRIDNET_PROFILER_AUTOSTART=1`` (or ``MXNET_PROFILER_AUTOSTART``) starts
profiling at import.
"""
from __future__ import annotations

import json
import os
import threading
import time
import warnings

from . import config
from .base import HybridNetError

__all__ = ["set_config", "set_state", "pause", "resume", "dump", "dumps", "Domain", "Task",
           "Frame", "Event", "Counter", "Marker", "profiler_set_config", "profiler_set_state",
           "dump_profile", "state"]

_CONFIG_KEYS = ("filename", "profile_all", "profile_symbolic", "profile_imperative",
                "profile_memory", "profile_api", "continuous_dump", "dump_period",
                "aggregate_stats", "profile_process")
_SORT_KEYS = {"total": 1, "avg": 4, "min": 2, "max": 3, "count": 0}


def _check_process(profile_process: str) -> None:
    if profile_process not in ("worker", "server"):
        raise ValueError(f"profile_process must be 'worker' or 'server', got "
                         f"{profile_process!r}")
    if profile_process == "server":
        raise HybridNetError("profiling the KVStore servers is not supported; profile the "
                             "worker processes (profile_process='worker')")


def _device(ctx) -> str:
    """The trace's process label of a device (small eager ops run inline in the caller)."""
    return "inline (caller thread)" if ctx is None else f"{ctx.device_type}/{ctx.device_id}"


class _Profiler:
    """The process-wide recorder: configuration, state, trace events and aggregate stats."""

    def __init__(self):
        self.config = {"filename": "profile.json", "profile_all": False,
                       "profile_symbolic": True, "profile_imperative": True,
                       "profile_memory": True, "profile_api": True, "continuous_dump": False,
                       "dump_period": 1.0, "aggregate_stats": False,
                       "profile_process": "worker"}
        self.state = "stop"
        self.paused = False
        self.lock = threading.Lock()
        self.events: list = []
        self.stats: dict = {}          # (category, name) -> [count, total, min, max] in ms
        self.pids: dict = {}           # process label -> trace pid
        # perf_counter is monotonic; trace timestamps are wall-clock microseconds
        self.wall0 = time.time() * 1e6 - time.perf_counter() * 1e6

    @property
    def recording(self) -> bool:
        return self.state == "run" and not self.paused

    def pid(self, label: str) -> int:
        pid = self.pids.get(label)
        if pid is None:
            pid = self.pids[label] = len(self.pids)
            self.events.append({"ph": "M", "name": "process_name", "pid": pid,
                                "args": {"name": label}})
        return pid

    def add_span(self, category: str, process: str, name: str, start: float, end: float,
                 begin_ph: str = "B", end_ph: str = "E", tid: int | None = None) -> None:
        """Record a span timed with perf_counter (seconds)."""
        tid = threading.get_ident() if tid is None else tid
        ts0, ts1 = self.wall0 + start * 1e6, self.wall0 + end * 1e6
        ms = (end - start) * 1e3
        with self.lock:
            pid = self.pid(process)
            self.events.append({"name": name, "cat": category, "ph": begin_ph, "ts": ts0,
                                "pid": pid, "tid": tid})
            self.events.append({"name": name, "cat": category, "ph": end_ph, "ts": ts1,
                                "pid": pid, "tid": tid})
            if self.config["aggregate_stats"]:
                s = self.stats.get((category, name))
                if s is None:
                    self.stats[(category, name)] = [1, ms, ms, ms]
                else:
                    s[0] += 1
                    s[1] += ms
                    s[2] = min(s[2], ms)
                    s[3] = max(s[3], ms)

    def add_event(self, event: dict, process: str) -> None:
        with self.lock:
            event["pid"] = self.pid(process)
            event.setdefault("tid", threading.get_ident())
            self.events.append(event)

    # ---- the engine hook -------------------------------------------------------------------
    def engine_hook(self, task, start: float, end: float) -> None:
        """Called by the engine around every task it runs (see ``Engine.profiler``)."""
        if not self.recording:
            return
        ctx = getattr(task, "ctx", None)
        name = task.name or "engine_task"
        # a bound executor's whole pass; its operators are recorded one by one (operator_timer)
        category = "executor" if name.startswith("executor.") else "operator"
        self.add_span(category, _device(ctx), name, start, end)

    def operator_timer(self):
        """``record(name, ctx, start, end)`` for the operators inside an executor pass while
        recording symbolic work, else None (so an unprofiled pass costs one check)."""
        if not self.recording or not (self.config["profile_all"]
                                      or self.config["profile_symbolic"]):
            return None
        return self.record_operator

    def record_operator(self, name: str, ctx, start: float, end: float) -> None:
        self.add_span("operator", _device(ctx), name, start, end)

    def install_hook(self) -> None:
        from .engine import get_engine
        on = self.state == "run" and (self.config["profile_all"]
                                      or self.config["profile_symbolic"]
                                      or self.config["profile_imperative"])
        get_engine().profiler = self.engine_hook if on else None


_PROFILER = _Profiler()
# for executors: the per-operator recorder while profiling, else None (not in __all__)
operator_timer = _PROFILER.operator_timer


def state() -> str:
    """The profiler's state: 'run' or 'stop'."""
    return _PROFILER.state


def set_config(**kwargs) -> None:
    """``set_config(filename='profile.json', profile_all=False, profile_symbolic=True,
    profile_imperative=True, profile_memory=True, profile_api=True, continuous_dump=False,
    dump_period=1.0, aggregate_stats=False, profile_process='worker')``."""
    unknown = sorted(set(kwargs) - set(_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"set_config: unknown option(s) {', '.join(unknown)}; options are "
                         f"{', '.join(_CONFIG_KEYS)}")
    _check_process(kwargs.get("profile_process", "worker"))
    _PROFILER.config.update(kwargs)
    _PROFILER.install_hook()


def set_state(state: str = "stop", profile_process: str = "worker") -> None:
    """Start (``'run'``) or stop (``'stop'``) recording."""
    if state not in ("run", "stop"):
        raise ValueError(f"set_state: state must be 'run' or 'stop', got {state!r}")
    _check_process(profile_process)
    if state == "stop":
        from .engine import get_engine
        get_engine().wait_all()        # let running work finish while still recorded
    _PROFILER.state = state
    _PROFILER.paused = False
    _PROFILER.install_hook()


def pause(profile_process: str = "worker") -> None:
    """Stop recording for a while (the state stays 'run'); ``resume()`` continues."""
    _check_process(profile_process)
    _PROFILER.paused = True


def resume(profile_process: str = "worker") -> None:
    """Continue recording after ``pause()``."""
    _check_process(profile_process)
    _PROFILER.paused = False


def dump(finished: bool = True, profile_process: str = "worker") -> None:
    """Write the events recorded so far to ``filename`` as Chrome trace JSON
    (``{"traceEvents": [...], "displayTimeUnit": "ms"}``). With ``finished`` the recorded
    events are cleared afterwards. The file is written whole and renamed into place."""
    _check_process(profile_process)
    with _PROFILER.lock:
        events = list(_PROFILER.events)
        if finished:
            _PROFILER.events = [e for e in _PROFILER.events if e.get("ph") == "M"]
    fname = _PROFILER.config["filename"]
    tmp = f"{fname}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
    os.replace(tmp, fname)


def dumps(reset: bool = False, format: str = "table", sort_by: str = "total",
          ascending: bool = False) -> str:
    """The aggregate statistics (needs ``set_config(aggregate_stats=True)``): per category,
    each name's count, total, min, max and average time in ms, as MXNet's text table or JSON.
    ``reset`` clears them afterwards."""
    if format not in ("table", "json"):
        raise ValueError(f"dumps: format must be 'table' or 'json', got {format!r}")
    if sort_by not in _SORT_KEYS:
        raise ValueError(f"dumps: sort_by must be one of {', '.join(_SORT_KEYS)}, got "
                         f"{sort_by!r}")
    if not _PROFILER.config["aggregate_stats"]:
        raise HybridNetError("dumps() reports aggregate statistics; call "
                             "mx.profiler.set_config(aggregate_stats=True) before profiling")
    with _PROFILER.lock:
        stats = {k: list(v) for k, v in _PROFILER.stats.items()}
        if reset:
            _PROFILER.stats = {}
    by_cat: dict = {}
    for (cat, name), (count, total, lo, hi) in stats.items():
        by_cat.setdefault(cat, []).append((name, [count, total, lo, hi, total / count]))
    column = _SORT_KEYS[sort_by]
    for rows in by_cat.values():
        rows.sort(key=lambda r: r[1][column], reverse=not ascending)
    if format == "json":
        return json.dumps({"Time": {cat: {name: {"Count": v[0], "Total": round(v[1], 4),
                                                 "Min": round(v[2], 4), "Max": round(v[3], 4),
                                                 "Avg": round(v[4], 4)}
                                          for name, v in rows}
                                    for cat, rows in sorted(by_cat.items())},
                           "Unit": {"Time": "ms"}}, indent=4)
    lines = ["", "Profile Statistics:", "\tNote the difference in units for different entries."]
    header = (f"{'Name':<30}{'Total Count':>11}{'Time (ms)':>17}{'Min Time (ms)':>17}"
              f"{'Max Time (ms)':>17}{'Avg Time (ms)':>17}")
    rule = (f"{'----':<30}{'-----------':>11}{'---------':>17}{'-------------':>17}"
            f"{'-------------':>17}{'-------------':>17}")
    for cat, rows in sorted(by_cat.items()):
        lines += [cat, "=================", header, rule]
        lines += [f"{name:<30}{v[0]:>11}{v[1]:>17.4f}{v[2]:>17.4f}{v[3]:>17.4f}{v[4]:>17.4f}"
                  for name, v in rows]
        lines.append("")
    return "\n".join(lines) + "\n"


# ---- objects for timing your own code -------------------------------------------------------
class Domain:
    """``Domain(name)``: a category for your tasks, frames, counters and markers."""

    def __init__(self, name: str):
        self.name = name

    def __str__(self):
        return self.name

    def new_task(self, name: str) -> "Task":
        return Task(self, name)

    def new_frame(self, name: str) -> "Frame":
        return Frame(self, name)

    def new_counter(self, name: str, value=None) -> "Counter":
        return Counter(self, name, value)

    def new_marker(self, name: str) -> "Marker":
        return Marker(self, name)


class _Span:
    """A start()/stop() interval recorded under ``category`` (also a context manager)."""
    _kind = ""

    def __init__(self, category: str, name: str):
        self.name, self._category, self._start = name, category, None

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> None:
        if self._start is None:
            raise HybridNetError(f"{type(self).__name__} {self.name!r}: stop() without start()")
        end, start, self._start = time.perf_counter(), self._start, None
        if _PROFILER.recording:
            _PROFILER.add_span(self._category, self._category, self.name, start, end)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __str__(self):
        return self.name


class Task(_Span):
    """``Task(domain, name)``: a timed piece of work in ``domain`` (``start()`` / ``stop()``)."""

    def __init__(self, domain: Domain, name: str):
        super().__init__(domain.name, name)


class Frame(_Span):
    """``Frame(domain, name)``: a timed frame (e.g. one training iteration) in ``domain``."""

    def __init__(self, domain: Domain, name: str):
        super().__init__(f"{domain.name},frame", name)


class Event(_Span):
    """``Event(name)``: a timed event outside any domain (category 'event')."""

    def __init__(self, name: str):
        super().__init__("event", name)


class Counter:
    """``Counter(domain, name, value=None)``: a value over time (``set_value``, ``increment``,
    ``decrement``, ``+=``, ``-=``), drawn as a counter track in the trace."""

    def __init__(self, domain: Domain, name: str, value=None):
        self.name, self.domain, self.value = name, domain, 0
        if value is not None:
            self.set_value(value)

    def set_value(self, value) -> None:
        self.value = value
        if _PROFILER.recording:
            ts = _PROFILER.wall0 + time.perf_counter() * 1e6
            _PROFILER.add_event({"name": self.name, "cat": self.domain.name, "ph": "C",
                                 "ts": ts, "args": {self.name: value}}, self.domain.name)

    def increment(self, delta=1) -> None:
        self.set_value(self.value + delta)

    def decrement(self, delta=1) -> None:
        self.set_value(self.value - delta)

    def __iadd__(self, delta):
        self.increment(delta)
        return self

    def __isub__(self, delta):
        self.decrement(delta)
        return self

    def __str__(self):
        return self.name


class Marker:
    """``Marker(domain, name)``: ``mark(scope='process')`` records an instant event
    (scope 'global', 'process', 'thread' or 'task')."""

    def __init__(self, domain: Domain, name: str):
        self.name, self.domain = name, domain

    def mark(self, scope: str = "process") -> None:
        if scope not in ("global", "process", "thread", "task"):
            raise ValueError(f"Marker.mark: scope must be global, process, thread or task, "
                             f"got {scope!r}")
        if _PROFILER.recording:
            ts = _PROFILER.wall0 + time.perf_counter() * 1e6
            category = f"{self.domain.name},instant_marker"
            _PROFILER.add_event({"name": self.name, "cat": category, "ph": "i", "ts": ts,
                                 "s": {"task": "t"}.get(scope, scope[0])}, category)


# ---- MXNet's deprecated forms -----------------------------------------------------------------
def profiler_set_config(mode: str = "symbolic", filename: str = "profile.json") -> None:
    """Deprecated: ``set_config(profile_<mode>=True, filename=filename)``."""
    warnings.warn("profiler.profiler_set_config() is deprecated. Please use "
                  "profiler.set_config() instead", DeprecationWarning, stacklevel=2)
    if mode not in ("symbolic", "imperative", "all", "api", "memory"):
        raise ValueError(f"profiler_set_config: unknown mode {mode!r}")
    set_config(**{f"profile_{mode}": True, "filename": filename})


def profiler_set_state(state: str = "stop") -> None:
    """Deprecated: ``set_state(state)``."""
    warnings.warn("profiler.profiler_set_state() is deprecated. Please use "
                  "profiler.set_state() instead", DeprecationWarning, stacklevel=2)
    set_state(state)


def dump_profile() -> None:
    """Deprecated: ``dump(True)``."""
    warnings.warn("profiler.dump_profile() is deprecated. Please use profiler.dump() instead",
                  DeprecationWarning, stacklevel=2)
    dump(True)


if config.get("HYBRIDNET_PROFILER_AUTOSTART"):
    set_state("run")
