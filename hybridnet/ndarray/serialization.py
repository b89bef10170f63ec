"""``nd.save`` / ``nd.load``: MXNet 1.x's binary NDArray format, byte for byte.

Everything is little-endian. A file (``.params``, ``.nd``) is::

    uint64 0x112 | uint64 0 | uint64 N | N array records | uint64 K | K x (uint64 len, UTF-8 name)

with K = 0 for a list and K = N for a dict (names in insertion order). One array record, as
MXNet 1.x writes it (V2)::

    uint32 0xF993FAC9 | int32 stype (0 dense) | int32 ndim | ndim x int64 dims
    | int32 dev_type | int32 dev_id | int32 type flag | size x itemsize bytes of data (C order)

Type flags: 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64, 7 bool,
12 bfloat16. The device is the array's own (``cpu(1)`` saves dev_type 1, dev_id 1); loading
always puts arrays on ``cpu(0)``, as MXNet does.

Reading also accepts what older and other writers produced:

* V1 (``0xF993FAC8``): no stype word; V0 (any other first word): that word is ndim, followed by
  ndim uint32 dims; V3 (``0xF993FACA``, written under numpy-shape semantics): ndim 0 is a scalar;
* sparse records (stype 1 row_sparse, 2 csr: storage shape, aux types/shapes, values, then the
  int64 aux arrays) -- loaded as the equivalent dense array;
* bfloat16 data -- loaded as float32 (numpy has no bfloat16);
* a V2 record with ndim 0: MXNet writes a 0-d array's data after it (and then cannot read the
  file back); we read such a record as a 0-d array, and a record that really ends after ndim 0
  (MXNet's "none" placeholder array) as ``None``.

``array_to_bytes`` / ``array_from_bytes`` are one record without the file header -- the state of
a pickled NDArray, ``{'handle': <record bytes>}``, exactly as MXNet pickles them
(``MXNetUnpickler`` loads pickles MXNet itself wrote). ``save`` writes a temporary file in the
target directory and renames it over the target, so an interrupted save never leaves a
half-written file. Malformed input raises ``NDArrayFormatError`` naming the file and the byte
offset, never a partial result.
"""
from __future__ import annotations

import os
import pickle
import struct
import uuid

import numpy as np

from .. import config
from ..base import HybridNetError, shape_str
from ..context import Context, cpu

__all__ = ["save", "load", "load_frombuffer", "array_to_bytes", "array_from_bytes",
           "NDArrayFormatError", "MXNetUnpickler"]

FILE_MAGIC = 0x112
V1_MAGIC, V2_MAGIC, V3_MAGIC = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_MAX_LEGACY_NDIM = 32            # V0 files come from MXNet <= 0.8, whose shapes were small

_FLAG_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32,
                5: np.int8, 6: np.int64, 7: np.bool_}
_DTYPE_FLAGS = {np.dtype(t): f for f, t in _FLAG_DTYPES.items()}
_BFLOAT16 = 12
_UNSUPPORTED_FLAGS = {8: "int16", 9: "uint16", 10: "uint32", 11: "uint64"}
_DEV_TYPES = (1, 2, 3, 5)        # cpu, gpu, cpu_pinned, cpu_shared
_STYPE_NAUX = {0: 0, 1: 1, 2: 2}  # dense, row_sparse (indices), csr (indptr, indices)


class NDArrayFormatError(HybridNetError, ValueError):
    """A file or buffer is not a valid NDArray file; the message names where and why."""


# ---- writing --------------------------------------------------------------------------------
def _host_values(arr) -> np.ndarray:
    """The values of ``arr`` as a C-ordered little-endian numpy array (waits for them; a CPU
    array's own buffer is used as is, no copy)."""
    arr.wait_to_read()
    host = arr._data.get() if arr.context.is_gpu else arr._data
    dt = host.dtype
    if dt not in _DTYPE_FLAGS:
        raise HybridNetError(f"cannot save an array of dtype {dt.name}")
    if dt.byteorder == ">":
        host = host.astype(dt.newbyteorder("<"))
    return host if host.flags.c_contiguous else host.copy(order="C")   # keeps 0-d arrays 0-d


def _record_parts(arr) -> tuple[bytes, np.ndarray]:
    """(header bytes, data array) of one V2 record for NDArray ``arr``."""
    host = _host_values(arr)
    ctx = arr.context
    shape = host.shape
    header = (struct.pack("<Iii", V2_MAGIC, 0, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
              + struct.pack("<iii", ctx.device_typeid, ctx.device_id, _DTYPE_FLAGS[host.dtype]))
    return header, host


def array_to_bytes(arr) -> bytes:
    """One NDArray as MXNet's single-array bytes (``MXNDArraySaveRawBytes``; pickle state)."""
    header, host = _record_parts(arr)
    return header + host.tobytes()


def _normalize(data) -> tuple[list, list]:
    from .ndarray import NDArray
    if isinstance(data, NDArray):
        return [data], []
    if isinstance(data, dict):
        names, arrays = [], []
        for k, v in data.items():
            if not isinstance(k, str):
                raise TypeError(f"nd.save: dict keys must be str, got {type(k).__name__} {k!r}")
            if not isinstance(v, NDArray):
                raise TypeError(f"nd.save: value of key {k!r} is a {type(v).__name__}, "
                                f"expected an NDArray")
            names.append(k)
            arrays.append(v)
        return arrays, names
    if isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            if not isinstance(v, NDArray):
                raise TypeError(f"nd.save: item {i} is a {type(v).__name__}, expected an NDArray")
        return list(data), []
    raise TypeError(f"nd.save: data must be an NDArray, a list of NDArrays or a dict of "
                    f"str -> NDArray, got {type(data).__name__}")


def save(fname, data) -> None:
    """Save NDArrays to ``fname`` in MXNet's binary format (``mx.nd.save``).

    Args:
        fname: path of the file to write (replaced atomically: a temporary file in the same
            directory is written, flushed to disk and renamed over ``fname``).
        data: an NDArray, a list of NDArrays, or a dict of str -> NDArray (``nd.load`` then
            returns a list or a dict to match; an empty dict loads as an empty list, as in MXNet).

    Example::

        >>> mx.nd.save('model-0001.params', {'arg:w': mx.nd.ones((2, 3))})
        >>> mx.nd.load('model-0001.params')['arg:w'].shape
        (2, 3)
    """
    arrays, names = _normalize(data)
    fname = os.fspath(fname)
    directory = os.path.dirname(os.path.abspath(fname))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"nd.save: directory {directory!r} of {fname!r} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(fname)}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with 0o666 lets the umask set the permissions, like a plain open() would
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<QQQ", FILE_MAGIC, 0, len(arrays)))
            for arr in arrays:
                header, host = _record_parts(arr)
                f.write(header)
                f.write(host.data)
            f.write(struct.pack("<Q", len(names)))
            for name in names:
                raw = name.encode("utf-8")
                f.write(struct.pack("<Q", len(raw)))
                f.write(raw)
            f.flush()
            if config.get("HYBRIDNET_SAVE_FSYNC"):
                os.fsync(f.fileno())
        os.replace(tmp, fname)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---- reading --------------------------------------------------------------------------------
class _Reader:
    """Little-endian reads from a buffer, with errors naming the source and the byte offset.

    ``owned``: the buffer is a private bytearray nobody else sees, so arrays may be views into
    it instead of copies (``load`` reads a file into one and hands its pieces out).
    """

    def __init__(self, buf, source: str, owned: bool = False):
        self.buf = buf
        self.size = len(buf)
        self.pos = 0
        self.source = source
        self.owned = owned

    def fail(self, msg: str, at: int | None = None):
        at = self.pos if at is None else at
        raise NDArrayFormatError(f"{self.source}: {msg} at byte {at}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            self.fail(f"truncated: {what} needs {n} bytes but only {self.size - self.pos} remain")

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return out

    def one(self, fmt: str, what: str):
        return self.unpack(fmt, what)[0]

    def array(self, dtype, count: int, what: str) -> np.ndarray:
        """``count`` elements of ``dtype`` (a view into an owned buffer when aligned, else a
        copy in native byte order)."""
        dt = np.dtype(dtype).newbyteorder("<")
        self.need(count * dt.itemsize, what)
        out = np.frombuffer(self.buf, dt, count, self.pos)
        self.pos += count * dt.itemsize
        if self.owned and out.flags.aligned and dt.isnative:
            return out
        return out.astype(dt.newbyteorder("="))


def _read_shape(r: _Reader, magic: int, what: str) -> tuple | None:
    """A shape in the record's encoding; None for an unknown (V3: ndim -1) shape."""
    at = r.pos
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        ndim = r.one("<i", f"{what} ndim")
        if magic == V3_MAGIC and ndim == -1:
            return None
        if ndim < 0 or ndim * 8 > r.size - r.pos:
            r.fail(f"bad {what}: ndim {ndim} is impossible ({r.size - r.pos} bytes remain)", at)
        dims = r.unpack(f"<{ndim}q", f"{what} dims")
    else:
        ndim = magic
        dims = r.unpack(f"<{ndim}I", f"{what} dims")
    for d in dims:
        if d < 0:
            r.fail(f"bad {what}: dimension {d} in {dims} is negative", at)
    return tuple(int(d) for d in dims)


def _read_dtype(r: _Reader) -> tuple:
    """(numpy dtype of the stored bytes, dtype of the loaded array) from a type flag."""
    at = r.pos
    flag = r.one("<i", "type flag")
    if flag in _FLAG_DTYPES:
        dt = np.dtype(_FLAG_DTYPES[flag])
        return dt, dt
    if flag == _BFLOAT16:
        return np.dtype(np.uint16), np.dtype(np.float32)
    if flag in _UNSUPPORTED_FLAGS:
        r.fail(f"type flag {flag} ({_UNSUPPORTED_FLAGS[flag]}) is not supported by hybridnet", at)
    r.fail(f"unknown type flag {flag}; expected one of {sorted(_FLAG_DTYPES) + [_BFLOAT16]}", at)


def _read_context(r: _Reader) -> None:
    at = r.pos
    dev_type, dev_id = r.unpack("<ii", "context")
    if dev_type not in _DEV_TYPES or dev_id < 0:
        r.fail(f"bad context (device type {dev_type}, id {dev_id}); expected a device type "
               f"in {_DEV_TYPES} and an id >= 0", at)


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _read_values(r: _Reader, stored, loaded, shape) -> np.ndarray:
    count = _size(shape)
    if count * stored.itemsize > r.size - r.pos:
        r.fail(f"truncated: data of shape {shape_str(shape)} needs {count * stored.itemsize} "
               f"bytes but only {r.size - r.pos} remain")
    values = r.array(stored, count, "array data")
    if stored != loaded:            # bfloat16: the upper half of a float32
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.reshape(shape)


def _densify(r: _Reader, stype: int, shape, values, aux, at: int) -> np.ndarray:
    dense = np.zeros(shape, values.dtype)
    if stype == 1:                  # row_sparse: aux[0] = row indices
        rows = aux[0]
        if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
            r.fail(f"row_sparse row index out of range for shape {shape_str(shape)}", at)
        if values.shape[1:] != tuple(shape[1:]) or values.shape[0] != rows.size:
            r.fail(f"row_sparse values of shape {shape_str(values.shape)} do not fit "
                   f"{rows.size} rows of shape {shape_str(shape)}", at)
        dense[rows] = values
        return dense
    indptr, cols = aux             # csr
    if len(shape) != 2 or indptr.size != shape[0] + 1 or cols.size != values.size:
        r.fail(f"csr arrays (indptr {indptr.size}, indices {cols.size}, values {values.size}) "
               f"do not fit shape {shape_str(shape)}", at)
    counts = np.diff(indptr)
    if indptr[0] != 0 or indptr[-1] != values.size or (counts < 0).any():
        r.fail("csr indptr is not a valid non-decreasing offset list", at)
    if cols.size and (cols.min() < 0 or cols.max() >= shape[1]):
        r.fail(f"csr column index out of range for shape {shape_str(shape)}", at)
    dense[np.repeat(np.arange(shape[0]), counts), cols] = values
    return dense


_HEAD = struct.Struct("<Iii")                       # magic, storage type, ndim
_TAIL = struct.Struct("<iii")                       # device type, device id, type flag
_DIMS = [struct.Struct(f"<{n}q") for n in range(9)]
_FAST_DTYPES = {f: np.dtype(t) for f, t in _FLAG_DTYPES.items()}


def _read_dense_v2(r: _Reader) -> np.ndarray | None:
    """The common record -- V2, dense, 1 to 8 dims, a supported dtype, all in bounds -- read with
    three struct calls. Anything else returns None with the position unchanged, and the general
    reader (``_read_record``) handles it, errors included."""
    pos, buf = r.pos, r.buf
    if pos + 12 > r.size:
        return None
    magic, stype, ndim = _HEAD.unpack_from(buf, pos)
    if magic != V2_MAGIC or stype != 0 or not 0 < ndim < len(_DIMS):
        return None
    data_at = pos + 24 + 8 * ndim
    if data_at > r.size:
        return None
    dims = _DIMS[ndim].unpack_from(buf, pos + 12)
    dev_type, dev_id, flag = _TAIL.unpack_from(buf, data_at - 12)
    dt = _FAST_DTYPES.get(flag)
    if dt is None or dev_type not in _DEV_TYPES or dev_id < 0 or min(dims) < 0:
        return None
    count = _size(dims)
    if data_at + count * dt.itemsize > r.size:
        return None
    r.pos = data_at
    return r.array(dt, count, "array data").reshape(dims)


class _NoneRecord:
    """Marker for MXNet's "none" placeholder array (a record that ends after ndim 0)."""


def _read_record(r: _Reader, continues) -> np.ndarray | type:
    """One array record as a numpy array (or ``_NoneRecord``).

    ``continues(pos)`` says whether a valid rest of the input can start at ``pos``; it decides
    what a V2 record with ndim 0 is (see the module docstring).
    """
    fast = _read_dense_v2(r)
    if fast is not None:
        return fast
    start = r.pos
    magic = r.one("<I", "array magic")
    if magic not in (V1_MAGIC, V2_MAGIC, V3_MAGIC) and magic > _MAX_LEGACY_NDIM:
        r.fail(f"bad array magic 0x{magic:08X}, expected 0x{V2_MAGIC:08X} (or 0x{V1_MAGIC:08X}, "
               f"0x{V3_MAGIC:08X}, or a legacy ndim <= {_MAX_LEGACY_NDIM})", start)
    stype, n_aux, storage_shape = 0, 0, None
    if magic in (V2_MAGIC, V3_MAGIC):
        at = r.pos
        stype = r.one("<i", "storage type")
        if stype not in _STYPE_NAUX:
            r.fail(f"unknown storage type {stype}; expected 0 (default), 1 (row_sparse) or "
                   f"2 (csr)", at)
        n_aux = _STYPE_NAUX[stype]
        if n_aux:
            storage_shape = _read_shape(r, magic, "storage shape")
    shape = _read_shape(r, magic, "shape")
    if shape is None or (magic == 0):
        return _NoneRecord
    if not shape and magic in (V1_MAGIC, V2_MAGIC):
        end_as_none = r.pos
        if not (_zero_dim_data_follows(r) and continues(r.pos + 12 + _zero_dim_itemsize(r))):
            if continues(end_as_none):
                return _NoneRecord
    _read_context(r)
    stored, loaded = _read_dtype(r)
    aux_specs = []
    for i in range(n_aux):
        at = r.pos
        aux_flag = r.one("<i", f"aux {i} type flag")
        if aux_flag not in _FLAG_DTYPES or not np.issubdtype(_FLAG_DTYPES[aux_flag], np.integer):
            r.fail(f"aux {i} has type flag {aux_flag}, expected an integer type", at)
        aux_specs.append((_FLAG_DTYPES[aux_flag], _read_shape(r, magic, f"aux {i} shape")))
    values = _read_values(r, stored, loaded, storage_shape if n_aux else shape)
    if not n_aux:
        return values
    aux = [_read_values(r, np.dtype(t), np.dtype(t), s).reshape(-1).astype(np.int64)
           for t, s in aux_specs]
    return _densify(r, stype, shape, values, aux, start)


def _zero_dim_itemsize(r: _Reader) -> int:
    flag = struct.unpack_from("<i", r.buf, r.pos + 8)[0]
    return 2 if flag == _BFLOAT16 else np.dtype(_FLAG_DTYPES[flag]).itemsize


def _zero_dim_data_follows(r: _Reader) -> bool:
    """Whether a context, a known type flag and one element fit after a V2 ndim of 0."""
    if r.pos + 12 > r.size:
        return False
    dev_type, dev_id, flag = struct.unpack_from("<iii", r.buf, r.pos)
    if dev_type not in _DEV_TYPES or dev_id < 0 or not (flag in _FLAG_DTYPES or flag == _BFLOAT16):
        return False
    return r.pos + 12 + _zero_dim_itemsize(r) <= r.size


def _read_names(r: _Reader, n_arrays: int) -> list:
    at = r.pos
    count = r.one("<Q", "name count")
    if count not in (0, n_arrays):
        r.fail(f"bad name count {count}: expected 0 (a list) or {n_arrays} (one per array)", at)
    names = []
    for i in range(count):
        at = r.pos
        length = r.one("<Q", f"length of name {i}")
        if length > r.size - r.pos:
            r.fail(f"truncated: name {i} has length {length} but only {r.size - r.pos} bytes "
                   f"remain", at)
        raw = bytes(r.buf[r.pos:r.pos + length])
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            r.fail(f"name {i} is not valid UTF-8", r.pos)
        r.pos += length
    return names


def _names_block_ok(r: _Reader, pos: int, n_arrays: int) -> bool:
    probe = _Reader(r.buf, r.source)
    probe.pos = pos
    try:
        _read_names(probe, n_arrays)
    except NDArrayFormatError:
        return False
    return probe.pos == probe.size


def _magic_at(r: _Reader, pos: int) -> bool:
    if pos + 4 > r.size:
        return False
    magic = struct.unpack_from("<I", r.buf, pos)[0]
    return magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC) or magic <= _MAX_LEGACY_NDIM


def _to_ndarray(values):
    from .ndarray import NDArray
    if values is _NoneRecord:
        return None
    return NDArray(values, cpu(0))


def _parse_file(buf, source: str, owned: bool = False):
    r = _Reader(buf, source, owned)
    at = r.pos
    if r.size < 8:
        r.fail(f"truncated: {r.size} bytes is too short for an NDArray file header", 0)
    magic = r.one("<Q", "file magic")
    if magic != FILE_MAGIC:
        r.fail(f"not an NDArray file: bad magic 0x{magic:X}, expected 0x{FILE_MAGIC:X}", at)
    r.one("<Q", "reserved word")
    at = r.pos
    n = r.one("<Q", "array count")
    if n * 4 > r.size - r.pos:     # every record takes at least 4 bytes
        r.fail(f"bad array count {n}: only {r.size - r.pos} bytes follow", at)
    arrays = []
    for i in range(n):
        last = i == n - 1

        def continues(pos, last=last):
            return _names_block_ok(r, pos, n) if last else _magic_at(r, pos)
        arrays.append(_to_ndarray(_read_record(r, continues)))
    names = _read_names(r, n)
    if r.pos != r.size:
        r.fail(f"trailing garbage: {r.size - r.pos} bytes after the last name")
    if names:
        if len(set(names)) != len(names):
            dup = next(k for k in names if names.count(k) > 1)
            raise NDArrayFormatError(f"{source}: name {dup!r} appears more than once")
        return dict(zip(names, arrays))
    return arrays


def load_frombuffer(buf):
    """Load NDArrays from the bytes of an NDArray file (``mx.nd.load_frombuffer``).

    Returns a list, or a dict when the arrays were saved with names.
    """
    if isinstance(buf, str):
        raise TypeError("load_frombuffer expects bytes, got str; read the file in binary mode")
    return _parse_file(memoryview(buf).cast("B"), "buffer")


def load(fname):
    """Load NDArrays saved by ``mx.nd.save`` (hybridnet's or MXNet's) onto ``cpu(0)``.

    Args:
        fname: path of the file.

    Returns:
        A list of NDArrays, or a dict str -> NDArray when they were saved with names.

    Example::

        >>> mx.nd.save('x.nd', [mx.nd.zeros((2,))])
        >>> mx.nd.load('x.nd')[0].shape
        (2,)
    """
    fname = os.fspath(fname)
    if not os.path.exists(fname):
        raise FileNotFoundError(f"nd.load: no such file: {fname!r}")
    if os.path.isdir(fname):
        raise IsADirectoryError(f"nd.load: {fname!r} is a directory, not an NDArray file")
    with open(fname, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise NDArrayFormatError(f"{fname}: empty file, not an NDArray file at byte 0")
        # one read into a private buffer; the arrays are views into it (no second copy).
        # np.empty, unlike bytearray, does not zero the memory before the read fills it.
        buf = np.empty(size, np.uint8)
        got = f.readinto(buf)
    if got != size:
        raise NDArrayFormatError(f"{fname}: the file changed while it was read (expected {size} "
                                 f"bytes, got {got}) at byte {got}")
    return _parse_file(memoryview(buf), fname, owned=True)


def array_from_bytes(buf):
    """One NDArray from MXNet's single-array bytes (pickle state; ``MXNDArrayLoadFromRawBytes``)."""
    r = _Reader(memoryview(buf).cast("B"), "NDArray bytes")
    values = _read_record(r, lambda pos: pos == r.size)
    if r.pos != r.size:
        r.fail(f"trailing garbage: {r.size - r.pos} bytes after the array")
    if values is _NoneRecord:
        raise NDArrayFormatError("NDArray bytes: the record is an empty placeholder array, "
                                 "not an array with values")
    return _to_ndarray(values)


class MXNetUnpickler(pickle.Unpickler):
    """Unpickle data that MXNet 1.x pickled: ``mxnet.*.NDArray`` objects become our NDArrays.

    Example::

        with open('states.pkl', 'rb') as f:
            obj = MXNetUnpickler(f).load()
    """

    def find_class(self, module, name):
        if module.split(".")[0] == "mxnet":
            from .ndarray import NDArray
            if name == "NDArray":
                return NDArray
            if name == "Context":
                return Context
        return super().find_class(module, name)
