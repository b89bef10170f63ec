"""The SGD family: SGD (momentum, weight decay), NAG, Signum / signSGD, LARS, LBSGD, ccSGD and
Test.

The fast paths call the fused registry operators (``sgd_mom_update``, ``nag_mom_update``,
``signum_update``, their ``mp_`` forms for fp16 weights with an fp32 master copy); each class's
``reference_update`` is the same rule in plain numpy.
"""
from __future__ import annotations

import numpy as np

from ..ndarray import NDArray, zeros
from ..ops.registry import get_op
from ..ops.resource import op_context
from .optimizer import Optimizer, fused_update, push_kernel, register

__all__ = ["SGD", "NAG", "Signum", "LARS", "LBSGD", "ccSGD", "Test"]


def _np_grad(opt: Optimizer, grad: np.ndarray) -> np.ndarray:
    """The reference's ``clip(rescale_grad * grad, clip_gradient)``."""
    g = grad * opt.rescale_grad
    if opt.clip_gradient:
        g = np.clip(g, -opt.clip_gradient, opt.clip_gradient)
    return g


def sgd_reference(opt: Optimizer, weight, grad, state, lr, wd, momentum):
    """SGD in numpy: ``mom = momentum*mom - lr*(g + wd*w)``; ``w += mom`` (no state: no mom)."""
    g = _np_grad(opt, grad)
    if state is None:
        return weight - lr * (g + wd * weight), None
    mom = momentum * state - lr * (g + wd * weight)
    return weight + mom, mom


class _FusedMomentum(Optimizer):
    """Shared by SGD and NAG: a momentum state (or None) and (mom, weight32) multi-precision,
    updated by the fused operator ``_op`` / ``_mp_op`` (``_plain_op`` without momentum)."""
    _master_first = False
    _op = _mp_op = _plain_op = _mp_plain_op = ""

    def create_state(self, index, weight: NDArray):
        if self.momentum == 0.0:
            return None
        return zeros(weight.shape, weight.context, dtype=weight.dtype)

    def _fused_params(self, lr: float, wd: float) -> dict:
        kw = {"lr": lr, "wd": wd, "rescale_grad": self.rescale_grad}
        if self.momentum > 0:
            kw["momentum"] = self.momentum
        if self.clip_gradient:
            kw["clip_gradient"] = self.clip_gradient
        return kw

    def _update_impl(self, index, weight, grad, state, multi_precision: bool) -> None:
        lr, wd, _ = self._step_values(index)
        kw = self._fused_params(lr, wd)
        if not multi_precision:
            if state is not None:
                fused_update(self._op, weight, grad, state, **kw)
            else:
                fused_update(self._plain_op, weight, grad, **kw)
        else:
            mom, master = state
            if mom is not None:
                fused_update(self._mp_op, weight, grad, mom, master, **kw)
            else:
                kw.pop("momentum", None)
                fused_update(self._mp_plain_op, weight, grad, master, **kw)

    def update(self, index, weight, grad, state) -> None:
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index, weight, grad, state) -> None:
        use_mp = self._uses_master_copy(weight) and isinstance(state, (tuple, list))
        self._update_impl(index, weight, grad, state, multi_precision=use_mp)


@register
class SGD(_FusedMomentum):
    """``SGD(momentum=0.0, lazy_update=True, **kwargs)``: SGD with momentum and weight decay.

    ``mom = momentum * mom - lr * (clip(rescale_grad * grad) + wd * weight)``;
    ``weight += mom`` (without momentum: ``weight -= lr * (g + wd * weight)``).
    ``lazy_update`` only matters for row_sparse gradients, which hybridnet keeps dense.
    """
    _op, _mp_op = "sgd_mom_update", "mp_sgd_mom_update"
    _plain_op, _mp_plain_op = "sgd_update", "mp_sgd_update"

    def __init__(self, momentum: float = 0.0, lazy_update: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update

    def _fused_params(self, lr, wd):
        return dict(super()._fused_params(lr, wd), lazy_update=self.lazy_update)

    def reference_update(self, weight, grad, state, lr, wd, t):
        return sgd_reference(self, weight, grad, state, lr, wd, self.momentum)


@register
class ccSGD(SGD):  # noqa: N801  (MXNet's name)
    """``ccSGD``: the same as SGD (kept for old scripts)."""


@register
class NAG(_FusedMomentum):
    """``NAG(momentum=0.0, **kwargs)``: Nesterov accelerated gradient.

    ``g = clip(rescale_grad * grad) + wd * weight``; ``mom = momentum * mom - lr * g``;
    ``weight += momentum * mom - lr * g``.
    """
    _op, _mp_op = "nag_mom_update", "mp_nag_mom_update"
    _plain_op, _mp_plain_op = "sgd_update", "mp_sgd_update"

    def __init__(self, momentum: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def reference_update(self, weight, grad, state, lr, wd, t):
        g = _np_grad(self, grad) + wd * weight
        if state is None:
            return weight - lr * g, None
        mom = self.momentum * state - lr * g
        return weight + self.momentum * mom - lr * g, mom


@register
class Signum(Optimizer):
    """``Signum(learning_rate=0.01, momentum=0.9, wd_lh=0.0, **kwargs)``: sign of the momentum.

    ``mom = momentum * mom - (1 - momentum) * (wd * weight + clip(rescale_grad * grad))``;
    ``weight = (1 - lr * wd_lh) * weight + lr * sign(mom)``. With ``momentum=0`` this is
    signSGD: ``weight = (1 - lr * wd) * weight - lr * sign(grad)``.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9, wd_lh: float = 0.0,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index, weight):
        if self.momentum == 0.0:
            return None
        return zeros(weight.shape, weight.context, dtype=weight.dtype)

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._step_values(index)
        kw = {"lr": lr, "wd": wd, "rescale_grad": self.rescale_grad}
        if self.clip_gradient:
            kw["clip_gradient"] = self.clip_gradient
        if state is None:
            fused_update("signsgd_update", weight, grad, **kw)
        else:
            fused_update("signum_update", weight, grad, state, momentum=self.momentum,
                    wd_lh=self.wd_lh, **kw)

    def reference_update(self, weight, grad, state, lr, wd, t):
        g = _np_grad(self, grad)
        if state is None:
            return (1 - lr * wd) * weight - lr * np.sign(g), None
        mom = self.momentum * state - (1 - self.momentum) * (wd * weight + g)
        return (1 - lr * self.wd_lh) * weight + lr * np.sign(mom), mom


@register
class LARS(SGD):
    """``LARS(momentum=0.0, lazy_update=True, eta=0.001, eps=0, momentum_correction=True, **kwargs)``.

    SGD whose rate is scaled per layer by ``eta * |w| / (|g| + wd * |w| + eps)`` (``|g|`` of the
    rescaled gradient; 1 when either norm is 0), except for parameters whose names end in
    gamma, beta or bias. Only ``*_weight`` parameters get weight decay by default.
    ``momentum_correction`` scales the momentum by ``lr / previous lr`` when a schedule
    changes the rate. The norms are computed inside the engine task, so nothing waits.
    """

    def __init__(self, momentum: float = 0.0, lazy_update: bool = True, eta: float = 0.001,
                 eps: float = 0, momentum_correction: bool = True, **kwargs):
        super().__init__(momentum=momentum, lazy_update=lazy_update, **kwargs)
        self.momentum_correction = momentum_correction
        self.eta = eta
        self.eps = eps
        self.last_lr = None
        self.cur_lr = None

    @staticmethod
    def _decays_by_default(name: str) -> bool:
        return name.endswith("_weight")

    def _get_lrs(self, indices):
        lr = self.learning_rate
        self.last_lr = lr if self.cur_lr is None else self.cur_lr
        self.cur_lr = lr
        return super()._get_lrs(indices)

    def _skips_lars(self, index) -> bool:
        name = self.idx2name.get(index, str(index))
        return name.endswith(("gamma", "beta", "bias"))

    def _momentum_now(self) -> float:
        if self.momentum_correction and self.last_lr:
            return self.momentum * (self.cur_lr / self.last_lr)
        return self.momentum

    def _lars_scale(self, xp, weight, grad, wd) -> float:
        w_norm = float(xp.linalg.norm(weight.astype(np.float32).ravel()))
        g_norm = float(xp.linalg.norm((grad.astype(np.float32) * self.rescale_grad).ravel()))
        if w_norm > 0.0 and g_norm > 0.0:
            return self.eta * w_norm / (g_norm + wd * w_norm + self.eps)
        return 1.0

    def _update_impl(self, index, weight, grad, state, multi_precision):
        lr, wd, _ = self._step_values(index)
        skip = self._skips_lars(index)
        base = {"wd": wd, "rescale_grad": self.rescale_grad, "momentum": self._momentum_now(),
                "clip_gradient": self.clip_gradient or -1.0}
        if multi_precision:
            mom, master = state
            name = "mp_sgd_mom_update" if mom is not None else "mp_sgd_update"
            aux = [mom, master] if mom is not None else [master]
        else:
            name = "sgd_mom_update" if state is not None else "sgd_update"
            aux = [state] if state is not None else []
        if "mom" not in name:
            base.pop("momentum")
        op = get_op(name)
        octx = op_context(weight.context)

        def kernel(xp, w, *rest):
            *aux_data, g = rest
            scale = 1.0 if skip else self._lars_scale(xp, w, g, wd)
            p = op.parse_params(dict(base, lr=lr * scale))
            op.forward(octx, p, [w, g], aux_data, [w], True)
        push_kernel("lars_update", kernel, [weight] + aux, [grad])

    def reference_step(self, index, weight, grad, state):
        lr, wd, t = self._step_values(index)
        scale = 1.0 if self._skips_lars(index) else self._lars_scale(np, weight, grad, wd)
        momentum = self._momentum_now()
        if not (self.multi_precision and weight.dtype == np.float16):
            return sgd_reference(self, weight, grad, state, lr * scale, wd, momentum)
        mom, master = state
        master, mom = sgd_reference(self, master, grad.astype(np.float32), mom, lr * scale, wd,
                                    momentum)
        return master.astype(weight.dtype), (mom, master)


@register
class Test(Optimizer):
    """``Test``: MXNet's test optimizer: ``weight += rescale_grad * grad``; ``state = weight``."""

    def create_state(self, index, weight):
        return zeros(weight.shape, weight.context)

    def update(self, index, weight, grad, state):
        scale = self.rescale_grad

        def kernel(xp, w, s, g):
            w += g * scale
            s[...] = w
        push_kernel("test_update", kernel, [weight, state], [grad])

    def reference_update(self, weight, grad, state, lr, wd, t):
        new = weight + grad * self.rescale_grad
        return new, new.copy()


@register
class LBSGD(_FusedMomentum):
    """``LBSGD(momentum=0.0, multi_precision=False, warmup_strategy='linear', warmup_epochs=5, batch_scale=1, updates_per_epoch=32, begin_epoch=0, num_epochs=60, **kwargs)``.

    Large-batch SGD (MXNet's rule): gradients are accumulated over ``batch_scale`` calls and
    applied as their mean once per ``batch_scale`` calls (the other calls leave the weight
    as it is), with the rate multiplied by a warmup factor that grows from 1 to
    ``batch_scale`` over ``warmup_epochs * updates_per_epoch`` accumulated updates
    ('linear', 'power2' or 'sqrt'), or by a LARS factor ``sqrt(|w|^2 / (|g|^2 + wd |w|^2))``
    clamped to [0.01, 100] with ``warmup_strategy='lars'``.
    """
    _op, _mp_op = "sgd_mom_update", "mp_sgd_mom_update"
    _plain_op, _mp_plain_op = "sgd_update", "mp_sgd_update"

    def __init__(self, momentum: float = 0.0, multi_precision: bool = False,
                 warmup_strategy: str = "linear", warmup_epochs: int = 5, batch_scale: int = 1,
                 updates_per_epoch: int = 32, begin_epoch: int = 0, num_epochs: int = 60,
                 **kwargs):
        super().__init__(multi_precision=multi_precision, **kwargs)
        if warmup_strategy not in ("linear", "power2", "sqrt", "lars"):
            raise ValueError(f"LBSGD: warmup_strategy must be linear, power2, sqrt or lars, "
                             f"got {warmup_strategy!r}")
        self.momentum = momentum
        self.warmup_strategy = warmup_strategy
        self.warmup_epochs = warmup_epochs
        self.batch_scale = batch_scale
        self.updates_per_epoch = updates_per_epoch
        self.init_updates = begin_epoch * updates_per_epoch
        self.num_epochs = num_epochs
        self.cumgrads: dict = {}

    def _lbmult(self, nup: int) -> float:
        nwup = self.warmup_epochs * self.updates_per_epoch
        maxmult = float(self.batch_scale)
        if nup >= nwup:
            return maxmult
        if nwup <= 1:
            return 1.0
        frac = {"linear": nup / nwup, "power2": (nup * nup) / (nwup * nwup),
                "sqrt": (float(nup) / nwup) ** 0.5}.get(self.warmup_strategy)
        return 1.0 if frac is None else 1.0 + (maxmult - 1) * frac

    @staticmethod
    def _lars(weight2: float, grad2: float, wd: float) -> float:
        return min(max((weight2 / (grad2 + wd * weight2 + 1e-18)) ** 0.5, 0.01), 100.0)

    def _accumulate(self, index, grad, add):
        """Add ``grad`` to the index's running sum; return (sum, number of accumulated calls)."""
        entry = self.cumgrads.get(index)
        if entry is not None and entry["num_cums"] > 0:
            total = grad if entry["cum_grad"] is None else add(entry["cum_grad"], grad)
            num = entry["num_cums"] + 1
        else:
            total, num = grad, self.init_updates + 1
        self.cumgrads[index] = {"cum_grad": total, "num_cums": num}
        return total, num

    def _lr_wd(self, index):
        lr, wd = self._get_lr(index), self._get_wd(index)   # MXNet reads lr before counting
        self._update_count(index)
        return lr, wd

    def _update_impl(self, index, weight, grad, state, multi_precision):
        lr, wd = self._lr_wd(index)
        total, num = self._accumulate(index, grad.copy(), lambda a, b: a + b)
        if num % self.batch_scale != 0:
            return                                  # accumulate only: the weight stays
        grad = total / self.batch_scale
        if self.warmup_strategy == "lars":
            base = state[1] if multi_precision else weight
            w2 = float((base.asnumpy().astype(np.float64) ** 2).sum())
            g2 = float((grad.asnumpy().astype(np.float64) ** 2).sum())
            lr *= self._lars(w2, g2, wd)
        else:
            lr *= self._lbmult(num)
        self.cumgrads[index]["cum_grad"] = None
        kw = self._fused_params(lr, wd)
        if not multi_precision:
            if state is not None:
                fused_update(self._op, weight, grad, state, **kw)
            else:
                fused_update(self._plain_op, weight, grad, **kw)
        else:
            mom, master = state
            if mom is not None:
                fused_update(self._mp_op, weight, grad, mom, master, **kw)
            else:
                kw.pop("momentum", None)
                fused_update(self._mp_plain_op, weight, grad, master, **kw)

    def reference_step(self, index, weight, grad, state):
        lr, wd = self._lr_wd(index)
        total, num = self._accumulate(index, grad.copy(), lambda a, b: a + b)
        if num % self.batch_scale != 0:
            return weight, state
        grad = total / self.batch_scale
        mp = self.multi_precision and weight.dtype == np.float16
        base, inner = (state[1], state[0]) if mp else (weight, state)
        if self.warmup_strategy == "lars":
            w2 = float((base.astype(np.float64) ** 2).sum())
            lr *= self._lars(w2, float((grad.astype(np.float64) ** 2).sum()), wd)
        else:
            lr *= self._lbmult(num)
        self.cumgrads[index]["cum_grad"] = None
        new, inner = sgd_reference(self, base, grad.astype(base.dtype), inner, lr, wd,
                                   self.momentum)
        if not mp:
            return new, inner
        return new.astype(weight.dtype), (inner, new)
