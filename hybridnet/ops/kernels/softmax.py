"""Row-wise softmax and softmax-cross-entropy gradient kernels (numba) for the loss heads.

The numpy versions (``ops/nn/softmax.py: softmax_into`` and ``ops/nn/loss.py``'s
SoftmaxOutput backward) are the readable references; these do the same arithmetic one row at a
time in cache, with no temporaries: on the LSTM workload's (2048, 10000) output the numpy code
allocates and walks several 80 MB arrays per call.

* ``softmax_rows(x, out, log)``: ``out[i] = softmax(x[i])`` (or log-softmax): subtract the row
  max, exponentiate, normalize -- accumulating in float64 (more accurate than numpy's float32
  pairwise sum, never less).
* ``ce_grad_rows(prob, target, scale, dst, add)``: ``dst[i] (=|+=) (prob[i] - onehot(target[i]))
  * scale``, where a target outside ``[0, classes)`` has no one-hot entry (as comparing it with
  ``arange(classes)`` gives in the reference). ``scale`` has prob's dtype so the product rounds
  like numpy's.

Both take C-contiguous 2-D float32/float64 arrays (``usable`` checks); ``dst`` may be ``prob``.
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["usable", "softmax_rows", "ce_grad_rows"]


def usable(*arrays) -> bool:
    """The kernels apply: CPU numpy arrays, 2-D, C-contiguous, one float32/float64 dtype."""
    dt = arrays[0].dtype
    return all(type(a) is np.ndarray and a.ndim == 2 and a.flags.c_contiguous and a.dtype == dt
               for a in arrays) and dt in (np.float32, np.float64)


@numba.njit(nogil=True, cache=True, fastmath=False)
def softmax_rows(x, out, log):
    rows, cols = x.shape
    for i in range(rows):
        m = -np.inf
        for j in range(cols):
            if x[i, j] > m:
                m = x[i, j]
        if log:
            s = 0.0
            for j in range(cols):
                s += math.exp(x[i, j] - m)
            ls = math.log(s)
            for j in range(cols):
                out[i, j] = (x[i, j] - m) - ls
        else:
            s = 0.0
            for j in range(cols):
                e = math.exp(x[i, j] - m)
                out[i, j] = e
                s += e
            inv = out.dtype.type(s)
            for j in range(cols):
                out[i, j] = out[i, j] / inv


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
