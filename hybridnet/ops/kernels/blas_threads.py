"""Moved: ``single_threaded_blas`` lives in hybridnet/engine/blas.py with the rest of the BLAS
thread policy (this name stays until hybridnet/ops/nn/rnn.py imports it from there)."""
from ...engine.blas import single_threaded_blas

__all__ = ["single_threaded_blas"]
