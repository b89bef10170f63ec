"""``mx.model``: checkpoint files and the KVStore plumbing Module's training loop shares.

Checkpoints are MXNet 1.x's files, byte-compatible both ways:

* ``prefix-symbol.json`` -- the network (``Symbol.save``);
* ``prefix-%04d.params`` -- ``nd.save`` of ``{'arg:<name>': array, ..., 'aux:<name>': ...}``
  (arrays on the CPU), e.g. ``mnist-0003.params``.

Both are written to a temporary file in the target directory and renamed over the target, so
an interrupted save never leaves a half-written checkpoint.

    >>> mx.model.save_checkpoint('mnist', 3, net, arg_params, aux_params)
    >>> net, arg_params, aux_params = mx.model.load_checkpoint('mnist', 3)

The KVStore helpers decide, as MXNet does, whether a store is used at all and where the
optimizer runs (``_create_kvstore``), put the initial weights in it (``_initialize_kvstore``)
and run one update step (``_update_params_on_kvstore`` / ``_update_params``).
"""
from __future__ import annotations

import logging
import os
from collections import namedtuple

import numpy as np

from . import ndarray as nd
from . import symbol as sym
from .base import HybridNetError
from .context import cpu
from .kvstore import KVStore
from .kvstore import create as _create_store

__all__ = ["BatchEndParam", "save_checkpoint", "load_checkpoint", "load_params", "FeedForward"]

BatchEndParam = namedtuple("BatchEndParam", ["epoch", "nbatch", "eval_metric", "locals"])
BatchEndParam.__doc__ = ("What batch-end and eval-end callbacks receive: ``BatchEndParam(epoch, "
                         "nbatch, eval_metric, locals)``.")

# MXNet's threshold: with a 'local' store, a parameter bigger than this updates on the workers
_BIG_PARAM = 1024 * 1024 * 16


def _params_file(prefix: str, epoch: int) -> str:
    return f"{prefix}-{int(epoch):04d}.params"


def save_checkpoint(prefix: str, epoch: int, symbol, arg_params: dict, aux_params: dict,
                    remove_amp_cast: bool = True) -> None:
    """``save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True)``:
    write ``prefix-symbol.json`` and ``prefix-%04d.params`` (``arg:``/``aux:`` keys).

    Example::

        >>> mx.model.save_checkpoint('mnist', 1, net, *mod.get_params())
    """
    if symbol is not None:
        symbol.save(f"{prefix}-symbol.json", remove_amp_cast=remove_amp_cast)
    param_name = _params_file(prefix, epoch)
    save_params_file(param_name, arg_params, aux_params)
    logging.info('Saved checkpoint to "%s"', param_name)


def save_params_file(fname: str, arg_params: dict, aux_params: dict | None) -> None:
    """``nd.save(fname, {'arg:<name>': ..., 'aux:<name>': ...})`` with the arrays on the CPU."""
    save_dict = {f"arg:{k}": v.as_in_context(cpu()) for k, v in arg_params.items()}
    save_dict.update({f"aux:{k}": v.as_in_context(cpu()) for k, v in (aux_params or {}).items()})
    nd.save(fname, save_dict)


def split_params(save_dict: dict, source: str) -> tuple[dict, dict]:
    """``(arg_params, aux_params)`` from a loaded ``.params`` dict with ``arg:``/``aux:`` keys."""
    if not isinstance(save_dict, dict):
        raise HybridNetError(f"{source} holds a list of arrays without names; a checkpoint "
                             f"needs 'arg:<name>' / 'aux:<name>' keys")
    arg_params, aux_params = {}, {}
    for key, value in save_dict.items():
        kind, sep, name = key.partition(":")
        if not sep or kind not in ("arg", "aux") or not name:
            raise HybridNetError(f"Invalid param file {source}: key {key!r} is neither "
                                 f"'arg:<name>' nor 'aux:<name>'")
        (arg_params if kind == "arg" else aux_params)[name] = value
    return arg_params, aux_params


def load_params(prefix: str, epoch: int) -> tuple[dict, dict]:
    """``load_params(prefix, epoch)`` -> ``(arg_params, aux_params)`` from
    ``prefix-%04d.params``."""
    fname = _params_file(prefix, epoch)
    if not os.path.exists(fname):
        raise FileNotFoundError(f"load_params: checkpoint file {fname!r} does not exist")
    return split_params(nd.load(fname), fname)


def load_checkpoint(prefix: str, epoch: int):
    """``load_checkpoint(prefix, epoch)`` -> ``(symbol, arg_params, aux_params)``.

    Example::

        >>> net, arg_params, aux_params = mx.model.load_checkpoint('mnist', 3)
    """
    fname = f"{prefix}-symbol.json"
    if not os.path.exists(fname):
        raise FileNotFoundError(f"load_checkpoint: symbol file {fname!r} does not exist")
    symbol = sym.load(fname)
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params


# ---- KVStore plumbing (MXNet's model._create_kvstore & co) ------------------------------------
def _create_kvstore(kvstore, num_device: int, arg_params: dict):
    """``(kvstore or None, update_on_kvstore)`` as MXNet decides them.

    No store for None, or for a non-distributed name with one device; a 'local' store with a
    parameter over 16M elements updates on the workers; ``MXNET_UPDATE_ON_KVSTORE=0`` (read
    through ``config``) always updates on the workers.
    """
    from . import config
    update_on_kvstore = bool(config.get("HYBRIDNET_UPDATE_ON_KVSTORE"))
    if kvstore is None:
        kv = None
    elif isinstance(kvstore, KVStore):
        kv = kvstore
    elif isinstance(kvstore, str):
        if num_device == 1 and "dist" not in kvstore:
            kv = None
        else:
            kv = _create_store(kvstore)
            if kvstore == "local":
                max_size = max((int(np.prod(p.shape)) for p in arg_params.values()), default=0)
                if max_size > _BIG_PARAM:
                    update_on_kvstore = False
    else:
        raise TypeError(f"kvstore must be a KVStore, a str or None, got "
                        f"{type(kvstore).__name__}")
    if kv is None:
        update_on_kvstore = False
    else:
        update_on_kvstore &= kv.is_capable(KVStore.OPTIMIZER)
    return kv, update_on_kvstore


def _initialize_kvstore(kvstore, param_arrays: list, arg_params: dict, param_names: list,
                        update_on_kvstore: bool) -> None:
    """Put every parameter in the store; when the store updates, copy its value (rank 0's in a
    distributed job) back to every device."""
    for name, on_devices in zip(param_names, param_arrays):
        if update_on_kvstore:
            kvstore.broadcast(name, arg_params[name], out=on_devices)
        else:
            kvstore.init(name, arg_params[name])


def _update_params_on_kvstore(param_arrays: list, grad_arrays: list, kvstore,
                              param_names: list) -> None:
    """Push every parameter's per-device gradients; pull the updated weights to every device."""
    for index, (arg_list, grad_list) in enumerate(zip(param_arrays, grad_arrays)):
        if grad_list[0] is None:
            continue
        kvstore.pushpull(param_names[index], grad_list, out=arg_list, priority=-index)


def _update_params(param_arrays: list, grad_arrays: list, updater, num_device: int,
                   kvstore=None, param_names=None) -> None:
    """Sum the gradients through ``kvstore`` (if any), then update each device's copy with
    ``updater`` (index ``i * num_device + k`` for parameter i on device k, as MXNet numbers
    them)."""
    updates: list = [[] for _ in range(num_device)]
    for index, (arg_list, grad_list) in enumerate(zip(param_arrays, grad_arrays)):
        if grad_list[0] is None:
            continue
        if kvstore:
            kvstore.pushpull(param_names[index], grad_list, priority=-index)
        for k, (w, g) in enumerate(zip(arg_list, grad_list)):
            updates[k].append((index * num_device + k, g, w))
    for dev_updates in updates:
        if dev_updates:
            indices, grads, weights = zip(*dev_updates)
            updater(list(indices), list(grads), list(weights))

# FeedForward is built on mx.mod.Module, which needs the helpers above: import it last
from .feedforward import FeedForward  # noqa: E402
