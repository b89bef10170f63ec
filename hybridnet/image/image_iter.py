"""``mx.image.ImageIter``: MXNet's Python image iterator -- images from a RecordIO file, an image
list file or a Python list, decoded one by one and passed through a list of augmenters.

    >>> it = mx.image.ImageIter(32, (3, 224, 224), path_imgrec='train.rec',
    ...                         path_imgidx='train.idx', shuffle=True, rand_crop=True,
    ...                         rand_mirror=True, resize=256)
    >>> for batch in it: ...

Semantics as MXNet 1.9.1: ``aug_list`` defaults to ``CreateAugmenter(data_shape, **kwargs)``;
``shuffle`` reorders the sample list at every ``reset()`` with Python's ``random`` (so
``random.seed`` repeats it) and needs an index (``path_imgidx``, a list file or ``imglist``);
``num_parts``/``part_index`` take the part_index-th of num_parts equal slices of the list (the
remainder is left out); ``last_batch_handle`` 'pad' fills the last batch with samples from the
start, 'discard' drops it, 'roll_over' finishes it with the next epoch's first samples. An
image that decodes to an empty array is skipped (MXNet logs it at DEBUG); one that cannot be
decoded at all raises ``ImageDecodeError`` naming the record (and byte offset) or the file. It is single-threaded
Python, like MXNet's: wrap it in ``mx.io.PrefetchingIter`` to overlap it with training, or use
``mx.io.ImageRecordIter`` (a thread pool) for speed.
"""
from __future__ import annotations

import logging
import os
import random

import numpy as np

from ..base import HybridNetError, ParamError
from ..io.base import DataBatch, DataDesc, DataIter, check_batch_size
from .augment import CreateAugmenter
from .codec import ImageDecodeError
from .image import _host, imdecode

__all__ = ["ImageIter"]

_LAST_BATCH = ("pad", "discard", "roll_over")


def _label_array(values, dtype) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(-1)


class ImageIter(DataIter):
    """``ImageIter(batch_size, data_shape, label_width=1, path_imgrec=None, path_imglist=None, path_root=None, path_imgidx=None, shuffle=False, part_index=0, num_parts=1, aug_list=None, imglist=None, data_name='data', label_name='softmax_label', dtype='float32', last_batch_handle='pad', **kwargs)``.

    Args:
        batch_size: images per batch.
        data_shape: (3, height, width) of one output image (RGB).
        label_width: labels per image.
        path_imgrec: a RecordIO file of packed images (``mx.recordio.pack_img``).
        path_imglist: an image list (``index<TAB>label[<TAB>label...]<TAB>path``); with
            ``path_imgrec`` it only supplies labels by record index.
        path_root: the folder the list's paths are relative to.
        path_imgidx: the ``.idx`` file of ``path_imgrec`` (random access, needed to shuffle).
        shuffle: reorder the samples at every reset.
        part_index, num_parts: read only one of ``num_parts`` equal parts.
        aug_list: augmenters (callables image -> image); default ``CreateAugmenter(data_shape,
            **kwargs)``.
        imglist: a list of ``[label(s)..., path]`` entries instead of a list file.
        data_name, label_name: names in ``provide_data`` / ``provide_label``.
        dtype: dtype of the data and label arrays.
        last_batch_handle: 'pad', 'discard' or 'roll_over'.
    """

    def __init__(self, batch_size, data_shape, label_width=1, path_imgrec=None,
                 path_imglist=None, path_root=None, path_imgidx=None, shuffle=False,
                 part_index=0, num_parts=1, aug_list=None, imglist=None, data_name="data",
                 label_name="softmax_label", dtype="float32", last_batch_handle="pad",
                 **kwargs):
        super().__init__(check_batch_size(batch_size, "ImageIter"))
        if not (path_imgrec or path_imglist or isinstance(imglist, list)):
            raise HybridNetError("ImageIter needs path_imgrec, path_imglist or imglist (a list)")
        data_shape = tuple(int(d) for d in data_shape)
        if len(data_shape) != 3 or data_shape[0] != 3:
            raise ParamError(f"ImageIter: data_shape must be (3, height, width) (RGB "
                                 f"images), got {data_shape}")
        if last_batch_handle not in _LAST_BATCH:
            raise ParamError(f"ImageIter: last_batch_handle must be one of "
                                 f"{', '.join(_LAST_BATCH)}, got {last_batch_handle!r}")
        if not 0 <= part_index < num_parts:
            raise ParamError(f"ImageIter: part_index must be in [0, num_parts={num_parts}), "
                                 f"got {part_index}")
        self.data_shape, self.label_width = data_shape, int(label_width)
        self.dtype = np.dtype(dtype)
        self.path_root = path_root or ""
        self.shuffle, self.last_batch_handle = bool(shuffle), last_batch_handle
        self.imgrec, self.imglist, self.seq = None, None, None
        self._open(path_imgrec, path_imgidx, path_imglist, imglist)
        if self.shuffle and self.seq is None:
            raise HybridNetError("ImageIter: shuffle needs random access: give path_imgidx, "
                                 "path_imglist or imglist")
        if num_parts > 1:
            if self.seq is None:
                raise HybridNetError("ImageIter: num_parts > 1 needs path_imgidx, path_imglist "
                                     "or imglist")
            size = len(self.seq) // num_parts
            self.seq = self.seq[part_index * size:(part_index + 1) * size]
        self.auglist = CreateAugmenter(data_shape, **kwargs) if aug_list is None else aug_list
        label_shape = (self.batch_size, self.label_width) if self.label_width > 1 \
            else (self.batch_size,)
        self.provide_data = [DataDesc(data_name, (self.batch_size,) + data_shape, self.dtype)]
        self.provide_label = [DataDesc(label_name, label_shape, self.dtype)]
        self.cur = 0
        self._allow_read = True
        self._cache = None              # roll_over: (data, label, filled) of the unfinished batch
        self.reset()

    # ---- sources -------------------------------------------------------------------------------
    def _open(self, path_imgrec, path_imgidx, path_imglist, imglist) -> None:
        from .. import recordio
        if path_imgrec:
            logging.info("ImageIter: loading recordio %s...", path_imgrec)
            if path_imgidx:
                self.imgrec = recordio.MXIndexedRecordIO(path_imgidx, path_imgrec, "r")
                self.seq = list(self.imgrec.keys)
            else:
                self.imgrec = recordio.MXRecordIO(path_imgrec, "r")
        if path_imglist:
            logging.info("ImageIter: loading image list %s...", path_imglist)
            self.imglist = {}
            with open(path_imglist) as f:
                for number, line in enumerate(f, 1):
                    fields = [x.strip() for x in line.split("\t")]
                    if len(fields) < 3:
                        raise HybridNetError(f"{path_imglist}, line {number}: expected "
                                             f"'index<TAB>label(s)<TAB>path', got {line!r}")
                    try:
                        key = int(fields[0])
                        label = _label_array([float(v) for v in fields[1:-1]], self.dtype)
                    except ValueError:
                        raise HybridNetError(f"{path_imglist}, line {number}: index and labels "
                                             f"must be numbers, got {line!r}") from None
                    self.imglist[key] = (label, fields[-1])
            self.seq = list(self.imglist)
        elif isinstance(imglist, list):
            self.imglist = {}
            for index, entry in enumerate(imglist, 1):
                key = str(index)
                if len(entry) > 2:
                    label = _label_array(entry[:-1], self.dtype)
                elif isinstance(entry[0], (int, float, np.number)):
                    label = _label_array([entry[0]], self.dtype)
                else:
                    label = _label_array(entry[0], self.dtype)
                self.imglist[key] = (label, entry[-1])
            self.seq = list(self.imglist)

    def reset(self) -> None:
        """Start a new epoch (reshuffled with ``shuffle``)."""
        if self.seq is not None and self.shuffle:
            random.shuffle(self.seq)
        if self.last_batch_handle != "roll_over" or self._cache is None:
            if self.imgrec is not None:
                self.imgrec.reset()
            self.cur = 0
            self._allow_read = True

    def next_sample(self):
        """(label, encoded image bytes) of the next sample; StopIteration at the end."""
        if not self._allow_read:
            raise StopIteration
        if self.seq is None:
            record = self.imgrec.read()
            if record is None:
                if self.last_batch_handle != "discard":
                    self.imgrec.reset()
                raise StopIteration
            from ..recordio import unpack
            header, img = unpack(record)
            return header.label, img
        if self.cur >= len(self.seq):
            if self.last_batch_handle != "discard":
                self.cur = 0
            raise StopIteration
        idx = self.seq[self.cur]
        self.cur += 1
        if self.imgrec is not None:
            from ..recordio import unpack
            header, img = unpack(self.imgrec.read_idx(idx))
            return (header.label if self.imglist is None else self.imglist[idx][0]), img
        label, fname = self.imglist[idx]
        return label, self.read_image(fname)

    def read_image(self, fname: str) -> bytes:
        """The bytes of ``path_root/fname``."""
        with open(os.path.join(self.path_root, fname), "rb") as f:
            return f.read()

    # ---- per image -----------------------------------------------------------------------------
    def imdecode(self, s: bytes) -> np.ndarray:
        """Decode to an (H, W, 3) RGB uint8 array; ``ImageDecodeError`` names the sample."""
        try:
            return imdecode(np.frombuffer(s, np.uint8) if isinstance(s, bytes) else s)
        except ImageDecodeError as err:
            raise ImageDecodeError(f"ImageIter: broken image {self._locate()}: {err}") from None

    def _locate(self) -> str:
        """The sample just read, for error messages (MXNet's ``locate``)."""
        if self.seq is None:
            return f"(record before byte offset {self.imgrec.tell()} of {self.imgrec.uri})"
        idx = self.seq[self.cur - 1] if self.cur else self.seq[-1]
        if self.imglist is not None:
            return f"(file {os.path.join(self.path_root, self.imglist[idx][1])})"
        return f"(record {idx} of {self.imgrec.uri})"

    def check_valid_image(self, data) -> None:
        """RuntimeError for an image with no pixels (the sample is then skipped)."""
        if len(data.shape) == 0 or data.shape[0] == 0:
            raise RuntimeError("Data shape is wrong")

    def augmentation_transform(self, data):
        """Apply every augmenter of ``auglist`` in order."""
        for aug in self.auglist:
            data = aug(data)
        return data

    def postprocess_data(self, datum) -> np.ndarray:
        """(H, W, C) -> (C, H, W)."""
        return np.transpose(_host(datum)[0], (2, 0, 1))

    # ---- batches -------------------------------------------------------------------------------
    def _batchify(self, data: np.ndarray, label: np.ndarray, start: int = 0) -> int:
        i = start
        try:
            while i < self.batch_size:
                sample_label, s = self.next_sample()
                image = self.imdecode(s)
                try:
                    self.check_valid_image(image)
                except RuntimeError as err:
                    logging.debug("Invalid image, skipping: %s", err)
                    continue
                image = self.postprocess_data(self.augmentation_transform(image))
                if image.shape != self.data_shape:
                    raise HybridNetError(f"ImageIter: the augmenters made an image of shape "
                                         f"{image.shape[1:] + image.shape[:1]} (HWC), "
                                         f"data_shape is {self.data_shape} (CHW)")
                data[i] = image
                label[i] = np.asarray(sample_label, self.dtype).reshape(label[i].shape)
                i += 1
        except StopIteration:
            if not i:
                raise
        return i

    def next(self) -> DataBatch:
        from ..ndarray import array
        if self._cache is not None:
            data, label, filled = self._cache
        else:
            data = np.zeros(self.provide_data[0].shape, self.dtype)
            label = np.zeros(self.provide_label[0].shape, self.dtype)
            filled = self._batchify(data, label)
        pad = self.batch_size - filled
        if pad:
            if self.last_batch_handle == "discard":
                raise StopIteration
            if self.last_batch_handle == "roll_over" and self._cache is None:
                self._cache = (data, label, filled)
                raise StopIteration
            self._batchify(data, label, filled)
            if self.last_batch_handle == "pad":
                self._allow_read = False
            else:
                self._cache = None
        return DataBatch([array(data, dtype=self.dtype)], [array(label, dtype=self.dtype)],
                         pad=pad)
