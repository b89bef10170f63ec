"""Loss heads: ``SoftmaxOutput`` (alias ``Softmax``), ``LinearRegressionOutput``,
``LogisticRegressionOutput``, ``MAERegressionOutput``, ``SVMOutput``, ``MakeLoss``,
``make_loss``; and the elementwise ``smooth_l1``.

A loss head's forward is the prediction (softmax, identity, sigmoid); its backward is the
gradient of the loss it stands for and ignores the head gradient (``is_loss``), so
``executor.backward()`` / ``out.backward()`` need no head gradient. The label input is named
``label`` (the Symbol front end names it ``<name>_label``); its gradient is zero.

SoftmaxOutput, exactly as MXNet 1.9 computes it (the semantics users asked about in
apache/mxnet#5981, #6202, #880):

* Forward: softmax over the flattened ``(batch, rest)`` view; over axis 1 with
  ``multi_output=True`` (data (N, K, d1, ...)); over the last axis with ``preserve_shape=True``.
* Label shapes: data's shape without the last axis (so ``(N,)`` for ``(N, K)`` data); with
  ``multi_output``: ``(N, d1*d2*...)``, ``(N, d1, d2, ...)`` or ``(N, 1, d1, ...)``. A label of
  data's own shape is a probability distribution: the gradient is ``(p - label) * grad_scale``,
  no normalization.
* Class labels are truncated to integers. The gradient at each position is ``p - onehot``;
  a label outside ``[0, K)`` subtracts nothing. ``use_ignore=True`` zeroes the gradient where
  ``label == ignore_label``. ``smooth_alpha`` replaces the one-hot target with ``1 - alpha`` on
  the label and ``alpha / (K - 1)`` elsewhere (not with ``multi_output``, as in MXNet).
* Scaling: ``grad_scale`` divided by: ``null`` -> 1 (``multi_output``: the positions per sample,
  d1*d2*...); ``batch`` -> the number of labels (``multi_output``: N times that); ``valid`` ->
  the number of labels != ``ignore_label`` (counted whether or not ``use_ignore`` is set; at
  least 1).
* ``out_grad=True``: MXNet 1.9 multiplies the gradient by the head's *own output* (its
  backward is handed the output in place of the head gradient); reproduced for identical
  numbers.
"""
from __future__ import annotations

import numpy as np

from ...base import ShapeError, shape_str
from .. import elemwise
from ..kernels import softmax as fast
from ..params import Param
from ..registry import OpDef, assign, register, same_shape_infer
from .softmax import label_infer_type, softmax_into

__all__: list = []


def _known(shape) -> bool:
    return shape is not None and all(d > 0 for d in shape)


def _label_error(op: str, label, expected: str, data):
    return ShapeError(op, f"label has shape {shape_str(label)}, expected {expected} for data "
                          f"{shape_str(data)}")


def _label_against(op: str, label, want: tuple, data):
    """Merge a (possibly partial) label shape with the one expected; ShapeError naming both."""
    if label is None:
        return want
    if len(label) != len(want) or any(a and b and a != b for a, b in zip(label, want)):
        raise _label_error(op, label, shape_str(want), data)
    return tuple(a or b for a, b in zip(label, want))


def _zero_label_grad(in_grads, req):
    if len(in_grads) > 1:
        assign(in_grads[1], req[1], 0)


# ---- SoftmaxOutput ----------------------------------------------------------------------------
def _so_multi_label_shapes(data):
    n, k = data[0], data[1]
    rest = data[2:]
    return [(n, int(np.prod(rest, dtype=np.int64))), (n,) + rest, (n, 1) + rest]


def _so_infer_shape(p, in_shapes):
    data, label = in_shapes
    if data is None or not _known(data):
        return [data, label], [data], []
    if label is not None and tuple(label) == tuple(data):
        return [data, label], [data], []                # probabilities as label
    if p.multi_output:
        if len(data) < 2:
            raise ShapeError("SoftmaxOutput", f"multi_output=True needs data (batch, classes, "
                                              f"...), got {shape_str(data)}")
        options = _so_multi_label_shapes(data)
        if label is None:
            return [data, options[0]], [data], []
        for want in options:
            if len(label) == len(want) and all(a in (0, b) for a, b in zip(label, want)):
                return [data, want], [data], []
        raise _label_error("SoftmaxOutput", label,
                           " or ".join(shape_str(s) for s in options[:2]), data)
    return [data, _label_against("SoftmaxOutput", label, tuple(data[:-1]), data)], [data], []


def _so_view(p, x):
    """The view of data/output softmax runs on, and the class axis in it."""
    if p.multi_output:
        return x.reshape(x.shape[0], x.shape[1], -1), 1
    if p.preserve_shape:
        return x.reshape(-1, x.shape[-1]), 1
    return x.reshape(x.shape[0], -1), 1


def _so_forward(ctx, p, inputs, aux, outputs, is_train):
    view, axis = _so_view(p, inputs[0])
    out_view, _ = _so_view(p, outputs[0])
    softmax_into(ctx.xp, view, axis, out_view)


def _so_valid_count(xp, p, idx):
    """How many labels differ from ignore_label (at least 1), as MXNet's 'valid' counts."""
    n = int((idx != int(p.ignore_label)).sum())
    return max(n, 1)


def _so_row_denom(xp, p, all_idx) -> int:
    """The gradient's divisor with one label per row (``normalization``)."""
    return {"null": 1, "batch": all_idx.size}.get(p.normalization) or _so_valid_count(
        xp, p, all_idx)


def _so_class_gradient(xp, p, prob, idx, class_axis):
    """p - target for integer labels ``idx`` (prob's shape without ``class_axis``)."""
    k = prob.shape[class_axis]
    classes = xp.arange(k).reshape((-1,) + (1,) * (prob.ndim - class_axis - 1))
    onehot = xp.expand_dims(idx, class_axis) == classes
    alpha = 0.0 if p.multi_output else p.smooth_alpha
    if alpha:
        target = xp.where(onehot, 1.0 - alpha, alpha / (k - 1)).astype(prob.dtype)
    else:
        target = onehot
    grad = prob - target
    if p.use_ignore:
        grad *= xp.expand_dims(idx != int(p.ignore_label), class_axis)
    return grad


def _so_backward_fast(p, label, out, dst, req) -> bool:
    """The common case of ``_so_backward`` -- one integer label per row, no smoothing,
    ignoring or out_grad -- in one numba pass into ``dst`` (kernels/softmax.py); False when
    the case or the arrays do not fit it."""
    if (req not in ("write", "add") or p.multi_output or p.use_ignore or p.out_grad or
            p.smooth_alpha or label.shape == out.shape):
        return False
    if not (out.flags.c_contiguous and type(dst) is np.ndarray and dst.flags.c_contiguous):
        return False
    prob, _ = _so_view(p, out)
    grad = dst.reshape(prob.shape)
    if not fast.usable(prob, grad):
        return False
    all_idx = label.reshape(-1).astype(np.int64)
    if all_idx.size < prob.shape[0]:
        return False
    fast.ce_grad_rows(prob, all_idx[:prob.shape[0]],
                      prob.dtype.type(p.grad_scale / _so_row_denom(np, p, all_idx)), grad,
                      req == "add")
    return True


def _so_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, label, out = ctx.xp, inputs[1], outputs[0]
    if _so_backward_fast(p, label, out, in_grads[0], req[0]):
        _zero_label_grad(in_grads, req)
        return
    if label.shape == out.shape:
        grad = (out - label) * p.grad_scale
    else:
        prob, axis = _so_view(p, out)
        if p.multi_output:
            idx = label.reshape(prob.shape[0], prob.shape[2]).astype(np.int64)
            positions = prob.shape[2]
            denom = {"null": positions, "batch": positions * prob.shape[0]}.get(
                p.normalization) or _so_valid_count(xp, p, idx)
        else:
            all_idx = label.reshape(-1).astype(np.int64)
            idx = all_idx[:prob.shape[0]]      # MXNet reads one label per row of the view
            denom = _so_row_denom(xp, p, all_idx)
        grad = _so_class_gradient(xp, p, prob, idx, axis) * (p.grad_scale / denom)
        grad = grad.reshape(out.shape)
    if p.out_grad:
        grad = grad * out
    assign(in_grads[0], req[0], grad)
    _zero_label_grad(in_grads, req)


register(OpDef(
    "SoftmaxOutput", aliases=("Softmax",),
    params=[Param("grad_scale", "float", 1.0, "scale the gradient by this"),
            Param("ignore_label", "float", -1.0, "label value ignored when use_ignore"),
            Param("multi_output", "bool", False, "softmax over axis 1 at every position"),
            Param("use_ignore", "bool", False, "zero the gradient where label == ignore_label"),
            Param("preserve_shape", "bool", False, "softmax over the last axis"),
            Param("normalization", "str", "null", "divide the gradient by 1 (null), the "
                                                  "batch size (batch) or the valid labels",
                  choices=("batch", "null", "valid")),
            Param("out_grad", "bool", False, "multiply the gradient by the output (MXNet 1.9)"),
            Param("smooth_alpha", "float", 0.0, "label smoothing")],
    inputs=("data", "label"), infer_shape=_so_infer_shape, infer_type=label_infer_type,
    forward=_so_forward, backward=_so_backward, is_loss=True, inplace=((0, 0),),
    bwd_inputs=(1,), bwd_outputs=(0,),
    doc="SoftmaxOutput(data, label, grad_scale=1, ignore_label=-1, multi_output=False, "
        "use_ignore=False, preserve_shape=False, normalization='null', out_grad=False, "
        "smooth_alpha=0): softmax forward; backward is the cross-entropy gradient "
        "(p - onehot(label)) * grad_scale / normalizer. See hybridnet/ops/nn/loss.py for "
        "every rule."))


# ---- regression outputs -----------------------------------------------------------------------
def _regression_infer_shape(name):
    def infer(p, in_shapes):
        data, label = in_shapes
        if data is None or not _known(data):
            return [data, label], [data], []
        # MXNet's convention: (N, 1) predictions take a 1-D (N,) label by default
        default = (data[0],) if len(data) == 2 and data[1] == 1 else tuple(data)
        if label is None:
            return [data, default], [data], []
        if not _known(label):
            if len(label) == len(default):
                label = _label_against(name, label, default, data)
            return [data, label], [data], []
        # any label with one row per sample and one value per output fits
        if label[0] != data[0] or int(np.prod(label)) != int(np.prod(data)):
            raise _label_error(name, label, f"{shape_str(default)} (or another shape with "
                                            f"{data[0]} rows and {int(np.prod(data))} elements)",
                               data)
        return [data, label], [data], []
    return infer


_REGRESSION = {
    # name: (forward(xp, x, out), gradient of the loss w.r.t. the prediction f, label t, doc)
    "LinearRegressionOutput": (lambda xp, x, out: xp.copyto(out, x),
                               lambda xp, f, t: f - t, "identity; grad (pred - label)"),
    "LogisticRegressionOutput": (elemwise._TABLE["sigmoid"][0],
                                 lambda xp, f, t: f - t, "sigmoid; grad (pred - label)"),
    "MAERegressionOutput": (lambda xp, x, out: xp.copyto(out, x),
                            lambda xp, f, t: xp.sign(f - t), "identity; grad sign(pred - label)"),
}


def _make_regression(name, fwd, grad, doc):
    def forward(ctx, p, inputs, aux, outputs, is_train):
        fwd(ctx.xp, inputs[0], outputs[0])

    def backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
        out, label = outputs[0], inputs[1]
        per_sample = out.size // out.shape[0] if out.ndim and out.shape[0] else 1
        g = grad(ctx.xp, out, label.reshape(out.shape)) * (p.grad_scale / per_sample)
        assign(in_grads[0], req[0], g)
        _zero_label_grad(in_grads, req)

    return OpDef(
        name, params=[Param("grad_scale", "float", 1.0, "scale the gradient by this")],
        inputs=("data", "label"), infer_shape=_regression_infer_shape(name),
        infer_type=label_infer_type, forward=forward, backward=backward, is_loss=True,
        inplace=((0, 0),), bwd_inputs=(1,), bwd_outputs=(0,),
        doc=f"{name}(data, label, grad_scale=1): {doc}, times grad_scale divided by the "
            f"number of outputs per sample. label: data's shape ((N,) for (N, 1) data).")


for _name, (_fwd, _grad, _doc) in _REGRESSION.items():
    register(_make_regression(_name, _fwd, _grad, _doc))


# ---- SVMOutput ----------------------------------------------------------------------------------
def _svm_infer_shape(p, in_shapes):
    data, label = in_shapes
    if data is None or not _known(data):
        return [data, label], [data], []
    return [data, _label_against("SVMOutput", label, tuple(data[:-1]), data)], [data], []


def _svm_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x, label = ctx.xp, inputs[0], inputs[1]
    k = x.shape[-1]
    scores = x.reshape(-1, k)
    is_label = label.reshape(-1, 1).astype(np.int64) == xp.arange(k)
    # hinge on the true class (push its score above margin) and on the others (below -margin)
    direction = 1 - 2 * is_label.astype(scores.dtype)      # -1 on the label, +1 elsewhere
    signed = -direction * scores
    active = p.margin > signed
    if p.use_linear:
        grad = direction * active
    else:
        grad = 2 * direction * (p.margin - signed) * active
    assign(in_grads[0], req[0], (grad * p.regularization_coefficient).reshape(x.shape))
    _zero_label_grad(in_grads, req)


register(OpDef(
    "SVMOutput",
    params=[Param("margin", "float", 1.0, "the margin"),
            Param("regularization_coefficient", "float", 1.0, "scale of the gradient"),
            Param("use_linear", "bool", False, "L1-SVM (hinge) instead of L2-SVM")],
    inputs=("data", "label"), infer_shape=_svm_infer_shape, infer_type=label_infer_type,
    forward=lambda ctx, p, inputs, aux, outputs, is_train: ctx.xp.copyto(outputs[0], inputs[0]),
    backward=_svm_backward, is_loss=True, inplace=((0, 0),), bwd_inputs=(0, 1), bwd_outputs=(),
    doc="SVMOutput(data, label, margin=1, regularization_coefficient=1, use_linear=False): "
        "identity forward; backward the one-vs-all L2-SVM (or L1 with use_linear) gradient "
        "over the last axis. label: data's shape without the last axis."))


# ---- MakeLoss / make_loss ----------------------------------------------------------------------
def _makeloss_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    x = inputs[0]
    scale = p.grad_scale
    if p.normalization == "batch":
        scale /= x.shape[0] if x.ndim else 1
    elif p.normalization == "valid":
        scale /= max(int((x > p.valid_thresh).sum()), 1)
    assign(in_grads[0], req[0], scale)


register(OpDef(
    "MakeLoss",
    params=[Param("grad_scale", "float", 1.0, "the gradient of every element"),
            Param("valid_thresh", "float", 0.0, "elements > this count as valid"),
            Param("normalization", "str", "null", "divide the gradient by 1 (null), the batch "
                                                  "size (batch) or the valid elements (valid)",
                  choices=("batch", "null", "valid"))],
    infer_shape=same_shape_infer("MakeLoss"),
    forward=lambda ctx, p, inputs, aux, outputs, is_train: ctx.xp.copyto(outputs[0], inputs[0]),
    backward=_makeloss_backward, is_loss=True, inplace=((0, 0),), bwd_inputs=(0,),
    bwd_outputs=(),
    doc="MakeLoss(data, grad_scale=1, valid_thresh=0, normalization='null'): treat data as a "
        "loss: identity forward, backward grad_scale (/ batch size or / #elements > "
        "valid_thresh) for every element, whatever the head gradient."))


def _make_loss_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    assign(in_grads[0], req[0], 1)


register(OpDef(
    "make_loss", outputs=("loss",), infer_shape=same_shape_infer("make_loss"),
    forward=lambda ctx, p, inputs, aux, outputs, is_train: ctx.xp.copyto(outputs[0], inputs[0]),
    backward=_make_loss_backward, is_loss=True, inplace=((0, 0),), bwd_inputs=(),
    bwd_outputs=(),
    doc="make_loss(data): treat data as a loss: identity forward, gradient 1 everywhere."))


# ---- smooth_l1 ------------------------------------------------------------------------------
# Written with a clip instead of np.where: a data-dependent selection mispredicts a branch per
# element and is ~10x slower. With q = min(|x|, 1/s2): 0.5 * s2 * q^2 + (|x| - q) is
# 0.5 * s2 * x^2 inside the band and |x| - 0.5/s2 outside.
def _smooth_l1_forward(ctx, p, inputs, aux, outputs, is_train):
    xp, x, out = ctx.xp, inputs[0], outputs[0]
    s2 = p.scalar * p.scalar
    ax = xp.abs(x)
    q = xp.minimum(ax, x.dtype.type(1.0 / s2))
    ax -= q
    xp.multiply(q, q, out=out)
    out *= x.dtype.type(0.5 * s2)
    out += ax


def _smooth_l1_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x = ctx.xp, inputs[0]
    s2 = p.scalar * p.scalar
    bound = x.dtype.type(1.0 / s2)
    deriv = xp.clip(x, -bound, bound)           # s2 * x inside the band, sign(x) outside
    deriv *= x.dtype.type(s2)
    deriv *= out_grads[0]
    assign(in_grads[0], req[0], deriv)


register(OpDef(
    "smooth_l1", params=[Param("scalar", "float", 1.0, "sigma")],
    infer_shape=same_shape_infer("smooth_l1"), forward=_smooth_l1_forward,
    backward=_smooth_l1_backward, inplace=((0, 0),), bwd_inputs=(0,), bwd_outputs=(),
    doc="smooth_l1(data, scalar=1): 0.5 * (sigma * x)^2 where |x| < 1 / sigma^2, else "
        "|x| - 0.5 / sigma^2 (sigma = scalar)."))
