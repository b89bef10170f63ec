"""No hang, ever: when a worker, server or the scheduler dies, or a node never arrives, every
other process exits non-zero within the heartbeat (or rendezvous) timeout + 2 s, with an error
naming the dead node's role, rank and host:port."""
import re
import signal
import time

import pytest

from dist_helpers import HEARTBEAT_TIMEOUT as T
from dist_helpers import Cluster, free_port, load_slack, wait_listening

LIMIT = T + 2.0


def _stops_naming(job, dead, t0: float, pattern: str, limit: float = LIMIT) -> None:
    job.wait(limit + 20, [name for name in job.procs if name != dead])
    limit += load_slack()
    for p in job.procs.values():
        if p.name == dead:
            continue
        assert p.rc not in (0, None), f"{p.name} exited {p.rc}\n{job.dump()}"
        assert p.exit_time - t0 <= limit, \
            f"{p.name} stopped {p.exit_time - t0:.2f} s after the failure\n{job.dump()}"
        assert re.search(pattern, p.err), f"{p.name} does not name the cause\n{job.dump()}"


def test_worker_killed_mid_training(tmp_path):
    with Cluster(tmp_path, 2, 1, "train") as job:
        job.wait_for_output("worker0", "step 5", 60)
        job["worker1"].kill(signal.SIGKILL)
        t0 = time.monotonic()
        _stops_naming(job, "worker1", t0, r"worker rank 1 at 127\.0\.0\.1:\d+ \(pid \d+")
        assert "presumed dead" in job["worker0"].err


def test_server_killed_mid_training(tmp_path):
    with Cluster(tmp_path, 2, 2, "train") as job:
        job.wait_for_output("worker0", "step 5", 60)
        job["server1"].kill(signal.SIGKILL)
        t0 = time.monotonic()
        _stops_naming(job, "server1", t0, r"server rank 1 at 127\.0\.0\.1:\d+ \(pid \d+")


def test_scheduler_killed_mid_training(tmp_path):
    with Cluster(tmp_path, 2, 1, "train") as job:
        job.wait_for_output("worker0", "step 5", 60)
        job["scheduler"].kill(signal.SIGKILL)
        t0 = time.monotonic()
        _stops_naming(job, "scheduler", t0,
                      r"scheduler at 127\.0\.0\.1:\d+ is unreachable.*presumed dead")


def _listening(job) -> float:
    """When the scheduler started listening (the rendezvous clock starts there)."""
    deadline = time.monotonic() + 60
    while "scheduler listening" not in job["scheduler"].err:
        assert time.monotonic() < deadline and not job["scheduler"].poll(), job.dump()
        time.sleep(0.01)
    return time.monotonic()


def test_rendezvous_timeout_names_the_missing_worker(tmp_path):
    # The scheduler decides: the nodes are up and calling (with a long timeout of their own)
    # before it starts, so its clock is the one that matters, even on a machine too busy to
    # start Python quickly.
    timeout = 3.0
    ports = [free_port(), free_port()]
    with Cluster(tmp_path, 2, 1, "train", skip_workers={1},
                 env={"HYBRIDNET_KVSTORE_RENDEZVOUS_TIMEOUT": "60", "HYBRIDNET_VERBOSE": "1"},
                 server_env={0: {"PORT": str(ports[0])}},
                 worker_env={0: {"PORT": str(ports[1])}}, scheduler=False) as job:
        for port in ports:
            wait_listening(port)
        job.start_scheduler(HYBRIDNET_KVSTORE_RENDEZVOUS_TIMEOUT=str(timeout))
        t0 = _listening(job)
        _stops_naming(job, None, t0, r"1 of 2 workers registered, missing worker rank 1",
                      limit=timeout + 2.0)
        assert job["scheduler"].rc == 1          # the scheduler found the cause itself


def test_a_worker_exception_stops_the_job_at_once(tmp_path):
    with Cluster(tmp_path, 2, 1, "train", {"crash_rank": 1, "crash_step": 3}) as job:
        job.wait_for_output("worker0", "step 2", 60)
        t0 = time.monotonic()
        _stops_naming(job, "worker1", t0, r"worker 1 raised RuntimeError: boom at step 3")
        job.wait(10, ["worker1"])
        assert job["worker1"].rc == 1 and "RuntimeError: boom" in job["worker1"].err


@pytest.mark.slow
def test_frozen_worker_is_declared_dead(tmp_path):
    with Cluster(tmp_path, 2, 1, "train") as job:
        job.wait_for_output("worker0", "step 5", 60)
        job["worker1"].kill(signal.SIGSTOP)
        t0 = time.monotonic()
        _stops_naming(job, "worker1", t0, r"worker rank 1 at 127\.0\.0\.1:\d+.*presumed dead")


@pytest.mark.slow
def test_stalled_round_warns_then_stops_the_job(tmp_path):
    """A live worker that stops pushing (heartbeats go on): logged after the warn limit,
    the job stops after the abort limit, naming the missing rank."""
    env = {"HYBRIDNET_KVSTORE_STALL_WARN": "2", "HYBRIDNET_KVSTORE_STALL_ABORT": "6"}
    with Cluster(tmp_path, 2, 1, "train", {"stall_rank": 1, "stall_step": 3}, env=env) as job:
        job.wait_for_output("worker0", "step 2", 60)
        t0 = time.monotonic()
        job.wait(40, ["worker0", "server0", "scheduler"])
        err = job["server0"].err
        assert re.search(r"waiting for ranks \[1\] on key 0 \(round \d+\)", err)
        assert re.search(r"waited [\d.]+ s for worker ranks \[1\]", job["worker0"].err)
        assert job["server0"].exit_time - t0 < 6 + 4
