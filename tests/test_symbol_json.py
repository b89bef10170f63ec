"""MXNet's symbol JSON both ways: MXNet 1.9.1's files load and re-serialize byte for byte, fresh
graphs serialize as MXNet does, legacy 0.8 files upgrade as MXNet upgrades them, hybridnet's files
load in MXNet (checked once with the oracle, tests/fixtures/symbol/hybridnet_in_mxnet.json), and
malformed files fail with errors that name the node and the key."""
from __future__ import annotations

import glob
import json
import logging
import os
import pickle
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
SYMBOL_DIR = os.path.join(FIXTURES, "symbol")
sys.path.insert(0, FIXTURES)
import symbol_nets  # noqa: E402


def _read(name):
    with open(os.path.join(SYMBOL_DIR, name)) as f:
        return f.read()


@pytest.mark.parametrize("name", sorted(symbol_nets.NETS))
def test_mxnet_files_load_and_reserialize_identically(name):
    text = _read(f"{name}-symbol.json")
    sym = mx.sym.load(os.path.join(SYMBOL_DIR, f"{name}-symbol.json"))
    assert sym.tojson() == text
    assert mx.sym.load_json(text).tojson() == text


@pytest.mark.parametrize("name", sorted(symbol_nets.NETS))
def test_fresh_graphs_serialize_like_mxnet(name):
    with mx.name.NameManager():
        ours = json.loads(symbol_nets.NETS[name][0](mx).tojson())
    theirs = json.loads(_read(f"{name}-symbol.json"))
    # node_row_ptr too: max pooling's hidden argmax output is counted like the hidden workspace
    # output of MXNet's oneDNN build
    assert ours == theirs
    with mx.name.NameManager():
        assert symbol_nets.NETS[name][0](mx).tojson() == _read(f"{name}-symbol.json")


def _legacy(heads):
    data = json.loads(_read("legacy_0800-symbol.json"))
    data["heads"] = heads
    return json.dumps(data)


def test_legacy_file_upgrades_like_mxnet():
    upgraded = mx.sym.load_json(_legacy([[9, 0]]))
    assert upgraded.tojson() == _read("legacy_0800-upgraded.json")
    # hidden keys moved to __key__, suffix keys to the matching input, missing aux added
    attrs = upgraded.attr_dict()
    assert attrs["fc1_bias"]["__lr_mult__"] == "2.0"
    assert attrs["data"]["__ctx_group__"] == "stage1"
    assert upgraded.list_auxiliary_states() == ["bn1_moving_mean", "bn1_moving_var"]
    # argmax's pre-0.9.5 axis=-1 ("over everything") is dropped
    argmax = mx.sym.load_json(_legacy([[10, 0]]))
    assert argmax.tojson() == _read("legacy_0800-argmax-upgraded.json")
    both = mx.sym.load(os.path.join(SYMBOL_DIR, "legacy_0800-symbol.json"))
    assert both.list_outputs() == ["softmax_output", "am_output"]


def test_hybridnet_files_load_in_mxnet():
    with open(os.path.join(SYMBOL_DIR, "hybridnet_in_mxnet.json")) as f:
        report = json.load(f)
    written = sorted(os.path.basename(p) for p in
                     glob.glob(os.path.join(SYMBOL_DIR, "hybridnet_written", "*.json")))
    assert sorted(report) == written and len(written) >= 7
    for name, result in report.items():
        assert result["loads"], f"MXNet could not load {name}: {result.get('error')}"
        ours = mx.sym.load(os.path.join(SYMBOL_DIR, "hybridnet_written", name))
        assert result["list_arguments"] == ours.list_arguments()
        assert result["list_outputs"] == ours.list_outputs()
        assert result["list_auxiliary_states"] == ours.list_auxiliary_states()
        # MXNet writes its own bytes back, except for the oneDNN pooling count (see above)
        assert result["same_bytes"] == (name != "lenet-symbol.json")


def test_writer_layout_details():
    xs = [mx.sym.var(f"x{i}") for i in range(11)]
    text = mx.sym.Concat(*xs, dim=0, name="cat").tojson()
    assert '"inputs": [\n        [0, 0, 0], \n' in text          # > 10 entries: one per line
    assert '"arg_nodes": [\n    0, \n' in text
    assert text.endswith('"attrs": {"mxnet_version": ["int", 10901]}\n}')
    small = mx.sym.relu(mx.sym.var("a"), name="r").tojson()
    assert '"inputs": [[0, 0, 0]]' in small and '"arg_nodes": [0]' in small
    quoted = mx.sym.var("q", __note__='say "hi"\tback\\slash\n').tojson()
    assert json.loads(quoted)["nodes"][0]["attrs"]["__note__"] == 'say "hi"\tback\\slash\n'
    assert '\\"hi\\"\\tback\\\\slash\\n' in quoted


def test_loader_is_lenient_like_mxnet():
    lenient = {"nodes": [{"op": "null", "name": "x", "inputs": []},
                         {"op": "relu", "name": "r", "inputs": [[0, 0]]}],
               "arg_nodes": [0], "heads": [[1, 0]],
               "attrs": {"mxnet_version": ["int", 10901]}}
    sym = mx.sym.load_json(json.dumps(lenient))
    assert sym.list_outputs() == ["r_output"]
    assert json.loads(sym.tojson())["node_row_ptr"] == [0, 1, 2]


def test_newer_files_load_with_a_warning(caplog):
    data = json.loads(mx.sym.relu(mx.sym.var("x"), name="r").tojson())
    data["attrs"]["mxnet_version"] = ["int", 20000]
    with caplog.at_level(logging.WARNING, logger="hybridnet.symbol.json"):
        assert mx.sym.load_json(json.dumps(data)).name == "r"
    assert "newer" in caplog.text


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["nodes"][1].pop("op"), r"node 1: key 'op' is missing"),
    (lambda d: d["nodes"][1].__setitem__("inputs", [[5, 0, 0]]),
     r"node 1 \('r'\): key 'inputs' refers to node 5"),
    (lambda d: d["nodes"][1].__setitem__("inputs", [[0, 0, 0, 0]]),
     r"node 1 \('r'\): key 'inputs' has a malformed entry"),
    (lambda d: d["nodes"][1].__setitem__("inputs", []),
     r"node 1 \('r'\): key 'inputs' has 0 entries but relu takes 1 \(data\)"),
    (lambda d: d["nodes"][1].__setitem__("attrs", {"bogus": "1"}),
     r"node 1 \('r'\): relu: unknown parameter 'bogus'"),
    (lambda d: d["nodes"][1].__setitem__("attrs", {"x": 1}),
     r"node 1 \('r'\): key 'attrs' must be an object of strings"),
    (lambda d: d["nodes"][1].__setitem__("op", "NoSuchOp"),
     r"node 1 \('r'\) uses operator 'NoSuchOp', which hybridnet does not have"),
    (lambda d: d.__setitem__("heads", []), r"key 'heads' must be a non-empty list"),
    (lambda d: d["heads"].__setitem__(0, [1, 3, 0]), r"asks for output 3 of node 'r'"),
    (lambda d: d["attrs"].__setitem__("mxnet_version", "x"), r"mxnet_version must look like"),
])
def test_malformed_files_name_the_node_and_key(mutate, message):
    data = json.loads(mx.sym.relu(mx.sym.var("x"), name="r").tojson())
    mutate(data)
    with pytest.raises(HybridNetError, match=message):
        mx.sym.load_json(json.dumps(data))


def test_not_a_symbol_file():
    with pytest.raises(HybridNetError, match="is not valid JSON"):
        mx.sym.load_json("{nope")
    with pytest.raises(HybridNetError, match="expected a JSON object with 'nodes' and 'heads'"):
        mx.sym.load_json("[1, 2]")
    with pytest.raises(FileNotFoundError):
        mx.sym.load("/nonexistent/x-symbol.json")


def test_save_is_atomic_and_round_trips(tmp_path):
    net = symbol_nets.NETS["mlp"][0](mx)
    path = tmp_path / "net-symbol.json"
    net.save(str(path))
    assert sorted(os.listdir(tmp_path)) == ["net-symbol.json"]   # no temp file left behind
    assert mx.sym.load(str(path)).tojson() == net.tojson()
    assert pickle.loads(pickle.dumps(net)).tojson() == net.tojson()


def test_loaded_graph_runs_like_the_original():
    net = symbol_nets.NETS["mlp"][0](mx)
    loaded = mx.sym.load_json(net.tojson())
    rng = np.random.RandomState(0)
    arrays = {n: mx.nd.array(rng.standard_normal(s)) for n, s in
              zip(net.list_arguments(), net.infer_shape(data=(5, 12))[0])}
    want = net.eval(mx.cpu(), **arrays)[0].asnumpy()
    got = loaded.eval(mx.cpu(), **arrays)[0].asnumpy()
    np.testing.assert_array_equal(got, want)
