"""``python -m hybridnet.launch``: start a distributed job and take it down as one.

Usage (MXNet's tools/launch.py options, plus a few)::

    python -m hybridnet.launch -n WORKERS [-s SERVERS] [--launcher local|ssh|mpi]
        [-H HOSTFILE] [--sync-dst-dir DIR] [--env NAME=VALUE]... [--timeout S]
        [--port-range A-B] [--remote-exec TEMPLATE] [--max-restarts N] command ...

It starts one scheduler (``python -m hybridnet.kvstore.dist.scheduler``), SERVERS servers
(``python -m hybridnet.kvstore.dist.server``; default SERVERS = WORKERS) and WORKERS copies of
``command``, each with the DMLC_* variables and its task index as its rank
(HYBRIDNET_NODE_RANK). Each job gets a fresh 32-byte secret and job id; they reach the children
through the environment (local), stdin (ssh) or mpirun's ``-x NAME`` -- never a command line --
and are never printed.

One job, one fate: children run in their own process groups; SIGINT/SIGTERM to the launcher
reach all of them; when a child fails, the others get the heartbeat timeout (+3 s) to stop by
themselves (they do: the job aborts), then SIGTERM, then SIGKILL. The exit code is the
root-cause child's (the first to fail, not counting exit code 75 = "stopped because another node
failed"; 128+N for signal N), printed once with its role, rank and last 20 stderr lines. The
environment is never printed.

``--max-restarts N`` (torchrun-style): after a failure the whole job -- every process, with a
new secret, job id and scheduler port -- starts again, up to N times; each process reads the
attempt number in HYBRIDNET_RESTART_COUNT (0 first). Resuming from a checkpoint is the script's
part (``kv.save_optimizer_states`` and the weights, then ``kv.init`` + ``set_optimizer`` +
``load_optimizer_states`` on restart: tests/dist_scenarios.py 'restart'). A signal to the
launcher or ``--timeout`` (for all attempts together) ends the job without a restart.

``--launcher ssh``: hosts come from the hostfile (``host`` or ``host:port`` per line; servers
then workers round-robin, so the same file gives the same host -> rank map); the scheduler runs
here. Each node is started through ``--remote-exec`` (default ``ssh -o BatchMode=yes -p {port}
{host}``, host keys checked as your ssh is configured) running ``python -m hybridnet.launch
--remote-child``, which reads the environment, directory and command from stdin and kills its
command when the connection drops. Any other template, e.g. ``ip netns exec {host}``, runs the
same code path without sshd. ``--launcher mpi`` runs ``mpirun`` (Open MPI) for the workers and
the servers.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

from .kvstore.dist.errors import EXIT_ABORTED

__all__ = ["main", "Launcher", "parse_hostfile", "assign_hosts", "mpi_argv"]

_TAIL = 20


def _log(text: str) -> None:
    sys.stderr.write(f"hybridnet.launch: {text}\n")
    sys.stderr.flush()


class _Child:
    """One started process of the job and the tail of its stderr."""

    def __init__(self, role: str, rank: int, host: str, proc: subprocess.Popen):
        self.role, self.rank, self.host, self.proc = role, rank, host, proc
        self.tail = collections.deque(maxlen=_TAIL)
        self.exit_time: float | None = None
        self.code: int | None = None
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    @property
    def name(self) -> str:
        return self.role if self.role == "scheduler" else f"{self.role} {self.rank}"

    def _pump(self) -> None:
        # Tee the child's stderr to ours, keeping the last lines for the failure report.
        out = sys.stderr.buffer
        for line in iter(self.proc.stderr.readline, b""):
            self.tail.append(line.decode(errors="replace").rstrip("\n"))
            try:
                out.write(line)
                out.flush()
            except (OSError, ValueError):
                pass

    def poll(self, now: float) -> bool:
        """True once the child has exited (records when and how)."""
        if self.code is None:
            rc = self.proc.poll()
            if rc is not None:
                self.code, self.exit_time = rc, now
        return self.code is not None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None or sig == signal.SIGKILL:
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def how(self) -> str:
        if self.code is not None and self.code < 0:
            try:
                name = signal.Signals(-self.code).name
            except ValueError:
                name = "?"
            return f"was killed by signal {-self.code} ({name})"
        return f"exited with code {self.code}"

    def exit_code(self) -> int:
        return 128 - self.code if self.code < 0 else self.code


def parse_hostfile(path: str) -> list:
    """Hosts of a hostfile: ``host``, ``host:port`` or ``host slots=N`` lines; # comments."""
    hosts = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise SystemExit(f"hybridnet.launch: cannot read hostfile {path}: {err.strerror}")
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        host = line.split()[0]
        name, _, port = host.partition(":")
        if port and not port.isdigit():
            raise SystemExit(f"hybridnet.launch: {path}:{lineno}: bad port in {host!r}")
        hosts.append((name, int(port) if port else None))
    if not hosts:
        raise SystemExit(f"hybridnet.launch: hostfile {path} lists no hosts")
    return hosts


def _free_port(host: str, port_range) -> int:
    candidates = range(port_range[0], port_range[1] + 1) if port_range else [0]
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SystemExit(f"hybridnet.launch: no free port for the scheduler on {host} in "
                     f"{port_range[0]}-{port_range[1]}")


def _parse_env(items: list) -> dict:
    env = {}
    for item in items:
        sep = "=" if "=" in item else (":" if ":" in item else None)
        if sep is None:
            if item not in os.environ:
                raise SystemExit(f"hybridnet.launch: --env {item}: not set in this environment")
            env[item] = os.environ[item]
        else:
            name, _, value = item.partition(sep)
            env[name] = value
    return env


class Launcher:
    """Starts the scheduler, servers and workers of one job and supervises them."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.children: list = []
        self.interrupted: int | None = None
        self.user_env = _parse_env(args.env)
        self.server_env = _parse_env(args.env_server)
        self.worker_env = _parse_env(args.env_worker)
        timeout = self.user_env.get("HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT",
                                    os.environ.get("HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT", "15"))
        self.grace = float(timeout) + 3.0
        self.attempt = 0
        self.deadline = None

    # ---- the job's environment -----------------------------------------------------------
    def job_env(self, root_host: str, root_port: int) -> dict:
        args = self.args
        env = {"DMLC_PS_ROOT_URI": root_host, "DMLC_PS_ROOT_PORT": str(root_port),
               "DMLC_NUM_SERVER": str(args.num_servers), "DMLC_NUM_WORKER": str(args.num_workers),
               "HYBRIDNET_KVSTORE_SECRET": os.urandom(32).hex(),
               "HYBRIDNET_KVSTORE_JOB_ID": f"hn-{uuid.uuid4().hex[:16]}",
               "HYBRIDNET_RESTART_COUNT": str(self.attempt)}
        if args.port_range:
            env["HYBRIDNET_KVSTORE_PORT_RANGE"] = args.port_range
        env.update(self.user_env)
        return env

    def node_env(self, job: dict, role: str, rank: int) -> dict:
        env = dict(job, DMLC_ROLE=role)
        if role != "scheduler":
            env["HYBRIDNET_NODE_RANK"] = str(rank)
        env.update(self.server_env if role == "server" else
                   self.worker_env if role == "worker" else {})
        return env

    def node_argv(self, role: str, python: str) -> list:
        if role == "worker":
            return list(self.args.command)
        return [python, "-m", f"hybridnet.kvstore.dist.{role}"]

    # ---- starting ------------------------------------------------------------------------
    def _spawn(self, role: str, rank: int, host: str, argv: list, env: dict | None,
               stdin_data: bytes | None = None) -> None:
        try:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin_data else
                                    subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as err:
            raise SystemExit(f"hybridnet.launch: cannot start {role} {rank}: {argv[0]}: "
                             f"{err.strerror}")
        if stdin_data:
            # The environment (with the secret) travels on stdin; the pipe then stays open, and
            # its end tells the remote side that the launcher is gone.
            proc.stdin.write(stdin_data)
            proc.stdin.flush()
        self.children.append(_Child(role, rank, host, proc))

    def start_local(self) -> None:
        args = self.args
        port = _free_port("127.0.0.1", _range(args.port_range))
        job = self.job_env("127.0.0.1", port)
        base = dict(os.environ)
        self._spawn("scheduler", 0, "127.0.0.1", self.node_argv("scheduler", sys.executable),
                    {**base, **self.node_env(job, "scheduler", 0)})
        for role, count in (("server", args.num_servers), ("worker", args.num_workers)):
            for rank in range(count):
                self._spawn(role, rank, "127.0.0.1", self.node_argv(role, sys.executable),
                            {**base, **self.node_env(job, role, rank)})

    def remote_prefix(self, host: str, port: int | None) -> tuple:
        template = shlex.split(self.args.remote_exec)
        argv = [t.format(host=host, port=port or 22) for t in template]
        if port is None and "-p" in argv and "{port}" in self.args.remote_exec:
            i = argv.index("-p")        # no port given: let ssh use its configured default
            del argv[i:i + 2]
        return argv, os.path.basename(template[0]) == "ssh"

    def start_remote(self) -> None:
        args = self.args
        hosts = parse_hostfile(args.hostfile)
        root = args.scheduler_host or _route_ip(hosts[0][0])
        port = _free_port(root, _range(args.port_range))
        job = self.job_env(root, port)
        self._spawn("scheduler", 0, root, self.node_argv("scheduler", sys.executable),
                    {**os.environ, **self.node_env(job, "scheduler", 0)})
        cwd = args.sync_dst_dir or os.getcwd()
        if args.sync_dst_dir:
            self.sync_dirs(hosts, args.sync_dst_dir)
        for role, rank, host, hport in assign_hosts(hosts, args.num_servers, args.num_workers):
            prefix, via_shell = self.remote_prefix(host, hport)
            child = [args.remote_python, "-m", "hybridnet.launch", "--remote-child"]
            argv = prefix + ([shlex.join(child)] if via_shell else child)
            env = self.node_env(job, role, rank)
            env["DMLC_NODE_HOST"] = host
            spec = {"env": env, "cwd": cwd, "argv": self.node_argv(role, args.remote_python)}
            self._spawn(role, rank, host, argv, None, (json.dumps(spec) + "\n").encode())

    def sync_dirs(self, hosts: list, dst: str) -> None:
        """rsync the working directory to ``dst`` on every host (argv lists, no shell)."""
        if shutil.which("rsync") is None:
            raise SystemExit("hybridnet.launch: --sync-dst-dir needs rsync, which is not "
                             "installed here")
        for host, port in dict.fromkeys(hosts):
            prefix, via_shell = self.remote_prefix(host, port)
            if not via_shell:
                raise SystemExit("hybridnet.launch: --sync-dst-dir works with an ssh "
                                 "--remote-exec only")
            argv = ["rsync", "-az", "--delete", "-e", shlex.join(prefix[:-1]),
                    os.getcwd() + "/", f"{host}:{dst}/"]
            if subprocess.call(argv) != 0:
                raise SystemExit(f"hybridnet.launch: rsync to {host}:{dst} failed")

    def start_mpi(self) -> None:
        args = self.args
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit("hybridnet.launch: --launcher mpi needs mpirun on PATH")
        port = _free_port("0.0.0.0", _range(args.port_range))
        root = args.scheduler_host or _route_ip("8.8.8.8")
        job = self.job_env(root, port)
        self._spawn("scheduler", 0, root, self.node_argv("scheduler", sys.executable),
                    {**os.environ, **self.node_env(job, "scheduler", 0)})
        for role, count in (("server", args.num_servers), ("worker", args.num_workers)):
            # role and rank are set by --mpi-child from the MPI rank
            env = {**os.environ, **job, **(self.server_env if role == "server" else
                                           self.worker_env)}
            self._spawn(role, 0, "mpi", mpi_argv(mpirun, count, args.hostfile, sorted(
                set(job) | set(self.user_env)), role, self.node_argv(role, sys.executable)), env)

    # ---- supervising ---------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        self.interrupted = signum

    def supervise(self) -> int:
        """Wait for the job; return the launcher's exit code."""
        deadline = self.deadline
        first_failure = None
        workers_done = None
        while True:
            now = time.monotonic()
            running = [c for c in self.children if not c.poll(now)]
            if not running:
                break
            if self.interrupted is not None:
                _log(f"got signal {signal.Signals(self.interrupted).name}; stopping the job")
                self.terminate()
                return 128 + self.interrupted
            if deadline is not None and now > deadline:
                _log(f"the job exceeded --timeout {self.args.timeout:g} s; stopping it")
                self.terminate()
                return 124
            failed = [c for c in self.children if c.code not in (None, 0)]
            if failed and first_failure is None:
                first_failure = now
            if first_failure is not None and now - first_failure > self.grace:
                break
            workers = [c for c in self.children if c.role == "worker"]
            if workers_done is None and all(c.code == 0 for c in workers):
                workers_done = now
            if workers_done is not None and now - workers_done > self.grace:
                _log("every worker finished, but " + ", ".join(c.name for c in running) +
                     f" did not stop within {self.grace:.0f} s")
                self.terminate()
                return 1
            time.sleep(0.05)
        self.terminate()
        failed = [c for c in self.children if c.code not in (None, 0)]
        if not failed:
            return 0
        return self.report(failed)

    def report(self, failed: list) -> int:
        """Print the root-cause child once; return its exit code."""
        failed.sort(key=lambda c: (c.exit_time if c.exit_time is not None else float("inf")))
        causes = [c for c in failed if c.code != EXIT_ABORTED] or failed
        cause = causes[0]
        cause.reader.join(1.0)
        others = len(self.children) - 1
        _log(f"{cause.name} (pid {cause.proc.pid}, host {cause.host}) {cause.how()} -- the "
             f"first failure of the job; {others} other processes stopped")
        if cause.tail:
            _log(f"last {len(cause.tail)} lines of {cause.name}'s stderr:\n" +
                 "\n".join(f"  | {line}" for line in cause.tail))
        return cause.exit_code()

    def terminate(self) -> None:
        """SIGTERM every child's process group, SIGKILL what is left 2 s later."""
        alive = [c for c in self.children if c.proc.poll() is None]
        for c in alive:
            c.signal(signal.SIGTERM)
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(c.proc.poll() is None for c in alive):
            time.sleep(0.02)
        for c in self.children:
            c.signal(signal.SIGKILL)      # also reaps grandchildren left in a group
            try:
                c.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
            if c.proc.stdin:
                try:
                    c.proc.stdin.close()
                except OSError:
                    pass
        now = time.monotonic()
        for c in self.children:
            c.poll(now)

    def run(self) -> int:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        if self.args.timeout:
            self.deadline = time.monotonic() + self.args.timeout
        try:
            while True:
                self.children = []
                kind = self.args.launcher
                if kind == "local":
                    self.start_local()
                elif kind == "ssh":
                    self.start_remote()
                else:
                    self.start_mpi()
                code = self.supervise()
                if code == 0 or self.attempt >= self.args.max_restarts or \
                        self.interrupted is not None or code == 124:
                    return code
                self.attempt += 1
                _log(f"restarting the whole job (restart {self.attempt} of "
                     f"{self.args.max_restarts}) after exit code {code}")
        except BaseException:
            self.terminate()
            raise
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def assign_hosts(hosts: list, num_servers: int, num_workers: int) -> list:
    """[(role, rank, host, port)]: servers then workers round-robin over ``hosts`` (the same
    hostfile always gives the same host -> rank map)."""
    slots = [("server", r) for r in range(num_servers)] + \
            [("worker", r) for r in range(num_workers)]
    return [(role, rank, *hosts[i % len(hosts)]) for i, (role, rank) in enumerate(slots)]


def mpi_argv(mpirun: str, count: int, hostfile: str | None, env_names: list, role: str,
             command: list) -> list:
    """``mpirun`` argv for ``count`` processes of ``role``: environment passed by name
    (``-x NAME``: values never on the command line), rank from the MPI rank."""
    argv = [mpirun, "-n", str(count)]
    if hostfile:
        argv += ["--hostfile", hostfile]
    for name in env_names:
        argv += ["-x", name]
    return argv + [sys.executable, "-m", "hybridnet.launch", "--mpi-child", role, *command]


def _range(text: str | None):
    if not text:
        return None
    low, _, high = text.partition("-")
    try:
        low, high = int(low), int(high)
    except ValueError:
        raise SystemExit(f"hybridnet.launch: --port-range must be A-B, got {text!r}") from None
    if not 0 < low <= high < 65536:
        raise SystemExit(f"hybridnet.launch: bad --port-range {text!r}")
    return (low, high)


def _route_ip(host: str) -> str:
    try:
        target = socket.gethostbyname(host)
    except OSError:
        raise SystemExit(f"hybridnet.launch: cannot resolve host {host!r}") from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((target, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


# ---- the far side of ssh / remote-exec and of mpirun -------------------------------------------
def remote_child() -> int:
    """Read {env, cwd, argv} from stdin, run argv, kill it when stdin closes; return its code."""
    # Raw reads of fd 0: Python's buffered stdin would be locked by the watcher thread below
    # when the interpreter shuts down.
    line = b""
    while not line.endswith(b"\n") and len(line) < (1 << 20):
        chunk = os.read(0, 1)
        if not chunk:
            break
        line += chunk
    try:
        spec = json.loads(line)
        env, cwd, argv = dict(spec["env"]), spec["cwd"], list(spec["argv"])
    except (ValueError, KeyError, TypeError):
        _log("--remote-child expects one JSON line {env, cwd, argv} on stdin")
        return 2
    proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd,
                            stdin=subprocess.DEVNULL, start_new_session=True)

    def watch_stdin():
        while os.read(0, 4096):
            pass
        if proc.poll() is None:          # the launcher (or the ssh connection) is gone
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(2.0)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    threading.Thread(target=watch_stdin, daemon=True).start()

    def forward(signum, frame):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # nothing of the job outlives it
    except ProcessLookupError:
        pass
    return 128 - code if code < 0 else code


def mpi_child(role: str, command: list) -> int:
    """Run ``command`` as ``role`` with the rank MPI gave this process."""
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if name in os.environ:
            rank = os.environ[name]
            break
    else:
        _log("--mpi-child: no MPI rank in the environment (OMPI_COMM_WORLD_RANK, PMI_RANK)")
        return 2
    env = {**os.environ, "DMLC_ROLE": role, "HYBRIDNET_NODE_RANK": rank}
    os.execvpe(command[0], command, env)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hybridnet.launch",
        description="Launch a distributed hybridnet (MXNet-compatible) job.")
    p.add_argument("-n", "--num-workers", type=int, required=True, help="number of workers")
    p.add_argument("-s", "--num-servers", type=int, help="number of servers (default: -n)")
    p.add_argument("--launcher", choices=["local", "ssh", "mpi"], default="local")
    p.add_argument("-H", "--hostfile", help="hosts for ssh/mpi: 'host' or 'host:port' lines")
    p.add_argument("--sync-dst-dir", help="rsync the working directory there on every host "
                                          "(ssh) and run from it")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="set NAME for every node (NAME alone: pass this environment's value)")
    p.add_argument("--env-server", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--env-worker", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--timeout", type=float, default=0, help="stop the job after S seconds")
    p.add_argument("--port-range", help="A-B: every listening port of the job in [A, B]")
    p.add_argument("--remote-exec", default="ssh -o BatchMode=yes -p {port} {host}",
                   help="how to run a command on a host; {host} and {port} are filled in")
    p.add_argument("--remote-python", default="python3", help="python on the remote hosts")
    p.add_argument("--scheduler-host", help="address of this host that the nodes can reach")
    p.add_argument("--max-restarts", type=int, default=0, metavar="N",
                   help="after a failure, start the whole job again up to N times "
                        "(HYBRIDNET_RESTART_COUNT tells each process the attempt)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the worker command")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--remote-child"]:
        return remote_child()
    if argv[:1] == ["--mpi-child"] and len(argv) >= 3:
        return mpi_child(argv[1], argv[2:])
    args = build_parser().parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        build_parser().error("give the worker command, e.g. python train.py")
    if args.num_workers < 1:
        build_parser().error("-n must be >= 1")
    args.num_servers = args.num_workers if args.num_servers is None else args.num_servers
    if args.num_servers < 1:
        build_parser().error("-s must be >= 1")
    if args.max_restarts < 0:
        build_parser().error("--max-restarts must be >= 0")
    if args.launcher == "ssh" and not args.hostfile:
        build_parser().error("--launcher ssh needs -H HOSTFILE")
    return Launcher(args).run()


if __name__ == "__main__":
    sys.exit(main())
