"""Fused RNN (rnn_relu, rnn_tanh, lstm, gru): forward vs a per-gate numpy reference, gradients of
data, parameters and states by finite differences, MXNet 1.9.1 fixtures (outputs, final states
and every gradient), the numba kernels vs their xp references, dropout between layers, LSTM
state clipping, grad_req 'add', shape/type inference, the Symbol path and bad input."""
import json
import os

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import DTypeError, ParamError, ShapeError
from hybridnet.initializer import fused_rnn_layout
from hybridnet.ops import get_op
from hybridnet.ops.kernels import rnn as rnn_kernels
from hybridnet.ops.nn.rnn import rnn_param_size
from hybridnet.ops.registry import OpContext
from hybridnet.test_utils import assert_almost_equal, check_numeric_gradient
from op_harness import OpCase, table_tests

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def rnn_ref(x, params, h0, c0=None, *, state_size, num_layers, mode, bidirectional=False,
            state_outputs=False, p=0.0, lstm_state_clip_min=None, lstm_state_clip_max=None):
    """Step by step, gate by gate, reading MXNet's layout through the initializer's piece names
    (``l0_i2h_f_weight``); float64."""
    h_, d_ = state_size, 2 if bidirectional else 1
    x, params = x.astype(np.float64), params.astype(np.float64)
    pieces = {n: params[o:o + int(np.prod(s))].reshape(s) for n, o, s in
              fused_rnn_layout(params.size, h_, num_layers, mode, bidirectional)}
    gates = {"lstm": "ifco", "gru": "rzo"}.get(mode, [""])

    def piece(direction, layer, group, gate, kind):
        return pieces[f"{direction}{layer}_{group}{'_' + gate if gate else ''}_{kind}"]
    hy, cy, layer_in = [], [], x
    for layer in range(num_layers):
        outs = []
        for d, name in enumerate("lr"[:d_]):
            h = h0[layer * d_ + d].astype(np.float64)
            c = None if c0 is None else c0[layer * d_ + d].astype(np.float64)
            ys = [None] * len(layer_in)
            for t in (range(len(layer_in)) if d == 0 else reversed(range(len(layer_in)))):
                xi = {k: layer_in[t] @ piece(name, layer, "i2h", k, "weight").T
                      + piece(name, layer, "i2h", k, "bias") for k in gates}
                hi = {k: h @ piece(name, layer, "h2h", k, "weight").T
                      + piece(name, layer, "h2h", k, "bias") for k in gates}
                if mode == "lstm":
                    i, f, o = (_sigmoid(xi[k] + hi[k]) for k in "ifo")
                    c = f * c + i * np.tanh(xi["c"] + hi["c"])
                    if lstm_state_clip_min is not None:
                        c = np.clip(c, lstm_state_clip_min, lstm_state_clip_max)
                    h = o * np.tanh(c)
                elif mode == "gru":
                    r, z = _sigmoid(xi["r"] + hi["r"]), _sigmoid(xi["z"] + hi["z"])
                    h = (1 - z) * np.tanh(xi["o"] + r * hi["o"]) + z * h
                else:
                    v = xi[""] + hi[""]
                    h = np.maximum(v, 0) if mode == "rnn_relu" else np.tanh(v)
                ys[t] = h
            outs.append(np.stack(ys))
            hy.append(h)
            cy.append(c)
        layer_in = np.concatenate(outs, axis=2)
    if not state_outputs:
        return layer_in
    return [layer_in, np.stack(hy)] + ([np.stack(cy)] if mode == "lstm" else [])


def _inputs(mode, t, n, c, h, layers, bi):
    d = 2 if bi else 1
    shapes = [(t, n, c), (rnn_param_size(mode, c, h, layers, bi),), (layers * d, n, h)]
    return shapes + ([(layers * d, n, h)] if mode == "lstm" else [])


def _init(rng, i, shape):
    # parameters small enough that tanh/sigmoid stay in their curved range
    return rng.uniform(-0.6, 0.6, shape) if i == 1 else rng.standard_normal(shape) * 0.7


def _case(mode, layers=1, bi=False, t=3, n=2, c=3, h=4, state_outputs=True, **extra):
    params = dict(state_size=h, num_layers=layers, mode=mode, bidirectional=bi,
                  state_outputs=state_outputs, **extra)
    tag = "-".join(f"{k}{v}" for k, v in extra.items())
    return OpCase("RNN", _inputs(mode, t, n, c, h, layers, bi), params, rnn_ref, init=_init,
                  rtol=1e-4, atol=1e-5, grad_rtol=1e-3, grad_atol=1e-6,
                  id=f"RNN-{mode}-L{layers}-{'bi' if bi else 'uni'}-states{state_outputs}{tag}")


CASES = [
    _case("lstm"), _case("lstm", 2, True), _case("lstm", 2, False, state_outputs=False),
    _case("gru"), _case("gru", 2, True),
    _case("rnn_tanh"), _case("rnn_tanh", 2, True, state_outputs=False),
    _case("rnn_relu", 1, True), _case("rnn_relu", 2, False),
    _case("lstm", 1, True, t=4, lstm_state_clip_min=-0.3, lstm_state_clip_max=0.25),
    _case("gru", 3, False, t=1, n=1, c=2, h=1),
]


test_forward, test_gradient, test_infer_shape = table_tests(CASES)


# ---- MXNet 1.9.1 ----------------------------------------------------------------------------------
def _fixture_cases():
    with open(os.path.join(FIXTURES, "ops_rnn.json")) as f:
        return json.load(f)["cases"]


@pytest.fixture(scope="module")
def mxnet_arrays():
    return np.load(os.path.join(FIXTURES, "ops_rnn.npz"))


@pytest.mark.parametrize("case", _fixture_cases(), ids=lambda c: c["id"])
def test_matches_mxnet(case, mxnet_arrays):
    """Outputs, final states and the gradients of data, parameters and states of MXNet 1.9.1's
    RNN on a random parameter vector in its layout."""
    cid, n_in = case["id"], 4 if case["params"]["mode"] == "lstm" else 3
    inputs = [mx.nd.array(mxnet_arrays[f"{cid}/in{i}"]) for i in range(n_in)]
    for a in inputs:
        a.attach_grad()
    with mx.autograd.record():
        outs = mx.nd.RNN(*inputs, **case["params"])
    assert len(outs) == n_in - 1
    mx.autograd.backward(outs, [mx.nd.array(mxnet_arrays[f"{cid}/head{i}"])
                                for i in range(len(outs))])
    for i, o in enumerate(outs):
        assert_almost_equal(o.asnumpy(), mxnet_arrays[f"{cid}/out{i}"], rtol=1e-4, atol=1e-5)
    for i, a in enumerate(inputs):
        assert_almost_equal(a.grad.asnumpy(), mxnet_arrays[f"{cid}/grad{i}"], rtol=1e-4,
                            atol=1e-5)


# ---- kernels: numba vs the xp reference -----------------------------------------------------------
def _forward_backward(case, arrays):
    inputs = [mx.nd.array(a, dtype=a.dtype) for a in arrays]
    for a in inputs:
        a.attach_grad()
    with mx.autograd.record():
        outs = mx.nd.RNN(*inputs, **case.params)
    outs = outs if isinstance(outs, list) else [outs]
    rng = np.random.RandomState(5)
    mx.autograd.backward(outs, [mx.nd.array(rng.standard_normal(o.shape), dtype=o.dtype)
                                for o in outs])
    return [o.asnumpy() for o in outs] + [a.grad.asnumpy() for a in inputs]


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[6], CASES[8], CASES[9]], ids=str)
def test_numba_kernels_match_reference(case, monkeypatch):
    arrays = case.arrays()
    fast = _forward_backward(case, arrays)
    monkeypatch.setattr(rnn_kernels, "_fast", lambda xp, *a: False)
    slow = _forward_backward(case, arrays)
    for f, s in zip(fast, slow):
        assert_almost_equal(f, s, rtol=1e-5, atol=1e-6)


def test_float16_runs_through_the_reference_kernels():
    case = CASES[0]
    arrays = case.arrays()
    got = mx.nd.RNN(*[mx.nd.array(a, dtype=np.float16) for a in arrays], **case.params)
    want = rnn_ref(*arrays, **case.params)
    assert got[0].dtype == np.float16
    assert_almost_equal(got[0].asnumpy().astype(np.float64), want[0], rtol=1e-2, atol=1e-2)


# ---- op-level behaviour -----------------------------------------------------------------------------
def _run_op(params, arrays, heads, req, init=None, is_train=True):
    op = get_op("RNN")
    p = op.parse_params(params)
    ctx = OpContext(np, mx.cpu(), np.random.default_rng(0))
    _, outs, _ = op.infer_shape(p, [a.shape for a in arrays])
    outputs = [np.empty(s, arrays[0].dtype) for s in outs]
    op.forward(ctx, p, arrays, [], outputs, is_train)
    grads = [None if r == "null" else g.copy() if init else np.empty_like(a)
             for r, g, a in zip(req, init or arrays, arrays)]
    op.backward(ctx, p, list(heads) + [None], arrays, outputs, [], grads, req)
    return outputs, grads


def test_grad_req_add_and_null():
    case = CASES[1]
    arrays = case.arrays()
    rng = np.random.RandomState(3)
    want = rnn_ref(*arrays, **case.params)
    heads = [rng.standard_normal(w.shape).astype(np.float32) for w in want]
    _, written = _run_op(case.params, arrays, heads, ["write"] * 4)
    init = [rng.standard_normal(a.shape).astype(np.float32) for a in arrays]
    _, added = _run_op(case.params, arrays, heads, ["add"] * 4, init=init)
    for w, a, i in zip(written, added, init):
        assert_almost_equal(a, i + w, rtol=1e-5, atol=1e-5)
    req = ["null", "write", "null", "write"]
    _, some = _run_op(case.params, arrays, heads, req)
    for k in (1, 3):
        assert_almost_equal(some[k], written[k], rtol=1e-6, atol=1e-7)
    assert some[0] is None and some[2] is None


def test_without_state_head_gradients_the_states_get_only_the_output_path():
    case = CASES[0]
    arrays = case.arrays()
    want = rnn_ref(*arrays, **case.params)
    head = np.ones(want[0].shape, np.float32)
    _, with_none = _run_op(case.params, arrays, [head, None, None], ["write"] * 4)
    zeros = [np.zeros(w.shape, np.float32) for w in want[1:]]
    _, with_zeros = _run_op(case.params, arrays, [head] + zeros, ["write"] * 4)
    for a, b in zip(with_none, with_zeros):
        assert_almost_equal(a, b, rtol=1e-6, atol=1e-7)


def test_dropout_between_layers_is_seeded_and_training_only():
    case = _case("lstm", 3, True, t=4, n=5, c=3, h=6, p=0.5)
    plain = dict(case.params, p=0.0)
    arrays = [mx.nd.array(a) for a in case.arrays()]
    no_drop = mx.nd.RNN(*arrays, **plain)[0].asnumpy()
    assert_almost_equal(mx.nd.RNN(*arrays, **case.params)[0].asnumpy(), no_drop)  # inference
    runs = []
    for _ in range(2):
        mx.random.seed(7)
        with mx.autograd.train_mode():
            runs.append(mx.nd.RNN(*arrays, **case.params)[0].asnumpy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], no_drop)

    def seeded(*xs):
        mx.random.seed(11)
        with mx.autograd.train_mode():     # finite differences run outside record()
            return mx.nd.RNN(*xs, **case.params)
    check_numeric_gradient(seeded, case.arrays(), rtol=1e-3, atol=1e-6, seed=0)


def test_lstm_state_clip_bounds_the_cell_state():
    case = CASES[9]
    arrays = [a * 3 for a in case.arrays()]
    out = mx.nd.RNN(*[mx.nd.array(a) for a in arrays], **case.params)
    cy = out[2].asnumpy()
    assert cy.min() >= -0.3 - 1e-7 and cy.max() <= 0.25 + 1e-7
    assert np.isclose(cy, -0.3).any() or np.isclose(cy, 0.25).any()
    free = dict(case.params, lstm_state_clip_min=None, lstm_state_clip_max=None)
    free_cy = mx.nd.RNN(*[mx.nd.array(a) for a in arrays], **free)[2].asnumpy()
    assert np.abs(free_cy).max() > 0.3


def test_clip_nan_replaces_nan_cells_with_the_lower_bound():
    h, c0 = 2, np.full((1, 1, 2), np.nan, np.float32)
    args = [np.zeros((1, 1, 1), np.float32), np.zeros(rnn_param_size("lstm", 1, h, 1, False),
                                                      np.float32), np.zeros((1, 1, h), np.float32),
            c0]
    params = dict(state_size=h, num_layers=1, mode="lstm", state_outputs=True,
                  lstm_state_clip_min=-1.0, lstm_state_clip_max=1.0)
    kept = mx.nd.RNN(*[mx.nd.array(a) for a in args], **params)[2].asnumpy()
    assert np.isnan(kept).all()
    cleaned = mx.nd.RNN(*[mx.nd.array(a) for a in args], lstm_state_clip_nan=True,
                        **params)[2].asnumpy()
    assert np.array_equal(cleaned, np.full((1, 1, 2), -1.0, np.float32))


# ---- inference, the Symbol path and errors ------------------------------------------------------
def test_symbol_infers_parameters_and_states_and_names_outputs_like_mxnet():
    sym = mx.sym.RNN(state_size=6, num_layers=2, mode="lstm", bidirectional=True,
                     state_outputs=True, name="rnn0")
    assert sym.list_arguments() == ["rnn0_data", "rnn0_parameters", "rnn0_state",
                                    "rnn0_state_cell"]
    assert sym.list_outputs() == ["rnn0_output", "rnn0_state_output", "rnn0_statecell_output"]
    args, outs, _ = sym.infer_shape(rnn0_data=(5, 3, 4))
    size = rnn_param_size("lstm", 4, 6, 2, True)
    assert size == 2 * 4 * 6 * (4 + 6 + 2) + 2 * 4 * 6 * (12 + 6 + 2)
    assert args == [(5, 3, 4), (size,), (4, 3, 6), (4, 3, 6)]
    assert outs == [(5, 3, 12), (4, 3, 6), (4, 3, 6)]
    gru = mx.sym.RNN(state_size=4, num_layers=1, mode="gru", name="g")
    assert gru.list_arguments() == ["g_data", "g_parameters", "g_state"]
    assert gru.list_outputs() == ["g_output"]


def test_simple_bind_trains_like_eager():
    case = CASES[4]
    arrays = case.arrays()
    sym = mx.sym.RNN(mx.sym.var("data"), mx.sym.var("parameters"), mx.sym.var("state"),
                     **case.params)
    exe = sym.simple_bind(mx.cpu(), data=arrays[0].shape)
    for name, a in zip(["data", "parameters", "state"], arrays):
        exe.arg_dict[name][:] = a
    outs = exe.forward(is_train=True)
    want = rnn_ref(*arrays, **case.params)
    for o, w in zip(outs, want):
        assert_almost_equal(o.asnumpy(), w, rtol=1e-4, atol=1e-5)
    heads = [mx.nd.ones(o.shape) for o in outs]
    exe.backward(heads)
    eager = [mx.nd.array(a) for a in arrays]
    for a in eager:
        a.attach_grad()
    with mx.autograd.record():
        got = mx.nd.RNN(*eager, **case.params)
    mx.autograd.backward(got, heads)
    for name, a in zip(["data", "parameters", "state"], eager):
        assert_almost_equal(exe.grad_dict[name].asnumpy(), a.grad.asnumpy(), rtol=1e-5,
                            atol=1e-6)


def _call(shapes, **params):
    return mx.nd.RNN(*[mx.nd.zeros(s) for s in shapes], **params)


def test_wrong_parameter_size_names_the_expected_size_and_formula():
    with pytest.raises(ShapeError) as err:
        _call([(3, 2, 5), (100,), (2, 2, 4), (2, 2, 4)], state_size=4, num_layers=2,
              mode="lstm")
    size = rnn_param_size("lstm", 5, 4, 2, False)
    msg = str(err.value)
    assert "RNN" in msg and "(100,)" in msg and f"({size},)" in msg
    assert "1*4*4*(5+4+2) + 1*1*4*4*(1*4+4+2)" in msg and "input_size=5" in msg


@pytest.mark.parametrize("state, cell, bad", [
    ((1, 2, 4), None, "state"),                 # one layer's state for two layers
    ((2, 3, 4), None, "state"),                 # batch 3, data has 2
    ((2, 2, 5), None, "state"),                 # state_size 5
    ((2, 2, 4), (2, 2, 3), "state_cell"),
    ((2, 2), None, "state"),
])
def test_wrong_state_shape_is_a_shape_error(state, cell, bad):
    mode = "gru" if cell is None else "lstm"
    shapes = [(3, 2, 5), (rnn_param_size(mode, 5, 4, 2, False),), state] + \
        ([cell] if cell else [])
    with pytest.raises(ShapeError, match=f"RNN: {bad} has shape .* expected \\(2, 2, 4\\)"):
        _call(shapes, state_size=4, num_layers=2, mode=mode)


def test_data_must_be_tnc():
    with pytest.raises(ShapeError, match="data has shape \\(3, 5\\), expected 3 axes"):
        _call([(3, 5), (10,), (1, 3, 4)], state_size=4, num_layers=1, mode="rnn_tanh")


def test_mixed_dtypes_are_a_dtype_error():
    args = [mx.nd.zeros((2, 1, 3)), mx.nd.zeros((rnn_param_size("gru", 3, 2, 1, False),),
                                                dtype=np.float64), mx.nd.zeros((1, 1, 2))]
    with pytest.raises(DTypeError, match="RNN: parameters has dtype float64, expected float32"):
        mx.nd.RNN(*args, state_size=2, num_layers=1, mode="gru")


@pytest.mark.parametrize("params, match", [
    (dict(projection_size=2), "projection_size is not supported"),
    (dict(use_sequence_length=True), "use_sequence_length=True is not supported"),
    (dict(p=1.0), "expected a dropout probability in \\[0, 1\\)"),
    (dict(p=-0.1), "expected a dropout probability"),
    (dict(state_size=0), "state_size=0 must be positive"),
    (dict(num_layers=0), "num_layers=0 must be positive"),
    (dict(lstm_state_clip_min=1.0), "must be set together"),
    (dict(lstm_state_clip_min=1.0, lstm_state_clip_max=0.5), "is above lstm_state_clip_max"),
    (dict(mode="gru", lstm_state_clip_min=-1, lstm_state_clip_max=1), "apply to mode='lstm'"),
    (dict(mode="transformer"), "expected one of rnn_relu, rnn_tanh, lstm, gru"),
])
def test_bad_parameters(params, match):
    full = dict(dict(state_size=4, num_layers=1, mode="lstm"), **params)
    shapes = [(3, 2, 5), (rnn_param_size("lstm", 5, 4, 1, False),), (1, 2, 4), (1, 2, 4)]
    if full["mode"] == "gru":
        shapes = [(3, 2, 5), (rnn_param_size("gru", 5, 4, 1, False),), (1, 2, 4)]
    with pytest.raises(ParamError, match=match):
        _call(shapes, **full)


# ---- threads: unidirectional stacks as a layer pipeline, bidirectional layers by direction ------
@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("p", [0.0, 0.4])
def test_pipelined_layers_match_the_sequential_run(mode, p, monkeypatch):
    from hybridnet.ops.nn import rnn as rnn_op
    case = _case(mode, 3, False, t=5, n=2, c=3, h=4, p=p)
    arrays = case.arrays()

    def run(chunk_rows):
        monkeypatch.setattr(rnn_op, "_CHUNK_ROWS", chunk_rows)
        mx.random.seed(3)
        with mx.autograd.train_mode():
            return _forward_backward(case, arrays)
    pipelined, sequential = run(4), run(10 ** 6)     # chunks of 2 steps / one chunk
    for a, b in zip(pipelined, sequential):
        assert_almost_equal(a, b, rtol=1e-6, atol=1e-7)
    if p == 0:
        want = rnn_ref(*arrays, **case.params)
        for got, w in zip(pipelined, want):
            assert_almost_equal(got, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("step_fn, thread, bi", [("vanilla_forward_step", "RNN layer 1", False),
                                                 ("vanilla_backward_step", "RNN layer 0", False),
                                                 ("vanilla_forward_step", "RNN direction 1", True),
                                                 ("vanilla_backward_step", "RNN direction 1",
                                                  True)])
def test_an_error_in_a_layer_or_direction_thread_is_raised_in_the_caller(step_fn, thread, bi,
                                                                         monkeypatch):
    import threading
    from hybridnet.ops.nn import rnn as rnn_op
    monkeypatch.setattr(rnn_op, "_CHUNK_ROWS", 2)
    original = getattr(rnn_kernels, step_fn)

    def failing(*args):
        if threading.current_thread().name == thread:
            raise FloatingPointError("injected failure")
        return original(*args)
    monkeypatch.setattr(rnn_kernels, step_fn, failing)
    case = _case("rnn_tanh", 2, bi, t=6, n=2)
    with pytest.raises(FloatingPointError, match="injected failure"):
        _forward_backward(case, case.arrays())


def test_loads_a_symbol_mxnet_wrote_and_infers_the_same_shapes():
    with open(os.path.join(FIXTURES, "ops_rnn.json")) as f:
        want = json.load(f)["symbol"]
    sym = mx.sym.load_json(want["json"])
    assert sym.list_arguments() == want["arguments"]
    assert sym.list_outputs() == want["outputs"]
    args, outs, _ = sym.infer_shape(rnn0_data=(3, 2, 5))
    assert [list(s) for s in args] == want["arg_shapes"]
    assert [list(s) for s in outs] == want["out_shapes"]
