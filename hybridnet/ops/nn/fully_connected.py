"""FullyConnected: ``out = data @ weight.T + bias``.

With ``flatten=True`` (the default) data is collapsed to (batch, features) first; with
``flatten=False`` the product applies to the last axis and the leading axes are kept. Every
product goes straight to BLAS (``matmul`` with ``out=``) on 2-D views of the buffers, the bias
is added in place, and gradients are written into the given buffers -- for req 'add' a product
goes to a scratch buffer first (BLAS's own accumulate is not reachable through numpy).

Threads: on CPU each product, the bias add and the bias gradient split by rows over the BLAS
policy's threads (engine/parallel.py), each slice with a one-thread BLAS, instead of handing
the whole product to a multi-threaded OpenBLAS, whose workers spin for a while after every
threaded call on the cores the next operator (softmax, an RNN's two layer threads) wants, and
lose their core at every synchronisation when other programs are busy. In-process A/Bs of whole
Module training steps (2 cores, load average 4-7, alternating, medians) cut CPU time per step by
13% (LSTM), 19% (FCN-R batch 1024) and 49% (FCN-R batch 64), and wall time with it.
"""
from __future__ import annotations

import numpy as np

from ...base import ParamError, ShapeError, shape_str
from ...engine.parallel import parallel_slices, parallel_sum
from ..params import Param
from ..registry import OpDef, assign, register

__all__: list = []


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _infer_shape(p, in_shapes):
    nh = p.num_hidden
    if nh <= 0:
        raise ParamError(f"FullyConnected: num_hidden={nh} must be positive")
    data, weight = in_shapes[0], in_shapes[1]
    if data is not None and len(data) == 0:
        raise ShapeError("FullyConnected", "data is a scalar (shape ()); expected at least "
                                           "one axis")
    features = 0
    if data is not None:
        rest = data[1:] if p.flatten else data[-1:]
        features = _prod(rest) if all(rest) else 0
    if weight is not None:
        if len(weight) != 2 or weight[0] not in (0, nh) or (features and weight[1] not in
                                                             (0, features)):
            raise ShapeError("FullyConnected",
                             f"weight has shape {shape_str(weight)}, expected "
                             f"{shape_str((nh, features))} from data {shape_str(data)} and "
                             f"num_hidden={nh}")
        if not features and weight[1] and data is not None:
            # the one unknown feature axis follows from the weight
            if not p.flatten:
                data = tuple(data[:-1]) + (weight[1],)
            elif len(data) == 2:
                data = (data[0], weight[1])
        features = features or weight[1]
    ins = [data, (nh, features)]
    if not p.no_bias:
        bias = in_shapes[2]
        if bias is not None and (len(bias) != 1 or bias[0] not in (0, nh)):
            raise ShapeError("FullyConnected", f"bias has shape {shape_str(bias)}, expected "
                                               f"({nh},) for num_hidden={nh}")
        ins.append((nh,))
    out = None
    if data is not None:
        out = (data[0], nh) if p.flatten else tuple(data[:-1]) + (nh,)
    return ins, [out], []


def _rows(a, cols: int):
    """2-D (rows, cols) view of a contiguous array."""
    return a.reshape(-1, cols)


def _matmul(xp, a, b, out) -> None:
    """out = a @ b (2-D); on numpy arrays split over the policy's threads, each product on a
    one-thread BLAS: by rows of ``a`` and ``out``, or -- when ``a`` has fewer rows than ``b``
    has columns (a small batch times a large weight) -- by columns of ``b`` and ``out``, so
    that each thread reads its own part of the larger operand (splitting a batch of 64 made
    every thread stream the whole weight: 20% slower than one two-thread BLAS call)."""
    if xp is not np:
        xp.matmul(a, b, out=out)
        return
    if a.shape[0] >= b.shape[1]:
        def work(_, rows):
            np.matmul(a[rows], b, out=out[rows])
        parallel_slices(a.shape[0], work, out.nbytes + a.nbytes)
    else:
        def work(_, cols):
            np.matmul(a, b[:, cols], out=out[:, cols])
        parallel_slices(b.shape[1], work, out.nbytes + b.nbytes)


def _into(xp, dst, req, a, b):
    """dst (=|+=) a @ b through BLAS; dst is 2-D."""
    if req == "write" and dst.flags.c_contiguous:
        _matmul(xp, a, b, dst)
    else:
        product = xp.empty((a.shape[0], b.shape[1]), dst.dtype)
        _matmul(xp, a, b, product)
        assign(dst, req, product)


def _forward(ctx, p, inputs, aux, outputs, is_train):
    xp, w = ctx.xp, inputs[1]
    y = outputs[0]
    x2 = _rows(inputs[0], w.shape[1])
    if y.flags.c_contiguous:
        y2 = _rows(y, p.num_hidden)
        _matmul(xp, x2, w.T, y2)
        if not p.no_bias:
            _add_bias(xp, y2, inputs[2])
    else:
        y[...] = (x2 @ w.T + (0 if p.no_bias else inputs[2])).reshape(y.shape)


def _backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp, x, w = ctx.xp, inputs[0], inputs[1]
    dy2 = _rows(out_grads[0], p.num_hidden)
    if req[0] != "null":
        dx = in_grads[0]
        if dx.flags.c_contiguous:
            _into(xp, _rows(dx, w.shape[1]), req[0], dy2, w)
        else:
            assign(dx, req[0], (dy2 @ w).reshape(dx.shape))
    if req[1] != "null":
        _into(xp, in_grads[1], req[1], dy2.T, _rows(x, w.shape[1]))
    if not p.no_bias and req[2] != "null":
        _bias_grad(xp, dy2, in_grads[2], req[2])


def _add_bias(xp, y2, bias) -> None:
    """y2 += bias, by rows on the policy's threads (numpy arrays)."""
    if xp is not np:
        y2 += bias
        return

    def work(_, rows):
        y2[rows] += bias
    parallel_slices(y2.shape[0], work, y2.nbytes)


def _bias_grad(xp, dy2, db, req: str) -> None:
    """db (=|+=) dy2.sum(axis=0), summed by row slices on the policy's threads (numpy)."""
    assign(db, req, parallel_sum(dy2, (0,)) if xp is np else dy2.sum(axis=0))


def _grad_graph(F, p, out_grads, inputs, outputs):
    """The gradient as recordable nd calls, for autograd.grad(create_graph=True)."""
    x, w = inputs[0], inputs[1]
    dy2 = out_grads[0].reshape((-1, p.num_hidden))
    grads = [F.dot(dy2, w).reshape(x.shape),
             F.dot(dy2, x.reshape((-1, w.shape[1])), transpose_a=True)]
    return grads if p.no_bias else grads + [dy2.sum(axis=0)]


register(OpDef(
    "FullyConnected",
    params=[Param("num_hidden", "int", doc="number of output features"),
            Param("no_bias", "bool", False, "whether to leave out the bias"),
            Param("flatten", "bool", True, "collapse all axes but the first before the "
                                           "product (False: apply to the last axis)")],
    inputs=lambda p: ["data", "weight"] if p.no_bias else ["data", "weight", "bias"],
    infer_shape=_infer_shape, forward=_forward, backward=_backward, grad_graph=_grad_graph,
    bwd_inputs=(0, 1), bwd_outputs=(),
    doc="FullyConnected(data, weight, bias=None, num_hidden, no_bias=False, flatten=True): "
        "a dense layer, out = data @ weight.T + bias.\n\n"
        "data (N, *rest) with weight (num_hidden, prod(rest)) gives (N, num_hidden); with "
        "flatten=False data (..., k) and weight (num_hidden, k) give (..., num_hidden).\n\n"
        "Example: mx.nd.FullyConnected(x, w, b, num_hidden=10)"))
