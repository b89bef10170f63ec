"""mx.lr_scheduler: every schedule against MXNet 1.9.1 (fixture), warmup, errors, spec form."""
import json
import os

import pytest

import hybridnet as mx
from hybridnet import lr_scheduler as lrs

with open(os.path.join(os.path.dirname(__file__), "fixtures", "lr_scheduler.json")) as _f:
    SCHEDULES = json.load(_f)


@pytest.mark.parametrize("case", SCHEDULES, ids=lambda c: f"{c['class']}-{sorted(c['params'])}")
def test_matches_mxnet(case):
    sched = getattr(mx.lr_scheduler, case["class"])(**case["params"])
    got = [sched(n) for n in range(len(case["lrs"]))]
    assert got == pytest.approx(case["lrs"], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("case", SCHEDULES, ids=lambda c: f"{c['class']}-{sorted(c['params'])}")
def test_spec_round_trip(case):
    sched = getattr(mx.lr_scheduler, case["class"])(**case["params"])
    back = lrs.from_spec(json.loads(json.dumps(sched.to_spec())))
    assert type(back) is type(sched)
    assert [back(n) for n in range(41)] == pytest.approx(case["lrs"], rel=1e-12, abs=1e-15)


def test_warmup_linear_values():
    sched = lrs.CosineScheduler(max_update=20, base_lr=1.0, warmup_steps=4, warmup_begin_lr=0.2)
    assert [sched(n) for n in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert sched(4) == pytest.approx(1.0)
    assert sched(20) == pytest.approx(0.0, abs=1e-12)
    assert sched(100) == pytest.approx(0.0, abs=1e-12)     # stays at final_lr


def test_base_class_needs_call():
    with pytest.raises(NotImplementedError, match="must implement __call__"):
        lrs.LRScheduler()(3)


@pytest.mark.parametrize("make, match", [
    (lambda: lrs.FactorScheduler(step=0), "step must be >= 1"),
    (lambda: lrs.FactorScheduler(step=2, factor=1.5), "factor must be <= 1"),
    (lambda: lrs.MultiFactorScheduler(step=[5, 3]), "step must be increasing"),
    (lambda: lrs.MultiFactorScheduler(step=[0, 3]), "every step must be >= 1"),
    (lambda: lrs.MultiFactorScheduler(step=5), "non-empty list"),
    (lambda: lrs.PolyScheduler(max_update=0), "max_update must be a positive int"),
    (lambda: lrs.CosineScheduler(max_update=2.5), "max_update must be a positive int"),
    (lambda: lrs.FactorScheduler(step=2, base_lr=0.1, warmup_begin_lr=0.5),
     "has to be higher than warmup_begin_lr"),
    (lambda: lrs.FactorScheduler(step=2, warmup_steps=-1), "warmup_steps must be >= 0"),
    (lambda: lrs.FactorScheduler(step=2, warmup_mode="cubic"), "'linear' or 'constant'"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_warmup_steps_type():
    with pytest.raises(TypeError, match="warmup_steps must be an int"):
        lrs.PolyScheduler(max_update=10, warmup_steps=2.0)


def test_from_spec_errors():
    with pytest.raises(ValueError, match="importing it is not allowed"):
        lrs.from_spec({"class": "elsewhere:Sched", "params": {}}, allow_import=False)
    with pytest.raises(ValueError, match="cannot rebuild lr_scheduler"):
        lrs.from_spec({"class": "no_such_mod_q:Sched", "params": {}})
    with pytest.raises(ValueError, match="is not an LRScheduler class"):
        lrs.from_spec({"class": "json:JSONDecoder", "params": {}})
    assert lrs.from_spec(None) is None


def test_optimizer_uses_schedule_with_num_update():
    sched = lrs.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    opt = mx.optimizer.SGD(lr_scheduler=sched)
    w = mx.nd.zeros((1,))
    updater = mx.optimizer.get_updater(opt)
    seen = []
    for _ in range(5):
        updater(0, mx.nd.ones((1,)), w)
        seen.append(opt.learning_rate)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert w.asnumpy()[0] == pytest.approx(-(1 + 1 + 0.5 + 0.5 + 0.25))
