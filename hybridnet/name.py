"""``mx.name``: automatic names for symbols (``fullyconnected0``, ``_plus1``) and name prefixes.

A name manager is active per thread; ``with mx.name.Prefix('net_'):`` prefixes every name made
inside, explicit ones included (as in MXNet: ``name='fc1'`` becomes ``net_fc1``)::

    >>> with mx.name.Prefix('net_'):
    ...     fc = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=10)
    >>> fc.name
    'net_fullyconnected0'
"""
from __future__ import annotations

import threading

__all__ = ["NameManager", "Prefix", "current"]

_local = threading.local()


class _ClassProperty:
    """A read/write property on the class itself (``NameManager.current``)."""

    def __init__(self, getter, setter):
        self._getter, self._setter = getter, setter

    def __get__(self, obj, owner):
        return self._getter()

    def __set__(self, obj, value):      # only reached through an instance; kept for symmetry
        self._setter(value)


class NameManager:
    """Gives each unnamed symbol ``<hint><counter>``; the counter is kept per hint.

    Use it as a context manager to start a fresh numbering (``with mx.name.NameManager():``);
    subclass it and override ``get`` to change the naming rule.
    """

    def __init__(self):
        self._counter: dict[str, int] = {}
        self._old_manager: NameManager | None = None

    def get(self, name: str | None, hint: str) -> str:
        """``name`` when given, else ``hint`` followed by how many times the hint was used."""
        if name:
            return name
        n = self._counter.get(hint, 0)
        self._counter[hint] = n + 1
        return f"{hint}{n}"

    def __enter__(self) -> "NameManager":
        self._old_manager = current()
        _local.manager = self
        return self

    def __exit__(self, *exc) -> None:
        _local.manager = self._old_manager
        self._old_manager = None

    current = _ClassProperty(lambda: current(), lambda v: setattr(_local, "manager", v))


class Prefix(NameManager):
    """A name manager that puts ``prefix`` in front of every name, given or generated.

    Example::

        >>> with mx.name.Prefix('mynet_'):
        ...     net = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=10, name='fc1')
        >>> net.list_arguments()
        ['data', 'mynet_fc1_weight', 'mynet_fc1_bias']
    """

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix

    def get(self, name: str | None, hint: str) -> str:
        return self._prefix + super().get(name, hint)


def current() -> NameManager:
    """This thread's active name manager (a default one is created per thread)."""
    manager = getattr(_local, "manager", None)
    if manager is None:
        manager = _local.manager = NameManager()
    return manager
