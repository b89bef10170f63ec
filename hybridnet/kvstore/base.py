"""The KVStore base class: MXNet 1.x's method set, and the key/value handling every store shares.

A KVStore holds one array per key. ``push`` sends values (a list of per-device values is summed
first), ``pull`` copies the stored value out, and when an optimizer is set
(``set_optimizer``) a push updates the stored weight with the pushed gradient instead of
overwriting it. Keys are ints or strs -- one kind per store. Subclasses (``local.py``,
``dist/``) implement ``init``, ``push``, ``pull``, ``set_optimizer``,
``set_gradient_compression``, ``_set_updater`` and the ``type``/``rank``/``num_workers``
properties; this class gives them:

* ``_groups(keys, values, what)`` -> ``[(key, [arrays]), ...]`` from every form MXNet accepts
  (one key and an array, one key and a list of per-device arrays, lists of keys with one entry
  per key), with the errors MXNet raises for mixed int/str keys and bad values;
* ``pushpull``, ``broadcast``, the dense ``row_sparse_pull`` fallback, ``_barrier``/``barrier``,
  ``is_capable``, and ``save_optimizer_states``/``load_optimizer_states`` for stores whose
  updater runs in this process (``self._updater``);
* the registry of Python stores (``KVStoreBase.register``) that ``mx.kv.create`` checks first.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..base import HybridNetError
from ..ndarray import NDArray

__all__ = ["KVStore", "KVStoreBase"]


class KVStore:
    """Base class of key-value stores (``KVStoreBase`` in MXNet 1.x)."""

    OPTIMIZER = "optimizer"
    kv_registry: dict = {}

    def __init__(self):
        self._updater = None
        self._key_kind = None           # int or str, fixed by the first key used

    # ---- the registry of Python stores ---------------------------------------------------
    @staticmethod
    def register(klass: type) -> type:
        """Register a KVStore subclass under its lower-cased class name; ``mx.kv.create(name)``
        then builds it (MXNet's plug-in mechanism, used by horovod/byteps stores)."""
        if not isinstance(klass, type):
            raise TypeError(f"register expects a class, got {klass!r}")
        name = klass.__name__.lower()
        old = KVStore.kv_registry.get(name)
        if old is not None and old is not klass:
            warnings.warn(f"New kvstore {klass.__module__}.{klass.__name__} is overriding "
                          f"existing kvstore {old.__module__}.{old.__name__}", stacklevel=2)
        KVStore.kv_registry[name] = klass
        return klass

    # ---- key/value normalisation (shared with the distributed store) ---------------------
    def _groups(self, keys, values, what: str) -> list:
        """``[(key, [arrays])]`` from MXNet's forms: ``(k, arr)``, ``(k, [arr_dev0, ...])``,
        ``([k1, k2], [v1, v2])`` where each v is an array or a per-device list.

        Keys are ints or strs; a store accepts one kind only (the first it sees). A key given
        twice in one call has its arrays concatenated.
        """
        if isinstance(keys, (list, tuple)):
            if not isinstance(values, (list, tuple)) or len(values) != len(keys):
                got = len(values) if isinstance(values, (list, tuple)) else "one array"
                raise HybridNetError(f"kv.{what}: {len(keys)} keys need a list of {len(keys)} "
                                     f"values, got {got}")
            pairs = list(zip(keys, values))
        else:
            pairs = [(keys, values)]
        groups: dict = {}
        for key, value in pairs:
            if isinstance(key, bool) or not isinstance(key, (int, str, np.integer)):
                raise TypeError(f"kv.{what}: keys must be int or str, got "
                                f"{type(key).__name__} {key!r}")
            key = key if isinstance(key, str) else int(key)
            kind = str if isinstance(key, str) else int
            if self._key_kind is None:
                self._key_kind = kind
            elif self._key_kind is not kind:
                raise HybridNetError(
                    f"kv.{what}: key {key!r} is {kind.__name__} but this store uses "
                    f"{self._key_kind.__name__} keys; mixing int and str keys is not allowed")
            vals = list(value) if isinstance(value, (list, tuple)) else [value]
            if not vals or not all(isinstance(v, NDArray) for v in vals):
                kinds = ", ".join(sorted({type(v).__name__ for v in vals})) or "nothing"
                raise TypeError(f"kv.{what}: the values of key {key!r} must be NDArrays (or a "
                                f"list of them, one per device), got {kinds}")
            groups.setdefault(key, []).extend(vals)
        return list(groups.items())

    # ---- the interface ------------------------------------------------------------------------
    def init(self, key, value) -> None:
        """``init(key, value)``: create keys with initial values (once per key).

        Example::

            >>> kv.init(3, mx.nd.ones((2, 3)))
            >>> kv.init(['w', 'b'], [mx.nd.zeros((4, 4)), mx.nd.zeros((4,))])
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement init")

    def push(self, key, value, priority: int = 0) -> None:
        """``push(key, value, priority=0)``: push values; a list for one key (one array per
        device) is summed first. Without an updater the sum replaces the stored value; with
        one, ``updater(key, summed, stored)`` updates it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement push")

    def pull(self, key, out=None, priority: int = 0, ignore_sparse: bool = True) -> None:
        """``pull(key, out, priority=0, ignore_sparse=True)``: copy the stored value into
        ``out`` (an array, or a list of arrays -- e.g. one per device -- all filled)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement pull")

    def pushpull(self, key, value, out=None, priority: int = 0) -> None:
        """``pushpull(key, value, out=None, priority=0)``: push, then pull into ``out`` (into
        ``value`` itself when ``out`` is None)."""
        self.push(key, value, priority)
        self.pull(key, value if out is None else out, priority)

    def broadcast(self, key, value, out, priority: int = 0) -> None:
        """``broadcast(key, value, out, priority=0)``: ``init(key, value)`` then
        ``pull(key, out)``."""
        self.init(key, value)
        self.pull(key, out, priority)

    def row_sparse_pull(self, key, out=None, priority: int = 0, row_ids=None) -> None:
        """``row_sparse_pull(key, out, priority=0, row_ids)``: pull only the rows ``row_ids``.

        hybridnet keeps arrays dense: ``out`` gets the stored rows listed in ``row_ids`` and
        zeros in the others (the dense form of MXNet's row_sparse result). ``row_ids`` is one
        array (for every out) or a list with one per out.
        """
        if out is None or row_ids is None:
            raise HybridNetError("kv.row_sparse_pull needs out= and row_ids=")
        groups = self._groups(key, out, "row_sparse_pull")
        outs = [o for _, arrays in groups for o in arrays]
        ids = list(row_ids) if isinstance(row_ids, (list, tuple)) else [row_ids] * len(outs)
        if len(ids) != len(outs):
            raise HybridNetError(f"kv.row_sparse_pull: {len(ids)} row_ids for {len(outs)} "
                                 f"output arrays")
        self.pull(key, out, priority)
        for o, rows in zip(outs, ids):
            rows = rows.asnumpy() if isinstance(rows, NDArray) else np.asarray(rows)
            keep = np.zeros(o.shape[0], dtype=bool)
            keep[rows.astype(np.int64).ravel()] = True
            if not keep.all():
                mask = np.broadcast_to(keep.reshape((-1,) + (1,) * (o.ndim - 1)), o.shape)
                o[:] = o.asnumpy() * mask

    def set_optimizer(self, optimizer) -> None:
        """``set_optimizer(optimizer)``: pushes update the stored weights with ``optimizer``
        (locally it wraps ``mx.optimizer.get_updater(optimizer)``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement set_optimizer")

    def set_gradient_compression(self, compression_params: dict) -> None:
        """``set_gradient_compression({'type': '2bit', 'threshold': 0.5})``: quantize pushed
        gradients to {-t, 0, +t} with error feedback (device and distributed stores only)."""
        raise HybridNetError(f"Gradient compression is not supported for this type of "
                             f"kvstore ({self.type!r}); use a 'device' or 'dist_*' store")

    def is_capable(self, capability: str) -> bool:
        """``is_capable('optimizer')``: whether the store can run an optimizer itself."""
        if str(capability).lower() == KVStore.OPTIMIZER:
            return True
        raise ValueError(f"Unknown capability: {capability!r}; known: {KVStore.OPTIMIZER!r}")

    def _set_updater(self, updater) -> None:
        """Use ``updater(key, merged_grad, stored_weight)`` on every push (internal API)."""
        self._updater = updater

    def set_updater(self, updater) -> None:
        """``set_updater(updater)``: the public spelling of ``_set_updater`` (MXNet 1.x only
        has the private one); ``updater(key, merged_grad, stored_weight)`` runs on every push."""
        self._set_updater(updater)

    def _check_local_updater(self, what: str):
        if self._updater is None:
            raise HybridNetError(f"Cannot {what} optimizer states: this {self.type!r} store has "
                                 f"no optimizer; call kv.set_optimizer(...) first")
        if not hasattr(self._updater, "get_states"):
            raise HybridNetError(f"Cannot {what} optimizer states: the updater set with "
                                 f"_set_updater is a plain function, not an mx.optimizer.Updater")
        return self._updater

    def save_optimizer_states(self, fname: str, dump_optimizer: bool = False) -> None:
        """Save the updater's states to ``fname`` (MXNet's pickle format; with
        ``dump_optimizer`` the optimizer too). Written to a temporary file, then renamed."""
        data = self._check_local_updater("save").get_states(dump_optimizer)
        tmp = f"{fname}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, fname)

    def load_optimizer_states(self, fname: str) -> None:
        """Load states saved by ``save_optimizer_states`` (or by MXNet) from ``fname``."""
        updater = self._check_local_updater("load")
        with open(fname, "rb") as f:
            updater.set_states(f.read())

    def _barrier(self) -> None:
        """Wait until every worker reaches this point (a no-op in one process)."""

    def barrier(self) -> None:
        """Public name of ``_barrier``."""
        self._barrier()

    def _send_command_to_servers(self, head: int, body: str) -> None:
        """Send a command to the servers (a no-op without servers)."""

    @property
    def type(self) -> str:
        """The store's type name, e.g. 'local', 'device', 'dist_sync'."""
        raise NotImplementedError(f"{type(self).__name__} does not implement type")

    @property
    def rank(self) -> int:
        """This worker's rank (0 for a local store)."""
        return 0

    @property
    def num_workers(self) -> int:
        """Number of workers (1 for a local store)."""
        return 1

    def __repr__(self):
        return f"<{type(self).__name__} type={self.type!r} rank={self.rank}>"


KVStoreBase = KVStore
