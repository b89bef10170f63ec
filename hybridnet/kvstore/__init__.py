"""``mx.kv`` / ``mx.kvstore``: key-value stores for data-parallel training.

``mx.kv.create(name='local')`` parses the name as MXNet does: a store registered with
``KVStoreBase.register`` under that name wins; a name containing ``'dist'`` is a distributed
store (``dist_sync``, ``dist_async``, ``dist_device_sync``, ``dist``, ...; see ``dist/``);
anything else is a single-process store of that type -- ``'device'`` (or any name containing
'device' or 'nccl') reduces on the devices, ``'local'`` on the CPU.

    >>> kv = mx.kv.create('local')
    >>> kv.init(3, mx.nd.ones((2, 3)))
    >>> kv.push(3, [mx.nd.ones((2, 3)) * 2, mx.nd.ones((2, 3)) * 3])   # summed: 5
    >>> out = mx.nd.zeros((2, 3)); kv.pull(3, out=out)                  # out == 5
"""
from __future__ import annotations

from ..base import HybridNetError
from .base import KVStore, KVStoreBase
from .local import KVStoreLocal

__all__ = ["create", "KVStore", "KVStoreBase", "KVStoreLocal"]


def create(name: str = "local") -> KVStore:
    """A new KVStore of type ``name`` (see the module docstring for the names)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    name = name.lower()
    if name in KVStore.kv_registry:
        return KVStore.kv_registry[name]()
    if "dist" in name:
        try:
            from .dist import create_dist
        except ImportError as err:
            raise HybridNetError(f"the distributed KVStore {name!r} is not available in this "
                                 f"installation ({err})") from err
        return create_dist(name)
    return KVStoreLocal(name)
