"""Binding a Symbol: gathering the arrays an Executor runs on.

``bind`` takes the caller's arrays as they are (lists in ``list_arguments`` order, or dicts);
``simple_bind`` infers every shape and dtype and allocates them -- sharing parameters with
``shared_exec`` (``shared_arg_names``) and data arrays through ``shared_buffer``, as
BucketingModule needs; ``reshape`` makes a new executor for new shapes that shares what it can.
"""
from __future__ import annotations

import numpy as np

from ..base import HybridNetError, ShapeError, shape_str
from ..context import Context
from ..ndarray.ndarray import NDArray
from ..ops.params import parse_dtype
from .executor import Executor
from .graph import check_reqs
from .infer import SHAPE, GraphInference, infer_graph
from .node import IndexedGraph

__all__ = ["bind", "simple_bind", "reshape_arrays", "normalize_reqs"]

def normalize_reqs(grad_req, names: list[str]) -> list[str]:
    """grad_req as one string, a list (argument order) or a dict (names not in it: 'null')."""
    if isinstance(grad_req, str):
        reqs = [grad_req] * len(names)
    elif isinstance(grad_req, dict):
        # names the symbol does not have are ignored, as MXNet does (Module passes label
        # names to symbols that have no label)
        reqs = [grad_req.get(n, "null") for n in names]
    elif isinstance(grad_req, (list, tuple)):
        if len(grad_req) != len(names):
            raise ValueError(f"grad_req has {len(grad_req)} entries for {len(names)} arguments "
                             f"({', '.join(names)})")
        reqs = list(grad_req)
    else:
        raise TypeError(f"grad_req must be a str, list or dict, got {type(grad_req).__name__}")
    check_reqs(names, reqs)
    return reqs


def _check_ctx(ctx, group2ctx) -> Context:
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be a Context such as mx.cpu(), got {type(ctx).__name__}")
    for group, target in (group2ctx or {}).items():
        if target != ctx:
            raise HybridNetError(f"group2ctx maps group {group!r} to {target}, but model "
                                 f"parallelism across devices is not supported; bind the whole "
                                 f"graph on one device ({ctx})")
    return ctx


def _gather(values, names: list[str], what: str, required: bool) -> list:
    """Arrays for ``names`` from a list (same order) or a dict; errors name what is wrong."""
    if values is None:
        if names and required:
            raise ValueError(f"`{what}` is required: the symbol takes {', '.join(names)}")
        values = [None] * len(names)
    if isinstance(values, dict):
        missing = [n for n in names if n not in values]
        if missing and required:
            raise ValueError(f"key `{missing[0]}` is missing in `{what}` (missing: "
                             f"{', '.join(missing)}; expected keys: {', '.join(names)})")
        extra = [k for k in values if k not in names]
        if extra:
            raise ValueError(f"`{what}` has arrays for {', '.join(extra)}, which the symbol "
                             f"does not take (expected keys: {', '.join(names) or 'none'})")
        out = [values.get(n) for n in names]
    else:
        out = list(values)
        if len(out) != len(names):
            raise ValueError(f"`{what}` has {len(out)} arrays but the symbol takes "
                             f"{len(names)} ({', '.join(names) or 'none'})")
    for name, arr in zip(names, out):
        if arr is not None and not isinstance(arr, NDArray):
            raise TypeError(f"`{what}['{name}']` must be an NDArray, got {type(arr).__name__}")
    return out


def bind(sym, ctx, args, args_grad=None, grad_req="write", aux_states=None, group2ctx=None,
         shared_exec=None) -> Executor:
    """``Symbol.bind``: an Executor over the caller's arrays (used in place, never copied)."""
    ctx = _check_ctx(ctx, group2ctx)
    graph = IndexedGraph(sym._outputs)
    names, aux_names = graph.arg_names(), graph.aux_names()
    arg_arrays = _gather(args, names, "args", True)
    grad_arrays = _gather(args_grad, names, "args_grad", False)
    aux_arrays = _gather(aux_states, aux_names, "aux_states", True)
    reqs = normalize_reqs(grad_req, names)
    reqs = [r if g is not None else "null" for r, g in zip(reqs, grad_arrays)]
    grad_arrays = [g if r != "null" else None for g, r in zip(grad_arrays, reqs)]
    pool = shared_exec._pool if shared_exec is not None else None
    return Executor(sym, ctx, arg_arrays, grad_arrays, reqs, aux_arrays, pool)


def _zeros(shape, dtype, ctx) -> NDArray:
    return NDArray(ctx.xp.zeros(shape, dtype), ctx)


def _view_of(arr: NDArray, shape, dtype) -> NDArray | None:
    """A view of ``arr``'s memory with ``shape`` (same Var), if it is big enough."""
    n = int(np.prod(shape, dtype=np.int64))
    data = arr._data
    if data.dtype != dtype or data.size < n or not data.flags.c_contiguous:
        return None
    return NDArray(data.reshape(-1)[:n].reshape(shape), arr._ctx, arr._var)


def simple_bind(sym, ctx, grad_req="write", type_dict=None, stype_dict=None, group2ctx=None,
                shared_arg_names=None, shared_exec=None, shared_buffer=None,
                shapes: dict | None = None) -> Executor:
    """``Symbol.simple_bind``: infer shapes/dtypes from ``shapes`` and allocate every array."""
    ctx = _check_ctx(ctx, group2ctx)
    graph = IndexedGraph(sym._outputs)
    names, aux_names = graph.arg_names(), graph.aux_names()
    inputs = set(names) | set(aux_names)
    # shapes and dtypes of names the symbol does not have are ignored, as MXNet does
    # (Module gives a label shape to a prediction symbol without a label)
    shapes = {k: v for k, v in (shapes or {}).items() if k in inputs}
    for stype in (stype_dict or {}).values():
        if stype != "default":
            raise HybridNetError(f"simple_bind: storage type {stype!r} is not supported; only "
                                 f"'default' (dense) arrays")
    types = {}
    for key, value in (type_dict or {}).items():
        if key in inputs:
            types[key] = parse_dtype(value, f"type_dict['{key}']")
    shape_list = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
    # arguments no dtype reaches are float32, MXNet's default
    entry_shapes, entry_types = infer_graph(graph, shape_list, types, where="simple_bind",
                                            default_dtype=np.float32)
    reqs = normalize_reqs(grad_req, names)
    shared = set(shared_arg_names or ())
    if shared and shared_exec is None:
        raise ValueError("simple_bind: shared_arg_names needs shared_exec")

    def spec(nid):
        e = graph.entry_id(nid, 0)
        return tuple(entry_shapes[e]), np.dtype(entry_types[e])

    arg_arrays, grad_arrays = [], []
    for nid, name, req in zip(graph.arg_ids, names, reqs):
        shape, dtype = spec(nid)
        arr = grad = None
        if name in shared:
            arr = shared_exec.arg_dict.get(name)
            if arr is None:
                raise ValueError(f"simple_bind: shared argument '{name}' is not an argument of "
                                 f"shared_exec")
            if arr.shape != shape or arr._data.dtype != dtype:
                raise ShapeError("simple_bind", f"shared argument '{name}' has shape "
                                 f"{shape_str(arr.shape)} ({arr._data.dtype.name}) in "
                                 f"shared_exec, this graph needs {shape_str(shape)} "
                                 f"({dtype.name})")
            grad = shared_exec.grad_dict.get(name) if req != "null" else None
        elif shared_buffer is not None:
            held = shared_buffer.get(name)
            arr = _view_of(held, shape, dtype) if held is not None else None
            if arr is None:
                arr = shared_buffer[name] = _zeros(shape, dtype, ctx)
        if arr is None:
            arr = _zeros(shape, dtype, ctx)
        if req != "null" and grad is None:
            grad = _zeros(shape, dtype, ctx)
        arg_arrays.append(arr)
        grad_arrays.append(grad)
    aux_arrays = []
    for nid, name in zip(graph.aux_list, aux_names):
        shape, dtype = spec(nid)
        held = shared_exec.aux_dict.get(name) if shared_exec is not None else None
        if held is not None and held.shape == shape and held._data.dtype == dtype:
            aux_arrays.append(held)
        else:
            aux_arrays.append(_zeros(shape, dtype, ctx))
    pool = shared_exec._pool if shared_exec is not None else None
    return Executor(sym, ctx, arg_arrays, grad_arrays, reqs, aux_arrays, pool,
                    inferred=(graph, entry_shapes, entry_types))


def reshape_arrays(exe: Executor, partial_shaping: bool, allow_up_sizing: bool,
                   shapes: dict) -> Executor:
    """``Executor.reshape`` (see there)."""
    graph = IndexedGraph(exe._symbol._outputs)
    names, aux_names = exe._arg_names, exe._aux_names
    shapes = {k: v for k, v in shapes.items() if k in names or k in aux_names}  # as simple_bind
    given = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
    first = GraphInference(graph, SHAPE, given)
    first.run()
    for nid in first.unknown_ids():         # not decided by the new shapes: keep the old ones
        name = graph.nodes[nid].name
        old = exe.arg_dict.get(name) if name in names else exe.aux_dict[name]
        given[name] = old.shape
    types = {n: a._data.dtype for n, a in zip(names, exe.arg_arrays)}
    types.update({n: a._data.dtype for n, a in zip(aux_names, exe.aux_arrays)})
    entry_shapes, _ = infer_graph(graph, given, types, where="reshape")

    def resized(name, old: NDArray, shape):
        if old.shape == shape:
            return old
        if name not in shapes and not partial_shaping:
            raise ValueError(f"reshape: the shape of '{name}' changed from "
                             f"{shape_str(old.shape)} to {shape_str(shape)} although it was not "
                             f"given; this would stop it sharing memory with the original "
                             f"executor. Check the network, or pass partial_shaping=True if "
                             f"this is intended")
        if int(np.prod(shape, dtype=np.int64)) > old.size:
            if not allow_up_sizing:
                raise ValueError(f"reshape: the new shape of '{name}' {shape_str(shape)} is "
                                 f"larger than the original {shape_str(old.shape)}; making a "
                                 f"big executor first and then down-sizing is more efficient. "
                                 f"To grow it, pass allow_up_sizing=True (new arrays are "
                                 f"allocated)")
            return _zeros(shape, old._data.dtype, old._ctx)
        view = _view_of(old, shape, old._data.dtype)
        return view if view is not None else _zeros(shape, old._data.dtype, old._ctx)

    arg_arrays, grad_arrays = [], []
    for nid, name, arr, grad in zip(graph.arg_ids, names, exe.arg_arrays, exe.grad_arrays):
        shape = tuple(entry_shapes[graph.entry_id(nid, 0)])
        arg_arrays.append(resized(name, arr, shape))
        grad_arrays.append(None if grad is None else resized(name, grad, shape))
    aux_arrays = [resized(name, arr, tuple(entry_shapes[graph.entry_id(nid, 0)]))
                  for nid, name, arr in zip(graph.aux_list, aux_names, exe.aux_arrays)]
    return Executor(exe._symbol, exe._ctx, arg_arrays, grad_arrays, exe._reqs, aux_arrays,
                    exe._pool)
