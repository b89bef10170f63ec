"""``mx.optimizer.contrib``: where MXNet 1.x keeps ``GroupAdaGrad`` (defined in ``adagrad.py``)."""
from __future__ import annotations

from .adagrad import GroupAdaGrad

__all__ = ["GroupAdaGrad"]
