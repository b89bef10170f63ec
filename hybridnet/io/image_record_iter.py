"""``ImageRecordIter``: batches of decoded, augmented images from a RecordIO file.

How it works: the record offsets come from the ``.idx`` file (or one scan of the ``.rec``
headers); the file is memory-mapped. Each image of a batch is one task for a pool of
``preprocess_threads`` threads that read, decode (Pillow, GIL released), augment and normalise
(numba, GIL released) it straight into its slot of the batch buffer. Up to ``prefetch_buffer``
batches are in flight, so batch k+1 is prepared while batch k trains. An error in any image
(damaged record, undecodable bytes) is raised by the ``next()`` that would have returned its
batch, naming the file, the record and its byte offset.

Differences from MXNet (improvements unless noted):

* ``shuffle=True`` shuffles *samples* (a new permutation of all records every epoch, seeded by
  ``seed``), not chunks;
* ``num_parts``/``part_index`` split the records evenly by count (MXNet splits by bytes); every
  record belongs to exactly one part;
* with ``round_batch=False`` the last batch's padding is zeros and ``pad`` reports it (MXNet
  leaves stale data and reports ``pad=0``); ``index`` holds the records' ids (MXNet: zeros);
* random augmentations draw from per-sample generators, so runs repeat exactly, but the draws
  differ from MXNet's; ``aug_seq`` other than ``'aug_default'`` is not supported;
* an unknown parameter is an error (MXNet silently ignores it, hiding typos).
"""
from __future__ import annotations

import logging
import mmap
import os
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..base import HybridNetError, ParamError
from ..image.record_aug import AUG_DEFAULTS, NORM_DEFAULTS, RecordAugmenter
from ..recordio import RecordIOError, read_record_at, scan_offsets, unpack
from .base import DataBatch, DataDesc, MXDataIter, check_batch_size
from .csv_iter import shape_of

__all__ = ["ImageRecordIter", "ImageRecordUInt8Iter", "ImageRecordInt8Iter", "ImageRecordIter_v1",
           "ImageRecordUInt8Iter_v1"]

_LOG = logging.getLogger(__name__)

ITER_DEFAULTS = {
    "path_imgrec": "", "path_imgidx": "", "path_imglist": "", "data_shape": None,
    "batch_size": None, "label_width": 1, "shuffle": False, "seed": 0, "seed_aug": None,
    "num_parts": 1, "part_index": 0, "preprocess_threads": 4, "prefetch_buffer": 4,
    "round_batch": True, "dtype": None, "data_name": "data", "label_name": "softmax_label",
    "verbose": True, "ctx": "gpu", "device_id": 0, "shuffle_chunk_size": 0,
    "shuffle_chunk_seed": 0, "aug_seq": "aug_default",
}
_DTYPES = ("float32", "float16", "float64", "uint8", "int8")


def _parse_bool(name, value):
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true"):
            return True
        if low in ("0", "false"):
            return False
        raise ParamError(f"ImageRecordIter: {name} must be a boolean, got {value!r}")
    return bool(value)


def _coerce(name: str, value, default):
    """A parameter value of the type of its default (values may come as strings)."""
    try:
        if isinstance(default, bool):
            return _parse_bool(name, value)
        if isinstance(default, int) and not isinstance(value, bool):
            return int(float(value)) if isinstance(value, str) else int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise ParamError(f"ImageRecordIter: {name} must be a number, got {value!r}") from None
    if name in ("min_aspect_ratio", "seed_aug") and value not in (None, "None"):
        return float(value) if name == "min_aspect_ratio" else int(value)
    return None if value == "None" else value


def _parse_params(kwargs: dict, what: str) -> dict:
    known = dict(ITER_DEFAULTS, **AUG_DEFAULTS, **NORM_DEFAULTS)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ParamError(f"{what}: unknown parameter(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    params = {k: _coerce(k, kwargs[k], known[k]) if k in kwargs else v for k, v in known.items()}
    for required in ("path_imgrec", "data_shape", "batch_size"):
        if not params[required]:
            raise ParamError(f"{what}: {required} is required")
    if params["aug_seq"] != "aug_default":
        raise ParamError(f"{what}: aug_seq={params['aug_seq']!r} is not supported; only "
                         f"'aug_default'")
    params["data_shape"] = shape_of(params["data_shape"], f"{what}: data_shape")
    if len(params["data_shape"]) != 3:
        raise ParamError(f"{what}: data_shape must be (channels, height, width), got "
                         f"{params['data_shape']}")
    params["batch_size"] = check_batch_size(params["batch_size"], what)
    if not 0 <= params["part_index"] < params["num_parts"]:
        raise ParamError(f"{what}: part_index must be in [0, num_parts={params['num_parts']}), "
                         f"got {params['part_index']}")
    if params["preprocess_threads"] < 1 or params["prefetch_buffer"] < 1:
        raise ParamError(f"{what}: preprocess_threads and prefetch_buffer must be at least 1")
    dtype = params["dtype"]
    params["dtype"] = "float32" if dtype in (None, "None") else str(np.dtype(dtype))
    if params["dtype"] not in _DTYPES:
        raise ParamError(f"{what}: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    return params


def _read_label_list(path: str, label_width: int) -> dict:
    """image index -> labels, from an im2rec ``.lst`` file (index, labels..., path)."""
    labels = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.strip().split("\t")
            if fields == [""]:
                continue
            if len(fields) < label_width + 2:
                raise HybridNetError(f"{path}, line {lineno}: expected index, {label_width} "
                                     f"label(s) and a path separated by tabs, got {line.strip()!r}")
            try:
                labels[int(float(fields[0]))] = np.array(fields[1:1 + label_width], np.float32)
            except ValueError as err:
                raise HybridNetError(f"{path}, line {lineno}: {err}") from None
    return labels


class _Plan:
    """Which records form each batch: passes over the data (a fresh permutation per pass when
    shuffling) cut into batches, with MXNet's ``round_batch`` carry-over between epochs."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, round_batch: bool):
        self.n, self.bs, self.shuffle, self.seed, self.round_batch = \
            n, batch_size, shuffle, seed, round_batch
        self.pass_no = -1
        self._new_pass()

    def _new_pass(self) -> None:
        self.pass_no += 1
        self.pos = 0
        if self.shuffle:
            self.order = np.random.default_rng([self.seed, self.pass_no]).permutation(self.n)
        else:
            self.order = np.arange(self.n)

    def restart(self, continue_pass: bool) -> None:
        if not continue_pass:
            self._new_pass()

    def epoch(self):
        """Yield (records, rng keys, pad, overflow) for each batch of one epoch."""
        while self.pos < self.n:
            take = min(self.bs, self.n - self.pos)
            recs = list(self.order[self.pos:self.pos + take])
            keys = [(self.pass_no, p) for p in range(self.pos, self.pos + take)]
            self.pos += take
            pad = self.bs - take
            if pad and self.round_batch:
                while len(recs) < self.bs:   # complete from the next pass, which goes on
                    self._new_pass()
                    k = min(self.bs - len(recs), self.n)
                    recs += list(self.order[:k])
                    keys += [(self.pass_no, p) for p in range(k)]
                    self.pos = k
                yield recs, keys, pad, True
                return
            yield recs, keys, pad, False


class _Pending:
    """A batch being prepared: its buffers and the futures of its images."""
    __slots__ = ("data", "label", "index", "pad", "futures", "overflow")


class ImageRecordIter(MXDataIter):
    """Iterate over a RecordIO file of images in batches (``mx.io.ImageRecordIter(**kwargs)``).

    Main parameters (MXNet's names and defaults):
        path_imgrec (required), path_imgidx, path_imglist: the .rec, its .idx and an optional
            .lst giving labels by image index.
        data_shape (required): (channels, height, width) of one image; batch_size (required).
        label_width (1), shuffle (False; sample-level here), seed (0), num_parts (1),
            part_index (0), round_batch (True), preprocess_threads (4), prefetch_buffer (4),
            dtype (float32; also float16, float64, uint8, int8).
        Augmentation: resize (-1), rand_crop, random_resized_crop, rand_mirror, mirror,
            max_rotate_angle, rotate, max_aspect_ratio, min_aspect_ratio, max_shear_ratio,
            min/max_random_scale, min/max_random_area, min/max_crop_size, min/max_img_size,
            brightness, contrast, saturation, random_h/s/l, pca_noise, pad, fill_value (255),
            inter_method (1 = bilinear), seed_aug.
        Normalisation: mean_r/g/b/a, std_r/g/b/a, mean_img (an nd.save file; created from the
            data when missing), scale, max_random_contrast, max_random_illumination;
            output = (pixel - mean) * scale / std, channels RGB.

    See the module docstring for the differences from MXNet.

    Example::

        >>> it = mx.io.ImageRecordIter(path_imgrec='train.rec', data_shape=(3, 224, 224),
        ...                            batch_size=32, resize=256, rand_crop=True,
        ...                            rand_mirror=True, shuffle=True, preprocess_threads=4)
        >>> batch = next(it)
        >>> batch.data[0].shape, batch.label[0].shape
        ((32, 3, 224, 224), (32,))
    """

    _what = "ImageRecordIter"
    _default_dtype = None

    def __init__(self, **kwargs):
        if self._default_dtype is not None:
            kwargs.setdefault("dtype", self._default_dtype)
        p = _parse_params(kwargs, self._what)
        super().__init__(p["batch_size"])
        self.params = p
        self.data_shape = p["data_shape"]
        self.label_width = p["label_width"]
        self.dtype = np.dtype(p["dtype"])
        self.data_name, self.label_name = p["data_name"], p["label_name"]
        self._path = os.fspath(p["path_imgrec"])
        self._open_records(p)
        self._labels = _read_label_list(p["path_imglist"], self.label_width) \
            if p["path_imglist"] else None
        raw = self.dtype in (np.uint8, np.int8)
        aug = {k: p[k] for k in AUG_DEFAULTS}
        norm = {k: p[k] for k in NORM_DEFAULTS}
        self._aug = RecordAugmenter(self.data_shape, aug, norm, raw=raw)
        self._rng_seed = p["seed_aug"] if p["seed_aug"] is not None else p["seed"]
        self._pool = ThreadPoolExecutor(p["preprocess_threads"],
                                        thread_name_prefix="ImageRecordIter")
        self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False,
                                           cancel_futures=True)
        if not raw and p["mean_img"]:
            self._aug = RecordAugmenter(self.data_shape, aug, norm,
                                        mean_img=self._mean_image(p["mean_img"]))
        self._plan = _Plan(len(self._offsets), self.batch_size, p["shuffle"], p["seed"],
                           p["round_batch"])
        self._queue = deque()
        self._last_overflow = False
        self._start_epoch()
        if p["verbose"]:
            _LOG.info("%s: %s, %d images, %d threads for decoding", self._what, self._path,
                      len(self._offsets), p["preprocess_threads"])

    # ---- the file ---------------------------------------------------------------------------
    def _open_records(self, p) -> None:
        path = self._path
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{self._what}: no RecordIO file at {path!r}")
        if os.path.getsize(path) == 0:
            raise RecordIOError(f"{self._what}: {path} is empty")
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if p["path_imgidx"]:
            offsets = self._read_index(os.fspath(p["path_imgidx"]), len(self._mm))
        else:
            offsets = scan_offsets(self._mm, path)
        if not offsets:
            raise RecordIOError(f"{self._what}: {path} holds no records")
        n = len(offsets)
        lo = n * p["part_index"] // p["num_parts"]
        hi = n * (p["part_index"] + 1) // p["num_parts"]
        self._offsets = np.asarray(offsets[lo:hi], np.int64)
        if len(self._offsets) == 0:
            raise HybridNetError(f"{self._what}: part {p['part_index']} of {p['num_parts']} of "
                                 f"{path} is empty ({n} records)")

    def _read_index(self, idx_path: str, size: int) -> list:
        offsets = []
        with open(idx_path) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    offset = int(fields[1])
                except (IndexError, ValueError):
                    raise RecordIOError(f"{idx_path}, line {lineno}: expected 'key<TAB>offset', "
                                        f"got {line.strip()!r}") from None
                if offset < 0 or offset + 8 > size:
                    raise RecordIOError(f"{idx_path}, line {lineno}: offset {offset} is past the "
                                        f"end of {self._path} ({size} bytes); the index does "
                                        f"not belong to this file")
                offsets.append(offset)
        return sorted(offsets)

    def _mean_image(self, path: str) -> np.ndarray:
        from .. import ndarray as nd  # noqa: PLC0415 (io sits above ndarray)
        if os.path.exists(path):
            loaded = nd.load(path)
            arrays = list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
            if len(arrays) != 1:
                raise HybridNetError(f"{self._what}: mean_img file {path} must hold one array, "
                                     f"it holds {len(arrays)}")
            return arrays[0].asnumpy().astype(np.float32)
        _LOG.info("%s: cannot find %s; computing the mean image over %d images", self._what,
                  path, len(self._offsets))
        total = np.zeros(self.data_shape, np.float64)
        slot = np.empty(self.data_shape, np.uint8)
        raw_aug = RecordAugmenter(self.data_shape, {k: self.params[k] for k in AUG_DEFAULTS},
                                  {}, raw=True)
        for i in range(len(self._offsets)):
            payload, _, where = self._record(i)
            raw_aug(payload, slot, None, where)
            total += slot
        mean = (total / len(self._offsets)).astype(np.float32)
        nd.save(path, {"mean_img": nd.array(mean)})
        return mean

    def _record(self, i: int):
        offset = int(self._offsets[i])
        raw, _ = read_record_at(self._mm, offset, self._path, i)
        header, payload = unpack(raw)
        where = f"record {i} (id {header.id}) at byte offset {offset} of {self._path}"
        return payload, header, where

    # ---- description ------------------------------------------------------------------------
    @property
    def provide_data(self):
        return [DataDesc(self.data_name, (self.batch_size,) + self.data_shape, self.dtype.type)]

    @property
    def provide_label(self):
        shape = (self.batch_size,) if self.label_width == 1 else \
            (self.batch_size, self.label_width)
        return [DataDesc(self.label_name, shape, np.float32)]

    # ---- producing batches ------------------------------------------------------------------
    def _work(self, i: int, key, data: np.ndarray, label: np.ndarray, index: np.ndarray,
              slot: int) -> None:
        payload, header, where = self._record(i)
        if self._labels is not None:
            try:
                label[slot] = self._labels[int(header.id)]
            except KeyError:
                raise HybridNetError(f"{where}: image index {header.id} is not in "
                                     f"{self.params['path_imglist']}") from None
        elif header.flag > 0:
            if header.flag != self.label_width:
                raise HybridNetError(f"{where}: the record holds {header.flag} labels but "
                                     f"label_width is {self.label_width}")
            label[slot] = header.label
        else:
            if self.label_width != 1:
                raise HybridNetError(f"{where}: the record holds 1 label but label_width is "
                                     f"{self.label_width}; pass path_imglist or pack the "
                                     f"labels as arrays")
            label[slot] = header.label
        index[slot] = header.id
        rng = np.random.default_rng([self._rng_seed, key[0], key[1]]) \
            if self._aug.needs_rng else None
        self._aug(payload, data[slot], rng, where)

    def _submit(self, recs, keys, pad, overflow) -> None:
        raw = self.dtype in (np.uint8, np.int8)
        entry = _Pending()
        entry.data = np.zeros((self.batch_size,) + self.data_shape,
                              np.uint8 if raw else np.float32)
        entry.label = np.zeros((self.batch_size, self.label_width), np.float32)
        entry.index = np.zeros(self.batch_size, np.uint64)
        entry.pad, entry.overflow = pad, overflow
        entry.futures = [self._pool.submit(self._work, int(r), k, entry.data, entry.label,
                                           entry.index, slot)
                         for slot, (r, k) in enumerate(zip(recs, keys))]
        self._queue.append(entry)

    def _fill(self) -> None:
        while len(self._queue) < self.params["prefetch_buffer"]:
            try:
                self._submit(*next(self._batches))
            except StopIteration:
                return

    def _start_epoch(self) -> None:
        self._batches = self._plan.epoch()
        self._fill()

    def _discard(self) -> None:
        for entry in self._queue:
            for fut in entry.futures:
                fut.cancel()
        for entry in self._queue:       # let running tasks finish before buffers are dropped
            for fut in entry.futures:
                if not fut.cancelled():
                    fut.exception()
        self._queue.clear()

    def reset(self) -> None:
        if not self._finalizer.alive:
            raise HybridNetError(f"{self._what} over {self._path} is closed")
        self._discard()
        self._plan.restart(continue_pass=self._last_overflow)
        self._last_overflow = False
        self._start_epoch()

    def _finish(self, entry: _Pending):
        try:
            for fut in entry.futures:
                fut.result()
        finally:
            self._fill()
        data = entry.data
        if self.dtype == np.int8:
            mean = np.round([self.params[f"mean_{c}"] for c in "rgba"[:self.data_shape[0]]])
            data = np.clip(data.astype(np.int16) - mean.astype(np.int16)[:, None, None],
                           -128, 127).astype(np.int8)
        elif data.dtype != self.dtype:
            data = data.astype(self.dtype)
        label = entry.label[:, 0] if self.label_width == 1 else entry.label
        return data, label

    def next(self) -> DataBatch:
        if not self._finalizer.alive:
            raise HybridNetError(f"{self._what} over {self._path} is closed")
        if not self._queue:
            raise StopIteration
        entry = self._queue.popleft()
        data, label = self._finish(entry)
        self._last_overflow = entry.overflow
        from ..context import cpu  # noqa: PLC0415
        from ..ndarray import NDArray  # noqa: PLC0415 (io sits above ndarray)
        return DataBatch([NDArray(data, cpu())], [NDArray(np.ascontiguousarray(label), cpu())],
                         pad=entry.pad, index=entry.index, provide_data=self.provide_data,
                         provide_label=self.provide_label)

    def iter_next(self) -> bool:
        try:
            self._current = self.next()
        except StopIteration:
            return False
        return True

    def getdata(self):
        return self._current.data

    def getlabel(self):
        return self._current.label

    def getindex(self):
        return self._current.index

    def getpad(self) -> int:
        return self._current.pad

    def close(self) -> None:
        """Stop the decode threads (also done when the iterator is garbage-collected)."""
        self._discard()
        self._finalizer()


class ImageRecordUInt8Iter(ImageRecordIter):
    """``ImageRecordIter`` with uint8 output and no normalisation (MXNet's deprecated alias of
    ``ImageRecordIter(dtype='uint8')``)."""
    _what = "ImageRecordUInt8Iter"
    _default_dtype = "uint8"


class ImageRecordInt8Iter(ImageRecordIter):
    """``ImageRecordIter`` with int8 output: ``saturate(pixel - round(mean))``."""
    _what = "ImageRecordInt8Iter"
    _default_dtype = "int8"


# MXNet's older C++ iterators of the same files; here the same pipeline.
ImageRecordIter_v1 = ImageRecordIter            # noqa: N816  (MXNet's name)
ImageRecordUInt8Iter_v1 = ImageRecordUInt8Iter  # noqa: N816
