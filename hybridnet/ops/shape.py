"""Shape and layout operators: Reshape (MXNet's special codes), Flatten, transpose, expand_dims,
squeeze, SwapAxis, depth_to_space / space_to_depth, reshape_like, diag, Cast, _copyto,
shape_array, size_array.

Joining, splitting, tiling and broadcasting live in ``ops/join.py``. The axis helpers at the top
are shared by every tensor family (reductions, indexing, linear algebra): one place decides
what a negative axis means and how an out-of-range one is reported.
"""
from __future__ import annotations

import numpy as np

from ..base import DTypeError, ShapeError, shape_str
from .params import Param
from .registry import ZERO_GRAD, OpDef, assign, register

__all__ = ["normalize_axis", "normalize_axes", "known", "size_of", "legacy_shape",
           "first_type_infer", "shape_infer", "register_unary", "reshape_shape"]


# ---- helpers shared by the tensor families --------------------------------------------------
def normalize_axis(op: str, axis: int, ndim: int, shape=None, what: str = "axis",
                   extra: int = 0) -> int:
    """``axis`` in [0, ndim + extra); negative values count from the end. ShapeError otherwise.

    ``extra=1`` allows the position after the last axis (expand_dims, stack).
    """
    n = ndim + extra
    if not -n <= axis < n:
        where = f"data of shape {shape_str(shape)}" if shape is not None else f"{ndim}-d data"
        raise ShapeError(op, f"{what}={axis} is out of range for {where}; expected "
                             f"{-n} <= {what} < {n}")
    return axis + n if axis < 0 else axis


def normalize_axes(op: str, axes, ndim: int, shape=None, what: str = "axis") -> tuple:
    """A tuple of distinct non-negative axes; ShapeError for duplicates or out-of-range ones."""
    out = tuple(normalize_axis(op, int(a), ndim, shape, what) for a in axes)
    if len(set(out)) != len(out):
        raise ShapeError(op, f"{what}={tuple(axes)} names an axis twice")
    return out


def known(shape) -> bool:
    """Whether ``shape`` is fully known (not None, no 0 = unknown dim)."""
    return shape is not None and all(d > 0 for d in shape)


def size_of(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def legacy_shape(shape) -> tuple:
    """MXNet 1.x NDArrays have no 0-d shape: a scalar result has shape (1,)."""
    return tuple(shape) if len(shape) else (1,)


def first_type_infer(op_name: str, out_dtype=None, n_out: int = 1, same: tuple = (),
                     ref: int = 0):
    """infer_type: input ``ref`` and the inputs listed in ``same`` share one dtype; the others
    (indices, conditions, shape donors) may differ. Outputs take ``out_dtype(p)`` when that is
    not None, else the shared dtype."""
    def infer(p, in_types):
        ins = list(in_types)
        group = [i for i in (ref,) + tuple(same) if i < len(ins)]
        known_t = next((ins[i] for i in group if ins[i] is not None), None)
        for i in group:
            if ins[i] is None:
                ins[i] = known_t
            elif np.dtype(ins[i]) != np.dtype(known_t):
                raise DTypeError(f"{op_name}: input {i} has dtype {np.dtype(ins[i]).name}, "
                                 f"expected {np.dtype(known_t).name} like input {group[0]}")
        out = out_dtype(p) if out_dtype is not None else None
        return ins, [known_t if out is None else out] * n_out, []
    return infer


def register_unary(name: str, infer_shape, forward, backward, params=(), aliases=(), doc="",
                   infer_type=None, inplace=False, grad_graph=None) -> OpDef:
    """Register a one-input operator whose backward reads nothing but the head gradient."""
    return register(OpDef(name, params=params, infer_shape=infer_shape, infer_type=infer_type,
                          forward=forward, backward=backward, aliases=aliases,
                          inplace=((0, 0),) if inplace else (), bwd_inputs=(), bwd_outputs=(),
                          doc=doc, grad_graph=grad_graph))


def shape_infer(fn):
    """infer_shape from ``fn(p, shape) -> out shape`` for one-input, one-output ops (an
    unknown input gives an unknown output)."""
    def infer(p, in_shapes):
        s = in_shapes[0]
        return in_shapes, [None if s is None else fn(p, tuple(s))], []
    return infer


# ---- Reshape ----------------------------------------------------------------------------------
def _reshape_codes(op, dshape, spec):
    """Apply MXNet's reshape codes left to right; 0 in ``dshape`` is an unknown dim.

    0 copies the next input dim, -1 is inferred from the size, -2 copies all remaining dims, -3
    merges the next two, -4 splits the next one into the two values that follow (one may be -1).
    Returns the output with -1 still in place (resolved by the caller), its position, and how
    many unknown input dims were copied unchanged (so the -1 can still be inferred around them).
    """
    out, src, i, infer_at, copied = [], 0, 0, None, 0
    ndim = len(dshape)

    def take(code):
        nonlocal src
        if src >= ndim:
            raise ShapeError(op, f"shape={spec} uses code {code} at position {i} but data of "
                                 f"shape {shape_str(dshape)} has no dimension left to take")
        src += 1
        return dshape[src - 1]

    while i < len(spec):
        code = spec[i]
        if code == 0:
            out.append(take(0))
            copied += out[-1] == 0
        elif code == -1:
            if infer_at is not None:
                raise ShapeError(op, f"shape={spec} has more than one -1; only one dimension "
                                     f"can be inferred")
            infer_at = len(out)
            out.append(-1)
            src += 1
        elif code == -2:
            out.extend(dshape[src:])
            copied += sum(1 for d in dshape[src:] if d == 0)
            src = ndim
        elif code == -3:
            a, b = take(-3), take(-3)
            out.append(a * b)
        elif code == -4:
            if i + 2 >= len(spec):
                raise ShapeError(op, f"shape={spec}: -4 at position {i} must be followed by "
                                     f"two values (the sizes to split into)")
            d0 = take(-4)
            d1, d2 = spec[i + 1], spec[i + 2]
            i += 2
            if d1 == -1 and d2 == -1:
                raise ShapeError(op, f"shape={spec}: -4 splits into ({d1}, {d2}); only one of "
                                     f"them can be -1")
            if d0:
                if d1 == -1:
                    d1 = d0 // d2 if d2 and d0 % d2 == 0 else -2
                elif d2 == -1:
                    d2 = d0 // d1 if d1 and d0 % d1 == 0 else -2
                if d1 < 0 or d2 < 0 or d1 * d2 != d0:
                    raise ShapeError(op, f"shape={spec}: -4 cannot split dimension {d0} of data "
                                         f"{shape_str(dshape)} into ({spec[i - 1]}, {spec[i]})")
            else:      # unknown dim: the -1 half stays unknown
                d1, d2 = max(d1, 0), max(d2, 0)
            out += [d1, d2]
        elif code > 0:
            out.append(code)
            src += 1
        else:
            raise ShapeError(op, f"shape={spec}: {code} is not a valid size or special code "
                                 f"(0, -1, -2, -3, -4)")
        i += 1
    return out, infer_at, copied


def _resolve(op, dshape, out, infer_at, spec, copied=0):
    """Fill the -1 from the total size and check the sizes agree (when all is known).

    Unknown input dims that were copied unchanged cancel out: (0, 3, 4) with (0, -1) gives
    (0, 12).
    """
    if infer_at is not None:
        others = [d for j, d in enumerate(out) if j != infer_at]
        unknown_in = sum(1 for d in dshape if d == 0)
        cancels = unknown_in == copied == sum(1 for d in others if d == 0)
        rest = size_of(d for d in others if d)
        total = size_of(d for d in dshape if d)
        if unknown_in and not cancels:
            out[infer_at] = 0
        elif total % rest:
            raise ShapeError(op, f"cannot reshape data of shape {shape_str(dshape)} (size "
                                 f"{total}) into shape={spec}: {total} is not divisible by {rest}")
        else:
            out[infer_at] = total // rest
    if known(dshape) and known(out) and size_of(out) != size_of(dshape):
        raise ShapeError(op, f"cannot reshape data of shape {shape_str(dshape)} (size "
                             f"{size_of(dshape)}) into {shape_str(out)} (size {size_of(out)}) "
                             f"from shape={spec}")
    return tuple(out)


def reshape_shape(p, dshape):
    """The output shape of Reshape with parameters ``p`` for input ``dshape`` (0 = unknown)."""
    op = "Reshape"
    dshape = tuple(dshape)
    if p.shape:
        spec = tuple(p.shape)
        if p.reverse:
            out, at, copied = _reshape_codes(op, dshape[::-1], spec[::-1])
            return _resolve(op, dshape[::-1], out, at, spec, copied)[::-1]
        out, at, copied = _reshape_codes(op, dshape, spec)
        return _resolve(op, dshape, out, at, spec, copied)
    if p.target_shape:
        # the legacy form: 0 marks the one dimension to infer; keep_highest keeps dshape[0]
        out = list(p.target_shape)
        start = 1 if p.keep_highest else 0
        if p.keep_highest:
            out[0] = dshape[0]
        zeros = [j for j in range(start, len(out)) if out[j] == 0]
        if len(zeros) > 1:
            raise ShapeError(op, f"target_shape={tuple(p.target_shape)} has more than one 0 "
                                 f"to infer")
        return _resolve(op, dshape, out, zeros[0] if zeros else None, tuple(p.target_shape))
    raise ShapeError(op, "either shape or target_shape must be given")


def _reshape_infer(p, in_shapes):
    s = in_shapes[0]
    if s is None:
        spec = tuple(p.shape) if p.shape else ()
        out = spec if spec and all(d > 0 for d in spec) else None
        return in_shapes, [out], []
    return in_shapes, [reshape_shape(p, s)], []


def _copy_reshaped(ctx, p, inputs, aux, outputs, is_train):
    ctx.xp.copyto(outputs[0], inputs[0].reshape(outputs[0].shape))


def _grad_reshaped(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        assign(dx, req[0], out_grads[0].reshape(dx.shape))
    if len(in_grads) > 1 and in_grads[1] is not None:     # reshape_like's rhs: only its shape
        assign(in_grads[1], req[1], 0)


def _grad_graph_reshaped(F, p, out_grads, inputs, outputs):
    return [out_grads[0].reshape(inputs[0].shape)]


register_unary(
    "Reshape", _reshape_infer, _copy_reshaped, _grad_reshaped, inplace=True,
    grad_graph=_grad_graph_reshaped, aliases=("reshape",),
    params=[
        Param("shape", "shape", (), "the new shape, with special codes 0, -1, -2, -3, -4"),
        Param("reverse", "bool", False, "apply the special codes from right to left"),
        Param("target_shape", "shape", (), "(deprecated) the new shape; 0 marks the dim to infer"),
        Param("keep_highest", "bool", False, "(deprecated) keep the first dim, reshape the rest"),
    ],
    doc="""Reshape(data, shape=(), reverse=False, target_shape=(), keep_highest=False): the same
values with a new shape.

Special codes in ``shape``: 0 copies the input dim, -1 infers one dim from the size, -2 copies
all remaining dims, -3 merges two consecutive dims, -4 splits one dim into the next two values
(one of which may be -1). ``reverse=True`` matches the codes from the right. Example:
``nd.reshape(x, shape=(-3, -2))`` on (2, 3, 4) gives (6, 4).""")


def _flatten_shape(p, s):
    if not s:
        return (1, 1)
    rest = s[1:]
    return (s[0], size_of(rest) if known(rest) else 0) if rest else (s[0], 1)


register_unary(
    "Flatten", shape_infer(_flatten_shape), _copy_reshaped, _grad_reshaped, inplace=True,
    grad_graph=_grad_graph_reshaped,
    aliases=("flatten",),
    doc="Flatten(data): collapse every axis but the first: (d0, d1, ..., dk) -> "
        "(d0, d1 * ... * dk).")


def _expand_dims_shape(p, s):
    axis = normalize_axis("expand_dims", p.axis, len(s), s, extra=1)
    return s[:axis] + (1,) + s[axis:]


register_unary(
    "expand_dims", shape_infer(_expand_dims_shape), _copy_reshaped, _grad_reshaped, inplace=True,
    grad_graph=_grad_graph_reshaped,
    params=[Param("axis", "int", doc="where to insert the new axis; -ndim-1 <= axis <= ndim")],
    doc="expand_dims(data, axis): insert an axis of size 1 at ``axis``.")


def _squeeze_shape(p, s):
    if p.axis is None:
        if not known(s):
            return None          # an unknown dim may be 1: the output's rank is unknown too
        return legacy_shape(tuple(d for d in s if d != 1))
    axes = normalize_axes("squeeze", (p.axis,) if isinstance(p.axis, int) else p.axis, len(s), s)
    for a in axes:
        if s[a] not in (0, 1):
            raise ShapeError("squeeze", f"axis {a} of data {shape_str(s)} has size {s[a]}; only "
                                        f"axes of size 1 can be squeezed")
    return legacy_shape(tuple(d for i, d in enumerate(s) if i not in axes))


register_unary(
    "squeeze", shape_infer(_squeeze_shape), _copy_reshaped, _grad_reshaped, inplace=True,
    grad_graph=_grad_graph_reshaped,
    params=[Param("axis", "axis", None, "the axes to remove (each of size 1); None: all size-1 "
                                        "axes")],
    doc="squeeze(data, axis=None): remove axes of size 1 (a (1, 1) array becomes (1,)).")


# ---- transpose, SwapAxis ------------------------------------------------------------------------
def _perm(p, ndim, shape=None):
    if not p.axes:
        return tuple(range(ndim))[::-1]
    if len(p.axes) != ndim:
        raise ShapeError("transpose", f"axes={tuple(p.axes)} has {len(p.axes)} entries, data "
                                      f"{shape_str(shape)} has {ndim} dims")
    return normalize_axes("transpose", p.axes, ndim, shape, "axes")


def _transpose_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    ctx.xp.copyto(outputs[0], x.transpose(_perm(p, x.ndim)))


def _transpose_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        assign(dx, req[0], out_grads[0].transpose(np.argsort(_perm(p, dx.ndim))))


register_unary(
    "transpose", shape_infer(lambda p, s: tuple(s[a] for a in _perm(p, len(s), s))),
    _transpose_forward, _transpose_backward,
    grad_graph=lambda F, p, out_grads, inputs, outputs: [F.transpose(
        out_grads[0], axes=tuple(int(a) for a in np.argsort(_perm(p, inputs[0].ndim))))],
    params=[Param("axes", "shape", (), "the permutation; () reverses the axes")],
    doc="transpose(data, axes=()): permute the axes (reverse them by default).")


def _swap(p, ndim, shape=None):
    a = normalize_axis("SwapAxis", p.dim1, ndim, shape, "dim1")
    b = normalize_axis("SwapAxis", p.dim2, ndim, shape, "dim2")
    order = list(range(ndim))
    order[a], order[b] = b, a
    return order


def _swap_forward(ctx, p, inputs, aux, outputs, is_train):
    x = inputs[0]
    ctx.xp.copyto(outputs[0], x.transpose(_swap(p, x.ndim)))


def _swap_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx = in_grads[0]
    if dx is not None:
        assign(dx, req[0], out_grads[0].transpose(_swap(p, dx.ndim)))


register_unary(
    "SwapAxis", shape_infer(lambda p, s: tuple(s[a] for a in _swap(p, len(s), s))),
    _swap_forward, _swap_backward, aliases=("swapaxes",),
    params=[Param("dim1", "int", 0, "the first axis"), Param("dim2", "int", 0, "the second")],
    doc="SwapAxis(data, dim1=0, dim2=0): exchange two axes.")


# ---- depth_to_space / space_to_depth (NCHW) ----------------------------------------------------
def _d2s_shape(p, s, inverse=False):
    op = "space_to_depth" if inverse else "depth_to_space"
    b = p.block_size
    if b < 1:
        raise ShapeError(op, f"block_size must be >= 1, got {b}")
    if len(s) != 4:
        raise ShapeError(op, f"data must be 4-d (N, C, H, W), got shape {shape_str(s)}")
    n, c, h, w = s
    if inverse:
        if h % b or w % b:
            raise ShapeError(op, f"height and width of data {shape_str(s)} must be divisible by "
                                 f"block_size={b}")
        return (n, c * b * b, h // b, w // b)
    if c % (b * b):
        raise ShapeError(op, f"channels of data {shape_str(s)} must be divisible by "
                             f"block_size**2={b * b}")
    return (n, c // (b * b), h * b, w * b)


def _d2s(x, b, out_shape):
    """depth_to_space as a reshape-transpose-reshape (a view chain, copied once by the caller)."""
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2).reshape(out_shape)


def _s2d(x, b, out_shape):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(out_shape)


def _space_op(name, fwd, bwd, inverse, what):
    def forward(ctx, p, inputs, aux, outputs, is_train):
        outputs[0][...] = fwd(inputs[0], p.block_size, outputs[0].shape)

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        dx = in_grads[0]
        if dx is not None:
            assign(dx, req[0], bwd(out_grads[0], p.block_size, dx.shape))

    register_unary(
        name, shape_infer(lambda p, s: _d2s_shape(p, s, inverse)), forward, backward,
        params=[Param("block_size", "int", doc="the block edge length")],
        doc=f"{name}(data, block_size): rearrange {what} (NCHW).")


_space_op("depth_to_space", _d2s, _s2d, False, "channels into blocks of space")
_space_op("space_to_depth", _s2d, _d2s, True, "blocks of space into channels")


# ---- reshape_like -------------------------------------------------------------------------------
def _span(op, which, begin, end, ndim, shape):
    b = 0 if begin is None else normalize_axis(op, begin, ndim, shape, f"{which}_begin", extra=1)
    e = ndim if end is None else normalize_axis(op, end, ndim, shape, f"{which}_end", extra=1)
    if b > e:
        raise ShapeError(op, f"{which}_begin={begin} is after {which}_end={end} for "
                             f"{which} {shape_str(shape)}")
    return b, e


def _reshape_like_infer(p, in_shapes):
    lhs, rhs = in_shapes
    if lhs is None or rhs is None:
        return in_shapes, [None], []
    lb, le = _span("reshape_like", "lhs", p.lhs_begin, p.lhs_end, len(lhs), lhs)
    rb, re_ = _span("reshape_like", "rhs", p.rhs_begin, p.rhs_end, len(rhs), rhs)
    out = tuple(lhs[:lb]) + tuple(rhs[rb:re_]) + tuple(lhs[le:])
    if known(lhs) and known(out) and size_of(out) != size_of(lhs):
        raise ShapeError("reshape_like", f"lhs {shape_str(lhs)} (size {size_of(lhs)}) cannot take "
                                         f"the shape {shape_str(out)} (size {size_of(out)}) "
                                         f"from rhs {shape_str(rhs)}")
    return in_shapes, [out], []


register(OpDef(
    "reshape_like", inputs=("lhs", "rhs"), params=[
        Param("lhs_begin", "int", None, "first lhs axis to replace"),
        Param("lhs_end", "int", None, "end of the lhs axes to replace"),
        Param("rhs_begin", "int", None, "first rhs axis to take"),
        Param("rhs_end", "int", None, "end of the rhs axes to take")],
    infer_shape=_reshape_like_infer, infer_type=first_type_infer("reshape_like"),
    forward=_copy_reshaped, backward=_grad_reshaped, inplace=((0, 0),), bwd_inputs=(),
    bwd_outputs=(),
    doc="reshape_like(lhs, rhs, lhs_begin=None, lhs_end=None, rhs_begin=None, rhs_end=None): "
        "lhs with the axes lhs[lhs_begin:lhs_end] replaced by rhs[rhs_begin:rhs_end]."))


# ---- diag ---------------------------------------------------------------------------------------
def _diag_len(op, s, p):
    a1 = normalize_axis(op, p.axis1, len(s), s, "axis1")
    a2 = normalize_axis(op, p.axis2, len(s), s, "axis2")
    if a1 == a2:
        raise ShapeError(op, f"axis1 and axis2 must differ, both are {a1}")
    n = min(s[a1] + min(p.k, 0), s[a2] - max(p.k, 0))
    if n <= 0 and s[a1] and s[a2]:
        raise ShapeError(op, f"diagonal k={p.k} does not exist in data of shape {shape_str(s)} "
                             f"(axes {a1}, {a2})")
    return a1, a2, max(n, 0)


def _diag_shape(p, s):
    if len(s) == 1:
        n = s[0] + abs(p.k) if s[0] else 0
        return (n, n)
    a1, a2, n = _diag_len("diag", s, p)
    return tuple(d for i, d in enumerate(s) if i not in (a1, a2)) + (n,)


def _diag_forward(ctx, p, inputs, aux, outputs, is_train):
    x, out = inputs[0], outputs[0]
    if x.ndim == 1:
        out.fill(0)
        r, c = _diag_rc(x.shape[0], p.k)
        out[r, c] = x
    else:
        ctx.xp.copyto(out, ctx.xp.diagonal(x, p.k, p.axis1, p.axis2))


def _diag_rc(n, k):
    rows = np.arange(n) + max(-k, 0)
    return rows, rows + k


def _diag_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    dx, g = in_grads[0], out_grads[0]
    if dx is None:
        return
    xp = ctx.xp
    if dx.ndim == 1:
        assign(dx, req[0], xp.diagonal(g, p.k))
        return
    a1, a2, n = _diag_len("diag", dx.shape, p)
    full = xp.zeros(dx.shape, dx.dtype)
    r, c = _diag_rc(n, p.k)
    xp.moveaxis(full, (a1, a2), (-2, -1))[..., r, c] = g
    assign(dx, req[0], full)


register_unary(
    "diag", shape_infer(_diag_shape), _diag_forward, _diag_backward,
    params=[Param("k", "int", 0, "the diagonal: 0 main, > 0 above, < 0 below"),
            Param("axis1", "int", 0, "first axis of the 2-d planes (N-d input)"),
            Param("axis2", "int", 1, "second axis of the 2-d planes (N-d input)")],
    doc="diag(data, k=0, axis1=0, axis2=1): a 1-d input becomes a matrix with it on the k-th "
        "diagonal; an N-d input gives its k-th diagonals (numpy.diagonal), as the last axis.")


# ---- Cast, _copyto, shape_array, size_array ------------------------------------------------------
def _cast_forward(ctx, p, inputs, aux, outputs, is_train):
    ctx.xp.copyto(outputs[0], inputs[0], casting="unsafe")


def _cast_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    assign(in_grads[0], req[0], out_grads[0])        # assign converts back to the input dtype


register_unary(
    "Cast", shape_infer(lambda p, s: s), _cast_forward, _cast_backward, aliases=("cast",),
    params=[Param("dtype", "dtype", doc="the output type")],
    infer_type=lambda p, t: (list(t), [p.dtype], []),
    doc="Cast(data, dtype): the values converted to ``dtype``; the gradient is converted back "
        "to the input's type.")

register_unary(
    "_copyto", shape_infer(lambda p, s: s), _cast_forward, _cast_backward,
    doc="_copyto(data): a copy of the input (what NDArray.copyto records under autograd).")


def _shape_array_forward(ctx, p, inputs, aux, outputs, is_train):
    outputs[0][...] = ctx.xp.asarray(inputs[0].shape, dtype=np.int64)


def _size_array_forward(ctx, p, inputs, aux, outputs, is_train):
    outputs[0][...] = inputs[0].size


_int64 = np.dtype(np.int64)
register_unary(
    "shape_array", shape_infer(lambda p, s: (len(s),)), _shape_array_forward, ZERO_GRAD,
    infer_type=lambda p, t: (list(t), [_int64], []),
    doc="shape_array(data): the shape of ``data`` as a 1-d int64 array.")
register_unary(
    "size_array", shape_infer(lambda p, s: (1,)), _size_array_forward, ZERO_GRAD,
    infer_type=lambda p, t: (list(t), [_int64], []),
    doc="size_array(data): the number of elements of ``data`` as a (1,) int64 array.")
