"""FullyConnected, Convolution, Deconvolution, Pooling and UpSampling against MXNet 1.9.1:
outputs and input gradients recorded by tests/fixtures/gen_ops_conv.py (run with the oracle)
in ops_conv.npz / ops_conv.json.

Each case replays one ``nd.<op>`` call under ``autograd.record`` with MXNet's inputs and head
gradient and compares the output and every input gradient.
"""
import json
import os

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.test_utils import assert_almost_equal

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
with open(os.path.join(HERE, "ops_conv.json")) as _f:
    SPEC = json.load(_f)
ARRAYS = np.load(os.path.join(HERE, "ops_conv.npz"))
FIXTURES = SPEC["cases"]


def test_fixtures_cover_every_operator_and_pooling_mode():
    ops = {c["op"] for c in FIXTURES}
    assert ops == {"FullyConnected", "Convolution", "Deconvolution", "Pooling", "UpSampling"}
    pools = {(c["params"].get("pool_type", "max"), c["params"].get("pooling_convention",
                                                                   "valid"))
             for c in FIXTURES if c["op"] == "Pooling"}
    assert {(t, v) for t in ("max", "avg", "sum") for v in ("valid", "full")} <= pools
    assert SPEC["mxnet_version"] == "1.9.1"


@pytest.mark.parametrize("case", FIXTURES, ids=[c["id"] for c in FIXTURES])
def test_matches_mxnet(case):
    cid, tol = case["id"], {"rtol": case["rtol"], "atol": case["atol"]}
    raw = [ARRAYS[f"{cid}/in{i}"] for i in range(case["n_inputs"])]
    inputs = [mx.nd.array(a, dtype=a.dtype) for a in raw]
    for x in inputs:
        x.attach_grad()
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in case["params"].items()}
    with mx.autograd.record():
        out = getattr(mx.nd, case["op"])(*inputs, **params)
    head = ARRAYS[f"{cid}/head"]
    out.backward(mx.nd.array(head, dtype=head.dtype))
    assert_almost_equal(out.asnumpy(), ARRAYS[f"{cid}/out"],
                        names=("hybridnet out", "mxnet out"), **tol)
    for i, x in enumerate(inputs):
        assert_almost_equal(x.grad.asnumpy(), ARRAYS[f"{cid}/grad{i}"],
                            names=(f"hybridnet grad{i}", f"mxnet grad{i}"), **tol)
