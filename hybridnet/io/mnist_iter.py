"""``MNISTIter`` and a reader for MNIST's idx files (gzip-compressed or not).

idx format: big-endian ``uint32 magic`` (0x00000803 = 2051 for uint8 images, 0x00000801 = 2049
for uint8 labels), ``uint32`` sizes of each dimension, then the uint8 values in C order. A file
whose size does not match its header is rejected with the expected and actual byte counts.
"""
from __future__ import annotations

import gzip
import logging
import os
import struct

import numpy as np

from ..base import HybridNetError
from .base import DataBatch, DataDesc, MXDataIter, check_batch_size

__all__ = ["MNISTIter", "read_idx"]

_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
_LOG = logging.getLogger(__name__)


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no MNIST idx file at {path!r}") from None
    if raw[:2] == b"\x1f\x8b":           # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise HybridNetError(f"{path}: gzip data is damaged: {err}") from None
    return raw


def read_idx(path: str, expect_magic: int | None = None) -> np.ndarray:
    """The uint8 array stored in an idx file (``.gz`` files are decompressed)."""
    raw = _read_bytes(os.fspath(path))
    if len(raw) < 4:
        raise HybridNetError(f"{path}: {len(raw)} bytes is too short for an idx header")
    magic = struct.unpack(">I", raw[:4])[0]
    if expect_magic is not None and magic != expect_magic:
        kind = "images" if expect_magic == _IMAGE_MAGIC else "labels"
        raise HybridNetError(f"{path}: idx magic number is {magic}, expected {expect_magic} "
                             f"(uint8 {kind}); is this the right file?")
    if magic >> 8 != 0x08:
        raise HybridNetError(f"{path}: idx magic number {magic} (0x{magic:08X}) does not "
                             f"announce uint8 data (0x000008nn)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise HybridNetError(f"{path}: the header announces {ndim} dimensions ({header} bytes), "
                             f"the file has {len(raw)} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise HybridNetError(f"{path}: the header says shape {tuple(dims)} = {expected} bytes "
                             f"with the header, but the file has {len(raw)} bytes (data ends "
                             f"at byte offset {len(raw)}, expected {expected})")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


class MNISTIter(MXDataIter):
    """Batches of MNIST images and labels from idx files (``mx.io.MNISTIter``).

    Pixels are scaled by 1/256 (as MXNet does); images have shape (1, 28, 28), or (784,) with
    ``flat=True``. The examples are shuffled once at load (``shuffle``, ``seed``); an
    incomplete last batch is dropped, as in MXNet.

    Args:
        image, label: idx files (gzip or not).
        batch_size: examples per batch.
        shuffle: shuffle once at load.
        flat: flatten each image to a vector.
        seed: shuffling seed.
        silent: do not log the load.
        num_parts, part_index: use only part ``part_index`` of ``num_parts`` contiguous parts
            (the last part takes the remainder), e.g. one per worker.
        data_name, label_name: names in ``provide_data`` / ``provide_label``.
        prefetch_buffer, ctx, dtype: accepted for MXNet compatibility and ignored (batches are
            float32 slices of data held in memory).

    Example::

        >>> it = mx.io.MNISTIter(image='train-images-idx3-ubyte', label='train-labels-idx1-ubyte',
        ...                      batch_size=100, flat=True)
        >>> next(it).data[0].shape
        (100, 784)
    """

    def __init__(self, image: str = "./train-images-idx3-ubyte",
                 label: str = "./train-labels-idx1-ubyte", batch_size: int = 128,
                 shuffle: bool = True, flat: bool = False, seed: int = 0, silent: bool = False,
                 num_parts: int = 1, part_index: int = 0, data_name: str = "data",
                 label_name: str = "softmax_label", prefetch_buffer: int = 4, ctx: str = "gpu",
                 dtype=None):
        super().__init__(check_batch_size(batch_size, "MNISTIter"))
        if not 0 <= part_index < num_parts:
            raise HybridNetError(f"MNISTIter: part_index must be in [0, num_parts={num_parts}), "
                                 f"got {part_index}")
        images = read_idx(image, _IMAGE_MAGIC)
        labels = read_idx(label, _LABEL_MAGIC)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise HybridNetError(f"MNISTIter: {image} holds {images.shape} and {label} holds "
                                 f"{labels.shape}; expected (n, rows, cols) images and n labels")
        count = len(images) // num_parts
        start = count * part_index
        end = len(images) if part_index == num_parts - 1 else start + count
        order = np.arange(start, end)
        if shuffle:
            order = np.random.default_rng(seed).permutation(order)
        self._order = order
        self._images = images
        self._labels = labels
        self.flat = bool(flat)
        self.data_name, self.label_name = data_name, label_name
        self._shape = (images.shape[1] * images.shape[2],) if self.flat else \
            (1, images.shape[1], images.shape[2])
        self._cursor = 0
        self._batch = None
        if not silent:
            _LOG.info("MNISTIter: load %d images, shuffle=%d, shape=%s", len(order),
                      int(bool(shuffle)), (self.batch_size,) + self._shape)

    @property
    def provide_data(self):
        return [DataDesc(self.data_name, (self.batch_size,) + self._shape, np.float32)]

    @property
    def provide_label(self):
        return [DataDesc(self.label_name, (self.batch_size,), np.float32)]

    def reset(self) -> None:
        self._cursor = 0

    def iter_next(self) -> bool:
        if self._cursor + self.batch_size > len(self._order):
            return False
        self._batch = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return True

    def next(self) -> DataBatch:
        if not self.iter_next():
            raise StopIteration
        return DataBatch(self.getdata(), self.getlabel(), pad=0, index=self.getindex())

    def getdata(self):
        from ..ndarray import NDArray  # noqa: PLC0415 (io sits above ndarray)
        from ..context import cpu  # noqa: PLC0415
        pixels = self._images[self._batch].astype(np.float32)
        pixels *= np.float32(1.0 / 256.0)
        return [NDArray(pixels.reshape((self.batch_size,) + self._shape), cpu())]

    def getlabel(self):
        from ..ndarray import NDArray  # noqa: PLC0415
        from ..context import cpu  # noqa: PLC0415
        return [NDArray(self._labels[self._batch].astype(np.float32), cpu())]

    def getindex(self):
        return self._batch.astype(np.uint64)

    def getpad(self) -> int:
        return 0
