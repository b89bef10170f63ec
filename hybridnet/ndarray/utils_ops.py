"""Python-level helpers of ``mx.nd`` built on operators: ``concatenate``, ``onehot_encode``,
``split_v2`` (MXNet's friendly wrapper over ``_split_v2``, also the ``NDArray.split_v2`` method).
"""
from __future__ import annotations

import numbers
from typing import Sequence

from ..base import HybridNetError
from .ndarray import NDArray, call_op

__all__ = ["concatenate", "onehot_encode", "split_v2"]


def concatenate(arrays: Sequence[NDArray], axis: int = 0, always_copy: bool = True) -> NDArray:
    """concatenate(arrays, axis=0, always_copy=True): join arrays along an existing axis.

    Args:
        arrays: NDArrays whose shapes agree except on ``axis``.
        axis: the axis to join along.
        always_copy: with a single array, False returns it unchanged instead of a copy.

    Returns:
        A new NDArray. Example: ``nd.concatenate([nd.zeros((2, 1)), nd.ones((2, 2))], axis=1)``
        has shape (2, 3).
    """
    arrays = list(arrays)
    if not arrays:
        raise HybridNetError("concatenate: got no arrays to join")
    if len(arrays) == 1 and not always_copy:
        return arrays[0]
    return call_op("Concat", *arrays, dim=axis, num_args=len(arrays))


def onehot_encode(indices: NDArray, out: NDArray) -> NDArray:
    """onehot_encode(indices, out): write the one-hot rows of ``indices`` into ``out``.

    ``out`` is (n, depth); row i gets 1 at ``indices[i]`` and 0 elsewhere. Returns ``out``.
    Example: ``nd.onehot_encode(nd.array([0, 2]), nd.zeros((2, 3)))``.
    """
    if out.ndim != 2 or indices.shape != (out.shape[0],):
        raise HybridNetError(f"onehot_encode: out must be 2-d (n, depth) with n = "
                             f"len(indices); got indices {indices.shape} and out {out.shape}")
    return call_op("one_hot", indices, depth=out.shape[1], dtype=out.dtype, out=out)


def split_v2(ary: NDArray, indices_or_sections, axis: int = 0, squeeze_axis: bool = False):
    """split_v2(ary, indices_or_sections, axis=0, squeeze_axis=False): split into pieces.

    Args:
        ary: the array to split.
        indices_or_sections: an int N (N equal pieces) or a tuple of split points
            (``(2, 5)`` gives ary[:2], ary[2:5], ary[5:] along ``axis``).
        axis: the axis to split.
        squeeze_axis: drop the split axis from every piece (pieces must have size 1 there).

    Returns:
        A list of NDArrays (a single NDArray when there is one piece).
        Example: ``nd.split_v2(nd.arange(6), (2, 5))``.
    """
    if isinstance(indices_or_sections, numbers.Integral) and \
            not isinstance(indices_or_sections, bool):
        indices, sections = (), int(indices_or_sections)
    elif isinstance(indices_or_sections, (tuple, list)):
        indices, sections = (0,) + tuple(int(i) for i in indices_or_sections), 0
    else:
        raise TypeError(f"split_v2: indices_or_sections must be an int or a tuple of ints, got "
                        f"{type(indices_or_sections).__name__}")
    return call_op("_split_v2", ary, indices=indices, axis=axis, squeeze_axis=squeeze_axis,
                   sections=sections)


def _split_v2_method(self, *args, **kwargs):
    """Same as ``mx.nd.split_v2(self, ...)``."""
    return split_v2(self, *args, **kwargs)


# split_v2 is a Python wrapper, not an operator, so fluent.attach() cannot add it
NDArray.split_v2 = _split_v2_method
