"""Build ``mx.nd.<op>`` functions from the operator registry, with ordinary closures.

Each function takes the operator's inputs (positionally or by name), then its parameters
(positionally after the inputs, or by name), plus ``out=`` and ``name=``, exactly like MXNet's
generated functions: ``nd.FullyConnected(x, w, b, num_hidden=10)``, ``nd.sum(x, 1)``,
``nd.concat(a, b, dim=0)``.
"""
from __future__ import annotations

import types

from ..base import HybridNetError
from ..ops.registry import OpDef, list_ops
from .invoke import invoke
from .ndarray import NDArray

__all__ = ["make_function", "publish", "populate"]


def _split_inputs(op: OpDef, args, kwargs):
    """Separate inputs from parameters; return (positional inputs, named inputs, params)."""
    pos_inputs, params = [], {}
    rest = list(args)
    while rest and (isinstance(rest[0], NDArray) or rest[0] is None):
        pos_inputs.append(rest.pop(0))
    if rest:
        if op.variadic is not None:
            raise TypeError(f"{op.name}: positional arguments after the inputs are not "
                            f"allowed; pass parameters by name")
        free = [p.name for p in op.params if p.name not in kwargs]
        if len(rest) > len(free):
            raise TypeError(f"{op.name}: too many positional arguments ({len(rest)} after the "
                            f"inputs; parameters are {', '.join(free)})")
        params.update(zip(free, rest))
    named_inputs = {}
    for k, v in kwargs.items():
        if isinstance(v, NDArray):
            named_inputs[k] = v
        else:
            params[k] = v
    return pos_inputs, named_inputs, params


def _gather_inputs(op: OpDef, p, pos_inputs, named_inputs):
    if op.variadic is not None:
        if named_inputs:
            raise TypeError(f"{op.name}: inputs must be given positionally, got "
                            f"{', '.join(named_inputs)} by name")
        arrays = [x for x in pos_inputs if x is not None]
        return arrays + []
    names = op.list_inputs(p)
    slots = dict(zip(names, pos_inputs))
    if len(pos_inputs) > len(names):
        raise TypeError(f"{op.name}: takes {len(names)} inputs ({', '.join(names)}), "
                        f"got {len(pos_inputs)}")
    for k, v in named_inputs.items():
        if k not in names:
            raise TypeError(f"{op.name}: unknown input '{k}'; inputs are {', '.join(names)}")
        if slots.get(k) is not None:
            raise TypeError(f"{op.name}: input '{k}' given twice")
        slots[k] = v
    missing = [n for n in names if slots.get(n) is None]
    if missing:
        raise HybridNetError(f"{op.name}: missing input(s) {', '.join(missing)} "
                             f"(inputs: {', '.join(names)})")
    return [slots[n] for n in names]


def make_function(op: OpDef, public_name: str):
    """The eager function for ``op``, named ``public_name``."""
    simple = op.variadic is None and op.default_params is not None
    n_simple = len(op.list_inputs(op.default_params)) if simple else -1

    def fn(*args, out=None, name=None, **kwargs):
        if not kwargs and len(args) == n_simple:
            # the common call: all inputs positional, no parameters
            for x in args:
                if not isinstance(x, NDArray):
                    break
            else:
                return invoke(op, list(args), op.default_params, out=out)
        pos_inputs, named_inputs, params = _split_inputs(op, args, kwargs)
        if op.variadic is not None and op.variadic not in params:
            params[op.variadic] = len([x for x in pos_inputs if x is not None])
        p = op.parse_params(params)
        inputs = _gather_inputs(op, p, pos_inputs, named_inputs)
        return invoke(op, inputs, p, out=out)

    fn.__name__ = fn.__qualname__ = public_name
    fn.__doc__ = op.docstring()
    fn.__module__ = "hybridnet.ndarray"
    return fn


def _namespace_for(op_name: str, op: OpDef):
    """(namespace, name inside it) of a registry name."""
    if op.namespace:
        prefix = f"_{op.namespace}_"
        if op_name.startswith(prefix):              # MXNet: _linalg_gemm2 -> nd.linalg.gemm2
            return op.namespace, op_name[len(prefix):]
        if op_name.startswith(op.namespace + "_"):  # ... while linalg_gemm2 stays top-level
            return "", op_name
        return op.namespace, op_name
    return ("_internal" if op_name.startswith("_") else ""), op_name


def publish(module_dict: dict, namespaces: dict, op_name: str, op: OpDef) -> None:
    """Add the function for registry name ``op_name`` to ``mx.nd`` and its sub-namespaces."""
    fn = make_function(op, op_name)
    ns, name = _namespace_for(op_name, op)
    namespaces["op"].__dict__[op_name] = fn
    if ns == "":
        module_dict.setdefault(op_name, fn)
    else:
        target = namespaces.setdefault(ns, types.ModuleType(f"hybridnet.ndarray.{ns}"))
        module_dict.setdefault(ns, target)          # reachable as nd.linalg, nd.random, ...
        target.__dict__.setdefault(name, fn)


def populate(module_dict: dict, namespaces: dict) -> None:
    """Publish every registered operator."""
    for op_name, op in sorted(list_ops().items()):
        publish(module_dict, namespaces, op_name, op)


