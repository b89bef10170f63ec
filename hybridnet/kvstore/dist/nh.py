"""NH, the universal hash that lets 'full' authentication keep up with big arrays.

SHA-256 reads ~1.7 GB/s on one core, slower than ZeroMQ moves bytes over loopback, and a
push+pull authenticates every array four times. For large data frames the wire MAC is therefore
HMAC-SHA256(secret, header + NH_K(data)): NH (the hash under UMAC, RFC 4418) compresses the
data 64-fold at ~10 GB/s, and HMAC -- a pseudorandom function -- hides its output, so nothing
about the key ``K`` leaks and a forgery must find an NH collision blind ("hash, then PRF", as
in Wegman-Carter MACs).

NH on one block of 256 little-endian 32-bit words ``m`` with key words ``k``:

    NH_k(m) = sum_{i < 128} ((m[i] + k[i]) mod 2^32) * ((m[i+128] + k[i+128]) mod 2^32) mod 2^64

Two blocks collide with probability at most 2^-32 over the key; each block is hashed twice,
with the key and with the key shifted by 4 words (UMAC's Toeplitz construction), for 2^-64.
A frame's digest is its byte length followed by both hashes of every 1 KiB block, the last
block zero-padded (the length tells the padding from data). ``K`` (1,040 bytes) is derived from
the job secret once per process with HMAC-SHA256 in counter mode.
"""
from __future__ import annotations

import hashlib
import hmac
import struct

import numba
import numpy as np

__all__ = ["BLOCK_BYTES", "derive_key", "nh_digest", "nh_hash_into", "frame_digest", "warm_up"]

BLOCK_WORDS = 256
BLOCK_BYTES = 4 * BLOCK_WORDS
_HALF = BLOCK_WORDS // 2
_SHIFT = 4                     # key offset of the second hash of each block
_LEN = struct.Struct("<Q")


def derive_key(secret: bytes) -> np.ndarray:
    """The NH key words for ``secret``: HMAC-SHA256(secret, label + counter) blocks."""
    need = 4 * (BLOCK_WORDS + _SHIFT)
    stream = b"".join(hmac.new(secret, b"hybridnet NH key" + _LEN.pack(i), hashlib.sha256)
                      .digest() for i in range(-(-need // 32)))
    return np.frombuffer(stream[:need], "<u4").copy()


@numba.njit(nogil=True, cache=True)
def _nh_blocks(words, key, out):
    """out[2b], out[2b+1] <- NH of block b of ``words`` under ``key`` and ``key`` shifted."""
    for b in range(words.size // BLOCK_WORDS):
        base = b * BLOCK_WORDS
        acc0 = np.uint64(0)
        acc1 = np.uint64(0)
        for i in range(_HALF):
            lo = words[base + i]
            hi = words[base + _HALF + i]
            acc0 += (np.uint64(np.uint32(lo + key[i]))
                     * np.uint64(np.uint32(hi + key[_HALF + i])))
            acc1 += (np.uint64(np.uint32(lo + key[_SHIFT + i]))
                     * np.uint64(np.uint32(hi + key[_SHIFT + _HALF + i])))
        out[2 * b] = acc0
        out[2 * b + 1] = acc1


def nh_hash_into(data, key: np.ndarray, out: np.ndarray) -> None:
    """The two hashes of every 1 KiB block of ``data`` (the last block zero-padded) into
    ``out`` (2 * ceil(len / 1 KiB) uint64s). A frame hashed in pieces that start at multiples
    of 1 KiB, each into its part of one ``out``, gets the same words as hashed at once."""
    data = np.frombuffer(data, np.uint8)
    full = data.size - data.size % BLOCK_BYTES
    if full:
        _nh_blocks(data[:full].view("<u4"), key, out)
    if full < data.size:
        tail = np.zeros(BLOCK_WORDS, "<u4")
        tail.view(np.uint8)[:data.size - full] = data[full:]
        _nh_blocks(tail, key, out[2 * (full // BLOCK_BYTES):])


def frame_digest(size: int, out: np.ndarray) -> bytes:
    """One frame's part of a digest: its byte length, then its block hashes ``out``."""
    return _LEN.pack(size) + out.astype("<u8", copy=False).tobytes()


def nh_digest(frames, key: np.ndarray) -> bytes:
    """The NH digest of a message's data frames (objects with the buffer protocol)."""
    parts = []
    for frame in frames:
        size = memoryview(frame).nbytes
        out = np.empty(2 * (-(-size // BLOCK_BYTES)), np.uint64)
        nh_hash_into(frame, key, out)
        parts.append(frame_digest(size, out))
    return b"".join(parts)


def warm_up(key: np.ndarray) -> None:
    """Load (or compile) the kernel for writable and read-only data now, at node start-up, so
    that the first big message does not pay for it (and its memory is not counted as the
    message's)."""
    block = np.zeros(BLOCK_BYTES, np.uint8)
    nh_digest([block, bytes(block)], key)
