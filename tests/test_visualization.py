"""mx.viz: plot_network's nodes, labels, colours and edge labels, and print_summary's table,
against MXNet 1.9.1 on the same graphs (tests/fixtures/viz.json), plus real Symbols."""
import io
import json
import os

import graphviz
import pytest

import hybridnet as mx

with open(os.path.join(os.path.dirname(__file__), "fixtures", "viz.json")) as _f:
    FIXTURE = json.load(_f)
NETS = sorted(FIXTURE)


class Recorder(graphviz.Digraph):
    """Records the node/edge calls plot_network makes (as the fixture script did in MXNet)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def node(self, name, label=None, **attrs):
        self.calls.append(["node", name, label, attrs])
        super().node(name, label=label, **attrs)

    def edge(self, tail_name, head_name, label=None, **attrs):
        self.calls.append(["edge", tail_name, head_name, label, attrs])
        super().edge(tail_name, head_name, label=label, **attrs)


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setattr(graphviz, "Digraph", Recorder)


def _kwargs(net, key):
    shape = {k: tuple(v) for k, v in FIXTURE[net]["input_shape"].items()}
    return {"plain": {}, "shape": {"shape": shape},
            "dtype": {"dtype": {"data": "float32"}, "shape": shape}}[key]


@pytest.mark.parametrize("key", ["plain", "shape", "dtype"])
@pytest.mark.parametrize("net", NETS)
def test_plot_network_matches_mxnet(net, key, recording):
    sym = mx.sym.load_json(FIXTURE[net]["json"])
    dot = mx.viz.plot_network(sym, title=net, **_kwargs(net, key))
    assert isinstance(dot, graphviz.Digraph) and dot.name == net
    assert dot.calls == FIXTURE[net][key]


def test_source_text_has_mxnet_labels():
    sym = mx.sym.load_json(FIXTURE["convnet"]["json"])
    source = mx.viz.plot_network(sym, shape={"data": (4, 3, 8, 8)}).source
    assert 'label="Convolution\n3x3/1x1, 8"' in source
    assert 'label="Pooling\nmax, 2x2/2x2"' in source
    assert "conv1 -> data" in source and 'label="3x8x8"' in source
    assert "conv1_weight" not in source


@pytest.mark.parametrize("net", NETS)
def test_print_summary_matches_mxnet(net):
    sym = mx.sym.load_json(FIXTURE[net]["json"])
    out = io.StringIO()
    mx.viz.print_summary(sym, shape={k: tuple(v) for k, v in FIXTURE[net]["input_shape"].items()},
                         file=out)
    assert out.getvalue() == FIXTURE[net]["summary"]
    out = io.StringIO()
    mx.viz.print_summary(sym, line_length=80, file=out)
    assert out.getvalue() == FIXTURE[net]["summary_noshape"]


def test_print_summary_default_stdout(capsys):
    sym = mx.sym.load_json(FIXTURE["mlp"]["json"])
    mx.viz.print_summary(sym, shape={"data": (32, 784)})
    assert "Total params: 101770" in capsys.readouterr().out


def test_real_symbol_and_weights_shown(recording):
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=16, name="fc")
    net = mx.sym.Activation(net, act_type="sigmoid", name="act")
    dot = mx.viz.plot_network(net, shape={"data": (8, 5)}, hide_weights=False,
                              node_attrs={"fixedsize": "false"})
    nodes = {c[1]: c for c in dot.calls if c[0] == "node"}
    assert set(nodes) == {"data", "fc_weight", "fc_bias", "fc", "act"}
    assert nodes["fc_weight"][3]["shape"] == "oval"
    assert nodes["fc"][2] == "FullyConnected\n16" and nodes["fc"][3]["fixedsize"] == "false"
    edges = {(c[1], c[2]): c[3] for c in dot.calls if c[0] == "edge"}
    assert edges[("fc", "fc_weight")] == "5" and edges[("act", "fc")] == "16"


def test_multi_output_edges_use_their_own_output(recording):
    data = mx.sym.var("data")
    parts = mx.sym.split(data, num_outputs=2, axis=1, name="sp")
    a = mx.sym.FullyConnected(parts[0], num_hidden=3, name="fa")
    b = mx.sym.FullyConnected(mx.sym.Flatten(parts[1], name="flat"), num_hidden=3, name="fb")
    dot = mx.viz.plot_network(mx.sym.Group([a, b]), shape={"data": (2, 4, 6)})
    edges = {(c[1], c[2]): c[3] for c in dot.calls if c[0] == "edge"}
    assert edges[("fa", "sp")] == "2x6" and edges[("flat", "sp")] == "2x6"
    assert edges[("fb", "flat")] == "12"


def test_custom_op_label_and_duplicate_warning(recording):
    graph = json.loads(FIXTURE["mlp"]["json"])
    graph["nodes"][-1] = dict(graph["nodes"][-1], op="Custom",
                              attrs={"op_type": "mysoftmax"})

    class FakeSym:          # only tojson() is needed without shapes
        def tojson(self):
            return json.dumps(graph)

    dot = mx.viz.plot_network(FakeSym())
    assert ["mysoftmax"] == [c[2] for c in dot.calls if c[0] == "node" and c[1] == "softmax"]
    graph["nodes"][1] = dict(graph["nodes"][1], name="data")
    with pytest.warns(RuntimeWarning, match="Repeated names: data"):
        mx.viz.plot_network(FakeSym())


def test_errors():
    with pytest.raises(TypeError, match="symbol must be a Symbol"):
        mx.viz.plot_network("not a symbol")
    with pytest.raises(TypeError, match="symbol must be a Symbol"):
        mx.viz.print_summary(42)
    assert mx.visualization.plot_network is mx.viz.plot_network
