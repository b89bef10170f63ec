"""The Adam family: Adam, Adamax, Nadam and LAMB.

Adam calls the fused ``adam_update`` operator with the bias correction folded into the rate;
LAMB runs its two fused phases and the two norms in one engine task; Adamax and Nadam are
in-place kernels pushed to the engine. ``reference_update`` is each rule in plain numpy.
"""
from __future__ import annotations

import math

import numpy as np

from ..ndarray import zeros
from ..ops.registry import get_op
from ..ops.resource import op_context
from .optimizer import Optimizer, fused_update, push_kernel, register

__all__ = ["Adam", "Adamax", "Nadam", "LAMB"]


def _np_grad_wd(opt: Optimizer, grad, weight, wd):
    """The reference's ``clip(rescale_grad * grad + wd * weight, clip_gradient)``."""
    g = grad * opt.rescale_grad + wd * weight
    if opt.clip_gradient is not None:
        g = np.clip(g, -opt.clip_gradient, opt.clip_gradient)
    return g


def _moments(opt, index, weight):
    return (zeros(weight.shape, weight.context, dtype=weight.dtype),
            zeros(weight.shape, weight.context, dtype=weight.dtype))


@register
class Adam(Optimizer):
    """``Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, **kwargs)``.

    ``g = clip(rescale_grad * grad + wd * weight)``; ``mean = beta1*mean + (1-beta1)*g``;
    ``var = beta2*var + (1-beta2)*g^2``;
    ``weight -= lr * sqrt(1-beta2^t)/(1-beta1^t) * mean / (sqrt(var) + epsilon)``.
    """

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, lazy_update: bool = True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = lazy_update

    create_state = _moments

    def _corrected_lr(self, lr, t):
        return lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)

    def update(self, index, weight, grad, state):
        lr, wd, t = self._step_values(index)
        kw = {"beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon,
              "rescale_grad": self.rescale_grad}
        if self.clip_gradient:
            kw["clip_gradient"] = self.clip_gradient
        mean, var = state
        fused_update("adam_update", weight, grad, mean, var, lazy_update=self.lazy_update,
                lr=self._corrected_lr(lr, t), wd=wd, **kw)

    def reference_update(self, weight, grad, state, lr, wd, t):
        mean, var = state
        g = grad * self.rescale_grad + wd * weight
        if self.clip_gradient:
            g = np.clip(g, -self.clip_gradient, self.clip_gradient)
        mean = self.beta1 * mean + (1 - self.beta1) * g
        var = self.beta2 * var + (1 - self.beta2) * g * g
        weight = weight - self._corrected_lr(lr, t) * mean / (np.sqrt(var) + self.epsilon)
        return weight, (mean, var)


@register
class Adamax(Optimizer):
    """``Adamax(learning_rate=0.002, beta1=0.9, beta2=0.999, **kwargs)``: Adam with the infinity norm.

    ``g = clip(rescale_grad * grad + wd * weight)``; ``m = beta1*m + (1-beta1)*g``;
    ``u = max(beta2*u, |g|)``; ``weight -= lr / (1 - beta1^t) * m / u``.
    """

    def __init__(self, learning_rate: float = 0.002, beta1: float = 0.9, beta2: float = 0.999,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2

    create_state = _moments

    def update(self, index, weight, grad, state):
        lr, wd, t = self._step_values(index)
        lr /= 1.0 - self.beta1 ** t
        b1, b2, rescale, clip = self.beta1, self.beta2, self.rescale_grad, self.clip_gradient

        def kernel(xp, w, m, u, grad_):
            g = xp.multiply(grad_, rescale, dtype=w.dtype)
            g += wd * w
            if clip is not None:
                xp.clip(g, -clip, clip, out=g)
            m *= b1
            m += (1.0 - b1) * g
            u *= b2
            xp.maximum(u, xp.abs(g), out=u)
            w -= lr * m / u
        push_kernel("adamax_update", kernel, [weight, *state], [grad])

    def reference_update(self, weight, grad, state, lr, wd, t):
        m, u = state
        g = _np_grad_wd(self, grad, weight, wd)
        m = self.beta1 * m + (1 - self.beta1) * g
        u = np.maximum(self.beta2 * u, np.abs(g))
        return weight - lr / (1 - self.beta1 ** t) * m / u, (m, u)


@register
class Nadam(Optimizer):
    """``Nadam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004, **kwargs)``.

    Adam with Nesterov momentum (Dozat 2016). As in MXNet, the momentum schedule
    ``m_schedule`` is one product shared by all parameters, advanced at every update.
    """

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, schedule_decay: float = 0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    create_state = _moments

    def _schedule(self, t):
        """Advance the shared schedule; return (momentum_t, momentum_t+1, m_schedule_next)."""
        mom_t = self.beta1 * (1.0 - 0.5 * pow(0.96, t * self.schedule_decay))
        mom_t1 = self.beta1 * (1.0 - 0.5 * pow(0.96, (t + 1) * self.schedule_decay))
        self.m_schedule = self.m_schedule * mom_t
        return mom_t, mom_t1, self.m_schedule * mom_t1

    def update(self, index, weight, grad, state):
        lr, wd, t = self._step_values(index)
        mom_t, mom_t1, m_next = self._schedule(t)
        m_sched, b1, b2, eps = self.m_schedule, self.beta1, self.beta2, self.epsilon
        rescale, clip = self.rescale_grad, self.clip_gradient
        v_corr = 1.0 - pow(b2, t)

        def kernel(xp, w, m, v, grad_):
            g = xp.multiply(grad_, rescale, dtype=w.dtype)
            g += wd * w
            if clip is not None:
                xp.clip(g, -clip, clip, out=g)
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            m_bar = (1.0 - mom_t) / (1.0 - m_sched) * g
            m_bar += mom_t1 / (1.0 - m_next) * m
            denom = xp.sqrt(v / v_corr)
            denom += eps
            w -= lr * m_bar / denom
        push_kernel("nadam_update", kernel, [weight, *state], [grad])

    def reference_update(self, weight, grad, state, lr, wd, t):
        m, v = state
        mom_t, mom_t1, m_next = self._schedule(t)
        g = _np_grad_wd(self, grad, weight, wd)
        m = self.beta1 * m + (1 - self.beta1) * g
        v = self.beta2 * v + (1 - self.beta2) * g * g
        grad_prime = g / (1 - self.m_schedule)
        m_prime = m / (1 - m_next)
        v_prime = v / (1 - pow(self.beta2, t))
        m_bar = (1 - mom_t) * grad_prime + mom_t1 * m_prime
        return weight - lr * m_bar / (np.sqrt(v_prime) + self.epsilon), (m, v)


@register
class LAMB(Optimizer):
    """``LAMB(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-6, lower_bound=None, upper_bound=None, bias_correction=True, **kwargs)``.

    Adam's direction ``d = mean_hat / (sqrt(var_hat) + epsilon) + wd * weight`` (moments of
    ``clip(rescale_grad * grad)``), scaled layer-wise: ``weight -= lr * r1 / r2 * d`` with
    ``r1 = |weight|`` clamped to [lower_bound, upper_bound] and ``r2 = |d|`` (ratio 1 if
    either is 0). You et al. 2019, https://arxiv.org/abs/1904.00962.
    """

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-6, lower_bound: float | None = None,
                 upper_bound: float | None = None, bias_correction: bool = True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = bias_correction

    create_state = _moments

    def _phase_params(self, lr, wd, t):
        p1 = {"beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon, "t": t,
              "bias_correction": self.bias_correction, "wd": wd,
              "rescale_grad": self.rescale_grad}
        if self.clip_gradient:
            p1["clip_gradient"] = self.clip_gradient
        p2 = {"lr": lr}
        if self.lower_bound:
            p2["lower_bound"] = self.lower_bound
        if self.upper_bound:
            p2["upper_bound"] = self.upper_bound
        return p1, p2

    def _update_impl(self, index, weight, grad, state, multi_precision):
        lr, wd, t = self._step_values(index)
        p1, p2 = self._phase_params(lr, wd, t)
        prefix = "mp_" if multi_precision else ""
        op1, op2 = get_op(prefix + "lamb_update_phase1"), get_op(prefix + "lamb_update_phase2")
        p1, p2 = op1.parse_params(p1), op2.parse_params(p2)
        octx = op_context(weight.context)
        if multi_precision:
            master, (mean, var) = state
            writes = [weight, mean, var, master]
        else:
            writes = [weight, *state]

        def kernel(xp, w, mean_, var_, *rest):
            *master_, g = rest
            d = xp.empty(w.shape, np.float32 if multi_precision else w.dtype)
            op1.forward(octx, p1, [w, g], [mean_, var_, *master_], [d], True)
            base = master_[0] if multi_precision else w
            r1 = xp.asarray([xp.linalg.norm(base.ravel())], dtype=np.float32)
            r2 = xp.asarray([xp.linalg.norm(d.ravel())], dtype=np.float32)
            op2.forward(octx, p2, [w, d, r1, r2], master_, [w], True)
        push_kernel("lamb_update", kernel, writes, [grad])

    def update(self, index, weight, grad, state):
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(self, index, weight, grad, state):
        self._update_impl(index, weight, grad, state,
                          multi_precision=self._uses_master_copy(weight))

    def reference_update(self, weight, grad, state, lr, wd, t):
        mean, var = state
        g = grad * self.rescale_grad
        if self.clip_gradient:
            g = np.clip(g, -self.clip_gradient, self.clip_gradient)
        mean = self.beta1 * mean + (1 - self.beta1) * g
        var = self.beta2 * var + (1 - self.beta2) * g * g
        if self.bias_correction:
            mean_hat, var_hat = mean / (1 - self.beta1 ** t), var / (1 - self.beta2 ** t)
        else:
            mean_hat, var_hat = mean, var
        d = mean_hat / (np.sqrt(var_hat) + self.epsilon) + wd * weight
        r1 = float(np.linalg.norm(weight))
        if self.lower_bound:
            r1 = max(r1, self.lower_bound)
        if self.upper_bound:
            r1 = min(r1, self.upper_bound)
        r2 = float(np.linalg.norm(d))
        ratio = r1 / r2 if r1 and r2 else 1.0
        return weight - lr * ratio * d, (mean, var)

