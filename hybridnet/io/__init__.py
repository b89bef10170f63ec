"""``mx.io``: data iterators.

In-memory arrays (``NDArrayIter``), text files streamed in chunks (``CSVIter``, ``LibSVMIter``),
MNIST idx files (``MNISTIter``), RecordIO image files decoded and augmented by a thread pool
(``ImageRecordIter``), and wrappers that prefetch in the background (``PrefetchingIter``) or fix
the epoch length (``ResizeIter``). All follow the ``DataIter`` protocol and yield ``DataBatch``.

Example::

    >>> it = mx.io.NDArrayIter(np.random.rand(100, 10), np.arange(100), batch_size=32,
    ...                        shuffle=True)
    >>> for batch in mx.io.PrefetchingIter(it):
    ...     x, y = batch.data[0], batch.label[0]
"""
from __future__ import annotations

from .base import DataBatch, DataDesc, DataIter, MXDataIter
from .csv_iter import CSVIter
from .image_record_iter import (ImageRecordInt8Iter, ImageRecordIter, ImageRecordIter_v1,
                                ImageRecordUInt8Iter, ImageRecordUInt8Iter_v1)
from .libsvm_iter import LibSVMIter
from .mnist_iter import MNISTIter
from .ndarray_iter import NDArrayIter
from .prefetch import PrefetchingIter, ResizeIter

__all__ = ["DataDesc", "DataBatch", "DataIter", "MXDataIter", "NDArrayIter", "CSVIter",
           "LibSVMIter", "MNISTIter", "ImageRecordIter", "ImageRecordUInt8Iter",
           "ImageRecordInt8Iter", "ImageRecordIter_v1", "ImageRecordUInt8Iter_v1",
           "PrefetchingIter", "ResizeIter"]
