"""mx.metric: every metric against MXNet 1.9.1 on fixed inputs (local and global statistics,
reset_local), create/register/alias, composite, custom metrics, errors."""
import json
import math
import os

import numpy as np
import pytest

import hybridnet as mx

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
INPUTS = np.load(os.path.join(FIXTURES, "metric.npz"))
with open(os.path.join(FIXTURES, "metric.json")) as _f:
    RESULTS = json.load(_f)
METRIC_CASES = [r for r in RESULTS if "steps" in r]


def batch(kind, b, as_numpy=False):
    pred = INPUTS[f"{kind}_pred{b}"]
    label = INPUTS[f"{kind}_label{b}" if kind != "loss" else f"reg_label{b}"]
    if as_numpy:
        return [label], [pred]
    return [mx.nd.array(label)], [mx.nd.array(pred)]


def assert_same(got, want):
    assert got[0] == want[0]
    if isinstance(want[1], float) and math.isnan(want[1]):
        assert math.isnan(got[1])
    else:
        assert float(got[1]) == pytest.approx(want[1], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("as_numpy", [False, True], ids=["ndarray", "numpy"])
@pytest.mark.parametrize("case", METRIC_CASES, ids=lambda c: f"{c['name']}-{c['kwargs']}-{c['kind']}")
def test_matches_mxnet(case, as_numpy):
    metric = mx.metric.create(case["name"], **case["kwargs"])
    for b, want in enumerate(case["steps"]):
        if b == 2:
            metric.reset_local()
        metric.update(*batch(case["kind"], b, as_numpy))
        assert_same(metric.get(), want["get"])
        assert_same(metric.get_global(), want["get_global"])
        assert [tuple(x) for x in want["name_value"]][0][0] == metric.get_name_value()[0][0]
    config = metric.get_config()
    assert config["metric"] == case["config"]["metric"] and config["name"] == case["config"]["name"]


def test_composite_matches_mxnet():
    want = next(r for r in RESULTS if r["name"] == "composite")
    comp = mx.metric.create(["acc", "ce", mx.metric.TopKAccuracy(top_k=2)])
    comp.update(*batch("cls", 0))
    names, values = comp.get()
    assert names == want["get"][0]
    assert values == pytest.approx(want["get"][1], rel=1e-6)
    assert [n for n, _ in comp.get_name_value()] == [n for n, _ in want["name_value"]]
    assert comp.get_metric(1).name == "cross-entropy"
    with pytest.raises(ValueError, match="Metric index 5 is out of range 0 and 3"):
        comp.get_metric(5)
    assert [m["metric"] for m in comp.get_config()["metrics"]] == \
        ["Accuracy", "CrossEntropy", "TopKAccuracy"]


def test_global_vs_local_and_reset():
    acc = mx.metric.Accuracy()
    acc.update([mx.nd.array([1, 1])], [mx.nd.array([[0, 1], [1, 0]])])
    acc.reset_local()
    assert math.isnan(acc.get()[1])
    assert acc.get_global() == ("accuracy", 0.5)
    acc.update([mx.nd.array([1])], [mx.nd.array([[0, 1]])])
    assert acc.get() == ("accuracy", 1.0)
    assert acc.get_global_name_value() == [("accuracy", 2 / 3)]
    acc.reset()
    assert math.isnan(acc.get_global()[1])


def test_accuracy_axis_and_label_predictions():
    acc = mx.metric.Accuracy(axis=0)
    acc.update([mx.nd.array([0, 1])], [mx.nd.array([[0.9, 0.2], [0.1, 0.8]])])
    assert acc.get()[1] == 1.0
    same_shape = mx.metric.Accuracy()
    same_shape.update([mx.nd.array([1, 2, 3])], [mx.nd.array([1, 2, 0])])   # already labels
    assert same_shape.get()[1] == pytest.approx(2 / 3)


def test_update_dict_picks_names():
    acc = mx.metric.Accuracy(output_names=["out1"], label_names=["lab1"])
    acc.update_dict({"lab1": mx.nd.array([1]), "lab0": mx.nd.array([0])},
                    {"out1": mx.nd.array([[0, 1]]), "out0": mx.nd.array([[1, 0]])})
    assert acc.get()[1] == 1.0
    comp = mx.metric.CompositeEvalMetric(["acc"], output_names=["out0"], label_names=["lab0"])
    comp.update_dict({"lab1": mx.nd.array([1]), "lab0": mx.nd.array([0])},
                     {"out1": mx.nd.array([[0, 1]]), "out0": mx.nd.array([[1, 0]])})
    assert comp.get() == (["accuracy"], [1.0])


def test_create_forms_and_errors():
    assert isinstance(mx.metric.create("accuracy"), mx.metric.Accuracy)
    assert isinstance(mx.metric.create("ACC"), mx.metric.Accuracy)
    m = mx.metric.MSE()
    assert mx.metric.create(m) is m
    comp = mx.metric.create(["acc", "mse"])
    assert isinstance(comp, mx.metric.CompositeEvalMetric) and len(comp.metrics) == 2
    with pytest.raises(ValueError, match=r"Cannot find metric 'bleu'; registered metrics: .*acc"):
        mx.metric.create("bleu")
    with pytest.raises(TypeError, match="expects a metric name"):
        mx.metric.create(3)
    with pytest.raises(ValueError, match="top_k > 1"):
        mx.metric.TopKAccuracy(top_k=1)
    with pytest.raises(ValueError, match="average must be 'macro' or 'micro'"):
        mx.metric.F1(average="weighted")


def test_custom_metric_and_np():
    def feval(label, pred):
        return float(np.abs(label - pred).sum()), label.size

    cm = mx.metric.create(feval)
    assert cm.name == "feval"
    cm.update([mx.nd.array([1.0, 2.0])], [mx.nd.array([1.5, 2.0])])
    assert cm.get() == ("feval", 0.25)
    lam = mx.metric.create(lambda label, pred: 0.5)
    assert lam.name == "custom(<lambda>)"
    lam.update([mx.nd.ones((2,))], [mx.nd.ones((2,))])
    assert lam.get()[1] == 0.5

    def my_acc(label, pred):
        return (pred.argmax(axis=1) == label).mean()

    npm = mx.metric.np(my_acc)
    npm.update([mx.nd.array([0, 1])], [mx.nd.array([[1, 0], [1, 0]])])
    assert npm.get() == ("my_acc", 0.5)
    with pytest.raises(NotImplementedError, match="cannot be serialized"):
        npm.get_config()
    extra = mx.metric.np(lambda label, pred: 1.0, allow_extra_outputs=True)
    extra.update([mx.nd.ones((1,))], [mx.nd.ones((1,)), mx.nd.ones((1,))])
    assert extra.num_inst == 1


def test_register_and_alias():
    @mx.metric.register
    @mx.metric.alias("my_metric_alias")
    class MyMetric(mx.metric.EvalMetric):
        def __init__(self, name="mine"):
            super().__init__(name)

        def update(self, labels, preds):
            self._add(len(preds), 1)

    m = mx.metric.create("my_metric_alias")
    m.update([0], [1, 2])
    assert m.get() == ("mine", 2.0)
    assert isinstance(mx.metric.create("mymetric"), MyMetric)
    with pytest.raises(TypeError, match="EvalMetric subclass"):
        mx.metric.register(dict)


def test_check_label_shapes():
    with pytest.raises(ValueError, match="Shape of labels 2 does not match shape of predictions 1"):
        mx.metric.check_label_shapes([1, 2], [1])
    with pytest.raises(ValueError, match=r"\(2,\) does not match shape of predictions \(3,\)"):
        mx.metric.check_label_shapes(np.zeros(2), np.zeros(3), shape=True)
    labels, preds = mx.metric.check_label_shapes(mx.nd.ones((2,)), mx.nd.ones((2,)), wrap=True)
    assert isinstance(labels, list) and isinstance(preds, list)
    acc = mx.metric.Accuracy()
    with pytest.raises(ValueError, match="Shape of labels 1 does not match"):
        acc.update([mx.nd.ones((2,))], [mx.nd.ones((2, 2)), mx.nd.ones((2, 2))])


def test_binary_metrics_reject_multiclass():
    with pytest.raises(ValueError, match="need labels 0/1"):
        mx.metric.F1().update([mx.nd.array([0, 1, 2])], [mx.nd.ones((3, 2))])


def test_perplexity_errors():
    with pytest.raises(ValueError, match="shape mismatch"):
        mx.metric.Perplexity(None).update([mx.nd.ones((3,))], [mx.nd.ones((2, 4))])


def test_str():
    acc = mx.metric.Accuracy()
    acc.update([mx.nd.array([1])], [mx.nd.array([[0, 1]])])
    assert str(acc) == "EvalMetric: {'accuracy': 1.0}"
