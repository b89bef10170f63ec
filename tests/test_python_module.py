"""PythonModule / PythonLossModule: a Python loss head chained after a Module trains exactly
like the same network with SoftmaxOutput; a custom PythonModule subclass; the state machine
and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError
from hybridnet.module import ModuleStateError
from hybridnet.test_utils import assert_almost_equal

BATCH, CLASSES = 8, 3


def scores_net():
    return mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=CLASSES, name="fc")


def softmax_ce_grad(scores, labels):
    """d(cross-entropy of softmax)/d scores, as numpy: softmax(s) - onehot(y)."""
    s = scores.asnumpy()
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(p)), labels.asnumpy().astype(int)] -= 1
    return p


def toy_batches(n=5, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.randn(CLASSES, 4) * 2
    out = []
    for _ in range(n):
        y = rng.randint(0, CLASSES, BATCH)
        x = centers[y] + rng.randn(BATCH, 4) * 0.5
        out.append(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)]))
    return out


def start_params():
    rng = np.random.RandomState(2)
    return {"fc_weight": mx.nd.array(rng.uniform(-0.5, 0.5, (CLASSES, 4))),
            "fc_bias": mx.nd.array(rng.uniform(-0.5, 0.5, (CLASSES,)))}


def setup(mod):
    mod.bind(data_shapes=[("data", (BATCH, 4))], label_shapes=[("softmax_label", (BATCH,))])
    mod.init_params(arg_params=start_params())
    mod.init_optimizer(optimizer_params={"learning_rate": 0.2})
    return mod


def test_python_loss_head_trains_like_softmax_output():
    seq = mx.mod.SequentialModule()
    seq.add(mx.mod.Module(scores_net(), label_names=None))
    seq.add(mx.mod.PythonLossModule(grad_func=softmax_ce_grad), take_labels=True,
            auto_wiring=True)
    ref = mx.mod.Module(mx.sym.SoftmaxOutput(scores_net(), name="softmax"))
    setup(seq), setup(ref)
    assert seq.output_shapes == [("pyloss_output", (BATCH, CLASSES))]
    for batch in toy_batches():
        for mod in (seq, ref):
            mod.forward_backward(batch)
            mod.update()
    for name, value in ref.get_params()[0].items():
        assert_almost_equal(seq.get_params()[0][name], value, rtol=1e-5, atol=1e-6)
    metric = mx.metric.create("acc")
    test = toy_batches(1, seed=5)[0]
    seq.forward(test, is_train=False)
    scores = seq.get_outputs()[0].asnumpy()
    seq.update_metric(metric, test.label)
    assert metric.num_inst == BATCH
    assert metric.get()[1] == np.mean(scores.argmax(axis=1) == test.label[0].asnumpy())


class Scale(mx.mod.PythonModule):
    """y = 3 x: a parameter-free Python module with a gradient."""

    def __init__(self):
        super().__init__(data_names=["x"], label_names=None, output_names=["scaled"])
        self._out = self._grad = None

    def _compute_output_shapes(self):
        return [("scaled", self._data_shapes[0].shape)]

    def forward(self, data_batch, is_train=None):
        self._out = data_batch.data[0] * 3

    def backward(self, out_grads=None):
        self._grad = out_grads[0] * 3

    def get_outputs(self, merge_multi_context=True):
        return [self._out]

    def get_input_grads(self, merge_multi_context=True):
        return [self._grad]


def test_python_module_in_the_middle_of_a_chain():
    """FC -> (x3 in Python) -> SoftmaxOutput: the FC's gradient is 3x that of FC ->
    SoftmaxOutput at the same (3x) scores."""
    seq = mx.mod.SequentialModule()
    seq.add(mx.mod.Module(scores_net(), label_names=None))
    seq.add(Scale(), auto_wiring=True)
    seq.add(mx.mod.Module(mx.sym.SoftmaxOutput(mx.sym.var("s"), name="softmax"),
                          data_names=["s"]), take_labels=True, auto_wiring=True)
    setup(seq)
    batch = toy_batches(1)[0]
    seq.forward_backward(batch)
    fc = seq._modules[0]
    probs = seq.get_outputs()[0].asnumpy()
    scores = fc.get_outputs()[0].asnumpy()
    e = np.exp(3 * scores - (3 * scores).max(axis=1, keepdims=True))
    assert_almost_equal(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    dscores = 3 * (probs - np.eye(CLASSES)[batch.label[0].asnumpy().astype(int)])
    grad_w = fc._exec_group.grad_arrays[0][0].asnumpy()
    assert_almost_equal(grad_w, dscores.T @ batch.data[0].asnumpy(), rtol=1e-4, atol=1e-6)
    assert seq.get_params()[0].keys() == {"fc_weight", "fc_bias"}


def test_state_machine_and_bad_input():
    loss = mx.mod.PythonLossModule(grad_func=softmax_ce_grad)
    batch = toy_batches(1)[0]
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before forward\(\)"):
        loss.forward(batch)
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before init_params\(\)"):
        loss.init_params()
    with pytest.raises(HybridNetError, match=r"data_shapes name \['x'\], the module's "
                                             r"data_names are \['data'\]"):
        loss.bind([("x", (BATCH, CLASSES))])
    with pytest.raises(HybridNetError, match="only grad_req='write'"):
        loss.bind([("data", (BATCH, CLASSES))], grad_req="add")
    loss.bind([("data", (BATCH, CLASSES))], [("softmax_label", (BATCH,))])
    loss.init_params()
    with pytest.raises(ModuleStateError, match=r"call forward\(batch, is_train=True\) first"):
        loss.backward()
    with pytest.raises(HybridNetError, match="needs the batch's labels"):
        loss.forward(mx.io.DataBatch([mx.nd.zeros((BATCH, CLASSES))]), is_train=True)
    loss.forward(mx.io.DataBatch([mx.nd.zeros((BATCH, CLASSES))], batch.label))
    with pytest.raises(HybridNetError, match="takes no out_grads"):
        loss.backward(out_grads=[mx.nd.zeros((BATCH, CLASSES))])
    loss.backward()
    assert_almost_equal(loss.get_input_grads()[0],
                        softmax_ce_grad(mx.nd.zeros((BATCH, CLASSES)), batch.label[0]))
    bad = mx.mod.PythonLossModule(grad_func=lambda s, y: np.zeros(3))
    bad.bind([("data", (BATCH, CLASSES))], [("softmax_label", (BATCH,))])
    bad.init_params()
    bad.forward(mx.io.DataBatch([mx.nd.zeros((BATCH, CLASSES))], batch.label))
    with pytest.raises(HybridNetError, match=r"grad_func returned shape \(3,\), the scores "
                                             r"have shape \(8, 3\)"):
        bad.backward()
    with pytest.raises(ValueError, match="one data and one label"):
        mx.mod.PythonLossModule(data_names=("a", "b"))
    with pytest.raises(NotImplementedError, match="_compute_output_shapes"):
        mx.mod.PythonModule(["data"], None, ["out"]).bind([("data", (2, 2))])
