"""``mx.init`` / ``mx.initializer``: how parameters get their first values.

An initializer is called with a parameter's description and its array, ``init(desc, arr)``, and
fills the array in place. What it does depends on the parameter's name, as in MXNet:

* a variable's ``__init__`` attribute (``mx.sym.var('w', init=mx.init.One())`` stores
  ``init.dumps()``) wins over everything;
* names ending in ``weight`` get the initializer's own rule (``_init_weight``: Xavier, Uniform,
  ...); ``bias`` and ``beta`` 0; ``gamma`` 1; ``moving_mean`` / ``moving_inv_var`` /
  ``moving_avg`` / ``min`` 0; ``moving_var`` / ``max`` 1;
* anything else is an error that says to give the variable an ``init=``.

``desc`` is an ``InitDesc`` (a str with ``attrs`` and ``global_init``); a plain str still works
(MXNet's deprecated form, which also knows ``upsampling*`` -> bilinear). Random initializers
draw from the device's seeded generator, so ``mx.random.seed(s)`` gives the same values each
run.

Example::

    >>> init = mx.init.Xavier(rnd_type='gaussian', magnitude=2)
    >>> w = mx.nd.zeros((64, 32))
    >>> init(mx.init.InitDesc('fc1_weight'), w)
    >>> mx.init.create('["xavier", {"magnitude": 2}]')   # from a dumps() string
"""
from __future__ import annotations

import json
import logging
import re
import warnings
from math import sqrt
from typing import Callable

import numpy as np

from .ndarray import NDArray
from .ndarray import random as _random
from .ndarray import zeros
from .ops.nn.rnn import RNN_GATES, rnn_param_groups, rnn_param_size

__all__ = ["InitDesc", "Initializer", "register", "alias", "create", "Load", "Mixed", "Zero",
           "One", "Constant", "Uniform", "Normal", "Orthogonal", "Xavier", "MSRAPrelu",
           "Bilinear", "LSTMBias", "FusedRNN"]


class InitDesc(str):
    """A parameter name with its variable attributes and the global initializer.

    ``InitDesc(name, attrs=None, global_init=None)``: ``attrs`` are the variable's attributes
    (``__init__``, ``__lr_mult__``, ...); ``global_init`` is the initializer the user passed to
    ``init_params`` (FusedRNN uses it for the pieces it does not set itself).
    """

    def __new__(cls, name: str, attrs: dict | None = None, global_init=None):
        ret = super().__new__(cls, name)
        ret.attrs = attrs or {}
        ret.global_init = global_init
        return ret


_REGISTRY: dict[str, type] = {}


def register(klass: type) -> type:
    """Register an Initializer subclass under its lower-cased class name (a decorator)."""
    if not (isinstance(klass, type) and issubclass(klass, Initializer)):
        raise TypeError(f"register expects an Initializer subclass, got {klass!r}")
    name = klass.__name__.lower()
    old = _REGISTRY.get(name)
    if old is not None and old is not klass:
        warnings.warn(f"New initializer {klass.__module__}.{klass.__name__} is overriding "
                      f"existing initializer {old.__module__}.{old.__name__}", stacklevel=2)
    _REGISTRY[name] = klass
    return klass


def alias(*aliases: str) -> Callable[[type], type]:
    """Register extra (lower-case) names for an initializer class (a decorator)."""
    def reg(klass):
        for name in aliases:
            _REGISTRY[name.lower()] = klass
        return klass
    return reg


def create(initializer, *args, **kwargs) -> "Initializer":
    """An initializer from an instance (returned as is), a registered name (``'xavier'``) plus
    arguments, or a ``dumps()`` JSON string (``'["xavier", {"magnitude": 2}]'``)."""
    if isinstance(initializer, Initializer):
        if args or kwargs:
            raise ValueError(f"create: {initializer!r} is already an initializer; extra "
                             f"arguments are not allowed")
        return initializer
    if not isinstance(initializer, str):
        raise TypeError(f"create expects an Initializer, a name or a JSON string, got "
                        f"{type(initializer).__name__}")
    text = initializer.strip()
    if text.startswith("["):
        try:
            name, kw = json.loads(text)
        except (ValueError, TypeError):
            raise ValueError(f"cannot parse initializer {text!r}; expected "
                             f"'[\"name\", {{...}}]' as made by Initializer.dumps()") from None
        if args or kwargs:
            raise ValueError("create: a JSON initializer string takes no extra arguments")
        args, kwargs = (), kw
        text = name
    klass = _REGISTRY.get(text.lower())
    if klass is None:
        raise ValueError(f"Cannot find initializer {text!r}; registered initializers: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return klass(*args, **kwargs)


def _fill(arr: NDArray, value) -> None:
    arr[:] = value


def _bilinear(shape) -> np.ndarray:
    """The bilinear-upsampling kernel for a (..., h, w) weight (MXNet's formula)."""
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    x = np.arange(shape[3])
    y = np.arange(shape[2])
    kernel = np.outer(1 - np.abs(y / f - c), 1 - np.abs(x / f - c)).astype(np.float32)
    return np.broadcast_to(kernel, shape)


class Initializer:
    """Base class: subclasses implement ``_init_weight(name, arr)`` and pass their arguments
    to ``super().__init__(**kwargs)`` so ``dumps()`` can record them."""

    # (suffix, method) checked in order for InitDesc names; MXNet's list plus the aux states
    # that BatchNorm declares (MXNet sets their __init__ attribute instead)
    _SUFFIXES = (("weight", "_init_weight"), ("bias", "_init_bias"),
                 ("gamma", "_init_gamma"), ("beta", "_init_beta"),
                 ("moving_mean", "_init_zero"), ("moving_var", "_init_one"),
                 ("moving_inv_var", "_init_zero"), ("moving_avg", "_init_zero"),
                 ("min", "_init_zero"), ("max", "_init_one"))

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._verbose = False
        self._print_func = None

    def set_verbosity(self, verbose: bool = False, print_func: Callable | None = None):
        """Log every initialized parameter with ``print_func(arr)`` (default: norm/sqrt(size))."""
        self._verbose = verbose
        if print_func is None:
            def print_func(x):
                data = x.asnumpy().astype(np.float64)
                return str(np.sqrt((data * data).sum()) / sqrt(data.size))
        self._print_func = print_func
        return self

    def _verbose_print(self, desc, init, arr):
        if self._verbose and self._print_func:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self) -> str:
        """``'["classname", {kwargs}]'``: what a variable's ``__init__`` attribute stores."""
        return json.dumps([type(self).__name__.lower(), self._kwargs])

    def __call__(self, desc, arr: NDArray) -> None:
        """Fill ``arr`` for the parameter ``desc`` (an InitDesc, or a name: deprecated)."""
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")
        if init:
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        for suffix, method in self._SUFFIXES:
            if desc.endswith(suffix):
                getattr(self, method)(desc, arr)
                self._verbose_print(desc, suffix, arr)
                return
        self._init_default(desc, arr)

    def _legacy_init(self, name, arr):
        warnings.warn("Calling initializer with init(str, NDArray) has been deprecated; use "
                      "init(mx.init.InitDesc(...), NDArray) instead.", DeprecationWarning,
                      stacklevel=3)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if not isinstance(arr, NDArray):
            raise TypeError(f"arr must be an NDArray, got {type(arr).__name__}")
        if name.startswith("upsampling"):
            self._init_bilinear(name, arr)
        elif name.startswith("stn_loc") and name.endswith("weight"):
            self._init_zero(name, arr)
        elif name.startswith("stn_loc") and name.endswith("bias"):
            self._init_loc_bias(name, arr)
        else:
            # the legacy order tests bias/gamma/beta before weight
            for suffix, method in (("bias", "_init_bias"), ("gamma", "_init_gamma"),
                                   ("beta", "_init_beta"), ("weight", "_init_weight")) + \
                    self._SUFFIXES[4:]:
                if name.endswith(suffix):
                    getattr(self, method)(name, arr)
                    return
            self._init_default(name, arr)

    def _init_bilinear(self, _, arr):
        _fill(arr, _bilinear(arr.shape))

    def _init_loc_bias(self, name, arr):
        if arr.shape[0] != 6:
            raise ValueError(f"{name}: a spatial-transformer location bias needs 6 values, "
                             f"got shape {arr.shape}")
        _fill(arr, np.array([1.0, 0, 0, 0, 1.0, 0]))

    def _init_zero(self, _, arr):
        _fill(arr, 0.0)

    def _init_one(self, _, arr):
        _fill(arr, 1.0)

    _init_bias = _init_beta = _init_zero
    _init_gamma = _init_one

    def _init_weight(self, name, arr):
        raise NotImplementedError(f"{type(self).__name__} must implement _init_weight")

    def _init_default(self, name, _):
        raise ValueError(
            f"Unknown initialization pattern for {name}. Default initialization is limited to "
            f"names ending in \"weight\", \"bias\", \"gamma\" (1.0), \"beta\" (0.0) and the "
            f"moving_mean/moving_var aux states; give the variable an initializer: "
            f"mx.sym.Variable('{name}', init=mx.init.*)")

    def __eq__(self, other):
        if not isinstance(other, Initializer):
            return NotImplemented
        return type(self) is type(other) and self._kwargs == other._kwargs

    __hash__ = object.__hash__

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({args})"


class Load:
    """``Load(param, default_init=None, verbose=False)``: initialize from saved arrays.

    ``param`` is a ``.params`` file name or a dict name -> NDArray; ``arg:`` / ``aux:``
    prefixes are dropped. Parameters not in it go to ``default_init`` (an error without one).
    """

    def __init__(self, param, default_init=None, verbose: bool = False):
        if isinstance(param, str):
            from .ndarray import load
            param = load(param)
        if not isinstance(param, dict):
            raise TypeError(f"Load expects a dict of name -> NDArray or a .params file name, "
                            f"got {type(param).__name__}")
        self.param = {}
        for name, arr in param.items():
            key = name[4:] if name.startswith(("arg:", "aux:")) else name
            self.param[key] = arr
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name, arr: NDArray) -> None:
        if name in self.param:
            src = self.param[name]
            if tuple(arr.shape) != tuple(src.shape):
                raise ValueError(f"Parameter {name} cannot be initialized from loading: shape "
                                 f"mismatch, target {tuple(arr.shape)} vs loaded "
                                 f"{tuple(src.shape)}")
            arr[:] = src
            if self.verbose:
                logging.info("Initialized %s by loading", name)
        else:
            if self.default_init is None:
                raise ValueError(f"Cannot initialize {name}: not found in the loaded "
                                 f"parameters ({', '.join(sorted(self.param)) or 'none'}) and "
                                 f"no default initializer is given")
            self.default_init(name, arr)
            if self.verbose:
                logging.info("Initialized %s by default", name)


class Mixed:
    """``Mixed(patterns, initializers)``: the first regex (``re.match``) that matches the name
    picks the initializer; end with ``'.*'`` for a default."""

    def __init__(self, patterns: list, initializers: list):
        if len(patterns) != len(initializers):
            raise ValueError(f"Mixed: {len(patterns)} patterns but {len(initializers)} "
                             f"initializers")
        self.map = list(zip([re.compile(p) for p in patterns], initializers))

    def __call__(self, name, arr: NDArray) -> None:
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        raise ValueError(f"Parameter name {name} did not match any pattern "
                         f"({', '.join(p.pattern for p, _ in self.map)}); consider adding a "
                         f"'.*' pattern at the end with a default initializer")


@register
@alias("zeros")
class Zero(Initializer):
    """``Zero()`` (alias 'zeros'): weights are 0."""

    def _init_weight(self, _, arr):
        _fill(arr, 0.0)


@register
@alias("ones")
class One(Initializer):
    """``One()`` (alias 'ones'): weights are 1."""

    def _init_weight(self, _, arr):
        _fill(arr, 1.0)


@register
class Constant(Initializer):
    """``Constant(value)``: weights are ``value`` (a scalar or an array broadcast to the shape)."""

    def __init__(self, value):
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, _, arr):
        _fill(arr, self.value)

    def dumps(self) -> str:
        val = self._kwargs["value"]
        if isinstance(val, NDArray):
            val = val.asnumpy()
        if isinstance(val, np.ndarray):
            val = val.tolist()
        return json.dumps([type(self).__name__.lower(), dict(self._kwargs, value=val)])


@register
class Uniform(Initializer):
    """``Uniform(scale=0.07)``: weights from U(-scale, scale)."""

    def __init__(self, scale: float = 0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _, arr):
        _random.uniform(-self.scale, self.scale, arr.shape, out=arr)


@register
class Normal(Initializer):
    """``Normal(sigma=0.01)``: weights from N(0, sigma)."""

    def __init__(self, sigma: float = 0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _, arr):
        _random.normal(0, self.sigma, arr.shape, out=arr)


@register
class Orthogonal(Initializer):
    """``Orthogonal(scale=1.414, rand_type='uniform')``: ``scale`` times an orthogonal matrix
    (rows or columns of the SVD of a random (out, in) matrix). Saxe et al. 2013."""

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform"):
        if rand_type not in ("uniform", "normal"):
            raise ValueError(f"Orthogonal: rand_type must be 'uniform' or 'normal', got "
                             f"{rand_type!r}")
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, _, arr):
        nout, nin = arr.shape[0], int(np.prod(arr.shape[1:]))
        if self.rand_type == "uniform":
            tmp = _random.uniform(-1.0, 1.0, shape=(nout, nin)).asnumpy()
        else:
            tmp = _random.normal(0.0, 1.0, shape=(nout, nin)).asnumpy()
        u, _, v = np.linalg.svd(tmp, full_matrices=False)
        res = u if u.shape == tmp.shape else v
        _fill(arr, self.scale * res.reshape(arr.shape))


@register
class Xavier(Initializer):
    """``Xavier(rnd_type='uniform', factor_type='avg', magnitude=3)``: Glorot & Bengio 2010.

    ``scale = sqrt(magnitude / factor)`` with factor the fan-in, fan-out or their mean
    (kernel dims count into both); weights from U(-scale, scale) or N(0, scale).
    """

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg",
                 magnitude: float = 3):
        if rnd_type not in ("uniform", "gaussian"):
            raise ValueError(f"Xavier: rnd_type must be 'uniform' or 'gaussian', got "
                             f"{rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise ValueError(f"Xavier: factor_type must be 'avg', 'in' or 'out', got "
                             f"{factor_type!r}")
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _scale(self, name, shape) -> float:
        if len(shape) < 2:
            raise ValueError(f"Xavier initializer cannot be applied to vector {name} of shape "
                             f"{tuple(shape)}; it requires at least 2 dimensions")
        hw_scale = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * hw_scale, shape[0] * hw_scale
        factor = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[self.factor_type]
        return float(np.sqrt(self.magnitude / factor))

    def _init_weight(self, name, arr):
        scale = self._scale(name, arr.shape)
        if self.rnd_type == "uniform":
            _random.uniform(-scale, scale, arr.shape, out=arr)
        else:
            _random.normal(0, scale, arr.shape, out=arr)


@register
class MSRAPrelu(Xavier):
    """``MSRAPrelu(factor_type='avg', slope=0.25)``: He et al. 2015 -- Gaussian Xavier with
    ``magnitude = 2 / (1 + slope^2)``."""

    def __init__(self, factor_type: str = "avg", slope: float = 0.25):
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope ** 2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


@register
class Bilinear(Initializer):
    """``Bilinear()``: the bilinear-interpolation kernel (for Deconvolution upsampling)."""

    def _init_weight(self, _, arr):
        _fill(arr, _bilinear(arr.shape))


@register
class LSTMBias(Initializer):
    """``LSTMBias(forget_bias=1.0)``: zeros except the forget gate's quarter (the second) of a
    (4 * hidden,) LSTM bias, which is ``forget_bias``."""

    def __init__(self, forget_bias: float = 1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name, arr):
        values = np.zeros(arr.shape, np.float32)
        num_hidden = int(arr.shape[0] / 4)
        values[num_hidden:2 * num_hidden] = self.forget_bias
        _fill(arr, values)


def fused_rnn_layout(size: int, num_hidden: int, num_layers: int, mode: str,
                     bidirectional: bool) -> list:
    """``[(name, offset, shape), ...]`` of the pieces of a fused RNN parameter vector of
    ``size`` elements, in MXNet's packing (the RNN operator's ``rnn_param_groups``, split per
    gate), named like MXNet's FusedRNNCell (``l0_i2h_f_weight``)."""
    if mode not in RNN_GATES:
        raise ValueError(f"FusedRNN: mode must be one of {', '.join(RNN_GATES)}, got {mode!r}")
    gates, dirs, h = RNN_GATES[mode], (2 if bidirectional else 1), num_hidden
    # size = D*G*H*(C + H + 2) + (L - 1)*D*G*H*(D*H + H + 2): solve for the input size C
    num_input = size // dirs // h // len(gates) - (num_layers - 1) * (h + dirs * h + 2) - h - 2
    if num_input <= 0 or rnn_param_size(mode, num_input, h, num_layers, bidirectional) != size:
        raise ValueError(f"FusedRNN: {size} parameters do not fit a {mode} RNN with "
                         f"num_hidden={num_hidden}, num_layers={num_layers}, "
                         f"bidirectional={bidirectional}")
    pieces = []
    for layer, d, group, kind, offset, shape in rnn_param_groups(mode, num_input, h, num_layers,
                                                                 bidirectional):
        rows = (h,) + shape[1:]
        step = int(np.prod(rows))
        for k, gate in enumerate(gates):
            name = f"{d}{layer}_{group}{'_' + gate if gate else ''}_{kind}"
            pieces.append((name, offset + k * step, rows))
    return sorted(pieces, key=lambda piece: piece[1])


@register
class FusedRNN(Initializer):
    """``FusedRNN(init, num_hidden, num_layers, mode, bidirectional=False, forget_bias=1.0)``.

    Initializes the single parameter vector of a fused ``RNN`` operator piece by piece: every
    gate's weight and bias as its own parameter (so Xavier sees per-gate fans), with ``init``
    (or the global initializer when None) and the LSTM forget-gate biases set to
    ``forget_bias``.
    """

    def __init__(self, init, num_hidden: int, num_layers: int, mode: str,
                 bidirectional: bool = False, forget_bias: float = 1.0):
        if isinstance(init, str):
            init = create(init)
        super().__init__(init=init.dumps() if init is not None else None,
                         num_hidden=num_hidden, num_layers=num_layers, mode=mode,
                         bidirectional=bidirectional, forget_bias=forget_bias)
        self._init = init
        self._num_hidden = num_hidden
        self._num_layers = num_layers
        self._mode = mode
        self._bidirectional = bidirectional
        self._forget_bias = forget_bias

    def _init_weight(self, desc, arr):
        layout = fused_rnn_layout(arr.size, self._num_hidden, self._num_layers, self._mode,
                                  self._bidirectional)
        packed = np.empty(arr.size, np.float32)
        global_init = getattr(desc, "global_init", None)
        for name, offset, shape in layout:
            piece = zeros(shape, arr.context)
            arg_desc = InitDesc(name, global_init=global_init)
            if self._mode == "lstm" and name.endswith("_f_bias"):
                _fill(piece, self._forget_bias)
            elif self._init is not None:
                self._init(arg_desc, piece)
            elif global_init is not None:
                global_init(arg_desc, piece)
            else:
                raise ValueError(f"FusedRNN: no initializer for {name}; give init= or call it "
                                 f"with an InitDesc carrying a global initializer")
            packed[offset:offset + piece.size] = piece.asnumpy().ravel()
        _fill(arr, packed.reshape(arr.shape))
