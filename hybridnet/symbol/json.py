"""MXNet's symbol JSON format (``prefix-symbol.json``), both ways.

Writing reproduces MXNet 1.9.1's bytes: keys ``nodes, arg_nodes, node_row_ptr, heads, attrs``;
a node is ``{"op", "name", "attrs" (sorted, omitted when empty), "inputs"}``; input entries are
``[node, output, version]`` (version 1 on mutated auxiliary states); ``node_row_ptr`` counts hidden
outputs; ``attrs`` carries ``{"mxnet_version": ["int", 10901]}``. The layout follows MXNet's
writer: 2-space indent, ``", "`` separators (so lines end in a space), objects with more than one
key and arrays of more than 10 items spread over lines.

Reading is lenient like MXNet: 2-element input entries, missing ``node_row_ptr``/``attrs``, and
legacy files (before 0.9: per-node ``param`` + ``attr`` + ``backward_source_id``, no version)
which are upgraded: hidden attributes become ``__key__`` (suffix forms like ``weight_lr_mult`` move
to the matching input variable), missing inputs are added as ``<node>_<input>`` variables, and
argmax/argmin's old ``axis=-1`` ("no axis") is dropped. Malformed files raise an error naming the
node and the key; unknown operators raise naming the operator.
"""
from __future__ import annotations

import json as _json
import logging
import os
import tempfile

from .. import attribute
from ..base import HybridNetError
from ..ops.registry import find_op
from .node import AUX_INIT, IndexedGraph, Node

__all__ = ["to_json", "save", "load", "load_json", "MXNET_VERSION"]

MXNET_VERSION = 10901           # major * 10000 + minor * 100 + patch, what MXNet 1.9.1 writes
_log = logging.getLogger(__name__)

# Where MXNet 1.9.1's canonical name of an operator is one of our aliases (found by asking the
# oracle for the canonical name behind every registry name): files say "BlockGrad", not
# "stop_gradient", whichever spelling built the node.
_MXNET_NAME = {"stop_gradient": "BlockGrad", "identity": "_copy"}


def mxnet_op_name(op) -> str:
    """The name MXNet's files use for registry operator ``op``."""
    return _MXNET_NAME.get(op.name, op.name)


# ---- writing ----------------------------------------------------------------------------------
def _escape(text: str) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


class _Writer:
    """MXNet's (dmlc) JSON writer layout: separators and indents decided per scope."""

    def __init__(self):
        self.parts: list[str] = []
        self.scopes: list[list] = []      # [multi_line, items written]

    def _separator(self):
        if not self.scopes or self.scopes[-1][0]:
            self.parts.append("\n" + " " * (2 * len(self.scopes)))

    def begin(self, bracket: str, multi_line: bool):
        self.parts.append(bracket)
        self.scopes.append([multi_line, 0])

    def end(self, bracket: str):
        multi_line, count = self.scopes.pop()
        if multi_line and count:
            self._separator()
        self.parts.append(bracket)

    def item(self, write):
        scope = self.scopes[-1]
        if scope[1]:
            self.parts.append(", ")
        self._separator()
        scope[1] += 1
        write()

    def key(self, key: str, write):
        self.item(lambda: (self.parts.append(f'"{key}": '), write()))

    def value(self, v):
        if isinstance(v, str):
            self.parts.append(f'"{_escape(v)}"')
        elif isinstance(v, dict):
            self.begin("{", len(v) > 1)
            for k, x in v.items():
                self.key(k, lambda x=x: self.value(x))
            self.end("}")
        elif isinstance(v, (list, tuple)):
            self.begin("[", len(v) > 10 or any(isinstance(x, dict) for x in v))
            for x in v:
                self.item(lambda x=x: self.value(x))
            self.end("]")
        else:
            self.parts.append(str(int(v)))


def graph_dict(sym) -> dict:
    """The JSON object of ``sym`` as Python data (key order as MXNet writes it)."""
    g = IndexedGraph(sym._outputs)
    nodes, row_ptr = [], [0]
    for nid, node in enumerate(g.nodes):
        row_ptr.append(row_ptr[-1] + max(node.num_outputs(), node.file_outputs or 0))
        entry = {"op": "null" if node.op is None else mxnet_op_name(node.op), "name": node.name}
        attrs = node.all_attrs()
        if attrs:
            entry["attrs"] = dict(sorted(attrs.items()))
        entry["inputs"] = [[s, k, v] for (s, k), v in zip(g.inputs[nid], node.versions)]
        nodes.append(entry)
    return {"nodes": nodes, "arg_nodes": list(g.variable_ids), "node_row_ptr": row_ptr,
            "heads": [[n, k, 0] for n, k in g.head_entries],
            "attrs": {"mxnet_version": ["int", MXNET_VERSION]}}


def to_json(sym) -> str:
    """``Symbol.tojson()``: the graph as MXNet 1.9.1 writes it, byte for byte."""
    writer = _Writer()
    writer.value(graph_dict(sym))
    return "".join(writer.parts)


def save(sym, fname: str) -> None:
    """Write ``sym.tojson()`` to ``fname`` through a temp file renamed into place."""
    text = to_json(sym)
    directory = os.path.dirname(os.path.abspath(fname))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        # mkstemp makes the file 0600; give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, fname)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- reading ----------------------------------------------------------------------------------
def load(fname: str):
    """``mx.sym.load``: a Symbol from a ``-symbol.json`` file (MXNet's or ours, any version)."""
    if not isinstance(fname, str):
        raise TypeError(f"fname must be a path string, got {type(fname).__name__}")
    with open(fname, encoding="utf-8") as f:
        text = f.read()
    return load_json(text, source=fname)


def load_json(json_str: str, source: str = "the JSON string"):
    """``mx.sym.load_json``: a Symbol from MXNet's JSON text."""
    try:
        data = _json.loads(json_str)
    except ValueError as err:
        raise HybridNetError(f"{source} is not valid JSON: {err}") from None
    return _Loader(data, source).build()


class _Loader:
    def __init__(self, data, source):
        self.source = source
        if not isinstance(data, dict) or "nodes" not in data or "heads" not in data:
            raise HybridNetError(f"{source} is not a symbol file: expected a JSON object with "
                                 f"'nodes' and 'heads'")
        self.data = data
        version = (data.get("attrs") or {}).get("mxnet_version")
        try:
            self.version = int(version[1]) if version is not None else 800
        except (TypeError, ValueError, IndexError):
            raise HybridNetError(f"{source}: attrs.mxnet_version must look like "
                                 f'["int", 10901], got {version!r}') from None
        if self.version > MXNET_VERSION:
            _log.warning("%s was saved by MXNet version %d, newer than the %d this reader "
                         "follows; loading it anyway", source, self.version, MXNET_VERSION)

    def _fail(self, where: str, key: str, why: str):
        raise HybridNetError(f"{self.source}: {where}: key '{key}' {why}")

    def _entry(self, where, raw, n_built):
        if not isinstance(raw, list) or len(raw) not in (2, 3) or not all(
                isinstance(x, int) for x in raw):
            self._fail(where, "inputs", f"has a malformed entry {raw!r} (expected "
                                        f"[node, output, version])")
        nid, index = raw[0], raw[1]
        if not 0 <= nid < n_built:
            self._fail(where, "inputs", f"refers to node {nid}, which does not come before it")
        return nid, index, (raw[2] if len(raw) == 3 else 0)

    def build(self):
        nodes = self.data["nodes"]
        if not isinstance(nodes, list):
            self._fail("the graph", "nodes", "must be a list")
        built: list[Node] = []
        for i, raw in enumerate(nodes):
            built.append(self._node(i, raw, built))
        row_ptr = self.data.get("node_row_ptr")
        if isinstance(row_ptr, list) and len(row_ptr) == len(built) + 1:
            for node, lo, hi in zip(built, row_ptr, row_ptr[1:]):
                if isinstance(lo, int) and isinstance(hi, int) and hi - lo > node.num_outputs():
                    node.file_outputs = hi - lo
        heads = self.data["heads"]
        if not isinstance(heads, list) or not heads:
            self._fail("the graph", "heads", "must be a non-empty list of entries")
        outputs = []
        for raw in heads:
            nid, index, _ = self._entry("heads", raw, len(built))
            outputs.append(self._output(built[nid], index, "heads"))
        from .symbol import Symbol
        return Symbol(outputs)

    def _output(self, node, index, where):
        if not 0 <= index < node.num_outputs():
            self._fail(where, "inputs", f"asks for output {index} of node '{node.name}', which "
                                        f"has {node.num_outputs()}")
        return node, index

    def _node(self, i, raw, built) -> Node:
        if not isinstance(raw, dict):
            self._fail(f"node {i}", "nodes", "must hold objects")
        for key in ("op", "name"):
            if not isinstance(raw.get(key), str):
                self._fail(f"node {i}", key, "is missing or not a string")
        name, op_name = raw["name"], raw["op"]
        where = f"node {i} ('{name}')"
        attrs = {}
        for key in ("param", "attr", "attrs"):
            value = raw.get(key, {})
            if not isinstance(value, dict) or not all(isinstance(v, str)
                                                      for v in value.values()):
                self._fail(where, key, "must be an object of strings")
            attrs.update(value)
        inputs_raw = raw.get("inputs", [])
        if not isinstance(inputs_raw, list):
            self._fail(where, "inputs", "must be a list")
        entries = [self._entry(where, e, i) for e in inputs_raw]
        inputs = [self._output(built[n], k, where) for n, k, _ in entries]
        versions = [v for _, _, v in entries]
        if op_name == "null":
            if entries:
                self._fail(where, "inputs", "must be empty for a variable (op 'null')")
            if self.version < 900:
                attrs = {attribute.hidden_key(k): v for k, v in attrs.items()}
            return Node(None, name, attrs=attrs)
        op = find_op(op_name)
        if op is None:
            raise HybridNetError(f"{self.source}: {where} uses operator '{op_name}', which "
                                 f"hybridnet does not have")
        if self.version < 900:
            attrs = self._upgrade_hidden_keys(attrs, op, inputs)
        if self.version < 905 and op_name in ("argmax", "argmin") and attrs.get("axis") == "-1":
            del attrs["axis"]           # before 0.9.5, axis=-1 meant "over all elements"
        params = {k: v for k, v in attrs.items() if not (k.startswith("__") and k.endswith("__"))}
        user = {k: v for k, v in attrs.items() if k not in params}
        try:
            p = op.parse_params(params)
        except HybridNetError as err:
            raise HybridNetError(f"{self.source}: {where}: {err}") from None
        node = Node(op, name, p, user)
        names = node.input_names()
        if len(inputs) < len(names) and self.version < 900:
            for arg in names[len(inputs):]:
                var_attrs = node.all_attrs()
                if arg in AUX_INIT:
                    var_attrs["__init__"] = AUX_INIT[arg]
                inputs.append((Node(None, f"{name}_{arg}", attrs=var_attrs), 0))
                versions.append(0)
        if len(inputs) != len(names):
            self._fail(where, "inputs", f"has {len(inputs)} entries but {op_name} takes "
                                        f"{len(names)} ({', '.join(names)})")
        node.inputs, node.versions = inputs, versions
        return node

    @staticmethod
    def _upgrade_hidden_keys(attrs, op, inputs) -> dict:
        """Pre-0.9 files: ``lr_mult`` -> ``__lr_mult__``; ``weight_lr_mult`` moves to the
        variable feeding input ``weight``."""
        out = {}
        arg_names = None
        for key, value in attrs.items():
            if key in attribute.HIDDEN_KEYS:
                out[attribute.hidden_key(key)] = value
                continue
            suffix = next((h for h in attribute.HIDDEN_KEYS if key.endswith("_" + h)), None)
            if suffix is None:
                out[key] = value
                continue
            if arg_names is None:
                try:
                    arg_names = op.list_inputs(op.parse_params(
                        {k: v for k, v in attrs.items() if k in op.param_map}))
                except HybridNetError:
                    arg_names = []
            arg = key[:-len(suffix) - 1]
            if arg in arg_names and arg_names.index(arg) < len(inputs):
                src = inputs[arg_names.index(arg)][0]
                if src.op is None:
                    src.attrs[attribute.hidden_key(suffix)] = value
        return out
