"""The fused optimizer update operators as registry ops: forward against numpy references
(MXNet's formulas) and shape inference, through the shared op harness. The states are the
ops' auxiliary inputs; only the returned weight is compared here (test_optimizer.py checks the
states and the full optimizers against MXNet)."""
import numpy as np
import pytest

from op_harness import OpCase, check_forward, check_infer_shape


def _clip(x, c):
    return x if c < 0 else np.clip(x, -c, c)


def _sgd(w, g, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, **_):
    return (1 - lr * wd) * w - lr * _clip(rescale_grad * g, clip_gradient)


def _sgd_mom(w, g, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, **_):
    return w + momentum * mom - lr * wd * w - lr * _clip(rescale_grad * g, clip_gradient)


def _nag(w, g, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0):
    step = lr * (_clip(rescale_grad * g, clip_gradient) + wd * w)
    new_mom = momentum * mom - step
    return w + momentum * new_mom - step


def _adam(w, g, mean, var, lr, beta1=0.9, beta2=0.999, epsilon=1e-8, wd=0.0, rescale_grad=1.0,
          clip_gradient=-1.0, **_):
    gg = _clip(rescale_grad * g + wd * w, clip_gradient)
    m = beta1 * mean + (1 - beta1) * gg
    v = beta2 * var + (1 - beta2) * gg * gg
    return w - lr * m / (np.sqrt(v) + epsilon)


def _rmsprop(w, g, n, lr, gamma1=0.95, epsilon=1e-8, wd=0.0, rescale_grad=1.0,
             clip_gradient=-1.0, clip_weights=-1.0):
    gg = _clip(rescale_grad * g + wd * w, clip_gradient)
    n = (1 - gamma1) * gg * gg + gamma1 * n
    return _clip(w - lr * gg / np.sqrt(n + epsilon), clip_weights)


def _ftrl(w, g, z, n, lr, lamda1=0.01, beta=1.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0):
    gg = _clip(rescale_grad * g, clip_gradient)
    z = z + gg - (np.sqrt(n + gg * gg) - np.sqrt(n)) * w / lr
    n = n + gg * gg
    return (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > lamda1)


def _signsgd(w, g, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0):
    return (1 - lr * wd) * w - lr * np.sign(g)


def _positive(rng, i, shape):
    return rng.uniform(0.1, 1.0, shape)


CASES = [
    OpCase("sgd_update", [(3, 4), (3, 4)], {"lr": 0.1, "wd": 0.01}, _sgd, grad=False),
    OpCase("sgd_update", [(5,), (5,)], {"lr": 0.1, "clip_gradient": 0.2, "rescale_grad": 0.5},
           _sgd, grad=False, id="sgd_update-clip"),
    OpCase("sgd_mom_update", [(3, 4), (3, 4), (3, 4)], {"lr": 0.1, "momentum": 0.9, "wd": 0.01},
           _sgd_mom, grad=False),
    OpCase("nag_mom_update", [(2, 3), (2, 3), (2, 3)],
           {"lr": 0.05, "momentum": 0.9, "wd": 0.01, "clip_gradient": 0.5}, _nag, grad=False),
    OpCase("adam_update", [(4, 3), (4, 3), (4, 3), (4, 3)], {"lr": 0.01, "wd": 0.1},
           _adam, grad=False, init=_positive),
    OpCase("rmsprop_update", [(6,), (6,), (6,)], {"lr": 0.01, "clip_weights": 0.5},
           _rmsprop, grad=False, init=_positive),
    OpCase("ftrl_update", [(3, 3), (3, 3), (3, 3), (3, 3)], {"lr": 0.1, "lamda1": 0.01},
           _ftrl, grad=False, init=_positive),
    OpCase("signsgd_update", [(4,), (4,)], {"lr": 0.1, "wd": 0.05}, _signsgd, grad=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    check_forward(case)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_infer_shape(case):
    check_infer_shape(case)
