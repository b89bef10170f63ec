"""The Symbol: a declarative graph of registry operators, as in MXNet 1.x.

A Symbol is a list of output entries ``(node, index)`` of a DAG of ``Node``s. It is built by
``mx.sym.<op>`` calls, ``mx.sym.var``, arithmetic (``a + b`` -- same shapes only, no implicit
broadcasting: use ``broadcast_add``), composition (``net(data=other)``) and ``Group``; it is
inspected with ``list_arguments`` & co., shape- and type-inferred, saved as MXNet's JSON, and
bound into an Executor::

    >>> data = mx.sym.var('data')
    >>> net = mx.sym.FullyConnected(data, num_hidden=10, name='fc1')
    >>> net.list_arguments()
    ['data', 'fc1_weight', 'fc1_bias']
    >>> net.infer_shape(data=(32, 784))[0]
    [(32, 784), (10, 784), (10,)]
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import attribute
from ..base import HybridNetError
from ..ops.registry import get_op
from .node import IndexedGraph, Node, topo_order

__all__ = ["Symbol"]


def _is_scalar(x) -> bool:
    return isinstance(x, numbers.Number) or (isinstance(x, np.generic) and np.ndim(x) == 0)


class Symbol:
    """A symbolic graph with one or more outputs. Make one with ``mx.sym`` functions."""
    __slots__ = ("_outputs", "__weakref__")

    def __init__(self, outputs: list):
        self._outputs = list(outputs)

    # ---- naming and outputs -----------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The name of the node behind a single-output symbol (None for a group)."""
        if len(self._outputs) != 1:
            return None
        return self._outputs[0][0].name

    @property
    def _graph(self) -> IndexedGraph:
        return IndexedGraph(self._outputs)

    def list_outputs(self) -> list[str]:
        """Output names: ``<node>_output`` (``<node>_output0``... for several), variables' names."""
        return [_entry_name(n, i) for n, i in self._outputs]

    def list_arguments(self) -> list[str]:
        """Input variables that are not auxiliary states, in topological (JSON) order."""
        return self._graph.arg_names()

    def list_auxiliary_states(self) -> list[str]:
        """Input variables operators update themselves (BatchNorm's moving_mean, moving_var)."""
        return self._graph.aux_names()

    def list_inputs(self) -> list[str]:
        """All input variables (arguments and auxiliary states) in topological order."""
        g = self._graph
        return [g.nodes[i].name for i in g.variable_ids]

    def __len__(self) -> int:
        return len(self._outputs)

    def __iter__(self):
        return (Symbol([e]) for e in self._outputs)

    def __getitem__(self, index):
        """Pick outputs: by position, by slice, or by name (``'fc1_output'``)."""
        if isinstance(index, slice):
            return Symbol(self._outputs[index])
        if isinstance(index, str):
            names = self.list_outputs()
            hits = [i for i, n in enumerate(names) if n == index]
            if not hits:
                raise ValueError(f"the symbol has no output named {index!r}; its outputs are "
                                 f"{', '.join(names)}")
            if len(hits) > 1:
                raise ValueError(f"more than one output is named {index!r}")
            index = hits[0]
        if not isinstance(index, numbers.Integral):
            raise TypeError(f"symbol outputs are indexed by int, slice or output name, got "
                            f"{type(index).__name__}")
        n = len(self._outputs)
        if not -n <= index < n:
            raise IndexError(f"output index {index} is out of range for a symbol with {n} "
                             f"outputs")
        return Symbol([self._outputs[index]])

    def get_internals(self) -> "Symbol":
        """A group of every node's visible outputs, variables included, in topological order."""
        outputs = []
        for node in topo_order(self._outputs):
            outputs.extend((node, i) for i in range(node.num_visible()))
        return Symbol(outputs)

    def get_children(self) -> "Symbol | None":
        """A group of the inputs of this symbol's output nodes (None for a variable)."""
        entries = []
        for node in {id(n): n for n, _ in self._outputs}.values():
            entries.extend(node.inputs)
        return Symbol(entries) if entries else None

    # ---- attributes ---------------------------------------------------------------------------
    def _head_node(self) -> Node | None:
        nodes = {id(n): n for n, _ in self._outputs}
        return next(iter(nodes.values())) if len(nodes) == 1 else None

    def attr(self, key: str) -> str | None:
        """The attribute ``key`` of this symbol's node (``'lr_mult'`` finds ``__lr_mult__``)."""
        node = self._head_node()
        if node is None:
            return None
        attrs = node.all_attrs()
        value = attrs.get(key)
        return value if value is not None else attrs.get(attribute.hidden_key(key))

    def list_attr(self, recursive: bool = False) -> dict:
        """This node's attributes (operator parameters included); hidden keys in both spellings."""
        if recursive:
            raise DeprecationWarning("Symbol.list_attr(recursive=True) is deprecated (as in "
                                     "MXNet); use attr_dict() for the attributes of every node")
        node = self._head_node()
        return _shown_attrs(node) if node is not None else {}

    def attr_dict(self) -> dict:
        """``{node name: attributes}`` for every node of the graph that has attributes."""
        out = {}
        for node in topo_order(self._outputs):
            attrs = _shown_attrs(node)
            if attrs:
                out[node.name] = attrs
        return out

    def _set_attr(self, **kwargs: str) -> None:
        """Set string attributes on this symbol's node(s)."""
        from .compose import normalize_attrs
        attrs = normalize_attrs(kwargs, f"symbol {self.name!r}")
        for node in {id(n): n for n, _ in self._outputs}.values():
            if node.op is not None:
                for key in attrs:
                    if key in node.op.param_map:
                        raise HybridNetError(f"{node.op.name} '{node.name}': {key!r} is an "
                                             f"operator parameter; it cannot be set as an "
                                             f"attribute after creation")
            node.attrs.update(attrs)

    # ---- composition and copies ---------------------------------------------------------------
    def __call__(self, *args, **kwargs) -> "Symbol":
        """A copy with free variables replaced: ``net(data=other)`` (positional: argument order)."""
        out = self.__copy__()
        out._compose(*args, **kwargs)
        return out

    def _compose(self, *args, name: str | None = None, **kwargs) -> None:
        """Replace this symbol's variables in place by the given single-output symbols."""
        arg_names = self.list_arguments()
        if len(args) > len(arg_names):
            raise TypeError(f"composition got {len(args)} positional symbols, the symbol has "
                            f"{len(arg_names)} arguments ({', '.join(arg_names)})")
        replace = dict(zip(arg_names, args))
        for key, value in kwargs.items():
            if key in replace:
                raise TypeError(f"composition: argument {key!r} given twice")
            replace[key] = value
        free = set(self.list_inputs())
        for key, value in replace.items():
            if key not in free:
                raise ValueError(f"composition: the symbol has no free variable {key!r}; its "
                                 f"variables are {', '.join(self.list_inputs())}")
            if not isinstance(value, Symbol) or len(value._outputs) != 1:
                raise TypeError(f"composition: {key!r} must be a single-output Symbol")
        for node in topo_order(self._outputs):
            for i, (src, _) in enumerate(node.inputs):
                if src.op is None and src.name in replace:
                    node.inputs[i] = replace[src.name]._outputs[0]
                    node.versions[i] = 0
        self._outputs = [replace[n.name]._outputs[0] if n.op is None and n.name in replace
                         else (n, i) for n, i in self._outputs]
        if name is not None:
            head = self._head_node()
            if head is not None and head.op is not None:
                head.name = name

    def __copy__(self) -> "Symbol":
        """A deep copy of the graph (new nodes; operators and parameters shared)."""
        mapping = {}
        for node in topo_order(self._outputs):
            new = node.copy()
            new.inputs = [(mapping[id(s)], k) for s, k in node.inputs]
            mapping[id(node)] = new
        return Symbol([(mapping[id(n)], i) for n, i in self._outputs])

    def __deepcopy__(self, memo) -> "Symbol":
        return self.__copy__()

    def copy(self) -> "Symbol":
        return self.__copy__()

    def __getstate__(self) -> dict:
        return {"handle": self.tojson()}

    def __setstate__(self, state: dict) -> None:
        from .json import load_json
        self._outputs = load_json(state["handle"])._outputs

    def __repr__(self) -> str:
        if len(self._outputs) == 1:
            return f"<Symbol {self.name}>"
        names = ", ".join(n.name for n, _ in self._outputs)
        return f"<Symbol group [{names}]>"

    __str__ = __repr__

    def debug_str(self) -> str:
        """A readable listing of the graph: outputs, variables, operators with inputs and attrs."""
        from .json import mxnet_op_name
        lines = ["Symbol Outputs:"]
        lines += [f"\toutput[{i}]={n.name}({k})" for i, (n, k) in enumerate(self._outputs)]
        for node in topo_order(self._outputs):
            if node.op is None:
                lines.append(f"Variable:{node.name}")
                continue
            lines += ["--------------------", f"Op:{mxnet_op_name(node.op)}, Name={node.name}",
                      "Inputs:"]
            for i, ((src, k), ver) in enumerate(zip(node.inputs, node.versions)):
                suffix = f" version={ver}" if src.op is None else ""
                lines.append(f"\targ[{i}]={src.name}({k}){suffix}")
            attrs = node.all_attrs()
            if attrs:
                lines.append("Attrs:")
                lines += [f"\t{k}={v}" for k, v in sorted(attrs.items())]
        return "\n".join(lines) + "\n"

    # ---- inference, serialization, binding (implemented in sibling modules) -------------------
    def infer_shape(self, *args, **kwargs):
        """``(arg_shapes, out_shapes, aux_shapes)`` from some argument shapes.

        Shapes are given positionally (``list_arguments`` order) or by name. When the graph is
        under-determined, warns naming the unknown arguments and returns ``(None, None, None)``;
        a conflict raises ShapeError naming the node, the input and both shapes.
        """
        from .infer import infer_shape
        return infer_shape(self, args, kwargs, partial=False)

    def infer_shape_partial(self, *args, **kwargs):
        """Like ``infer_shape`` but returns what is known: unknown shapes as ``()``, dims as 0."""
        from .infer import infer_shape
        return infer_shape(self, args, kwargs, partial=True)

    def infer_type(self, *args, **kwargs):
        """``(arg_types, out_types, aux_types)`` (numpy types) from some argument dtypes."""
        from .infer import infer_type
        return infer_type(self, args, kwargs, partial=False)

    def infer_type_partial(self, *args, **kwargs):
        """Like ``infer_type`` but returns None for the types it cannot decide."""
        from .infer import infer_type
        return infer_type(self, args, kwargs, partial=True)

    def tojson(self) -> str:
        """The graph in MXNet's JSON format (``-symbol.json``), byte-compatible with MXNet 1.9."""
        from .json import to_json
        return to_json(self)

    def save(self, fname: str, remove_amp_cast: bool = True) -> None:
        """Write ``tojson()`` to ``fname`` (atomically: a temp file renamed into place)."""
        from .json import save
        save(self, fname)

    def bind(self, ctx, args, args_grad=None, grad_req="write", aux_states=None,
             group2ctx=None, shared_exec=None):
        """An Executor over the given arrays (lists in ``list_arguments`` order, or dicts).

        The arrays are used as they are -- the Executor reads and writes them, no copies.
        """
        from .binding import bind
        return bind(self, ctx, args, args_grad, grad_req, aux_states, group2ctx, shared_exec)

    def simple_bind(self, ctx, grad_req="write", type_dict=None, stype_dict=None,
                    group2ctx=None, shared_arg_names=None, shared_exec=None, shared_buffer=None,
                    **kwargs):
        """An Executor with every array allocated, from the input shapes given as keywords.

        Example::

            >>> exe = net.simple_bind(mx.cpu(), data=(32, 784))
            >>> exe.forward(is_train=True, data=batch)
        """
        from .binding import simple_bind
        return simple_bind(self, ctx, grad_req, type_dict, stype_dict, group2ctx,
                           shared_arg_names, shared_exec, shared_buffer, kwargs)

    def eval(self, ctx=None, **kwargs):
        """Bind to the given arrays (arguments and auxiliary states by name), run forward once
        in inference mode, return the outputs (a list)."""
        from ..context import current_context
        aux_names = set(self.list_auxiliary_states())
        args = {k: v for k, v in kwargs.items() if k not in aux_names}
        aux = {k: v for k, v in kwargs.items() if k in aux_names}
        exe = self.bind(ctx or current_context(), args, grad_req="null", aux_states=aux)
        return exe.forward()

    def gradient(self, wrt):
        """Not supported (as in MXNet, where it is not implemented for users)."""
        raise HybridNetError("Symbol.gradient is not supported; bind the symbol "
                             "(simple_bind/bind with grad_req) and call Executor.backward(), or "
                             "use mx.autograd on NDArrays")

    # ---- arithmetic (no implicit broadcasting, as in MXNet) -----------------------------------
    def _binary(self, other, op_name, hint, scalar_name, scalar_hint):
        from .compose import create_op
        if isinstance(other, Symbol):
            op = get_op(op_name)
            return create_op(op, op.default_params, [self, other], hint=hint)
        if _is_scalar(other):
            op = get_op(scalar_name)
            return create_op(op, op.parse_params({"scalar": other}), [self], hint=scalar_hint)
        return NotImplemented

    def _rscalar(self, other, scalar_name, scalar_hint):
        from .compose import create_op
        if _is_scalar(other):
            op = get_op(scalar_name)
            return create_op(op, op.parse_params({"scalar": other}), [self], hint=scalar_hint)
        return NotImplemented

    def __neg__(self):
        return self._binary(-1.0, "elemwise_mul", "_mul", "_mul_scalar", "_mulscalar")

    def __abs__(self):
        from .compose import create_op
        op = get_op("abs")
        return create_op(op, op.default_params, [self], hint="abs")

    # ---- fluent helpers that need more than one operator call ---------------------------------
    def reshape(self, *shape, **kwargs) -> "Symbol":
        """``Reshape`` with MXNet's special codes: ``sym.reshape((0, -1))``."""
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        if shape:
            kwargs["shape"] = shape
        return _call("Reshape", self, **kwargs)

    def astype(self, dtype, **kwargs) -> "Symbol":
        """``Cast`` to ``dtype``."""
        return _call("Cast", self, dtype=np.dtype(dtype).name, **kwargs)


# Python operator -> (operator with a Symbol, its auto-name stem, operator with a number, its
# stem); the stems are the ones MXNet 1.9.1's overloads produce (``_plus0``, ``_mulscalar0``).
_BINARY = {
    "add": ("elemwise_add", "_plus", "_plus_scalar", "_plusscalar"),
    "sub": ("elemwise_sub", "_minus", "_minus_scalar", "_minusscalar"),
    "mul": ("elemwise_mul", "_mul", "_mul_scalar", "_mulscalar"),
    "truediv": ("elemwise_div", "_div", "_div_scalar", "_divscalar"),
    "mod": ("_mod", "_mod", "_mod_scalar", "_modscalar"),
    "pow": ("_power", "_power", "_power_scalar", "_powerscalar"),
    "eq": ("_equal", "_equal", "_equal_scalar", "_equal_scalar"),
    "ne": ("_not_equal", "_not_equal", "_not_equal_scalar", "_not_equal_scalar"),
    "gt": ("_greater", "_greater", "_greater_scalar", "_greater_scalar"),
    "ge": ("_greater_equal", "_greater_equal", "_greater_equal_scalar",
           "_greater_equal_scalar"),
    "lt": ("_lesser", "_lesser", "_lesser_scalar", "_lesser_scalar"),
    "le": ("_lesser_equal", "_lesser_equal", "_lesser_equal_scalar", "_lesser_equal_scalar"),
}
# reflected forms (number on the left): operator and stem
_REFLECTED = {"add": ("_plus_scalar", "_plusscalar"), "sub": ("_rminus_scalar", "_rminusscalar"),
              "mul": ("_mul_scalar", "_mulscalar"), "truediv": ("_rdiv_scalar", "_rdivscalar"),
              "mod": ("_rmod_scalar", "_rmodscalar"),
              "pow": ("_rpower_scalar", "_rpower_scalar")}


def _make_binary(name, spec):
    def method(self, other):
        return self._binary(other, *spec)
    method.__name__ = f"__{name}__"
    return method


def _make_reflected(name, spec):
    def method(self, other):
        return self._rscalar(other, *spec)
    method.__name__ = f"__r{name}__"
    return method


for _name, _spec in _BINARY.items():
    setattr(Symbol, f"__{_name}__", _make_binary(_name, _spec))
for _name, _spec in _REFLECTED.items():
    setattr(Symbol, f"__r{_name}__", _make_reflected(_name, _spec))
Symbol.__div__, Symbol.__rdiv__ = Symbol.__truediv__, Symbol.__rtruediv__
Symbol.__hash__ = None           # == builds a comparison node: symbols are unhashable (MXNet)


def _call(op_name, *inputs, **kwargs):
    from . import op as ops_namespace
    fn = ops_namespace.__dict__.get(op_name)
    if fn is None:
        raise HybridNetError(f"operator {op_name!r} is not registered")
    return fn(*inputs, **kwargs)


def _entry_name(node: Node, index: int) -> str:
    if node.op is None:
        return node.name
    names = node.op.output_names(node.params)
    label = names[index] if index < len(names) else f"hidden{index - len(names)}"
    return f"{node.name}_{label}"


def _shown_attrs(node: Node) -> dict:
    """Attributes as ``list_attr`` shows them: hidden keys also under their plain name."""
    attrs = node.all_attrs()
    for key in attribute.HIDDEN_KEYS:
        stored = f"__{key}__"
        if stored in attrs:
            attrs[key] = attrs[stored]
    return attrs
