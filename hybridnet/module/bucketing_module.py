"""``BucketingModule``: one network per input length, all sharing one set of parameters.

``sym_gen(bucket_key)`` returns ``(symbol, data_names, label_names)`` for a bucket (e.g. an
unrolled RNN of ``bucket_key`` steps). ``bind`` builds a ``Module`` for
``default_bucket_key`` -- which should be the largest bucket, because every other bucket's
executors are bound with ``shared_module`` = that module: they use its parameter and gradient
arrays (the same NDArray objects) and its executor memory pool. A batch's ``bucket_key``
picks the bucket (``switch_bucket`` makes the module the first time a key is seen).

    >>> def sym_gen(seq_len):
    ...     return unrolled_net(seq_len), ('data',), ('softmax_label',)
    >>> mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=30, context=mx.cpu())
    >>> mod.fit(bucket_iter, num_epoch=5)     # batches carry bucket_key and provide_data
"""
from __future__ import annotations

import logging
import warnings

from .. import ndarray as nd
from .. import symbol as sym
from ..base import HybridNetError
from ..initializer import Uniform
from ..io.base import DataDesc
from ..model import load_params
from ..name import NameManager
from .base_module import BaseModule, ModuleStateError, _check_input_names
from .module import Module

__all__ = ["BucketingModule"]


class BucketingModule(BaseModule):
    """``BucketingModule(sym_gen, default_bucket_key=None, logger=logging, context=cpu(), work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None, compression_params=None)``.

    Args:
        sym_gen: ``sym_gen(bucket_key) -> (symbol, data_names, label_names)``.
        default_bucket_key: the bucket bound first; the others share its parameters and
            memory, so it should be the largest.
        The other arguments are ``Module``'s and apply to every bucket.
    """

    def __init__(self, sym_gen, default_bucket_key=None, logger=logging, context=None,
                 work_load_list=None, fixed_param_names=None, state_names=None,
                 group2ctxs=None, compression_params=None):
        super().__init__(logger=logger)
        if default_bucket_key is None:
            raise ValueError("BucketingModule: default_bucket_key is required (the key of "
                             "the largest bucket)")
        if not callable(sym_gen):
            raise TypeError(f"BucketingModule: sym_gen must be a function bucket_key -> "
                            f"(symbol, data_names, label_names), got {type(sym_gen).__name__}")
        self._default_bucket_key = default_bucket_key
        self._sym_gen = sym_gen
        symbol, data_names, label_names = self._call_sym_gen(default_bucket_key)
        self._fixed_param_names = list(fixed_param_names or [])
        self._state_names = list(state_names or [])
        _check_input_names(symbol, list(data_names), "data", True)
        _check_input_names(symbol, list(label_names), "label", False)
        _check_input_names(symbol, self._state_names, "state", True)
        _check_input_names(symbol, self._fixed_param_names, "fixed_param", True)
        self._module_kwargs = dict(logger=logger, context=context,
                                   work_load_list=work_load_list,
                                   fixed_param_names=self._fixed_param_names,
                                   state_names=self._state_names, group2ctxs=group2ctxs,
                                   compression_params=compression_params)
        self._buckets: dict = {}
        self._curr_module = None
        self._curr_bucket_key = None
        self._params_dirty = False
        self._monitor = None
        self._grad_req = None

    def _call_sym_gen(self, bucket_key) -> tuple:
        """``sym_gen(bucket_key)`` with fresh auto-naming, checked to be a triple."""
        try:
            with NameManager():
                result = self._sym_gen(bucket_key)
        except Exception as err:
            raise HybridNetError(f"BucketingModule: sym_gen({bucket_key!r}) failed: "
                                 f"{type(err).__name__}: {err}") from err
        if not (isinstance(result, (tuple, list)) and len(result) == 3
                and isinstance(result[0], sym.Symbol)):
            raise TypeError(f"BucketingModule: sym_gen({bucket_key!r}) must return (symbol, "
                            f"data_names, label_names), got {type(result).__name__}")
        symbol, data_names, label_names = result
        return symbol, list(data_names or []), list(label_names or [])

    def _new_module(self, bucket_key, symbol=None) -> Module:
        gen_symbol, data_names, label_names = self._call_sym_gen(bucket_key)
        return Module(gen_symbol if symbol is None else symbol, data_names, label_names,
                      **self._module_kwargs)

    def _reset_bind(self) -> None:
        self.binded = False
        self._buckets = {}
        self._curr_module = None
        self._curr_bucket_key = None

    # ---- properties ---------------------------------------------------------------------------
    @property
    def default_bucket_key(self):
        """The key of the bucket every other bucket shares parameters with."""
        return self._default_bucket_key

    @property
    def data_names(self) -> list:
        if self.binded:
            return self._curr_module.data_names
        return self._call_sym_gen(self._default_bucket_key)[1]

    @property
    def output_names(self) -> list:
        if self.binded:
            return self._curr_module.output_names
        return self._call_sym_gen(self._default_bucket_key)[0].list_outputs()

    @property
    def data_shapes(self) -> list:
        self._require("data_shapes", "binded")
        return self._curr_module.data_shapes

    @property
    def label_shapes(self):
        self._require("label_shapes", "binded")
        return self._curr_module.label_shapes

    @property
    def output_shapes(self) -> list:
        self._require("output_shapes", "binded")
        return self._curr_module.output_shapes

    @property
    def symbol(self):
        """The symbol of the current bucket."""
        self._require("symbol", "binded")
        return self._curr_module.symbol

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self):
        """``(arg_params, aux_params)`` on the CPU (shared by every bucket)."""
        self._require("get_params()", "binded", "params_initialized")
        self._curr_module._params_dirty = self._params_dirty
        params = self._curr_module.get_params()
        self._params_dirty = False
        return params

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False) -> None:
        """As ``Module.init_params``, on the shared parameters."""
        if self.params_initialized and not force_init:
            return
        self._require("init_params()", "binded")
        self._curr_module.init_params(initializer=initializer, arg_params=arg_params,
                                      aux_params=aux_params, allow_missing=allow_missing,
                                      force_init=force_init, allow_extra=allow_extra)
        self._params_dirty = False
        self.params_initialized = True

    def _copy_params_in(self, arg_params, aux_params, force_init, allow_extra) -> None:
        # the buckets share the parameter arrays: copying into the current one sets them all
        self._curr_module.set_params(arg_params, aux_params, allow_missing=True,
                                     force_init=force_init, allow_extra=allow_extra)

    def get_states(self, merge_multi_context: bool = True) -> list:
        self._require("get_states()", "binded", "params_initialized")
        return self._curr_module.get_states(merge_multi_context=merge_multi_context)

    def set_states(self, states=None, value=None) -> None:
        self._require("set_states()", "binded", "params_initialized")
        self._curr_module.set_states(states, value)

    # ---- binding ------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write") -> None:
        """Bind the default bucket for ``data_shapes`` / ``label_shapes`` (its shapes); other
        buckets are bound by ``switch_bucket`` when a batch first needs them."""
        params = self.get_params() if self.params_initialized and self.binded else None
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if shared_module is not None:
            raise HybridNetError("BucketingModule.bind: shared_module is not supported (the "
                                 "buckets already share the default bucket's parameters)")
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._grad_req = grad_req
        key = self._default_bucket_key
        module = self._buckets.get(key) or self._new_module(key)
        module.bind(data_shapes, label_shapes, for_training, inputs_need_grad,
                    force_rebind=False, shared_module=None, grad_req=grad_req)
        self._buckets = {key: module}        # buckets loaded unbound are re-made on demand
        self._curr_module, self._curr_bucket_key = module, key
        self.binded = True
        if params is not None:
            self.set_params(*params)

    def switch_bucket(self, bucket_key, data_shapes, label_shapes=None) -> None:
        """Make ``bucket_key`` the current bucket, binding its module (sharing the default
        bucket's parameters and memory) for these shapes the first time."""
        self._require("switch_bucket()", "binded")
        if bucket_key is None:
            bucket_key = self._default_bucket_key
        if bucket_key not in self._buckets:
            if data_shapes is None:
                raise HybridNetError(f"switch_bucket: bucket {bucket_key!r} is not bound yet; "
                                     f"give its data_shapes")
            module = self._new_module(bucket_key)
            default = self._buckets[self._default_bucket_key]
            self._check_same_params(bucket_key, module, default)
            module.bind(data_shapes, label_shapes, default.for_training,
                        default.inputs_need_grad, force_rebind=False, shared_module=default,
                        grad_req=self._grad_req)
            if self._monitor is not None:
                module.install_monitor(self._monitor)
            self._buckets[bucket_key] = module
        self._curr_module = self._buckets[bucket_key]
        self._curr_bucket_key = bucket_key

    def _check_same_params(self, bucket_key, module: Module, default: Module) -> None:
        """Every bucket must have the default bucket's parameters, in its order: the
        optimizer numbers the parameters, so a different list would mix their states up."""
        if module._param_names == default._param_names and \
                module._aux_names == default._aux_names:
            return
        have, want = set(module._param_names + module._aux_names), \
            set(default._param_names + default._aux_names)
        detail = []
        if have - want:
            detail.append(f"extra {', '.join(sorted(have - want))}")
        if want - have:
            detail.append(f"missing {', '.join(sorted(want - have))}")
        raise HybridNetError(
            f"BucketingModule: bucket {bucket_key!r}'s parameters differ from the default "
            f"bucket {self._default_bucket_key!r}'s ({'; '.join(detail) or 'another order'}); "
            f"every bucket must use the same parameters")

    def _batch_shapes(self, data_batch) -> tuple:
        """``(provide_data, provide_label)`` of a batch (from its arrays when not given)."""
        data_shapes, label_shapes = data_batch.provide_data, data_batch.provide_label
        if data_shapes is None and data_batch.data is not None:
            data_shapes = [DataDesc(name, arr.shape) for name, arr in
                           zip(self._curr_module.data_names, data_batch.data)]
        if label_shapes is None and data_batch.label:
            label_shapes = [DataDesc(name, arr.shape) for name, arr in
                            zip(self._curr_module.label_names, data_batch.label)]
        return data_shapes, label_shapes

    # ---- optimizer ----------------------------------------------------------------------------
    def init_optimizer(self, kvstore="local", optimizer="sgd",
                       optimizer_params=(("learning_rate", 0.01),), force_init=False) -> None:
        """Install the optimizer on the current bucket; every bucket uses it."""
        self._require("init_optimizer()", "binded", "params_initialized")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring.")
            return
        self._curr_module.init_optimizer(kvstore, optimizer, optimizer_params,
                                         force_init=force_init)
        for module in self._buckets.values():
            if module is not self._curr_module:
                module.borrow_optimizer(self._curr_module)
        self.optimizer_initialized = True

    # ---- computing ----------------------------------------------------------------------------
    def prepare(self, data_batch, sparse_row_id_fn=None) -> None:
        """Bind the batch's bucket if needed (then switch back to the current one)."""
        self._require("prepare()", "binded", "params_initialized")
        original = self._curr_bucket_key
        self.switch_bucket(data_batch.bucket_key, *self._batch_shapes(data_batch))
        self._curr_module.prepare(data_batch, sparse_row_id_fn=sparse_row_id_fn)
        self.switch_bucket(original, None, None)

    def forward(self, data_batch, is_train=None) -> None:
        """Switch to ``data_batch.bucket_key`` (None: the default bucket) and run forward."""
        self._require("forward()", "binded", "params_initialized")
        self.switch_bucket(data_batch.bucket_key, *self._batch_shapes(data_batch))
        self._curr_module.forward(data_batch, is_train=is_train)

    def backward(self, out_grads=None) -> None:
        self._require("backward()", "binded", "params_initialized")
        self._curr_module.backward(out_grads=out_grads)

    def update(self) -> None:
        self._require("update()", "binded", "params_initialized", "optimizer_initialized")
        self._params_dirty = True
        self._curr_module.update()

    def get_outputs(self, merge_multi_context: bool = True) -> list:
        self._require("get_outputs()", "binded", "params_initialized")
        return self._curr_module.get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context: bool = True) -> list:
        self._require("get_input_grads()", "binded", "params_initialized")
        return self._curr_module.get_input_grads(merge_multi_context=merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced: bool = False) -> None:
        self._require("update_metric()", "binded", "params_initialized")
        self._curr_module.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon) -> None:
        """Install ``mon`` on every bucket's executors (and on buckets bound later)."""
        self._require("install_monitor()", "binded")
        self._monitor = mon
        for module in self._buckets.values():
            module.install_monitor(mon)

    # ---- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, prefix: str, epoch: int, remove_amp_cast: bool = False) -> None:
        """MXNet's bucketing checkpoint: ``prefix-%04d.params``, one
        ``prefix-<key>-symbol.json`` per bound bucket and ``prefix.buckets`` (the int keys)."""
        if not self._buckets:
            raise ModuleStateError("save_checkpoint: an empty BucketingModule cannot be saved; "
                                   "call bind() first")
        self._require("save_checkpoint()", "binded", "params_initialized")
        for key in self._buckets:
            if not isinstance(key, int):
                raise HybridNetError(f"save_checkpoint: bucket key {key!r} is not an int; "
                                     f"the .buckets file stores int32 keys")
        self.save_params(f"{prefix}-{int(epoch):04d}.params")
        for key in self._buckets:
            self._call_sym_gen(key)[0].save(f"{prefix}-{key}-symbol.json",
                                            remove_amp_cast=remove_amp_cast)
        nd.save(f"{prefix}.buckets", nd.array(list(self._buckets), dtype="int32"))

    @staticmethod
    def load(prefix: str, epoch: int, sym_gen=None, default_bucket_key=None, **kwargs):
        """``BucketingModule.load(prefix, epoch, sym_gen, default_bucket_key, **kwargs)``: the
        module saved by ``save_checkpoint`` (bind it before use)."""
        if sym_gen is None or default_bucket_key is None:
            raise ValueError("BucketingModule.load: sym_gen and default_bucket_key are "
                             "required")
        keys = [int(k) for k in nd.load(f"{prefix}.buckets")[0].asnumpy()]
        symbols = {key: sym.load(f"{prefix}-{key}-symbol.json") for key in keys}
        arg_params, aux_params = load_params(prefix, epoch)
        return BucketingModule.load_dict(symbols, sym_gen, default_bucket_key, arg_params,
                                         aux_params, **kwargs)

    @staticmethod
    def load_dict(sym_dict=None, sym_gen=None, default_bucket_key=None, arg_params=None,
                  aux_params=None, **kwargs):
        """``BucketingModule.load_dict(sym_dict, sym_gen, default_bucket_key, arg_params, aux_params, **kwargs)``:
        a module with these bucket symbols and parameters (bind it before use)."""
        if sym_dict is None or arg_params is None or aux_params is None \
                or default_bucket_key is None:
            raise ValueError("BucketingModule.load_dict: sym_dict, default_bucket_key, "
                             "arg_params and aux_params are required")
        if default_bucket_key not in sym_dict:
            raise HybridNetError(f"BucketingModule.load_dict: the default bucket "
                                 f"{default_bucket_key!r} is not among the symbols' keys "
                                 f"{sorted(sym_dict)}")
        mod = BucketingModule(sym_gen, default_bucket_key, **kwargs)
        default = mod._new_module(default_bucket_key, sym_dict[default_bucket_key])
        default._arg_params, default._aux_params = arg_params, aux_params
        default.params_initialized = True
        default._params_checked = False
        mod._buckets = {default_bucket_key: default}
        mod._curr_module, mod._curr_bucket_key = default, default_bucket_key
        mod.params_initialized = True
        return mod
