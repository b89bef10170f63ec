"""``mx.model.FeedForward``: MXNet's older, scikit-learn-like training API, run by a Module.

``FeedForward(symbol, ctx, num_epoch, optimizer='sgd', initializer=Uniform(0.01),
numpy_batch_size=128, arg_params, aux_params, **optimizer_kwargs)`` keeps the parameters in
``arg_params`` / ``aux_params`` dicts; ``fit`` trains them with a ``Module`` (``mx.mod``'s
one training loop, data parallel over a ``ctx`` list), ``predict`` / ``score`` run a
prediction Module bound for the input's shapes. X may be a DataIter, or a numpy array / NDArray
with labels y (wrapped in an ``NDArrayIter``: shuffled, ``roll_over`` for training).
Deprecated in MXNet 1.x (a DeprecationWarning) but kept for old scripts:

    >>> model = mx.model.FeedForward(net, num_epoch=10, learning_rate=0.1, momentum=0.9)
    >>> model.fit(X=train_x, y=train_y, eval_data=(test_x, test_y))
    >>> probs = model.predict(test_x)              # numpy
    >>> model.save('mlp')                          # mlp-symbol.json, mlp-0010.params
    >>> model = mx.model.FeedForward.load('mlp', 10)
"""
from __future__ import annotations

import logging
import warnings

import numpy as np

from . import io
from . import metric as _metric
from . import ndarray as nd
from . import symbol as sym
from .base import HybridNetError
from .context import Context, cpu
from .initializer import Uniform
from .model import load_checkpoint, save_checkpoint
from .module import BucketingModule, Module

__all__ = ["FeedForward"]


class _EpochSizeIter(io.DataIter):
    """``epoch_size`` batches of ``data`` per epoch: an epoch ends after that many batches
    without resetting ``data``; running out of batches inside an epoch resets it and goes on
    (MXNet's ``epoch_size`` rule)."""

    def __init__(self, data, epoch_size: int, logger):
        super().__init__(data.batch_size)
        self._data, self._epoch_size, self._logger = data, int(epoch_size), logger
        self._count = 0
        self.provide_data, self.provide_label = data.provide_data, data.provide_label
        self.default_bucket_key = getattr(data, "default_bucket_key", None)

    def reset(self) -> None:
        self._count = 0

    def next(self):
        if self._count >= self._epoch_size:
            raise StopIteration
        try:
            batch = self._data.next()
        except StopIteration:
            self._logger.info("Resetting Data Iterator")
            self._data.reset()
            batch = self._data.next()
        self._count += 1
        return batch


class FeedForward:
    """``FeedForward(symbol, ctx=None, num_epoch=None, epoch_size=None, optimizer='sgd', initializer=Uniform(0.01), numpy_batch_size=128, arg_params=None, aux_params=None, allow_extra_params=False, begin_epoch=0, **kwargs)``.

    Args:
        symbol: the network, or ``sym_gen(bucket_key) -> Symbol`` for bucketing iterators.
        ctx: a Context or a list (data parallel); default ``cpu()``.
        num_epoch: train until this epoch; epoch_size: batches per epoch (default: the
            whole iterator).
        optimizer: a name or an ``mx.optimizer.Optimizer``; ``kwargs`` are its arguments
            (``learning_rate=0.1, momentum=0.9``).
        numpy_batch_size: the batch size when X is an array.
        arg_params, aux_params: starting parameters (the others are initialized);
            ``allow_extra_params`` drops names the network lacks instead of failing.
        begin_epoch: the first epoch's number (``load`` sets it to the checkpoint's).
    """

    def __init__(self, symbol, ctx=None, num_epoch=None, epoch_size=None, optimizer="sgd",
                 initializer=Uniform(0.01), numpy_batch_size=128, arg_params=None,
                 aux_params=None, allow_extra_params=False, begin_epoch=0, **kwargs):
        warnings.warn("mxnet.model.FeedForward has been deprecated. Please use "
                      "mxnet.mod.Module instead.", DeprecationWarning, stacklevel=2)
        if isinstance(symbol, sym.Symbol):
            self.symbol, self.sym_gen = symbol, None
        elif callable(symbol):
            self.symbol, self.sym_gen = None, symbol
        else:
            raise TypeError(f"FeedForward: symbol must be a Symbol or a function bucket_key "
                            f"-> Symbol, got {type(symbol).__name__}")
        ctx = cpu() if ctx is None else ctx
        self.ctx = [ctx] if isinstance(ctx, Context) else list(ctx)
        for c in self.ctx:
            if not isinstance(c, Context):
                raise TypeError(f"FeedForward: ctx must be a Context or a list of them, got "
                                f"{type(c).__name__}")
        self.arg_params, self.aux_params = arg_params, aux_params
        self.allow_extra_params = allow_extra_params
        if self.symbol is not None:
            self._drop_extra_params()
        self.num_epoch, self.epoch_size = num_epoch, epoch_size
        self.optimizer, self.initializer = optimizer, initializer
        self.numpy_batch_size = int(numpy_batch_size)
        self.begin_epoch = begin_epoch
        self.kwargs = dict(kwargs)
        self._pred_module = None

    def _drop_extra_params(self) -> None:
        """With ``allow_extra_params``, keep only the names the symbol has."""
        if not self.allow_extra_params:
            return
        if self.arg_params:
            names = set(self.symbol.list_arguments())
            self.arg_params = {k: v for k, v in self.arg_params.items() if k in names}
        if self.aux_params:
            names = set(self.symbol.list_auxiliary_states())
            self.aux_params = {k: v for k, v in self.aux_params.items() if k in names}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pred_module"] = None        # executors are rebuilt after unpickling
        return state

    # ---- data ---------------------------------------------------------------------------------
    def _init_iter(self, X, y, is_train: bool):
        """A DataIter for X: as is, or an NDArrayIter over arrays X, y."""
        if isinstance(X, (np.ndarray, nd.NDArray)):
            if y is None:
                if is_train:
                    raise ValueError("FeedForward: y must be specified when X is an array")
                y = np.zeros(X.shape[0], dtype=np.float32)
            if not isinstance(y, (np.ndarray, nd.NDArray)):
                raise TypeError(f"FeedForward: y must be a numpy array or NDArray when X is "
                                f"one, got {type(y).__name__}")
            if X.shape[0] != y.shape[0]:
                raise ValueError(f"FeedForward: X has {X.shape[0]} examples but y has "
                                 f"{y.shape[0]} labels")
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.reshape((y.shape[0],))
            if y.ndim != 1:
                raise ValueError(f"FeedForward: labels must be 1-D or (n, 1), got shape "
                                 f"{tuple(y.shape)}")
            batch = min(X.shape[0], self.numpy_batch_size)
            if is_train:
                return io.NDArrayIter(X, y, batch, shuffle=True,
                                      last_batch_handle="roll_over")
            return io.NDArrayIter(X, y, batch, shuffle=False)
        if not isinstance(X, io.DataIter):
            raise TypeError(f"FeedForward: X must be a DataIter, an NDArray or a numpy array, "
                            f"got {type(X).__name__}")
        return X

    def _init_eval_iter(self, eval_data):
        """eval_data as a DataIter: given as one, or as an ``(X, y)`` pair of arrays."""
        if eval_data is None or isinstance(eval_data, io.DataIter):
            return eval_data
        if isinstance(eval_data, (tuple, list)) and len(eval_data) == 2:
            x, y = eval_data
            if x is None:
                raise ValueError("FeedForward: eval_data's X is None")
            if y is None and isinstance(x, io.DataIter):
                return x
            x = np.array(x) if isinstance(x, list) else x
            y = np.array(y) if isinstance(y, list) else y
            return self._init_iter(x, y, is_train=True)
        raise TypeError("FeedForward: eval_data must be a DataIter or an (X, y) pair of "
                        "arrays")

    # ---- training -----------------------------------------------------------------------------
    def _train_module(self, data, logger, work_load_list):
        """The Module (or BucketingModule for a sym_gen) that fit trains."""
        data_names = [d[0] for d in data.provide_data]
        label_names = [d[0] for d in data.provide_label]
        common = dict(logger=logger, context=self.ctx, work_load_list=work_load_list)
        if self.sym_gen is None:
            return Module(self.symbol, data_names, label_names, **common)
        key = getattr(data, "default_bucket_key", None)
        if key is None:
            raise HybridNetError("FeedForward: with a sym_gen, the training iterator needs a "
                                 "default_bucket_key")
        self.symbol = self.sym_gen(key)
        self._drop_extra_params()
        return BucketingModule(lambda k: (self.sym_gen(k), data_names, label_names),
                               default_bucket_key=key, **common)

    def fit(self, X, y=None, eval_data=None, eval_metric="acc", epoch_end_callback=None,
            batch_end_callback=None, kvstore="local", logger=None, work_load_list=None,
            monitor=None, eval_end_callback=None, eval_batch_end_callback=None) -> None:
        """``fit(X, y=None, eval_data=None, eval_metric='acc', epoch_end_callback=None, batch_end_callback=None, kvstore='local', logger=None, work_load_list=None, monitor=None, eval_end_callback=LogValidationMetricsCallback(), eval_batch_end_callback=None)``.

        Trains epochs ``begin_epoch .. num_epoch - 1`` with ``Module.fit`` (which logs the
        validation metrics itself, as MXNet's default ``eval_end_callback`` does). X: a
        DataIter, or an array with labels ``y``; eval_data: a DataIter or ``(X, y)``.
        Given ``arg_params`` / ``aux_params`` start the training, the others are
        initialized; afterwards they hold the trained values.
        """
        if self.num_epoch is None:
            raise ValueError("FeedForward.fit: num_epoch is not set; give "
                             "FeedForward(..., num_epoch=N)")
        data = self._init_iter(X, y, is_train=True)
        eval_data = self._init_eval_iter(eval_data)
        logger = logger or logging
        module = self._train_module(data, logger, work_load_list)
        data.reset()                        # MXNet's FeedForward starts from the beginning
        if self.epoch_size is not None:
            data = _EpochSizeIter(data, self.epoch_size, logger)
        module.fit(data, eval_data=eval_data, eval_metric=eval_metric,
                   epoch_end_callback=epoch_end_callback,
                   batch_end_callback=batch_end_callback, kvstore=kvstore,
                   optimizer=self.optimizer, optimizer_params=self.kwargs,
                   eval_end_callback=eval_end_callback,
                   eval_batch_end_callback=eval_batch_end_callback,
                   initializer=self.initializer, arg_params=self.arg_params,
                   aux_params=self.aux_params, allow_missing=True,
                   begin_epoch=self.begin_epoch, num_epoch=self.num_epoch, monitor=monitor)
        arg_params, aux_params = module.get_params()
        self.arg_params = {k: v.copy() for k, v in arg_params.items()}
        self.aux_params = {k: v.copy() for k, v in aux_params.items()}
        self._pred_module = None

    # ---- prediction ---------------------------------------------------------------------------
    def _predictor(self, data) -> Module:
        """A Module bound for inference on ``data``'s shapes (kept while they do not change)."""
        if self.arg_params is None:
            raise HybridNetError("FeedForward: the model has no parameters; fit() it or give "
                                 "arg_params (FeedForward.load)")
        if self.symbol is None:
            raise HybridNetError("FeedForward: fit() a sym_gen model before predicting")
        shapes = (list(data.provide_data), list(data.provide_label))
        if self._pred_module is not None and self._pred_shapes == shapes:
            return self._pred_module
        data_names = [d[0] for d in data.provide_data]
        # the inputs that are neither data nor parameters are labels (their shapes inferred
        # when the iterator gives none)
        label_names = [n for n in self.symbol.list_arguments()
                       if n not in data_names and n not in self.arg_params]
        label_shapes = [d for d in data.provide_label if d[0] in label_names] or None
        module = Module(self.symbol, data_names=data_names, label_names=label_names,
                        context=self.ctx[0])
        module.bind(data_shapes=data.provide_data, label_shapes=label_shapes,
                    for_training=False)
        module.set_params(self.arg_params, self.aux_params or {})
        self._pred_module, self._pred_shapes = module, shapes
        return module

    def predict(self, X, num_batch=None, return_data=False, reset=True):
        """``predict(X, num_batch=None, return_data=False, reset=True)`` -> numpy outputs
        (one array, or a list when the network has several outputs); with ``return_data``
        also the data and labels ``(outputs, data, label)``. Runs on the first context;
        padding rows are dropped."""
        X = self._init_iter(X, None, is_train=False)
        module = self._predictor(X)
        outputs, datas, labels = [], [], []
        for outs, _, batch in module.iter_predict(X, num_batch=num_batch, reset=reset):
            outputs.append([o.asnumpy() for o in outs])
            if return_data:
                real = batch.data[0].shape[0] - (batch.pad or 0)
                datas.append([d[0:real].asnumpy() for d in batch.data])
                labels.append([lab[0:real].asnumpy() for lab in batch.label or []])
        if not outputs:
            raise HybridNetError("FeedForward.predict: X yielded no batch; did the iterator "
                                 "need reset()?")

        def merged(per_batch):
            arrays = [np.concatenate(parts) for parts in zip(*per_batch)]
            return arrays[0] if len(arrays) == 1 else arrays

        if return_data:
            return merged(outputs), merged(datas), merged(labels)
        return merged(outputs)

    def score(self, X, eval_metric="acc", num_batch=None, batch_end_callback=None,
              reset=True) -> float:
        """``score(X, eval_metric='acc', num_batch=None, batch_end_callback=None, reset=True)``
        -> the metric's value on X (a DataIter with labels)."""
        eval_metric = _metric.create(eval_metric)
        X = self._init_iter(X, None, is_train=False)
        self._predictor(X).score(X, eval_metric, num_batch=num_batch,
                                 batch_end_callback=batch_end_callback, reset=reset)
        return eval_metric.get()[1]

    # ---- files --------------------------------------------------------------------------------
    def save(self, prefix: str, epoch=None, remove_amp_cast: bool = True) -> None:
        """``save(prefix, epoch=None)``: ``prefix-symbol.json`` and ``prefix-%04d.params``
        (epoch defaults to ``num_epoch``), MXNet's checkpoint files."""
        if epoch is None:
            epoch = self.num_epoch
        if epoch is None:
            raise ValueError("FeedForward.save: give the epoch (num_epoch is not set)")
        if self.symbol is None or self.arg_params is None:
            raise HybridNetError("FeedForward.save: nothing to save yet; fit() the model first")
        save_checkpoint(prefix, epoch, self.symbol, self.arg_params, self.aux_params or {},
                        remove_amp_cast=remove_amp_cast)

    @staticmethod
    def load(prefix: str, epoch: int, ctx=None, **kwargs) -> "FeedForward":
        """``FeedForward.load(prefix, epoch, ctx=None, **kwargs)``: the model of a checkpoint,
        ready to predict or to go on training from ``begin_epoch=epoch``."""
        symbol, arg_params, aux_params = load_checkpoint(prefix, epoch)
        return FeedForward(symbol, ctx=ctx, arg_params=arg_params, aux_params=aux_params,
                           begin_epoch=epoch, **kwargs)

    @staticmethod
    def create(symbol, X, y=None, ctx=None, num_epoch=None, epoch_size=None, optimizer="sgd",
               initializer=Uniform(0.01), eval_data=None, eval_metric="acc",
               epoch_end_callback=None, batch_end_callback=None, kvstore="local",
               logger=None, work_load_list=None, eval_end_callback=None,
               eval_batch_end_callback=None, **kwargs) -> "FeedForward":
        """``FeedForward.create(symbol, X, y=None, ctx=None, num_epoch=None, ...)``: construct
        a model and ``fit`` it in one call; returns the trained model."""
        model = FeedForward(symbol, ctx=ctx, num_epoch=num_epoch, epoch_size=epoch_size,
                            optimizer=optimizer, initializer=initializer, **kwargs)
        model.fit(X, y, eval_data=eval_data, eval_metric=eval_metric,
                  epoch_end_callback=epoch_end_callback,
                  batch_end_callback=batch_end_callback, kvstore=kvstore, logger=logger,
                  work_load_list=work_load_list, eval_end_callback=eval_end_callback,
                  eval_batch_end_callback=eval_batch_end_callback)
        return model
