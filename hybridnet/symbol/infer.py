"""Whole-graph shape and type inference over the registry's per-operator rules.

Every operator's ``infer_shape(p, in_shapes) -> (in_shapes, out_shapes, aux_shapes)`` both
propagates forward (outputs from inputs) and backward (FullyConnected's weight from data and
``num_hidden``; a loss head's label from its data). The graph pass sweeps the nodes forward
and backward, merging what each operator returns into what is known, until nothing changes.
Unknown shapes are None, unknown dimensions 0.

A conflict raises ShapeError naming the node, the operator, the input, the shape it has and the
shape inferred, and the chain of nodes the input came from::

    FullyConnected 'fc2': input weight has shape (10, 65), inferred (10, 64) from the
    operator's other inputs; weight comes from fc2_weight; data comes from relu1 (Activation)
    <- fc1 (FullyConnected) <- data
"""
from __future__ import annotations

import ast
import warnings

import numpy as np

from ..base import DTypeError, HybridNetError, ShapeError, shape_str
from ..ops.params import parse_dtype
from .node import IndexedGraph

__all__ = ["infer_shape", "infer_type", "infer_graph", "GraphInference"]


def _known_shape(s) -> bool:
    return s is not None and all(d > 0 for d in s)


def _merge_shape(a, b):
    """Unify two partial shapes; raises ValueError when they clash."""
    if a is None:
        return b
    if b is None:
        return a
    if len(a) != len(b):
        raise ValueError
    out = []
    for x, y in zip(a, b):
        if x == 0:
            out.append(y)
        elif y == 0 or x == y:
            out.append(x)
        else:
            raise ValueError
    return tuple(out)


def _merge_type(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if np.dtype(a) != np.dtype(b):
        raise ValueError
    return a


class _Kind:
    """What differs between shape and type inference."""

    def __init__(self, name, merge, known, show, hint, error_cls):
        self.name, self.merge, self.known, self.show = name, merge, known, show
        self.hint, self.error_cls = hint, error_cls


def _shape_hint(node):
    text = node.attrs.get("__shape__")
    if text is None:
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (tuple, list)):
        raise ShapeError("Variable", f"attribute __shape__={text!r} is not a shape",
                         node=node.name)
    return tuple(int(d) for d in value) or None


def _type_hint(node):
    text = node.attrs.get("__dtype__")
    if text is None:
        return None
    from .compose import FLAG_TO_DTYPE
    try:
        return FLAG_TO_DTYPE[int(text)]
    except (KeyError, ValueError):
        raise DTypeError(f"variable '{node.name}': attribute __dtype__={text!r} is not a known "
                         f"dtype flag ({sorted(FLAG_TO_DTYPE)})") from None


def _show_type(t):
    return "unknown" if t is None else np.dtype(t).name


SHAPE = _Kind("shape", _merge_shape, _known_shape, shape_str, _shape_hint, ShapeError)
TYPE = _Kind("type", _merge_type, lambda t: t is not None, _show_type, _type_hint, DTypeError)


class GraphInference:
    """Runs one kind of inference over an ``IndexedGraph``; ``values`` is per entry id."""

    def __init__(self, graph: IndexedGraph, kind: _Kind, given: dict):
        self.graph, self.kind = graph, kind
        self.values: list = [None] * graph.num_entries
        for nid in graph.variable_ids:
            node = graph.nodes[nid]
            value = given.get(node.name)
            self.values[graph.entry_id(nid, 0)] = value if value is not None else kind.hint(node)

    def run(self) -> list:
        """Sweep forward and backward over the operators until nothing changes."""
        g = self.graph
        op_ids = [i for i, n in enumerate(g.nodes) if n.op is not None]
        # per node: (entry ids of its inputs, number of arguments, entry ids of its outputs)
        self._io = {nid: ([g.entry_id(s, k) for s, k in g.inputs[nid]], g.n_args[nid],
                          list(range(g.row_ptr[nid], g.row_ptr[nid + 1]))) for nid in op_ids}
        known = self.kind.known
        for sweep in range(2 * len(op_ids) + 2):
            order = op_ids if sweep % 2 == 0 else op_ids[::-1]
            changed = False
            for nid in order:
                changed |= self._infer_node(nid)
            if not changed and sweep > 0 or all(known(v) for v in self.values):
                break
        return self.values

    def _infer_node(self, nid: int) -> bool:
        kind, values = self.kind, self.values
        node = self.graph.nodes[nid]
        op, p = node.op, node.params
        in_ids, n_args, out_ids = self._io[nid]
        ins = [values[e] for e in in_ids[:n_args]]
        fn = op.infer_shape if kind is SHAPE else op.infer_type
        try:
            new_ins, outs, auxs = fn(p, ins)
        except (ShapeError, DTypeError) as err:
            raise self._op_error(nid, err) from None
        except HybridNetError:
            raise
        except Exception as err:  # an operator rule that cannot handle unknowns yet
            if all(kind.known(v) for v in ins):
                raise HybridNetError(f"{op.name} '{node.name}': {kind.name} inference failed "
                                     f"with inputs {self._describe_inputs(nid)}: "
                                     f"{type(err).__name__}: {err}") from err
            return False
        changed = False
        for i, value in enumerate(list(new_ins)[:n_args] + list(auxs or ())):
            if value is not None and i < len(in_ids):
                changed |= self._merge(nid, in_ids[i], value, i)
        for k, value in enumerate(outs):
            if value is not None and k < len(out_ids):
                changed |= self._merge(nid, out_ids[k], value, None, k)
        return changed

    def _merge(self, nid, eid, value, input_index, output_index=None) -> bool:
        kind = self.kind
        if kind is SHAPE:
            if type(value) is not tuple or not all(type(d) is int for d in value):
                value = tuple(int(d) for d in value)
        elif not isinstance(value, np.dtype):
            value = parse_dtype(value)
        old = self.values[eid]
        if old is None:
            self.values[eid] = value
            return True
        if old == value:
            return False
        try:
            merged = kind.merge(old, value)
        except ValueError:
            if input_index is not None:
                what = f"input {self.graph.nodes[nid].input_names()[input_index]}"
            else:
                what = f"output {output_index}"
            raise self._conflict(nid, what, old, value, input_index) from None
        if merged != old:
            self.values[eid] = merged
            return True
        return False

    def _describe_inputs(self, nid) -> str:
        g = self.graph
        node = g.nodes[nid]
        parts = []
        for name, (src, k) in zip(node.input_names(), g.inputs[nid]):
            value = self.values[g.entry_id(src, k)]
            parts.append(f"{name}={self.kind.show(value)} from {g.chain(src)}")
        return ", ".join(parts)

    def _conflict(self, nid, what, old, new, input_index):
        g, kind = self.graph, self.kind
        node = g.nodes[nid]
        detail = (f"{what} has {kind.name} {kind.show(old)}, inferred {kind.show(new)} from the "
                  f"operator's other inputs")
        if input_index is not None:
            src = g.inputs[nid][input_index][0]
            detail += f"; it comes from {g.chain(src)}"
        detail += f" (inputs: {self._describe_inputs(nid)})"
        if kind is SHAPE:
            return ShapeError(node.op.name, detail, node=node.name)
        return DTypeError(f"{node.op.name} '{node.name}': {detail}")

    def _op_error(self, nid, err):
        node = self.graph.nodes[nid]
        context = f" (inputs: {self._describe_inputs(nid)})"
        if node.input_names() == ["lhs", "rhs"] and not node.op.name.startswith("broadcast_"):
            context += (f"; {node.op.name} needs equal shapes -- symbol arithmetic does not "
                        f"broadcast, use broadcast_add, broadcast_mul, ... for that")
        if isinstance(err, ShapeError):
            new = ShapeError(err.op, err.detail + context, node=node.name)
        else:
            new = DTypeError(f"{node.op.name} '{node.name}': {err}{context}")
        return new

    def unknown_ids(self) -> list[int]:
        """Variables whose value is still (partly) unknown."""
        g = self.graph
        return [i for i in g.variable_ids if not self.kind.known(self.values[g.entry_id(i, 0)])]

    def unknown_nodes(self) -> list[str]:
        g = self.graph
        out = []
        for nid, node in enumerate(g.nodes):
            if node.op is not None and not all(
                    self.kind.known(self.values[g.entry_id(nid, k)])
                    for k in range(g.n_outputs(nid))):
                out.append(f"{node.name} ({node.op.name})")
        return out


def _given(graph: IndexedGraph, args, kwargs, convert, what: str) -> dict:
    names = graph.arg_names()
    inputs = set(names) | set(graph.aux_names())
    if len(args) > len(names):
        raise ValueError(f"infer_{what} got {len(args)} positional values but the symbol has "
                         f"{len(names)} arguments ({', '.join(names)})")
    given = {}
    for name, value in zip(names, args):
        if value is not None:
            given[name] = convert(name, value)
    for name, value in kwargs.items():
        if name not in inputs:
            raise ValueError(f"infer_{what}: the symbol has no input named {name!r}; its "
                             f"inputs are {', '.join(sorted(inputs))}")
        if value is not None:
            given[name] = convert(name, value)
    return given


def _as_shape(name, value):
    try:
        shape = tuple(int(d) for d in value)
    except TypeError:
        raise TypeError(f"the shape of {name!r} must be a tuple of ints, got {value!r}") from None
    return shape or None


def _as_type(name, value):
    return parse_dtype(value, f"the dtype of {name!r}")


def _outputs(graph, values, unknown_value, convert):
    """(argument, output, aux) values in list order, ``unknown_value`` where unknown."""
    def pick(entry_ids):
        return [convert(values[e]) if values[e] is not None else unknown_value
                for e in entry_ids]
    args = pick([graph.entry_id(i, 0) for i in graph.arg_ids])
    outs = pick([graph.entry_id(n, k) for n, k in graph.head_entries])
    auxs = pick([graph.entry_id(i, 0) for i in graph.aux_list])
    return args, outs, auxs


def infer_shape(sym, args, kwargs, partial: bool):
    """``Symbol.infer_shape`` / ``infer_shape_partial`` (see there)."""
    graph = sym._graph
    graph.check_unique_names()
    given = _given(graph, args, kwargs, _as_shape, "shape")
    inference = GraphInference(graph, SHAPE, given)
    try:
        values = inference.run()
    except ShapeError as err:
        shown = ", ".join(f"{k}={shape_str(v)}" for k, v in given.items()) or "none"
        raise ShapeError(err.op, f"{err.detail}; shapes given to infer_shape: {shown}",
                         node=err.node) from None
    result = _outputs(graph, values, (), tuple)
    if partial:
        return result
    unknown = inference.unknown_ids()
    if unknown or not all(_known_shape(s) for s in result[1]):
        if unknown:
            lines = "\n".join(f"\t{graph.nodes[i].name}: "
                              f"{_partial_str(values[graph.entry_id(i, 0)])}" for i in unknown)
        else:
            lines = ("\t(every argument is known; these nodes are not: "
                     + ", ".join(inference.unknown_nodes()) + ")")
        warnings.warn("Cannot decide shape for the following arguments (0s in shape means "
                      "unknown dimensions). Consider providing them as input:\n" + lines,
                      stacklevel=3)
        return None, None, None
    return result


def _partial_str(shape) -> str:
    return "()" if shape is None else shape_str(shape)


def infer_type(sym, args, kwargs, partial: bool):
    """``Symbol.infer_type`` / ``infer_type_partial`` (see there)."""
    graph = sym._graph
    graph.check_unique_names()
    given = _given(graph, args, kwargs, _as_type, "type")
    inference = GraphInference(graph, TYPE, given)
    values = inference.run()
    result = _outputs(graph, values, None, lambda t: np.dtype(t).type)
    if partial:
        return result
    unknown = inference.unknown_ids()
    if unknown or any(t is None for t in result[1]):
        lines = "\n".join(f"\t{graph.nodes[i].name}: None" for i in unknown)
        warnings.warn("Cannot decide type for the following arguments. Consider providing "
                      "them as input:\n" + lines, stacklevel=3)
        return None, None, None
    return result


def infer_graph(graph: IndexedGraph, shapes: dict, types: dict, where: str = "bind",
                default_dtype=None):
    """Complete shapes and dtypes of every entry of ``graph`` (the Executor's compile step).

    Variables whose dtype nothing decides get ``default_dtype`` when given (simple_bind's
    float32). Raises ShapeError / DTypeError on conflicts and when anything stays unknown,
    naming the arguments to provide.
    """
    graph.check_unique_names()
    shape_inf = GraphInference(graph, SHAPE, shapes)
    shape_values = shape_inf.run()
    unknown = shape_inf.unknown_ids()
    if unknown:
        names = [graph.nodes[i].name for i in unknown]
        shown = ", ".join(f"{graph.nodes[i].name} (known: "
                          f"{_partial_str(shape_values[graph.entry_id(i, 0)])})" for i in unknown)
        raise ShapeError(where, f"cannot infer the shapes of {shown}; give them as keyword "
                                f"arguments, e.g. simple_bind(ctx, "
                                + ", ".join(f"{n}=(...)" for n in names[:2]) + ")")
    nodes = shape_inf.unknown_nodes()
    if nodes:
        raise ShapeError(where, f"cannot infer the output shapes of {', '.join(nodes)} even "
                                f"though every input shape is known")
    type_inf = GraphInference(graph, TYPE, types)
    type_values = type_inf.run()
    if default_dtype is not None and type_inf.unknown_ids():
        filled = dict(types)
        filled.update({graph.nodes[i].name: np.dtype(default_dtype)
                       for i in type_inf.unknown_ids()})
        type_inf = GraphInference(graph, TYPE, filled)
        type_values = type_inf.run()
    unknown = [graph.nodes[i].name for i in type_inf.unknown_ids()] or type_inf.unknown_nodes()
    if unknown:
        raise DTypeError(f"{where}: cannot infer the dtypes of {', '.join(unknown)}; give them "
                         f"with type_dict")
    return shape_values, type_values
