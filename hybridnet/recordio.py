"""``mx.recordio``: MXNet's RecordIO files (``.rec``) and their indexes (``.idx``).

The format, byte for byte (files written here read in MXNet and vice versa):

* a record is ``uint32 magic 0xCED7230A``, ``uint32 lrecord = cflag << 29 | length``, ``length``
  payload bytes, then zero padding to a multiple of 4 bytes (all little-endian);
* a payload that contains the magic word at a 4-byte aligned offset is split there into parts
  (cflag 1 = first, 2 = middle, 3 = last; 0 = a whole record); the magic words themselves are
  dropped by the writer and put back by the reader. Parts other than the last need no padding;
* an ``.idx`` file holds text lines ``key\\toffset`` with the byte offset of each record's header;
* an image record's payload (``pack``) is a 24-byte header ``IfQQ`` = flag, label, id, id2; when
  the label is an array, flag is its length, the header label is 0 and ``flag`` float32 labels
  follow the header; then the encoded image.

Damaged files raise :class:`RecordIOError` naming the file, the record and the byte offset.
"""
from __future__ import annotations

import numbers
import os
import struct
from collections import namedtuple
from multiprocessing import current_process

import numpy as np

from .base import HybridNetError

__all__ = ["MXRecordIO", "MXIndexedRecordIO", "IRHeader", "pack", "unpack", "pack_img",
           "unpack_img", "RecordIOError", "MAGIC", "encode_record", "read_record_at",
           "scan_offsets"]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEAD = struct.Struct("<II")
_LEN_MASK = (1 << 29) - 1
_MAX_PART = _LEN_MASK


class RecordIOError(HybridNetError, ValueError):
    """A RecordIO (.rec) or index (.idx) file is damaged or does not match its partner."""


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def encode_record(payload) -> bytes:
    """The bytes one record occupies in a .rec file (header(s), payload parts, padding)."""
    data = bytes(payload)
    n = len(data)
    aligned = n & ~3
    hits = []
    if aligned:
        words = np.frombuffer(data, dtype="<u4", count=aligned // 4)
        hits = (np.flatnonzero(words == MAGIC) * 4).tolist()
    parts, start = [], 0
    for pos in hits:                      # split at each aligned magic word, dropping it
        parts.append(data[start:pos])
        start = pos + 4
    parts.append(data[start:])
    for part in parts:
        if len(part) > _MAX_PART:
            raise RecordIOError(f"a record part of {len(part)} bytes is too long; RecordIO "
                                f"stores at most {_MAX_PART} bytes per part")
    out = bytearray()
    for i, part in enumerate(parts):
        if len(parts) == 1:
            cflag = 0
        else:
            cflag = 1 if i == 0 else (3 if i == len(parts) - 1 else 2)
        out += _HEAD.pack(MAGIC, (cflag << 29) | len(part))
        out += part
    out += b"\0" * (_pad4(n) - n)
    return bytes(out)


def read_record_at(buf, offset: int, where: str, number=None):
    """Decode the record whose header starts at byte ``offset`` of ``buf`` (bytes, mmap or a
    seekable binary file); return ``(payload, offset_after_record)``.

    ``where`` names the file for errors; ``number`` (record number or key) is added when known.
    """
    what = f"record {number} " if number is not None else "record "
    pieces = []
    pos = offset
    first = True
    while True:
        head = _read(buf, pos, 8)
        if len(head) < 8:
            if first and not head and number is None:
                return None, pos
            raise RecordIOError(f"{where}: {what}at byte offset {offset} is truncated: the "
                                f"header at byte {pos} needs 8 bytes, the file ends after "
                                f"{len(head)}")
        magic, lrec = _HEAD.unpack(head)
        if magic != MAGIC:
            raise RecordIOError(f"{where}: {what}at byte offset {offset}: bad magic number "
                                f"0x{magic:08X} at byte {pos}, expected 0x{MAGIC:08X}; the file "
                                f"is not RecordIO, is damaged, or the offset is wrong")
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        if (first and cflag not in (0, 1)) or (not first and cflag not in (2, 3)):
            raise RecordIOError(f"{where}: {what}at byte offset {offset}: unexpected part flag "
                                f"{cflag} at byte {pos} (a multi-part record is broken)")
        data = _read(buf, pos + 8, length)
        if len(data) < length:
            raise RecordIOError(f"{where}: {what}at byte offset {offset} is truncated: it "
                                f"declares {length} payload bytes at byte {pos + 8}, the file "
                                f"has only {len(data)} more")
        if not first:
            pieces.append(_MAGIC_BYTES)
        pieces.append(data)
        if cflag in (0, 3):
            end = pos + 8 + _pad4(length)
            break
        pos += 8 + length
        first = False
    payload = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return payload, end


def _read(buf, pos: int, n: int) -> bytes:
    if hasattr(buf, "seek") and hasattr(buf, "read"):
        buf.seek(pos)
        return buf.read(n)
    return bytes(buf[pos:pos + n])


def scan_offsets(buf, where: str) -> list:
    """Byte offsets of every record in ``buf`` (bytes or mmap), reading headers only."""
    offsets = []
    pos, size = 0, len(buf)
    unpack_from = _HEAD.unpack_from
    while pos < size:
        start = pos
        while True:
            if pos + 8 > size:
                raise RecordIOError(f"{where}: record {len(offsets)} at byte offset {start} is "
                                    f"truncated: its header at byte {pos} is cut off by the "
                                    f"end of the file ({size} bytes)")
            magic, lrec = unpack_from(buf, pos)
            if magic != MAGIC:
                raise RecordIOError(f"{where}: record {len(offsets)}: bad magic number "
                                    f"0x{magic:08X} at byte offset {pos}, expected "
                                    f"0x{MAGIC:08X}")
            cflag, length = lrec >> 29, lrec & _LEN_MASK
            if pos + 8 + length > size:
                raise RecordIOError(f"{where}: record {len(offsets)} at byte offset {start} is "
                                    f"truncated: it declares {length} payload bytes at byte "
                                    f"{pos + 8}, past the end of the file ({size} bytes)")
            if cflag in (0, 3):
                pos += 8 + _pad4(length)
                break
            pos += 8 + length
        offsets.append(start)
    return offsets


class MXRecordIO:
    """Read or write a RecordIO file sequentially (``mx.recordio.MXRecordIO(uri, flag)``).

    Args:
        uri: path of the .rec file.
        flag: ``'r'`` to read, ``'w'`` to write (truncates).

    Picklable: a pickled reader reopens the file (at the first record) when loaded, so it can be
    sent to worker processes. Use from a forked child raises -- call ``reset()`` there first.

    Example::

        >>> w = mx.recordio.MXRecordIO('tmp.rec', 'w')
        >>> for i in range(3):
        ...     w.write(b'record_%d' % i)
        >>> w.close()
        >>> r = mx.recordio.MXRecordIO('tmp.rec', 'r')
        >>> r.read()
        b'record_0'
    """

    def __init__(self, uri: str, flag: str):
        self.uri = os.fspath(uri)
        self.flag = flag
        self.handle = None
        self.pid = None
        self.is_open = False
        self.writable = flag == "w"
        self.open()

    def open(self) -> None:
        """Open the file (for writing this truncates it)."""
        if self.flag == "w":
            self.handle = open(self.uri, "wb")
            self.writable = True
        elif self.flag == "r":
            self.handle = open(self.uri, "rb")
            self.writable = False
        else:
            raise ValueError(f"Invalid flag {self.flag!r}: use 'r' to read or 'w' to write")
        self._pos = 0
        self._count = 0
        self.pid = current_process().pid
        self.is_open = True

    def close(self) -> None:
        """Close the file (a no-op when closed)."""
        if not self.is_open:
            return
        self.handle.close()
        self.handle = None
        self.is_open = False
        self.pid = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible left to do
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        d = dict(self.__dict__)
        d["handle"] = None
        d["pid"] = None
        d["is_open"] = self.is_open
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        was_open = d["is_open"]
        self.is_open = False
        if was_open:
            self.open()

    def _check_pid(self, allow_reset: bool = False) -> None:
        if self.pid != current_process().pid:
            if allow_reset:
                self.reset()
            else:
                raise RuntimeError(f"{self.uri} was opened in another process; call reset() "
                                   f"in this process before using it")

    def _check_open(self, need_write: bool) -> None:
        if not self.is_open:
            raise HybridNetError(f"{self.uri} is closed; call open() first")
        if need_write and not self.writable:
            raise HybridNetError(f"{self.uri} is open for reading; open it with flag 'w' to write")
        if not need_write and self.writable:
            raise HybridNetError(f"{self.uri} is open for writing; open it with flag 'r' to read")

    def reset(self) -> None:
        """Go back to the first record (a writer truncates the file)."""
        self.close()
        self.open()

    def write(self, buf) -> None:
        """Append one record holding the bytes ``buf``."""
        self._check_open(True)
        self._check_pid(allow_reset=False)
        if isinstance(buf, str):
            raise TypeError("MXRecordIO.write expects bytes; encode text first, e.g. "
                            "buf.encode('utf-8')")
        data = encode_record(buf)
        self.handle.write(data)
        self._pos += len(data)
        self._count += 1

    def read(self):
        """The next record's bytes, or None after the last one."""
        self._check_open(False)
        self._check_pid(allow_reset=False)
        payload, end = read_record_at(self.handle, self._pos, self.uri, None)
        if payload is None:
            return None
        self._pos = end
        self._count += 1
        return payload

    def tell(self) -> int:
        """Byte offset where the next record will be written (or read)."""
        if not self.is_open:
            raise HybridNetError(f"{self.uri} is closed; call open() first")
        return self._pos


class MXIndexedRecordIO(MXRecordIO):
    """A RecordIO file plus its ``.idx`` index, for random access by key.

    ``mx.recordio.MXIndexedRecordIO(idx_path, uri, flag, key_type=int)``; ``keys`` lists the keys
    in file order, ``read_idx(key)`` reads one record, ``write_idx(key, buf)`` appends one.

    Example::

        >>> w = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'w')
        >>> for i in range(5):
        ...     w.write_idx(i, b'record_%d' % i)
        >>> w.close()
        >>> r = mx.recordio.MXIndexedRecordIO('tmp.idx', 'tmp.rec', 'r')
        >>> r.read_idx(3)
        b'record_3'
    """

    def __init__(self, idx_path: str, uri: str, flag: str, key_type=int):
        self.idx_path = os.fspath(idx_path)
        self.idx = {}
        self.keys = []
        self.key_type = key_type
        self.fidx = None
        super().__init__(uri, flag)

    def open(self) -> None:
        super().open()
        self.idx = {}
        self.keys = []
        self.fidx = open(self.idx_path, self.flag)
        if not self.writable:
            self._load_index()

    def _load_index(self) -> None:
        size = os.fstat(self.handle.fileno()).st_size
        for lineno, line in enumerate(self.fidx, 1):
            fields = line.strip().split("\t")
            if fields == [""]:
                continue
            if len(fields) < 2:
                raise RecordIOError(f"{self.idx_path}, line {lineno}: expected 'key<TAB>offset', "
                                    f"got {line.strip()!r}")
            try:
                key, offset = self.key_type(fields[0]), int(fields[1])
            except ValueError as err:
                raise RecordIOError(f"{self.idx_path}, line {lineno}: cannot parse "
                                    f"{line.strip()!r}: {err}") from None
            if offset < 0 or offset + 8 > size:
                raise RecordIOError(f"{self.idx_path}, line {lineno}: key {key!r} points to byte "
                                    f"offset {offset}, past the end of {self.uri} ({size} "
                                    f"bytes); the index does not belong to this file")
            self.idx[key] = offset
            self.keys.append(key)

    def close(self) -> None:
        if not self.is_open:
            return
        super().close()
        self.fidx.close()
        self.fidx = None

    def __getstate__(self):
        d = super().__getstate__()
        d["fidx"] = None
        return d

    def seek(self, idx) -> None:
        """Move the read position to the record with key ``idx``."""
        self._check_open(False)
        self._check_pid(allow_reset=True)
        try:
            self._pos = self.idx[idx]
        except KeyError:
            raise KeyError(f"key {idx!r} is not in {self.idx_path} ({len(self.keys)} keys)") \
                from None

    def read_idx(self, idx):
        """The record with key ``idx``."""
        self.seek(idx)
        payload, end = read_record_at(self.handle, self._pos, self.uri, f"with key {idx!r}")
        self._pos = end
        return payload

    def write_idx(self, idx, buf) -> None:
        """Append a record under key ``idx`` (and its line to the index)."""
        key = self.key_type(idx)
        pos = self.tell()
        self.write(buf)
        self.fidx.write(f"{key}\t{pos}\n")
        self.idx[key] = pos
        self.keys.append(key)


IRHeader = namedtuple("HEADER", ["flag", "label", "id", "id2"])
IRHeader.__doc__ = """Header of an image record: flag, label (float or array of floats), id, id2."""
_IR_FORMAT = "IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)


def pack(header, s: bytes) -> bytes:
    """Prefix ``s`` with an image-record header (``mx.recordio.pack(header, s)``).

    ``header.label`` may be a number or an array; an array is stored after the header and
    ``flag`` becomes its length.

    Example::

        >>> packed = mx.recordio.pack(mx.recordio.IRHeader(0, 3.0, 7, 0), b'payload')
        >>> mx.recordio.unpack(packed)
        (HEADER(flag=0, label=3.0, id=7, id2=0), b'payload')
    """
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        header = header._replace(flag=0)
        extra = b""
    else:
        label = np.asarray(header.label, dtype=np.float32)
        header = header._replace(flag=label.size, label=0)
        extra = label.tobytes()
    return struct.pack(_IR_FORMAT, *header) + extra + bytes(s)


def unpack(s: bytes):
    """Split a packed image record into ``(IRHeader, payload bytes)``."""
    if len(s) < _IR_SIZE:
        raise RecordIOError(f"an image record needs a {_IR_SIZE}-byte header, this one has only "
                            f"{len(s)} bytes")
    header = IRHeader(*struct.unpack(_IR_FORMAT, s[:_IR_SIZE]))
    s = s[_IR_SIZE:]
    if header.flag > 0:
        if len(s) < header.flag * 4:
            raise RecordIOError(f"the image record header announces {header.flag} labels "
                                f"({header.flag * 4} bytes), only {len(s)} bytes follow")
        header = header._replace(label=np.frombuffer(s, np.float32, header.flag))
        s = s[header.flag * 4:]
    return header, s


def unpack_img(s: bytes, iscolor: int = -1):
    """Split a packed image record into ``(IRHeader, image)``; the image is a numpy array in
    OpenCV's layout (BGR channel order; (H, W) for grayscale), as MXNet's ``unpack_img`` returns.

    ``iscolor``: 1 colour, 0 grayscale, -1 as stored.
    """
    from .image.codec import decode  # noqa: PLC0415 (image codecs are optional)
    header, payload = unpack(s)
    img = decode(payload, flag=iscolor, to_rgb=False, where=f"with id {header.id}")
    if img.shape[2] == 1:
        img = img[:, :, 0]
    return header, img


def pack_img(header, img, quality: int = 95, img_fmt: str = ".jpg") -> bytes:
    """Encode ``img`` (numpy, OpenCV's BGR order as in MXNet) and pack it with ``header``.

    ``quality`` is the JPEG quality, or the PNG compression level for ``img_fmt='.png'``.
    """
    from .image.codec import encode  # noqa: PLC0415 (image codecs are optional)
    return pack(header, encode(np.asarray(img), img_fmt, quality, to_rgb=False))
