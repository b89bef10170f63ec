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
and ``dst`` may be ``prob``. Both split the rows over the BLAS policy's threads
(engine/parallel.py: 2 on 2 cores), the kernels releasing the GIL.
"""
from __future__ import annotations

import numba
import numpy as np

from ...engine.parallel import parallel_slices

__all__ = ["usable", "softmax_rows", "ce_grad_rows"]


_BLOCK_BYTES = 1 << 20      # rows per block: about 1 MB of data


def softmax_rows(x, out, log: bool) -> None:
    """out = softmax(x) (log-softmax if ``log``) along axis 1: the rows split over the policy's
    threads (engine/parallel.py), each thread a block of rows at a time."""
    parallel_slices(x.shape[0], lambda _, part: _softmax_blocks(x[part], out[part], log),
                    x.nbytes)


def _softmax_blocks(x, out, log: bool) -> None:
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


def ce_grad_rows(prob, target, scale, dst, add: bool) -> None:
    """dst (=|+=) (prob - onehot(target)) * scale, the rows split over the policy's threads."""
    parallel_slices(prob.shape[0], lambda _, part: _ce_grad(prob[part], target[part], scale,
                                                            dst[part], add), prob.nbytes)


@numba.njit(nogil=True, cache=True)
def _ce_grad(prob, target, scale, dst, add):
    # the row without the one-hot entry first (a branch-free loop LLVM vectorizes), then that
    # entry alone, from the values it had before (dst may be prob)
    rows, cols = prob.shape
    one = prob.dtype.type(1)
    for i in range(rows):
        t = target[i]
        hit = 0 <= t < cols
        if hit:
            p_t, d_t = prob[i, t], dst[i, t]
        p, d = prob[i], dst[i]
        if add:
            for j in range(cols):
                d[j] += p[j] * scale
        else:
            for j in range(cols):
                d[j] = p[j] * scale
        if hit:
            d[t] = d_t + (p_t - one) * scale if add else (p_t - one) * scale
