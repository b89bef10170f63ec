"""MXNet's 2-bit gradient compression with error feedback, bit for bit.

Worker side, per element: ``residual += grad``; if ``residual >= t`` emit code ``11`` and
``residual -= t``; elif ``residual <= -t`` emit ``10`` and ``residual += t``; else ``00``.
Sixteen codes pack into one 32-bit word: byte ``b`` of the packed buffer holds elements
``4b .. 4b+3``, element ``4b`` in the two highest bits (MXNet's ``quantize_2bit`` masks
0xc0/0x30/0x0c/0x03 for +t and 0x80/0x20/0x08/0x02 for -t). A push of ``n`` elements is
``ceil(n / 16) * 4`` bytes. The server decodes ``11`` to ``+t``, ``10`` to ``-t``, else 0.
"""
from __future__ import annotations

import numpy as np

from ...base import HybridNetError

__all__ = ["TwoBitCompression", "parse_compression", "packed_size"]

_SHIFTS = np.array([6, 4, 2, 0], dtype=np.uint8)


def packed_size(n: int) -> int:
    """Number of float32 words holding the codes of ``n`` elements."""
    return (n + 15) // 16


def parse_compression(params) -> dict:
    """Check ``set_gradient_compression`` arguments; return ``{'type': '2bit', 'threshold': t}``."""
    if not isinstance(params, dict):
        raise TypeError(f"compression_params must be a dict like {{'type': '2bit', "
                        f"'threshold': 0.5}}, got {type(params).__name__}")
    kind = str(params.get("type", "")).lower()
    if kind == "none":
        return {"type": "none"}
    if kind != "2bit":
        raise HybridNetError(f"unknown gradient compression type {params.get('type')!r}; "
                             f"MXNet 1.x (and hybridnet) support '2bit'")
    unknown = set(params) - {"type", "threshold"}
    if unknown:
        raise HybridNetError(f"unknown gradient compression parameter(s) {sorted(unknown)}; "
                             f"'2bit' takes 'threshold'")
    threshold = float(params.get("threshold", 0.5))
    if not threshold > 0:
        raise HybridNetError(f"gradient compression threshold must be > 0, got {threshold}")
    return {"type": "2bit", "threshold": threshold}


class TwoBitCompression:
    """The codec for one threshold ``t`` (float32, as MXNet computes)."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self._pos = np.float32(threshold)
        self._neg = np.float32(-threshold)

    def encode(self, grad: np.ndarray, residual: np.ndarray) -> np.ndarray:
        """Add ``grad`` (float32, flat) into ``residual`` in place; return the packed codes
        (float32 words, ``packed_size(n)`` of them)."""
        n = grad.size
        np.add(residual, grad, out=residual)
        pos = residual >= self._pos
        neg = residual <= self._neg
        residual[pos] -= self._pos
        residual[neg] -= self._neg
        codes = np.zeros(packed_size(n) * 16, dtype=np.uint8)
        codes[:n] = pos * np.uint8(3) + neg * np.uint8(2)
        packed = np.bitwise_or.reduce(codes.reshape(-1, 4) << _SHIFTS, axis=1).astype(np.uint8)
        return packed.view(np.float32)

    def decode(self, packed: np.ndarray, n: int) -> np.ndarray:
        """The float32 values (+t, -t or 0) of ``n`` elements from packed codes."""
        if packed.dtype != np.float32 or packed.size != packed_size(n):
            raise HybridNetError(f"2-bit codes of {n} elements must be {packed_size(n)} float32 "
                                 f"words, got {packed.size} {packed.dtype}")
        fields = (packed.view(np.uint8)[:, None] >> _SHIFTS) & np.uint8(3)
        fields = fields.reshape(-1)[:n]
        out = np.zeros(n, dtype=np.float32)
        out[fields == 3] = self._pos
        out[fields == 2] = self._neg
        return out
