"""The eager path: run one registry operator on NDArrays through the engine.

Shapes and dtypes are inferred here, synchronously, so results have them at once; the kernel
itself is pushed to the engine and runs when its inputs are ready (inline when they already are
and the arrays are small). Under ``autograd.record()`` the call is also put on the tape.

Inference and bookkeeping for a given (operator, parameters, input shapes and dtypes, device)
are done once and kept as a ``_Plan``: an eager op in a loop pays only for allocating its
outputs and pushing its kernel.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .. import autograd, config
from ..engine import engine as _engine_mod
from ..base import HybridNetError, ShapeError, shape_str
from ..context import Context, current_context
from ..engine import get_engine
from ..engine.storage import _MIN_BYTES as _POOL_MIN_BYTES
from ..engine.storage import empty as _pooled_empty
from ..ops import resource
from ..ops.registry import OpDef, Params, list_ops

__all__ = ["invoke", "inline_limit"]

_inline = [config.get("HYBRIDNET_ENGINE_INLINE_SIZE")]
_PLAN_CACHE_MAX = 8192
_NO_AUX: list = []          # shared by every call without aux states; kernels never modify it


def inline_limit(size: int | None = None) -> int:
    """Get (or set) the output size up to which ready eager ops run in the calling thread."""
    if size is not None:
        _inline[0] = int(size)
        for op in list_ops().values():
            op._eager_plans.clear()
    return _inline[0]


class _Plan:
    """Everything about one eager call that does not depend on the values."""
    __slots__ = ("ctx", "xp", "octx", "out_specs", "n_visible", "n_aux", "inline", "rng_var",
                 "forward", "name", "mutates_aux", "simple", "empty")

    def __init__(self, op: OpDef, p: Params, inputs: list, ctx: Context):
        n_aux = len(op.aux_names(p))
        args = inputs[:len(inputs) - n_aux]
        aux = inputs[len(inputs) - n_aux:]
        _, out_shapes, aux_shapes = op.infer_shape(p, [x._data.shape for x in args])
        _, out_types, _ = op.infer_type(p, [x._data.dtype for x in args])
        for name, x, s in zip(op.aux_names(p), aux, aux_shapes):
            if x.shape != tuple(s):
                raise ShapeError(op.name, f"aux state {name} has shape {shape_str(x.shape)}, "
                                          f"expected {shape_str(s)}")
        for i, (s, t) in enumerate(zip(out_shapes, out_types)):
            if s is None or t is None or any(d < 0 for d in s):
                raise HybridNetError(f"{op.name}: could not infer output {i} "
                                     f"(shape {s}, dtype {t}) from the inputs")
        self.ctx, self.xp = ctx, ctx.xp
        self.octx = resource.op_context(ctx)
        self.out_specs = [(tuple(s), t) for s, t in zip(out_shapes, out_types)]
        self.n_visible = len(op.output_names(p))
        self.n_aux = n_aux
        size = sum(int(s_size(s)) for s, _ in self.out_specs)
        self.inline = op.inline_ok and size <= _inline[0]
        self.rng_var = resource.rng_var(ctx) if op.random else None
        self.forward = op.forward
        self.name = op.name
        self.mutates_aux = op.mutates_aux
        self.simple = len(self.out_specs) == 1 and n_aux == 0 and self.rng_var is None
        # The output allocator, chosen once: host arrays too small for the recycling pool
        # skip its bookkeeping (it matters at a few microseconds per tiny op).
        largest = max((s_size(s) * np.dtype(t).itemsize for s, t in self.out_specs), default=0)
        if self.xp is not np:
            self.empty = self.xp.empty
        elif largest < _POOL_MIN_BYTES:
            self.empty = np.empty
        else:
            self.empty = _pooled_empty


def s_size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _plan_for(op: OpDef, p: Params, inputs: list, ctx: Context) -> _Plan:
    cache = op._eager_plans
    n = len(inputs)
    if n == 1:
        d = inputs[0]._data
        key = (p, ctx, d.shape, d.dtype)
    elif n == 2:
        d, e = inputs[0]._data, inputs[1]._data
        key = (p, ctx, d.shape, d.dtype, e.shape, e.dtype)
    else:
        key = (p, ctx) + tuple([(x._data.shape, x._data.dtype) for x in inputs])
    plan = cache.get(key)
    if plan is None:
        plan = _Plan(op, p, inputs, ctx)
        if len(cache) >= _PLAN_CACHE_MAX:
            cache.clear()
        cache[key] = plan
    return plan


def _check_outputs(op: OpDef, out, specs, ctx):
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    if len(outs) != len(specs):
        raise HybridNetError(f"{op.name}: out= has {len(outs)} arrays, the operator has "
                             f"{len(specs)} outputs")
    for i, (o, (s, t)) in enumerate(zip(outs, specs)):
        if o.shape != s:
            raise ShapeError(op.name, f"out[{i}] has shape {shape_str(o.shape)}, expected "
                                      f"{shape_str(s)}")
        if o._ctx != ctx:
            raise HybridNetError(f"{op.name}: out[{i}] is on {o._ctx}, the operator runs on {ctx}")
        if o._data.dtype != t:
            raise HybridNetError(f"{op.name}: out[{i}] has dtype {o._data.dtype.name}, the "
                                 f"operator produces {t.name}; use astype first")
    return outs


def invoke(op: OpDef, inputs: list, p: Params, out=None, ctx: Context | None = None,
           hidden: bool = False):
    """Run ``op`` on NDArrays ``inputs`` (arguments, then aux states) with parameters ``p``.

    Returns the visible outputs: one NDArray, or a list when the op has several (``hidden=True``
    returns all outputs, hidden ones included). ``out`` receives the results when given.
    """
    if inputs:
        ctx = inputs[0]._ctx
    elif ctx is None:
        ctx = (getattr(p, "ctx", None) if "ctx" in op.param_map else None) or current_context()
    n = len(inputs)
    if n == 1:
        d = inputs[0]._data
        plan = op._eager_plans.get((p, ctx, d.shape, d.dtype))
        in_data = [d]
    elif n == 2:
        d, e = inputs[0]._data, inputs[1]._data
        plan = op._eager_plans.get((p, ctx, d.shape, d.dtype, e.shape, e.dtype))
        in_data = [d, e]
    else:
        plan = None
        in_data = [x._data for x in inputs]
    if plan is None:
        plan = _plan_for(op, p, inputs, ctx)
    if n > 1:
        for x in inputs:
            if x._ctx is not ctx:
                raise HybridNetError(f"{op.name}: inputs are on different devices ({ctx} and "
                                     f"{x._ctx}); copy them with as_in_context first")
    if plan.simple and out is None and not hidden:
        # the common case (one output, no aux, not random), written out for speed
        shape, dtype = plan.out_specs[0]
        data = plan.empty(shape, dtype)
        result = NDArray(data, ctx)
        is_train = autograd._state.training
        (_engine_mod._engine or get_engine()).push(
            partial(plan.forward, plan.octx, p, in_data, _NO_AUX, [data], is_train),
            [x._var for x in inputs], [result._var], ctx, "normal", 0, plan.name, plan.inline)
        if autograd._state.recording:
            autograd._record(op, p, inputs, (), [result], is_train)
        return result
    if out is None:
        empty = plan.empty
        outputs = [NDArray(empty(s, t), ctx) for s, t in plan.out_specs]
    else:
        nv = len(plan.out_specs) if hidden else plan.n_visible
        outputs = _check_outputs(op, out, plan.out_specs[:nv], ctx)
        outputs += [NDArray(plan.xp.empty(s, t), ctx) for s, t in plan.out_specs[nv:]]
    n_aux = plan.n_aux
    octx, forward, is_train = plan.octx, plan.forward, autograd._state.training
    if n_aux:
        args, aux = inputs[:-n_aux], inputs[-n_aux:]
        aux_data = [x._data for x in aux]
    else:
        args, aux, aux_data = inputs, (), []
    run = partial(forward, octx, p, [x._data for x in args], aux_data,
                  [o._data for o in outputs], is_train)
    writes = [o._var for o in outputs]
    if n_aux and plan.mutates_aux:
        writes += [x._var for x in aux]
    if plan.rng_var is not None:
        writes.append(plan.rng_var)
    (_engine_mod._engine or get_engine()).push(run, [x._var for x in inputs], writes, ctx,
                                               "normal", 0, plan.name, plan.inline)
    if autograd._state.recording:
        autograd._record(op, p, args, aux, outputs, is_train)
    if hidden:
        return outputs
    if plan.n_visible == 1:
        return outputs[0]
    return outputs[:plan.n_visible]


from .ndarray import NDArray  # noqa: E402  (NDArray's module imports this one)
