"""mx.mon.Monitor on a real Executor: interval, pattern, sort, monitor_all, default statistic,
custom stat functions, MXNet's log line."""
import logging
import math

import numpy as np
import pytest

import hybridnet as mx


def make_exe():
    data = mx.sym.var("data")
    fc = mx.sym.FullyConnected(data, num_hidden=3, name="fc1")
    out = mx.sym.Activation(fc, act_type="relu", name="relu1")
    exe = out.simple_bind(mx.cpu(), data=(2, 4))
    exe.arg_dict["data"][:] = np.arange(8.0).reshape(2, 4)
    exe.arg_dict["fc1_weight"][:] = np.full((3, 4), 0.5)
    exe.arg_dict["fc1_bias"][:] = np.array([1.0, -100.0, 0.0])
    return exe


def run_batches(mon, exe, n):
    results = []
    for _ in range(n):
        mon.tic()
        exe.forward(is_train=True)
        exe.backward(mx.nd.ones((2, 3)))
        results.append(mon.toc())
    return results


def test_interval_pattern_and_default_stat():
    exe = make_exe()
    mon = mx.mon.Monitor(2, pattern="fc1_.*|relu1_output")
    mon.install(exe)
    results = run_batches(mon, exe, 3)
    assert results[1] == []                      # only every 2nd batch
    names = [name for _, name, _ in results[0]]
    # forward outputs, then (during backward) the gradients as MXNet names its backward
    # node's outputs, then at toc the arguments
    assert names == ["fc1_output", "relu1_output", "fc1_backward_output0",
                     "fc1_backward_output1", "fc1_backward_output2", "fc1_weight", "fc1_bias"]
    assert {step for step, _, _ in results[0]} == {1} and results[2][0][0] == 3
    stats = {name: float(text.strip()) for _, name, text in results[0]}
    fc_out = np.arange(8.0).reshape(2, 4) @ np.full((4, 3), 0.5) + [1.0, -100.0, 0.0]
    assert stats["fc1_output"] == pytest.approx(np.linalg.norm(fc_out) / math.sqrt(6), rel=1e-5)
    relu = np.maximum(fc_out, 0)
    assert stats["relu1_output"] == pytest.approx(np.linalg.norm(relu) / math.sqrt(6), rel=1e-5)
    assert stats["fc1_weight"] == pytest.approx(0.5, rel=1e-6)
    head = (fc_out > 0).astype(float)            # d relu / d fc1_output for out_grad ones
    for k, grad in enumerate([head @ np.full((3, 4), 0.5), head.T @ np.arange(8.0).reshape(2, 4),
                              head.sum(0)]):
        assert stats[f"fc1_backward_output{k}"] == pytest.approx(
            np.linalg.norm(grad) / math.sqrt(grad.size), rel=1e-5)
    assert all(text.endswith("\t") for _, _, text in results[0])


def test_sort_monitor_all_and_custom_stat():
    exe = make_exe()
    mon = mx.mon.Monitor(1, stat_func=lambda x: [x.shape[0] * mx.nd.ones((1,)),
                                                 mx.nd.zeros((2,))],
                         pattern=".*", sort=True, monitor_all=True)
    mon.install(exe)
    res = run_batches(mon, exe, 1)[0]
    names = [name for _, name, _ in res]
    assert names == sorted(names)
    assert "fc1_data" in names and "relu1_data" in names      # inputs, with monitor_all
    assert "relu1_backward_output" in names       # one input: no index, like MXNet
    text = dict((name, t) for _, name, t in res)["fc1_weight"]
    assert text == "3.0\t[0. 0.]\t"


def test_toc_print_format(caplog):
    exe = make_exe()
    mon = mx.mon.Monitor(1, pattern="fc1_bias")
    mon.install(exe)
    mon.tic()
    exe.forward()
    with caplog.at_level(logging.INFO):
        mon.toc_print()
    stat = np.linalg.norm([1.0, -100.0, 0.0]) / math.sqrt(3)
    assert caplog.messages == [f"Batch: {1:7d} {'fc1_bias':30s} {str(np.float32(stat))}\t"]


def test_inactive_toc_and_errors():
    mon = mx.mon.Monitor(3)
    assert mon.toc() == []
    with pytest.raises(TypeError, match="expects an Executor"):
        mon.install(object())
    with pytest.raises(ValueError, match="interval must be >= 1"):
        mx.mon.Monitor(0)
    assert mx.monitor.Monitor is mx.mon.Monitor
