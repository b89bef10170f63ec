"""``BaseModule``: the state machine every module follows, and fit/score/predict built on it.

A module moves through four states; each method needs the ones before it::

    created --bind()--> bound --init_params()--> params ready --init_optimizer()--> trainable
                          |                          |                                  |
                  reshape, data_shapes,      forward, get_outputs, predict,     update, fit's
                  output_shapes              score, get_params, save_params    inner loop

* ``bind(data_shapes, label_shapes, for_training, ...)`` allocates executors for the shapes
  (``binded``; ``for_training`` / ``inputs_need_grad`` remember how).
* ``init_params(initializer, arg_params, aux_params, ...)`` / ``set_params`` give the
  parameters values (``params_initialized``).
* ``init_optimizer(kvstore, optimizer, optimizer_params)`` installs the optimizer
  (``optimizer_initialized``); it needs a module bound ``for_training``.
* ``forward`` / ``backward`` / ``update`` / ``update_metric`` are one training step;
  ``forward_backward`` does the first two.

Calling a method too early raises ``ModuleStateError`` saying what to call first ("call bind()
before init_params()"). ``fit`` performs the whole sequence; ``score``, ``predict`` and
``iter_predict`` need a bound module with parameters. Subclasses (Module, BucketingModule,
SequentialModule, PythonModule) implement the abstract methods listed at the end of the class.
"""
from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from .. import metric as _metric
from ..base import HybridNetError
from ..callback import StopTraining, auto_progress_bar, run_callbacks
from ..initializer import Uniform
from ..initializer import create as _create_init
from ..io.base import DataBatch, DataDesc, DataIter
from ..model import BatchEndParam
from ..ndarray import NDArray, array, concatenate

__all__ = ["BaseModule", "ModuleStateError"]


class ModuleStateError(HybridNetError, RuntimeError):
    """A module method was called before the state it needs (see ``BaseModule``)."""


_NEEDS = {"binded": "bind()", "params_initialized": "init_params()",
          "optimizer_initialized": "init_optimizer()"}


def _as_list(obj) -> list:
    return obj if isinstance(obj, list) else [obj]


def _check_input_names(symbol, names: list, typename: str, throw: bool) -> None:
    """Every name in ``names`` must be an argument of ``symbol`` (MXNet's message)."""
    args = symbol.list_arguments()
    for name in names:
        if name in args:
            continue
        candidates = [a for a in args if not a.endswith(("_weight", "_bias", "_gamma",
                                                          "_beta"))]
        msg = (f"You created Module with Module(..., {typename}_names={names}) but input with "
               f"name '{name}' is not found in symbol.list_arguments(). Did you mean one of:\n\t"
               + "\n\t".join(candidates))
        if throw:
            raise ValueError(msg)
        logging.warning(msg)


def _check_names_match(data_names: list, data_shapes: list, name: str, throw: bool) -> None:
    actual = [x[0] for x in data_shapes]
    if sorted(data_names) != sorted(actual):
        msg = (f"Data provided by {name}_shapes don't match names specified by {name}_names "
               f"({data_shapes} vs. {data_names})")
        if throw:
            raise ValueError(msg)
        logging.warning(msg)


def _parse_data_desc(data_names, label_names, data_shapes, label_shapes):
    """``(data DataDescs, label DataDescs or None)`` from descs or ``(name, shape)`` pairs."""
    if data_shapes is None:
        raise ValueError("bind: data_shapes is required, e.g. [('data', (32, 784))] or "
                         "train_iter.provide_data")
    data_shapes = [x if isinstance(x, DataDesc) else DataDesc(*x) for x in data_shapes]
    _check_names_match(data_names, data_shapes, "data", True)
    if label_shapes is not None:
        label_shapes = [x if isinstance(x, DataDesc) else DataDesc(*x) for x in label_shapes]
        _check_names_match(label_names, label_shapes, "label", False)
    else:
        _check_names_match(label_names, [], "label", False)
    return data_shapes, label_shapes


class BaseModule:
    """Base class of modules: ``BaseModule(logger=logging)`` (see the module docstring)."""

    def __init__(self, logger=logging):
        self.logger = logger
        self.binded = False
        self.for_training = False
        self.inputs_need_grad = False
        self.params_initialized = False
        self.optimizer_initialized = False
        self._symbol = None
        self._total_exec_bytes = 0
        self._score_stop = None

    # ---- the state machine ------------------------------------------------------------------
    def _require(self, action: str, *states: str) -> None:
        """Raise ModuleStateError unless every flag in ``states`` is set."""
        for state in states:
            if not getattr(self, state):
                raise ModuleStateError(f"call {_NEEDS[state]} before {action}")

    # ---- high-level API -----------------------------------------------------------------------
    def forward_backward(self, data_batch) -> None:
        """``forward(data_batch, is_train=True)`` then ``backward()``."""
        self.forward(data_batch, is_train=True)
        self.backward()

    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None,
              score_end_callback=None, reset: bool = True, epoch: int = 0,
              sparse_row_id_fn=None) -> list:
        """``score(eval_data, eval_metric, num_batch=None, batch_end_callback=None, score_end_callback=None, reset=True, epoch=0, sparse_row_id_fn=None)``: evaluate on a DataIter.

        Returns ``[(name, value), ...]`` of ``eval_metric`` (a metric or anything
        ``mx.metric.create`` takes). Example: ``mod.score(val_iter, ['acc', 'ce'])``.
        """
        self._require("score()", "binded", "params_initialized")
        if reset:
            eval_data.reset()
        eval_metric = _metric.create(eval_metric)
        eval_metric.reset()
        self._score_stop = None
        actual_num_batch = 0
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            if isinstance(eval_batch, list):
                self.update_metric(eval_metric, [eb.label for eb in eval_batch],
                                   pre_sliced=True)
            else:
                self.update_metric(eval_metric, eval_batch.label)
            if batch_end_callback is not None:
                stop = run_callbacks(batch_end_callback, BatchEndParam(
                    epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals()))
                self._score_stop = self._score_stop or stop
            actual_num_batch += 1
        if score_end_callback:
            stop = run_callbacks(score_end_callback, BatchEndParam(
                epoch=epoch, nbatch=actual_num_batch, eval_metric=eval_metric,
                locals=locals()))
            self._score_stop = self._score_stop or stop
        return eval_metric.get_global_name_value()

    def iter_predict(self, eval_data, num_batch=None, reset: bool = True,
                     sparse_row_id_fn=None):
        """Yield ``(outputs, nbatch, batch)`` for each batch of ``eval_data`` (padding rows
        removed from the outputs)."""
        self._require("iter_predict()", "binded", "params_initialized")
        if reset:
            eval_data.reset()
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            pad = eval_batch.pad or 0
            outputs = [out[0:out.shape[0] - pad] for out in self.get_outputs()]
            yield outputs, nbatch, eval_batch

    def predict(self, eval_data, num_batch=None, merge_batches: bool = True,
                reset: bool = True, always_output_list: bool = False, sparse_row_id_fn=None):
        """``predict(eval_data, num_batch=None, merge_batches=True, reset=True, always_output_list=False, sparse_row_id_fn=None)``.

        ``eval_data`` is a DataIter (padding rows are dropped, batches concatenated when
        ``merge_batches``) or one NDArray / numpy array of inputs. Returns one NDArray when the
        network has one output (unless ``always_output_list``), else a list; with
        ``merge_batches=False`` a list of per-batch output lists.

        Example: ``probs = mod.predict(test_iter)``.
        """
        self._require("predict()", "binded", "params_initialized")
        if isinstance(eval_data, (NDArray, np.ndarray)):
            if isinstance(eval_data, np.ndarray):
                eval_data = array(eval_data)
            self.forward(DataBatch([eval_data]), is_train=False)
            return self.get_outputs()[0]
        if not isinstance(eval_data, DataIter):
            raise TypeError(f"predict: eval_data must be a DataIter, an NDArray or a numpy "
                            f"array, got {type(eval_data).__name__}")
        output_list = [[out.copy() for out in outputs] for outputs, _, _ in
                       self.iter_predict(eval_data, num_batch, reset, sparse_row_id_fn)]
        if not output_list:
            return output_list
        if not merge_batches:
            return output_list
        num_outputs = len(output_list[0])
        for outputs in output_list:
            if len(outputs) != num_outputs:
                raise HybridNetError("Cannot merge batches, as num of outputs is not the same "
                                     "in mini-batches. Maybe bucketing is used?")
        merged = [concatenate([out[i] for out in output_list]) for i in range(num_outputs)]
        if num_outputs == 1 and not always_output_list:
            return merged[0]
        return merged

    def fit(self, train_data, eval_data=None, eval_metric="acc", epoch_end_callback=None,
            batch_end_callback=None, kvstore="local", optimizer="sgd",
            optimizer_params=(("learning_rate", 0.01),), eval_end_callback=None,
            eval_batch_end_callback=None, initializer=None, arg_params=None,
            aux_params=None, allow_missing: bool = False, force_rebind: bool = False,
            force_init: bool = False, begin_epoch: int = 0, num_epoch=None,
            validation_metric=None, monitor=None, sparse_row_id_fn=None) -> None:
        """Train: bind, init_params, init_optimizer, then ``num_epoch - begin_epoch`` epochs.

        Signature as MXNet 1.x: ``fit(train_data, eval_data=None, eval_metric='acc', epoch_end_callback=None, batch_end_callback=None, kvstore='local', optimizer='sgd', optimizer_params=(('learning_rate', 0.01),), eval_end_callback=None, eval_batch_end_callback=None, initializer=Uniform(0.01), arg_params=None, aux_params=None, allow_missing=False, force_rebind=False, force_init=False, begin_epoch=0, num_epoch=None, validation_metric=None, monitor=None, sparse_row_id_fn=None)``.

        Each epoch logs ``Epoch[e] Train-<metric>=v`` and ``Epoch[e] Time cost=t``, calls
        ``epoch_end_callback(epoch, symbol, arg_params, aux_params)``, then scores
        ``eval_data`` (``Epoch[e] Validation-<metric>=v``). Batch k's forward, backward and
        update are pushed to the engine, then batch k+1 is fetched (overlapping the
        compute), then the metric waits for batch k's outputs.

        Stopping early: any callback may raise or return ``mx.callback.StopTraining``; the
        epoch in progress ends after that batch, its epoch-end callbacks (checkpoints) and
        validation still run, and fit returns.

        Example::

            >>> mod.fit(train_iter, eval_data=val_iter, optimizer='sgd',
            ...         optimizer_params={'learning_rate': 0.1}, num_epoch=10,
            ...         batch_end_callback=mx.callback.Speedometer(100, 50))
        """
        if num_epoch is None:
            raise ValueError("fit: please specify number of epochs (num_epoch=...)")
        if initializer is None:
            initializer = Uniform(0.01)
        elif isinstance(initializer, str):
            initializer = _create_init(initializer)
        self.bind(data_shapes=train_data.provide_data, label_shapes=train_data.provide_label,
                  for_training=True, force_rebind=force_rebind)
        if monitor is not None:
            self.install_monitor(monitor)
        self.init_params(initializer=initializer, arg_params=arg_params,
                         aux_params=aux_params, allow_missing=allow_missing,
                         force_init=force_init)
        self.init_optimizer(kvstore=kvstore, optimizer=optimizer,
                            optimizer_params=optimizer_params)
        if validation_metric is None:
            validation_metric = eval_metric
        eval_metric = _metric.create(eval_metric)
        # A tqdm bar per epoch when logging at INFO on a terminal (never in logs or CI).
        bar = auto_progress_bar(self.logger)
        if bar is not None:
            batch_end_callback = [bar] + (_as_list(batch_end_callback)
                                          if batch_end_callback is not None else [])
        try:
            for epoch in range(begin_epoch, num_epoch):
                tic = time.time()
                stop = self._fit_epoch(epoch, train_data, eval_metric, batch_end_callback,
                                       monitor, sparse_row_id_fn)
                for name, val in eval_metric.get_global_name_value():
                    self.logger.info("Epoch[%d] Train-%s=%f", epoch, name, val)
                self.logger.info("Epoch[%d] Time cost=%.3f", epoch, time.time() - tic)
                # sync parameters across devices (aux states are averaged)
                arg_params_, aux_params_ = self.get_params()
                self.set_params(arg_params_, aux_params_)
                if epoch_end_callback is not None:
                    signal = run_callbacks(epoch_end_callback, epoch, self.symbol, arg_params_,
                                           aux_params_)
                    stop = stop or signal
                if eval_data:
                    res = self.score(eval_data, validation_metric,
                                     score_end_callback=eval_end_callback,
                                     batch_end_callback=eval_batch_end_callback, epoch=epoch)
                    for name, val in res:
                        self.logger.info("Epoch[%d] Validation-%s=%f", epoch, name, val)
                    stop = stop or self._score_stop
                train_data.reset()
                if stop is not None:
                    self.logger.info("Epoch[%d] Stopping training early%s", epoch,
                                     f": {stop.reason}" if stop.reason else "")
                    return
        finally:
            if bar is not None:
                bar.close()

    def _fit_epoch(self, epoch: int, train_data, eval_metric, batch_end_callback, monitor,
                   sparse_row_id_fn) -> StopTraining | None:
        """One epoch of fit's inner loop; returns a stop signal from a batch callback."""
        eval_metric.reset()
        data_iter = iter(train_data)
        try:
            next_batch = next(data_iter)
        except StopIteration:
            raise HybridNetError(f"fit: epoch {epoch}: train_data yielded no batch; did the "
                                 f"iterator need reset()?") from None
        nbatch, end_of_batch, stop = 0, False, None
        while not end_of_batch:
            data_batch = next_batch
            if monitor is not None:
                monitor.tic()
            self.forward_backward(data_batch)
            self.update()
            # keep this batch's labels before the iterator may reuse its buffers
            if isinstance(data_batch, list):
                labels = [[lab.copy() for lab in db.label] for db in data_batch]
            else:
                labels = [lab.copy() for lab in data_batch.label or []]
            try:                     # fetch batch k+1 while the engine computes batch k
                next_batch = next(data_iter)
                self.prepare(next_batch, sparse_row_id_fn=sparse_row_id_fn)
            except StopIteration:
                end_of_batch = True
            self.update_metric(eval_metric, labels, pre_sliced=isinstance(data_batch, list))
            if monitor is not None:
                monitor.toc_print()
            if batch_end_callback is not None:
                signal = run_callbacks(batch_end_callback, BatchEndParam(
                    epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals()))
                if signal is not None:
                    stop, end_of_batch = stop or signal, True
            nbatch += 1
        return stop

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self):
        """``(arg_params, aux_params)``: dicts name -> NDArray on the CPU."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_params()")

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False):
        """Give the parameters initial values (see ``Module.init_params``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement init_params()")

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True,
                   allow_extra=False):
        """``set_params(arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False)``: assign parameter values.

        With ``allow_missing`` the parameters not given keep their values: a module that
        supports that implements ``_copy_params_in``."""
        if not allow_missing:
            self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                             allow_missing=False, force_init=force_init,
                             allow_extra=allow_extra)
            return
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. set_params "
                          "call ignored.", stacklevel=2)
            return
        self._require("set_params()", "binded")
        self._copy_params_in(arg_params, aux_params, force_init, allow_extra)
        self._params_dirty = True
        self.params_initialized = True

    def _copy_params_in(self, arg_params, aux_params, force_init, allow_extra) -> None:
        """Copy the given parameters into the bound ones, leaving the others as they are."""
        self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params,
                         allow_missing=True, force_init=force_init, allow_extra=allow_extra)

    def save_params(self, fname: str) -> None:
        """Save the parameters to ``fname`` (``arg:``/``aux:`` keys, MXNet's format)."""
        from ..model import save_params_file
        save_params_file(fname, *self.get_params())

    def load_params(self, fname: str) -> None:
        """Load parameters saved by ``save_params`` (or MXNet) from ``fname``."""
        from .. import ndarray as nd
        from ..model import split_params
        arg_params, aux_params = split_params(nd.load(fname), fname)
        self.set_params(arg_params, aux_params)

    def get_states(self, merge_multi_context: bool = True):
        """The state inputs' values (``state_names``); none by default."""
        self._require("get_states()", "binded", "params_initialized")
        return []

    def set_states(self, states=None, value=None) -> None:
        """Set the state inputs; a module without states has nothing to set."""
        self._require("set_states()", "binded", "params_initialized")

    def install_monitor(self, mon) -> None:
        """Install an ``mx.mon.Monitor`` on the executors."""
        raise NotImplementedError(f"{type(self).__name__} must implement install_monitor()")

    def prepare(self, data_batch, sparse_row_id_fn=None) -> None:
        """Get ready for ``data_batch`` (a no-op unless row-sparse weights must be pulled)."""
        if sparse_row_id_fn is not None:
            logging.warning("sparse_row_id_fn is not used by %s", type(self).__name__)

    # ---- properties and the abstract interface ----------------------------------------------
    @property
    def symbol(self):
        """The symbol this module runs."""
        return self._symbol

    # The defaults below read the attributes a subclass sets in __init__ / bind
    # (_data_names, _label_names, _output_names, _data_shapes, _label_shapes, _output_shapes);
    # modules that delegate to inner modules override them.
    @property
    def data_names(self) -> list:
        """Names of the data inputs."""
        return self._data_names

    @property
    def label_names(self) -> list:
        """Names of the label inputs."""
        return self._label_names

    @property
    def output_names(self) -> list:
        """Names of the outputs."""
        return self._output_names

    @property
    def data_shapes(self) -> list:
        """DataDescs of the bound data inputs."""
        self._require("data_shapes", "binded")
        return self._data_shapes

    @property
    def label_shapes(self):
        """DataDescs of the bound labels (None when bound without labels)."""
        self._require("label_shapes", "binded")
        return self._label_shapes

    @property
    def output_shapes(self) -> list:
        """``[(name, shape)]`` of the outputs."""
        self._require("output_shapes", "binded")
        return self._output_shapes

    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write"):
        """Allocate executors for these shapes."""
        raise NotImplementedError(f"{type(self).__name__} must implement bind()")

    def init_optimizer(self, kvstore="local", optimizer="sgd",
                       optimizer_params=(("learning_rate", 0.01),), force_init=False):
        """Install the optimizer."""
        raise NotImplementedError(f"{type(self).__name__} must implement init_optimizer()")

    def forward(self, data_batch, is_train=None):
        """Run the network on ``data_batch``."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, out_grads=None):
        """Compute gradients (``out_grads`` for outputs that are not losses)."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def get_outputs(self, merge_multi_context=True):
        """The outputs of the last forward."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_outputs()")

    def get_input_grads(self, merge_multi_context=True):
        """Gradients of the data inputs (bound with ``inputs_need_grad=True``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_input_grads()")

    def update(self):
        """Apply one optimizer step with the gradients of the last backward."""
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """Update ``eval_metric`` with the last outputs and ``labels``."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_metric()")
