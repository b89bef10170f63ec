"""hybridnet against MXNet 1.9.1 on the core tensor operators.

``tests/fixtures/ops_core.npz``/``.json`` hold, for a representative call of every core operator
(unary, binary, broadcast, scalar, add_n, reductions, shape, indexing, sorting, linear
algebra), MXNet's inputs, outputs and input gradients for given head gradients; they were made
by ``tests/fixtures/gen_ops_core.py`` with real MXNet. Here every call is replayed on hybridnet:
same output shapes and dtypes, same values, same gradients.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.test_utils import assert_almost_equal

_FIXTURES = Path(__file__).parent / "fixtures"
_INDEX = json.loads((_FIXTURES / "ops_core.json").read_text())
_ARRAYS = np.load(_FIXTURES / "ops_core.npz")


def _tuples(value):
    """JSON turned the tuples of the parameters into lists; turn them back."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _resolve(path):
    obj = mx.nd
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("entry", _INDEX["cases"], ids=lambda e: e["id"])
def test_operator_matches_mxnet(entry):
    cid, rtol_atol = entry["id"], entry["tol"]
    fn = _resolve(entry["path"])
    params = _tuples(entry["params"])
    inputs = [_ARRAYS[f"{cid}/in{i}"] for i in range(entry["n_in"])]
    arrays = [mx.nd.array(a, dtype=a.dtype) for a in inputs]
    for i in entry["diff"]:
        arrays[i].attach_grad()
    with mx.autograd.record():
        outs = _as_list(fn(*arrays, **params))
    assert len(outs) == entry["n_out"], f"{cid}: {len(outs)} outputs, MXNet has {entry['n_out']}"
    for j, out in enumerate(outs):
        want = _ARRAYS[f"{cid}/out{j}"]
        assert out.shape == want.shape, f"{cid} output {j}: shape {out.shape}, MXNet {want.shape}"
        assert out.dtype == want.dtype, f"{cid} output {j}: dtype {out.dtype}, MXNet {want.dtype}"
        assert_almost_equal(out.asnumpy(), want, rtol=rtol_atol[0], atol=rtol_atol[1],
                            equal_nan=True, names=("hybridnet", "mxnet"))
    if not entry["diff"]:
        return
    heads = [mx.nd.array(_ARRAYS[f"{cid}/head{j}"], dtype=o.dtype) for j, o in enumerate(outs)]
    mx.autograd.backward(outs, heads)
    for i in entry["diff"]:
        want = _ARRAYS[f"{cid}/grad{i}"]
        assert_almost_equal(arrays[i].grad.asnumpy(), want, rtol=rtol_atol[0],
                            atol=max(rtol_atol[1], 1e-5), equal_nan=True,
                            names=(f"hybridnet grad{i}", f"mxnet grad{i}"))


@pytest.mark.parametrize("row", _INDEX["reshape_table"],
                         ids=lambda r: f"{tuple(r['data'])}-{tuple(r['shape'])}-{r['reverse']}")
def test_reshape_codes_match_mxnet(row):
    x = mx.nd.zeros(tuple(row["data"]))
    got = mx.nd.reshape(x, shape=tuple(row["shape"]), reverse=row["reverse"])
    assert got.shape == tuple(row["out"])


def test_fixtures_cover_every_core_operator_family():
    from hybridnet.ops import get_op
    names = {get_op(e["path"].split(".")[-1] if not e["path"].startswith("linalg.")
                    else "_linalg_" + e["path"].split(".")[-1]).name for e in _INDEX["cases"]}
    for op in ("broadcast_add", "_plus_scalar", "add_n", "sum", "norm", "Reshape", "Concat",
               "take", "topk", "dot", "_linalg_gemm2", "erfinv", "where", "one_hot"):
        assert op in names
    assert len(names) >= 150
