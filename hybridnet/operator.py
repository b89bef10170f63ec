"""``mx.operator``: Python operators usable from NDArray and Symbol code alike (CustomOp).

Write the computation as a ``CustomOp`` and its structure as a ``CustomOpProp``, register the
prop under a name, then call it as ``mx.nd.Custom(x, op_type='name')`` or
``mx.sym.Custom(data, op_type='name')``::

    class Square(mx.operator.CustomOp):
        def forward(self, is_train, req, in_data, out_data, aux):
            self.assign(out_data[0], req[0], in_data[0] * in_data[0])
        def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
            self.assign(in_grad[0], req[0], 2 * in_data[0] * out_grad[0])

    @mx.operator.register("square")
    class SquareProp(mx.operator.CustomOpProp):
        def __init__(self, scale="1"):       # keyword arguments arrive as strings (MXNet)
            super().__init__(need_top_grad=True)

All calls go through one registry operator named ``Custom`` (params: ``op_type`` plus the
keyword arguments, kept as strings -- that is what a symbol JSON stores). It runs on the engine
like any operator; an exception raised inside reaches the caller, with its own type and message,
at the next wait; a custom op may itself wait on arrays (``asnumpy()``) without deadlocking,
because an engine worker that waits runs other queued work meanwhile.
"""
from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np

from .base import ParamError, ShapeError
from .ops.params import Param
from .ops.registry import OpDef, Params, get_op, list_ops, register as _register_op

__all__ = ["CustomOp", "CustomOpProp", "register", "get_all_registered_operators",
           "get_operator_arguments", "OperatorArguments"]

OperatorArguments = namedtuple("OperatorArguments", ["narg", "names", "types"])

_PROPS: dict[str, type] = {}


class CustomOp:
    """Base class of a Python operator's computation: override ``forward`` and ``backward``."""

    def forward(self, is_train, req, in_data, out_data, aux):
        """Compute ``out_data`` from ``in_data`` (NDArrays); write with ``self.assign``."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        """Compute ``in_grad`` from ``out_grad``; write with ``self.assign``."""
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def assign(self, dst, req: str, src) -> None:
        """Write ``src`` into ``dst`` as ``req`` says: 'write'/'inplace' copy, 'add' accumulate,
        'null' nothing."""
        if req == "null":
            return
        if req in ("write", "inplace"):
            dst[:] = src
        elif req == "add":
            dst[:] = dst + src
        else:
            raise ValueError(f"assign: req must be 'null', 'write', 'inplace' or 'add', got "
                             f"{req!r}")


class CustomOpProp:
    """Base class of a Python operator's structure: names, shapes, types, and its factory.

    Args:
        need_top_grad: False for loss heads, whose backward needs no gradient from above (then
            no ``out_grads`` are required by ``Executor.backward``).
    """

    def __init__(self, need_top_grad: bool = True):
        self.need_top_grad_ = need_top_grad

    def infer_shape(self, in_shape):
        """``(in_shapes, out_shapes, aux_shapes)``; default: every output like input 0."""
        return in_shape, [in_shape[0]] * len(self.list_outputs()), \
            [in_shape[0]] * len(self.list_auxiliary_states())

    def infer_type(self, in_type):
        """``(in_types, out_types, aux_types)``; default: everything like input 0."""
        return in_type, [in_type[0]] * len(self.list_outputs()), \
            [in_type[0]] * len(self.list_auxiliary_states())

    def infer_storage_type(self, in_stype):
        return in_stype, ["default"] * len(self.list_outputs()), \
            ["default"] * len(self.list_auxiliary_states())

    def infer_storage_type_backward(self, ograd_stype, in_stype, out_stype, igrad_stype,
                                    aux_stype):
        return ograd_stype, in_stype, out_stype, ["default"] * len(igrad_stype), aux_stype

    def list_arguments(self) -> list:
        return ["data"]

    def list_outputs(self) -> list:
        return ["output"]

    def list_auxiliary_states(self) -> list:
        return []

    def declare_backward_dependency(self, out_grad, in_data, out_data) -> list:
        deps = list(out_grad) if self.need_top_grad_ else []
        return deps + list(in_data) + list(out_data)

    def create_operator(self, ctx, in_shapes, in_dtypes) -> CustomOp:
        return CustomOp()


def register(reg_name: str):
    """Class decorator: register a ``CustomOpProp`` subclass as ``op_type=reg_name``."""
    def do_register(prop_cls):
        if not (isinstance(prop_cls, type) and issubclass(prop_cls, CustomOpProp)):
            raise TypeError(f"mx.operator.register('{reg_name}') decorates a CustomOpProp "
                            f"subclass, got {prop_cls!r}")
        _PROPS[reg_name] = prop_cls
        return prop_cls
    return do_register


def get_all_registered_operators() -> list[str]:
    """Every operator name of the registry (aliases included), sorted."""
    return sorted(list_ops())


def get_operator_arguments(op_name: str) -> OperatorArguments:
    """``(narg, names, types)``: an operator's inputs then parameters, as MXNet lists them."""
    op = get_op(op_name)
    inputs = None
    if op is not _CUSTOM and op.variadic is None:
        # input names from the defaults; required parameters stay unset unless names need them
        p = op._params_cls(tuple(op._defaults[n] for n in op._params_cls._names) + ((),))
        try:
            inputs = op.list_inputs(p)
        except Exception:  # the names depend on a required parameter
            inputs = None
    if inputs is None:
        inputs, input_types = ["data"], ["NDArray-or-Symbol[]"]
    else:
        input_types = ["NDArray-or-Symbol"] * len(inputs)
    names = inputs + [q.name for q in op.params]
    types = input_types + [q.describe().split(" : ", 1)[1] for q in op.params]
    return OperatorArguments(len(names), names, types)


# ---- the registry operator behind mx.nd.Custom / mx.sym.Custom ---------------------------------
class _CustomOpDef(OpDef):
    """``Custom``: parameters are ``op_type`` plus any keyword arguments, all kept as strings."""

    def __init__(self):
        super().__init__(
            "Custom", params=[Param("op_type", "str", doc="the registered name of the op")],
            inputs=lambda p: self.prop(p).list_arguments(),
            aux=lambda p: self.prop(p).list_auxiliary_states(),
            outputs=lambda p: self.prop(p).list_outputs(),
            infer_shape=self._infer_shape, infer_type=self._infer_type,
            forward=self._forward, backward=self._backward, mutates_aux=True, inline_ok=False,
            doc="Custom(*data, op_type, **kwargs): run the Python operator registered with "
                "@mx.operator.register(op_type); kwargs reach its CustomOpProp as strings.")
        self._props: dict = {}
        self._operators: dict = {}
        self._lock = threading.Lock()

    def parse_params(self, kwargs: dict) -> Params:
        op_type = kwargs.get("op_type")
        if op_type is None:
            raise ParamError("Custom: required parameter 'op_type' is missing (the name given "
                             "to @mx.operator.register)")
        if op_type not in _PROPS:
            known = ", ".join(sorted(_PROPS)) or "none registered yet"
            raise ParamError(f"Custom: op_type {op_type!r} is not registered (known: {known})")
        raw = tuple((k, v if isinstance(v, str) else str(v)) for k, v in kwargs.items())
        return self._params_cls((str(op_type), raw))

    @property
    def default_params(self):
        return None

    def prop(self, p) -> CustomOpProp:
        """The CustomOpProp instance for these parameters (made once per distinct call)."""
        prop = self._props.get(p)
        if prop is None:
            kwargs = {k: v for k, v in p.raw.items() if k != "op_type"}
            try:
                prop = _PROPS[p.op_type](**kwargs)
            except TypeError as err:
                raise ParamError(f"Custom op_type={p.op_type!r}: {_PROPS[p.op_type].__name__}"
                                 f"({', '.join(kwargs)}) failed: {err}") from None
            self._props[p] = prop
        return prop

    def is_loss_for(self, p) -> bool:
        return not self.prop(p).need_top_grad_

    def _infer_shape(self, p, in_shapes):
        prop = self.prop(p)
        n_out, n_aux = len(prop.list_outputs()), len(prop.list_auxiliary_states())
        unknown = [s is None or 0 in s for s in in_shapes]
        if all(unknown):
            return in_shapes, [None] * n_out, [None] * n_aux
        try:    # like MXNet, unknown inputs reach the prop as [] (most props use input 0)
            result = prop.infer_shape([[] if u else list(s) for s, u in zip(in_shapes, unknown)])
        except Exception as err:
            if any(unknown):
                return in_shapes, [None] * n_out, [None] * n_aux
            raise ShapeError(f"Custom({p.op_type})",
                             f"{type(prop).__name__}.infer_shape failed: {err}") from err
        ins, outs = result[0], result[1]
        auxs = result[2] if len(result) > 2 else []
        if len(outs) != n_out:
            raise ShapeError(f"Custom({p.op_type})", f"infer_shape returned {len(outs)} output "
                                                      f"shapes for {n_out} outputs")
        def shape(s):
            return tuple(int(d) for d in s) if s is not None and len(s) else None
        return [shape(s) for s in ins], [shape(s) for s in outs], [shape(s) for s in auxs]

    def _infer_type(self, p, in_types):
        prop = self.prop(p)
        known = next((t for t in in_types if t is not None), None)
        if known is None:
            return in_types, [None] * len(prop.list_outputs()), \
                [None] * len(prop.list_auxiliary_states())
        filled = [np.dtype(t if t is not None else known).type for t in in_types]
        result = prop.infer_type(filled)
        auxs = result[2] if len(result) > 2 else []
        return ([np.dtype(t) for t in result[0]], [np.dtype(t) for t in result[1]],
                [np.dtype(t) for t in auxs])

    def _operator(self, p, device, inputs) -> CustomOp:
        key = (p, device, tuple(x.shape for x in inputs), tuple(x.dtype for x in inputs))
        op = self._operators.get(key)
        if op is None:
            with self._lock:
                op = self._operators.get(key)
                if op is None:
                    op = self.prop(p).create_operator(
                        device, [list(x.shape) for x in inputs], [x.dtype.type for x in inputs])
                    self._operators[key] = op
        return op

    def _forward(self, ctx, p, inputs, aux, outputs, is_train):
        from .ndarray.ndarray import NDArray
        op = self._operator(p, ctx.device, inputs)
        wrap = [NDArray(x, ctx.device) for x in inputs]
        outs = [NDArray(x, ctx.device) for x in outputs]
        auxs = [NDArray(x, ctx.device) for x in aux]
        op.forward(is_train=is_train, req=["write"] * len(outs), in_data=wrap, out_data=outs,
                   aux=auxs)
        for arr in outs + auxs:            # work the op pushed must land before we return
            arr.wait_to_read()

    def _backward(self, ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        from .ndarray.ndarray import NDArray
        xp, dev = ctx.xp, ctx.device
        op = self._operator(p, dev, inputs)
        og = [NDArray(g if g is not None else xp.zeros_like(o), dev)
              for g, o in zip(out_grads, outputs)]
        ig = [NDArray(g if g is not None else xp.zeros_like(x), dev)
              for g, x in zip(in_grads, inputs)]
        op.backward(req=list(req), out_grad=og, in_data=[NDArray(x, dev) for x in inputs],
                    out_data=[NDArray(x, dev) for x in outputs], in_grad=ig,
                    aux=[NDArray(x, dev) for x in aux])
        for arr, g in zip(ig, in_grads):
            if g is not None:
                arr.wait_to_read()


_CUSTOM = _register_op(_CustomOpDef())



def _publish() -> None:
    """Expose ``Custom`` in ``mx.nd`` and ``mx.sym`` (both were built before it existed)."""
    from . import ndarray, symbol
    ndarray.publish("Custom")
    symbol.publish("Custom")


_publish()
