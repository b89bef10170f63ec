"""The Executor's program: forward steps, and the backward steps built from each operator's
registered ``backward``.

Every array the program touches is a ``Value``: an argument, auxiliary state or argument
gradient the user owns, an intermediate (operator output or intermediate gradient) the memory
planner places, or a shared constant (the zeros passed as the gradient of an output nobody
differentiates, the ones passed to loss heads). A ``Step`` is one kernel call over values.

Backward covers only what the arguments with ``grad_req != 'null'`` need: an entry needs a
gradient when it depends (differentiably) on such an argument. When an entry feeds several
nodes, the first backward step to produce its gradient writes it and the others add to it
(``req='add'``) -- no separate summation buffers. Operators without a gradient (``backward``
None) and ``ZERO_GRAD`` ones pass no gradient back, as MXNet's zero-gradient rules do.
"""
from __future__ import annotations

from ..base import HybridNetError
from ..ops.registry import ZERO_GRAD
from .node import IndexedGraph

__all__ = ["Value", "Step", "Program", "build_program"]


class Value:
    """One array of the program: what it holds, its shape/dtype, and who owns its memory.

    ``kind``: 'arg', 'aux', 'arg_grad' (user arrays; ``ref`` = index in the arg/aux list),
    'node' (an operator output), 'grad' (an intermediate gradient), 'zeros' / 'ones' (read-only
    constants).
    """
    __slots__ = ("vid", "kind", "shape", "dtype", "ref", "name")

    def __init__(self, vid, kind, shape, dtype, ref, name):
        self.vid, self.kind, self.shape, self.dtype = vid, kind, tuple(shape), dtype
        self.ref, self.name = ref, name

    @property
    def nbytes(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n

    @property
    def planned(self) -> bool:
        return self.kind in ("node", "grad")

    def __repr__(self):
        return f"<Value {self.vid} {self.kind} {self.name} {self.shape} {self.dtype}>"


class Step:
    """One kernel call. ``kind``: 'forward' / 'backward' (an operator), 'head' (copy a head
    gradient in), 'zero' (zero a 'write' gradient nothing contributes to)."""
    __slots__ = ("kind", "nid", "ins", "aux", "outs", "out_grads", "in_grads", "req",
                 "reads", "writes", "head")

    def __init__(self, kind, nid, ins=(), aux=(), outs=(), out_grads=(), in_grads=(), req=()):
        self.kind, self.nid = kind, nid
        self.ins, self.aux, self.outs = list(ins), list(aux), list(outs)
        self.out_grads, self.in_grads, self.req = list(out_grads), list(in_grads), list(req)
        self.reads: list[int] = []
        self.writes: list[int] = []
        self.head: int | None = None         # for 'head' steps: which output's gradient


class Program:
    """Values and steps of one bound graph; see the module docstring."""

    def __init__(self, graph: IndexedGraph):
        self.graph = graph
        self.values: list[Value] = []
        self.entry_vid: list[int] = []       # forward entry id -> value id
        self.forward: list[Step] = []
        self.backward: list[Step] = []
        self.head_grads: list[tuple] = []    # (head index, value id) the user's out_grads fill
        self.pinned: set[int] = set()        # values that must survive every step (outputs)
        self.const: dict = {}

    def add(self, kind, shape, dtype, ref=None, name="") -> int:
        vid = len(self.values)
        self.values.append(Value(vid, kind, shape, dtype, ref, name))
        return vid

    def constant(self, kind, shape, dtype) -> int:
        key = (kind, tuple(shape), dtype)
        if key not in self.const:
            self.const[key] = self.add(kind, shape, dtype, name=kind)
        return self.const[key]


def _differentiable(op) -> bool:
    return op.backward is not None and op.backward is not ZERO_GRAD


def build_program(graph: IndexedGraph, shapes: list, types: list, arg_reqs: dict,
                  with_backward: bool) -> Program:
    """Forward (and, if ``with_backward``, backward) steps of ``graph``.

    ``shapes``/``types`` are per forward entry; ``arg_reqs`` maps each argument's node id to
    its grad_req ('write', 'add' or 'null').
    """
    prog = Program(graph)
    nodes = graph.nodes
    arg_pos = {nid: i for i, nid in enumerate(graph.arg_ids)}
    aux_pos = {nid: i for i, nid in enumerate(graph.aux_list)}
    for nid, node in enumerate(nodes):
        for k in range(graph.n_outputs(nid)):
            eid = graph.entry_id(nid, k)
            if node.op is None:
                kind, ref = ("aux", aux_pos[nid]) if nid in aux_pos else ("arg", arg_pos[nid])
            else:
                kind, ref = "node", None
            prog.entry_vid.append(prog.add(kind, shapes[eid], types[eid], ref,
                                           f"{node.name}:{k}" if k else node.name))
    for n, k in graph.head_entries:
        prog.pinned.add(prog.entry_vid[graph.entry_id(n, k)])
    for nid, node in enumerate(nodes):
        if node.op is None:
            continue
        ins = [prog.entry_vid[graph.entry_id(s, k)] for s, k in graph.inputs[nid]]
        n_args = graph.n_args[nid]
        step = Step("forward", nid, ins=ins[:n_args], aux=ins[n_args:],
                    outs=[prog.entry_vid[graph.entry_id(nid, k)]
                          for k in range(graph.n_outputs(nid))])
        step.reads = list(ins)
        step.writes = list(step.outs) + (step.aux if node.op.mutates_aux else [])
        prog.forward.append(step)
    if with_backward:
        _build_backward(prog, arg_reqs)
    return prog


def _build_backward(prog: Program, arg_reqs: dict) -> None:
    graph, nodes = prog.graph, prog.graph.nodes
    eid = graph.entry_id
    # which entries depend differentiably on an argument that wants a gradient
    needs = [False] * graph.num_entries
    for nid, node in enumerate(nodes):
        if node.op is None:
            needs[eid(nid, 0)] = arg_reqs.get(nid, "null") != "null"
        elif _differentiable(node.op):
            if any(needs[eid(s, k)] for s, k in graph.inputs[nid][:graph.n_args[nid]]):
                for k in range(graph.n_outputs(nid)):
                    needs[eid(nid, k)] = True
    grad_vid: dict[int, int] = {}
    entry_node = [nid for nid in range(len(nodes)) for _ in range(graph.n_outputs(nid))]

    def grad_of(e):
        if e not in grad_vid:
            nid = entry_node[e]
            value = prog.values[prog.entry_vid[e]]
            if nodes[nid].op is None:
                grad_vid[e] = prog.add("arg_grad", value.shape, value.dtype, value.ref,
                                       f"{nodes[nid].name}_grad")
            else:
                grad_vid[e] = prog.add("grad", value.shape, value.dtype, None,
                                       f"{value.name}_grad")
        return grad_vid[e]

    touched: set[int] = set()

    def req_for(vid):
        value = prog.values[vid]
        if vid in touched or (value.kind == "arg_grad" and
                              arg_reqs[graph.arg_ids[value.ref]] == "add"):
            return "add"
        touched.add(vid)
        return "write"

    # head gradients: the user's out_grads (loss heads need none)
    has_grad = [False] * graph.num_entries
    for h, (n, k) in enumerate(graph.head_entries):
        e = eid(n, k)
        node = nodes[n]
        if not needs[e] or (node.op is not None and node.is_loss()):
            continue
        vid = grad_of(e)
        prog.head_grads.append((h, vid))
        step = Step("head", n, outs=[vid], req=[req_for(vid)])
        step.head = h
        step.writes = [vid]
        prog.backward.append(step)
        has_grad[e] = True
    for nid in range(len(nodes) - 1, -1, -1):
        node = nodes[nid]
        op = node.op
        if op is None or not _differentiable(op):
            continue
        n_out = graph.n_outputs(nid)
        outs = [eid(nid, k) for k in range(n_out)]
        loss = node.is_loss()
        if not (loss and any(needs[e] for e in outs)) and not any(has_grad[e] for e in outs):
            continue
        in_entries = [eid(s, k) for s, k in graph.inputs[nid]]
        n_args = graph.n_args[nid]
        wanted = [needs[e] for e in in_entries[:n_args]]
        if not any(wanted):
            continue
        n_vis = node.num_visible()
        out_grads = []
        for k, e in enumerate(outs):
            value = prog.values[prog.entry_vid[e]]
            if has_grad[e]:
                out_grads.append(grad_vid[e])
            elif k < n_vis:
                out_grads.append(prog.constant("ones" if loss else "zeros", value.shape,
                                               value.dtype))
            else:
                out_grads.append(None)
        in_grads, req = [], []
        for e, want in zip(in_entries[:n_args], wanted):
            if want:
                vid = grad_of(e)
                in_grads.append(vid)
                req.append(req_for(vid))
                has_grad[e] = True
            else:
                in_grads.append(None)
                req.append("null")
        step = Step("backward", nid, ins=[prog.entry_vid[e] for e in in_entries[:n_args]],
                    aux=[prog.entry_vid[e] for e in in_entries[n_args:]],
                    outs=[prog.entry_vid[e] for e in outs], out_grads=out_grads,
                    in_grads=in_grads, req=req)
        reads_in, reads_out = op.backward_reads(node.params, n_args, n_out)
        step.reads = ([g for g in out_grads if g is not None]
                      + [step.ins[i] for i in reads_in if i < n_args]
                      + [step.outs[k] for k in reads_out if k < n_out] + step.aux
                      + [g for g, r in zip(in_grads, req) if r == "add"])
        step.writes = [g for g in in_grads if g is not None]
        prog.backward.append(step)
    # a 'write' gradient nothing contributes to is zero (MXNet zero-fills it)
    for nid in graph.arg_ids:
        if arg_reqs.get(nid, "null") == "write":
            vid = grad_of(eid(nid, 0))
            if vid not in touched:
                touched.add(vid)
                step = Step("zero", nid, outs=[vid])
                step.writes = [vid]
                prog.backward.insert(0, step)
    prog.grad_vid = grad_vid


def check_reqs(names: list[str], reqs: list[str]) -> None:
    for name, req in zip(names, reqs):
        if req not in ("write", "add", "null"):
            raise HybridNetError(f"grad_req for '{name}' must be 'write', 'add' or 'null', got "
                                 f"{req!r}")
