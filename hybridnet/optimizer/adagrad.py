"""Adaptive-rate rules: AdaGrad, AdaDelta, RMSProp (plain and centered) and GroupAdaGrad.

RMSProp calls the fused ``rmsprop_update`` / ``rmspropalex_update`` operators; AdaGrad and
AdaDelta are in-place kernels pushed to the engine. ``reference_update`` is each rule in plain
numpy. Their states are float32 whatever the weight's dtype, as in MXNet.
"""
from __future__ import annotations

import numpy as np

from ..ndarray import zeros
from ..ops.kernels import optimizer as _fused
from ..ops.optimizer_ops import fusable
from .optimizer import Optimizer, fused_update, push_kernel, register, scaled_grad

__all__ = ["AdaGrad", "AdaDelta", "RMSProp", "GroupAdaGrad"]


def _np_scaled(opt: Optimizer, grad):
    """The reference's ``clip(rescale_grad * grad, clip_gradient)`` (None: no clipping)."""
    g = grad * opt.rescale_grad
    if opt.clip_gradient is not None:
        g = np.clip(g, -opt.clip_gradient, opt.clip_gradient)
    return g


@register
class AdaGrad(Optimizer):
    """``AdaGrad(eps=1e-7, **kwargs)``: ``history += g^2``;
    ``weight -= lr * (g / sqrt(history + eps) + wd * weight)`` with
    ``g = clip(rescale_grad * grad)``. Duchi et al. 2011.
    """

    def __init__(self, eps: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        return zeros(weight.shape, weight.context)

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._step_values(index)
        eps, rescale, clip = self.float_stable_eps, self.rescale_grad, self.clip_gradient

        def kernel(xp, w, history, grad_):
            flat = fusable(xp, w, history, grad_)
            if flat is not None:          # one pass instead of six on the CPU
                _fused.adagrad(*flat, lr, wd, eps, rescale, -1.0 if clip is None else clip)
                return
            g = scaled_grad(xp, grad_, rescale, clip)
            history += g * g
            step = history + eps
            xp.sqrt(step, out=step)
            xp.divide(g, step, out=step)
            step += wd * w
            step *= lr
            w -= step
        push_kernel("adagrad_update", kernel, [weight, state], [grad])

    def reference_update(self, weight, grad, state, lr, wd, t):
        g = _np_scaled(self, grad)
        history = state + g * g
        return weight - lr * (g / np.sqrt(history + self.float_stable_eps) + wd * weight), history

    def _current_value(self, key, recorded):
        return self.float_stable_eps if key == "eps" else super()._current_value(key, recorded)


@register
class AdaDelta(Optimizer):
    """``AdaDelta(rho=0.9, epsilon=1e-5, **kwargs)``: Zeiler 2012; the learning rate is unused.

    ``acc_g = rho*acc_g + (1-rho)*g^2``; ``delta = sqrt(acc_delta + eps) / sqrt(acc_g + eps) * g``;
    ``acc_delta = rho*acc_delta + (1-rho)*delta^2``; ``weight -= delta + wd * weight``.
    (MXNet also scales the caller's gradient array in place; hybridnet leaves it alone.)
    """

    def __init__(self, rho: float = 0.9, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def create_state(self, index, weight):
        return zeros(weight.shape, weight.context), zeros(weight.shape, weight.context)

    def update(self, index, weight, grad, state):
        _, wd, _ = self._step_values(index)
        rho, eps, rescale, clip = self.rho, self.epsilon, self.rescale_grad, self.clip_gradient

        def kernel(xp, w, acc_g, acc_delta, grad_):
            g = scaled_grad(xp, grad_, rescale, clip)
            acc_g *= rho
            acc_g += (1.0 - rho) * (g * g)
            delta = xp.sqrt(acc_delta + eps)
            delta /= xp.sqrt(acc_g + eps)
            delta *= g
            acc_delta *= rho
            acc_delta += (1.0 - rho) * (delta * delta)
            delta += wd * w
            w -= delta
        push_kernel("adadelta_update", kernel, [weight, *state], [grad])

    def reference_update(self, weight, grad, state, lr, wd, t):
        acc_g, acc_delta = state
        g = _np_scaled(self, grad)
        acc_g = self.rho * acc_g + (1 - self.rho) * g * g
        delta = np.sqrt(acc_delta + self.epsilon) / np.sqrt(acc_g + self.epsilon) * g
        acc_delta = self.rho * acc_delta + (1 - self.rho) * delta * delta
        return weight - (delta + wd * weight), (acc_g, acc_delta)


@register
class RMSProp(Optimizer):
    """``RMSProp(learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False, clip_weights=None, **kwargs)``.

    ``g = clip(rescale_grad * grad + wd * weight)``; ``n = (1-gamma1)*g^2 + gamma1*n``.
    Plain (Tieleman & Hinton): ``weight -= lr * g / sqrt(n + epsilon)``. Centered (Graves
    2013): ``gbar = (1-gamma1)*g + gamma1*gbar``;
    ``delta = gamma2*delta - lr * g / sqrt(n - gbar^2 + epsilon)``; ``weight += delta``.
    Then weights are clipped to ``[-clip_weights, clip_weights]`` when set.
    """

    def __init__(self, learning_rate: float = 0.001, gamma1: float = 0.9, gamma2: float = 0.9,
                 epsilon: float = 1e-8, centered: bool = False,
                 clip_weights: float | None = None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.centered = centered
        self.epsilon = epsilon
        self.clip_weights = clip_weights

    def create_state(self, index, weight):
        n = 3 if self.centered else 1
        return tuple(zeros(weight.shape, weight.context) for _ in range(n))

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._step_values(index)
        kw = {"gamma1": self.gamma1, "epsilon": self.epsilon, "rescale_grad": self.rescale_grad}
        if self.centered:
            kw["gamma2"] = self.gamma2
        if self.clip_gradient:
            kw["clip_gradient"] = self.clip_gradient
        if self.clip_weights:
            kw["clip_weights"] = self.clip_weights
        op = "rmspropalex_update" if self.centered else "rmsprop_update"
        fused_update(op, weight, grad, *state, lr=lr, wd=wd, **kw)

    def reference_update(self, weight, grad, state, lr, wd, t):
        g = grad * self.rescale_grad + wd * weight
        if self.clip_gradient:
            g = np.clip(g, -self.clip_gradient, self.clip_gradient)
        n = (1 - self.gamma1) * g * g + self.gamma1 * state[0]
        if self.centered:
            gbar = (1 - self.gamma1) * g + self.gamma1 * state[1]
            delta = self.gamma2 * state[2] - lr * g / np.sqrt(n - gbar * gbar + self.epsilon)
            weight, new_state = weight + delta, (n, gbar, delta)
        else:
            weight, new_state = weight - lr * g / np.sqrt(n + self.epsilon), (n,)
        if self.clip_weights:
            weight = np.clip(weight, -self.clip_weights, self.clip_weights)
        return weight, new_state


@register
class GroupAdaGrad(Optimizer):
    """``GroupAdaGrad(eps=1e-5, **kwargs)`` (MXNet's contrib): AdaGrad with one history value
    per row of a 2-D weight (embeddings): ``history += mean(g^2, axis=1)``;
    ``weight -= lr * g / sqrt(history + eps)``. Weight decay is not supported.
    """

    def __init__(self, eps: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        if len(weight.shape) != 2:
            raise ValueError(f"GroupAdaGrad needs 2-D weights (one history per row), got shape "
                             f"{tuple(weight.shape)} for parameter {index!r}")
        return zeros((weight.shape[0], 1), weight.context)

    def _step(self, index):
        lr, wd, t = self._step_values(index)
        if wd != 0:
            raise ValueError(f"GroupAdaGrad does not support weight decay (parameter {index!r} "
                             f"has wd={wd}); set wd=0 or its wd_mult to 0")
        return lr, wd, t

    def update(self, index, weight, grad, state):
        lr, _, _ = self._step(index)
        eps, rescale, clip = self.float_stable_eps, self.rescale_grad, self.clip_gradient

        def kernel(xp, w, history, grad_):
            g = scaled_grad(xp, grad_, rescale, clip)
            history += (g * g).mean(axis=1, keepdims=True)
            w -= lr * g / xp.sqrt(history + eps)
        push_kernel("group_adagrad_update", kernel, [weight, state], [grad])

    def reference_step(self, index, weight, grad, state):
        lr, wd, t = self._step(index)
        return self.reference_update(weight, grad, state, lr, wd, t)

    def reference_update(self, weight, grad, state, lr, wd, t):
        g = _np_scaled(self, grad)
        history = state + (g * g).mean(axis=1, keepdims=True)
        return weight - lr * g / np.sqrt(history + self.float_stable_eps), history

    def _current_value(self, key, recorded):
        return self.float_stable_eps if key == "eps" else super()._current_value(key, recorded)
