"""``mx.callback``: functions ``Module.fit`` calls at the end of batches and epochs.

Batch-end and eval-end callbacks receive ``param`` with ``epoch``, ``nbatch``, ``eval_metric``
and ``locals`` (``mx.model.BatchEndParam``); epoch-end callbacks receive ``(epoch, symbol,
arg_params, aux_params)``. Log lines use the root ``logging`` logger in MXNet's format::

    Epoch[0] Batch [0-50]	Speed: 1234.56 samples/sec	accuracy=0.912000

Stopping early: a callback may ``raise StopTraining('why')`` or return a ``StopTraining``
instance (or the class). ``Module.fit`` finishes the current step (the other callbacks of the
same event still run, the epoch-end checkpoint is written) and then returns, logging the
reason. ``run_callbacks(callbacks, *args)`` implements that contract for fit loops;
``EarlyStopping`` is a ready-made eval-end callback that stops when a validation metric stops
improving. ``TqdmProgressBar`` draws a live bar; ``auto_progress_bar(logger)`` gives one only
when a person is watching (INFO logging, stderr a terminal, tqdm installed), which is how a
fit loop adds it by itself.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Callable

__all__ = ["Speedometer", "ProgressBar", "LogValidationMetricsCallback", "log_train_metric",
           "do_checkpoint", "module_checkpoint", "TensorBoard", "StopTraining", "EarlyStopping",
           "run_callbacks", "TqdmProgressBar", "auto_progress_bar"]


def __getattr__(name: str):
    # mx.callback.save_checkpoint is mx.model.save_checkpoint, as in MXNet; model.py imports
    # the Module code, which imports this module, so it is looked up on first use
    if name == "save_checkpoint":
        from .model import save_checkpoint
        return save_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StopTraining(Exception):
    """Raised (or returned) by a callback to end ``fit`` after the current step.

    ``StopTraining(reason='')``; ``reason`` is logged by ``fit``.
    """

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


def run_callbacks(callbacks, *args) -> StopTraining | None:
    """Call one callback or a list of them with ``args``; return the first stop signal.

    Every callback runs even after one asked to stop; exceptions other than ``StopTraining``
    propagate. The returned ``StopTraining`` (or None) tells the fit loop whether to end.
    """
    if callbacks is None:
        return None
    signal = None
    for cb in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        try:
            result = cb(*args)
        except StopTraining as stop:
            result = stop
        if result is StopTraining:
            result = StopTraining(f"{getattr(cb, '__name__', type(cb).__name__)} asked to stop")
        if isinstance(result, StopTraining) and signal is None:
            signal = result
    return signal


def module_checkpoint(mod, prefix: str, period: int = 1,
                      save_optimizer_states: bool = False) -> Callable:
    """Epoch-end callback: ``mod.save_checkpoint(prefix, epoch + 1, save_optimizer_states)``
    every ``period`` epochs (files numbered from 1: ``prefix-0001.params``)."""
    period = int(max(1, period))

    def _callback(iter_no, sym=None, arg=None, aux=None):
        if (iter_no + 1) % period == 0:
            mod.save_checkpoint(prefix, iter_no + 1, save_optimizer_states)
    return _callback


def do_checkpoint(prefix: str, period: int = 1) -> Callable:
    """Epoch-end callback: ``mx.model.save_checkpoint(prefix, epoch + 1, sym, arg, aux)`` every
    ``period`` epochs (``prefix-symbol.json`` and ``prefix-0001.params``, ...)."""
    period = int(max(1, period))

    def _callback(iter_no, sym, arg, aux):
        if (iter_no + 1) % period == 0:
            from .model import save_checkpoint   # model.py sits above this module
            save_checkpoint(prefix, iter_no + 1, sym, arg, aux)
    return _callback


def log_train_metric(period: int, auto_reset: bool = False) -> Callable:
    """Batch-end callback logging ``Iter[e] Batch[n] Train-name=value`` every ``period``
    batches (resetting the metric's local statistics when ``auto_reset``)."""
    def _callback(param):
        if param.nbatch % period == 0 and param.eval_metric is not None:
            for name, value in param.eval_metric.get_name_value():
                logging.info("Iter[%d] Batch[%d] Train-%s=%f", param.epoch, param.nbatch, name,
                             value)
            if auto_reset:
                param.eval_metric.reset_local()
    return _callback


class Speedometer:
    """``Speedometer(batch_size, frequent=50, auto_reset=True)``: log the training speed and
    the metric every ``frequent`` batches.

    With ``auto_reset`` the metric's local statistics are reset after each log line, so each
    line shows the batches since the previous one (``Batch [50-100]``); otherwise the values
    since the epoch began (``Batch [0-100]``).
    """

    def __init__(self, batch_size: int, frequent: int = 50, auto_reset: bool = True):
        self.batch_size = batch_size
        self.frequent = frequent
        self.init = False
        self.tic = 0.0
        self.last_count = 0
        self.auto_reset = auto_reset

    def __call__(self, param) -> None:
        count = param.nbatch
        if self.last_count > count:        # a new epoch began
            self.init = False
        self.last_count = count
        if not self.init:
            self.init = True
            self.tic = time.time()
            return
        if count % self.frequent != 0:
            return
        elapsed = time.time() - self.tic
        speed = self.frequent * self.batch_size / elapsed if elapsed > 0 else float("inf")
        if param.eval_metric is not None:
            name_value = param.eval_metric.get_name_value()
            values = [x for pair in name_value for x in pair]
            if self.auto_reset:
                param.eval_metric.reset_local()
                msg = "Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec" + "\t%s=%f" * len(
                    name_value)
                logging.info(msg, param.epoch, count - self.frequent, count, speed, *values)
            else:
                msg = "Epoch[%d] Batch [0-%d]\tSpeed: %.2f samples/sec" + "\t%s=%f" * len(
                    name_value)
                logging.info(msg, param.epoch, count, speed, *values)
        else:
            logging.info("Iter[%d] Batch [%d]\tSpeed: %.2f samples/sec", param.epoch, count,
                         speed)
        self.tic = time.time()


class ProgressBar:
    """``ProgressBar(total, length=80)``: log a text progress bar ``[====----] 50%``."""

    def __init__(self, total: int, length: int = 80):
        self.bar_len = length
        self.total = total

    def __call__(self, param) -> None:
        count = param.nbatch
        filled_len = int(round(self.bar_len * count / float(self.total)))
        percents = math.ceil(100.0 * count / float(self.total))
        prog_bar = "=" * filled_len + "-" * (self.bar_len - filled_len)
        logging.info("[%s] %s%s\r", prog_bar, percents, "%")


class TqdmProgressBar:
    """``TqdmProgressBar(total=None, desc='Epoch', file=None)``: a batch-end callback drawing a
    tqdm bar per epoch, with the metric values as its postfix.

    ``total`` is the number of batches per epoch (None: a counter without a percentage). A
    new bar starts when ``param.epoch`` changes; ``close()`` ends the last one. Needs tqdm.
    """

    def __init__(self, total: int | None = None, desc: str = "Epoch", file=None):
        try:
            from tqdm import tqdm
        except ImportError as err:
            raise ImportError("mx.callback.TqdmProgressBar needs the tqdm package: "
                              "pip install tqdm") from err
        self._tqdm = tqdm
        self.total, self.desc, self.file = total, desc, file
        self.bar = None
        self.epoch = None

    def __call__(self, param) -> None:
        if self.bar is None or param.epoch != self.epoch:
            self.close()
            self.epoch = param.epoch
            self.bar = self._tqdm(total=self.total, desc=f"{self.desc}[{param.epoch}]",
                                  unit="batch", file=self.file, leave=True)
        self.bar.update(param.nbatch + 1 - self.bar.n)
        if param.eval_metric is not None:
            self.bar.set_postfix({name: f"{value:.4f}" for name, value
                                  in param.eval_metric.get_name_value()}, refresh=False)

    def close(self) -> None:
        """Finish the current bar (fit calls this when it ends)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def auto_progress_bar(logger=logging, total: int | None = None, stream=None):
    """The bar a fit loop shows by itself: a ``TqdmProgressBar`` when ``logger`` (a Logger or
    the ``logging`` module) passes INFO messages, ``stream`` (default stderr) is a terminal
    and tqdm is installed; otherwise None (logs, pipes and CI stay free of bar noise)."""
    stream = sys.stderr if stream is None else stream
    enabled = getattr(logger, "isEnabledFor", logging.getLogger().isEnabledFor)
    if not enabled(logging.INFO) or not getattr(stream, "isatty", lambda: False)():
        return None
    try:
        return TqdmProgressBar(total, file=stream)
    except ImportError:
        return None


class LogValidationMetricsCallback:
    """Eval-end callback logging ``Epoch[e] Validation-name=value`` for every metric value."""

    def __call__(self, param) -> None:
        if not param.eval_metric:
            return
        for name, value in param.eval_metric.get_name_value():
            logging.info("Epoch[%d] Validation-%s=%f", param.epoch, name, value)


class EarlyStopping:
    """``EarlyStopping(metric_name=None, patience=3, mode='auto', min_delta=0.0)``: an eval-end
    callback that returns ``StopTraining`` once the validation metric has not improved by
    more than ``min_delta`` for ``patience`` evaluations.

    ``metric_name`` picks one value of a composite metric (default: the first); ``mode`` is
    'max', 'min' or 'auto' (min for names containing loss/error/mse/mae/rmse/perplexity/
    entropy, max otherwise). ``best`` and ``best_epoch`` remember the best value seen.
    """
    _LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "perplexity", "entropy")

    def __init__(self, metric_name: str | None = None, patience: int = 3, mode: str = "auto",
                 min_delta: float = 0.0):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        self.metric_name, self.patience, self.mode = metric_name, patience, mode
        self.min_delta = abs(min_delta)
        self.best = None
        self.best_epoch = None
        self.wait = 0

    def _pick(self, param) -> tuple[str, float]:
        pairs = param.eval_metric.get_name_value()
        if self.metric_name is None:
            return pairs[0]
        for name, value in pairs:
            if name == self.metric_name:
                return name, value
        raise ValueError(f"EarlyStopping: the metric has no value named {self.metric_name!r}; "
                         f"it has {', '.join(n for n, _ in pairs)}")

    def __call__(self, param) -> StopTraining | None:
        name, value = self._pick(param)
        lower = self.mode == "min" or (self.mode == "auto" and any(
            word in name.lower() for word in self._LOWER_IS_BETTER))
        sign = -1.0 if lower else 1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.wait = value, param.epoch, 0
            return None
        self.wait += 1
        if self.wait >= self.patience:
            return StopTraining(f"validation {name} has not improved for {self.wait} "
                                f"evaluations (best {self.best:f} at epoch {self.best_epoch})")
        return None


class TensorBoard:
    """``TensorBoard(logging_dir, prefix=None)``: write every metric value as a TensorBoard
    scalar (``prefix + name``) with tensorboardX; use as a batch-end or eval-end callback.

    The step is the number of calls so far (or ``param.epoch`` with ``step='epoch'``).
    Needs ``pip install tensorboardX``; a clear ImportError says so otherwise.
    """

    def __init__(self, logging_dir: str, prefix: str | None = None, step: str = "call"):
        if step not in ("call", "epoch"):
            raise ValueError(f"TensorBoard: step must be 'call' or 'epoch', got {step!r}")
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise ImportError("mx.callback.TensorBoard needs the tensorboardX package: "
                              "pip install tensorboardX") from err
        self.prefix = prefix or ""
        self.step = step
        self.calls = 0
        self.summary_writer: Any = SummaryWriter(logging_dir)

    def close(self) -> None:
        """Flush the event file and close it."""
        self.summary_writer.close()

    def __call__(self, param) -> None:
        if param.eval_metric is None:
            return
        self.calls += 1
        step = param.epoch if self.step == "epoch" else self.calls
        for name, value in param.eval_metric.get_name_value():
            self.summary_writer.add_scalar(self.prefix + name, value, step)
