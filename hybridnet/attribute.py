"""``mx.attribute`` / ``mx.AttrScope``: string attributes attached to every symbol made in a scope.

Attributes are how a graph carries placement and training hints: ``ctx_group`` (model
parallelism with ``group2ctx``), ``lr_mult``, ``wd_mult``, ``force_mirroring``, ``mirror_stage``.
Those hidden keys are stored as ``__key__`` on the node (``list_attr`` shows both spellings)::

    >>> with mx.AttrScope(ctx_group='dev1'):
    ...     fc = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=10, name='fc')
    >>> fc.attr('ctx_group')
    'dev1'
"""
from __future__ import annotations

import threading

__all__ = ["AttrScope", "HIDDEN_KEYS", "hidden_key", "current"]

HIDDEN_KEYS = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage")

_local = threading.local()


def hidden_key(key: str) -> str:
    """The stored spelling of an attribute key: ``lr_mult`` -> ``__lr_mult__``."""
    return f"__{key}__" if key in HIDDEN_KEYS else key


class AttrScope:
    """``with mx.AttrScope(**attrs):`` attaches ``attrs`` (strings) to every symbol made inside.

    Scopes nest: an inner scope adds to (and overrides) the outer one's attributes; attributes
    given to a symbol explicitly (``attr={...}``) override the scope's.
    """

    def __init__(self, **kwargs: str):
        for key, value in kwargs.items():
            if not isinstance(value, str):
                raise ValueError(f"AttrScope: attribute {key!r} must be a string, got "
                                 f"{type(value).__name__} {value!r}")
        self._attr = dict(kwargs)
        self._old_scope: AttrScope | None = None

    def get(self, attr: dict | None) -> dict:
        """The scope's attributes updated with ``attr`` (a new dict)."""
        out = dict(self._attr)
        if attr:
            out.update(attr)
        return out

    def __enter__(self) -> "AttrScope":
        self._old_scope = current()
        merged = dict(self._old_scope._attr)
        merged.update(self._attr)
        self._attr = merged
        _local.scope = self
        return self

    def __exit__(self, *exc) -> None:
        _local.scope = self._old_scope
        self._old_scope = None


def current() -> AttrScope:
    """This thread's active attribute scope (an empty one by default)."""
    scope = getattr(_local, "scope", None)
    if scope is None:
        scope = _local.scope = AttrScope()
    return scope


class _CurrentDescriptor:
    def __get__(self, obj, owner):
        return current()


AttrScope.current = _CurrentDescriptor()
