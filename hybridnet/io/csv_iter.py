"""``CSVIter``, and the streaming machinery it shares with ``LibSVMIter``.

Text files are read in chunks (``chunk_bytes``, 4 MB by default), so files larger than memory
stream through; only one chunk of parsed rows is held at a time. Batching follows MXNet's C++
iterators: with ``round_batch=True`` (default) an incomplete last batch is completed with rows
from the start of the data (``pad`` says how many) and the next epoch continues after them;
with ``round_batch=False`` the missing rows are padding (``pad`` > 0) and hold the previous
batch's rows, as in MXNet. ``index`` holds each example's row number.

A row with the wrong number of values raises an error naming the file, the line and its byte
offset.
"""
from __future__ import annotations

import os

import numpy as np

from ..base import HybridNetError
from .base import DataDesc, MXDataIter, check_batch_size

__all__ = ["CSVIter", "TextRows", "TextIter", "shape_of"]

_DTYPES = ("float32", "float64", "float16", "int32", "int64", "int8", "uint8")


def shape_of(value, what: str) -> tuple:
    """A shape parameter as a tuple of positive ints (accepts an int, a tuple or "(3, 4)")."""
    if isinstance(value, str):
        text = value.strip().strip("()[]")
        value = tuple(int(v) for v in text.split(",") if v.strip())
    elif isinstance(value, int):
        value = (value,)
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise HybridNetError(f"{what} must be a shape like (3,) or (1, 28, 28), got "
                             f"{value!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise HybridNetError(f"{what} must be a non-empty shape of positive sizes, got {shape}")
    return shape


def _files(path: str, what: str) -> list:
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if os.path.isfile(os.path.join(path, f)))
        if not files:
            raise FileNotFoundError(f"{what}: directory {path!r} holds no files")
        return files
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file {path!r}")
    return [path]


class TextRows:
    """Stream the rows of one or several text files as arrays, a chunk at a time.

    ``parse(lines, where)`` turns a list of non-empty lines (bytes) into an array of shape
    (len(lines), ...); ``where(i)`` describes line ``i`` (file, line number, byte offset) for
    its error messages. ``start``/``count`` restrict the stream to rows [start, start+count).
    """

    def __init__(self, path: str, parse, what: str, chunk_bytes: int = 4 << 20,
                 start: int = 0, count: int | None = None):
        self.files = _files(path, what)
        self.parse = parse
        self.what = what
        self.chunk_bytes = max(int(chunk_bytes), 1)
        self.start, self.count = start, count
        self.rewind()

    def rewind(self) -> None:
        """Back to the first row (of the partition)."""
        self._file_no = -1
        self._fh = None
        self._rows = None          # parsed rows of the current chunk
        self._taken = 0            # rows of the current chunk already handed out
        self.row = 0               # rows consumed (after skipping to start)
        self._skip = self.start
        self._open_next()

    def _open_next(self) -> bool:
        if self._fh is not None:
            self._fh.close()
        self._file_no += 1
        if self._file_no >= len(self.files):
            self._fh = None
            return False
        self._fh = open(self.files[self._file_no], "rb")
        self._offset = 0          # byte offset of the next unread byte
        self._line_no = 0         # lines read from this file
        self._rest = b""
        return True

    def _read_chunk(self):
        """The next parsed chunk of rows, or None at the end of all files."""
        while self._fh is not None:
            block = self._fh.read(self.chunk_bytes)
            data = self._rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:                 # no newline yet: the line continues
                    self._rest = data
                    continue
                text, self._rest = data[:cut], data[cut:]
            else:
                text, self._rest = data, b""
            base_offset = self._offset - (len(data) - len(block))
            self._offset += len(block)
            if text:
                rows = self._parse_block(text, base_offset)
                if rows is not None:
                    return rows
            if not block:
                self._open_next()
        return None

    def _parse_block(self, text: bytes, base_offset: int):
        raw = text.split(b"\n")
        if raw and raw[-1] == b"":
            raw.pop()
        starts = np.concatenate([[0], np.cumsum([len(r) + 1 for r in raw])[:-1]]) if raw else []
        first_line = self._line_no + 1
        self._line_no += len(raw)
        keep = [i for i, r in enumerate(raw) if r.strip()]
        if not keep:
            return None
        lines = [raw[i].rstrip(b"\r") for i in keep]
        fname = self.files[self._file_no]

        def where(i: int) -> str:
            j = keep[i]
            return f"{fname}, line {first_line + j} (byte offset {base_offset + int(starts[j])})"

        return self.parse(lines, where)

    def take(self, n: int):
        """Up to ``n`` next rows (fewer only at the end); an empty array at the end."""
        parts, got = [], 0
        while got < n:
            if self.count is not None and self.row >= self.count:
                break
            if self._rows is None or self._taken >= len(self._rows):
                self._rows, self._taken = self._read_chunk(), 0
                if self._rows is None:
                    break
            if self._skip:
                drop = min(self._skip, len(self._rows) - self._taken)
                self._taken += drop
                self._skip -= drop
                continue
            k = min(n - got, len(self._rows) - self._taken)
            if self.count is not None:
                k = min(k, self.count - self.row)
            parts.append(self._rows[self._taken:self._taken + k])
            self._taken += k
            self.row += k
            got += k
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _parse_csv(width: int, dtype, what: str):
    def parse(lines, where):
        text = b"\n".join(lines)
        buf = np.frombuffer(text, np.uint8)
        commas = np.cumsum(buf == ord(","))
        ends = np.flatnonzero(buf == ord("\n"))
        per_line = np.diff(np.concatenate([[0], commas[ends] if ends.size else [],
                                           [commas[-1]]])) + 1
        bad = np.flatnonzero(per_line != width)
        if bad.size:
            i = int(bad[0])
            raise HybridNetError(f"{what}: {where(i)} has {int(per_line[i])} values, expected "
                                 f"{width} (the size of the shape)")
        flat = text.replace(b"\n", b",").decode("ascii", errors="replace").split(",")
        try:
            values = np.array(flat, dtype=np.float64)
        except ValueError:
            for i, line in enumerate(lines):
                try:
                    np.array(line.decode("ascii", errors="replace").split(","), np.float64)
                except ValueError as err:
                    raise HybridNetError(f"{what}: {where(i)} is not a row of numbers: "
                                         f"{err}") from None
            raise
        return values.reshape(len(lines), width).astype(dtype)
    return parse


class TextIter(MXDataIter):
    """Batches from streamed data rows and optional label rows (MXNet's C++ batching rules)."""

    def __init__(self, batch_size, data: TextRows, label: TextRows | None, data_shape,
                 label_shape, dtype, round_batch: bool, data_name: str, label_name: str,
                 what: str):
        super().__init__(check_batch_size(batch_size, what))
        self._data_rows, self._label_rows = data, label
        self.data_shape, self.label_shape = data_shape, label_shape
        self.dtype = np.dtype(dtype)
        self.round_batch = bool(round_batch)
        self.data_name, self.label_name = data_name, label_name
        self._what = what
        self._overflow = False
        self._ended = False
        self._last = None
        self._batch = None

    def _label_batch_shape(self):
        return (self.batch_size,) if self.label_shape == (1,) else \
            (self.batch_size,) + self.label_shape

    @property
    def provide_data(self):
        return [DataDesc(self.data_name, (self.batch_size,) + self.data_shape, self.dtype.type)]

    @property
    def provide_label(self):
        return [DataDesc(self.label_name, self._label_batch_shape(), self.dtype.type)]

    def reset(self) -> None:
        self._ended = False
        if self._overflow:            # the next epoch continues after the rows used to fill
            self._overflow = False
            return
        self._data_rows.rewind()
        if self._label_rows is not None:
            self._label_rows.rewind()

    def _take(self, n: int):
        start = self._data_rows.row
        data = self._data_rows.take(n)
        k = 0 if data is None else len(data)
        if self._label_rows is not None:
            label = self._label_rows.take(n)
            if (0 if label is None else len(label)) != k:
                raise HybridNetError(f"{self._what}: the label file has "
                                     f"{'fewer' if label is None or len(label) < k else 'more'} "
                                     f"rows than the data file (at data row {start + k})")
        else:
            label = np.zeros((k, int(np.prod(self.label_shape))), np.float64) if k else None
        return data, label, np.arange(start, start + k, dtype=np.uint64)

    def iter_next(self) -> bool:
        if self._ended or self._overflow:
            return False
        bs = self.batch_size
        data, label, index = self._take(bs)
        if data is None:
            self._ended = True
            return False
        datas, labels, indices = [data], [label], [index]
        got = len(data)
        pad = bs - got
        if pad and self.round_batch:
            while got < bs:           # complete the batch from the start of the data
                self._data_rows.rewind()
                if self._label_rows is not None:
                    self._label_rows.rewind()
                d, lab, idx = self._take(bs - got)
                if d is None:
                    raise HybridNetError(f"{self._what}: the data has no rows")
                datas.append(d)
                labels.append(lab)
                indices.append(idx)
                got += len(d)
            self._overflow = True
        elif pad:
            self._ended = True
            if self._last is not None:   # padding holds the previous batch's rows, like MXNet
                datas.append(self._last[0][got:])
                labels.append(self._last[1][got:])
                indices.append(self._last[2][got:])
            else:
                datas.append(np.zeros((pad,) + data.shape[1:], data.dtype))
                labels.append(np.zeros((pad,) + label.shape[1:], label.dtype))
                indices.append(np.zeros(pad, np.uint64))
        data = np.concatenate(datas) if len(datas) > 1 else datas[0]
        label = np.concatenate(labels) if len(labels) > 1 else labels[0]
        index = np.concatenate(indices) if len(indices) > 1 else indices[0]
        self._last = (data, label, index)
        self._batch = (data, label, index, pad)
        return True

    def _wrap(self, arr, shape):
        from ..ndarray import array  # noqa: PLC0415 (io sits above ndarray)
        return array(arr.reshape(shape), dtype=self.dtype)

    def getdata(self):
        return [self._wrap(self._batch[0], (self.batch_size,) + self.data_shape)]

    def getlabel(self):
        return [self._wrap(self._batch[1], self._label_batch_shape())]

    def getindex(self):
        return self._batch[2]

    def getpad(self) -> int:
        return self._batch[3]


class CSVIter(TextIter):
    """Batches from CSV files of numbers (``mx.io.CSVIter``); files larger than memory stream.

    Args:
        data_csv: a CSV file (or a directory: all its files in name order), one example per row.
        data_shape: shape of one example; each row has ``prod(data_shape)`` values.
        label_csv: CSV of labels with the same number of rows, or ``'NULL'`` for zero labels.
        label_shape: shape of one label (default (1,), giving labels of shape (batch_size,)).
        batch_size: examples per batch.
        round_batch: complete the last batch from the start of the data (see module doc).
        dtype: output dtype (float32 by default; also float64, float16, int32, int64, int8,
            uint8).
        data_name, label_name: names in ``provide_data`` / ``provide_label``.
        chunk_bytes: how many bytes are read and parsed at a time.
        prefetch_buffer, ctx: accepted for MXNet compatibility (wrap in ``PrefetchingIter`` to
            overlap parsing with compute).

    Example::

        >>> it = mx.io.CSVIter(data_csv='data.csv', data_shape=(3,), label_csv='label.csv',
        ...                    batch_size=4)
        >>> next(it).data[0].shape
        (4, 3)
    """

    def __init__(self, data_csv: str, data_shape, batch_size: int, label_csv: str = "NULL",
                 label_shape=(1,), round_batch: bool = True, dtype=None,
                 data_name: str = "data", label_name: str = "softmax_label",
                 prefetch_buffer: int = 4, ctx: str = "gpu", chunk_bytes: int = 4 << 20):
        what = "CSVIter"
        data_shape = shape_of(data_shape, f"{what}: data_shape")
        label_shape = shape_of(label_shape, f"{what}: label_shape")
        dtype = "float32" if dtype in (None, "None") else str(np.dtype(dtype))
        if dtype not in _DTYPES:
            raise HybridNetError(f"{what}: dtype must be one of {', '.join(_DTYPES)}, got "
                                 f"{dtype!r}")
        data = TextRows(data_csv, _parse_csv(int(np.prod(data_shape)), np.float64, what),
                        f"{what} data_csv", chunk_bytes)
        label = None
        if label_csv not in (None, "NULL", ""):
            label = TextRows(label_csv, _parse_csv(int(np.prod(label_shape)), np.float64, what),
                             f"{what} label_csv", chunk_bytes)
        super().__init__(batch_size, data, label, data_shape, label_shape, dtype, round_batch,
                         data_name, label_name, what)
