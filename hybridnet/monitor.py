"""``mx.mon`` / ``mx.monitor``: watch statistics of the arrays inside executors while training.

    >>> mon = mx.mon.Monitor(interval=100, pattern='.*weight|.*output')
    >>> mod.fit(train_iter, monitor=mon, ...)          # or: mon.install(executor)

Every ``interval`` batches (``tic()`` at the start of a batch, ``toc()`` after it), the monitor
collects ``stat_func(array)`` -- by default ``norm(x) / sqrt(x.size)`` -- for every operator
output the executor reports through ``set_monitor_callback`` (gradients appear under
``*_backward_*`` names) and, at ``toc``, for every argument and auxiliary array, keeping those
whose name matches ``pattern`` (``re.match``). ``toc()`` returns ``[(step, name, stat string)]``;
``toc_print()`` logs ``Batch: {step:7d} {name:30s} {stats}``.
"""
from __future__ import annotations

import logging
import re
from math import sqrt
from typing import Callable

import numpy as np

from .ndarray import NDArray

__all__ = ["Monitor"]


def _default_stat(x: NDArray) -> NDArray:
    """``norm(x) / sqrt(x.size)`` as a 1-element NDArray (MXNet's default statistic)."""
    values = x.asnumpy().astype(np.float64)
    return NDArray(np.array([np.sqrt((values * values).sum()) / sqrt(max(x.size, 1))],
                            dtype=np.float32), x.context)


def _format(stats) -> str:
    """MXNet's text form: each statistic followed by a tab; 1-element arrays as scalars."""
    if not isinstance(stats, list):
        stats = [stats]
    text = ""
    for v in stats:
        if isinstance(v, NDArray):
            text += (str(v.asscalar()) if v.shape == (1,) else str(v.asnumpy())) + "\t"
        else:
            arr = np.asarray(v)
            text += (str(arr.reshape(-1)[0]) if arr.size == 1 else str(arr)) + "\t"
    return text


class Monitor:
    """``Monitor(interval, stat_func=None, pattern='.*', sort=False, monitor_all=False)``.

    Args:
        interval: collect on every ``interval``-th batch (counted by ``tic``).
        stat_func: ``f(NDArray) -> NDArray`` (or a list of them, or a number); default
            ``norm(x) / sqrt(x.size)``.
        pattern: regular expression (``re.match``) the array names must match.
        sort: sort the results by name.
        monitor_all: also report every operator's inputs, not only its outputs.
    """

    def __init__(self, interval: int, stat_func: Callable | None = None, pattern: str = ".*",
                 sort: bool = False, monitor_all: bool = False):
        if int(interval) < 1:
            raise ValueError(f"Monitor: interval must be >= 1, got {interval}")
        self.stat_func = stat_func or _default_stat
        self.interval = int(interval)
        self.activated = False
        self.queue: list = []
        self.step = 0
        self.exes: list = []
        self.re_prog = re.compile(pattern)
        self.sort = sort
        self.monitor_all = monitor_all

    def stat_helper(self, name, array: NDArray) -> None:
        """The executor's monitor callback: record ``stat_func(array)`` when active."""
        if isinstance(name, bytes):
            name = name.decode()
        if not self.activated or not self.re_prog.match(name):
            return
        self.queue.append((self.step, name, self.stat_func(array)))

    def install(self, exe) -> None:
        """Attach to an executor (anything with ``set_monitor_callback``, ``arg_arrays``,
        ``aux_arrays`` and the symbol's names)."""
        if not hasattr(exe, "set_monitor_callback"):
            raise TypeError(f"Monitor.install expects an Executor, got {type(exe).__name__}")
        exe.set_monitor_callback(self.stat_helper, self.monitor_all)
        self.exes.append(exe)

    def _wait(self) -> None:
        """Wait for the executors' pending work (their statistics arrive from engine tasks)."""
        for exe in self.exes:
            arrays = list(exe.arg_arrays) + list(exe.aux_arrays)
            arrays += [g for g in getattr(exe, "grad_arrays", None) or [] if g is not None]
            arrays += list(getattr(exe, "outputs", None) or [])
            for array in arrays:
                array.wait_to_read()

    def tic(self) -> None:
        """Start a batch; collection is on for every ``interval``-th one."""
        if self.step % self.interval == 0:
            self._wait()
            self.queue = []
            self.activated = True
        self.step += 1

    def toc(self) -> list:
        """End the batch: add the argument/aux statistics; return ``[(step, name, text)]``."""
        if not self.activated:
            return []
        self._wait()
        for exe in self.exes:
            symbol = getattr(exe, "_symbol", None) or exe.symbol
            for names, arrays in ((symbol.list_arguments(), exe.arg_arrays),
                                  (symbol.list_auxiliary_states(), exe.aux_arrays)):
                for name, array in zip(names, arrays):
                    if self.re_prog.match(name):
                        self.queue.append((self.step, name, self.stat_func(array)))
        self.activated = False
        if self.sort:
            self.queue.sort(key=lambda x: x[1])
        res = [(n, k, _format(v)) for n, k, v in self.queue]
        self.queue = []
        return res

    def toc_print(self) -> None:
        """``toc()`` and log each line as ``Batch: {step:7d} {name:30s} {stats}``."""
        for n, k, v in self.toc():
            logging.info("Batch: {:7d} {:30s} {:s}".format(n, k, v))
