"""Start distributed jobs on 127.0.0.1 for tests, each process under a hard timeout.

``Cluster`` starts a scheduler, servers (``python -m hybridnet.kvstore.dist.<role>``) and
workers running a scenario of ``dist_scenarios.py``; output goes to files (no pipe can fill
up); ``wait`` kills everything and fails if the job outlives its timeout, so a hang fails the
test instead of stalling CI. Nothing here imports MXNet.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = Path(__file__).with_name("dist_scenarios.py")

# The timeouts of DISTRIBUTED.md's tests: a dead node is noticed within T = 3 s, a missing one
# within the 10 s rendezvous timeout.
FAST = {"HYBRIDNET_KVSTORE_HEARTBEAT_INTERVAL": "0.5",
        "HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT": "3",
        "HYBRIDNET_KVSTORE_RENDEZVOUS_TIMEOUT": "10",
        "HYBRIDNET_KVSTORE_ABORT_GRACE": "0.5"}
HEARTBEAT_TIMEOUT = float(FAST["HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT"])


def load_slack() -> float:
    """Seconds a deadline assertion adds on an overloaded machine: one per runnable task per
    core beyond the first, at most 10 (0 when the machine is not overloaded). On a 2-core
    box shared by several test runs, starting and stopping Python alone can take seconds."""
    return min(10.0, max(0.0, os.getloadavg()[0] / (os.cpu_count() or 1) - 1.0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    """This environment without any distributed settings, hybridnet importable, one BLAS
    thread per process (a 2-core box runs up to 7 of them)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DMLC_", "HYBRIDNET_", "PS_", "MXNET_"))}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def job_env(workers: int, servers: int, **extra) -> dict:
    env = clean_env(DMLC_PS_ROOT_URI="127.0.0.1", DMLC_PS_ROOT_PORT=str(free_port()),
                    DMLC_NUM_WORKER=str(workers), DMLC_NUM_SERVER=str(servers),
                    HYBRIDNET_KVSTORE_SECRET=os.urandom(32).hex(),
                    HYBRIDNET_KVSTORE_JOB_ID=f"test-{os.urandom(6).hex()}", **FAST)
    env.update(extra)
    return env


class Proc:
    """One process of a test job, its output files and when it exited."""

    def __init__(self, name: str, argv: list, env: dict, folder: Path):
        self.name = name
        self.out_path, self.err_path = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self.exit_time: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def rc(self):
        return self.popen.returncode

    def poll(self) -> bool:
        if self.exit_time is None and self.popen.poll() is not None:
            self.exit_time = time.monotonic()
        return self.exit_time is not None

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def result(self):
        """The JSON a scenario printed on its ``RESULT`` line."""
        for line in reversed(self.out.splitlines()):
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise AssertionError(f"{self.name} printed no RESULT (rc={self.rc})\nstdout:\n"
                             f"{self.out[-3000:]}\nstderr:\n{self.err[-3000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass


class Cluster:
    """A scheduler, ``servers`` servers and ``workers`` workers running ``scenario``.

    ``worker_env`` maps a rank to extra environment; ``skip_workers`` leaves ranks unstarted
    (rendezvous tests); ``scheduler=False`` leaves the scheduler to ``start_scheduler()``.
    """

    def __init__(self, tmp_path: Path, workers: int, servers: int, scenario: str,
                 args: dict | None = None, env: dict | None = None,
                 worker_env: dict | None = None, skip_workers=(), server_env: dict | None = None,
                 scheduler: bool = True):
        self.env = job_env(workers, servers, **(env or {}))
        self.folder = tmp_path
        self.procs: dict = {}
        python = sys.executable
        if scheduler:
            self.start_scheduler()
        for r in range(servers):
            self._start(f"server{r}", [python, "-m", "hybridnet.kvstore.dist.server"],
                        DMLC_ROLE="server", HYBRIDNET_NODE_RANK=str(r),
                        **(server_env or {}).get(r, {}))
        for r in range(workers):
            if r in skip_workers:
                continue
            self._start(f"worker{r}", [python, str(SCENARIOS), scenario, json.dumps(args or {})],
                        DMLC_ROLE="worker", HYBRIDNET_NODE_RANK=str(r),
                        **(worker_env or {}).get(r, {}))

    def start_scheduler(self, **extra) -> None:
        self._start("scheduler", [sys.executable, "-m", "hybridnet.kvstore.dist.scheduler"],
                    DMLC_ROLE="scheduler", **extra)

    def _start(self, name: str, argv: list, **extra) -> None:
        self.procs[name] = Proc(name, argv, {**self.env, **extra}, self.folder)

    def __getitem__(self, name: str) -> Proc:
        return self.procs[name]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill_all()

    def kill_all(self) -> None:
        for p in self.procs.values():
            p.kill()
        for p in self.procs.values():
            try:
                p.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def wait(self, timeout: float, names=None) -> None:
        """Wait for ``names`` (default: all) to exit; kill all and fail after ``timeout``."""
        names = list(self.procs) if names is None else names
        deadline = time.monotonic() + timeout
        while not all(self.procs[n].poll() for n in names):
            if time.monotonic() > deadline:
                stacks = self.stacks()
                self.kill_all()
                raise AssertionError(f"job did not end within {timeout} s:\n{self.dump()}"
                                     f"\n{stacks}")
            time.sleep(0.02)
            for p in self.procs.values():
                p.poll()

    def wait_for_output(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.procs[name].out:
            if time.monotonic() > deadline or self.procs[name].poll():
                self.kill_all()
                raise AssertionError(f"{name} never printed {text!r}:\n{self.dump()}")
            time.sleep(0.02)

    def assert_ok(self) -> None:
        bad = [p for p in self.procs.values() if p.rc != 0]
        assert not bad, f"processes failed: {[p.name for p in bad]}\n{self.dump()}"

    def stacks(self) -> str:
        """The Python stacks of the live processes (py-spy, where installed): a hang's
        diagnosis."""
        if shutil.which("py-spy") is None:
            return ""
        out = []
        for p in self.procs.values():
            if p.poll():
                continue
            try:
                dump = subprocess.run(["py-spy", "dump", "--pid", str(p.pid)],
                                      capture_output=True, text=True, timeout=20).stdout
            except subprocess.TimeoutExpired:
                dump = "(py-spy timed out)"
            out.append(f"--- stacks of {p.name}\n{dump[-4000:]}")
        return "\n".join(out)

    def dump(self) -> str:
        return "\n".join(f"--- {p.name} rc={p.rc}\n{p.out[-1500:]}\n{p.err[-2500:]}"
                         for p in self.procs.values())


def wait_listening(port: int, timeout: float = 60) -> None:
    """Wait until something listens on TCP ``port`` of 127.0.0.1 (/proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while True:
        with open("/proc/net/tcp") as f:
            if any(line.split()[1] == local and line.split()[3] == "0A"
                   for line in f.readlines()[1:]):
                return
        assert time.monotonic() < deadline, f"nothing listens on port {port}"
        time.sleep(0.02)


def processes_with_env(marker: str) -> list:
    """Pids of live processes whose environment contains ``marker`` (cleanup checks)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry))
    return found
