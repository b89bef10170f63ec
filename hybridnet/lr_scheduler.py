"""``mx.lr_scheduler``: learning-rate schedules, called with the number of updates done so far.

An optimizer given ``lr_scheduler=s`` asks ``s(num_update)`` for the rate before every update,
where ``num_update`` is the largest number of updates any weight has had. Every schedule
accepts a warmup phase first (``warmup_steps`` updates starting at ``warmup_begin_lr``, rising
linearly to ``base_lr`` or held constant). As in MXNet, the optimizer overwrites
``base_lr`` with its own ``learning_rate`` when both are given, and ``FactorScheduler`` /
``MultiFactorScheduler`` keep their position, so they expect ``num_update`` not to go back.

Example::

    >>> sched = mx.lr_scheduler.FactorScheduler(step=100, factor=0.5, base_lr=0.1)
    >>> sched(50), sched(150), sched(250)
    (0.1, 0.05, 0.025)
    >>> opt = mx.optimizer.SGD(learning_rate=0.1, lr_scheduler=sched)

``to_spec()`` / ``from_spec(spec)`` turn a schedule into plain JSON data and back (the
distributed KVStore sends it to its servers this way).
"""
from __future__ import annotations

import importlib
import logging
from math import cos, pi

__all__ = ["LRScheduler", "FactorScheduler", "MultiFactorScheduler", "PolyScheduler",
           "CosineScheduler", "from_spec"]


class LRScheduler:
    """Base class: ``LRScheduler(base_lr=0.01, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear')``.

    Subclasses implement ``__call__(num_update) -> lr``, calling ``get_warmup_lr`` while
    ``num_update < warmup_steps``.

    Args:
        base_lr: the rate after warmup (the optimizer's ``learning_rate`` overrides it).
        warmup_steps: number of warmup updates (>= 0).
        warmup_begin_lr: the rate warmup starts from (<= base_lr).
        warmup_mode: 'linear' (equal increments up to base_lr) or 'constant' (warmup_begin_lr).
    """

    def __init__(self, base_lr: float = 0.01, warmup_steps: int = 0, warmup_begin_lr: float = 0,
                 warmup_mode: str = "linear"):
        if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool):
            raise TypeError(f"{type(self).__name__}: warmup_steps must be an int, got "
                            f"{warmup_steps!r}")
        if warmup_steps < 0:
            raise ValueError(f"{type(self).__name__}: warmup_steps must be >= 0, got "
                             f"{warmup_steps}")
        if warmup_begin_lr > base_lr:
            raise ValueError(f"{type(self).__name__}: base_lr ({base_lr}) has to be higher than "
                             f"warmup_begin_lr ({warmup_begin_lr})")
        if warmup_mode not in ("linear", "constant"):
            raise ValueError(f"{type(self).__name__}: warmup_mode must be 'linear' or "
                             f"'constant', got {warmup_mode!r}")
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.warmup_final_lr = base_lr
        self.warmup_begin_lr = warmup_begin_lr
        self.warmup_mode = warmup_mode

    def get_warmup_lr(self, num_update: int) -> float:
        """The rate during warmup (``num_update < warmup_steps``)."""
        if num_update >= self.warmup_steps:
            raise ValueError(f"get_warmup_lr: update {num_update} is past the "
                             f"{self.warmup_steps} warmup steps")
        if self.warmup_mode == "constant":
            return self.warmup_begin_lr
        increase = ((self.warmup_final_lr - self.warmup_begin_lr)
                    * float(num_update) / float(self.warmup_steps))
        return self.warmup_begin_lr + increase

    def __call__(self, num_update: int) -> float:
        """The learning rate after ``num_update`` updates (the most any weight has had)."""
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    # ---- plain-data form (for the distributed KVStore's servers) --------------------------
    def _spec_params(self) -> dict:
        return {"base_lr": self.warmup_final_lr, "warmup_steps": self.warmup_steps,
                "warmup_begin_lr": self.warmup_begin_lr, "warmup_mode": self.warmup_mode}

    def to_spec(self) -> dict:
        """``{'class': 'module:Class', 'params': {...}}``: JSON data rebuilding this schedule."""
        cls = type(self)
        return {"class": f"{cls.__module__}:{cls.__qualname__}", "params": self._spec_params()}


def from_spec(spec: dict | None, allow_import: bool = True) -> LRScheduler | None:
    """Rebuild a schedule from ``LRScheduler.to_spec()`` data (None stays None).

    Classes of this module are found by name; others are imported from their ``module:Class``
    path when ``allow_import`` is true.
    """
    if spec is None:
        return None
    path = spec.get("class", "")
    module_name, _, cls_name = path.partition(":")
    cls = globals().get(cls_name) if module_name == __name__ else None
    if cls is None:
        if not allow_import:
            raise ValueError(f"lr_scheduler class {path!r} is not one of hybridnet's and "
                             f"importing it is not allowed")
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"cannot rebuild lr_scheduler {path!r}: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, LRScheduler)):
        raise ValueError(f"{path!r} is not an LRScheduler class")
    return cls(**spec.get("params", {}))


class FactorScheduler(LRScheduler):
    """``FactorScheduler(step, factor=1, stop_factor_lr=1e-8, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear')``.

    Multiplies the rate by ``factor`` every ``step`` updates (after warmup), never going below
    ``stop_factor_lr``: ``base_lr * factor ** floor((num_update - 1) / step)``.
    """

    def __init__(self, step: int, factor: float = 1, stop_factor_lr: float = 1e-8,
                 base_lr: float = 0.01, warmup_steps: int = 0, warmup_begin_lr: float = 0,
                 warmup_mode: str = "linear"):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if step < 1:
            raise ValueError(f"FactorScheduler: step must be >= 1 update, got {step}")
        if factor > 1.0:
            raise ValueError(f"FactorScheduler: factor must be <= 1 to reduce the rate, got "
                             f"{factor}")
        self.step = step
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.count = 0

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        # MXNet's rule: the rate changes once num_update passes count + step
        while num_update > self.count + self.step:
            self.count += self.step
            self.base_lr *= self.factor
            if self.base_lr < self.stop_factor_lr:
                self.base_lr = self.stop_factor_lr
                logging.info("Update[%d]: now learning rate arrived at %0.5e, will not "
                             "change in the future", num_update, self.base_lr)
            else:
                logging.info("Update[%d]: Change learning rate to %0.5e", num_update,
                             self.base_lr)
        return self.base_lr

    def _spec_params(self) -> dict:
        return dict(super()._spec_params(), step=self.step, factor=self.factor,
                    stop_factor_lr=self.stop_factor_lr)


class MultiFactorScheduler(LRScheduler):
    """``MultiFactorScheduler(step, factor=1, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear')``.

    ``step`` is an increasing list of update counts; the rate is multiplied by ``factor`` each
    time ``num_update`` passes one of them.
    """

    def __init__(self, step: list, factor: float = 1, base_lr: float = 0.01,
                 warmup_steps: int = 0, warmup_begin_lr: float = 0, warmup_mode: str = "linear"):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(step, list) or not step:
            raise ValueError(f"MultiFactorScheduler: step must be a non-empty list of ints, "
                             f"got {step!r}")
        for i, s in enumerate(step):
            if i and s <= step[i - 1]:
                raise ValueError(f"MultiFactorScheduler: step must be increasing, got {step}")
            if s < 1:
                raise ValueError(f"MultiFactorScheduler: every step must be >= 1, got {step}")
        if factor > 1.0:
            raise ValueError(f"MultiFactorScheduler: factor must be <= 1 to reduce the rate, "
                             f"got {factor}")
        self.step = step
        self.cur_step_ind = 0
        self.factor = factor
        self.count = 0

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while self.cur_step_ind < len(self.step) and num_update > self.step[self.cur_step_ind]:
            self.count = self.step[self.cur_step_ind]
            self.cur_step_ind += 1
            self.base_lr *= self.factor
            logging.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)
        return self.base_lr

    def _spec_params(self) -> dict:
        return dict(super()._spec_params(), step=list(self.step), factor=self.factor)


class _DecayToFinal(LRScheduler):
    """Shared by Poly and Cosine: decay from base_lr to final_lr over max_update updates."""

    def __init__(self, max_update: int, base_lr: float, final_lr: float, warmup_steps: int,
                 warmup_begin_lr: float, warmup_mode: str):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(max_update, int) or max_update < 1:
            raise ValueError(f"{type(self).__name__}: max_update must be a positive int, got "
                             f"{max_update!r}")
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = max_update - warmup_steps

    def _decay(self, fraction: float) -> float:
        """The decay factor (1 at the start, 0 at max_update) at ``fraction`` of the way."""
        raise NotImplementedError

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            fraction = float(num_update - self.warmup_steps) / float(self.max_steps)
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) * self._decay(
                fraction)
        return self.base_lr

    def _spec_params(self) -> dict:
        return dict(super()._spec_params(), max_update=self.max_update, final_lr=self.final_lr)


class PolyScheduler(_DecayToFinal):
    """``PolyScheduler(max_update, base_lr=0.01, pwr=2, final_lr=0, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear')``.

    ``final_lr + (base_lr - final_lr) * (1 - n / max_update) ** pwr`` (n counted after warmup),
    then ``final_lr`` once ``max_update`` is reached.
    """

    def __init__(self, max_update: int, base_lr: float = 0.01, pwr: float = 2,
                 final_lr: float = 0, warmup_steps: int = 0, warmup_begin_lr: float = 0,
                 warmup_mode: str = "linear"):
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr,
                         warmup_mode)
        self.power = pwr

    def _decay(self, fraction: float) -> float:
        return pow(1 - fraction, self.power)

    def _spec_params(self) -> dict:
        return dict(super()._spec_params(), pwr=self.power)


class CosineScheduler(_DecayToFinal):
    """``CosineScheduler(max_update, base_lr=0.01, final_lr=0, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear')``.

    ``final_lr + (base_lr - final_lr) * (1 + cos(pi * n / max_update)) / 2`` (n counted after
    warmup), then ``final_lr`` once ``max_update`` is reached.
    """

    def __init__(self, max_update: int, base_lr: float = 0.01, final_lr: float = 0,
                 warmup_steps: int = 0, warmup_begin_lr: float = 0, warmup_mode: str = "linear"):
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr,
                         warmup_mode)

    def _decay(self, fraction: float) -> float:
        return (1 + cos(pi * fraction)) / 2

