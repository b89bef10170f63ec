"""The data-iterator protocol: ``DataDesc``, ``DataBatch`` and the ``DataIter`` base class.

A ``DataIter`` is a Python iterator of ``DataBatch`` objects with an epoch structure::

    for epoch in range(n):
        for batch in it:          # next() until StopIteration
            ...batch.data, batch.label, batch.pad...
        it.reset()                # back to the start of the data

``provide_data`` / ``provide_label`` describe the arrays every batch holds (name, shape with the
batch size, dtype, layout) so a Module can bind before the first batch arrives.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..base import HybridNetError

__all__ = ["DataDesc", "DataBatch", "DataIter"]


class DataDesc(namedtuple("DataDesc", ["name", "shape"])):
    """Name, shape, dtype and layout of one data or label array (``mx.io.DataDesc``).

    A ``(name, shape)`` namedtuple, so code that unpacks plain tuples keeps working; ``dtype``
    (default float32) and ``layout`` (default ``'NCHW'``) are attributes.

    Example::

        >>> d = mx.io.DataDesc('data', (32, 3, 224, 224))
        >>> d
        DataDesc[data,(32, 3, 224, 224),<class 'numpy.float32'>,NCHW]
        >>> name, shape = d
    """

    def __new__(cls, name: str, shape, dtype=np.float32, layout: str = "NCHW"):
        ret = super().__new__(cls, name, shape)
        ret.dtype = dtype
        ret.layout = layout
        return ret

    def __repr__(self) -> str:
        return f"DataDesc[{self.name},{self.shape},{self.dtype},{self.layout}]"

    @staticmethod
    def get_batch_axis(layout) -> int:
        """Index of ``'N'`` (the batch axis) in ``layout``; 0 when layout is None."""
        if layout is None:
            return 0
        return layout.find("N")

    @staticmethod
    def get_list(shapes, types):
        """DataDescs from ``[(name, shape)]`` and optionally ``[(name, dtype)]``."""
        if types is not None:
            type_dict = dict(types)
            return [DataDesc(x[0], x[1], type_dict[x[0]]) for x in shapes]
        return [DataDesc(x[0], x[1]) for x in shapes]


class DataBatch:
    """One batch: lists of data and label arrays plus bookkeeping (``mx.io.DataBatch``).

    Args:
        data: list of NDArrays, each with ``batch_size`` examples along the batch axis.
        label: list of NDArrays (or None).
        pad: how many examples at the end are padding (repeat earlier data); ignore them in
            prediction and evaluation.
        index: the examples' indices (numpy array) or None.
        bucket_key: bucketing key (BucketingModule).
        provide_data, provide_label: DataDescs of this batch when they differ from the
            iterator's (bucketing).

    ``str(batch)`` is ``DataBatch: data shapes: [(4, 3)] label shapes: [(4,)]``.
    """

    def __init__(self, data, label=None, pad=None, index=None, bucket_key=None,
                 provide_data=None, provide_label=None):
        if data is not None and not isinstance(data, (list, tuple)):
            raise TypeError(f"DataBatch data must be a list of NDArrays, got "
                            f"{type(data).__name__}")
        if label is not None and not isinstance(label, (list, tuple)):
            raise TypeError(f"DataBatch label must be a list of NDArrays, got "
                            f"{type(label).__name__}")
        self.data = data
        self.label = label
        self.pad = pad
        self.index = index
        self.bucket_key = bucket_key
        self.provide_data = provide_data
        self.provide_label = provide_label

    def __str__(self) -> str:
        data_shapes = [d.shape for d in self.data] if self.data is not None else None
        label_shapes = [lab.shape for lab in self.label] if self.label else None
        return f"{type(self).__name__}: data shapes: {data_shapes} label shapes: {label_shapes}"

    __repr__ = __str__


class DataIter:
    """Base class of data iterators (``mx.io.DataIter(batch_size=0)``).

    A subclass implements ``iter_next`` (advance; False at the end of the epoch), ``getdata``,
    ``getlabel``, ``getpad`` (and optionally ``getindex``), ``reset`` and the ``provide_data`` /
    ``provide_label`` properties -- or overrides ``next`` directly.
    """

    def __init__(self, batch_size: int = 0):
        self.batch_size = batch_size

    def __iter__(self):
        return self

    def reset(self) -> None:
        """Go back to the start of the data."""

    def next(self) -> DataBatch:
        """The next batch; raises StopIteration at the end of the epoch."""
        if self.iter_next():
            return DataBatch(data=self.getdata(), label=self.getlabel(), pad=self.getpad(),
                             index=self.getindex())
        raise StopIteration

    def __next__(self) -> DataBatch:
        return self.next()

    def iter_next(self) -> bool:
        """Advance to the next batch; False when the epoch is over."""
        raise NotImplementedError(f"{type(self).__name__} must implement iter_next() or next()")

    def getdata(self):
        """The data arrays of the current batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement getdata()")

    def getlabel(self):
        """The label arrays of the current batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement getlabel()")

    def getindex(self):
        """The indices of the current batch's examples (None when unknown)."""
        return None

    def getpad(self) -> int:
        """How many examples at the end of the current batch are padding."""
        raise NotImplementedError(f"{type(self).__name__} must implement getpad()")


class MXDataIter(DataIter):
    """Base of the iterators MXNet implements in C++ (``CSVIter``, ``LibSVMIter``,
    ``MNISTIter``, ``ImageRecordIter`` and its variants), so ``isinstance(it, mx.io.MXDataIter)``
    holds as in MXNet; here they are Python classes with keyword-only parameters."""


def check_batch_size(batch_size, what: str) -> int:
    """``batch_size`` as a positive int, or a clear error naming the iterator."""
    try:
        value = int(batch_size)
        exact = float(batch_size) == value
    except (TypeError, ValueError):
        raise HybridNetError(f"{what}: batch_size must be a positive integer, got "
                             f"{batch_size!r}") from None
    if value <= 0 or not exact:
        raise HybridNetError(f"{what}: batch_size must be a positive integer, got {batch_size!r}")
    return value
