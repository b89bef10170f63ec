"""``LibSVMIter``: batches from LibSVM-format text files, streamed in chunks.

Each line is ``label index:value index:value ...`` with **zero-based** indices (MXNet's
convention, not LIBSVM's one-based one). Batches are returned as *dense* NDArrays: hybridnet
has no CSR storage, so ``batch.data[0]`` is a (batch_size, num_features) array with zeros where
the file has no entry (MXNet returns a CSRNDArray with the same values). Batching and
``round_batch`` follow ``CSVIter``.
"""
from __future__ import annotations

import numpy as np

from ..base import HybridNetError
from .csv_iter import TextIter, TextRows, shape_of

__all__ = ["LibSVMIter"]


def _parse_libsvm(width: int, what: str, with_label: bool):
    """Parse lines into (n, width) dense rows; with ``with_label`` a first column of labels."""
    def parse(lines, where):
        out = np.zeros((len(lines), width + (1 if with_label else 0)), np.float64)
        base = 1 if with_label else 0
        for i, line in enumerate(lines):
            tokens = line.split()
            try:
                out[i, 0] = float(tokens[0]) if with_label else 0.0
                for tok in tokens[1:]:
                    key, _, value = tok.partition(b":")
                    j = int(key)
                    if not 0 <= j < width:
                        raise HybridNetError(f"{what}: {where(i)}: feature index {j} is outside "
                                             f"0..{width - 1} (the shape has {width} values; "
                                             f"indices are zero-based)")
                    out[i, base + j] = float(value)
            except ValueError as err:
                raise HybridNetError(f"{what}: {where(i)} is not in LibSVM format "
                                     f"('label index:value ...'): {err}") from None
        return out
    return parse


def _count_rows(path: str, what: str) -> int:
    rows = TextRows(path, lambda lines, where: np.empty((len(lines), 0)), what)
    n = 0
    while True:
        part = rows.take(1 << 20)
        if part is None:
            rows.close()
            return n
        n += len(part)


class LibSVMIter(TextIter):
    """Batches from a LibSVM file (``mx.io.LibSVMIter``); dense output (see module docstring).

    Args:
        data_libsvm: the file (or a directory of files): ``label idx:val ...`` per line.
        data_shape: (num_features,).
        label_libsvm: optional LibSVM file whose lines give the labels (its first column is
            ignored), for multi-dimensional labels of ``label_shape``; by default the labels are
            the data file's first column.
        label_shape: shape of one label (default (1,)).
        batch_size: examples per batch.
        round_batch: must stay True, as in MXNet.
        num_parts, part_index: read only rows [n*i/parts, n*(i+1)/parts) -- every row belongs
            to exactly one part.
        dtype, data_name, label_name, chunk_bytes: as in ``CSVIter``.

    Example::

        >>> it = mx.io.LibSVMIter(data_libsvm='data.t', data_shape=(3,), batch_size=3)
        >>> next(it).data[0].asnumpy()        # dense
    """

    def __init__(self, data_libsvm: str, data_shape, batch_size: int, label_libsvm: str = "NULL",
                 label_shape=(1,), round_batch: bool = True, num_parts: int = 1,
                 part_index: int = 0, dtype=None, data_name: str = "data",
                 label_name: str = "softmax_label", prefetch_buffer: int = 4, ctx: str = "gpu",
                 chunk_bytes: int = 4 << 20):
        what = "LibSVMIter"
        data_shape = shape_of(data_shape, f"{what}: data_shape")
        label_shape = shape_of(label_shape, f"{what}: label_shape")
        if len(data_shape) != 1 or len(label_shape) != 1:
            raise HybridNetError(f"{what}: data_shape and label_shape must have one dimension, "
                                 f"got {data_shape} and {label_shape}")
        if not round_batch:
            raise HybridNetError(f"{what}: only round_batch=True is supported (as in MXNet)")
        if not 0 <= part_index < num_parts:
            raise HybridNetError(f"{what}: part_index must be in [0, num_parts={num_parts}), got "
                                 f"{part_index}")
        dtype = "float32" if dtype in (None, "None") else str(np.dtype(dtype))
        start, count = 0, None
        if num_parts > 1:
            total = _count_rows(data_libsvm, f"{what} data_libsvm")
            start = total * part_index // num_parts
            count = total * (part_index + 1) // num_parts - start
        self._separate_labels = label_libsvm not in (None, "NULL", "")
        width = data_shape[0]
        data = TextRows(data_libsvm, _parse_libsvm(width, what, True), f"{what} data_libsvm",
                        chunk_bytes, start, count)
        label = None
        if self._separate_labels:
            label = TextRows(label_libsvm, _parse_libsvm(label_shape[0], what, False),
                             f"{what} label_libsvm", chunk_bytes, start, count)
        super().__init__(batch_size, data, label, data_shape, label_shape, dtype, True,
                         data_name, label_name, what)

    def _take(self, n: int):
        rows, label, index = super()._take(n)
        if rows is None:
            return rows, label, index
        if not self._separate_labels:
            label = rows[:, :1]
        return rows[:, 1:], label, index
