"""``mx.autograd``: imperative gradients over the same registry operators.

Inside ``with autograd.record():`` every eager operator whose inputs need gradients is put on a
tape (a graph of ``Node``s hanging off the output arrays). ``backward`` walks it in reverse,
calling each operator's registered ``backward`` through the engine -- the same functions the
Executor uses -- and writes or adds the results into the ``.grad`` of arrays marked with
``attach_grad`` (or ``mark_variables``).

Example::

    x = mx.nd.array([1., 2., 3.]); x.attach_grad()
    with mx.autograd.record():
        y = (x * x).sum()
    y.backward()
    x.grad          # [2. 4. 6.]
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from .base import HybridNetError, ShapeError, shape_str

__all__ = ["record", "pause", "train_mode", "predict_mode", "is_recording", "is_training",
           "set_recording", "set_training", "mark_variables", "backward", "grad", "get_symbol",
           "Function", "GradInfo"]


class _State(threading.local):
    recording = False
    training = False


_state = _State()


class GradInfo:
    """``NDArray._ag`` of an array whose gradient is wanted: its buffer and grad_req."""
    __slots__ = ("grad", "grad_req")

    def __init__(self, grad, grad_req: str):
        self.grad, self.grad_req = grad, grad_req

    def __repr__(self):
        return f"GradInfo(grad_req={self.grad_req!r})"


def is_recording() -> bool:
    """Whether operators are being recorded for gradients (thread-local)."""
    return _state.recording


def is_training() -> bool:
    """Whether operators run in training mode (Dropout drops, BatchNorm uses batch stats)."""
    return _state.training


def set_recording(is_recording: bool) -> bool:  # noqa: A002  (MXNet's argument name)
    """Turn recording on or off; return the previous state."""
    old, _state.recording = _state.recording, bool(is_recording)
    return old


def set_training(train_mode: bool) -> bool:
    """Turn training mode on or off; return the previous state."""
    old, _state.training = _state.training, bool(train_mode)
    return old


@contextmanager
def _scope(recording, training):
    old_r = set_recording(recording) if recording is not None else None
    old_t = set_training(training) if training is not None else None
    try:
        yield
    finally:
        if recording is not None:
            set_recording(old_r)
        if training is not None:
            set_training(old_t)


def record(train_mode: bool = True):  # noqa: F811  (MXNet's argument name shadows the function)
    """``with autograd.record():`` records operators for ``backward`` (training mode by default)."""
    return _scope(True, train_mode)


def pause(train_mode: bool = False):
    """``with autograd.pause():`` stops recording inside a ``record()`` block."""
    return _scope(False, train_mode)


def train_mode():
    """``with autograd.train_mode():`` runs operators in training mode without recording."""
    return _scope(None, True)


def predict_mode():
    """``with autograd.predict_mode():`` runs operators in inference mode."""
    return _scope(None, False)


class Node:
    """One recorded operator call: what its backward needs, and where its inputs came from."""
    __slots__ = ("op", "p", "inputs", "aux", "out_data", "out_vars", "ctx", "is_train", "freed",
                 "function")

    def __init__(self, op, p, inputs, aux, outputs, is_train, function=None):
        self.op, self.p, self.inputs, self.aux = op, p, list(inputs), list(aux)
        self.out_data = [o._data for o in outputs]
        self.out_vars = [o._var for o in outputs]
        self.ctx = outputs[0]._ctx if outputs else None
        self.is_train, self.freed, self.function = is_train, False, function


_IN_GRAPH = ("cannot write into an array that is already part of the recorded graph ({what}): "
             "gradients would be computed from overwritten values. Call backward first, write "
             "outside autograd.record(), or build a new array (y = y + 1 instead of y += 1, no "
             "out= / x[idx] = v inside record())")


def _wants_grad(x) -> bool:
    """Whether gradients should flow into NDArray ``x`` (recorded, or marked with req != null)."""
    entry = x._ag
    return entry is not None and (type(entry) is not GradInfo or entry.grad_req != "null")


def check_writable(x, what: str) -> None:
    """Raise if writing into ``x`` now would corrupt a recorded graph (in-place ops, x[i] = v)."""
    if _state.recording and x._ag is not None:
        raise HybridNetError(_IN_GRAPH.format(what=what))


def _record(op, p, args, aux, outputs, is_train, function=None) -> None:
    """Put one eager call on the tape (called by the eager invoke path while recording)."""
    for x in args:
        if _wants_grad(x):
            break
    else:
        return                       # nothing upstream wants a gradient: nothing to record
    for o in outputs:
        if o._ag is not None:        # out= an array the graph already holds
            raise HybridNetError(_IN_GRAPH.format(what=f"out= of {op.name}"))
    node = Node(op, p, args, aux, outputs, is_train, function)
    if function is None:
        _drop_unread(node)
    for i, o in enumerate(outputs):
        o._ag = (node, i)


def _zero_stride(xp, data):
    """A read-only stand-in for ``data``: its shape and dtype, one element of memory."""
    return xp.broadcast_to(xp.zeros((), data.dtype), data.shape)


def _drop_unread(node) -> None:
    """Let the tape forget the values its operator's backward never reads, as the executor's
    memory plan does: a recorded intermediate input (a loss head's 78 MB input on the LSTM
    workload) or an output is then freed with the user's last reference to it. Each becomes a
    zero-stride stand-in of the same shape and dtype; a stand-in input keeps the original's
    tape entry and engine variable. Leaves (variables, constants) stay: they are few, the user
    holds them, and get_symbol tells them apart by identity."""
    from .ndarray.ndarray import NDArray
    reads_in, reads_out = node.op.backward_reads(node.p, len(node.inputs), len(node.out_data))
    for i, x in enumerate(node.inputs):
        if i not in reads_in and type(x._ag) is tuple:
            stand_in = NDArray(_zero_stride(x._ctx.xp, x._data), x._ctx, x._var)
            stand_in._ag = x._ag
            node.inputs[i] = stand_in
    for i, data in enumerate(node.out_data):
        if i not in reads_out:
            node.out_data[i] = _zero_stride(node.ctx.xp, data)


def mark_variables(variables, gradients, grad_reqs="write") -> None:
    """Mark NDArrays as variables whose gradients ``backward`` writes into ``gradients``."""
    from .ndarray.ndarray import NDArray
    if isinstance(variables, NDArray):
        variables, gradients = [variables], [gradients]
    if isinstance(grad_reqs, str):
        grad_reqs = [grad_reqs] * len(variables)
    if not len(variables) == len(gradients) == len(grad_reqs):
        raise ValueError(f"mark_variables got {len(variables)} variables, {len(gradients)} "
                         f"gradients and {len(grad_reqs)} grad_reqs; they must match")
    for var, g, req in zip(variables, gradients, grad_reqs):
        if req not in ("write", "add", "null"):
            raise ValueError(f"grad_req must be 'write', 'add' or 'null', got {req!r}")
        if g.shape != var.shape:
            raise ShapeError("mark_variables", f"gradient buffer has shape {shape_str(g.shape)}, "
                                               f"variable has {shape_str(var.shape)}")
        var._ag = GradInfo(g, req)


def _collect(heads):
    """Nodes reachable from ``heads`` in reverse topological order (heads first)."""
    order, seen = [], set()
    for h in heads:
        entry = h._ag
        if entry is None or type(entry) is GradInfo:
            continue
        stack = [(entry[0], False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for x in node.inputs:
                e = x._ag
                if e is not None and type(e) is not GradInfo and id(e[0]) not in seen:
                    stack.append((e[0], False))
    order.reverse()
    return order


def _key(x):
    entry = x._ag
    return ("v", id(x)) if type(entry) is GradInfo else (id(entry[0]), entry[1])


def _head_gradients(heads, head_grads):
    """Check the heads and their gradients (default ones); return (heads, gradients)."""
    from .ndarray.creation import ones
    from .ndarray.ndarray import NDArray
    if not isinstance(heads, (list, tuple)):
        heads = [heads]
    if head_grads is not None and not isinstance(head_grads, (list, tuple)):
        head_grads = [head_grads]
    if head_grads is not None and len(head_grads) != len(heads):
        raise ValueError(f"backward got {len(heads)} heads but {len(head_grads)} head gradients")
    out = []
    for i, h in enumerate(heads):
        if not isinstance(h, NDArray):
            raise TypeError(f"head {i} is a {type(h).__name__}, expected an NDArray")
        if not _wants_grad(h):
            raise HybridNetError(
                f"cannot differentiate head {i} (shape {shape_str(h.shape)}): it is not part of a "
                f"recorded graph. Compute it inside autograd.record() from arrays marked with "
                f"attach_grad(); to run backward twice on one graph, pass retain_graph=True to "
                f"the first backward")
        hg = None if head_grads is None else head_grads[i]
        if hg is None:
            entry = h._ag
            if type(entry) is not GradInfo and entry[0].op is not None and entry[0].op.is_loss:
                # a loss head ignores its head gradient: a read-only all-ones view instead of
                # a full array of ones (80 MB on the LSTM workload's softmax head)
                xp = h._ctx.xp
                hg = NDArray(xp.broadcast_to(xp.ones(1, h._data.dtype), h.shape), h._ctx)
            else:
                hg = ones(h.shape, h._ctx, h._data.dtype)
        elif not isinstance(hg, NDArray):
            raise TypeError(f"head gradient {i} is a {type(hg).__name__}, expected an NDArray")
        elif hg.shape != h.shape:
            raise ShapeError("backward", f"head gradient {i} has shape {shape_str(hg.shape)}, "
                                         f"expected {shape_str(h.shape)} like its head")
        else:
            # MXNet fails on a dtype mismatch deep in a kernel; converting is what was meant
            if hg._ctx != h._ctx:
                hg = hg.as_in_context(h._ctx)
            if hg._data.dtype != h._data.dtype:
                hg = hg.astype(h._data.dtype)
        out.append(hg)
    return heads, out


def _empty(xp, shape, dtype):
    """An uninitialized gradient buffer (recycled when large, on the CPU: engine/storage.py)."""
    if xp is np:
        from .engine.storage import empty
        return empty(tuple(shape), dtype)
    return xp.empty(shape, dtype)


def _run_backward(heads, head_grads, retain_graph, train_mode, create_graph=False,
                  into_grads=False):
    """Propagate gradients from ``heads``.

    Returns ({key: gradient NDArray}, {key: variable}) where the variables are every marked
    array the graph reaches -- a variable reached only through zero-gradient operators
    (BlockGrad, samplers) has no entry in the gradients and receives zeros, as in MXNet.
    With ``create_graph`` the gradients are themselves recorded (see ``_recorded_gradients``).
    With ``into_grads`` a variable with grad_req 'write' that gets its gradient from exactly one
    operator input gets it computed straight into its ``.grad`` (which is then the returned
    gradient): no temporary and no copy -- for a 32 MB weight that copy cost ~4 ms a step.
    """
    from .engine import get_engine
    from .ndarray.creation import zeros
    from .ndarray.ndarray import NDArray
    from .ops import resource
    from .ops.registry import ZERO_GRAD

    heads, head_grads = _head_gradients(heads, head_grads)
    nodes = _collect(heads)
    for node in nodes:
        if node.freed:
            raise HybridNetError("the recorded graph was already freed by an earlier backward; "
                                 "pass retain_graph=True to the first backward to run it twice")
    variables: dict = {}
    for h in heads:
        if type(h._ag) is GradInfo:
            variables[("v", id(h))] = h
    for node in nodes:
        for x in node.inputs:
            if type(x._ag) is GradInfo and x._ag.grad_req != "null":
                variables[("v", id(x))] = x
    direct = _single_use_write_variables(heads, nodes) if into_grads and not create_graph \
        else ()
    grads: dict = {}
    engine = get_engine()
    with _scope(create_graph, train_mode):
        for h, hg in zip(heads, head_grads):
            key = _key(h)
            grads[key] = grads[key] + hg if key in grads else hg
        for node in nodes:
            n_out = len(node.out_data)
            out_grads = [grads.pop((id(node), i), None) for i in range(n_out)]
            if all(g is None for g in out_grads):
                continue
            want = [_wants_grad(x) for x in node.inputs]
            if not any(want):
                continue
            op = node.op
            if op.backward is None:
                raise HybridNetError(f"operator {op.name} is not differentiable; use "
                                     f"stop_gradient (BlockGrad) on its output or input")
            if op.backward is ZERO_GRAD:
                continue
            n_visible = len(op.output_names(node.p))
            for i in range(n_visible):
                if out_grads[i] is None:
                    out_grads[i] = zeros(node.out_data[i].shape, node.ctx, node.out_data[i].dtype)
            in_grads = _recorded_gradients(node, out_grads[:n_visible], want) \
                if create_graph else None
            if in_grads is None:
                # 'write' backward fills every element: no need to zero the buffers first
                in_grads = [None if not w else x._ag.grad if id(x) in direct else
                            NDArray(_empty(x._ctx.xp, x.shape, x._data.dtype), x._ctx)
                            for x, w in zip(node.inputs, want)]
                if node.function is not None:
                    node.function._backward_into(out_grads[:n_visible], in_grads)
                else:
                    _push_node_backward(engine, resource, node, out_grads, in_grads, want)
                if create_graph:
                    _record_opaque_gradients(node, out_grads, in_grads)
            for x, g in zip(node.inputs, in_grads):
                if g is not None:
                    key = _key(x)
                    grads[key] = grads[key] + g if key in grads else g
    if not retain_graph:
        for node in nodes:
            node.freed = True
            node.inputs, node.aux, node.out_data = [], [], []
    return grads, variables


def _single_use_write_variables(heads, nodes) -> set:
    """ids of the variables (grad_req 'write') that are an input of exactly one recorded
    operator input slot and not a head: their gradient is that one slot's, never a sum."""
    uses: dict = {}
    for node in nodes:
        for x in node.inputs:
            if type(x._ag) is GradInfo and x._ag.grad_req == "write":
                uses[id(x)] = uses.get(id(x), 0) + 1
    for h in heads:
        uses.pop(id(h), None)
    return {k for k, n in uses.items() if n == 1}


def _recorded_gradients(node, out_grads, want):
    """``create_graph``: a node's input gradients computed by recorded operator calls (the
    operator's ``grad_graph``, or an ``autograd.Function``'s own backward), so that they can be
    differentiated again; None when the operator has no such form (for these parameters)."""
    import numpy as np

    from . import ndarray as nd
    from .ndarray.ndarray import NDArray
    if node.function is not None:
        result = node.function.backward(*out_grads)
    elif node.op.grad_graph is None:
        return None
    else:
        outputs = []
        for i, (data, var) in enumerate(zip(node.out_data, node.out_vars)):
            out = NDArray(data, node.ctx, var)
            out._ag = (node, i)          # gradients may flow through the outputs too (sigmoid)
            outputs.append(out)
        with np.errstate(divide="ignore", invalid="ignore"):
            result = node.op.grad_graph(nd, node.p, out_grads, node.inputs, outputs)
        if result is None:
            return None
    result = [result] if isinstance(result, NDArray) else list(result)
    if len(result) != len(node.inputs):
        raise HybridNetError(f"{node.op.name}: the recorded gradient gave {len(result)} "
                             f"gradients for {len(node.inputs)} inputs")
    return [g if w else None for g, w in zip(result, want)]


class _OpaqueGradient:
    """Stands in for the backward of an operator without ``grad_graph`` on a ``create_graph``
    tape: its gradients are right, differentiating them again is an error (as in MXNet)."""
    is_loss, random, backward = False, False, None

    def __init__(self, op_name):
        self.name = f"_backward_{op_name}"


class _ConstantGradient:
    """Ties a ``create_graph`` gradient that does not depend on its variable (d(3x)/dx) to that
    variable, so differentiating it again gives zeros as in MXNet instead of an error."""
    is_loss, random, name = False, False, "_constant_gradient"
    from .ops.registry import ZERO_GRAD as backward


def _record_opaque_gradients(node, out_grads, in_grads):
    sources = [g for g in out_grads if g is not None] + list(node.inputs)
    outputs = [g for g in in_grads if g is not None]
    if outputs and any(_wants_grad(x) for x in sources):
        stub = Node(_OpaqueGradient(node.op.name), None, sources, [], outputs, node.is_train)
        for i, g in enumerate(outputs):
            g._ag = (stub, i)


def _push_node_backward(engine, resource, node, out_grads, in_grads, want):
    from .ndarray.invoke import inline_limit
    op, p = node.op, node.p
    octx = resource.op_context(node.ctx)
    og = [g._data if g is not None else None for g in out_grads]
    ins = [x._data for x in node.inputs]
    aux = [x._data for x in node.aux]
    outs = node.out_data
    ig = [g._data if g is not None else None for g in in_grads]
    req = ["write" if w else "null" for w in want]
    backward = op.backward

    def run():
        backward(octx, p, og, ins, outs, aux, ig, req)
    reads = [g._var for g in out_grads if g is not None] + [x._var for x in node.inputs]
    reads += node.out_vars + [x._var for x in node.aux]
    writes = [g._var for g in in_grads if g is not None]
    if op.random:
        writes.append(resource.rng_var(node.ctx))
    # like eager forward calls: small backward work runs in this thread when its inputs are ready
    inline = sum(g.size for g in in_grads if g is not None) <= inline_limit()
    engine.push(run, reads, writes, node.ctx, "normal", 0, f"_backward_{op.name}", inline)


def backward(heads, head_grads=None, retain_graph: bool = False, train_mode: bool = True) -> None:
    """Compute the gradients of ``heads`` w.r.t. every array marked by ``attach_grad``.

    Args:
        heads: an NDArray or a list of them (recorded under ``autograd.record()``).
        head_grads: gradients of the heads (default ones), same shapes as the heads.
        retain_graph: keep the tape so backward can run again.
        train_mode: run the operators' backward in training mode.
    """
    grads, variables = _run_backward(heads, head_grads, retain_graph, train_mode,
                                     into_grads=True)
    if not variables:
        raise HybridNetError("backward: no array in the recorded graph requires a gradient "
                             "(all were marked with grad_req='null')")
    with _scope(False, None):
        for key, x in variables.items():
            g, info = grads.get(key), x._ag
            if info.grad_req == "add":
                if g is not None:
                    info.grad += g
            elif g is None:
                info.grad[:] = 0          # reached only through zero-gradient operators
            elif g is not info.grad:      # not already computed in place
                g.copyto(info.grad)


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph: bool = False,
         train_mode: bool = True):
    """Gradients of ``heads`` w.r.t. ``variables``, returned as new arrays (``.grad`` untouched).

    ``create_graph=True`` records the gradient computation itself, so the returned gradients
    can be differentiated again (``retain_graph`` then defaults to True). That works through
    operators whose gradient is written as operator calls (``grad_graph`` in the registry:
    elementwise math, arithmetic with arrays and scalars, sum/mean/max/min/norm, reshaping,
    transpose, slicing, dot, FullyConnected, Activation, ``autograd.Function``);
    differentiating again through any other operator's gradient raises an error naming
    ``_backward_<op>``, as MXNet does.

    Example (a second derivative)::

        x = mx.nd.array([0.5, 1.0]); x.attach_grad()
        with mx.autograd.record():
            dy = mx.autograd.grad(mx.nd.sin(x), [x], create_graph=True)[0]   # cos(x)
        dy.backward()
        x.grad                                                               # -sin(x)
    """
    from .ndarray.creation import zeros
    from .ndarray.ndarray import NDArray
    if isinstance(variables, NDArray):
        variables = [variables]
    for i, v in enumerate(variables):
        if type(v._ag) is not GradInfo or v._ag.grad_req == "null":
            raise HybridNetError(f"variable {i} is not marked for gradients; call attach_grad() "
                                 f"on it before recording")
    if retain_graph is None:
        retain_graph = create_graph
    grads, _ = _run_backward(heads, head_grads, retain_graph, train_mode, create_graph)
    out = []
    for v in variables:
        g = grads.get(("v", id(v)))
        if g is None:
            g = zeros(v.shape, v._ctx, v._data.dtype)
        elif not create_graph or not _wants_grad(g):
            g = g.copy()
        if create_graph and not _wants_grad(g):
            g._ag = (Node(_ConstantGradient, None, [v], [], [g], train_mode), 0)
        out.append(g)
    return out


def get_symbol(x):
    """The recorded computation that produced ``x``, as a Symbol."""
    if x._ag is None or type(x._ag) is GradInfo:
        raise HybridNetError("get_symbol needs an array computed under autograd.record()")
    from .symbol.from_tape import tape_to_symbol
    return tape_to_symbol(x)


class Function:
    """A differentiable function with a hand-written backward (MXNet's ``autograd.Function``).

    Subclass it, define ``forward(self, *inputs)`` and ``backward(self, *output_grads)`` on
    NDArrays, and call an instance like a function. ``save_for_backward`` keeps arrays for
    backward in ``self.saved_tensors``.
    """

    def __init__(self):
        self.saved_tensors = ()
        self._used = False

    def save_for_backward(self, *args):
        self.saved_tensors = args

    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, *output_grads):
        raise NotImplementedError

    def __call__(self, *inputs):
        from .ndarray.ndarray import NDArray
        if self._used:
            raise HybridNetError("each autograd.Function instance can be called only once; "
                                 "create a new instance per call")
        self._used = True
        with pause(is_training()):
            outputs = self.forward(*inputs)
        single = isinstance(outputs, NDArray)
        outs = [outputs] if single else list(outputs)
        if is_recording():
            # an output that is an input (or already recorded) gets a fresh alias of its memory
            outs = [o if o._ag is None else o.detach() for o in outs]
            _record(_FunctionOp(type(self).__name__, len(outs)), None, list(inputs), [], outs,
                    is_training(), function=self)
        if single:
            return outs[0]
        return tuple(outs) if isinstance(outputs, tuple) else outs

    def _backward_into(self, out_grads, in_grads):
        with pause(is_training()):
            result = self.backward(*out_grads)
        from .ndarray.ndarray import NDArray
        result = [result] if isinstance(result, NDArray) else list(result)
        if len(result) != len(in_grads):
            raise HybridNetError(f"{type(self).__name__}.backward returned {len(result)} "
                                 f"gradients for {len(in_grads)} inputs")
        for dst, src in zip(in_grads, result):
            if dst is not None:
                if src.shape != dst.shape:
                    raise ShapeError(type(self).__name__, f"backward returned a gradient of "
                                     f"shape {shape_str(src.shape)} for an input of shape "
                                     f"{shape_str(dst.shape)}")
                src.copyto(dst)


class _FunctionOp:
    """Stands in for an OpDef on the tape for an ``autograd.Function`` call."""
    is_loss, random = False, False
    backward = True

    def __init__(self, name, n_out):
        self.name, self._n = name, n_out

    def output_names(self, p):
        return [f"output{i}" for i in range(self._n)]
