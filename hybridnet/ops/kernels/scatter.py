"""Row scatter-add (``out[idx[i]] += rows[i]``): the backward of row gathers (Embedding, take).

numpy's ``np.add.at`` is correct but slow; the numba loop here runs one pass with no
temporaries and releases the GIL. On GPU, ``cupyx.scatter_add`` does the same.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["add_at", "scatter_add_rows"]


@numba.njit(nogil=True, cache=True)
def _scatter_add_rows(idx, rows, out):
    width = rows.shape[1]
    for i in range(idx.shape[0]):
        r = idx[i]
        for j in range(width):
            out[r, j] += rows[i, j]


def add_at(xp, dst, index, values) -> None:
    """``dst[index] += values`` with repeated positions adding up: ``np.add.at``, or
    cupyx's scatter_add on GPU (the one place the operators need it)."""
    if xp is np:
        np.add.at(dst, index, values)
    else:
        import cupyx  # noqa: PLC0415
        cupyx.scatter_add(dst, index, values)


def scatter_add_rows(xp, out, idx, rows) -> None:
    """Add row ``rows[i]`` into ``out[idx[i]]`` for every i (repeated indices accumulate).

    ``out`` is (V, D), ``idx`` integer (M,), ``rows`` (M, D); indices must be in range.
    """
    if xp is not np or not out.flags.c_contiguous or out.dtype not in (np.float32, np.float64):
        add_at(xp, out, idx, rows)
        return
    _scatter_add_rows(np.ascontiguousarray(idx, dtype=np.int64),
                      np.ascontiguousarray(rows, dtype=out.dtype), out)
