"""The optimizer base class, the optimizer registry, ``Updater`` and the plain-data wire forms.

``Optimizer`` keeps what every update rule shares: the learning rate (or an LR schedule), weight
decay, gradient rescaling and clipping, per-parameter lr/wd multipliers, update counting and
multi-precision (an fp32 master copy for fp16 weights). A rule is a subclass registered with
``@register`` that implements ``create_state(index, weight)`` and ``update(index, weight, grad,
state)`` (the fast path: fused registry operators or in-place kernels pushed to the engine), plus
``reference_update(weight, grad, state, lr, wd, t)``: the same rule in plain numpy, written to
be read, which the tests hold the fast path to.

Wire contract (used by the distributed KVStore; nothing here is ever pickled on the network):

* ``Optimizer.to_spec() -> dict`` -- JSON data: ``{'name': registered name, 'class':
  'module:Class', 'params': constructor keywords (current values; ``param_idx2name`` as a list
  of ``[index, name]`` pairs), 'lr_mult': [[key, mult], ...], 'wd_mult': [[key, mult], ...],
  'num_update': int, 'lr_scheduler': lr_scheduler.to_spec() or None}``.
* ``from_spec(spec, allow_import=True)`` rebuilds the optimizer: the class comes from the
  registry by ``name``, else (``allow_import``) by importing ``class``; a clear ValueError when
  neither works.
* ``Updater.state_arrays() -> (arrays, meta)``: every state array as a numpy array, and JSON
  ``meta`` saying which index owns which arrays (tuples and None kept) plus the update counts;
  ``Updater.load_state_arrays(arrays, meta)`` restores them.

Local ``.states`` files keep MXNet's format: ``Updater.get_states()`` is a pickle of
``{index: state}`` (or ``(states, optimizer)`` with ``dump_optimizer=True``) whose arrays are
``mxnet.ndarray.ndarray.NDArray`` objects with state ``{'handle': <array bytes>}``, so MXNet
1.x reads our files and we read MXNet's (see ``states.py``).
"""
from __future__ import annotations

import importlib
import inspect
import json
import warnings
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from .. import config
from .. import lr_scheduler as _lrs
from ..base import HybridNetError, ShapeError, shape_str
from ..context import Context, cpu
from ..engine import NORMAL, get_engine
from ..ndarray import NDArray, zeros
from ..ops import resource
from ..ops.registry import get_op

__all__ = ["Optimizer", "Updater", "register", "create", "get_updater", "from_spec",
           "push_kernel", "fused_update", "scaled_grad", "state_to_numpy"]

_F32 = np.dtype(np.float32)
_INLINE = config.get("HYBRIDNET_ENGINE_INLINE_SIZE")


# ---- helpers the update rules share --------------------------------------------------------
def scaled_grad(xp, grad, rescale_grad: float, clip_gradient, dtype=None):
    """``clip(rescale_grad * grad, clip_gradient)`` as a new array (None: no clipping)."""
    g = xp.multiply(grad, rescale_grad, dtype=dtype or grad.dtype)
    if clip_gradient is not None:
        xp.clip(g, -clip_gradient, clip_gradient, out=g)
    return g


def push_kernel(name: str, kernel: Callable, writes: list, reads: list = (),
                random: bool = False) -> None:
    """Run ``kernel(xp, *write_buffers, *read_buffers)`` through the engine.

    ``writes`` are the NDArrays it updates in place (weight first, then states), ``reads``
    those it only reads (the gradient). It runs after earlier work on them, on the weight's
    device, and in the calling thread when everything is ready and the weight is small.
    ``random=True`` also passes ``rng``, the device's seeded generator, as a last argument
    (and orders the draw with the device's other random work).
    """
    ctx = writes[0].context
    wdata = [a._data for a in writes]
    rdata = [a._data for a in reads]
    xp = ctx.xp
    write_vars = [a._var for a in writes]
    octx = resource.op_context(ctx) if random else None
    if random:
        write_vars.append(resource.rng_var(ctx))

    def run():
        if octx is None:
            kernel(xp, *wdata, *rdata)
        else:             # read the generator now: mx.random.seed may have replaced it
            kernel(xp, *wdata, *rdata, octx.rng)
    run.__name__ = name
    get_engine().push(run, [a._var for a in reads], write_vars, ctx, NORMAL, 0, name,
                      wdata[0].size <= _INLINE)


_FUSED: dict = {}


def fused_update(op_name: str, weight: NDArray, grad: NDArray, *states: NDArray,
                 **params) -> None:
    """Update ``weight`` in place with the fused registry operator ``op_name``.

    The same as ``mx.nd.<op_name>(weight, grad, *states, out=weight, **params)`` minus the
    per-call parsing and inference an eager call does (an optimizer's learning rate changes
    every step, so those would never be cached): the kernel is pushed to the engine at once.
    """
    entry = _FUSED.get(op_name)
    if entry is None:
        op = get_op(op_name)
        entry = _FUSED[op_name] = (op, {p.name: p.default for p in op.params})
    op, defaults = entry
    values = dict(defaults)
    values.update(params)
    ctx = weight.context
    for what, arr in [("grad", grad)] + [(n, s) for n, s in zip(op.aux_names(values), states)]:
        if arr.shape != weight.shape:
            raise ShapeError(op_name, f"{what} has shape {shape_str(arr.shape)}, the weight has "
                                      f"{shape_str(weight.shape)}")
        if arr.context is not ctx:
            raise HybridNetError(f"{op_name}: {what} is on {arr.context}, the weight on {ctx}; "
                                 f"copy it with as_in_context first")
    p = SimpleNamespace(**values)
    octx = resource.op_context(ctx)
    wdata = weight._data
    inputs, aux = [wdata, grad._data], [s._data for s in states]

    def run():
        op.forward(octx, p, inputs, aux, [wdata], True)
    get_engine().push(run, [grad._var], [weight._var] + [s._var for s in states], ctx, NORMAL,
                      0, op_name, wdata.size <= _INLINE)


def state_to_numpy(state):
    """The state with every NDArray replaced by a numpy copy (tuples/lists/None kept)."""
    if isinstance(state, NDArray):
        return state.asnumpy()
    if isinstance(state, (tuple, list)):
        return type(state)(state_to_numpy(s) for s in state)
    return state


def _cast_into(src: NDArray, dst: NDArray) -> None:
    """dst[...] = src, converting the dtype (engine work)."""
    src.copyto(dst)


# ---- the registry -------------------------------------------------------------------------
_REGISTRY: dict[str, type] = {}


def register(klass: type) -> type:
    """Register an Optimizer subclass under its lower-cased class name (a decorator).

    Example::

        >>> @mx.optimizer.register
        ... class MyOpt(mx.optimizer.Optimizer): ...
        >>> mx.optimizer.create('myopt')
    """
    if not (isinstance(klass, type) and issubclass(klass, Optimizer)):
        raise TypeError(f"register expects an Optimizer subclass, got {klass!r}")
    name = klass.__name__.lower()
    old = _REGISTRY.get(name)
    if old is not None and old is not klass:
        warnings.warn(f"New optimizer {klass.__module__}.{klass.__name__} is overriding existing "
                      f"optimizer {old.__module__}.{old.__name__}", stacklevel=2)
    _REGISTRY[name] = klass
    return klass


def create(name: str, **kwargs) -> "Optimizer":
    """Create the optimizer registered as ``name`` (case-insensitive) with ``kwargs``.

    Example::

        >>> opt = mx.optimizer.create('sgd', learning_rate=0.1, momentum=0.9)
    """
    klass = _REGISTRY.get(str(name).lower())
    if klass is None:
        raise ValueError(f"Cannot find optimizer {name!r}; registered optimizers: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return klass(**kwargs)


def _registered_name(klass: type) -> str | None:
    for name, k in _REGISTRY.items():
        if k is klass:
            return name
    return None


class Optimizer:
    """Base of every optimizer: ``Optimizer(rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None, learning_rate=None, lr_scheduler=None, sym=None, begin_num_update=0, multi_precision=False, param_dict=None)``.

    Args:
        rescale_grad: gradients are multiplied by this first (often ``1 / batch_size``).
        param_idx2name: ``{index: parameter name}``; names not ending in ``_weight`` or
            ``_gamma`` get no weight decay (wd_mult 0).
        wd: weight decay (L2 penalty) coefficient.
        clip_gradient: clip the gradient to ``[-clip_gradient, clip_gradient]`` (None: off).
        learning_rate: the rate; None means the schedule's ``base_lr``, or 0.01 without one.
            Given with ``lr_scheduler`` it overrides the schedule's ``base_lr``.
        lr_scheduler: an ``mx.lr_scheduler.LRScheduler`` called with ``num_update``.
        sym: a Symbol whose variables' ``__lr_mult__`` / ``__wd_mult__`` attributes set the
            multipliers.
        begin_num_update: the update count to start from (resuming training).
        multi_precision: keep an fp32 master copy of fp16 weights and update that.
        param_dict: ``{index: gluon-style Parameter}`` with ``lr_mult`` / ``wd_mult``.
    """

    #: state layout with multi_precision: True -> (weight32, state), False -> (state, weight32)
    _master_first = True

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # remember how the optimizer was made, for to_spec()
        try:
            bound = inspect.signature(cls.__init__).bind(obj, *args, **kwargs)
            ctor = {k: v for k, v in bound.arguments.items() if k != "self"}
            for k, v in list(ctor.items()):
                if inspect.signature(cls.__init__).parameters[k].kind == \
                        inspect.Parameter.VAR_KEYWORD:
                    ctor.pop(k)
                    ctor.update(v)
        except TypeError:
            ctor = dict(kwargs)
        # sym and param_dict act through lr_mult/wd_mult; keeping them would pin big objects
        obj._ctor_args = {k: v for k, v in ctor.items() if k not in ("sym", "param_dict")}
        return obj

    def __init__(self, rescale_grad: float = 1.0, param_idx2name: dict | None = None,
                 wd: float = 0.0, clip_gradient: float | None = None,
                 learning_rate: float | None = None, lr_scheduler=None, sym=None,
                 begin_num_update: int = 0, multi_precision: bool = False,
                 param_dict: dict | None = None):
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None:
            if lr_scheduler.base_lr != learning_rate:
                warnings.warn("learning rate from ``lr_scheduler`` has been overwritten by "
                              "``learning_rate`` in optimizer.", stacklevel=2)
                lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.lr_mult: dict = {}
        self.wd_mult: dict = {}
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._all_index_update_counts: dict = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        self.aggregate_num = 0
        if param_idx2name is None:
            param_idx2name = {}
        if not isinstance(param_idx2name, dict):
            raise TypeError(f"param_idx2name should be a dict of param indexes to names, got "
                            f"{type(param_idx2name).__name__}")
        self.idx2name = dict(param_idx2name)
        self.sym_info = (sym.attr_dict(), sym.list_arguments()) if sym is not None else ()
        self.param_dict = param_dict if param_dict else {}
        self.set_lr_mult({})
        self.set_wd_mult({})

    create_optimizer = staticmethod(create)
    register = staticmethod(register)
    opt_registry = _REGISTRY

    # ---- learning rate and multipliers --------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The current rate: the schedule's value at ``num_update``, or the fixed rate."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        """Set a new fixed learning rate (not allowed when an lr_scheduler is in charge)."""
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined. Note "
                              "that set_learning_rate can mutate the value of the learning "
                              "rate of the optimizer only when the LRScheduler of the "
                              "optimizer is undefined.")
        self.lr = lr

    def set_lr_scale(self, args_lrscale) -> None:
        """[Deprecated in MXNet] raises DeprecationWarning; use ``set_lr_mult``."""
        raise DeprecationWarning("set_lr_scale is deprecated; use set_lr_mult instead")

    def set_lr_mult(self, args_lr_mult: dict) -> None:
        """Per-parameter learning-rate multipliers ``{name or index: mult}``.

        The symbol's ``__lr_mult__`` attributes come first, ``args_lr_mult`` overrides them.
        """
        self.lr_mult = {}
        if self.sym_info:
            attr, arg_names = self.sym_info
            for name in arg_names:
                if name in attr and "__lr_mult__" in attr[name]:
                    self.lr_mult[name] = float(attr[name]["__lr_mult__"])
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult: dict) -> None:
        """Per-parameter weight-decay multipliers ``{name or index: mult}``.

        Parameters in ``param_idx2name`` whose names end in neither ``_weight`` nor ``_gamma``
        get 0 (no decay of biases, betas, ...); the symbol's ``__wd_mult__`` attributes and then
        ``args_wd_mult`` override that.
        """
        self.wd_mult = {}
        for name in self.idx2name.values():
            if not self._decays_by_default(name):
                self.wd_mult[name] = 0.0
        if self.sym_info:
            attr, arg_names = self.sym_info
            for name in arg_names:
                if name in attr and "__wd_mult__" in attr[name]:
                    self.wd_mult[name] = float(attr[name]["__wd_mult__"])
        self.wd_mult.update(args_wd_mult)

    @staticmethod
    def _decays_by_default(name: str) -> bool:
        return name.endswith("_weight") or name.endswith("_gamma")

    def _set_current_context(self, device_id: int) -> None:
        """Count updates separately per device (each device updates its own weight copy)."""
        self._index_update_count = self._all_index_update_counts.setdefault(device_id, {})

    def _update_count(self, index) -> None:
        """Count one more update of ``index`` (or of each index in a list)."""
        for idx in index if isinstance(index, (list, tuple)) else [index]:
            count = self._index_update_count.get(idx, self.begin_num_update) + 1
            self._index_update_count[idx] = count
            self.num_update = max(count, self.num_update)

    def _mult(self, index, table: dict, attr: str) -> float:
        if index in self.param_dict:
            return getattr(self.param_dict[index], attr)
        if index in table:
            return table[index]
        if index in self.idx2name:
            return table.get(self.idx2name[index], 1.0)
        return 1.0

    def _get_lrs(self, indices) -> list:
        lr = self.learning_rate
        return [lr * self._mult(i, self.lr_mult, "lr_mult") for i in indices]

    def _get_lr(self, index) -> float:
        """The learning rate of ``index`` (schedule or fixed rate, times its lr_mult)."""
        return self._get_lrs([index])[0]

    def _get_wds(self, indices) -> list:
        return [self.wd * self._mult(i, self.wd_mult, "wd_mult") for i in indices]

    def _get_wd(self, index) -> float:
        """The weight decay of ``index`` (wd times its wd_mult)."""
        return self._get_wds([index])[0]

    def _step_values(self, index):
        """Count the update of ``index``; return (lr, wd, t) for it (t counts from 1)."""
        self._update_count(index)
        return self._get_lr(index), self._get_wd(index), self._index_update_count[index]

    # ---- states and updates ---------------------------------------------------------------
    def create_state(self, index, weight: NDArray):
        """The optimizer state for ``weight`` (None, an NDArray or a tuple of them)."""
        return None

    def _uses_master_copy(self, weight: NDArray) -> bool:
        return self.multi_precision and np.dtype(weight.dtype) == np.float16

    def create_state_multi_precision(self, index, weight: NDArray):
        """Like ``create_state``, plus an fp32 master copy of fp16 weights when
        ``multi_precision`` is set (state ``(weight32, state)``)."""
        if self._uses_master_copy(weight):
            master = zeros(weight.shape, weight.context, dtype=_F32)
            _cast_into(weight, master)
            inner = self.create_state(index, master)
            return (master, inner) if self._master_first else (inner, master)
        if np.dtype(weight.dtype) == np.float16:
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or "
                          "slow convergence. Consider using multi_precision=True option of the "
                          f"{type(self).__name__} optimizer", stacklevel=2)
        return self.create_state(index, weight)

    def update(self, index, weight: NDArray, grad: NDArray, state) -> None:
        """Update ``weight`` in place from ``grad`` and ``state`` (engine work, asynchronous)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update()")

    def update_multi_precision(self, index, weight: NDArray, grad: NDArray, state) -> None:
        """``update``, on the fp32 master copy for fp16 weights with multi_precision."""
        if not self._uses_master_copy(weight):
            self.update(index, weight, grad, state)
            return
        master, inner = state if self._master_first else state[::-1]
        grad32 = zeros(grad.shape, grad.context, dtype=_F32)
        _cast_into(grad, grad32)
        self.update(index, master, grad32, inner)
        _cast_into(master, weight)

    # ---- the readable reference -----------------------------------------------------------
    def reference_update(self, weight: np.ndarray, grad: np.ndarray, state, lr: float,
                         wd: float, t: int):
        """The update rule in plain numpy: returns (new weight, new state); inputs untouched."""
        raise NotImplementedError(f"{type(self).__name__} has no reference implementation")

    def reference_step(self, index, weight: np.ndarray, grad: np.ndarray, state):
        """One update of ``index`` by the reference rule (counting it like ``update`` does);
        ``state`` is ``state_to_numpy(create_state_multi_precision(...))``."""
        lr, wd, t = self._step_values(index)
        if not (self.multi_precision and weight.dtype == np.float16):
            return self.reference_update(weight, grad, state, lr, wd, t)
        master, inner = state if self._master_first else state[::-1]
        master, inner = self.reference_update(master, grad.astype(np.float32), inner, lr, wd, t)
        new_state = (master, inner) if self._master_first else (inner, master)
        return master.astype(weight.dtype), new_state

    # ---- plain-data form --------------------------------------------------------------------
    def to_spec(self) -> dict:
        """JSON data that ``from_spec`` turns back into an equal optimizer (module docstring)."""
        cls = type(self)
        params = {}
        for key, value in self._ctor_args.items():
            if key == "lr_scheduler":
                continue         # sent as its own spec below
            if key == "param_idx2name":
                value = [[k, v] for k, v in self.idx2name.items()]
            else:
                value = self._current_value(key, value)
            params[key] = _json_value(f"{cls.__name__}.{key}", value)
        for key, attr in (("rescale_grad", "rescale_grad"), ("wd", "wd"),
                          ("clip_gradient", "clip_gradient"),
                          ("multi_precision", "multi_precision"),
                          ("begin_num_update", "begin_num_update")):
            params[key] = _json_value(f"{cls.__name__}.{key}", getattr(self, attr))
        if self.lr is not None:
            params["learning_rate"] = float(self.lr)
        return {"name": _registered_name(cls),
                "class": f"{cls.__module__}:{cls.__qualname__}",
                "params": params,
                "lr_mult": [[k, float(v)] for k, v in self.lr_mult.items()],
                "wd_mult": [[k, float(v)] for k, v in self.wd_mult.items()],
                "num_update": int(self.num_update),
                "lr_scheduler": self.lr_scheduler.to_spec() if self.lr_scheduler else None}

    def _current_value(self, key: str, recorded):
        if key == "learning_rate":
            return self.lr
        return getattr(self, key, recorded)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("param_dict", None)     # set again by whoever owns the parameters
        return state

    def __setstate__(self, state):
        self.__dict__ = state
        self.param_dict = {}
        # optimizers pickled by MXNet lack what only hybridnet keeps
        self.__dict__.setdefault("_ctor_args", {})

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.lr}, wd={self.wd})"


def _json_value(what: str, value: Any):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError(f"to_spec: {what} = {value!r} is not plain JSON data (numbers, "
                         f"strings, lists); it cannot be sent to a parameter server") from None
    return value


def from_spec(spec: dict, allow_import: bool = True) -> Optimizer:
    """Rebuild an optimizer from ``Optimizer.to_spec()`` data (see the module docstring)."""
    if not isinstance(spec, dict) or "params" not in spec:
        raise ValueError(f"from_spec expects a dict made by Optimizer.to_spec(), got {spec!r}")
    klass = _REGISTRY.get(str(spec.get("name")).lower()) if spec.get("name") else None
    path = spec.get("class", "")
    if klass is None or f"{klass.__module__}:{klass.__qualname__}" != path:
        module_name, _, cls_name = path.partition(":")
        if klass is None and not allow_import:
            raise ValueError(f"optimizer {spec.get('name')!r} ({path}) is not registered and "
                             f"importing its class is not allowed")
        if allow_import and module_name:
            try:
                klass = getattr(importlib.import_module(module_name), cls_name)
            except (ImportError, AttributeError, ValueError) as err:
                if klass is None:
                    raise ValueError(f"cannot rebuild optimizer {spec.get('name')!r}: class "
                                     f"{path!r} cannot be imported ({err}); registered "
                                     f"optimizers: {', '.join(sorted(_REGISTRY))}") from None
    if not (isinstance(klass, type) and issubclass(klass, Optimizer)):
        raise ValueError(f"{path!r} is not an Optimizer class")
    params = dict(spec["params"])
    if "param_idx2name" in params:
        params["param_idx2name"] = {k: v for k, v in params["param_idx2name"]}
    scheduler = _lrs.from_spec(spec.get("lr_scheduler"), allow_import)
    if scheduler is not None:
        params["lr_scheduler"] = scheduler
    opt = klass(**params)
    opt.lr_mult = {k: v for k, v in spec.get("lr_mult", [])}
    opt.wd_mult = {k: v for k, v in spec.get("wd_mult", [])}
    opt.num_update = int(spec.get("num_update", opt.num_update))
    return opt


# ---- Updater ------------------------------------------------------------------------------
class Updater:
    """Applies an optimizer to (index, grad, weight) triples, owning one state per index.

    ``updater(index, grad, weight)`` (also with lists of indices, grads and weights) creates the
    state on first sight of an index and updates ``weight`` in place. This is what a KVStore
    runs on push and what Module uses when the store does not update.
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.states: dict = {}
        self.states_synced: dict = {}
        self.aggregate_updates = False

    def __call__(self, index, grad, weight) -> None:
        if isinstance(index, (list, tuple)):
            indices, grads, weights = list(index), list(grad), list(weight)
        else:
            indices, grads, weights = [index], [grad], [weight]
        if weights:
            self.optimizer._set_current_context(weights[0].context.device_id)
        for idx, g, w in zip(indices, grads, weights):
            if isinstance(idx, bytes):
                idx = idx.decode()
            if idx not in self.states:
                self.states[idx] = self.optimizer.create_state_multi_precision(idx, w)
                self.states_synced[idx] = True
            elif not self.states_synced[idx]:
                self.states[idx] = self.sync_state_context(self.states[idx], w.context)
                self.states_synced[idx] = True
            self.optimizer.update_multi_precision(idx, w, g, self.states[idx])

    def sync_state_context(self, state, context: Context):
        """``state`` with every array moved to ``context`` (after loading saved states)."""
        if isinstance(state, NDArray):
            return state.as_in_context(context)
        if isinstance(state, (tuple, list)):
            return type(state)(self.sync_state_context(s, context) for s in state)
        return state

    # ---- MXNet's pickle format (local .states files) -------------------------------------
    def get_states(self, dump_optimizer: bool = False) -> bytes:
        """The states pickled as MXNet does (``(states, optimizer)`` if ``dump_optimizer``)."""
        from .states import dumps
        return dumps((self.states, self.optimizer) if dump_optimizer else self.states)

    def set_states(self, states: bytes) -> None:
        """Load states made by ``get_states`` (ours or MXNet 1.x's)."""
        from .states import loads
        loaded = loads(states)
        if isinstance(loaded, tuple) and len(loaded) == 2:
            self.states, self.optimizer = loaded
        else:
            self.states = loaded
        if not isinstance(self.states, dict):
            raise HybridNetError(f"optimizer states must unpickle to a dict of index -> "
                                 f"state, got {type(self.states).__name__}")
        self.states_synced = dict.fromkeys(self.states, False)

    # ---- plain arrays + JSON (the distributed store's form) ----------------------------------
    def state_arrays(self) -> tuple[list, dict]:
        """(arrays, meta): every state array as numpy, and JSON meta to put them back.

        ``meta = {'states': [[index, layout], ...], 'counts': [[index, n], ...],
        'num_update': n}`` where a layout is None, ``{'a': i}`` (``arrays[i]``),
        ``{'tuple': [...]}`` or ``{'list': [...]}``.
        """
        arrays: list = []

        def layout(state):
            if state is None:
                return None
            if isinstance(state, NDArray):
                arrays.append(state.asnumpy())
                return {"a": len(arrays) - 1}
            if isinstance(state, (tuple, list)):
                kind = "tuple" if isinstance(state, tuple) else "list"
                return {kind: [layout(s) for s in state]}
            raise HybridNetError(f"state_arrays: cannot export a state of type "
                                 f"{type(state).__name__}")
        meta = {"states": [[idx, layout(s)] for idx, s in self.states.items()],
                "counts": [[idx, n] for idx, n in self.optimizer._index_update_count.items()],
                "num_update": int(self.optimizer.num_update)}
        json.dumps(meta)
        return arrays, meta

    def load_state_arrays(self, arrays: list, meta: dict, ctx: Context | None = None) -> None:
        """Restore states from ``state_arrays()`` output (arrays land on ``ctx``, default
        cpu(0), and move to each weight's device at its next update)."""
        ctx = ctx or cpu(0)
        from ..ndarray import array

        def build(spec):
            if spec is None:
                return None
            if "a" in spec:
                i = spec["a"]
                if not 0 <= i < len(arrays):
                    raise HybridNetError(f"load_state_arrays: meta refers to array {i}, only "
                                         f"{len(arrays)} given")
                src = np.asarray(arrays[i])
                return array(src, ctx=ctx, dtype=src.dtype)
            if "tuple" in spec:
                return tuple(build(s) for s in spec["tuple"])
            if "list" in spec:
                return [build(s) for s in spec["list"]]
            raise HybridNetError(f"load_state_arrays: bad state layout {spec!r}")
        self.states = {idx: build(spec) for idx, spec in meta["states"]}
        self.states_synced = dict.fromkeys(self.states, False)
        self.optimizer._index_update_count.update({idx: n for idx, n in meta.get("counts", [])})
        self.optimizer.num_update = int(meta.get("num_update", self.optimizer.num_update))


def get_updater(optimizer: Optimizer) -> Updater:
    """An ``Updater`` for ``optimizer`` (what ``kv.set_optimizer`` installs locally)."""
    return Updater(optimizer)
