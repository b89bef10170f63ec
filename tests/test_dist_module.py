"""``Module.fit`` across processes: 2 workers with kvstore='dist_sync' end where one process
training on the concatenated batches ends; the distributed example trains under the launcher."""
import subprocess
import sys

import numpy as np

import hybridnet as mx

from dist_helpers import FAST, REPO, Cluster, clean_env
from dist_scenarios import fit_module

sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from gen_module import inputs  # noqa: E402


def test_fit_on_two_workers_equals_one_process_on_the_concatenated_batches(tmp_path):
    with Cluster(tmp_path, 2, 2, "fit", {"epochs": 2, "batch": 20}) as job:
        job.wait(120)
        job.assert_ok()
        results = [job[f"worker{r}"].result() for r in range(2)]
    x, y, initial = inputs()
    expected = fit_module(mx, x, y, 20, "local", epochs=2)
    assert sorted(expected) == sorted(results[0])
    for name, want in expected.items():
        # the same update from the same summed gradient; only the order of the float32
        # additions inside the batch differs (2 partial sums of 10 rows vs one of 20)
        assert not np.allclose(want, initial[name])
        for result in results:
            np.testing.assert_allclose(np.array(result[name], np.float32), want, rtol=1e-5,
                                       atol=1e-6, err_msg=name)
    assert results[0] == results[1]      # every worker pulled the servers' same weights


def test_dist_train_example_learns_under_the_launcher():
    """example/dist_train.py as its docstring runs it: 2 workers, 2 servers, dist_sync."""
    fast = [x for k, v in FAST.items() for x in ("--env", f"{k}={v}")]
    proc = subprocess.run([sys.executable, "-m", "hybridnet.launch", "-n", "2", "-s", "2", *fast,
                           sys.executable, "example/dist_train.py", "--kv-store", "dist_sync",
                           "--quick"], cwd=REPO, env=clean_env(), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if "test accuracy" in line)
    assert [line.split(":")[0] for line in lines] == ["worker 0", "worker 1"], proc.stdout
    accuracies = {float(line.split()[-1]) for line in lines}
    assert len(accuracies) == 1                  # both workers hold the servers' weights
    assert accuracies.pop() >= 0.9, proc.stdout
    assert "worker 0 of 2: 718 training images" in proc.stderr
    assert "worker 1 of 2: 719 training images" in proc.stderr
