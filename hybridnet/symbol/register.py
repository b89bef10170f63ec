"""Build ``mx.sym.<op>`` functions from the operator registry, with ordinary closures.

Each function takes the operator's inputs (Symbols, positionally or by input name), then its
parameters (positionally after the inputs, or by name), plus ``name=`` and ``attr=``, like
MXNet's generated functions: ``sym.FullyConnected(data, num_hidden=10, name='fc1')``,
``sym.sum(x, 1)``, ``sym.Concat(a, b, dim=1)``. Inputs left out become variables
``<name>_<input>`` (``fc1_weight``, ``softmax_label``).
"""
from __future__ import annotations

import types

from ..ops.registry import OpDef, list_ops
from .compose import create_op
from .symbol import Symbol

__all__ = ["make_function", "publish", "populate", "NAMESPACES"]

# registry name prefixes that MXNet exposes as sub-namespaces: sym.random.uniform, ...
NAMESPACES = {"random": ("_random_", "_sample_", "random_"), "linalg": ("_linalg_", "linalg_"),
              "contrib": ("_contrib_", "contrib_"), "image": ("_image_",),
              "sparse": ("_sparse_",)}


def _split(op: OpDef, args, kwargs):
    """(positional inputs, named inputs, parameters) of one call."""
    rest = list(args)
    pos = []
    while rest and (isinstance(rest[0], Symbol) or rest[0] is None):
        pos.append(rest.pop(0))
    params = {}
    if rest:
        if op.variadic is not None:
            raise TypeError(f"{op.name}: positional arguments after the input symbols are not "
                            f"allowed; pass parameters by name")
        free = [p.name for p in op.params if p.name not in kwargs]
        if len(rest) > len(free):
            raise TypeError(f"{op.name}: too many positional arguments ({len(rest)} after the "
                            f"inputs; parameters are {', '.join(free)})")
        params.update(zip(free, rest))
    named = {}
    for key, value in kwargs.items():
        if isinstance(value, Symbol):
            named[key] = value
        else:
            params[key] = value
    return pos, named, params


def _inputs(op: OpDef, p, pos, named) -> list:
    if op.variadic is not None:
        if named:
            raise TypeError(f"{op.name}: inputs must be given positionally, got "
                            f"{', '.join(named)} by name")
        given = [s for s in pos if s is not None]
        names = op.list_inputs(p)
        if len(given) > len(names):
            raise TypeError(f"{op.name}: takes {len(names)} inputs with these parameters "
                            f"({', '.join(names)}), got {len(given)} symbols")
        return given + [None] * (len(names) - len(given))
    names = op.list_inputs(p)
    if len(pos) > len(names):
        raise TypeError(f"{op.name}: takes {len(names)} inputs ({', '.join(names)}), got "
                        f"{len(pos)} symbols")
    slots = dict(zip(names, pos))
    for key, value in named.items():
        if key not in names:
            raise TypeError(f"{op.name}: unknown input {key!r}; inputs are {', '.join(names)}")
        if slots.get(key) is not None:
            raise TypeError(f"{op.name}: input {key!r} given twice")
        slots[key] = value
    return [slots.get(n) for n in names]


def make_function(op: OpDef, public_name: str):
    """The symbolic function for ``op``, named ``public_name`` (its auto-name stem, lowercased)."""
    hint = public_name.lower()

    def fn(*args, name: str | None = None, attr: dict | None = None, out=None, **kwargs):
        pos, named, params = _split(op, args, kwargs)
        if op.variadic is not None and op.variadic not in params:
            params[op.variadic] = len([s for s in pos if s is not None])
        p = op.parse_params(params)
        return create_op(op, p, _inputs(op, p, pos, named), name=name, attr=attr, hint=hint)

    fn.__name__ = fn.__qualname__ = public_name
    fn.__doc__ = op.docstring()
    fn.__module__ = "hybridnet.symbol"
    return fn


def _placement(op_name: str, op: OpDef):
    """(namespace or '', name inside it) for registry name ``op_name``."""
    for ns, prefixes in NAMESPACES.items():
        for prefix in prefixes:
            if op_name.startswith(prefix) and len(op_name) > len(prefix):
                return ns, op_name[len(prefix):]
    if op.namespace:
        return op.namespace, op_name
    return "", op_name


def publish(module_dict: dict, namespaces: dict, op_name: str, op: OpDef) -> None:
    """Add the function for registry name ``op_name`` to ``mx.sym`` and its sub-namespaces."""
    fn = make_function(op, op_name)
    namespaces["op"].__dict__[op_name] = fn
    if op_name.startswith("_"):
        namespaces["_internal"].__dict__[op_name] = fn
    else:
        module_dict.setdefault(op_name, fn)
    ns, inner = _placement(op_name, op)
    if ns:
        target = namespaces.get(ns)
        if target is None:
            target = namespaces[ns] = types.ModuleType(f"hybridnet.symbol.{ns}")
            module_dict.setdefault(ns, target)
        # a public alias (random_uniform) wins over an internal spelling of the same op
        if inner not in target.__dict__ or not op_name.startswith("_"):
            target.__dict__[inner] = fn


def populate(module_dict: dict, namespaces: dict) -> None:
    """Publish every registered operator."""
    for op_name, op in sorted(list_ops().items()):
        publish(module_dict, namespaces, op_name, op)
