"""Row-wise softmax and softmax-cross-entropy gradient for the loss heads, without the big
temporaries of the readable versions (``ops/nn/softmax.py: softmax_into`` and
``ops/nn/loss.py``'s SoftmaxOutput backward): on the LSTM workload's (2048, 10000) output
those allocate and walk several 80 MB arrays per call.

* ``softmax_rows(x, out, log)``: ``out = softmax(x)`` (or log-softmax) along the last axis of
  2-D arrays, computed by the reference's numpy operations on blocks of rows that stay in
  cache (so the result is bitwise the same; numpy's SIMD ``exp`` beats a numba loop).
* ``ce_grad_rows(prob, target, scale, dst, add)``: ``dst[i] (=|+=) (prob[i] - onehot(target[i]))
  * scale``, where a target outside ``[0, classes)`` has no one-hot entry (as comparing it with
  ``arange(classes)`` gives in the reference). ``scale`` has prob's dtype so the product rounds
  like numpy's.

Both take C-contiguous 2-D float32/float64 arrays (``usable`` checks); ``out`` may be ``x``
and ``dst`` may be ``prob``.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["usable", "softmax_rows", "ce_grad_rows"]


_BLOCK_BYTES = 1 << 20      # rows per block: about 1 MB of data


def softmax_rows(x, out, log: bool) -> None:
    """out = softmax(x) (log-softmax if ``log``) along axis 1, a block of rows at a time."""
    rows, cols = x.shape
    block = max(1, _BLOCK_BYTES // max(1, cols * x.itemsize))
    tmp = np.empty((min(block, rows), cols), x.dtype) if log else None
    for r0 in range(0, rows, block):
        xb, ob = x[r0:r0 + block], out[r0:r0 + block]
        m = xb.max(axis=1, keepdims=True)
        if log:
            t = tmp[:len(xb)]
            np.subtract(xb, m, out=t)
            s = np.exp(t).sum(axis=1, keepdims=True)
            np.subtract(t, np.log(s), out=ob)
        else:
            np.subtract(xb, m, out=ob)
            np.exp(ob, out=ob)
            np.divide(ob, ob.sum(axis=1, keepdims=True), out=ob)


def usable(*arrays) -> bool:
    """The kernels apply: CPU numpy arrays, 2-D, C-contiguous, one float32/float64 dtype."""
    dt = arrays[0].dtype
    return all(type(a) is np.ndarray and a.ndim == 2 and a.flags.c_contiguous and a.dtype == dt
               for a in arrays) and dt in (np.float32, np.float64)


@numba.njit(nogil=True, cache=True)
def ce_grad_rows(prob, target, scale, dst, add):
    rows, cols = prob.shape
    one = prob.dtype.type(1)
    for i in range(rows):
        t = target[i]
        for j in range(cols):
            v = prob[i, j]
            if j == t:
                v = v - one
            if add:
                dst[i, j] += v * scale
            else:
                dst[i, j] = v * scale
