"""hybridnet: MXNet 1.x's Python API -- eager NDArrays and declarative Symbols over one operator
registry and one threaded dependency engine -- in pure Python (numpy, numba, pyzmq).

``import hybridnet as mx`` and MXNet 1.x scripts run unchanged.
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import base, config, context, engine  # noqa: E402
from .base import HybridNetError, MXNetError  # noqa: E402
from .context import Context, cpu, cpu_pinned, current_context, gpu, num_gpus  # noqa: E402
from . import ops  # noqa: E402
from . import autograd  # noqa: E402
from . import ndarray  # noqa: E402
from . import ndarray as nd  # noqa: E402
from . import name, attribute  # noqa: E402
from .attribute import AttrScope  # noqa: E402
from . import symbol  # noqa: E402
from . import symbol as sym  # noqa: E402
from . import operator  # noqa: E402
from . import random  # noqa: E402
from . import random as rnd  # noqa: E402
from . import lr_scheduler, optimizer  # noqa: E402
from . import initializer  # noqa: E402
from . import initializer as init  # noqa: E402
from . import metric  # noqa: E402
from . import kvstore  # noqa: E402
from . import kvstore as kv  # noqa: E402
from . import callback  # noqa: E402
from . import monitor  # noqa: E402
from . import monitor as mon  # noqa: E402
from . import profiler  # noqa: E402
from . import visualization  # noqa: E402
from . import visualization as viz  # noqa: E402
from . import io, recordio  # noqa: E402
from . import image  # noqa: E402
from . import image as img  # noqa: E402
from . import model  # noqa: E402
from . import module  # noqa: E402
from . import module as mod  # noqa: E402
from . import test_utils  # noqa: E402  (mx.test_utils is there after import, as in MXNet)

__all__ = ["base", "config", "context", "engine", "ops", "autograd", "ndarray", "nd",
           "Context", "cpu", "gpu", "cpu_pinned", "current_context", "num_gpus",
           "HybridNetError", "MXNetError", "random", "rnd", "lr_scheduler", "optimizer",
           "initializer", "init", "metric", "kvstore", "kv", "callback",
           "monitor", "mon", "profiler", "visualization", "viz", "io", "recordio", "image", "img",
           "test_utils"]

# As in MXNet: a process started with DMLC_ROLE=server|scheduler runs that role here and exits.
from .kvstore.dist.role import run_role_at_import as _run_role_at_import  # noqa: E402
_run_role_at_import()
