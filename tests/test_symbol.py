"""The Symbol front end: construction, naming, attributes and scopes, composition, operator
overloading, introspection (against MXNet 1.9.1's answers in tests/fixtures/symbol), copies,
pickling and the ``mx.sym`` namespaces."""
from __future__ import annotations

import copy
import json
import os
import pickle
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError, ParamError, ShapeError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
sys.path.insert(0, FIXTURES)
import symbol_nets  # noqa: E402

with open(os.path.join(FIXTURES, "symbol", "symbol_meta.json")) as _f:
    META = json.load(_f)


def _fresh(make):
    with mx.name.NameManager():
        return make(mx)


# ---- introspection against MXNet ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(symbol_nets.NETS))
def test_introspection_matches_mxnet(name):
    sym = _fresh(symbol_nets.NETS[name][0])
    meta = META[name]
    assert sym.list_arguments() == meta["list_arguments"]
    assert sym.list_outputs() == meta["list_outputs"]
    assert sym.list_auxiliary_states() == meta["list_auxiliary_states"]
    assert sym.list_inputs() == meta["list_inputs"]
    assert sym.get_internals().list_outputs() == meta["internals"]
    assert sym.attr_dict() == meta["attr_dict"]
    assert sym.debug_str() == meta["debug_str"]


def test_auto_names_follow_mxnet():
    # the names MXNet 1.9.1 gives (checked with the oracle)
    with mx.name.NameManager():
        a = mx.sym.var("a")
        fc = mx.sym.FullyConnected(a, num_hidden=3)
        assert fc.name == "fullyconnected0"
        assert mx.sym.FullyConnected(a, num_hidden=3).name == "fullyconnected1"
        assert fc.list_arguments() == ["a", "fullyconnected0_weight", "fullyconnected0_bias"]
        assert [s.name for s in (a ** 2, mx.sym.pow(a, 2), mx.sym.pow(2, a),
                                 mx.sym.maximum(a, 1), mx.sym.hypot(a, a), mx.sym.pow(a, a))] == \
            ["_powerscalar0", "_powerscalar1", "_rpowerscalar0", "_maximumscalar0", "_hypot0",
             "_power0"]
        assert [s.name for s in (2 - a, 2 / a, a % 2, 2 % a, a == 1, a != a, a > a, abs(a),
                                 2 ** a, a + a, a + 2, a * a, -a)] == \
            ["_rminusscalar0", "_rdivscalar0", "_modscalar0", "_rmodscalar0", "_equal_scalar0",
             "_not_equal0", "_greater0", "abs0", "_rpower_scalar0", "_plus0", "_plusscalar0",
             "_mul0", "_mulscalar0"]
        assert mx.sym.SoftmaxOutput(fc, name="softmax").list_arguments()[-1] == "softmax_label"


def test_prefix_applies_to_generated_and_given_names_not_variables():
    with mx.name.NameManager(), mx.name.Prefix("net_"):
        data = mx.sym.var("data")
        f = mx.sym.FullyConnected(data, num_hidden=3)
        g = mx.sym.FullyConnected(data, num_hidden=3, name="named")
    assert (data.name, f.name, g.name) == ("data", "net_fullyconnected0", "net_named")
    assert g.list_arguments() == ["data", "net_named_weight", "net_named_bias"]


def test_name_manager_counts_per_thread_scope():
    with mx.name.NameManager():
        assert mx.sym.relu(mx.sym.var("x")).name == "relu0"
        with mx.name.NameManager():
            assert mx.sym.relu(mx.sym.var("x")).name == "relu0"
        assert mx.sym.relu(mx.sym.var("x")).name == "relu1"


# ---- attributes ----------------------------------------------------------------------------------
def test_attr_scope_hidden_keys_and_auto_variables():
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="dev1", lr_mult="2"):
        with mx.AttrScope(__mood__="calm"):
            fc = mx.sym.FullyConnected(data, num_hidden=4, name="fc", attr={"__mood__": "x"})
    assert fc.attr("ctx_group") == "dev1" and fc.attr("__ctx_group__") == "dev1"
    assert fc.attr("__mood__") == "x"            # explicit attr wins over the scope
    assert fc.attr("num_hidden") == "4" and fc.attr("nothing") is None
    shown = fc.list_attr()
    assert shown["lr_mult"] == shown["__lr_mult__"] == "2"
    # auto-created weight variables carry the op's attributes (parameters included)
    weight_attrs = fc.attr_dict()["fc_weight"]
    assert weight_attrs["num_hidden"] == "4" and weight_attrs["__ctx_group__"] == "dev1"
    assert "data" not in fc.attr_dict()          # the given variable was made outside the scope


def test_attr_errors_are_clear():
    with pytest.raises(ValueError, match="must be a string"):
        mx.AttrScope(lr_mult=2)
    with pytest.raises(ParamError, match=r"attribute 'mood' is not a parameter of "
                                         r"FullyConnected.*__mood__"):
        mx.sym.FullyConnected(mx.sym.var("d"), num_hidden=2, name="fc", attr={"mood": "x"})
    with pytest.raises(ValueError, match="must start and end with double underscores"):
        mx.sym.var("x", mood="x")
    with pytest.raises(ValueError, match="stype must be one of"):
        mx.sym.var("x", stype="dense")
    fc = mx.sym.FullyConnected(mx.sym.var("d"), num_hidden=2, name="fc")
    with pytest.raises(HybridNetError, match="'num_hidden' is an operator parameter"):
        fc._set_attr(num_hidden="3")
    with pytest.raises(DeprecationWarning, match="attr_dict"):
        fc.list_attr(recursive=True)


def test_variable_attributes_as_mxnet_stores_them():
    v = mx.sym.var("w", shape=(3, 4), lr_mult=2, wd_mult=0.5, dtype="float16",
                   init='["xavier", {}]', stype="row_sparse", __extra__=7)
    assert v.list_attr() == {"__shape__": "(3, 4)", "__lr_mult__": "2", "lr_mult": "2",
                             "__wd_mult__": "0.5", "wd_mult": "0.5", "__dtype__": "2",
                             "__init__": '["xavier", {}]', "__storage_type__": "1",
                             "__extra__": "7"}
    v._set_attr(lr_mult="3")
    assert v.attr("__lr_mult__") == "3"

    class Init:
        def dumps(self):
            return '["one", {}]'
    assert mx.sym.var("b", init=Init()).attr("__init__") == '["one", {}]'
    with pytest.raises(TypeError, match="must be a string"):
        mx.sym.var(3)


# ---- composition and overloading -----------------------------------------------------------------
def test_composition_replaces_free_variables_in_a_copy():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=10, name="fc")
    head = mx.sym.Activation(mx.sym.var("in"), act_type="relu", name="act")
    composed = net(data=head)
    assert composed.list_arguments() == ["in", "fc_weight", "fc_bias"]
    assert net.list_arguments() == ["data", "fc_weight", "fc_bias"]      # unchanged
    assert net(head).list_arguments() == ["in", "fc_weight", "fc_bias"]  # positional: arg order
    assert net(data=head, name="fc_new").name == "fc_new"
    with pytest.raises(ValueError, match="no free variable 'nope'"):
        net(nope=head)
    with pytest.raises(TypeError, match="single-output Symbol"):
        net(data=mx.sym.Group([head, head]))


def test_group_indexing_iteration_and_children():
    data = mx.sym.var("data")
    parts = mx.sym.split(data, num_outputs=3, name="sp")
    assert len(parts) == 3 and parts.list_outputs() == ["sp_output0", "sp_output1",
                                                        "sp_output2"]
    assert parts[1].list_outputs() == ["sp_output1"] and parts[1].name == "sp"
    assert parts["sp_output2"].list_outputs() == ["sp_output2"]
    assert parts[-1].list_outputs() == ["sp_output2"]
    assert parts[0:2].list_outputs() == ["sp_output0", "sp_output1"]
    assert [s.list_outputs()[0] for s in parts] == parts.list_outputs()
    assert parts.get_children().list_outputs() == ["data"]
    assert data.get_children() is None
    group = mx.sym.Group([parts[0], mx.sym.relu(data, name="r")])
    assert group.name is None and repr(group) == "<Symbol group [sp, r]>"
    assert repr(data) == "<Symbol data>"
    with pytest.raises(IndexError, match="out of range"):
        parts[3]
    with pytest.raises(ValueError, match="no output named 'x'"):
        parts["x"]
    with pytest.raises(ValueError, match="at least one symbol"):
        mx.sym.Group([])
    with pytest.raises(TypeError, match="item 1 is a int"):
        mx.sym.Group([data, 3])
    with pytest.raises(HybridNetError, match="input 'data' is a group of 3 outputs"):
        mx.sym.relu(parts)


def test_arithmetic_does_not_broadcast_and_evaluates():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    with pytest.raises(ShapeError, match=r"elemwise_add .*\(3,\).*does not broadcast"):
        (a + b).infer_shape(a=(2, 3), b=(3,))
    x, y = np.array([[1., 2.], [3., 4.]]), np.array([[2., 2.], [5., 1.]])
    expr = mx.sym.Group([a + b, a - b, a * b, a / b, a % b, a ** b, -a, abs(a - b),
                         1 + a, 1 - a, 2 * a, 2 / a, 5 % a, 2 ** a, a ** 2, a == b, a != b,
                         a > b, a >= b, a < b, a <= b, a == 2, mx.sym.maximum(a, b),
                         mx.sym.minimum(a, 2), mx.sym.hypot(a, b), mx.sym.pow(2, a)])
    got = [o.asnumpy() for o in expr.eval(mx.cpu(), a=mx.nd.array(x), b=mx.nd.array(y))]
    want = [x + y, x - y, x * y, x / y, np.mod(x, y), x ** y, -x, abs(x - y), 1 + x, 1 - x,
            2 * x, 2 / x, np.mod(5, x), 2 ** x, x ** 2, x == y, x != y, x > y, x >= y, x < y,
            x <= y, x == 2, np.maximum(x, y), np.minimum(x, 2), np.hypot(x, y), 2 ** x]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert mx.sym.pow(2, 3) == 8 and mx.sym.maximum(2, 3) == 3 and mx.sym.minimum(2, 3) == 2
    with pytest.raises(TypeError, match="expected Symbols or numbers"):
        mx.sym.maximum(a, "x")
    assert (a == "x") is False      # not a number: falls back to Python's comparison


def test_symbols_are_unhashable_like_mxnet():
    with pytest.raises(TypeError):
        hash(mx.sym.var("a"))


def test_operator_functions_take_inputs_and_params_positionally_or_by_name():
    x = mx.sym.var("x")
    s1 = mx.sym.sum(x, 1, name="s1")
    assert s1.attr("axis") == "1"
    s2 = mx.sym.FullyConnected(data=x, num_hidden=3, no_bias=True, name="fc")
    assert s2.list_arguments() == ["x", "fc_weight"]
    c = mx.sym.Concat(x, x, x, dim=0, name="cat")
    assert c.attr("num_args") == "3"
    with pytest.raises(TypeError, match="unknown input 'bogus'"):
        mx.sym.relu(x, bogus=x)
    with pytest.raises(ParamError, match="unknown parameter 'bogus'"):
        mx.sym.relu(x, bogus=1)
    with pytest.raises(TypeError, match="inputs must be given positionally"):
        mx.sym.Concat(a=x, dim=0)


def test_fluent_methods_and_constants():
    x = mx.sym.var("x")
    y = x.reshape((0, -1)).sum(axis=1).astype("float64")
    out = y.eval(mx.cpu(), x=mx.nd.array(np.arange(12).reshape(2, 3, 2)))[0]
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.asnumpy(), [15, 51])
    consts = mx.sym.Group([mx.sym.zeros((2, 2)), mx.sym.ones((3,), dtype="int32"),
                           mx.sym.full((2,), 3.5), mx.sym.arange(1, 7, 2, repeat=2)])
    got = [o.asnumpy() for o in consts.eval(mx.cpu())]
    np.testing.assert_array_equal(got[0], np.zeros((2, 2)))
    assert got[1].dtype == np.int32 and got[1].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(got[2], [3.5, 3.5])
    np.testing.assert_array_equal(got[3], [1, 1, 3, 3, 5, 5])


def test_eye_linspace_and_split_v2_nodes_like_mxnet():
    # node attributes and values as MXNet 1.9.1 writes and computes them
    eye = json.loads(mx.sym.eye(3, 4, 1, dtype="int32").tojson())["nodes"][0]
    assert (eye["op"], eye["name"], eye["attrs"]) == \
        ("_eye", "_eye0", {"M": "4", "N": "3", "dtype": "int32", "k": "1"})
    assert mx.sym.eye(3, 4, 1, dtype="int32").eval()[0].asnumpy().tolist() == \
        np.eye(3, 4, 1).tolist()
    lin = mx.sym.linspace(0, 1, 5, endpoint=False)
    assert json.loads(lin.tojson())["nodes"][0]["attrs"] == \
        {"dtype": "float32", "endpoint": "False", "num": "5", "start": "0", "stop": "1"}
    assert lin.eval()[0].asnumpy().tobytes().hex() == "00000000cdcc4c3ecdcccc3e9a99193fcdcc4c3f"
    assert mx.nd.linspace(0, 10, 4, dtype="int32").asnumpy().tolist() == [0, 3, 6, 10]
    parts = mx.sym.split_v2(mx.sym.var("x"), (1, 3), axis=1)
    assert parts.list_outputs() == ["_split_v20_output0", "_split_v20_output1",
                                    "_split_v20_output2"]
    assert json.loads(parts.tojson())["nodes"][1]["attrs"] == \
        {"axis": "1", "indices": "[0, 1, 3]", "sections": "0", "squeeze_axis": "False"}
    x = np.arange(10.0).reshape(2, 5)
    got = [o.asnumpy() for o in parts.eval(x=mx.nd.array(x))]
    for g, want in zip(got, np.split(x, [1, 3], axis=1)):
        np.testing.assert_array_equal(g, want)
    assert mx.sym.var("x").split_v2(2).infer_shape(x=(4, 3))[1] == [(2, 3), (2, 3)]
    with pytest.raises(TypeError, match="an int or a tuple of ints"):
        mx.sym.split_v2(mx.sym.var("x"), 1.5)


def test_namespaces():
    assert mx.sym.random.uniform is mx.sym.op._random_uniform or callable(mx.sym.random.uniform)
    assert mx.sym.random.uniform(low=0, high=1, shape=(2,)).list_outputs()[0].endswith("_output")
    assert callable(mx.sym.linalg.gemm2) and callable(mx.sym._internal._plus)
    assert mx.sym.op.FullyConnected is mx.sym.FullyConnected
    assert mx.symbol is mx.sym and mx.sym.Variable is mx.sym.var
    g = mx.sym.linalg.gemm2(mx.sym.var("A"), mx.sym.var("B"), transpose_b=True)
    assert g.infer_shape(A=(2, 3), B=(4, 3))[1] == [(2, 4)]


# ---- copies, pickling, the tape ------------------------------------------------------------------
def test_copy_is_deep_and_pickle_round_trips():
    net = _fresh(symbol_nets.NETS["mlp"][0])
    clone = copy.copy(net)
    deep = copy.deepcopy(net)
    clone._set_attr(__tag__="copy")
    assert net.attr("__tag__") is None and clone.attr("__tag__") == "copy"
    assert deep.tojson() == net.tojson()
    restored = pickle.loads(pickle.dumps(net))
    assert restored.tojson() == net.tojson()
    assert restored.__getstate__() == {"handle": net.tojson()}


def test_gradient_is_not_supported_with_a_pointer_to_executors():
    with pytest.raises(HybridNetError, match="Executor.backward"):
        mx.sym.var("x").gradient(["x"])


def test_get_symbol_from_autograd_tape_names_like_mxnet():
    x = mx.nd.ones((2, 3))
    x.attach_grad()
    w = mx.nd.ones((4, 3))
    w.attach_grad()
    c = mx.nd.ones((2, 4))
    with mx.autograd.record():
        y = mx.nd.FullyConnected(x, w, num_hidden=4, no_bias=True)
        z = mx.nd.relu(y) + c
        bn = mx.nd.BatchNorm(z, mx.nd.ones(4), mx.nd.zeros(4), mx.nd.zeros(4), mx.nd.ones(4))
    sym = mx.autograd.get_symbol(bn)
    # MXNet 1.9.1 gives exactly these names for this program
    assert sym.list_arguments() == ["var0", "var1", "null2", "null3", "null4"]
    assert sym.list_auxiliary_states() == ["null5", "null6"]
    assert [n for n in sym.get_internals().list_outputs() if n.startswith("node")] == \
        ["node_0_output", "node_1_output", "node_2_output", "node_3_output"]
    out = sym.eval(mx.cpu(), var0=x, var1=w, null2=c, null3=mx.nd.ones(4),
                   null4=mx.nd.zeros(4), null5=mx.nd.zeros(4), null6=mx.nd.ones(4))[0]
    inference = mx.nd.BatchNorm(z, mx.nd.ones(4), mx.nd.zeros(4), mx.nd.zeros(4), mx.nd.ones(4))
    np.testing.assert_allclose(out.asnumpy(), inference.asnumpy(), rtol=1e-5)
    with pytest.raises(HybridNetError, match="computed under autograd.record"):
        mx.autograd.get_symbol(mx.nd.ones(2))
