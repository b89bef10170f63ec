"""``RNN``: MXNet's fused multi-layer recurrent operator (rnn_relu, rnn_tanh, lstm, gru).

Inputs ``data`` (T, N, C) in TNC layout, ``parameters`` (one flat vector, MXNet's packing),
``state`` (L*D, N, H) and, for LSTM, ``state_cell`` (L*D, N, H) -- L layers, D = 2 directions
when bidirectional. Outputs ``output`` (T, N, D*H) and, with ``state_outputs``, the final hidden
state (and cell state) of every layer and direction, in the order of ``state``.

The parameter vector holds, for every layer and direction (layer-major, forward direction
first), the input-to-hidden weight (G*H, C_in) then the hidden-to-hidden weight (G*H, H); then,
in the same order, the i2h and h2h biases (G*H,) -- G the gate count (4 LSTM: i, f, c, o; 3 GRU:
r, z, n; 1 otherwise) and C_in = C for the first layer, D*H above it. ``rnn_param_groups`` is
that layout, shared with ``mx.init.FusedRNN``.

How it runs (per layer and direction): one GEMM projects a chunk of time steps' input rows at
once into the gate buffer (the whole sequence, unless the layers are pipelined); each step does
one GEMM ``h_prev @ W_h2h.T`` into a preallocated buffer and one fused gate kernel
(hybridnet/ops/kernels/rnn.py) that writes h straight into the output -- nothing is allocated
per step. The activated gates (and LSTM cells and their tanh, GRU's recurrent n part) stay in a
hidden workspace output for backward, which runs the steps in reverse with the same per-step
pattern and then forms every weight gradient with one GEMM over all steps. ``p`` drops layer
outputs between layers in training (inverted dropout, the device's seeded generator).

Threads: BLAS runs single-threaded inside the operator (small dependent products), and the
operator uses the cores itself -- a unidirectional stack as a pipeline of layers (layer l + 1
starts a chunk as soon as layer l has finished it), the two directions of a bidirectional layer
side by side. Results do not depend on thread timing.

MXNet 1.9.1 differences: ``projection_size`` and ``use_sequence_length`` raise ParamError
(MXNet's CPU operator fails on the first and ignores the lengths of the second); LSTM state
clipping is applied (MXNet's CPU operator accepts and ignores it; cuDNN clips).
"""
from __future__ import annotations

import threading
from contextlib import nullcontext

import numpy as np

from ...base import DTypeError, ParamError, ShapeError, shape_str
from ...engine.blas import single_threaded_blas
from ..kernels import rnn as kernels
from ..params import Param
from ..registry import OpDef, assign, register

__all__ = ["rnn_param_groups", "rnn_param_size", "RNN_GATES"]

# gate names in MXNet's order (their count G is the row-block count of every weight)
RNN_GATES = {"rnn_relu": ("",), "rnn_tanh": ("",), "lstm": ("i", "f", "c", "o"),
             "gru": ("r", "z", "o")}


def rnn_param_groups(mode: str, input_size: int, state_size: int, num_layers: int,
                     bidirectional: bool) -> list:
    """MXNet's packing of a fused RNN parameter vector: ``[(layer, direction, 'i2h'|'h2h',
    'weight'|'bias', offset, shape)]`` with direction 'l' (forward) or 'r' (backward); a
    weight's shape is (G*H, columns), its G row blocks the gates in ``RNN_GATES`` order."""
    gh, h = len(RNN_GATES[mode]) * state_size, state_size
    dirs = ("l", "r") if bidirectional else ("l",)
    groups, offset = [], 0
    for kind in ("weight", "bias"):
        for layer in range(num_layers):
            cols = input_size if layer == 0 else len(dirs) * h
            for d in dirs:
                for group, width in (("i2h", cols), ("h2h", h)):
                    shape = (gh, width) if kind == "weight" else (gh,)
                    groups.append((layer, d, group, kind, offset, shape))
                    offset += int(np.prod(shape))
    return groups


def rnn_param_size(mode: str, input_size: int, state_size: int, num_layers: int,
                   bidirectional: bool) -> int:
    """Length of the parameter vector: D*G*H*(C + H + 2) for the first layer plus
    D*G*H*(D*H + H + 2) for each layer above it."""
    d, gh = 2 if bidirectional else 1, len(RNN_GATES[mode]) * state_size
    return d * gh * (input_size + state_size + 2) + \
        (num_layers - 1) * d * gh * (d * state_size + state_size + 2)


# ---- parameters and shapes ----------------------------------------------------------------------
def _check_params(p) -> None:
    if p.state_size <= 0:
        raise ParamError(f"RNN: state_size={p.state_size} must be positive")
    if p.num_layers <= 0:
        raise ParamError(f"RNN: num_layers={p.num_layers} must be positive")
    if not 0.0 <= p.p < 1.0:
        raise ParamError(f"RNN: parameter 'p' got {p.p!r}: expected a dropout probability in "
                         f"[0, 1)")
    if p.projection_size is not None:
        raise ParamError("RNN: projection_size is not supported (LSTM with projection); leave "
                         "it unset")
    if p.use_sequence_length:
        raise ParamError("RNN: use_sequence_length=True is not supported (MXNet 1.9.1 accepts "
                         "it on CPU but ignores the lengths); mask padded steps with "
                         "SequenceMask / SequenceLast instead")
    clip = (p.lstm_state_clip_min, p.lstm_state_clip_max)
    if (clip[0] is None) != (clip[1] is None):
        raise ParamError(f"RNN: lstm_state_clip_min={clip[0]} and lstm_state_clip_max={clip[1]} "
                         f"must be set together")
    if clip[0] is not None:
        if p.mode != "lstm":
            raise ParamError(f"RNN: lstm_state_clip_min/max apply to mode='lstm', not "
                             f"mode={p.mode!r}")
        if not clip[0] <= clip[1]:
            raise ParamError(f"RNN: lstm_state_clip_min={clip[0]} is above "
                             f"lstm_state_clip_max={clip[1]}")


def _input_names(p):
    return ["data", "parameters", "state"] + (["state_cell"] if p.mode == "lstm" else [])


def _output_names(p):
    if not p.state_outputs:
        return ["output"]
    return ["output", "state_output"] + (["statecell_output"] if p.mode == "lstm" else [])


def _dims(p):
    return (2 if p.bidirectional else 1), len(RNN_GATES[p.mode]), p.state_size


# per-step values backward needs besides the gates, (T, N, H) each
_EXTRA = {"lstm": ("cell", "tanh_cell"), "gru": ("hn",)}


def _workspace(p, seq_len: int, batch: int, flat=None):
    """Carve the hidden workspace (a flat vector) into named views, or just count its size
    when ``flat`` is None. Per layer and direction: the gates (T, N, G*H), and (T, N, H) each:
    for LSTM the cells and their tanh, for GRU ``W_hn h + b_hn``; per layer below the top: its
    output (T, N, D*H), and with dropout the mask and the dropped output the next layer reads."""
    d_, g_, h_ = _dims(p)
    tn, offset, views = seq_len * batch, 0, {}

    def take(key, cols):
        nonlocal offset
        if flat is not None:
            views[key] = flat[offset:offset + tn * cols].reshape(seq_len, batch, cols)
        offset += tn * cols
    for layer in range(p.num_layers):
        for d in range(d_):
            take(("gates", layer, d), g_ * h_)
            for key in _EXTRA.get(p.mode, ()):
                take((key, layer, d), h_)
        if layer < p.num_layers - 1:
            take(("y", layer), d_ * h_)
            if p.p > 0:
                take(("mask", layer), d_ * h_)
                take(("dropped", layer), d_ * h_)
    return offset if flat is None else views


def _infer_shape(p, in_shapes):
    _check_params(p)
    d_, _, h_ = _dims(p)
    data, params = in_shapes[0], in_shapes[1]
    if data is not None and len(data) != 3:
        raise ShapeError("RNN", f"data has shape {shape_str(data)}, expected 3 axes "
                                f"(sequence, batch, features) in layout TNC")
    seq_len, batch, feat = data if data is not None else (0, 0, 0)
    size = rnn_param_size(p.mode, feat, h_, p.num_layers, p.bidirectional) if feat else 0
    if params is not None and size and (len(params) != 1 or params[0] not in (0, size)):
        raise ShapeError("RNN", f"parameters has shape {shape_str(params)}, expected ({size},): "
                                f"{_size_formula(p, feat)}")
    names = _input_names(p)
    for name, given in zip(names[2:], in_shapes[2:]):
        if given is None:
            continue
        if len(given) != 3 or given[0] != p.num_layers * d_ or given[2] != h_ or \
                (batch and given[1] not in (0, batch)):
            raise ShapeError("RNN", f"{name} has shape {shape_str(given)}, expected "
                                    f"{shape_str((p.num_layers * d_, batch, h_))} (num_layers * "
                                    f"directions, batch, state_size)")
        batch = batch or given[1]
    state_shape = (p.num_layers * d_, batch, h_)
    ins = [data, (size,) if size else params] + [state_shape] * (len(names) - 2)
    known = bool(seq_len and batch and feat)
    outs = [(seq_len, batch, d_ * h_) if known else None]
    outs += [state_shape if batch else None] * (len(_output_names(p)) - 1)
    outs.append((_workspace(p, seq_len, batch),) if known else None)
    return ins, outs, []


def _size_formula(p, feat: int) -> str:
    d_, g_, h_ = _dims(p)
    first = f"{d_}*{g_}*{h_}*({feat}+{h_}+2)"
    rest = (f" + {p.num_layers - 1}*{d_}*{g_}*{h_}*({d_}*{h_}+{h_}+2)"
            if p.num_layers > 1 else "")
    return (f"directions*gates*state_size*(input_size+state_size+2) for the first layer"
            + (" plus directions*gates*state_size*(directions*state_size+state_size+2) for each "
               "of the others" if p.num_layers > 1 else "")
            + f" = {first}{rest} for mode={p.mode!r}, input_size={feat}, state_size={h_}, "
              f"num_layers={p.num_layers}, bidirectional={p.bidirectional}")


def _infer_type(p, in_types):
    names = _input_names(p)
    known = next((t for t in in_types if t is not None), None)
    for name, t in zip(names, in_types):
        if t is not None and np.dtype(t) != np.dtype(known):
            raise DTypeError(f"RNN: {name} has dtype {np.dtype(t).name}, expected "
                             f"{np.dtype(known).name} like the other inputs")
    return [known] * len(names), [known] * (len(_output_names(p)) + 1), []


# ---- the weights of one layer and direction -----------------------------------------------------
def _layer_params(p, flat, feat: int):
    """{(layer, d): (W_i2h, W_h2h, b_i2h, b_h2h)} as views of the flat vector (or its gradient)."""
    out: dict = {}
    for layer, d, group, kind, offset, shape in rnn_param_groups(
            p.mode, feat, p.state_size, p.num_layers, p.bidirectional):
        piece = flat[offset:offset + int(np.prod(shape))].reshape(shape)
        slot = (0 if group == "i2h" else 1) + (0 if kind == "weight" else 2)
        out.setdefault((layer, 0 if d == "l" else 1), [None] * 4)[slot] = piece
    return out


def _sequential_products(xp):
    # chains of small products, each waiting for the last: one BLAS thread per chain is faster
    # (the pipeline below runs the layers' chains side by side)
    return single_threaded_blas() if xp is np else nullcontext()


def _clip(p):
    return None if p.lstm_state_clip_min is None else (p.lstm_state_clip_min,
                                                       p.lstm_state_clip_max)


# ---- scheduling: layers as a pipeline ------------------------------------------------------------
# rows of one chunk's input projection: big enough for an efficient GEMM, small enough that the
# next layer starts early
_CHUNK_ROWS = 256


class _Pipeline:
    """The time axis in chunks, and the hand-off of finished chunks between layers.

    A unidirectional stack runs one thread per layer: layer l + 1 works on chunk k as soon as
    layer l has finished it (in backward, layer l on chunk k once layer l + 1 has sent its
    input gradient), so two layers keep two cores busy with single-threaded BLAS products.
    Bidirectional layers need the whole sequence of the layer below (their two directions run
    side by side instead, see ``_directions``), and a single layer has no partner: those run in
    the calling thread with the whole sequence as one chunk. A failing layer wakes every
    waiter, and the first error is raised in the calling thread.
    """

    def __init__(self, xp, p, seq_len: int, batch: int):
        d_, _, _ = _dims(p)
        steps = max(1, _CHUNK_ROWS // max(batch, 1))
        self.threaded = xp is np and d_ == 1 and p.num_layers > 1 and steps < seq_len
        if not self.threaded:
            steps = seq_len
        self.chunks = [(t, min(t + steps, seq_len)) for t in range(0, seq_len, steps)]
        self._ready = [[threading.Event() for _ in self.chunks] for _ in range(p.num_layers)] \
            if self.threaded else None
        self._error = False

    def order(self, d: int, backward: bool = False):
        """(index, (t0, t1)) of the chunks in the order direction ``d`` meets them."""
        indexed = list(enumerate(self.chunks))
        return indexed if (d == 0) != backward else indexed[::-1]

    def wait(self, layer: int, chunk: int) -> None:
        """Block until ``layer`` has finished ``chunk`` (no-op when not threaded)."""
        if self._ready is not None:
            self._ready[layer][chunk].wait()
            if self._error:
                raise _Aborted()

    def done(self, layer: int, chunk: int) -> None:
        if self._ready is not None:
            self._ready[layer][chunk].set()

    def run(self, task, layers) -> None:
        """``task(layer)`` for ``layers`` in order: one thread each when threaded."""
        if not self.threaded:
            for layer in layers:
                task(layer)
            return

        def wake_all():
            self._error = True
            for events in self._ready:
                for event in events:
                    event.set()
        _in_threads([lambda layer=layer: task(layer) for layer in layers],
                    [f"RNN layer {layer}" for layer in layers], on_error=wake_all)


class _Aborted(Exception):
    """Another layer of the pipeline failed; its error is the one raised."""


def _in_threads(tasks, names, on_error=None) -> None:
    """Run ``tasks[0]`` here and the others in threads of their own; after all have ended,
    raise the first error any of them raised (``on_error`` runs at once, to wake waiters)."""
    errors: list = []

    def guarded(task):
        try:
            task()
        except _Aborted:
            pass
        except BaseException as err:
            errors.append(err)
            if on_error is not None:
                on_error()
    threads = [threading.Thread(target=guarded, args=(task,), daemon=True, name=name)
               for task, name in zip(tasks[1:], names[1:])]
    for thread in threads:
        thread.start()
    guarded(tasks[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _directions(xp, p, task) -> None:
    """``task(d)`` for each direction: side by side in two threads when bidirectional (they
    share nothing but read-only inputs and disjoint halves of the outputs)."""
    if not p.bidirectional:
        task(0)
    elif xp is np:
        _in_threads([lambda: task(0), lambda: task(1)], ["RNN direction 0", "RNN direction 1"])
    else:
        task(0)
        task(1)


def _time_steps(t0: int, t1: int, d: int, backward: bool = False):
    """The steps of chunk [t0, t1) in the order direction ``d`` runs them."""
    return range(t0, t1) if (d == 0) != backward else range(t1 - 1, t0 - 1, -1)


# ---- forward ------------------------------------------------------------------------------------
def _forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x = ctx.xp, inputs[0]
    d_, g_, h_ = _dims(p)
    seq_len, batch, feat = x.shape
    weights = _layer_params(p, inputs[1], feat)
    work = _workspace(p, seq_len, batch, outputs[-1])
    if p.p > 0:         # every mask drawn here, in a fixed order, before any thread starts
        for layer in range(p.num_layers - 1):
            if is_train:
                _draw_mask(ctx, p.p, work[("mask", layer)])
            else:
                work[("mask", layer)].fill(1)
    plan = _Pipeline(xp, p, seq_len, batch)

    def layer_task(layer):
        top = layer == p.num_layers - 1
        y = outputs[0] if top else work[("y", layer)]
        layer_in = x if layer == 0 else _layer_input(p, work, layer - 1)

        def direction(d):
            s = layer * d_ + d
            c0 = inputs[3][s] if p.mode == "lstm" else None
            _run_direction(xp, p, layer_in, weights[(layer, d)], inputs[2][s], c0, work, layer,
                           d, y, plan)
            if p.state_outputs:
                last = seq_len - 1 if d == 0 else 0
                outputs[1][s] = y[last, :, d * h_:(d + 1) * h_]
                if p.mode == "lstm":
                    outputs[2][s] = work[("cell", layer, d)][last]
        _directions(xp, p, direction)
        if not plan.threaded:
            for k in range(len(plan.chunks)):
                plan.done(layer, k)
    with _sequential_products(xp):
        plan.run(layer_task, list(range(p.num_layers)))


def _layer_input(p, work, below: int):
    """What layer ``below + 1`` reads: the output of the layer below, dropped out if p > 0."""
    return work[("dropped", below)] if p.p > 0 else work[("y", below)]


def _draw_mask(ctx, prob: float, mask) -> None:
    # MXNet's p and scale are float32, as in the Dropout operator
    keep = ctx.rng.random(mask.shape, dtype=np.float64 if mask.dtype == np.float64
                          else np.float32) >= prob
    one = np.float32(1)
    ctx.xp.multiply(keep, mask.dtype.type(one / (one - np.float32(prob))), out=mask)


def _run_direction(xp, p, x, w, h0, c0, work, layer, d, y, plan):
    w_x, w_h, b_x, b_h = w
    seq_len, batch, feat = x.shape
    h_ = p.state_size
    gates = work[("gates", layer, d)]
    hh = xp.empty((batch, gates.shape[2]), x.dtype)
    # BLAS runs the untransposed products faster; the copies are small next to the products
    w_xt, w_ht = xp.ascontiguousarray(w_x.T), xp.ascontiguousarray(w_h.T)
    hs = slice(d * h_, (d + 1) * h_)
    bias = b_x + b_h if p.mode != "gru" else None
    clip = _clip(p)
    dropout = p.p > 0 and layer < p.num_layers - 1
    h_prev, c_prev = h0, c0
    for k, (t0, t1) in plan.order(d):
        if layer > 0:
            plan.wait(layer - 1, k)
        xp.matmul(x[t0:t1].reshape(-1, feat), w_xt, out=gates[t0:t1].reshape(-1, gates.shape[2]))
        for t in _time_steps(t0, t1, d):
            xp.matmul(h_prev, w_ht, out=hh)
            h_out = y[t, :, hs]
            if p.mode == "lstm":
                cells = work[("cell", layer, d)]
                kernels.lstm_forward_step(xp, gates[t], hh, bias, c_prev, cells[t],
                                          work[("tanh_cell", layer, d)][t], h_out, clip,
                                          p.lstm_state_clip_nan)
                c_prev = cells[t]
            elif p.mode == "gru":
                kernels.gru_forward_step(xp, gates[t], hh, b_x, b_h, h_prev,
                                         work[("hn", layer, d)][t], h_out)
            else:
                kernels.vanilla_forward_step(xp, gates[t], hh, bias, h_out, p.mode == "rnn_relu")
            h_prev = h_out
        if dropout:
            xp.multiply(y[t0:t1, :, hs], work[("mask", layer)][t0:t1, :, hs],
                        out=work[("dropped", layer)][t0:t1, :, hs])
        if plan.threaded:
            plan.done(layer, k)


# ---- backward -----------------------------------------------------------------------------------
def _backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x = ctx.xp, inputs[0]
    d_, g_, h_ = _dims(p)
    seq_len, batch, feat = x.shape
    weights = _layer_params(p, inputs[1], feat)
    work = _workspace(p, seq_len, batch, outputs[-1])
    n_states = len(_input_names(p)) - 2
    # head gradients of the final states (None: nobody differentiates them)
    d_final = [out_grads[1 + k] if p.state_outputs else None for k in range(n_states)]
    dparams = None
    if req[1] != "null":
        dparams = in_grads[1] if req[1] == "write" and in_grads[1].flags.c_contiguous \
            else xp.empty(inputs[1].shape, inputs[1].dtype)
    grads = _layer_params(p, dparams, feat) if dparams is not None else {}
    dstate = [xp.zeros(inputs[2 + k].shape, x.dtype) if req[2 + k] != "null" else None
              for k in range(n_states)]
    # the gradient of each layer's output: the head's for the top, the input gradient of the
    # layer above (times its dropout mask) for the others
    out_shape = (seq_len, batch, d_ * h_)
    dys = [xp.empty(out_shape, x.dtype) for _ in range(p.num_layers - 1)]
    dys.append(out_grads[0] if out_grads[0] is not None else xp.zeros(out_shape, x.dtype))
    dx0 = None
    if req[0] != "null":
        dx0 = in_grads[0] if req[0] == "write" and in_grads[0].flags.c_contiguous \
            else xp.empty(x.shape, x.dtype)
    plan = _Pipeline(xp, p, seq_len, batch)

    def layer_task(layer):
        y = outputs[0] if layer == p.num_layers - 1 else work[("y", layer)]
        layer_in = x if layer == 0 else _layer_input(p, work, layer - 1)
        dx = dys[layer - 1] if layer > 0 else dx0
        # the backward direction's share of the input gradient, added once both are done
        dx_r = xp.empty(dx.shape, x.dtype) if dx is not None and p.bidirectional else None

        def direction(d):
            s = layer * d_ + d
            c0 = inputs[3][s] if p.mode == "lstm" else None
            dh0, dc0 = _backprop_direction(
                xp, p, layer_in, y, dys[layer], weights[(layer, d)], grads.get((layer, d)),
                inputs[2][s], c0, [None if g is None else g[s] for g in d_final], work, layer,
                d, dx if d == 0 else dx_r, dstate[0] is not None, plan)
            for k, src in enumerate((dh0, dc0)[:n_states]):
                if dstate[k] is not None:
                    dstate[k][s] = src
        _directions(xp, p, direction)
        if dx_r is not None:
            dx += dx_r
        if not plan.threaded:
            for k in range(len(plan.chunks)):
                plan.done(layer, k)
    with _sequential_products(xp):
        plan.run(layer_task, list(range(p.num_layers - 1, -1, -1)))
    if dx0 is not None and dx0 is not in_grads[0]:
        assign(in_grads[0], req[0], dx0)
    if dparams is not None and dparams is not in_grads[1]:
        assign(in_grads[1], req[1], dparams)
    for k in range(n_states):
        if dstate[k] is not None:
            assign(in_grads[2 + k], req[2 + k], dstate[k])


def _backprop_direction(xp, p, x, y, dy, w, dw, h0, c0, finals, work, layer, d, dx, want_dh0,
                        plan):
    """Steps of one layer and direction in reverse; returns (dh0, dc0) and writes this
    direction's input gradient into ``dx`` chunk by chunk (handing each to the layer below),
    then the weight gradients into ``dw``."""
    w_x, w_h, _, _ = w
    seq_len, batch, feat = x.shape
    h_ = p.state_size
    hs = slice(d * h_, (d + 1) * h_)
    gates = work[("gates", layer, d)]
    # GRU's recurrent-product gradient differs from its gates' (the n part is scaled by r)
    dhh = xp.empty(gates.shape, x.dtype) if p.mode == "gru" else gates
    dh_rec = xp.zeros((batch, h_), x.dtype)
    if finals[0] is not None:
        dh_rec[...] = finals[0]
    dc = dh_direct = None
    if p.mode == "lstm":
        dc = xp.zeros((batch, h_), x.dtype)
        if finals[1] is not None:
            dc[...] = finals[1]
    if p.mode == "gru":
        dh_direct = xp.zeros((batch, h_), x.dtype)
    clip = _clip(p)
    mask = work[("mask", layer)] if p.p > 0 and layer < p.num_layers - 1 else None
    first = 0 if d == 0 else seq_len - 1          # the step that reads h0
    for k, (t0, t1) in plan.order(d, backward=True):
        if layer < p.num_layers - 1:
            plan.wait(layer + 1, k)
            if mask is not None:                  # each direction reads its own half of dy
                dy[t0:t1, :, hs] *= mask[t0:t1, :, hs]
        for t in _time_steps(t0, t1, d, backward=True):
            prev = t - 1 if d == 0 else t + 1
            h_prev = h0 if t == first else y[prev, :, hs]
            if p.mode == "lstm":
                cells, tanh_cells = work[("cell", layer, d)], work[("tanh_cell", layer, d)]
                c_prev = c0 if t == first else cells[prev]
                kernels.lstm_backward_step(xp, gates[t], cells[t], tanh_cells[t], c_prev,
                                           dy[t, :, hs], dh_rec, dc, clip)
            elif p.mode == "gru":
                kernels.gru_backward_step(xp, gates[t], work[("hn", layer, d)][t], h_prev,
                                          dy[t, :, hs], dh_rec, dh_direct, dhh[t])
            else:
                kernels.vanilla_backward_step(xp, gates[t], y[t, :, hs], dy[t, :, hs], dh_rec,
                                              p.mode == "rnn_relu")
            if t != first or want_dh0:
                xp.matmul(dhh[t], w_h, out=dh_rec)
        if dx is not None:
            xp.matmul(gates[t0:t1].reshape(-1, gates.shape[2]), w_x,
                      out=dx[t0:t1].reshape(-1, feat))
        if plan.threaded:
            plan.done(layer, k)
    if dw is not None:
        _weight_gradients(xp, x, y, gates, dhh, h0, d, hs, dw)
    dh0 = dh_rec + dh_direct if p.mode == "gru" else dh_rec
    return dh0, dc


def _weight_gradients(xp, x, y, gates, dhh, h0, d, hs, dw) -> None:
    """Every step's weight gradients at once: dW_i2h = dG^T X, dW_h2h = dHH^T H_prev and the
    bias sums, one GEMM (or reduction) each over all T*N rows."""
    dw_x, dw_h, db_x, db_h = dw
    seq_len, batch, feat = x.shape
    tn = seq_len * batch
    g2, hh2 = gates.reshape(tn, -1), dhh.reshape(tn, -1)
    xp.matmul(g2.T, x.reshape(tn, feat), out=dw_x)
    # h_prev of every step but the first is the output of the step before it
    first, rest = (slice(0, 1), slice(1, None)) if d == 0 else \
        (slice(seq_len - 1, None), slice(0, seq_len - 1))
    prev = slice(0, seq_len - 1) if d == 0 else slice(1, None)
    xp.matmul(dhh[rest].reshape(-1, dhh.shape[2]).T, y[prev, :, hs].reshape(-1, hs.stop - hs.start),
              out=dw_h)
    dw_h += dhh[first].reshape(batch, -1).T @ h0
    g2.sum(axis=0, out=db_x)
    hh2.sum(axis=0, out=db_h)


register(OpDef(
    "RNN",
    params=[Param("state_size", "int", doc="number of hidden units H"),
            Param("num_layers", "int", doc="number of stacked layers L"),
            Param("mode", "str", doc="rnn_relu, rnn_tanh, lstm or gru",
                  choices=("rnn_relu", "rnn_tanh", "lstm", "gru")),
            Param("bidirectional", "bool", False, "run each layer in both directions"),
            Param("p", "float", 0.0, "dropout probability between layers (training only)"),
            Param("state_outputs", "bool", False, "also return the final states"),
            Param("projection_size", "int", None, "LSTM projection size (not supported)"),
            Param("lstm_state_clip_min", "float", None, "lower bound of the LSTM cell state"),
            Param("lstm_state_clip_max", "float", None, "upper bound of the LSTM cell state"),
            Param("lstm_state_clip_nan", "bool", False, "clip NaN cell states to the lower "
                                                        "bound instead of propagating them"),
            Param("use_sequence_length", "bool", False, "per-sequence lengths (not supported)")],
    inputs=_input_names, outputs=_output_names,
    num_outputs=lambda p: len(_output_names(p)) + 1,
    infer_shape=_infer_shape, infer_type=_infer_type, forward=_forward, backward=_backward,
    random=True,
    doc="RNN(data, parameters, state, state_cell=None, state_size, num_layers, mode, "
        "bidirectional=False, p=0, state_outputs=False): MXNet's fused recurrent layer stack.\n\n"
        "data (T, N, C), parameters (flat, MXNet's layout), state (and state_cell for lstm) "
        "(L*D, N, H) give output (T, N, D*H) and, with state_outputs, the final states.\n\n"
        "Example: mx.nd.RNN(x, params, h0, c0, state_size=256, num_layers=2, mode='lstm')"))
