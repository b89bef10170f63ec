"""The Executor: a Symbol compiled once for given shapes, run on the engine.

Binding (``Symbol.bind`` / ``simple_bind``) infers every shape and dtype (errors name the node,
the input and both shapes), builds the backward steps from the operators' registered backward
functions for the arguments whose ``grad_req`` is not 'null', plans memory (``memory.py``) and
turns the result into a flat list of kernel calls over preallocated buffers. ``forward()`` and
``backward()`` then each push **one** engine task that runs its whole list: it reads the
argument (and auxiliary) arrays and writes the outputs, gradients and auxiliary states, so the
engine orders executor work with every other NDArray operation.

The argument, gradient and auxiliary arrays are ordinary NDArrays whose buffers the kernels read
and write directly: arrays computed eagerly can be bound as they are, and ``exe.outputs`` are
NDArrays usable anywhere (under ``autograd.record()`` too).

    >>> exe = net.simple_bind(mx.cpu(), data=(32, 784))
    >>> exe.forward(is_train=True, data=batch)      # returns exe.outputs
    >>> exe.backward()                              # loss heads need no out_grads
    >>> exe.grad_dict['fc1_weight']
"""
from __future__ import annotations

import threading
from functools import partial
from time import perf_counter

import numpy as np

from .. import profiler
from ..base import HybridNetError, ShapeError, shape_str
from ..context import Context
from ..engine import Var, get_engine
from ..ndarray.ndarray import NDArray
from ..ops import resource
from .graph import build_program
from .infer import infer_graph
from .memory import plan_memory
from .node import IndexedGraph

__all__ = ["Executor", "MemoryPool"]


class MemoryPool:
    """Slot storage shared by executors bound with ``shared_exec`` (one at a time: ``var``).

    Executors sharing a pool run in engine order (each task writes ``var``), so a bucket's
    intermediates can live in the same bytes as another bucket's.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.buffers: list = []
        self.var = Var("executor-memory")
        self.lock = threading.Lock()

    def get(self, index: int, nbytes: int):
        """Storage of at least ``nbytes`` for slot ``index`` (grown when too small)."""
        with self.lock:
            while len(self.buffers) <= index:
                self.buffers.append(None)
            buf = self.buffers[index]
            if buf is None or buf.nbytes < nbytes:
                buf = self.ctx.xp.empty(max(nbytes, 1), np.uint8)
                self.buffers[index] = buf
            return buf

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers if b is not None)


def _view(buf, shape, dtype):
    n = dtype.itemsize
    for d in shape:
        n *= d
    return buf[:n].view(dtype).reshape(shape)


class Executor:
    """A bound symbol. Make one with ``Symbol.bind`` or ``Symbol.simple_bind``.

    Attributes:
        arg_arrays, grad_arrays, aux_arrays: lists in ``list_arguments`` /
            ``list_auxiliary_states`` order (``grad_arrays[i]`` is None for grad_req 'null').
        outputs: the output NDArrays, the same objects after every ``forward``.
    """

    def __init__(self, symbol, ctx: Context, arg_arrays: list, grad_arrays: list, reqs: list,
                 aux_arrays: list, pool: MemoryPool | None = None, inferred: tuple | None = None):
        self._symbol = symbol
        self._ctx = ctx
        # ``inferred``: (graph, entry shapes, entry types) when the caller has them already
        graph = inferred[0] if inferred is not None else IndexedGraph(symbol._outputs)
        self._graph = graph
        self.arg_arrays, self.grad_arrays, self.aux_arrays = arg_arrays, grad_arrays, aux_arrays
        self._reqs = reqs
        self._arg_names, self._aux_names = graph.arg_names(), graph.aux_names()
        if inferred is not None:
            entry_shapes, entry_types = inferred[1], inferred[2]
        else:
            shapes = {n: a.shape for n, a in zip(self._arg_names, arg_arrays)}
            shapes.update({n: a.shape for n, a in zip(self._aux_names, aux_arrays)})
            types = {n: a._data.dtype for n, a in zip(self._arg_names, arg_arrays)}
            types.update({n: a._data.dtype for n, a in zip(self._aux_names, aux_arrays)})
            entry_shapes, entry_types = infer_graph(graph, shapes, types, where="bind")
        for name, arr in list(zip(self._arg_names, arg_arrays)) + list(
                zip(self._aux_names, aux_arrays)):
            if arr._ctx != ctx:
                raise HybridNetError(f"bind: array '{name}' is on {arr._ctx}, the executor "
                                     f"runs on {ctx}; copy it with as_in_context first")
        for name, arr, g, req in zip(self._arg_names, arg_arrays, grad_arrays, reqs):
            if req != "null" and g is not None and g.shape != arr.shape:
                raise ShapeError("bind", f"gradient array for '{name}' has shape "
                                         f"{shape_str(g.shape)}, expected {shape_str(arr.shape)}")
        arg_reqs = {nid: req for nid, req in zip(graph.arg_ids, reqs)}
        self._prog = prog = build_program(graph, entry_shapes, entry_types, arg_reqs,
                                          with_backward=any(r != "null" for r in reqs))
        self._plan = plan_memory(prog)
        self._pool = pool if pool is not None else MemoryPool(ctx)
        self._monitor = None
        self._monitor_all = False
        self._arg_dict = self._grad_dict = self._aux_dict = None
        self._materialize()

    # ---- compilation ------------------------------------------------------------------------
    def _materialize(self) -> None:
        prog, plan, ctx = self._prog, self._plan, self._ctx
        xp = ctx.xp
        storage = {}
        for slot, nbytes in enumerate(plan.slot_bytes):
            if slot in plan.private:
                storage[slot] = xp.empty(max(nbytes, 1), np.uint8)
            else:
                storage[slot] = self._pool.get(slot, nbytes)
        arrays = []
        for value in prog.values:
            if value.kind == "arg":
                arrays.append(self.arg_arrays[value.ref]._data)
            elif value.kind == "aux":
                arrays.append(self.aux_arrays[value.ref]._data)
            elif value.kind == "arg_grad":
                arrays.append(self.grad_arrays[value.ref]._data)
            elif value.kind in ("zeros", "ones"):
                # read-only constants (a loss head's gradient): one element broadcast, not a
                # filled array -- on the LSTM workload's (2048, 10000) head that is 78 MB
                fill = (xp.zeros if value.kind == "zeros" else xp.ones)((), value.dtype)
                arrays.append(xp.broadcast_to(fill, value.shape))
            else:
                arrays.append(_view(storage[plan.slot_of[value.vid]], value.shape, value.dtype))
        self._arrays = arrays
        self._const_bytes = sum(np.dtype(prog.values[v].dtype).itemsize
                                for v in prog.const.values())
        # outputs: one NDArray per distinct head value (variables: the bound array itself)
        outputs, by_vid = [], {}
        for n, k in self._graph.head_entries:
            vid = prog.entry_vid[self._graph.entry_id(n, k)]
            if vid not in by_vid:
                value = prog.values[vid]
                if value.kind == "arg":
                    by_vid[vid] = self.arg_arrays[value.ref]
                elif value.kind == "aux":
                    by_vid[vid] = self.aux_arrays[value.ref]
                else:
                    by_vid[vid] = NDArray(arrays[vid], ctx)
            outputs.append(by_vid[vid])
        self.outputs = outputs
        octx = resource.op_context(ctx)
        nodes = self._graph.nodes
        self._fwd_calls = [(nodes[s.nid].op.forward, octx, nodes[s.nid].params,
                            [arrays[v] for v in s.ins], [arrays[v] for v in s.aux],
                            [arrays[v] for v in s.outs]) for s in prog.forward]
        self._bwd_calls = []
        for s in prog.backward:
            if s.kind == "backward":
                node = nodes[s.nid]
                self._bwd_calls.append((node.op.backward, octx, node.params,
                                        [arrays[g] if g is not None else None
                                         for g in s.out_grads],
                                        [arrays[v] for v in s.ins], [arrays[v] for v in s.outs],
                                        [arrays[v] for v in s.aux],
                                        [arrays[g] if g is not None else None
                                         for g in s.in_grads], list(s.req)))
            else:
                self._bwd_calls.append((s.kind, arrays[s.outs[0]], s.req[0] if s.req else None))
        random = any(nodes[s.nid].op.random for s in prog.forward)
        rng = [resource.rng_var(ctx)] if random else []
        out_vars = [o._var for o in {id(o): o for o in outputs}.values()
                    if not any(o is a for a in self.arg_arrays + self.aux_arrays)]
        mutates = any(nodes[s.nid].op.mutates_aux for s in prog.forward)
        aux_vars = [a._var for a in self.aux_arrays]
        self._fwd_reads = [a._var for a in self.arg_arrays] + ([] if mutates else aux_vars)
        self._fwd_writes = out_vars + [self._pool.var] + (aux_vars if mutates else []) + rng
        self._bwd_reads = [a._var for a in self.arg_arrays] + aux_vars + [o._var for o in outputs]
        self._bwd_writes = ([g._var for g, r in zip(self.grad_arrays, self._reqs)
                             if g is not None and r != "null"] + [self._pool.var] + rng)

    # ---- running ----------------------------------------------------------------------------
    def _run_forward(self, is_train: bool) -> None:
        calls = self._fwd_calls
        timer = profiler.operator_timer()
        i = 0
        try:
            if self._monitor is None and timer is None:
                for i, (fn, octx, p, ins, aux, outs) in enumerate(calls):
                    fn(octx, p, ins, aux, outs, is_train)
            else:
                for i, (fn, octx, p, ins, aux, outs) in enumerate(calls):
                    if self._monitor is not None:
                        self._monitor_step(i, "inputs", ins + aux)
                    start = perf_counter()
                    fn(octx, p, ins, aux, outs, is_train)
                    if timer is not None:
                        timer(self._step_op_name(self._prog.forward[i]), self._ctx, start,
                              perf_counter())
                    if self._monitor is not None:
                        self._monitor_step(i, "outputs", outs)
        except Exception as err:
            self._annotate(err, self._prog.forward[i].nid, "forward")
            raise

    def _step_op_name(self, step, prefix: str = "") -> str:
        return prefix + self._graph.nodes[step.nid].op.name

    def _run_backward(self, head_sources: list) -> None:
        timer = profiler.operator_timer()
        i = 0
        try:
            for i, call in enumerate(self._bwd_calls):
                if len(call) == 3:
                    kind, dst, req = call
                    if kind == "zero":
                        dst.fill(0)
                    elif req == "add":
                        dst += head_sources[i]
                    else:
                        dst[...] = head_sources[i]
                else:
                    fn, octx, p, og, ins, outs, aux, ig, req = call
                    start = perf_counter() if timer is not None else 0.0
                    fn(octx, p, og, ins, outs, aux, ig, req)
                    if timer is not None:
                        timer(self._step_op_name(self._prog.backward[i], "_backward_"),
                              self._ctx, start, perf_counter())
                    if self._monitor is not None:
                        self._monitor_gradients(i, ig)
        except Exception as err:
            self._annotate(err, self._prog.backward[i].nid, "backward")
            raise

    def _monitor_gradients(self, i: int, in_grads: list) -> None:
        """Report a backward step's input gradients as MXNet names its backward node's
        outputs: ``fc1_backward_output0..n`` (``relu1_backward_output`` for one input)."""
        stem = f"{self._graph.nodes[self._prog.backward[i].nid].name}_backward_output"
        for j, grad in enumerate(in_grads):
            if grad is not None:
                name = stem if len(in_grads) == 1 else f"{stem}{j}"
                self._monitor(name, NDArray(grad.copy(), self._ctx))

    def _annotate(self, err: Exception, nid: int, phase: str) -> None:
        node = self._graph.nodes[nid]
        kind = node.op.name if node.op is not None else "variable"
        if hasattr(err, "add_note"):
            err.add_note(f"(in {phase} of node '{node.name}' ({kind}) of the executor)")

    def _monitor_step(self, i: int, what: str, arrays: list) -> None:
        node = self._graph.nodes[self._prog.forward[i].nid]
        if what == "inputs":
            if not self._monitor_all:
                return
            names = node.input_names()
        else:
            names = node.op.output_names(node.params)
        for name, data in zip(names, arrays):
            self._monitor(f"{node.name}_{name}", NDArray(data.copy(), self._ctx))

    def forward(self, is_train: bool = False, **kwargs) -> list:
        """Run the graph; ``kwargs`` are copied into the named arguments first.

        ``is_train=True`` runs operators in training mode (Dropout drops, BatchNorm uses and
        updates batch statistics). Returns ``self.outputs``.
        """
        if kwargs:
            arg_dict = self.arg_dict
            for name, value in kwargs.items():
                if name not in arg_dict:
                    raise ValueError(f"forward: unknown argument {name!r}; the arguments are "
                                     f"{', '.join(self._arg_names)}")
                dst = arg_dict[name]
                if not isinstance(value, NDArray):
                    from ..ndarray.ndarray import array
                    value = array(value, ctx=self._ctx, dtype=dst._data.dtype)
                if value.shape != dst.shape:
                    raise ShapeError("forward", f"argument '{name}' has shape "
                                                f"{shape_str(dst.shape)}, got an array of "
                                                f"shape {shape_str(value.shape)}; use "
                                                f"reshape() for another batch size")
                value.copyto(dst)
        get_engine().push(partial(self._run_forward, bool(is_train)), self._fwd_reads,
                          self._fwd_writes, self._ctx, "normal", 0, "executor.forward", False)
        return self.outputs

    def backward(self, out_grads=None, is_train: bool = True) -> None:
        """Compute the gradients of the arguments with grad_req 'write'/'add'.

        ``out_grads`` (NDArray, list or dict by output name) are the gradients of the outputs;
        loss heads (SoftmaxOutput, MakeLoss...) and outputs nobody differentiates need none.
        """
        if not self._prog.backward and not self._prog.head_grads:
            return
        grads = self._normalize_out_grads(out_grads)
        sources = [None] * len(self._bwd_calls)
        reads = list(self._bwd_reads)
        for i, step in enumerate(self._prog.backward):
            if step.kind != "head":
                continue
            h = step.head
            g = grads[h] if h < len(grads) else None
            if g is None:
                node = self._graph.nodes[step.nid]
                raise HybridNetError(
                    f"backward: output {h} ('{self._symbol.list_outputs()[h]}', from "
                    f"{node.op.name if node.op else 'a variable'} '{node.name}') is not a loss, "
                    f"so its head gradient is required: pass out_grads, or if you are "
                    f"minimizing this output as an objective, pass it through the make_loss "
                    f"symbol (MakeLoss)")
            shape = self.outputs[h].shape
            if g.shape != shape:
                raise ShapeError("backward", f"out_grads[{h}] has shape {shape_str(g.shape)}, "
                                             f"expected {shape_str(shape)} like output {h}")
            if g._ctx != self._ctx:
                g = g.as_in_context(self._ctx)
            sources[i] = g._data
            reads.append(g._var)
        get_engine().push(partial(self._run_backward, sources), reads, self._bwd_writes,
                          self._ctx, "normal", 0, "executor.backward", False)

    def _normalize_out_grads(self, out_grads) -> list:
        if out_grads is None:
            return []
        if isinstance(out_grads, NDArray):
            return [out_grads]
        if isinstance(out_grads, dict):
            names = self._symbol.list_outputs()
            unknown = [k for k in out_grads if k not in names]
            if unknown:
                raise ValueError(f"backward: out_grads has unknown output names "
                                 f"{', '.join(unknown)}; outputs are {', '.join(names)}")
            return [out_grads.get(n) for n in names]
        grads = list(out_grads)
        if len(grads) > len(self.outputs):
            raise ValueError(f"backward: got {len(grads)} out_grads for {len(self.outputs)} "
                             f"outputs")
        for i, g in enumerate(grads):
            if g is not None and not isinstance(g, NDArray):
                raise TypeError(f"backward: out_grads[{i}] must be an NDArray, got "
                                f"{type(g).__name__}")
        return grads

    # ---- dictionaries (the arrays never change after binding, so the dicts are made once) ---
    @property
    def arg_dict(self) -> dict:
        """Argument name -> array."""
        if self._arg_dict is None:
            self._arg_dict = dict(zip(self._arg_names, self.arg_arrays))
        return self._arg_dict

    @property
    def grad_dict(self) -> dict:
        """Argument name -> gradient array (None for grad_req 'null')."""
        if self._grad_dict is None:
            self._grad_dict = dict(zip(self._arg_names, self.grad_arrays))
        return self._grad_dict

    @property
    def aux_dict(self) -> dict:
        """Auxiliary state name -> array."""
        if self._aux_dict is None:
            self._aux_dict = dict(zip(self._aux_names, self.aux_arrays))
        return self._aux_dict

    @property
    def output_dict(self) -> dict:
        """Output name -> array."""
        names = self._symbol.list_outputs()
        if len(set(names)) != len(names):
            raise HybridNetError(f"output names are not unique ({', '.join(names)}); use "
                                 f"exe.outputs by position")
        return dict(zip(names, self.outputs))

    # ---- parameters, reshaping, monitoring --------------------------------------------------
    def copy_params_from(self, arg_params: dict, aux_params: dict | None = None,
                         allow_extra_params: bool = False) -> None:
        """Copy parameter values into the bound arrays (converting dtypes as needed)."""
        for params, targets, what in ((arg_params, self.arg_dict, "arguments"),
                                      (aux_params or {}, self.aux_dict, "auxiliary states")):
            for name, value in params.items():
                dst = targets.get(name)
                if dst is None:
                    if allow_extra_params:
                        continue
                    raise ValueError(f"copy_params_from: {name!r} is not one of the "
                                     f"executor's {what} ({', '.join(targets)}); pass "
                                     f"allow_extra_params=True to skip it")
                if value.shape != dst.shape:
                    raise ShapeError("copy_params_from", f"'{name}' has shape "
                                     f"{shape_str(value.shape)}, the executor's is "
                                     f"{shape_str(dst.shape)}")
                value.copyto(dst)

    def reshape(self, partial_shaping: bool = False, allow_up_sizing: bool = False,
                **kwargs) -> "Executor":
        """A new executor for new input shapes, sharing parameters and memory with this one.

        Arrays whose shape is unchanged are shared; smaller ones become views of the old
        memory; growing one needs ``allow_up_sizing=True``. With ``partial_shaping=False`` an
        argument not named in ``kwargs`` may not change shape.
        """
        from .binding import reshape_arrays
        return reshape_arrays(self, partial_shaping, allow_up_sizing, kwargs)

    def set_monitor_callback(self, callback, monitor_all: bool = False) -> None:
        """Call ``callback(name, array)`` for every operator output in forward (``fc1_output``);
        ``monitor_all`` adds the inputs (``fc1_data``). Arrays are copies."""
        self._monitor = callback
        self._monitor_all = bool(monitor_all)

    def get_optimized_symbol(self):
        """The symbol this executor runs (a copy)."""
        return self._symbol.__copy__()

    def debug_str(self) -> str:
        """The graph, the compiled steps and the memory plan (bytes planned vs naive)."""
        prog, plan, nodes = self._prog, self._plan, self._graph.nodes
        lines = [self._symbol.debug_str().rstrip("\n"), f"Executor on {self._ctx}:"]
        n_bwd = sum(1 for s in prog.backward if s.kind == "backward")
        lines.append(f"  forward: {len(prog.forward)} kernel calls in one engine task; "
                     f"backward: {n_bwd} kernel calls"
                     f" (+{len(prog.backward) - n_bwd} head-gradient/zero steps)")
        for phase, steps in (("forward", prog.forward), ("backward", prog.backward)):
            for s in steps:
                node = nodes[s.nid]
                written = s.outs if phase == "forward" else (s.in_grads if s.kind == "backward"
                                                               else s.outs)
                where = ", ".join(self._describe(v) for v in written if v is not None)
                label = node.op.name if node.op is not None else "variable"
                lines.append(f"  {phase:8s} {s.kind:8s} {node.name} ({label}) -> {where}")
        lines.append("Memory plan: " + plan.summary())
        lines.append(f"  constants: {self._const_bytes} bytes; shared pool holds "
                     f"{self._pool.nbytes} bytes")
        total = plan.planned_bytes + self._const_bytes
        lines.append(f"Total {total / 2 ** 20:.0f} MB allocated ({total} bytes)")
        return "\n".join(lines) + "\n"

    def _describe(self, vid: int) -> str:
        value = self._prog.values[vid]
        if value.planned:
            slot = self._plan.slot_of[vid]
            tag = "output" if slot in self._plan.private else "slot"
            return f"{value.name}{shape_str(value.shape)}@{tag}{slot}"
        return f"{value.name}{shape_str(value.shape)}@{value.kind}"

    def __repr__(self):
        return f"<Executor {self._symbol!r} on {self._ctx}>"
