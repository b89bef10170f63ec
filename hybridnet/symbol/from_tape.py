"""``autograd.get_symbol``: the computation recorded on the autograd tape, as a Symbol.

The tape's nodes become operator nodes named ``node_0, node_1, ...``; arrays marked for
gradients become variables ``var<k>`` and other leaves (constants, auxiliary states)
``null<k>``, numbered in the graph's depth-first order -- the names MXNet 1.x gives.
"""
from __future__ import annotations

from ..base import HybridNetError
from .node import Node

__all__ = ["tape_to_symbol"]


def tape_to_symbol(x):
    """The Symbol computing ``x`` from the tape of ``autograd.record()``."""
    from ..autograd import GradInfo
    from .symbol import Symbol

    built: dict[int, Node] = {}
    leaves: dict[int, Node] = {}
    counters = {"leaf": 0, "op": 0}

    def leaf(arr) -> Node:
        node = leaves.get(id(arr))
        if node is None:
            kind = "var" if type(arr._ag) is GradInfo else "null"
            node = leaves[id(arr)] = Node(None, f"{kind}{counters['leaf']}")
            counters["leaf"] += 1
        return node

    def recorded(arr):
        entry = arr._ag
        return entry if entry is not None and type(entry) is not GradInfo else None

    root = x._ag[0]
    visited = {id(root)}
    stack = [(root, 0)]
    while stack:               # depth-first, inputs in order: leaves are numbered as visited
        tape_node, i = stack[-1]
        inputs = list(tape_node.inputs) + list(tape_node.aux)
        if i < len(inputs):
            stack[-1] = (tape_node, i + 1)
            entry = recorded(inputs[i])
            if entry is None:
                leaf(inputs[i])
            elif id(entry[0]) not in visited:
                visited.add(id(entry[0]))
                stack.append((entry[0], 0))
            continue
        stack.pop()
        if tape_node.function is not None:
            raise HybridNetError(
                f"get_symbol: the tape contains a custom autograd.Function "
                f"({tape_node.op.name}), which has no symbolic form")
        if tape_node.freed:
            raise HybridNetError("get_symbol: the recorded graph was freed by backward(); "
                                 "call get_symbol before backward or use retain_graph=True")
        entries = []
        for arr in inputs:
            entry = recorded(arr)
            entries.append((built[id(entry[0])], entry[1]) if entry is not None
                           else (leaf(arr), 0))
        built[id(tape_node)] = Node(tape_node.op, f"node_{counters['op']}", tape_node.p, {},
                                    entries)
        counters["op"] += 1
    return Symbol([(built[id(root)], x._ag[1])])
