"""``SequentialModule``: modules chained so that each one's outputs are the next one's data.

    >>> seq = mx.mod.SequentialModule()
    >>> seq.add(mx.mod.Module(features, label_names=None))
    >>> seq.add(mx.mod.Module(head), take_labels=True, auto_wiring=True)
    >>> seq.fit(train_iter, num_epoch=5)

Every module after the first is bound with ``inputs_need_grad`` (when training) so
``backward`` hands each module's input gradients to the module before it. Modules added with
``take_labels=True`` get the batch's labels (and update the metric); ``auto_wiring=True``
renames the previous outputs to the module's own ``data_names``. Less efficient than one
symbol, but any modules (e.g. a ``PythonLossModule``) can be chained.
"""
from __future__ import annotations

import copy
import logging

from ..base import HybridNetError
from ..initializer import Uniform
from ..io.base import DataDesc
from .base_module import BaseModule, ModuleStateError

__all__ = ["SequentialModule"]


class SequentialModule(BaseModule):
    """``SequentialModule(logger=logging)``: chain modules with ``add``."""

    META_TAKE_LABELS = "take_labels"
    META_AUTO_WIRING = "auto_wiring"
    _META_KEYS = (META_TAKE_LABELS, META_AUTO_WIRING)

    def __init__(self, logger=logging):
        super().__init__(logger=logger)
        self._modules: list = []
        self._metas: list = []
        self._label_shapes = None

    def add(self, module, **kwargs):
        """``add(module, take_labels=False, auto_wiring=False)``: append ``module`` to the
        chain; returns ``self`` so calls chain. The whole chain must be bound again."""
        if not isinstance(module, BaseModule):
            raise TypeError(f"SequentialModule.add: expected a module (BaseModule), got "
                            f"{type(module).__name__}")
        for key in kwargs:
            if key not in self._META_KEYS:
                raise ValueError(f'SequentialModule.add: unknown meta "{key}", a typo? '
                                 f'(known: {", ".join(self._META_KEYS)})')
        self._modules.append(module)
        self._metas.append(kwargs)
        self.binded = self.params_initialized = self.optimizer_initialized = False
        return self

    def _takes_labels(self, i: int) -> bool:
        return bool(self._metas[i].get(self.META_TAKE_LABELS, False))

    # ---- properties ---------------------------------------------------------------------------
    @property
    def data_names(self) -> list:
        return self._modules[0].data_names if self._modules else []

    @property
    def output_names(self) -> list:
        return self._modules[-1].output_names if self._modules else []

    @property
    def data_shapes(self) -> list:
        self._require("data_shapes", "binded")
        return self._modules[0].data_shapes

    @property
    def output_shapes(self) -> list:
        self._require("output_shapes", "binded")
        return self._modules[-1].output_shapes

    @property
    def symbol(self):
        """The last module's symbol (the chain has no single symbol)."""
        return self._modules[-1].symbol if self._modules else None

    # ---- parameters ---------------------------------------------------------------------------
    def get_params(self):
        """All modules' parameters merged into one ``(arg_params, aux_params)``."""
        self._require("get_params()", "binded", "params_initialized")
        arg_params, aux_params = {}, {}
        for module in self._modules:
            arg, aux = module.get_params()
            arg_params.update(arg)
            aux_params.update(aux)
        return arg_params, aux_params

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False) -> None:
        """Initialize every module (each takes its own names from the dicts, so the others'
        are allowed extra); two modules with the same parameter name are an error."""
        if self.params_initialized and not force_init:
            return
        self._require("init_params()", "binded")
        for module in self._modules:
            module.init_params(initializer=initializer, arg_params=arg_params,
                               aux_params=aux_params, allow_missing=allow_missing,
                               force_init=force_init, allow_extra=True)
        arg_names, aux_names = self._unique_param_names()
        if not allow_extra:
            for given, names, what in ((arg_params, arg_names, "arg_params"),
                                       (aux_params, aux_names, "aux_params")):
                extra = sorted(set(given or ()) - names)
                if extra:
                    raise HybridNetError(f"init_params: {what} has {', '.join(extra)}, which "
                                         f"no module in the chain has; pass allow_extra=True "
                                         f"to ignore them")
        self.params_initialized = True

    def _unique_param_names(self) -> tuple[set, set]:
        """The chain's argument and auxiliary names; an error if two modules share one."""
        owner: dict = {}
        arg_names, aux_names = set(), set()
        for i, module in enumerate(self._modules):
            arg, aux = module.get_params()
            arg_names.update(arg)
            aux_names.update(aux)
            for name in list(arg) + list(aux):
                if name in owner:
                    raise HybridNetError(
                        f"Duplicated parameter names: name '{name}' in layer {i} "
                        f"({type(module).__name__}) is already used in layer {owner[name]} "
                        f"({type(self._modules[owner[name]]).__name__})")
                owner[name] = i
        return arg_names, aux_names

    # ---- binding ------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write") -> None:
        """Bind each module in turn for the previous module's output shapes."""
        if self.binded and not force_rebind:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if inputs_need_grad and not for_training:
            raise ValueError("bind: inputs_need_grad=True needs for_training=True")
        if shared_module is not None:
            raise HybridNetError("SequentialModule.bind: shared_module is not supported")
        if not self._modules:
            raise ModuleStateError("bind: the SequentialModule is empty; add() modules first")
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        my_data_shapes = data_shapes
        anybody_needs_labels = False
        for i, module in enumerate(self._modules):
            my_label_shapes = label_shapes if self._takes_labels(i) else None
            anybody_needs_labels |= self._takes_labels(i)
            if self._metas[i].get(self.META_AUTO_WIRING, False):
                my_data_shapes = self._wire(i, module, my_data_shapes)
            module.bind(data_shapes=my_data_shapes, label_shapes=my_label_shapes,
                        for_training=for_training,
                        inputs_need_grad=bool(inputs_need_grad or (for_training and i > 0)),
                        force_rebind=force_rebind, shared_module=None, grad_req=grad_req)
            my_data_shapes = module.output_shapes
        self._label_shapes = label_shapes if anybody_needs_labels else None
        self.binded = True

    @staticmethod
    def _wire(i: int, module, shapes: list) -> list:
        """The previous outputs' shapes under ``module``'s data names (auto_wiring)."""
        names = module.data_names
        if len(names) != len(shapes):
            raise HybridNetError(f"SequentialModule: auto_wiring layer {i} has data names "
                                 f"{list(names)} but the previous layer gives {len(shapes)} "
                                 f"outputs {[s[0] for s in shapes]}")
        return [DataDesc(name, tuple(s[1])) for name, s in zip(names, shapes)]

    # ---- optimizer and computing --------------------------------------------------------------
    def init_optimizer(self, kvstore="local", optimizer="sgd",
                       optimizer_params=(("learning_rate", 0.01),), force_init=False) -> None:
        """Give every module the optimizer (each its own instance when given by name)."""
        self._require("init_optimizer()", "binded", "params_initialized")
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring.")
            return
        for module in self._modules:
            module.init_optimizer(kvstore=kvstore, optimizer=optimizer,
                                  optimizer_params=optimizer_params, force_init=force_init)
        self.optimizer_initialized = True

    def forward(self, data_batch, is_train=None) -> None:
        """Run each module on the previous module's outputs."""
        self._require("forward()", "binded", "params_initialized")
        data_batch = copy.copy(data_batch)
        last = len(self._modules) - 1
        for i, module in enumerate(self._modules):
            module.forward(data_batch, is_train=is_train)
            if i == last:
                break
            data_batch.data = module.get_outputs()
            nxt = self._modules[i + 1]
            names = (nxt.data_names if self._metas[i + 1].get(self.META_AUTO_WIRING, False)
                     else [s[0] for s in module.output_shapes])
            data_batch.provide_data = [DataDesc(name, x.shape)
                                       for name, x in zip(names, data_batch.data)]

    def backward(self, out_grads=None) -> None:
        """Backward through the chain, each module's input gradients feeding the previous."""
        self._require("backward()", "binded", "params_initialized")
        for i in range(len(self._modules) - 1, -1, -1):
            module = self._modules[i]
            module.backward(out_grads=out_grads)
            if i > 0:
                out_grads = module.get_input_grads()

    def update(self) -> None:
        self._require("update()", "binded", "params_initialized", "optimizer_initialized")
        for module in self._modules:
            module.update()

    def get_outputs(self, merge_multi_context: bool = True) -> list:
        self._require("get_outputs()", "binded", "params_initialized")
        return self._modules[-1].get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context: bool = True) -> list:
        self._require("get_input_grads()", "binded", "params_initialized")
        if not self.inputs_need_grad:
            raise ModuleStateError("get_input_grads: bind the module with "
                                   "inputs_need_grad=True")
        return self._modules[0].get_input_grads(merge_multi_context=merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced: bool = False) -> None:
        """Update ``eval_metric`` from every module that takes labels."""
        self._require("update_metric()", "binded", "params_initialized")
        for i, module in enumerate(self._modules):
            if self._takes_labels(i):
                module.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon) -> None:
        self._require("install_monitor()", "binded")
        for module in self._modules:
            module.install_monitor(mon)
