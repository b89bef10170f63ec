"""Whole-graph shape and type inference: results against MXNet 1.9.1, backward inference,
partial shapes, hints, and the errors (node, operator, argument, both shapes, input chain)."""
from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, HybridNetError, ShapeError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path.insert(0, FIXTURES)
import symbol_nets  # noqa: E402

with open(os.path.join(FIXTURES, "symbol", "symbol_meta.json")) as _f:
    META = json.load(_f)


def _mlp():
    data = mx.sym.var("data")
    fc1 = mx.sym.FullyConnected(data, num_hidden=8, name="fc1")
    relu = mx.sym.Activation(fc1, act_type="relu", name="relu1")
    fc2 = mx.sym.FullyConnected(relu, num_hidden=4, name="fc2")
    return mx.sym.SoftmaxOutput(fc2, name="softmax")


@pytest.mark.parametrize("name", sorted(symbol_nets.NETS))
def test_infer_shape_and_type_match_mxnet(name):
    make, shapes = symbol_nets.NETS[name]
    sym = make(mx)
    meta = META[name]
    arg, out, aux = sym.infer_shape(**shapes)
    assert [list(s) for s in arg] == meta["arg_shapes"]
    assert [list(s) for s in out] == meta["out_shapes"]
    assert [list(s) for s in aux] == meta["aux_shapes"]
    arg_t, out_t, _ = sym.infer_type(**{k: "float32" for k in shapes})
    assert [np.dtype(t).name for t in arg_t] == meta["arg_types"]
    assert [np.dtype(t).name for t in out_t] == meta["out_types"]
    assert all(isinstance(t, type) and issubclass(t, np.generic) for t in arg_t)


@pytest.mark.parametrize("name", [n for n in sorted(symbol_nets.NETS)
                                  if META[n]["partial_arg_shapes"] is not None])
def test_partial_inference_agrees_with_mxnet_where_mxnet_knows(name):
    # MXNet leaves a weight unknown until the data shape is known; hybridnet also fills the
    # dimensions it can (FullyConnected's weight is (num_hidden, 0)) -- never contradicting
    sym = symbol_nets.NETS[name][0](mx)
    arg, out, _ = sym.infer_shape_partial()
    for got, want in zip(arg + out, META[name]["partial_arg_shapes"] +
                         META[name]["partial_out_shapes"]):
        if want:
            assert list(got) == want
        else:
            assert all(d >= 0 for d in got)


def test_backward_inference_fills_weights_and_labels():
    net = _mlp()
    arg, out, aux = net.infer_shape(data=(5, 12))
    assert dict(zip(net.list_arguments(), arg)) == {
        "data": (5, 12), "fc1_weight": (8, 12), "fc1_bias": (8,), "fc2_weight": (4, 8),
        "fc2_bias": (4,), "softmax_label": (5,)}
    assert out == [(5, 4)] and aux == []
    # operand to operand across nodes: c gives b (through b * c), then b gives a (a + b);
    # the first node is visited before anything is known, so this takes a second sweep
    a, b, c = mx.sym.var("a"), mx.sym.var("b"), mx.sym.var("c")
    group = mx.sym.Group([a + b, b * c])
    arg, out, _ = group.infer_shape(c=(3, 2))
    assert arg == [(3, 2)] * 3 and out == [(3, 2)] * 2


def test_partial_shapes_keep_unknown_dims_as_zero():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=10, name="fc")
    assert net.infer_shape_partial(data=(0, 5)) == ([(0, 5), (10, 5), (10,)], [(0, 10)], [])
    assert net.infer_shape_partial() == ([(), (10, 0), (10,)], [()], [])


def test_under_determined_graph_warns_naming_the_arguments():
    net = _mlp()
    with pytest.warns(UserWarning, match=r"Cannot decide shape.*\n\tdata: \(\)"):
        assert net.infer_shape() == (None, None, None)
    with pytest.warns(UserWarning, match=r"Cannot decide type.*\n\tdata: None"):
        assert net.infer_type() == (None, None, None)
    assert net.infer_type_partial()[0] == [None] * 6


def test_conflict_names_node_operator_argument_shapes_and_chain():
    net = _mlp()
    with pytest.raises(ShapeError) as info:
        net.infer_shape(data=(5, 12), fc2_weight=(4, 9))
    err = info.value
    assert err.op == "FullyConnected" and err.node == "fc2"
    text = str(err)
    assert "weight has shape (4, 9), expected (4, 8)" in text
    assert "data=(5, 8) from relu1 (Activation) <- fc1 (FullyConnected) <- data" in text
    assert "shapes given to infer_shape: data=(5, 12), fc2_weight=(4, 9)" in text
    assert isinstance(err, ValueError) and isinstance(err, HybridNetError)


def test_conflict_between_two_operators_names_the_input():
    a = mx.sym.var("a")
    b = mx.sym.var("b")
    s = mx.sym.Group([mx.sym.relu(a, name="r") + b, mx.sym.FullyConnected(b, num_hidden=3,
                                                                          name="fc")])
    with pytest.raises(ShapeError, match=r"elemwise_add '_plus\d+'.*\(2, 3\).*\(2, 4\)"):
        s.infer_shape(a=(2, 3), b=(2, 4))


def test_shape_hint_is_used_but_explicit_shapes_win():
    data = mx.sym.var("data", shape=(4, 6))
    net = mx.sym.FullyConnected(data, num_hidden=2, name="fc")
    assert net.infer_shape()[0][0] == (4, 6)
    assert net.infer_shape(data=(3, 6))[0][0] == (3, 6)
    partial_hint = mx.sym.FullyConnected(mx.sym.var("d", shape=(0, 6)), num_hidden=2)
    assert partial_hint.infer_shape_partial()[0][1] == (2, 6)


def test_dtype_hint_and_type_conflicts():
    x = mx.sym.var("x", dtype="float64")
    net = mx.sym.FullyConnected(x, num_hidden=2, name="fc")
    arg_t, out_t, _ = net.infer_type()
    assert arg_t == [np.float64] * 3 and out_t == [np.float64]
    y = mx.sym.var("y")
    with pytest.raises(DTypeError, match="elemwise_add '_plus.*float16"):
        (x + y).infer_type(x="float64", y="float16")


def test_positional_and_keyword_arguments():
    net = _mlp()
    assert net.infer_shape((5, 12))[1] == [(5, 4)]
    with pytest.raises(ValueError, match="no input named 'nope'"):
        net.infer_shape(nope=(1,))
    with pytest.raises(ValueError, match="positional values but the symbol has 6"):
        net.infer_shape(*[(1,)] * 7)
    with pytest.raises(TypeError, match="tuple of ints"):
        net.infer_shape(data=5)


def test_aux_shapes_and_hidden_outputs():
    data = mx.sym.var("data")
    bn = mx.sym.BatchNorm(data, name="bn", output_mean_var=True)
    arg, out, aux = bn.infer_shape(data=(2, 3, 4))
    assert arg == [(2, 3, 4), (3,), (3,)] and aux == [(3,), (3,)]
    assert out == [(2, 3, 4), (3,), (3,)]


def test_duplicate_variable_names_are_rejected_for_inference():
    s = mx.sym.var("x") + mx.sym.var("x")
    assert s.list_arguments() == ["x", "x"]          # allowed in a graph, as in MXNet
    with pytest.raises(HybridNetError, match="two different variables named 'x'"):
        s.infer_shape(x=(2,))


def test_deep_graph_infers_without_recursion_limits():
    x = mx.sym.var("x")
    for _ in range(3000):
        x = mx.sym.relu(x)
    assert x.infer_shape(x=(2, 2))[1] == [(2, 2)]


def test_warnings_do_not_fire_when_complete():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _mlp().infer_shape(data=(2, 3))
