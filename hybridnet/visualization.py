"""``mx.viz`` / ``mx.visualization``: draw a network (graphviz) or print a Keras-like summary.

Both work from the symbol's JSON graph (``symbol.tojson()``, MXNet's format) and, when shapes
are given, from ``symbol.get_internals().infer_shape(...)`` -- the same inputs MXNet's own
functions use, so they draw exactly what MXNet draws:

    >>> dot = mx.viz.plot_network(net, shape={'data': (1, 3, 224, 224)})
    >>> dot.render('net')                  # needs graphviz's `dot` program; dot.source is text
    >>> mx.viz.print_summary(net, shape={'data': (1, 3, 224, 224)})

Nodes: variables are ovals, operators boxes coloured by family (MXNet's 8-colour palette) and
labelled like ``Convolution\\n3x3/1x1, 64``, ``FullyConnected\\n128``, ``Pooling\\nmax,
2x2/2x2``, ``Activation\\nrelu``; Custom operators show their ``op_type``. Parameters (names
ending in _weight, _bias, _gamma, _beta, _moving_mean/var, _running_mean/var) are hidden
unless ``hide_weights=False`` (then drawn as ovals; MXNet drew only their edges). Edges carry
the shape of the data flowing along them without the batch axis (``64x28x28``), and the dtype
when ``dtype`` is given.
"""
from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np

__all__ = ["plot_network", "print_summary"]

_PALETTE = ("#8dd3c7", "#fb8072", "#ffffb3", "#bebada", "#80b1d3", "#fdb462", "#b3de69",
            "#fccde5")
_WEIGHT_SUFFIXES = ("_weight", "_bias", "_beta", "_gamma", "_moving_var", "_moving_mean",
                    "_running_var", "_running_mean")


def _numbers(text: str) -> list:
    """The integers in an attribute string such as '(3, 3)'."""
    return re.findall(r"\d+", text)


def _graph(symbol) -> dict:
    if not hasattr(symbol, "tojson"):
        raise TypeError(f"symbol must be a Symbol, got {type(symbol).__name__}")
    return json.loads(symbol.tojson())


def _output_table(symbol, infer: str, given: dict, what: str) -> dict:
    """``{internal output name: inferred shape or dtype}`` via ``get_internals``."""
    internals = symbol.get_internals()
    _, outs, _ = getattr(internals, infer)(**given)
    if outs is None:
        raise ValueError(f"Input {what} is incomplete: cannot infer every {what} of the "
                         f"network from {given}")
    return dict(zip(internals.list_outputs(), outs))


def _node_outputs(nodes: list, names: list) -> list:
    """For each node, the names of its visible outputs among the internals' outputs ``names``
    (which list them node by node, in graph order)."""
    result, p = [], 0
    for i, node in enumerate(nodes):
        if node["op"] == "null":
            result.append([names[p]] if p < len(names) and names[p] == node["name"] else [])
            p += len(result[-1])
            continue
        prefix = node["name"] + "_"
        following = nodes[i + 1]["name"] if i + 1 < len(nodes) else None
        mine = []
        while p < len(names) and names[p].startswith(prefix):
            # a longer name of the next node ('fc_relu' after 'fc') is the next node's output
            if following and len(following) > len(node["name"]) and (
                    names[p] == following or names[p].startswith(following + "_")):
                break
            mine.append(names[p])
            p += 1
        result.append(mine)
    return result


def _node_style(node: dict, base: dict) -> tuple[str, dict]:
    """(label, attributes) of an operator or variable node, as MXNet draws it."""
    op, name, attrs = node["op"], node["name"], node.get("attrs", {})
    style = dict(base)
    label = name
    if op == "null":
        style["shape"] = "oval"
        style["fillcolor"] = _PALETTE[0]
    elif op == "Convolution":
        stride = "x".join(_numbers(attrs["stride"])) if "stride" in attrs else "1"
        label = f"Convolution\n{'x'.join(_numbers(attrs['kernel']))}/{stride}, " \
                f"{attrs['num_filter']}"
        style["fillcolor"] = _PALETTE[1]
    elif op == "FullyConnected":
        label = f"FullyConnected\n{attrs['num_hidden']}"
        style["fillcolor"] = _PALETTE[1]
    elif op == "BatchNorm":
        style["fillcolor"] = _PALETTE[3]
    elif op == "Activation":
        label = f"Activation\n{attrs['act_type']}"
        style["fillcolor"] = _PALETTE[2]
    elif op == "LeakyReLU":
        label = f"LeakyReLU\n{attrs.get('act_type', 'Leaky')}"
        style["fillcolor"] = _PALETTE[2]
    elif op == "Pooling":
        kernel = "x".join(_numbers(attrs["kernel"])) if "kernel" in attrs else "[]"
        stride = "x".join(_numbers(attrs["stride"])) if "stride" in attrs else "1"
        label = f"Pooling\n{attrs['pool_type']}, {kernel}/{stride}"
        style["fillcolor"] = _PALETTE[4]
    elif op in ("Concat", "Flatten", "Reshape"):
        style["fillcolor"] = _PALETTE[5]
    elif op == "Softmax":
        style["fillcolor"] = _PALETTE[6]
    else:
        style["fillcolor"] = _PALETTE[7]
        if op == "Custom":
            label = attrs["op_type"]
    return label, style


def plot_network(symbol, title: str = "plot", save_format: str = "pdf", shape: dict | None = None,
                 dtype: dict | None = None, node_attrs: dict | None = None,
                 hide_weights: bool = True):
    """``plot_network(symbol, title='plot', save_format='pdf', shape=None, dtype=None, node_attrs={}, hide_weights=True)``.

    Returns a ``graphviz.Digraph`` (``.source`` is the dot text; ``.render()``/``.view()``
    need graphviz's ``dot`` program). ``shape``/``dtype`` map input names to shapes/dtypes and
    label the edges; ``node_attrs`` overrides the node style (default: filled 1.3 x 0.8034
    boxes of fixed size).
    """
    try:
        from graphviz import Digraph
    except ImportError as err:
        raise ImportError("plot_network needs the graphviz package: pip install graphviz "
                          "(and graphviz's `dot` program to render)") from err
    conf = _graph(symbol)
    nodes = conf["nodes"]
    shapes = _output_table(symbol, "infer_shape", shape, "shape") if shape is not None else None
    types = _output_table(symbol, "infer_type", dtype, "type") if dtype is not None else None
    table = shapes if shapes is not None else types
    outputs = _node_outputs(nodes, list(table)) if table is not None else None
    names = [n["name"] for n in nodes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        warnings.warn("There are multiple variables with the same name in your graph, this may "
                      "result in cyclic graph. Repeated names: " + ",".join(repeated),
                      RuntimeWarning, stacklevel=2)
    base = {"shape": "box", "fixedsize": "true", "width": "1.3", "height": "0.8034",
            "style": "filled"}
    base.update(node_attrs or {})
    dot = Digraph(name=title, format=save_format)
    hidden = set()
    for node in nodes:
        if node["op"] == "null" and node["name"].endswith(_WEIGHT_SUFFIXES):
            if hide_weights:
                hidden.add(node["name"])
                continue
        label, style = _node_style(node, base)
        dot.node(name=node["name"], label=label, **style)
    for node in nodes:
        if node["op"] == "null":
            continue
        inputs = node["inputs"]
        if node["op"] == "_contrib_BilinearResize2D":
            inputs = inputs[:1]
        for item in inputs:
            src = nodes[item[0]]
            if src["name"] in hidden:
                continue
            label = ""
            if outputs is not None:
                names_of = outputs[item[0]]
                key = names_of[min(item[1], len(names_of) - 1)] if names_of else None
                if shapes is not None and key in shapes:
                    label = "x".join(str(d) for d in shapes[key][1:])
                if types is not None and key in types:
                    label += f"({np.dtype(types[key]).name})"
            dot.edge(tail_name=node["name"], head_name=src["name"], label=label, dir="back",
                     arrowtail="open")
    return dot


def print_summary(symbol, shape: dict | None = None, line_length: int = 120,
                  positions=(0.44, 0.64, 0.74, 1.0), file=None) -> None:
    """``print_summary(symbol, shape=None, line_length=120, positions=[.44, .64, .74, 1.])``.

    Prints a table ``Layer (type) | Output Shape | Param # | Previous Layer`` and the total
    parameter count, as MXNet does (parameters are counted for Convolution, FullyConnected,
    BatchNorm and Embedding; shapes need ``shape``). ``file`` defaults to stdout.
    """
    out = file or sys.stdout
    shapes = _output_table(symbol, "infer_shape", shape, "shape") if shape is not None else None
    conf = _graph(symbol)
    nodes = conf["nodes"]
    # MXNet's rule (kept for identical tables): the entries of the first head count as
    # "heads", so node 0 (normally the data variable) is listed and feeds the first layer
    heads = set(conf["heads"][0])
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]

    def row(fields):
        line = ""
        for field, pos in zip(fields, positions):
            line += str(field)
            line = line[:pos]
            line += " " * (pos - len(line))
        print(line, file=out)

    def shape_of(node) -> list:
        if shapes is None:
            return []
        key = node["name"] + "_output" if node["op"] != "null" else node["name"]
        return list(shapes[key][1:]) if key in shapes else []

    def layer(node, out_shape) -> int:
        op, attrs = node["op"], node.get("attrs", {})
        previous, pre_filter = [], 0
        if op != "null":
            for item in node["inputs"]:
                src = nodes[item[0]]
                if src["op"] != "null" or item[0] in heads:
                    previous.append(src["name"])
                    src_shape = shape_of(src)
                    if src_shape:
                        pre_filter += int(src_shape[0])
        params = 0
        if op == "Convolution":
            params = pre_filter * int(attrs["num_filter"]) // int(attrs.get("num_group", "1"))
            for k in _numbers(attrs["kernel"]):
                params *= int(k)
            if attrs.get("no_bias") != "True":
                params += int(attrs["num_filter"])
        elif op == "FullyConnected":
            bias = 0 if attrs.get("no_bias") == "True" else 1
            params = (pre_filter + bias) * int(attrs["num_hidden"])
        elif op == "BatchNorm" and shapes is not None:
            params = int(shapes[node["name"] + "_output"][1]) * 2
        elif op == "Embedding":
            params = int(attrs["input_dim"]) * int(attrs["output_dim"])
        row([f"{node['name']}({op})", "x".join(str(d) for d in out_shape), params,
             previous[0] if previous else ""])
        for name in previous[1:]:
            row(["", "", "", name])
        return params

    print("_" * line_length, file=out)
    row(["Layer (type)", "Output Shape", "Param #", "Previous Layer"])
    print("=" * line_length, file=out)
    total = 0
    for i, node in enumerate(nodes):
        if node["op"] == "null" and i > 0:
            continue
        out_shape = shape_of(node) if node["op"] != "null" or i in heads else []
        total += layer(node, out_shape)
        print(("=" if i == len(nodes) - 1 else "_") * line_length, file=out)
    print(f"Total params: {total}", file=out)
    print("_" * line_length, file=out)
