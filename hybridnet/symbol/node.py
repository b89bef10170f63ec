"""Graph nodes and the indexed view of a graph every pass works on.

A ``Node`` is one operator call or one variable. Its ``inputs`` are entries ``(node, index)``
(output ``index`` of ``node``); ``versions`` parallels them with the version numbers MXNet's JSON
stores (1 marks an auxiliary state the operator mutates). Operator parameters live in ``params``
(a registry ``Params``); every other string attribute (``__lr_mult__``, ``__shape__``...) in
``attrs``. A variable has ``op is None``.

``IndexedGraph`` numbers the nodes reachable from a list of head entries in MXNet's order
(depth-first, inputs in order, post-order), so JSON files, ``list_arguments`` and the Executor all
agree on one order.
"""
from __future__ import annotations

from ..base import HybridNetError
from ..ops.registry import OpDef, Params

__all__ = ["Node", "IndexedGraph", "topo_order", "AUX_INIT", "input_init_hint"]

# MXNet gives the moving statistics of normalization layers an initializer hint
AUX_INIT = {"moving_mean": '["zero", {}]', "moving_var": '["one", {}]'}
_PRELU_GAMMA_INIT = '["Constant", {"value": 0.25}]'


def input_init_hint(op_name: str, arg: str, is_aux: bool) -> str | None:
    """The ``__init__`` attribute MXNet's ``FSetInputVarAttrOnCompose`` gives an operator's
    input variable that has none (auto-created or the user's): zeros/ones for the moving
    statistics, 0.25 for PReLU's slope; None for every other input."""
    if is_aux:
        return AUX_INIT.get(arg)
    if op_name == "LeakyReLU" and arg == "gamma":
        return _PRELU_GAMMA_INIT
    return None


class Node:
    """One operator call (``op`` set) or variable (``op is None``) in a symbol graph."""
    __slots__ = ("op", "name", "params", "attrs", "inputs", "versions", "file_outputs",
                 "__weakref__")

    def __init__(self, op: OpDef | None, name: str, params: Params | None = None,
                 attrs: dict | None = None, inputs: list | None = None,
                 versions: list | None = None):
        self.op = op
        self.name = name
        self.params = params
        self.attrs = dict(attrs) if attrs else {}
        self.inputs = list(inputs) if inputs else []
        self.versions = list(versions) if versions is not None else [0] * len(self.inputs)
        # outputs a loaded JSON file counted for this node, when more than ours (MXNet's oneDNN
        # builds count a hidden workspace of max pooling); kept so the file re-serializes as is
        self.file_outputs: int | None = None

    @property
    def is_variable(self) -> bool:
        return self.op is None

    # ---- structure derived from the operator ------------------------------------------------
    def num_outputs(self) -> int:
        """Every output, hidden ones included (1 for a variable)."""
        return 1 if self.op is None else self.op.num_outputs(self.params)

    def num_visible(self) -> int:
        return 1 if self.op is None else len(self.op.output_names(self.params))

    def output_names(self) -> list[str]:
        """Names of the visible outputs as ``list_outputs`` shows them."""
        if self.op is None:
            return [self.name]
        return [f"{self.name}_{n}" for n in self.op.output_names(self.params)]

    def input_names(self) -> list[str]:
        """The operator's names for its inputs (arguments then auxiliary states)."""
        return self.op.list_inputs(self.params)

    def num_args(self) -> int:
        """How many leading inputs are arguments (the rest are auxiliary states)."""
        return len(self.op.input_names(self.params))

    def all_attrs(self) -> dict:
        """Parameters as the strings MXNet stores, merged with the other attributes."""
        out = dict(self.params.raw) if self.params is not None else {}
        out.update(self.attrs)
        return out

    def is_loss(self) -> bool:
        """Whether the operator is a loss head (CustomOp decides per call)."""
        op = self.op
        per_call = getattr(op, "is_loss_for", None)
        return per_call(self.params) if per_call is not None else bool(op.is_loss)

    def copy(self) -> "Node":
        new = Node(self.op, self.name, self.params, self.attrs, self.inputs, self.versions)
        new.file_outputs = self.file_outputs
        return new

    def __repr__(self):
        kind = "Variable" if self.op is None else self.op.name
        return f"<Node {kind} {self.name}>"


def topo_order(heads) -> list[Node]:
    """Nodes reachable from ``heads`` (entries or nodes), depth-first post-order, inputs in order.

    Iterative, so a graph thousands of layers deep does not hit Python's recursion limit.
    """
    order, seen, on_path = [], set(), set()
    for head in heads:
        root = head[0] if isinstance(head, tuple) else head
        if id(root) in seen:
            continue
        seen.add(id(root))
        on_path.add(id(root))
        stack = [(root, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(node.inputs):
                stack[-1] = (node, i + 1)
                child = node.inputs[i][0]
                if id(child) in on_path:
                    raise HybridNetError(f"the graph has a cycle through node '{child.name}' "
                                         f"(an in-place _compose fed a node its own output)")
                if id(child) not in seen:
                    seen.add(id(child))
                    on_path.add(id(child))
                    stack.append((child, 0))
            else:
                stack.pop()
                on_path.discard(id(node))
                order.append(node)
    return order


class IndexedGraph:
    """The nodes reachable from ``heads`` numbered in topological order, with entry ids.

    ``entry_id(nid, index)`` numbers every output of every node (hidden ones included) the way
    MXNet's ``node_row_ptr`` does.
    """

    def __init__(self, heads: list):
        self.heads = list(heads)
        self.nodes = topo_order(heads)
        self.index = {id(n): i for i, n in enumerate(self.nodes)}
        self.row_ptr = [0]
        for n in self.nodes:
            self.row_ptr.append(self.row_ptr[-1] + n.num_outputs())
        self.inputs = [[(self.index[id(src)], k) for src, k in n.inputs] for n in self.nodes]
        self.head_entries = [(self.index[id(n)], k) for n, k in self.heads]
        # how many leading inputs of each node are arguments (the rest: auxiliary states)
        self.n_args = [n.num_args() if n.op is not None else 0 for n in self.nodes]
        aux_ids = set()
        for nid, n in enumerate(self.nodes):
            for src, _ in n.inputs[self.n_args[nid]:]:
                aux_ids.add(self.index[id(src)])
        self.aux_ids = aux_ids
        self.variable_ids = [i for i, n in enumerate(self.nodes) if n.op is None]
        self.arg_ids = [i for i in self.variable_ids if i not in aux_ids]
        self.aux_list = [i for i in self.variable_ids if i in aux_ids]

    @property
    def num_entries(self) -> int:
        return self.row_ptr[-1]

    def entry_id(self, nid: int, index: int) -> int:
        return self.row_ptr[nid] + index

    def n_outputs(self, nid: int) -> int:
        """Outputs of node ``nid``, hidden ones included."""
        return self.row_ptr[nid + 1] - self.row_ptr[nid]

    def arg_names(self) -> list[str]:
        return [self.nodes[i].name for i in self.arg_ids]

    def aux_names(self) -> list[str]:
        return [self.nodes[i].name for i in self.aux_list]

    def consumers(self) -> list[list[int]]:
        """For every node, the ids of the nodes that read one of its outputs."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for nid, ins in enumerate(self.inputs):
            for src, _ in ins:
                out[src].append(nid)
        return out

    def check_unique_names(self) -> None:
        """Binding and inference by name need every variable name to be unique."""
        seen: dict[str, int] = {}
        for i in self.variable_ids:
            name = self.nodes[i].name
            if name in seen:
                raise HybridNetError(
                    f"the graph has two different variables named '{name}'; variable names must "
                    f"be unique (rename one with mx.sym.var(name=...))")
            seen[name] = i

    def chain(self, nid: int, limit: int = 6) -> str:
        """Where node ``nid``'s value comes from: ``relu1 <- fc1 <- data`` (first inputs)."""
        parts, node, steps = [], self.nodes[nid], 0
        while True:
            parts.append(node.name if node.op is None else f"{node.name} ({node.op.name})")
            if node.op is None or not node.inputs:
                break
            steps += 1
            if steps >= limit:
                parts.append("...")
                break
            node = node.inputs[0][0]
        return " <- ".join(parts)
