"""``Embedding``: look up rows of a (input_dim, output_dim) weight by integer index.

``out[..., :] = weight[int(data[...]), :]``; indices are truncated to integers (MXNet's cast).
An index outside ``[0, input_dim)`` is an error naming the index, its position and input_dim
(MXNet silently clips it to the nearest row). Index values are only known when the kernel
runs, so the error is raised by the engine at the next wait on the output (``asnumpy()``,
``wait_to_read()``), and every later read of that output raises it again.

The weight gradient accumulates the head gradient of every lookup into its row (repeated
indices add up), with a numba scatter-add; ``sparse_grad=True`` is accepted and gives the same
dense gradient. The data (indices) get no gradient.
"""
from __future__ import annotations

import numpy as np

from ...base import DTypeError, HybridNetError, ShapeError
from ..kernels.scatter import scatter_add_rows
from ..params import Param
from ..registry import OpDef, assign, merge_shape, register

__all__: list = []


def _embedding_infer_shape(p, in_shapes):
    data, weight = in_shapes
    if p.input_dim < 1 or p.output_dim < 1:
        raise ShapeError("Embedding", f"input_dim={p.input_dim} and output_dim={p.output_dim} "
                                      f"must both be at least 1")
    weight = merge_shape("Embedding", f"weight (for input_dim={p.input_dim}, "
                                      f"output_dim={p.output_dim})", weight,
                         (p.input_dim, p.output_dim))
    out = None if data is None else tuple(data) + (p.output_dim,)
    return [data, weight], [out], []


def _embedding_infer_type(p, in_types):
    weight = in_types[1]
    if weight is None:
        weight = p.dtype
    elif "dtype" in p.raw and np.dtype(weight) != p.dtype:
        raise DTypeError(f"Embedding: weight has dtype {np.dtype(weight).name}, expected "
                         f"{p.dtype.name} from dtype={p.dtype.name}")
    # an unset dtype parameter follows a given weight (MXNet would insist on float32)
    return [in_types[0], weight], [weight], []


def _indices(xp, data, input_dim):
    """Row indices of ``data`` (truncated to int); HybridNetError for one out of range."""
    idx = data.astype(np.int64)
    bad = (idx < 0) | (idx >= input_dim)
    if bool(bad.any()):
        flat = int(xp.argmax(bad.reshape(-1)))
        pos = tuple(int(i) for i in np.unravel_index(flat, data.shape))
        raise HybridNetError(f"Embedding: index {float(data.reshape(-1)[flat]):g} at data "
                             f"position {pos} is out of range for input_dim={input_dim} "
                             f"(expected 0 <= index < {input_dim})")
    return idx


def _embedding_forward(ctx, p, inputs, aux, outputs, is_train):
    xp = ctx.xp
    data, weight = inputs
    idx = _indices(xp, data, p.input_dim)
    out = outputs[0].reshape(-1, p.output_dim)
    if xp is np:        # gather straight into the output (mode='raise' would buffer a copy)
        np.take(weight, idx.reshape(-1), axis=0, out=out, mode="clip")   # range checked above
    else:
        out[...] = weight[idx.reshape(-1)]


def _embedding_backward(ctx, p, out_grads, inputs, outputs, aux, in_grads, req):
    xp = ctx.xp
    data = inputs[0]
    assign(in_grads[0], req[0], 0)
    if req[1] == "null":
        return
    idx = data.astype(np.int64).reshape(-1)
    rows = out_grads[0].reshape(-1, p.output_dim)
    dw = in_grads[1]
    if req[1] != "add":
        dw[...] = 0
    scatter_add_rows(xp, dw, idx, rows)


register(OpDef(
    "Embedding",
    params=[Param("input_dim", "int", doc="vocabulary size: indices are 0 .. input_dim-1"),
            Param("output_dim", "int", doc="embedding size"),
            Param("dtype", "dtype", np.dtype(np.float32), "dtype of weight and output"),
            Param("sparse_grad", "bool", False, "accepted; the gradient is dense")],
    inputs=("data", "weight"), infer_shape=_embedding_infer_shape,
    infer_type=_embedding_infer_type, forward=_embedding_forward,
    backward=_embedding_backward, bwd_inputs=(0,), bwd_outputs=(),
    doc="Embedding(data, weight, input_dim, output_dim, dtype='float32', sparse_grad=False): "
        "map integer indices to rows of weight; output shape data.shape + (output_dim,). "
        "Out-of-range indices raise an error (at the next wait)."))
