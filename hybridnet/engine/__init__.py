"""``mx.engine``: the dependency engine that runs every operator of both front ends.

Public API (MXNet 1.x plus a Python-level push)::

    mx.engine.push(fn, read=[a], write=[b])   # fn() runs once earlier work on a and b allows
    mx.engine.push_async(fn, write=[b])       # fn(on_complete); done when on_complete() is called
    mx.nd.waitall()                           # block for everything (raises stored errors)
    with mx.engine.bulk(16): ...              # merge consecutive small pushes into one task
    old = mx.engine.set_bulk_size(16)

Upper layers use the internal API: ``Var``, ``get_engine().push(fn, reads, writes, ...)`` and
``get_engine().wait_for_var(var)``.
"""
from __future__ import annotations

from ..context import Context
from .engine import (COPY, IO, NORMAL, Engine, NaiveEngine, ThreadedEngine, get_engine,
                     set_engine)
from .var import Failure, Task, Var

__all__ = ["push", "push_async", "bulk", "set_bulk_size", "waitall", "wait_for_var", "Var", "Engine",
           "ThreadedEngine", "NaiveEngine", "get_engine", "set_engine", "NORMAL", "COPY", "IO",
           "Failure", "Task"]

_PROPS = {"normal": NORMAL, "copy": COPY, "io": IO}


def _var_of(obj) -> Var:
    if isinstance(obj, Var):
        return obj
    var = getattr(obj, "_var", None)
    if var is None:
        raise TypeError(f"engine dependencies must be NDArrays or engine Vars, got {type(obj).__name__}")
    return var


def _engine_args(fn, read, write, ctx, prop, priority) -> tuple:
    """The checked arguments of ``Engine.push``/``push_async`` for the public functions."""
    if prop not in _PROPS:
        raise ValueError(f"prop must be one of {', '.join(_PROPS)}, got {prop!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    from ..context import current_context
    return (fn, [_var_of(a) for a in read], [_var_of(a) for a in write],
            ctx or current_context(), _PROPS[prop], int(priority), getattr(fn, "__name__", None))


def push(fn, read=(), write=(), ctx: Context | None = None, prop: str = "normal",
         priority: int = 0) -> None:
    """Run ``fn()`` asynchronously once earlier work on ``read`` and ``write`` allows.

    Args:
        fn: a callable with no arguments. An exception it raises is stored on the ``write``
            arrays and raised by the next wait on them (``wait_to_read``, ``asnumpy``, ``waitall``).
        read: NDArrays (or Vars) ``fn`` only reads; concurrent readers run together.
        write: NDArrays (or Vars) ``fn`` writes; writes run in push order.
        ctx: device whose workers run ``fn`` (default: the current context).
        prop: ``'normal'`` (compute), ``'copy'`` or ``'io'`` (the shared copy/I-O pool).
        priority: higher runs first among ready work of the same pool.

    Example::

        >>> a = mx.nd.zeros((3,))
        >>> mx.engine.push(lambda: a._data.fill(7), write=[a])
        >>> a.asnumpy()
        array([7., 7., 7.], dtype=float32)
    """
    get_engine().push(*_engine_args(fn, read, write, ctx, prop, priority))


def push_async(fn, read=(), write=(), ctx: Context | None = None, prop: str = "normal",
               priority: int = 0) -> None:
    """Run ``fn(on_complete)`` once earlier work on ``read`` and ``write`` allows; the work is
    done when ``on_complete()`` is called, from any thread (MXNet's ``Engine::PushAsync``).

    Args:
        fn: a callable taking the callback. Start the work (e.g. a request whose answer arrives
            on another thread) and return; call ``on_complete()`` when the ``write`` arrays
            hold their values, or ``on_complete(exc)`` to fail them with ``exc`` (raised by the
            next wait on them, like an exception raised by ``fn`` itself).
        read, write, ctx, prop, priority: as for ``push``.

    Example::

        >>> a = mx.nd.zeros((3,))
        >>> def fill(on_complete):
        ...     threading.Timer(0.01, lambda: (a._data.fill(7), on_complete())).start()
        >>> mx.engine.push_async(fill, write=[a])
        >>> a.asnumpy()
        array([7., 7., 7.], dtype=float32)
    """
    get_engine().push_async(*_engine_args(fn, read, write, ctx, prop, priority))


def wait_for_var(obj) -> None:
    """Block until pending writes to ``obj`` (NDArray or Var) are done; raise its failure."""
    get_engine().wait_for_var(_var_of(obj))


def waitall() -> None:
    """Block until all pushed work has run; raise the first error not yet raised by a wait."""
    get_engine().wait_all()


def set_bulk_size(size: int) -> int:
    """Set how many consecutive pushes of this thread run as one engine task; return the old size."""
    return get_engine().set_bulk_size(size)


def bulk(size: int):
    """Context manager: ``with mx.engine.bulk(16):`` merges up to 16 consecutive pushes per task."""
    return get_engine().bulk(size)
