"""Making graph nodes: operator calls, variables, groups, and attribute handling.

``create_op`` is the one place an operator node is made -- by ``sym.<op>`` functions, operator
overloading, ``autograd.get_symbol`` and CustomOp alike. It names the node (``NameManager``),
attaches the scope's attributes (``AttrScope``), and auto-creates the inputs not given as
variables named ``<node>_<input>`` (``fc1_weight``, ``softmax_label``) that carry the node's
attributes, as MXNet does.
"""
from __future__ import annotations

import numpy as np

from .. import attribute, name as _name
from ..base import HybridNetError, ParamError
from ..ops.params import parse_dtype
from ..ops.registry import OpDef, Params
from .node import Node, input_init_hint

__all__ = ["create_op", "var", "Group", "normalize_attrs", "DTYPE_TO_FLAG", "FLAG_TO_DTYPE",
           "STYPE_TO_FLAG"]

# MXNet's numeric dtype flags, as stored in a variable's ``__dtype__`` attribute
DTYPE_TO_FLAG = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5,
                 "int64": 6, "bool": 7}
FLAG_TO_DTYPE = {v: np.dtype(k) for k, v in DTYPE_TO_FLAG.items()}
STYPE_TO_FLAG = {"default": 0, "row_sparse": 1, "csr": 2}


def normalize_attrs(attrs: dict | None, where: str) -> dict:
    """String attributes with hidden keys in their stored ``__key__`` spelling."""
    out = {}
    for key, value in (attrs or {}).items():
        if not isinstance(value, str):
            raise ValueError(f"{where}: attribute {key!r} must be a string, got "
                             f"{type(value).__name__} {value!r} (attributes are strings)")
        out[attribute.hidden_key(key)] = value
    return out


def _symbol_cls():
    from .symbol import Symbol
    return Symbol


def create_op(op: OpDef, p: Params, inputs: list, name: str | None = None,
              attr: dict | None = None, hint: str | None = None):
    """A Symbol for one call of ``op``.

    Args:
        op, p: the operator and its parsed parameters.
        inputs: one entry per input in ``op.list_inputs(p)`` order: a single-output Symbol,
            or None to auto-create a variable.
        name: the node name (else ``NameManager`` makes one from ``hint``).
        attr: user attributes (merged over the active ``AttrScope``).
        hint: the auto-name stem (default: the operator name lowercased).
    """
    Symbol = _symbol_cls()
    node_name = _name.current().get(name, hint or op.name.lower())
    attrs = normalize_attrs(attribute.current().get(attr), f"{op.name} '{node_name}'")
    for key in attrs:
        if not (key.startswith("__") and key.endswith("__")):
            raise ParamError(
                f"{op.name} '{node_name}': attribute {key!r} is not a parameter of {op.name}; "
                f"user attributes on operators must be named like '__{key}__' (or be one of "
                f"{', '.join(attribute.HIDDEN_KEYS)})")
    names = op.list_inputs(p)
    n_args = len(op.input_names(p))
    if len(inputs) != len(names):
        raise HybridNetError(f"{op.name} '{node_name}': got {len(inputs)} inputs, expected "
                             f"{len(names)} ({', '.join(names)})")
    var_attrs = None
    entries, versions = [], []
    for i, (arg, sym) in enumerate(zip(names, inputs)):
        if sym is None:
            if var_attrs is None:
                var_attrs = dict(p.raw)
                var_attrs.update(attrs)
            attrs_i = dict(var_attrs)
            hint = input_init_hint(op.name, arg, i >= n_args)
            if hint is not None:
                attrs_i["__init__"] = hint
            src = (Node(None, f"{node_name}_{arg}", attrs=attrs_i), 0)
        elif isinstance(sym, Symbol):
            if len(sym._outputs) != 1:
                raise HybridNetError(
                    f"{op.name} '{node_name}': input '{arg}' is a group of "
                    f"{len(sym._outputs)} outputs ({', '.join(sym.list_outputs())}); pick one "
                    f"with sym[i] or sym['name_output']")
            src = sym._outputs[0]
            if src[0].op is None and "__init__" not in src[0].attrs:
                hint = input_init_hint(op.name, arg, i >= n_args)
                if hint is not None:          # MXNet sets it on the user's variable too
                    src[0].attrs["__init__"] = hint
        else:
            raise TypeError(f"{op.name} '{node_name}': input '{arg}' must be a Symbol, got "
                            f"{type(sym).__name__}")
        entries.append(src)
        versions.append(1 if i >= n_args and src[0].op is None else 0)
    node = Node(op, node_name, p, attrs, entries, versions)
    return Symbol([(node, i) for i in range(node.num_visible())])


def var(name: str, attr: dict | None = None, shape=None, lr_mult=None, wd_mult=None,
        dtype=None, init=None, stype: str | None = None, **kwargs):
    """A symbolic variable (``mx.sym.var`` / ``mx.sym.Variable``).

    Args:
        name: the variable's name (not prefixed by ``mx.name.Prefix``, as in MXNet).
        attr: extra string attributes.
        shape: a shape hint (``__shape__``); explicit shapes given to ``infer_shape`` win.
        lr_mult, wd_mult: learning-rate and weight-decay multipliers for optimizers.
        dtype: a dtype hint (``__dtype__``, MXNet's numeric flag).
        init: an initializer (object with ``dumps()``, or its JSON string) for this variable.
        stype: storage type hint ('default', 'row_sparse', 'csr').
        **kwargs: further attributes, which must be named like ``__name__``.

    Example::

        >>> w = mx.sym.var('w', shape=(10, 784), lr_mult=2.0)
        >>> w.attr('__shape__'), w.attr('lr_mult')
        ('(10, 784)', '2.0')
    """
    Symbol = _symbol_cls()
    if not isinstance(name, str):
        raise TypeError(f"a variable's name must be a string, got {type(name).__name__}")
    attrs = dict(attribute.current().get(attr))
    if shape is not None:
        attrs["__shape__"] = str(shape)
    if lr_mult is not None:
        attrs["__lr_mult__"] = str(lr_mult)
    if wd_mult is not None:
        attrs["__wd_mult__"] = str(wd_mult)
    if dtype is not None:
        attrs["__dtype__"] = str(DTYPE_TO_FLAG[parse_dtype(dtype, f"variable '{name}'").name])
    if init is not None:
        attrs["__init__"] = init if isinstance(init, str) else init.dumps()
    if stype is not None:
        if stype not in STYPE_TO_FLAG:
            raise ValueError(f"variable '{name}': stype must be one of "
                             f"{', '.join(STYPE_TO_FLAG)}, got {stype!r}")
        attrs["__storage_type__"] = str(STYPE_TO_FLAG[stype])
    for key, value in kwargs.items():
        if not (key.startswith("__") and key.endswith("__")):
            raise ValueError(f"variable '{name}': attribute name={key} is not supported; extra "
                             f"attributes must start and end with double underscores, e.g. "
                             f"__{key}__")
        attrs[key] = str(value)
    node = Node(None, name, attrs=normalize_attrs(attrs, f"variable '{name}'"))
    return Symbol([(node, 0)])


def Group(symbols):  # noqa: N802  (MXNet's name)
    """One symbol whose outputs are the outputs of ``symbols``, in order.

    Example::

        >>> g = mx.sym.Group([fc1, fc2])
        >>> g.list_outputs()
        ['fc1_output', 'fc2_output']
    """
    Symbol = _symbol_cls()
    symbols = list(symbols) if not isinstance(symbols, Symbol) else [symbols]
    if not symbols:
        raise ValueError("Group needs at least one symbol")
    outputs = []
    for i, s in enumerate(symbols):
        if not isinstance(s, Symbol):
            raise TypeError(f"Group expects a list of Symbols; item {i} is a "
                            f"{type(s).__name__}")
        outputs.extend(s._outputs)
    return Symbol(outputs)
