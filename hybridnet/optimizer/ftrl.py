"""Follow-the-leader and friends: Ftrl, FTML, and the asynchronous-SGD helpers DCASGD and SGLD.

Ftrl and FTML call the fused ``ftrl_update`` / ``ftml_update`` operators; DCASGD and SGLD are
in-place kernels pushed to the engine (SGLD draws its noise from the device's seeded generator,
so ``mx.random.seed`` makes it reproducible). ``reference_update`` is each rule in plain numpy.
"""
from __future__ import annotations

import math

import numpy as np

from ..ndarray import zeros
from .optimizer import Optimizer, fused_update, push_kernel, register, scaled_grad

__all__ = ["Ftrl", "FTML", "DCASGD", "SGLD"]


def _np_scaled(opt: Optimizer, grad, truthy_clip: bool = True):
    g = grad * opt.rescale_grad
    clip = opt.clip_gradient
    if (clip if truthy_clip else clip is not None):
        g = np.clip(g, -clip, clip)
    return g


@register
class Ftrl(Optimizer):
    """``Ftrl(lamda1=0.01, learning_rate=0.1, beta=1, **kwargs)``: FTRL-proximal (McMahan 2013).

    ``z += g - (sqrt(n + g^2) - sqrt(n)) * weight / lr``; ``n += g^2``;
    ``weight = (sign(z)*lamda1 - z) / ((beta + sqrt(n)) / lr + wd)`` where ``|z| > lamda1``,
    else 0, with ``g = clip(rescale_grad * grad)``.
    """

    def __init__(self, lamda1: float = 0.01, learning_rate: float = 0.1, beta: float = 1,
                 **kwargs):
        super().__init__(**kwargs)
        self.lamda1 = lamda1
        self.beta = beta
        self.lr = learning_rate

    def create_state(self, index, weight):
        return zeros(weight.shape, weight.context), zeros(weight.shape, weight.context)

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._step_values(index)
        kw = {"lamda1": self.lamda1, "beta": self.beta, "rescale_grad": self.rescale_grad}
        if self.clip_gradient:
            kw["clip_gradient"] = self.clip_gradient
        fused_update("ftrl_update", weight, grad, *state, lr=lr, wd=wd, **kw)

    def reference_update(self, weight, grad, state, lr, wd, t):
        z, n = state
        g = _np_scaled(self, grad)
        z = z + g - (np.sqrt(n + g * g) - np.sqrt(n)) * weight / lr
        n = n + g * g
        w = (np.sign(z) * self.lamda1 - z) / ((self.beta + np.sqrt(n)) / lr + wd)
        return w * (np.abs(z) > self.lamda1), (z, n)


@register
class FTML(Optimizer):
    """``FTML(beta1=0.6, beta2=0.999, epsilon=1e-8, **kwargs)``: Follow the Moving Leader
    (Zheng & Kwok 2017).

    ``g = clip(rescale_grad * grad + wd * weight)``; ``v = beta2*v + (1-beta2)*g^2``;
    ``d_t = (1-beta1^t)/lr * (sqrt(v / (1-beta2^t)) + epsilon)``;
    ``z = beta1*z + (1-beta1)*g - (d_t - beta1*d)*weight``; ``weight = -z / d_t``.
    """

    def __init__(self, beta1: float = 0.6, beta2: float = 0.999, epsilon: float = 1e-8,
                 **kwargs):
        super().__init__(**kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon

    def create_state(self, index, weight):
        return tuple(zeros(weight.shape, weight.context, dtype=weight.dtype) for _ in range(3))

    def update(self, index, weight, grad, state):
        lr, wd, t = self._step_values(index)
        kw = {"beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon,
              "rescale_grad": self.rescale_grad, "t": t}
        if self.clip_gradient:
            kw["clip_grad"] = self.clip_gradient
        fused_update("ftml_update", weight, grad, *state, lr=lr, wd=wd, **kw)

    def reference_update(self, weight, grad, state, lr, wd, t):
        d, v, z = state
        g = grad * self.rescale_grad + wd * weight
        if self.clip_gradient:
            g = np.clip(g, -self.clip_gradient, self.clip_gradient)
        v = self.beta2 * v + (1 - self.beta2) * g * g
        d_t = (1 - self.beta1 ** t) / lr * (np.sqrt(v / (1 - self.beta2 ** t)) + self.epsilon)
        z = self.beta1 * z + (1 - self.beta1) * g - (d_t - self.beta1 * d) * weight
        return -z / d_t, (d_t, v, z)


@register
class DCASGD(Optimizer):
    """``DCASGD(momentum=0.0, lamda=0.04, **kwargs)``: delay-compensated asynchronous SGD
    (Zheng et al. 2016). State ``(mom or None, previous weight)``.

    ``step = -lr * (g + wd*w + lamda * g^2 * (w - w_prev))``; ``mom = momentum*mom + step``
    (``mom = step`` without momentum); ``w_prev = w``; ``w += mom``.
    (MXNet 1.x fails with momentum > 0 on multi-element weights; here it works.)
    """

    def __init__(self, momentum: float = 0.0, lamda: float = 0.04, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.weight_previous: dict = {}
        self.lamda = lamda

    def create_state(self, index, weight):
        mom = None if self.momentum == 0.0 else zeros(weight.shape, weight.context,
                                                      dtype=weight.dtype)
        return mom, weight.copy()

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._step_values(index)
        rescale, clip, lamda, momentum = (self.rescale_grad, self.clip_gradient, self.lamda,
                                          self.momentum)
        mom, prev = state

        def kernel(xp, w, prev_, *rest):
            *mom_, grad_ = rest
            g = scaled_grad(xp, grad_, rescale, clip)
            step = -lr * (g + wd * w + lamda * g * g * (w - prev_))
            if mom_:
                mom_[0] *= momentum
                mom_[0] += step
                step = mom_[0]
            prev_[...] = w
            w += step
        push_kernel("dcasgd_update", kernel, [weight, prev] + ([mom] if mom is not None else []),
                    [grad])

    def reference_update(self, weight, grad, state, lr, wd, t):
        mom, prev = state
        g = _np_scaled(self, grad, truthy_clip=False)
        step = -lr * (g + wd * weight + self.lamda * g * g * (weight - prev))
        mom = step if mom is None else self.momentum * mom + step
        return weight + mom, (None if state[0] is None else mom, weight.copy())


@register
class SGLD(Optimizer):
    """``SGLD(**kwargs)``: stochastic gradient Langevin dynamics (Welling & Teh 2011).

    ``weight += -lr/2 * (g + wd * weight) + N(0, sqrt(lr))``, the noise drawn on the weight's
    device from its seeded generator.
    """

    def update(self, index, weight, grad, state):
        lr, wd, _ = self._step_values(index)
        rescale, clip, std = self.rescale_grad, self.clip_gradient, math.sqrt(lr)

        def kernel(xp, w, grad_, rng):
            g = scaled_grad(xp, grad_, rescale, clip)
            w += -lr / 2 * (g + wd * w)
            w += rng.normal(0.0, std, size=w.shape).astype(w.dtype)
        push_kernel("sgld_update", kernel, [weight], [grad], random=True)

    def reference_update(self, weight, grad, state, lr, wd, t):
        """The deterministic part; the noise is N(0, sqrt(lr)) on top (tested statistically)."""
        g = _np_scaled(self, grad, truthy_clip=False)
        return weight - lr / 2 * (g + wd * weight), None
