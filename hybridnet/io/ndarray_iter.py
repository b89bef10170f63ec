"""``NDArrayIter``: batches from in-memory arrays, with MXNet's exact last-batch rules.

With 10 examples and batch_size 4:

* ``'pad'`` (default): 3 batches; the last holds examples 8, 9, 0, 1 with ``pad=2``;
* ``'discard'``: 2 batches; examples 8 and 9 are never seen;
* ``'roll_over'``: 2 batches; 8 and 9 are kept and open the next epoch (``[8, 9, 0, 1]``,
  reported with ``pad=2`` as MXNet does), which then has 3 batches (``..., [6, 7, 8, 9]``).

``shuffle=True`` permutes the data with numpy's global generator at construction and at every
``reset()``, exactly as MXNet does (so ``np.random.seed`` reproduces MXNet's order). Unlike
MXNet, shuffling keeps the arrays' dtype (MXNet turns them into float32).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..base import HybridNetError
from .base import DataBatch, DataDesc, DataIter, check_batch_size

__all__ = ["NDArrayIter"]

_MODES = ("pad", "discard", "roll_over")


def _nd():
    from .. import ndarray  # noqa: PLC0415 (io sits above ndarray; import on use)
    return ndarray


def _init_data(data, allow_empty: bool, default_name: str):
    """``[(name, NDArray)]`` sorted by name, from an array, a list or a dict of arrays."""
    nd = _nd()
    if data is None:
        if not allow_empty:
            raise HybridNetError("NDArrayIter: data must be given (an array, a list or a dict "
                                 "of arrays)")
        data = []
    if isinstance(data, (np.ndarray, nd.NDArray)):
        data = [data]
    if isinstance(data, (list, tuple)):
        if not data and not allow_empty:
            raise HybridNetError("NDArrayIter: data is an empty list")
        if len(data) == 1:
            data = OrderedDict([(default_name, data[0])])
        else:
            data = OrderedDict((f"_{i}_{default_name}", d) for i, d in enumerate(data))
    if not isinstance(data, dict):
        raise TypeError(f"NDArrayIter: data must be an NDArray, a numpy array, a list of them or "
                        f"a dict name -> array, got {type(data).__name__}")
    out = []
    for name, value in data.items():
        if not isinstance(value, nd.NDArray):
            if type(value).__module__.startswith("scipy.sparse") or hasattr(value, "tocsr"):
                raise HybridNetError(f"NDArrayIter: {name!r} is a sparse matrix; sparse inputs "
                                     f"are not supported, convert it with .toarray()")
            try:
                value = nd.array(value)
            except TypeError as err:
                raise TypeError(f"NDArrayIter: invalid type {type(value).__name__} for "
                                f"{name!r}; expected an NDArray or a numpy array ({err})") \
                    from None
        if value.ndim == 0:
            raise HybridNetError(f"NDArrayIter: {name!r} is a scalar; it needs a batch axis")
        out.append((name, value))
    return sorted(out, key=lambda kv: kv[0])


class NDArrayIter(DataIter):
    """Iterate over arrays in batches (``mx.io.NDArrayIter``).

    Args:
        data: an array (NDArray or numpy), a list of arrays (named ``_0_data``, ``_1_data``...)
            or a dict name -> array. All share the number of examples along the batch axis.
        label: same forms, or None (default names ``softmax_label``, ``_0_softmax_label``...).
        batch_size: examples per batch.
        shuffle: permute the examples at construction and at each ``reset``.
        last_batch_handle: ``'pad'``, ``'discard'`` or ``'roll_over'`` (module docstring).
        data_name, label_name: names used when ``data`` / ``label`` are not dicts.
        layout: axes of the data; the batch axis is where ``'N'`` is.

    Example::

        >>> it = mx.io.NDArrayIter(np.arange(10).reshape(10, 1), np.arange(10), batch_size=4)
        >>> [b.pad for b in it]
        [0, 0, 2]
    """

    def __init__(self, data, label=None, batch_size: int = 1, shuffle: bool = False,
                 last_batch_handle: str = "pad", data_name: str = "data",
                 label_name: str = "softmax_label", layout: str = "NCHW"):
        batch_size = check_batch_size(batch_size, "NDArrayIter")
        super().__init__(batch_size)
        if last_batch_handle not in _MODES:
            raise ValueError(f"NDArrayIter: last_batch_handle must be one of {', '.join(_MODES)}; "
                             f"got {last_batch_handle!r}")
        if "N" not in layout:
            raise HybridNetError(f"NDArrayIter: layout {layout!r} has no batch axis 'N'")
        self.layout = layout
        self._axis = layout.find("N")
        self.data = _init_data(data, allow_empty=False, default_name=data_name)
        self.label = _init_data(label, allow_empty=True, default_name=label_name)
        counts = {name: arr.shape[self._axis] if arr.ndim > self._axis else None
                  for name, arr in self.data + self.label}
        if len(set(counts.values())) != 1 or None in counts.values():
            raise HybridNetError(f"NDArrayIter: every array needs the same number of examples "
                                 f"along the batch axis {self._axis} (layout {layout}); got "
                                 + ", ".join(f"{k}: {v}" for k, v in counts.items()))
        self.num_data = next(iter(counts.values()))
        self.idx = np.arange(self.num_data)
        self.shuffle = shuffle
        self.last_batch_handle = last_batch_handle
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None
        self.reset()
        self.data_list = [x[1] for x in self.data] + [x[1] for x in self.label]
        self.num_source = len(self.data_list)

    # ---- description ------------------------------------------------------------------------
    def _descs(self, sources):
        ax = self._axis
        return [DataDesc(k, tuple(v.shape[:ax]) + (self.batch_size,) + tuple(v.shape[ax + 1:]),
                         v.dtype, layout=self.layout) for k, v in sources]

    @property
    def provide_data(self):
        """DataDescs of the data arrays of each batch."""
        return self._descs(self.data)

    @property
    def provide_label(self):
        """DataDescs of the label arrays of each batch."""
        return self._descs(self.label)

    # ---- epoch control ----------------------------------------------------------------------
    def hard_reset(self) -> None:
        """Back to the start, forgetting examples kept for ``roll_over``."""
        if self.shuffle:
            self._shuffle_data()
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None

    def reset(self) -> None:
        if self.shuffle:
            self._shuffle_data()
        if self.last_batch_handle == "roll_over" and \
                self.num_data - self.batch_size < self.cursor < self.num_data:
            # the examples left over (cursor..end) open the next epoch
            self.cursor = self.cursor - self.num_data - self.batch_size
        else:
            self.cursor = -self.batch_size

    def iter_next(self) -> bool:
        self.cursor += self.batch_size
        return self.cursor < self.num_data

    def next(self) -> DataBatch:
        if not self.iter_next():
            raise StopIteration
        data = self.getdata()
        label = self.getlabel()
        if data[0].shape[self._axis] != self.batch_size:
            # an incomplete last batch (roll_over): keep it for the next epoch
            self._cache_data = data
            self._cache_label = label
            raise StopIteration
        return DataBatch(data=data, label=label, pad=self.getpad(), index=None)

    # ---- batches ----------------------------------------------------------------------------
    def _slice(self, sources, start: int, end: int):
        nd = _nd()
        return [nd.slice_axis(arr, axis=self._axis, begin=start, end=end) for _, arr in sources]

    def _concat(self, first, second):
        if not first or not second:
            return first if first else second
        nd = _nd()
        return [nd.concat(a, b, dim=self._axis) for a, b in zip(first, second)]

    def _tile(self, arrays, repeats: int):
        nd = _nd()
        out = []
        for arr in arrays:
            reps = [1] * arr.ndim
            reps[self._axis] = repeats
            out.append(nd.tile(arr, reps=tuple(reps)))
        return out

    def _batchify(self, sources):
        if self.cursor >= self.num_data:
            raise HybridNetError("NDArrayIter: the epoch is over; call reset() first")
        if not sources:
            return []
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            cache = self._cache_data if self._cache_data is not None else self._cache_label
            if cache is None:
                raise HybridNetError("NDArrayIter: roll_over lost its kept examples; call "
                                     "hard_reset()")
            second = self._slice(sources, 0, self.cursor + self.batch_size)
            if self._cache_data is not None:
                self._cache_data = None
            else:
                self._cache_label = None
            return self._concat(cache, second)
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            pad = self.batch_size - self.num_data + self.cursor
            first = self._slice(sources, self.cursor, self.num_data)
            if pad > self.num_data:   # batch larger than the data: wrap around several times
                second = self._tile(self._slice(sources, 0, self.num_data), pad // self.num_data)
                if pad % self.num_data:
                    second = self._concat(second, self._slice(sources, 0, pad % self.num_data))
            else:
                second = self._slice(sources, 0, pad)
            return self._concat(first, second)
        end = min(self.cursor + self.batch_size, self.num_data)
        return self._slice(sources, self.cursor, end)

    def getdata(self):
        return self._batchify(self.data)

    def getlabel(self):
        return self._batchify(self.label)

    def getpad(self) -> int:
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            return self.cursor + self.batch_size - self.num_data
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            return -self.cursor
        return 0

    def _shuffle_data(self) -> None:
        # MXNet shuffles the index in place and re-gathers the (already permuted) data with it;
        # doing the same keeps np.random.seed(...) runs identical to MXNet's.
        np.random.shuffle(self.idx)
        self.data = self._gather(self.data)
        self.label = self._gather(self.label)

    def _gather(self, sources):
        nd = _nd()
        out = []
        for name, arr in sources:
            host = np.take(arr.asnumpy(), self.idx, axis=self._axis)
            out.append((name, nd.array(host, ctx=arr.context, dtype=host.dtype)))
        return out
