"""``mx.mod`` / ``mx.module``: train and run Symbols with the Module API.

``BaseModule`` writes down the state machine (bind -> init_params -> init_optimizer) and builds
``fit``, ``score``, ``predict`` and ``iter_predict`` from the intermediate calls; ``Module``
runs one Symbol on one or several devices (``DataParallelExecutorGroup``);
``BucketingModule`` one Symbol per input length sharing the parameters; ``SequentialModule``
chains modules; ``PythonModule`` / ``PythonLossModule`` are modules written in Python.

    >>> mod = mx.mod.Module(net, context=mx.cpu())
    >>> mod.fit(train_iter, eval_data=val_iter, num_epoch=10,
    ...         optimizer_params={'learning_rate': 0.1})
    >>> mod.score(val_iter, 'acc')
"""
from __future__ import annotations

from .base_module import BaseModule, ModuleStateError
from .executor_group import DataParallelExecutorGroup
from .module import Module
from .bucketing_module import BucketingModule
from .sequential_module import SequentialModule
from .python_module import PythonLossModule, PythonModule

__all__ = ["BaseModule", "ModuleStateError", "Module", "DataParallelExecutorGroup",
           "BucketingModule", "SequentialModule", "PythonModule", "PythonLossModule"]
