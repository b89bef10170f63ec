"""``Module``: a Symbol trained on one or several devices (``mx.mod.Module``).

    >>> mod = mx.mod.Module(net, context=[mx.cpu(0), mx.cpu(1)])
    >>> mod.fit(train_iter, eval_data=val_iter, optimizer='sgd',
    ...         optimizer_params={'learning_rate': 0.1, 'momentum': 0.9}, num_epoch=5)
    >>> mod.save_checkpoint('mnist', 5)
    >>> mod2 = mx.mod.Module.load('mnist', 5, context=mx.cpu())

The parameters live in CPU dicts (``_arg_params`` / ``_aux_params``) and in every device's
executor (``DataParallelExecutorGroup``). ``update()`` sums the devices' gradients through the
KVStore and runs the optimizer either inside the store (``update_on_kvstore``; on the servers
for ``dist_*``) or on each device (``_updater``), exactly as MXNet decides
(``model._create_kvstore``). ``get_params`` copies the device values back to the CPU dicts
when an update made them stale.
"""
from __future__ import annotations

import logging
import os
import warnings

from .. import optimizer as opt
from ..base import HybridNetError, ShapeError
from ..context import Context, cpu
from ..initializer import InitDesc, Uniform
from ..io.base import DataDesc
from ..model import (_create_kvstore, _initialize_kvstore, _update_params,
                     _update_params_on_kvstore, load_checkpoint, save_checkpoint)
from ..ndarray import zeros
from .base_module import (BaseModule, ModuleStateError, _check_input_names,
                          _parse_data_desc)
from .executor_group import DataParallelExecutorGroup

__all__ = ["Module"]


class Module(BaseModule):
    """``Module(symbol, data_names=('data',), label_names=('softmax_label',), logger=logging, context=cpu(), work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None, compression_params=None)``.

    Args:
        symbol: the network.
        data_names, label_names: which arguments are fed from ``DataBatch.data`` / ``.label``.
        context: a Context or a list of them (data parallelism: each batch is split).
        work_load_list: relative share of the batch per context (default equal).
        fixed_param_names: parameters that are never updated (no gradient).
        state_names: inputs kept between batches (set with ``set_states``), not parameters.
        compression_params: gradient compression for the KVStore, e.g. ``{'type': '2bit',
            'threshold': 0.5}``.
    """

    def __init__(self, symbol, data_names=("data",), label_names=("softmax_label",),
                 logger=logging, context=None, work_load_list=None, fixed_param_names=None,
                 state_names=None, group2ctxs=None, compression_params=None):
        super().__init__(logger=logger)
        context = cpu() if context is None else context
        self._context = list(context) if isinstance(context, (list, tuple)) else [context]
        for ctx in self._context:
            if not isinstance(ctx, Context):
                raise TypeError(f"Module: context must be a Context or a list of them, got "
                                f"{type(ctx).__name__}")
        if work_load_list is None:
            work_load_list = [1] * len(self._context)
        if len(work_load_list) != len(self._context):
            raise ValueError(f"Module: work_load_list has {len(work_load_list)} entries for "
                             f"{len(self._context)} contexts")
        self._work_load_list = list(work_load_list)
        self._group2ctxs = group2ctxs
        self._symbol = symbol
        data_names = list(data_names) if data_names is not None else []
        label_names = list(label_names) if label_names is not None else []
        state_names = list(state_names) if state_names is not None else []
        fixed_param_names = list(fixed_param_names) if fixed_param_names is not None else []
        _check_input_names(symbol, data_names, "data", True)
        _check_input_names(symbol, label_names, "label", False)
        _check_input_names(symbol, state_names, "state", True)
        _check_input_names(symbol, fixed_param_names, "fixed_param", True)
        input_names = data_names + label_names + state_names
        self._param_names = [x for x in symbol.list_arguments() if x not in input_names]
        self._fixed_param_names = fixed_param_names
        self._aux_names = symbol.list_auxiliary_states()
        self._data_names, self._label_names = data_names, label_names
        self._state_names = state_names
        self._output_names = symbol.list_outputs()
        self._arg_params = self._aux_params = None
        self._params_dirty = False
        self._params_checked = True          # False after load(): bind checks completeness
        self._compression_params = compression_params
        self._optimizer = self._kvstore = self._update_on_kvstore = self._updater = None
        self._preload_opt_states = None
        self._grad_req = None
        self._exec_group = None
        self._data_shapes = self._label_shapes = None

    # ---- checkpoints --------------------------------------------------------------------------
    @staticmethod
    def load(prefix: str, epoch: int, load_optimizer_states: bool = False, **kwargs):
        """``Module.load(prefix, epoch, load_optimizer_states=False, **kwargs)``: a Module of
        the checkpoint's symbol and parameters (``kwargs`` go to the constructor); bind it
        before use. With ``load_optimizer_states`` the ``prefix-%04d.states`` file is loaded
        by ``init_optimizer``.

        Example::

            >>> mod = mx.mod.Module.load('mnist', 3, context=mx.cpu())
            >>> mod.bind(data_shapes=test_iter.provide_data, for_training=False)
        """
        sym, args, auxs = load_checkpoint(prefix, epoch)
        mod = Module(symbol=sym, **kwargs)
        mod._arg_params, mod._aux_params = args, auxs
        mod.params_initialized = True
        mod._params_checked = False
        if load_optimizer_states:
            states = f"{prefix}-{int(epoch):04d}.states"
            if not os.path.exists(states):
                raise FileNotFoundError(f"Module.load: optimizer states file {states!r} does "
                                        f"not exist (saved with save_optimizer_states=True?)")
            mod._preload_opt_states = states
        return mod

    def save_checkpoint(self, prefix: str, epoch: int, save_optimizer_states: bool = False,
                        remove_amp_cast: bool = True) -> None:
        """Write ``prefix-symbol.json``, ``prefix-%04d.params`` and, with
        ``save_optimizer_states``, ``prefix-%04d.states``."""
        save_checkpoint(prefix, epoch, self._symbol, *self.get_params(),
                        remove_amp_cast=remove_amp_cast)
        if save_optimizer_states:
            state_name = f"{prefix}-{int(epoch):04d}.states"
            self.save_optimizer_states(state_name)
            logging.info('Saved optimizer state to "%s"', state_name)

    # ---- properties ---------------------------------------------------------------------------
    @property
    def output_shapes(self) -> list:
        self._require("output_shapes", "binded")
        return self._exec_group.get_output_shapes()

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self):
        """``(arg_params, aux_params)`` on the CPU (copied from the devices when stale)."""
        self._require("get_params()", "binded", "params_initialized")
        if self._params_dirty:
            self._sync_params_from_devices()
        return self._arg_params, self._aux_params

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False) -> None:
        """``init_params(initializer=Uniform(0.01), arg_params=None, aux_params=None, allow_missing=False, force_init=False, allow_extra=False)``.

        Parameters found in ``arg_params`` / ``aux_params`` are copied; the others are
        filled by ``initializer`` (by name: ``*_weight`` by its rule, ``*_bias`` 0, ...) --
        unless a dict is given and ``allow_missing`` is False, which is an error listing what
        is missing. Names the network lacks are an error unless ``allow_extra``.
        """
        if self.params_initialized and not force_init:
            warnings.warn("Parameters already initialized and force_init=False. init_params "
                          "call ignored.", stacklevel=2)
            return
        self._require("init_params()", "binded")
        self._check_given_params(arg_params, aux_params, allow_missing, allow_extra,
                                 initializer)
        attrs = self._symbol.attr_dict()
        for params, given in ((self._arg_params, arg_params), (self._aux_params, aux_params)):
            for name, arr in sorted(params.items()):
                src = given.get(name) if given is not None else None
                if src is not None:
                    if src is not arr:
                        if src.shape != arr.shape:
                            raise ShapeError("init_params", f"parameter '{name}' has shape "
                                             f"{src.shape}, the network needs {arr.shape}")
                        src.copyto(arr)
                elif initializer is not None:
                    initializer(InitDesc(name, attrs.get(name)), arr)
        self.params_initialized = True
        self._params_dirty = False
        self._params_checked = True
        self._exec_group.set_params(self._arg_params, self._aux_params, allow_extra=True)

    def _check_given_params(self, arg_params, aux_params, allow_missing, allow_extra,
                            initializer) -> None:
        """Errors listing missing / unknown names in the given parameter dicts."""
        for given, names, what in ((arg_params, self._param_names, "arg_params"),
                                   (aux_params, self._aux_names, "aux_params")):
            if given is None:
                continue
            if not isinstance(given, dict):
                raise TypeError(f"init_params: {what} must be a dict name -> NDArray, got "
                                f"{type(given).__name__}")
            missing = [n for n in names if n not in given]
            if missing and (not allow_missing or initializer is None):
                hint = ("pass allow_missing=True and an initializer to initialize them"
                        if not allow_missing else "give an initializer to initialize them")
                raise HybridNetError(f"init_params: {what} lacks {', '.join(missing)} (the "
                                     f"network's parameters are {', '.join(names)}); {hint}")
            extra = [n for n in given if n not in names]
            if extra and not allow_extra:
                raise HybridNetError(f"init_params: {what} has {', '.join(extra)}, which the "
                                     f"network does not have (its parameters are "
                                     f"{', '.join(names) or 'none'}); pass allow_extra=True to "
                                     f"ignore them")

    def _copy_params_in(self, arg_params, aux_params, force_init, allow_extra) -> None:
        self._exec_group.set_params(arg_params, aux_params, allow_extra=allow_extra)

    def _sync_params_from_devices(self) -> None:
        self._exec_group.get_params(self._arg_params, self._aux_params)
        self._params_dirty = False

    # ---- binding ------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write") -> None:
        """``bind(data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False, shared_module=None, grad_req='write')``.

        ``data_shapes`` / ``label_shapes``: DataDescs or ``(name, shape)`` pairs with the whole
        batch (``train_iter.provide_data``). ``shared_module``: share parameters and memory
        with that (bound, initialized) module. A second bind is ignored with a warning unless
        ``force_rebind``.
        """
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if not for_training and inputs_need_grad:
            raise ValueError("bind: inputs_need_grad=True needs for_training=True")
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._grad_req = grad_req
        self._data_shapes, self._label_shapes = _parse_data_desc(
            self.data_names, self.label_names, data_shapes, label_shapes)
        shared_group = None
        if shared_module is not None:
            if not (isinstance(shared_module, Module) and shared_module.binded
                    and shared_module.params_initialized):
                raise ModuleStateError("bind: shared_module must be a Module that is bound "
                                       "and has initialized parameters")
            shared_group = shared_module._exec_group
            if len(shared_group.execs) < len(self._context):
                raise HybridNetError(f"bind: shared_module runs on {len(shared_group.execs)} "
                                     f"contexts, this module on {len(self._context)}")
        self._exec_group = DataParallelExecutorGroup(
            self._symbol, self._context, self._work_load_list, self._data_shapes,
            self._label_shapes, self._param_names, for_training, inputs_need_grad,
            shared_group, logger=self.logger, fixed_param_names=self._fixed_param_names,
            grad_req=grad_req, state_names=self._state_names, group2ctxs=self._group2ctxs)
        if shared_module is not None:
            self.params_initialized = True
            self._arg_params = shared_module._arg_params
            self._aux_params = shared_module._aux_params
        elif self.params_initialized:
            # re-binding, or parameters from Module.load: copy them into the new executors
            if not self._params_checked:
                self._check_loaded_params()
            self._exec_group.set_params(self._arg_params, self._aux_params)
        else:
            group = self._exec_group
            self._arg_params = {name: zeros(b[0].shape, cpu(), dtype=b[0].dtype)
                                for name, b in zip(self._param_names, group.param_arrays)}
            self._aux_params = {name: zeros(b[0].shape, cpu(), dtype=b[0].dtype)
                                for name, b in zip(self._aux_names, group.aux_arrays)}
        if shared_module is not None and shared_module.optimizer_initialized:
            self.borrow_optimizer(shared_module)
        self.binded = True

    def _check_loaded_params(self) -> None:
        """The parameters from a checkpoint must be exactly the network's."""
        for given, names, what in ((self._arg_params, self._param_names, "arguments"),
                                   (self._aux_params, self._aux_names, "auxiliary states")):
            missing = [n for n in names if n not in given]
            extra = [n for n in given if n not in names]
            if missing or extra:
                raise HybridNetError(
                    f"bind: the loaded checkpoint's {what} do not match the network: "
                    + (f"missing {', '.join(missing)}" if missing else "")
                    + ("; " if missing and extra else "")
                    + (f"not in the network {', '.join(extra)}" if extra else "")
                    + ". Load it with mx.model.load_checkpoint and pass its params to "
                      "init_params(..., allow_missing=True / allow_extra=True)")
        self._params_checked = True

    def _reset_bind(self) -> None:
        self.binded = False
        self._exec_group = None
        self._data_shapes = self._label_shapes = None

    def reshape(self, data_shapes, label_shapes=None) -> None:
        """Re-shape the executors for new input shapes (e.g. another batch size)."""
        self._require("reshape()", "binded")
        data_shapes, label_shapes = _parse_data_desc(self.data_names, self.label_names,
                                                     data_shapes, label_shapes)
        self._exec_group.reshape(data_shapes, label_shapes)
        self._data_shapes, self._label_shapes = data_shapes, label_shapes

    # ---- optimizer ----------------------------------------------------------------------------
    def init_optimizer(self, kvstore="local", optimizer="sgd",
                       optimizer_params=(("learning_rate", 0.01),), force_init=False) -> None:
        """``init_optimizer(kvstore='local', optimizer='sgd', optimizer_params=(('learning_rate', 0.01),), force_init=False)``.

        ``optimizer`` is a registered name (created with ``rescale_grad = 1 / batch_size``,
        times the number of workers for ``dist_*sync``, the symbol's lr/wd multipliers and
        ``param_idx2name``) or an ``mx.optimizer.Optimizer``. ``kvstore``: a name, a KVStore
        or None (see ``mx.model._create_kvstore``).
        """
        self._require("init_optimizer()", "binded", "params_initialized")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring...")
            return
        if not self.for_training:
            raise ModuleStateError("init_optimizer: the module was bound with "
                                   "for_training=False; bind(..., for_training=True) first")
        if self._params_dirty:
            self._sync_params_from_devices()
        kvstore, update_on_kvstore = _create_kvstore(kvstore, len(self._context),
                                                     self._arg_params)
        batch_size = self._exec_group.batch_size
        if kvstore and "dist" in kvstore.type and "_sync" in kvstore.type:
            batch_size *= kvstore.num_workers
        rescale_grad = 1.0 / batch_size
        names = self._exec_group.param_names
        if update_on_kvstore:
            idx2name = dict(enumerate(names))
        else:
            n_dev = len(self._context)
            idx2name = {i * n_dev + k: name for i, name in enumerate(names)
                        for k in range(n_dev)}
        if isinstance(optimizer, str):
            params = dict(optimizer_params)
            params.setdefault("rescale_grad", rescale_grad)
            optimizer = opt.create(optimizer, sym=self.symbol, param_idx2name=idx2name,
                                   **params)
        elif isinstance(optimizer, opt.Optimizer):
            if optimizer.rescale_grad != rescale_grad:
                warnings.warn(f"Optimizer created manually outside Module but rescale_grad is "
                              f"not normalized to 1.0/batch_size/num_workers "
                              f"({optimizer.rescale_grad} vs. {rescale_grad}). Is this "
                              f"intended?", stacklevel=2)
            if not optimizer.idx2name:
                optimizer.idx2name = idx2name.copy()
                optimizer.set_wd_mult({})     # the new names decide which weights decay
        else:
            raise TypeError(f"init_optimizer: optimizer must be a name or an "
                            f"mx.optimizer.Optimizer, got {type(optimizer).__name__}")
        self._optimizer = optimizer
        self._kvstore = kvstore
        self._update_on_kvstore = update_on_kvstore
        self._updater = None
        if kvstore:
            if self._compression_params:
                kvstore.set_gradient_compression(self._compression_params)
            if update_on_kvstore:
                kvstore.set_optimizer(self._optimizer)
            _initialize_kvstore(kvstore, self._exec_group.param_arrays, self._arg_params,
                                self._param_names, update_on_kvstore)
        if not update_on_kvstore:
            self._updater = opt.get_updater(optimizer)
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    def borrow_optimizer(self, shared_module) -> None:
        """Use ``shared_module``'s optimizer, KVStore and updater (BucketingModule)."""
        if not shared_module.optimizer_initialized:
            raise ModuleStateError("borrow_optimizer: call init_optimizer() on the shared "
                                   "module first")
        self._optimizer = shared_module._optimizer
        self._kvstore = shared_module._kvstore
        self._update_on_kvstore = shared_module._update_on_kvstore
        self._updater = shared_module._updater
        self.optimizer_initialized = True

    def save_optimizer_states(self, fname: str) -> None:
        """Save the optimizer states (MXNet's ``.states`` pickle) to ``fname``."""
        self._require("save_optimizer_states()", "optimizer_initialized")
        if self._update_on_kvstore:
            self._kvstore.save_optimizer_states(fname)
            return
        data = self._updater.get_states()
        tmp = f"{fname}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as fout:
                fout.write(data)
            os.replace(tmp, fname)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load_optimizer_states(self, fname: str) -> None:
        """Load optimizer states saved by ``save_optimizer_states`` (or MXNet)."""
        self._require("load_optimizer_states()", "optimizer_initialized")
        if self._update_on_kvstore:
            self._kvstore.load_optimizer_states(fname)
            return
        with open(fname, "rb") as f:
            self._updater.set_states(f.read())

    # ---- computing ----------------------------------------------------------------------------
    def forward(self, data_batch, is_train=None) -> None:
        """``forward(data_batch, is_train=None)``; ``is_train`` defaults to ``for_training``.

        A batch whose data shapes differ from the bound ones (another batch size) re-shapes
        the executors first; shapes the network cannot take raise a ShapeError naming the
        input, the bound shape and the batch's.
        """
        self._require("forward()", "binded", "params_initialized")
        if not hasattr(data_batch, "data"):
            raise TypeError(f"forward expects an mx.io.DataBatch, got "
                            f"{type(data_batch).__name__} (pre-sliced lists of batches are "
                            f"not supported)")
        curr = tuple(d.shape for d in self._data_shapes)
        data = data_batch.data
        if data is None or len(data) != len(self._data_shapes):
            raise HybridNetError(f"forward: the batch has {0 if data is None else len(data)} "
                                 f"data arrays, the module was bound with "
                                 f"{len(self._data_shapes)} ({', '.join(self.data_names)})")
        new = tuple(d.shape for d in data)
        if curr != new:
            self._reshape_for(data_batch, new)
        self._exec_group.forward(data_batch, is_train)

    def _reshape_for(self, data_batch, new_shapes: tuple) -> None:
        if getattr(data_batch, "provide_data", None):
            new_dshape = data_batch.provide_data
        else:
            new_dshape = [DataDesc(d.name, shape, d.dtype, d.layout)
                          for d, shape in zip(self._data_shapes, new_shapes)]
        if getattr(data_batch, "provide_label", None):
            new_lshape = data_batch.provide_label
        elif getattr(data_batch, "label", None) and self._label_shapes:
            new_lshape = [DataDesc(d.name, lab.shape, d.dtype, d.layout)
                          for d, lab in zip(self._label_shapes, data_batch.label)]
        elif self._label_shapes:       # no labels (prediction): keep them, resized
            new_lshape = [DataDesc(d.name, self._resized(d, new_dshape), d.dtype, d.layout)
                          for d in self._label_shapes]
        else:
            new_lshape = None
        try:
            self.reshape(new_dshape, new_lshape)
        except ShapeError as err:
            pairs = ", ".join(f"'{d.name}' {tuple(d.shape)} (bound {tuple(b.shape)})"
                              for d, b in zip(new_dshape, self._data_shapes))
            raise ShapeError("Module.forward", f"the batch's data {pairs} does not fit the "
                             f"network: {err}") from err

    def _resized(self, desc, new_dshape) -> tuple:
        """``desc``'s shape with its batch axis set to the new data batch size."""
        axis = DataDesc.get_batch_axis(desc.layout)
        data_axis = DataDesc.get_batch_axis(getattr(new_dshape[0], "layout", None))
        shape = list(desc.shape)
        if axis >= 0 and data_axis >= 0:
            shape[axis] = new_dshape[0][1][data_axis]
        return tuple(shape)

    def backward(self, out_grads=None) -> None:
        """Compute the gradients (``out_grads`` for outputs that are not loss heads)."""
        self._require("backward()", "binded", "params_initialized")
        self._exec_group.backward(out_grads=out_grads)

    def update(self) -> None:
        """One optimizer step with the gradients of the last backward (all devices)."""
        self._require("update()", "binded", "params_initialized", "optimizer_initialized")
        self._params_dirty = True
        group = self._exec_group
        if self._update_on_kvstore:
            _update_params_on_kvstore(group.param_arrays, group.grad_arrays, self._kvstore,
                                      group.param_names)
        else:
            _update_params(group.param_arrays, group.grad_arrays, updater=self._updater,
                           num_device=len(self._context), kvstore=self._kvstore,
                           param_names=group.param_names)

    def get_outputs(self, merge_multi_context: bool = True) -> list:
        """The outputs: merged over devices, or per output a list over devices."""
        self._require("get_outputs()", "binded", "params_initialized")
        return self._exec_group.get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context: bool = True) -> list:
        """Gradients of the data inputs (bind with ``inputs_need_grad=True``)."""
        self._require("get_input_grads()", "binded", "params_initialized")
        if not self.inputs_need_grad:
            raise ModuleStateError("get_input_grads: bind the module with "
                                   "inputs_need_grad=True")
        return self._exec_group.get_input_grads(merge_multi_context=merge_multi_context)

    def get_states(self, merge_multi_context: bool = True) -> list:
        """The state inputs (``state_names``)."""
        self._require("get_states()", "binded", "params_initialized")
        return self._exec_group.get_states(merge_multi_context=merge_multi_context)

    def set_states(self, states=None, value=None) -> None:
        """Set the state inputs from arrays or to a scalar ``value``."""
        self._require("set_states()", "binded", "params_initialized")
        self._exec_group.set_states(states, value)

    def update_metric(self, eval_metric, labels, pre_sliced: bool = False) -> None:
        """Update ``eval_metric`` with the last outputs and ``labels``."""
        self._exec_group.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon) -> None:
        """Install an ``mx.mon.Monitor`` on every executor."""
        self._require("install_monitor()", "binded")
        self._exec_group.install_monitor(mon)

    def prepare(self, data_batch, sparse_row_id_fn=None) -> None:
        """Pull row-sparse weights for ``data_batch``: hybridnet keeps every weight dense,
        so ``sparse_row_id_fn`` only warns (as MXNet does for dense weights)."""
        self._require("prepare()", "binded")
        if sparse_row_id_fn is None:
            return
        if not self._kvstore or not self._update_on_kvstore:
            warnings.warn("Parameters are not updated in the KVStore. No need to call "
                          "sparse_row_id_fn.", UserWarning, stacklevel=2)
            return
        row_ids = sparse_row_id_fn(data_batch)
        if not isinstance(row_ids, dict):
            raise TypeError("sparse_row_id_fn must return a dict name -> row ids")
        for name in row_ids:
            warnings.warn(f"{name}.stype is not 'row_sparse'. No need to perform "
                          f"row_sparse_pull.", UserWarning, stacklevel=2)
