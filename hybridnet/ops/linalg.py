"""Matrix products: dot, batch_dot, linalg.gemm, linalg.gemm2.

Every product is one ``matmul`` into the output buffer (BLAS for float32/float64), forward and
backward alike; transposes are strided views, never copies. ``dot`` on N-d arrays contracts
the last axis of lhs with the first axis of rhs (``transpose_a`` contracts lhs's *first* axis,
``transpose_b`` rhs's *last*), as MXNet does: lhs is viewed as a matrix (rows = the other axes)
and so is rhs. ``linalg.gemm``/``gemm2`` work on stacks of matrices whose rows lie on ``axis``
and columns on the last axis.
"""
from __future__ import annotations

from ..base import ShapeError, shape_str
from .params import Param
from .registry import OpDef, assign, register
from .shape import known, legacy_shape, normalize_axis, size_of

__all__: list = []

_TRANSPOSE = [Param("transpose_a", "bool", False, "use lhs transposed"),
              Param("transpose_b", "bool", False, "use rhs transposed")]


def _matmul_into(xp, x, y, dst, req):
    """dst (=|+=) x @ y, writing straight into ``dst`` when it is a plain write."""
    if req == "add":
        dst += xp.matmul(x, y)
    else:
        xp.matmul(x, y, out=dst)


# ---- dot ----------------------------------------------------------------------------------------
def _dot_split(p, a, b):
    """(contracted size of lhs, lhs kept dims, contracted size of rhs, rhs kept dims)."""
    if (p.transpose_a and len(a) == 1) or (p.transpose_b and len(b) == 1):
        raise ShapeError("dot", f"cannot transpose a vector (lhs {shape_str(a)}, rhs "
                                f"{shape_str(b)}); transpose_a/transpose_b need 2-d or more")
    ka, keep_a = (a[0], a[1:]) if p.transpose_a else (a[-1], a[:-1])
    kb, keep_b = (b[-1], b[:-1]) if p.transpose_b else (b[0], b[1:])
    return ka, tuple(keep_a), kb, tuple(keep_b)


def _dot_infer(p, in_shapes):
    a, b = in_shapes
    if a is None or b is None:
        return in_shapes, [None], []
    if not a or not b:
        raise ShapeError("dot", f"operands must have at least 1 dim, got lhs {shape_str(a)} and "
                                f"rhs {shape_str(b)}")
    ka, keep_a, kb, keep_b = _dot_split(p, a, b)
    if ka and kb and ka != kb:
        which_a = "first" if p.transpose_a else "last"
        which_b = "last" if p.transpose_b else "first"
        raise ShapeError("dot", f"lhs {shape_str(a)} and rhs {shape_str(b)} do not fit: the "
                                f"{which_a} axis of lhs has size {ka}, the {which_b} axis of rhs "
                                f"has size {kb} (transpose_a={p.transpose_a}, "
                                f"transpose_b={p.transpose_b})")
    return in_shapes, [legacy_shape(keep_a + keep_b)], []


def _dot_mats(p, a, b):
    """lhs and rhs as 2-d (strided) matrices A (m, k) and B (k, n)."""
    ka, keep_a, _, keep_b = _dot_split(p, a.shape, b.shape)
    m, n = size_of(keep_a), size_of(keep_b)
    A = a.reshape(ka, m).T if p.transpose_a else a.reshape(m, ka)
    B = b.reshape(n, ka).T if p.transpose_b else b.reshape(ka, n)
    return A, B


def _dot_forward(ctx, p, inputs, aux, outputs, is_train):
    A, B = _dot_mats(p, *inputs)
    ctx.xp.matmul(A, B, out=outputs[0].reshape(A.shape[0], B.shape[1]))


def _dot_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp = ctx.xp
    A, B = _dot_mats(p, *inputs)
    g = out_grads[0].reshape(A.shape[0], B.shape[1])
    da, db = in_grads
    if da is not None:          # dA = g B^T; stored transposed when lhs was used transposed
        if p.transpose_a:
            _matmul_into(xp, B, g.T, da.reshape(A.shape[::-1]), req[0])
        else:
            _matmul_into(xp, g, B.T, da.reshape(A.shape), req[0])
    if db is not None:          # dB = A^T g
        if p.transpose_b:
            _matmul_into(xp, g.T, A, db.reshape(B.shape[::-1]), req[1])
        else:
            _matmul_into(xp, A.T, g, db.reshape(B.shape), req[1])


def _product_grad_graph(fn_name, ndim):
    """create_graph form of the dot / batch_dot gradient (matrices of ``ndim`` dims only)."""
    def grad_graph(F, p, out_grads, inputs, outputs):
        a, b = inputs
        if a.ndim != ndim or b.ndim != ndim:
            return None
        g, ta, tb, fn = out_grads[0], p.transpose_a, p.transpose_b, getattr(F, fn_name)
        da = fn(b, g, transpose_a=tb, transpose_b=True) if ta else \
            fn(g, b, transpose_b=not tb)
        db = fn(g, a, transpose_a=True, transpose_b=ta) if tb else \
            fn(a, g, transpose_a=not ta)
        return [da, db]
    return grad_graph


register(OpDef(
    "dot", inputs=("lhs", "rhs"),
    params=_TRANSPOSE + [Param("forward_stype", "str", None, "accepted for MXNet "
                                                             "compatibility (dense only)",
                               choices=("csr", "default", "row_sparse"))],
    infer_shape=_dot_infer, forward=_dot_forward, backward=_dot_backward,
    grad_graph=_product_grad_graph("dot", 2), bwd_inputs=(0, 1),
    bwd_outputs=(),
    doc="dot(lhs, rhs, transpose_a=False, transpose_b=False): the product of lhs and rhs; "
        "N-d arrays contract the last axis of lhs with the first of rhs (shape "
        "lhs.shape[:-1] + rhs.shape[1:]); two vectors give their inner product, shape (1,)."))


# ---- batch_dot ----------------------------------------------------------------------------------
def _swap(x):
    return x.swapaxes(-1, -2)


def _batch_dot_infer(p, in_shapes):
    a, b = in_shapes
    if a is None or b is None:
        return in_shapes, [None], []
    if len(a) < 3 or len(a) != len(b):
        raise ShapeError("batch_dot", f"lhs {shape_str(a)} and rhs {shape_str(b)} must both be "
                                      f"N-d with the same N >= 3 (batch dims, rows, cols)")
    m, ka = (a[-1], a[-2]) if p.transpose_a else (a[-2], a[-1])
    kb, n = (b[-1], b[-2]) if p.transpose_b else (b[-2], b[-1])
    batch_clash = any(x and y and x != y for x, y in zip(a[:-2], b[:-2]))
    if batch_clash or (ka and kb and ka != kb):
        raise ShapeError("batch_dot", f"lhs {shape_str(a)} and rhs {shape_str(b)} do not fit "
                                      f"(transpose_a={p.transpose_a}, transpose_b="
                                      f"{p.transpose_b}): batch dims must be equal and lhs's "
                                      f"columns ({ka}) must match rhs's rows ({kb})")
    batch = tuple(x or y for x, y in zip(a[:-2], b[:-2]))
    return in_shapes, [batch + (m, n)], []


def _op(x, transposed):
    return _swap(x) if transposed else x


def _batch_dot_forward(ctx, p, inputs, aux, outputs, is_train):
    a, b = inputs
    ctx.xp.matmul(_op(a, p.transpose_a), _op(b, p.transpose_b), out=outputs[0])


def _product_grads(xp, A, B, g, da, db, req, ta, tb, scale=1.0):
    """Gradients of ``scale * A @ B`` (A = op(a), B = op(b)) into da, db (stacked matrices)."""
    if scale != 1.0:
        g = g * scale
    if da is not None:
        if ta:
            _matmul_into(xp, B, _swap(g), da, req[0])
        else:
            _matmul_into(xp, g, _swap(B), da, req[0])
    if db is not None:
        if tb:
            _matmul_into(xp, _swap(g), A, db, req[1])
        else:
            _matmul_into(xp, _swap(A), g, db, req[1])


def _batch_dot_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    a, b = inputs
    _product_grads(ctx.xp, _op(a, p.transpose_a), _op(b, p.transpose_b), out_grads[0],
                   in_grads[0], in_grads[1], req, p.transpose_a, p.transpose_b)


register(OpDef(
    "batch_dot", inputs=("lhs", "rhs"),
    params=_TRANSPOSE + [Param("forward_stype", "str", None, "accepted for MXNet "
                                                             "compatibility (dense only)",
                               choices=("csr", "default", "row_sparse"))],
    infer_shape=_batch_dot_infer, forward=_batch_dot_forward, backward=_batch_dot_backward,
    grad_graph=_product_grad_graph("batch_dot", 3), bwd_inputs=(0, 1), bwd_outputs=(),
    doc="batch_dot(lhs, rhs, transpose_a=False, transpose_b=False): matrix products of the "
        "matching matrices of two stacks, (..., m, k) x (..., k, n) -> (..., m, n)."))


# ---- linalg.gemm, linalg.gemm2 ------------------------------------------------------------------
def _rows_last(x, axis):
    """The stack with its row axis moved next to the (last) column axis: (..., rows, cols)."""
    return x if axis == x.ndim - 2 else _moveaxis(x, axis, x.ndim - 2)


def _moveaxis(x, src, dst):
    order = [i for i in range(x.ndim) if i != src]
    order.insert(dst, src)
    return x.transpose(order)


def _std(shape, axis):
    """``shape`` with axis ``axis`` moved to position -2 (the standard matrix-stack layout)."""
    s = list(shape)
    rows = s.pop(axis)
    s.insert(len(s) - 1, rows)
    return tuple(s)


def _unstd(shape, axis):
    s = list(shape)
    s.insert(axis, s.pop(len(s) - 2))
    return tuple(s)


def _gemm_axis(op, p, shape):
    axis = normalize_axis(op, p.axis, len(shape), shape)
    if axis == len(shape) - 1:
        raise ShapeError(op, f"axis={p.axis} is the column axis of {shape_str(shape)}; the row "
                             f"axis must be another one")
    return axis


def _gemm_shape(op, p, a, b):
    """The (non-standard-layout) output shape of op(A) @ op(B), checking the operands fit."""
    if len(a) < 2 or len(a) != len(b):
        raise ShapeError(op, f"A {shape_str(a)} and B {shape_str(b)} must have the same number "
                             f"of dims, at least 2")
    axis = _gemm_axis(op, p, a)
    sa, sb = _std(a, axis), _std(b, axis)
    m, ka = (sa[-1], sa[-2]) if p.transpose_a else (sa[-2], sa[-1])
    kb, n = (sb[-1], sb[-2]) if p.transpose_b else (sb[-2], sb[-1])
    if any(x and y and x != y for x, y in zip(sa[:-2], sb[:-2])) or (ka and kb and ka != kb):
        raise ShapeError(op, f"A {shape_str(a)} and B {shape_str(b)} do not fit (axis={p.axis}, "
                             f"transpose_a={p.transpose_a}, transpose_b={p.transpose_b}): batch "
                             f"dims must be equal and A's columns ({ka}) must match B's rows "
                             f"({kb})")
    batch = tuple(x or y for x, y in zip(sa[:-2], sb[:-2]))
    return _unstd(batch + (m, n), axis)


def _gemm_infer(p, in_shapes):
    a, b, c = in_shapes
    out = _gemm_shape("_linalg_gemm", p, a, b) if a is not None and b is not None else None
    if out is not None and c is not None and known(c) and known(out) and tuple(c) != out:
        raise ShapeError("_linalg_gemm", f"C has shape {shape_str(c)}, expected {shape_str(out)} "
                                         f"from A {shape_str(a)} and B {shape_str(b)}")
    out = out if c is None or (out is not None and known(out)) else tuple(c)
    return [a, b, out], [out], []


def _gemm2_infer(p, in_shapes):
    a, b = in_shapes
    if a is None or b is None:
        return in_shapes, [None], []
    return in_shapes, [_gemm_shape("_linalg_gemm2", p, a, b)], []


def _gemm_operands(p, inputs, ndim):
    axis = normalize_axis("_linalg_gemm", p.axis, ndim)
    a, b = (_rows_last(x, axis) for x in inputs[:2])
    return axis, _op(a, p.transpose_a), _op(b, p.transpose_b)


def _gemm_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, out = ctx.xp, outputs[0]
    axis, A, B = _gemm_operands(p, inputs, out.ndim)
    view = _rows_last(out, axis)
    xp.matmul(A, B, out=view)
    if p.alpha != 1.0:
        view *= p.alpha
    if len(inputs) > 2 and p.beta != 0.0:
        view += p.beta * _rows_last(inputs[2], axis)


def _gemm_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    g = out_grads[0]
    axis, A, B = _gemm_operands(p, inputs, g.ndim)
    grads = [None if d is None else _rows_last(d, axis) for d in in_grads[:2]]
    _product_grads(ctx.xp, A, B, _rows_last(g, axis), grads[0], grads[1], req, p.transpose_a,
                   p.transpose_b, p.alpha)
    if len(in_grads) > 2:
        assign(in_grads[2], req[2], g * p.beta)


_GEMM_PARAMS = _TRANSPOSE + [Param("alpha", "float", 1.0, "scale of the product")]
_AXIS = Param("axis", "int", -2, "the axis of the matrix rows (columns are the last axis)")

register(OpDef(
    "_linalg_gemm", inputs=("A", "B", "C"),
    params=_GEMM_PARAMS + [Param("beta", "float", 1.0, "scale of C"), _AXIS],
    infer_shape=_gemm_infer, forward=_gemm_forward, backward=_gemm_backward,
    aliases=("linalg_gemm",), namespace="linalg", bwd_inputs=(0, 1),
    bwd_outputs=(),
    doc="linalg.gemm(A, B, C, transpose_a=False, transpose_b=False, alpha=1, beta=1, axis=-2): "
        "alpha * op(A) @ op(B) + beta * C for each matrix of the stacks."))

register(OpDef(
    "_linalg_gemm2", inputs=("A", "B"), params=_GEMM_PARAMS + [_AXIS],
    infer_shape=_gemm2_infer, forward=_gemm_forward, backward=_gemm_backward,
    aliases=("linalg_gemm2",), namespace="linalg", bwd_inputs=(0, 1), bwd_outputs=(),
    doc="linalg.gemm2(A, B, transpose_a=False, transpose_b=False, alpha=1, axis=-2): "
        "alpha * op(A) @ op(B) for each matrix of the stacks."))
