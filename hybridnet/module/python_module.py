"""``PythonModule`` / ``PythonLossModule``: modules written in Python, without a Symbol.

``PythonModule`` implements the bookkeeping (names, shapes, the state flags) and makes the
parameter and optimizer calls no-ops, so a subclass writes only ``_compute_output_shapes``,
``forward``, ``backward``, ``get_outputs`` and ``get_input_grads``. ``PythonLossModule`` is a
ready loss head: its output is its input (the scores), and ``backward`` gives the scores'
gradient from ``grad_func(scores, labels)`` -- chain it after a Module in a
``SequentialModule``:

    >>> seq = mx.mod.SequentialModule()
    >>> seq.add(mx.mod.Module(scores_net, label_names=None))
    >>> seq.add(mx.mod.PythonLossModule(grad_func=lambda s, y: s - y), take_labels=True)
"""
from __future__ import annotations

import logging

from .. import ndarray as nd
from ..base import HybridNetError
from ..initializer import Uniform
from ..io.base import DataDesc
from .base_module import BaseModule, ModuleStateError

__all__ = ["PythonModule", "PythonLossModule"]


class PythonModule(BaseModule):
    """``PythonModule(data_names, label_names, output_names, logger=logging)``: base class of
    parameter-free modules implemented in Python."""

    def __init__(self, data_names, label_names, output_names, logger=logging):
        super().__init__(logger=logger)
        self._data_names = list(data_names)
        self._label_names = list(label_names) if label_names is not None else None
        self._output_names = list(output_names)
        self._data_shapes = self._label_shapes = self._output_shapes = None

    # ---- parameters and optimizer: none ----------------------------------------------------
    def get_params(self):
        """``({}, {})``: a Python module has no parameters."""
        return {}, {}

    def init_params(self, initializer=Uniform(0.01), arg_params=None, aux_params=None,
                    allow_missing=False, force_init=False, allow_extra=False) -> None:
        """Nothing to initialize (a subclass with parameters overrides this)."""
        self._require("init_params()", "binded")
        self.params_initialized = True

    def init_optimizer(self, kvstore="local", optimizer="sgd",
                       optimizer_params=(("learning_rate", 0.01),), force_init=False) -> None:
        """Nothing to optimize (a subclass with parameters overrides this)."""
        self._require("init_optimizer()", "binded", "params_initialized")
        self.optimizer_initialized = True

    def update(self) -> None:
        """No parameters, nothing to update."""
        self._require("update()", "binded", "params_initialized", "optimizer_initialized")

    def install_monitor(self, mon) -> None:
        """Nothing to monitor: there are no executors."""

    def update_metric(self, eval_metric, labels, pre_sliced: bool = False) -> None:
        """Update ``eval_metric`` with ``labels`` and ``get_outputs()`` (nothing when bound
        without labels)."""
        if self._label_shapes is None:
            return
        if pre_sliced:
            raise HybridNetError("PythonModule does not support pre-sliced labels")
        eval_metric.update(labels, self.get_outputs())

    # ---- binding ------------------------------------------------------------------------------
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False,
             force_rebind=False, shared_module=None, grad_req="write") -> None:
        """Record the shapes (checked against the names) and compute the output shapes."""
        if self.binded and not force_rebind:
            self.logger.warning("Already bound, ignoring bind()")
            return
        if grad_req != "write":
            raise HybridNetError(f"{type(self).__name__}.bind: only grad_req='write' is "
                                 f"supported, got {grad_req!r}")
        data_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d) for d in data_shapes]
        if [d.name for d in data_shapes] != self._data_names:
            raise HybridNetError(f"{type(self).__name__}.bind: data_shapes name "
                                 f"{[d.name for d in data_shapes]}, the module's data_names "
                                 f"are {self._data_names}")
        if label_shapes is not None:
            label_shapes = [d if isinstance(d, DataDesc) else DataDesc(*d)
                            for d in label_shapes]
            if self._label_names is None or \
                    [d.name for d in label_shapes] != self._label_names:
                raise HybridNetError(f"{type(self).__name__}.bind: label_shapes name "
                                     f"{[d.name for d in label_shapes]}, the module's "
                                     f"label_names are {self._label_names}")
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._data_shapes, self._label_shapes = data_shapes, label_shapes
        self._output_shapes = self._compute_output_shapes()
        self.binded = True

    def _compute_output_shapes(self) -> list:
        """``[(name, shape)]`` of the outputs for the bound shapes (subclasses define it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  f"_compute_output_shapes()")


class PythonLossModule(PythonModule):
    """``PythonLossModule(name='pyloss', data_names=('data',), label_names=('softmax_label',), logger=logging, grad_func=None)``.

    Outputs its input scores as ``<name>_output``; ``backward`` sets the scores' gradient to
    ``grad_func(scores, labels)`` (an NDArray or numpy array of the scores' shape).
    """

    def __init__(self, name="pyloss", data_names=("data",), label_names=("softmax_label",),
                 logger=logging, grad_func=None):
        super().__init__(data_names, label_names, [f"{name}_output"], logger=logger)
        if len(self._data_names) != 1 or len(self._label_names or ()) != 1:
            raise ValueError(f"PythonLossModule takes one data and one label, got "
                             f"data_names={list(data_names)}, label_names={label_names}")
        if grad_func is not None and not callable(grad_func):
            raise TypeError(f"PythonLossModule: grad_func must be callable, got "
                            f"{type(grad_func).__name__}")
        self._name = name
        self._grad_func = grad_func
        self._scores = self._labels = self._scores_grad = None

    def _compute_output_shapes(self) -> list:
        return [(f"{self._name}_output", tuple(self._data_shapes[0].shape))]

    def forward(self, data_batch, is_train=None) -> None:
        """Keep the scores (and, when training, the labels) for backward."""
        self._require("forward()", "binded", "params_initialized")
        self._scores = data_batch.data[0]
        if is_train is None:
            is_train = self.for_training
        if is_train:
            if not data_batch.label:
                raise HybridNetError(f"{self._name}: forward(is_train=True) needs the batch's "
                                     f"labels ({self._label_names[0]})")
            self._labels = data_batch.label[0]

    def get_outputs(self, merge_multi_context: bool = True) -> list:
        """``[scores]``: the loss module's output is its input."""
        self._require("get_outputs()", "binded", "params_initialized")
        return [self._scores]

    def backward(self, out_grads=None) -> None:
        """The scores' gradient from ``grad_func`` (or ``_backward_impl`` in a subclass)."""
        if out_grads is not None:
            raise HybridNetError("PythonLossModule.backward: a loss module takes no out_grads")
        if not self.for_training:
            raise ModuleStateError("backward: the module was bound with for_training=False")
        if self._labels is None:
            raise ModuleStateError("backward: call forward(batch, is_train=True) first")
        self._backward_impl()

    def _backward_impl(self) -> None:
        """Set ``self._scores_grad`` from ``self._scores`` and ``self._labels``."""
        if self._grad_func is None:
            raise NotImplementedError("PythonLossModule: give grad_func or override "
                                      "_backward_impl()")
        grad = self._grad_func(self._scores, self._labels)
        if not isinstance(grad, nd.NDArray):
            grad = nd.array(grad)
        if grad.shape != self._scores.shape:
            raise HybridNetError(f"{self._name}: grad_func returned shape {grad.shape}, the "
                                 f"scores have shape {self._scores.shape}")
        self._scores_grad = grad

    def get_input_grads(self, merge_multi_context: bool = True) -> list:
        """``[d loss / d scores]`` from the last backward."""
        if self._scores_grad is None:
            raise ModuleStateError("get_input_grads: call backward() first")
        return [self._scores_grad]
