"""THE operator registry: one definition per operator feeds ``nd.<op>``, ``sym.<op>``, autograd,
the Executor and CustomOp alike.

An operator is an ``OpDef``: its MXNet name and aliases, typed parameters, input / auxiliary /
output names (fixed, or functions of the parameters), and the functions that give it meaning:

* ``infer_shape(p, in_shapes) -> (in_shapes, out_shapes, aux_shapes)``: ``in_shapes`` lists the
  argument inputs (not aux), each a tuple or None when unknown (0 in a tuple = unknown dim). It
  returns the inputs completed where it can (FullyConnected sizes its weight), every output
  (hidden ones included) and the aux shapes; None where still unknown. Conflicts raise ShapeError.
* ``infer_type(p, in_types) -> (in_types, out_types, aux_types)`` with numpy dtypes or None.
* ``forward(ctx, p, inputs, aux, outputs, is_train)`` writes every output buffer in place.
* ``backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req)`` writes or adds into the
  ``in_grads`` buffers as ``req[i]`` says ('write', 'add' or 'null' -- then the buffer is None).
  ``out_grads`` lists one array per output, None for outputs nobody differentiates (hidden ones).
  Use ``backward=ZERO_GRAD`` for ops whose gradient is zero, None for non-differentiable ones.
* ``grad_graph(F, p, out_grads, inputs, outputs) -> in_grads`` (optional): the same gradient
  written with operator calls on NDArrays (``F`` is ``mx.nd``), so that autograd can record it
  and differentiate again (``autograd.grad(create_graph=True)``); None where not available.

Kernels are written against ``ctx.xp`` (numpy or cupy); ``ctx.rng`` is the device's seeded
generator (random ops set ``random=True`` so the engine orders their draws).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..base import DTypeError, HybridNetError, ParamError, ShapeError, shape_str
from .params import REQUIRED, Param

__all__ = ["OpDef", "OpContext", "register", "get_op", "find_op", "list_ops", "ZERO_GRAD",
           "assign", "same_shape_infer", "same_type_infer", "Params"]


class _ZeroGrad:
    """Marker: the operator is differentiable and its input gradients are all zero."""

    def __repr__(self):
        return "ZERO_GRAD"


ZERO_GRAD = _ZeroGrad()


class Params(tuple):
    """Parsed parameters of one operator call: attribute access, hashable, immutable.

    ``p.num_hidden`` reads a value; ``p.raw`` maps the names the caller set to the strings a
    symbol JSON stores for them (MXNet writes only what the user gave, as ``str(value)``).
    """
    __slots__ = ()
    _names: tuple = ()
    _index: dict = {}

    def __getattr__(self, name):
        try:
            return tuple.__getitem__(self, self._index[name])
        except KeyError:
            raise AttributeError(f"operator has no parameter {name!r}") from None

    def as_dict(self) -> dict:
        return dict(zip(self._names, self[:len(self._names)]))

    @property
    def raw(self) -> dict:
        return dict(tuple.__getitem__(self, len(self._names)))

    def __repr__(self):
        return "Params(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"


class OpContext:
    """What a kernel may use: the array module ``xp``, the device, and its random generator."""
    __slots__ = ("xp", "device", "rng")

    def __init__(self, xp, device, rng):
        self.xp, self.device, self.rng = xp, device, rng


def _names_fn(value):
    if callable(value):
        return value
    fixed = list(value)
    return lambda p: fixed


class OpDef:
    """One operator, defined once; see the module docstring for what each function does.

    Args:
        name: MXNet's operator name (``FullyConnected``).
        params: its typed parameters.
        inputs: argument input names, or ``fn(p) -> names`` (``no_bias`` drops ``bias``).
        aux: auxiliary state names (``moving_mean``), or ``fn(p)``.
        outputs: visible output names (default ``['output']``), or ``fn(p)``.
        num_outputs: total outputs including hidden ones (BatchNorm's mean/var), or ``fn(p)``.
        variadic: the parameter counting a variable number of inputs (``num_args``); inputs are
            then named ``arg0, arg1, ...`` unless ``inputs`` says otherwise.
        is_loss: a loss head: backward ignores the head gradient, none needs to be given.
        random: draws from the device's random generator.
        mutates_aux: forward updates aux states (in training).
        inplace: (input, output) index pairs that may share memory.
        bwd_inputs / bwd_outputs: indices of inputs / outputs backward reads (None = all), or
            ``fn(p) -> indices`` when that depends on the parameters (Activation's act_type).
        namespace: '' for ``nd.X``, or 'random', 'linalg', 'contrib', ... (``nd.random.X``).
        inline_ok: eager calls on small arrays may run in the calling thread (False for ops
            that push work themselves, like Custom).
        grad_graph: the gradient as recordable operator calls (higher-order gradients).
    """

    def __init__(self, name: str, *, params: Sequence[Param] = (), inputs=("data",), aux=(),
                 outputs=("output",), num_outputs=None, variadic: str | None = None,
                 infer_shape: Callable, infer_type: Callable | None = None,
                 forward: Callable, backward: Any = None, aliases: Sequence[str] = (),
                 is_loss: bool = False, random: bool = False, mutates_aux: bool = False,
                 inplace: Sequence[tuple] = (), bwd_inputs: Sequence[int] | None = None,
                 bwd_outputs: Sequence[int] | None = None, namespace: str = "",
                 doc: str = "", inline_ok: bool = True, grad_graph: Callable | None = None):
        self.name = name
        self.params = tuple(params)
        self.param_map = {p.name: p for p in self.params}
        self.variadic = variadic
        if variadic is not None and variadic not in self.param_map:
            self.params += (Param(variadic, "int", 1, "number of inputs"),)
            self.param_map[variadic] = self.params[-1]
        if variadic is not None and not callable(inputs) and tuple(inputs) == ("data",):
            self.input_names = lambda p: [f"arg{i}" for i in range(getattr(p, variadic))]
        else:
            self.input_names = _names_fn(inputs)
        self.aux_names = _names_fn(aux)
        self.output_names = _names_fn(outputs)
        if num_outputs is None:
            self.num_outputs = lambda p: len(self.output_names(p))
        elif callable(num_outputs):
            self.num_outputs = num_outputs
        else:
            self.num_outputs = lambda p, n=int(num_outputs): n
        self.infer_shape = infer_shape
        self.infer_type = infer_type or same_type_infer(self)
        self.forward = forward
        self.backward = backward
        self.aliases = tuple(aliases)
        self.is_loss, self.random, self.mutates_aux = is_loss, random, mutates_aux
        self.inplace = tuple(inplace)
        self.bwd_inputs = bwd_inputs if bwd_inputs is None or callable(bwd_inputs) \
            else tuple(bwd_inputs)
        self.bwd_outputs = bwd_outputs if bwd_outputs is None or callable(bwd_outputs) \
            else tuple(bwd_outputs)
        self.namespace = namespace
        self.doc = doc
        self.inline_ok = inline_ok
        self.grad_graph = grad_graph
        names = tuple(p.name for p in self.params)
        self._params_cls = type(f"{name}Params", (Params,),
                                {"__slots__": (), "_names": names,
                                 "_index": {n: i for i, n in enumerate(names)}})
        self._defaults = {p.name: p.default for p in self.params}
        self._cache: dict = {}          # parsed Params by call kwargs
        self._eager_plans: dict = {}    # the eager front end's per-call plans (ndarray/invoke.py)

    # ---- parameters ---------------------------------------------------------------------
    @property
    def default_params(self) -> Params | None:
        """The parameters of a call that sets none (None if some are required); cached."""
        try:
            return self._default_params
        except AttributeError:
            try:
                self._default_params = self.parse_params({})
            except ParamError:
                self._default_params = None
            return self._default_params

    def backward_reads(self, p, n_in: int, n_out: int) -> tuple:
        """(input indices, output indices) this operator's backward reads for parameters
        ``p``: all when undeclared. Whatever is left out may be freed or reused after the
        forward (the executor's memory plan, the autograd tape)."""
        def declared(indices, n):
            if indices is None:
                return range(n)
            return indices(p) if callable(indices) else indices
        return declared(self.bwd_inputs, n_in), declared(self.bwd_outputs, n_out)

    def parse_params(self, kwargs: dict) -> Params:
        """Typed, defaulted parameters from keyword values (Python values or JSON strings)."""
        try:
            # the value's type is part of the key: 2 == 2.0 == True, but their JSON strings differ
            key = tuple((k, v.__class__, v) for k, v in kwargs.items())
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        except TypeError:            # unhashable values (lists, arrays): parse every time
            key = None
        values, raw = dict(self._defaults), {}
        for k, v in kwargs.items():
            param = self.param_map.get(k)
            if param is None:
                valid = ", ".join(p.name for p in self.params) or "(none)"
                raise ParamError(f"{self.name}: unknown parameter '{k}'; valid parameters: {valid}")
            values[k] = param.parse(self.name, v)
            raw[k] = _raw_string(v)
        for param in self.params:
            if values[param.name] is REQUIRED:
                raise ParamError(f"{self.name}: required parameter '{param.name}' is missing "
                                 f"({param.describe()})")
        parsed = self._params_cls(tuple(values[n] for n in self._params_cls._names)
                                  + (tuple(raw.items()),))
        if key is not None and len(self._cache) < 4096:
            self._cache[key] = parsed
        return parsed

    # ---- structure ----------------------------------------------------------------------
    def list_inputs(self, p: Params) -> list[str]:
        """Argument names then aux names, the order inputs are given in."""
        return list(self.input_names(p)) + list(self.aux_names(p))

    def differentiable(self) -> bool:
        return self.backward is not None

    def __repr__(self):
        return f"<OpDef {self.name}>"

    def docstring(self) -> str:
        """The generated docstring: MXNet-style signature, doc text and parameter list."""
        lines = [self.doc.strip() or f"The {self.name} operator.", "", "Parameters", "----------"]
        lines += [p.describe() + (f"\n    {p.doc}" if p.doc else "") for p in self.params]
        return "\n".join(lines)


def _raw_string(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, np.dtype):
        return v.name
    if isinstance(v, type) and issubclass(v, np.generic):
        return np.dtype(v).name
    return str(v)


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    """Add ``op`` (under its name and aliases); a name may be registered once."""
    for name in (op.name,) + op.aliases:
        if name in _REGISTRY and _REGISTRY[name] is not op:
            raise HybridNetError(f"operator name {name!r} is already registered")
        _REGISTRY[name] = op
    return op


def find_op(name: str) -> OpDef | None:
    return _REGISTRY.get(name)


def get_op(name: str) -> OpDef:
    """The operator registered as ``name``; a clear error naming close matches otherwise."""
    op = _REGISTRY.get(name)
    if op is None:
        import difflib
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HybridNetError(f"operator {name!r} is not registered{hint}")
    return op


def list_ops() -> dict[str, OpDef]:
    """Every registered name (aliases included) mapped to its OpDef."""
    return dict(_REGISTRY)


# ---- helpers kernels and inference functions share -------------------------------------
def assign(dst, req: str, value) -> None:
    """Write ``value`` into ``dst`` as ``req`` says: 'write'/'inplace' copy, 'add' accumulate."""
    if req == "null" or dst is None:
        return
    if req == "add":
        dst += value
    else:
        dst[...] = value


def merge_shape(op: str, what: str, a, b):
    """Unify two possibly-partial shapes (None unknown, 0 unknown dim); ShapeError if they clash."""
    if a is None:
        return b
    if b is None:
        return a
    if len(a) != len(b):
        raise ShapeError(op, f"{what} has shape {shape_str(a)}, expected {shape_str(b)}")
    out = []
    for x, y in zip(a, b):
        if x == 0:
            out.append(y)
        elif y == 0 or x == y:
            out.append(x)
        else:
            raise ShapeError(op, f"{what} has shape {shape_str(a)}, expected {shape_str(b)}")
    return tuple(out)


def same_shape_infer(op_name: str, n_out: int = 1):
    """infer_shape for ops whose inputs and outputs all share one shape (elementwise ops)."""
    def infer(p, in_shapes):
        if len(in_shapes) == 1:          # the common unary case, kept fast for eager calls
            s = in_shapes[0]
            return in_shapes, [s] * n_out, []
        shape = None
        for i, s in enumerate(in_shapes):
            shape = merge_shape(op_name, f"input {i}", s, shape) if s is not None else shape
        return [shape] * len(in_shapes), [shape] * n_out, []
    return infer


def same_type_infer(op: OpDef):
    """infer_type: every input, output and aux shares the first known dtype (MXNet's rule)."""
    def infer(p, in_types):
        known = None
        for i, t in enumerate(in_types):
            if t is None:
                continue
            if known is None:
                known = t
            elif np.dtype(t) != np.dtype(known):
                names = op.input_names(p)
                arg = names[i] if i < len(names) else f"input {i}"
                raise DTypeError(f"{op.name}: {arg} has dtype {np.dtype(t).name}, expected "
                                 f"{np.dtype(known).name} like the other inputs")
        n_aux = len(op.aux_names(p))
        return [known] * len(in_types), [known] * op.num_outputs(p), [known] * n_aux
    return infer
