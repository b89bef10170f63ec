"""mx.profiler: engine tasks recorded with name/device/thread/times, Chrome trace files,
MXNet-style aggregate tables and JSON, user Domain/Task/Frame/Event/Counter/Marker objects,
pause/resume, legacy functions, autostart, errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet import profiler
from hybridnet.engine import get_engine


@pytest.fixture(autouse=True)
def fresh_profiler(tmp_path):
    p = profiler._PROFILER
    saved = dict(p.config)
    profiler.set_config(filename=str(tmp_path / "profile.json"), aggregate_stats=True)
    yield tmp_path / "profile.json"
    profiler.set_state("stop")
    p.config.clear()
    p.config.update(saved)
    p.events, p.stats, p.pids = [], {}, {}
    p.install_hook()


def run_ops():
    a = mx.nd.ones((300, 300))
    b = mx.nd.ones((300, 300), ctx=mx.cpu(1))
    c = (a + 1) * 2
    d = b + 3
    c.wait_to_read()
    d.wait_to_read()
    return c, d


def test_engine_tasks_in_trace_and_table(fresh_profiler):
    profiler.set_state("run")
    assert get_engine().profiler is not None and profiler.state() == "run"
    run_ops()
    profiler.set_state("stop")
    assert get_engine().profiler is None
    profiler.dump()
    trace = json.loads(fresh_profiler.read_text())
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    processes = {e["args"]["name"]: e["pid"] for e in events if e["ph"] == "M"}
    assert {"cpu/0", "cpu/1"} <= set(processes)
    spans = [e for e in events if e["ph"] in "BE" and e["cat"] == "operator"]
    names = {e["name"] for e in spans}
    assert {"_plus_scalar", "_mul_scalar"} <= names
    plus_on_cpu1 = [e for e in spans if e["name"] == "_plus_scalar"
                    and e["pid"] == processes["cpu/1"]]
    assert len(plus_on_cpu1) == 2
    begin, end = plus_on_cpu1
    assert begin["ph"] == "B" and end["ph"] == "E" and end["ts"] >= begin["ts"]
    assert begin["tid"] == end["tid"]
    table = profiler.dumps()
    assert "Profile Statistics:" in table and "\noperator\n=================\n" in table
    row = next(line for line in table.splitlines() if line.startswith("_plus_scalar"))
    assert row[30:41].strip() == "2"                       # count column, MXNet's layout
    assert len(row) == 30 + 11 + 4 * 17


def test_executor_operators_are_timed_one_by_one(fresh_profiler):
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=4, name="fc1")
    net = mx.sym.FullyConnected(mx.sym.Activation(net, act_type="relu"), num_hidden=2, name="fc2")
    exe = mx.sym.SoftmaxOutput(net, name="sm").simple_bind(mx.cpu(), data=(3, 5))
    exe.forward(is_train=True)               # unprofiled passes record nothing
    exe.backward()
    mx.nd.waitall()
    profiler.set_state("run")
    for _ in range(2):
        exe.forward(is_train=True)
        exe.backward()
    mx.nd.waitall()
    profiler.set_state("stop")
    stats = json.loads(profiler.dumps(format="json"))["Time"]
    assert {k: v["Count"] for k, v in stats["executor"].items()} == {"executor.forward": 2,
                                                                      "executor.backward": 2}
    assert {k: v["Count"] for k, v in stats["operator"].items()} == {
        "FullyConnected": 4, "Activation": 2, "SoftmaxOutput": 2, "_backward_SoftmaxOutput": 2,
        "_backward_FullyConnected": 4, "_backward_Activation": 2}
    profiler.dump()
    spans = [e for e in json.loads(fresh_profiler.read_text())["traceEvents"]
             if e["ph"] in "BE"]
    fwd = [e for e in spans if e["name"] == "executor.forward"]
    layer = [e for e in spans if e["name"] == "FullyConnected"]
    assert fwd[0]["ts"] <= layer[0]["ts"] <= layer[1]["ts"] <= fwd[1]["ts"]   # nested in the pass


def test_dumps_json_sort_and_reset():
    profiler.set_state("run")
    for _ in range(3):
        (mx.nd.ones((10,)) + 1).wait_to_read()
    mx.nd.ones((10,)).copyto(mx.cpu(1)).wait_to_read()
    profiler.set_state("stop")
    stats = json.loads(profiler.dumps(format="json"))
    ops = stats["Time"]["operator"]
    assert ops["_plus_scalar"]["Count"] == 3
    entry = ops["_plus_scalar"]
    assert entry["Min"] <= entry["Avg"] <= entry["Max"] and stats["Unit"]["Time"] == "ms"
    table = profiler.dumps(sort_by="count", ascending=False, reset=True)
    rows = table.split("operator\n=================\n")[1].splitlines()[2:]
    counts = [int(r[30:41]) for r in rows if r.strip()]
    assert counts == sorted(counts, reverse=True) and counts[0] == 3
    assert "_plus_scalar" not in profiler.dumps()          # reset cleared them


def test_pause_resume():
    profiler.set_state("run")
    profiler.pause()
    (mx.nd.ones((4,)) * 5).wait_to_read()
    profiler.resume()
    (mx.nd.ones((4,)) - 5).wait_to_read()
    profiler.set_state("stop")
    table = profiler.dumps()
    assert "_minus_scalar" in table and "_mul_scalar" not in table


def test_user_objects(fresh_profiler):
    domain = profiler.Domain("mydomain")
    task, frame = domain.new_task("mytask"), domain.new_frame("myframe")
    counter, marker = domain.new_counter("mycounter", 5), domain.new_marker("mymarker")
    event = profiler.Event("myevent")
    task.start()
    task.stop()                                 # not running: nothing recorded
    profiler.set_state("run")
    task.start()
    task.stop()
    with frame:
        pass
    event.start()
    event.stop()
    counter += 2
    counter -= 1
    counter.set_value(10)
    marker.mark("global")
    profiler.set_state("stop")
    profiler.dump(finished=True)
    events = json.loads(fresh_profiler.read_text())["traceEvents"]
    by_name = {}
    for e in events:
        by_name.setdefault(e["name"], []).append(e)
    assert [e["ph"] for e in by_name["mytask"]] == ["B", "E"]
    assert by_name["mytask"][0]["cat"] == "mydomain"
    assert by_name["myframe"][0]["cat"] == "mydomain,frame"
    assert by_name["myevent"][0]["cat"] == "event"
    assert [e["args"]["mycounter"] for e in by_name["mycounter"]] == [7, 6, 10]
    assert by_name["mymarker"][0]["ph"] == "i" and by_name["mymarker"][0]["s"] == "g"
    table = profiler.dumps()
    assert "mydomain\n" in table and "mytask" in table and "myevent" in table
    assert str(domain) == "mydomain" and str(task) == "mytask"
    profiler.dump()                             # finished=True cleared the spans
    names = {e["name"] for e in json.loads(fresh_profiler.read_text())["traceEvents"]}
    assert names == {"process_name"}


def test_legacy_functions(fresh_profiler):
    with pytest.warns(DeprecationWarning, match="set_config"):
        profiler.profiler_set_config(mode="all", filename=str(fresh_profiler))
    assert profiler._PROFILER.config["profile_all"]
    with pytest.warns(DeprecationWarning, match="set_state"):
        profiler.profiler_set_state("run")
    (mx.nd.ones((2,)) + 1).wait_to_read()
    with pytest.warns(DeprecationWarning, match="set_state"):
        profiler.profiler_set_state("stop")
    with pytest.warns(DeprecationWarning, match="dump"):
        profiler.dump_profile()
    assert os.path.exists(fresh_profiler)


def test_errors():
    with pytest.raises(ValueError, match="unknown option.*profile_gpu"):
        profiler.set_config(profile_gpu=True)
    with pytest.raises(ValueError, match="'run' or 'stop'"):
        profiler.set_state("go")
    with pytest.raises(mx.MXNetError, match="profiling the KVStore servers is not supported"):
        profiler.set_state("run", profile_process="server")
    with pytest.raises(ValueError, match="format must be"):
        profiler.dumps(format="csv")
    with pytest.raises(ValueError, match="sort_by must be one of"):
        profiler.dumps(sort_by="median")
    profiler.set_config(aggregate_stats=False)
    with pytest.raises(mx.MXNetError, match="aggregate_stats=True"):
        profiler.dumps()
    with pytest.raises(mx.MXNetError, match="stop\\(\\) without start\\(\\)"):
        profiler.Event("e").stop()
    with pytest.raises(ValueError, match="scope must be"):
        profiler.Domain("d").new_marker("m").mark("universe")


def test_autostart_from_environment():
    env = dict(os.environ, MXNET_PROFILER_AUTOSTART="1")
    out = subprocess.run([sys.executable, "-c",
                          "import hybridnet as mx; print(mx.profiler.state())"],
                         env=env, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip().splitlines()[-1] == "run", out.stderr[-2000:]


def test_results_unchanged_while_profiling():
    profiler.set_state("run")
    c, d = run_ops()
    profiler.set_state("stop")
    np.testing.assert_array_equal(c.asnumpy(), 4.0)
    np.testing.assert_array_equal(d.asnumpy(), 4.0)
