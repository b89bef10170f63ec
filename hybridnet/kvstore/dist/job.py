"""The settings of one distributed job, read once from the environment and checked.

Every process of a job (scheduler, servers, workers) reads the same variables; the launcher
sets them (``python -m hybridnet.launch``), or a user sets them by hand as for MXNet (DMLC_*).
Errors name the variable to fix.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from ... import config
from ...base import HybridNetError
from .transport import interface_ip, resolve_host, route_ip
from .wire import Role, parse_secret

__all__ = ["JobConfig"]

_ROLES = {"scheduler": Role.SCHEDULER, "server": Role.SERVER, "worker": Role.WORKER}


@dataclass
class JobConfig:
    """What a node needs to join its job (see ``from_env``)."""
    role: Role
    root_host: str
    root_ip: str
    root_port: int
    num_servers: int
    num_workers: int
    rank: int
    host: str
    port: int
    port_range: tuple | None
    bind_all: bool
    secret: bytes
    job_id: str
    auth: str
    heartbeat_interval: float
    heartbeat_timeout: float
    rendezvous_timeout: float
    stall_warn: float
    stall_abort: float
    abort_grace: float
    bigarray_bound: int
    max_frame: int
    verbose: int

    def __repr__(self):                    # the secret never appears in logs or tracebacks
        return (f"JobConfig(role={self.role.name.lower()}, root={self.root_host}:"
                f"{self.root_port}, servers={self.num_servers}, workers={self.num_workers})")

    @classmethod
    def from_env(cls, role: str | None = None) -> "JobConfig":
        """Read and check the job settings; ``role`` overrides DMLC_ROLE."""
        role_text = (role or config.get("HYBRIDNET_ROLE")).strip().lower()
        if role_text not in _ROLES:
            raise HybridNetError(f"DMLC_ROLE must be scheduler, server or worker, got "
                                 f"{role_text!r}")
        root_host = config.get("HYBRIDNET_PS_ROOT_URI")
        root_port = config.get("HYBRIDNET_PS_ROOT_PORT")
        num_servers = config.get("HYBRIDNET_NUM_SERVER")
        num_workers = config.get("HYBRIDNET_NUM_WORKER")
        missing = [name for name, value in (("DMLC_PS_ROOT_URI", root_host),
                                            ("DMLC_PS_ROOT_PORT", root_port),
                                            ("DMLC_NUM_SERVER", num_servers),
                                            ("DMLC_NUM_WORKER", num_workers)) if not value]
        if missing:
            raise HybridNetError(
                f"a distributed KVStore needs {', '.join(missing)} (and DMLC_ROLE) in the "
                f"environment; start the job with python -m hybridnet.launch -n WORKERS -s "
                f"SERVERS python script.py")
        if num_servers < 1 or num_workers < 1:
            raise HybridNetError(f"DMLC_NUM_SERVER and DMLC_NUM_WORKER must be >= 1, got "
                                 f"{num_servers} and {num_workers}")
        root_ip = resolve_host(root_host, "scheduler host (DMLC_PS_ROOT_URI)")
        role_enum = _ROLES[role_text]
        rank = config.get("HYBRIDNET_NODE_RANK")
        size = {Role.SERVER: num_servers, Role.WORKER: num_workers}.get(role_enum, 1)
        if rank >= size:
            raise HybridNetError(f"HYBRIDNET_NODE_RANK={rank} but the job has only {size} "
                                 f"{role_text}s")
        if role_enum == Role.SCHEDULER:
            host, port = root_ip, root_port
        else:
            host, port = _own_host(root_ip), config.get("HYBRIDNET_NODE_PORT")
        secret_text = config.get("HYBRIDNET_KVSTORE_SECRET")
        if not secret_text:
            raise HybridNetError(
                "HYBRIDNET_KVSTORE_SECRET is not set: every message of a distributed job is "
                "authenticated with a per-job secret (64 hex digits, the same on every node). "
                "python -m hybridnet.launch makes one; by hand: export "
                "HYBRIDNET_KVSTORE_SECRET=$(python -c 'import os; print(os.urandom(32).hex())')")
        job_id = config.get("HYBRIDNET_KVSTORE_JOB_ID") or hashlib.sha256(
            f"{root_ip}:{root_port}".encode()).hexdigest()[:16]
        interval = config.get("HYBRIDNET_KVSTORE_HEARTBEAT_INTERVAL")
        timeout = config.get("HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT")
        if interval <= 0 or timeout / 2 <= interval:
            raise HybridNetError(f"need 0 < HYBRIDNET_KVSTORE_HEARTBEAT_INTERVAL < "
                                 f"HYBRIDNET_KVSTORE_HEARTBEAT_TIMEOUT / 2, got {interval} and "
                                 f"{timeout}")
        return cls(role=role_enum, root_host=root_host, root_ip=root_ip, root_port=root_port,
                   num_servers=num_servers, num_workers=num_workers, rank=rank, host=host,
                   port=port, port_range=config.get("HYBRIDNET_KVSTORE_PORT_RANGE"),
                   bind_all=config.get("HYBRIDNET_KVSTORE_BIND_ALL"),
                   secret=parse_secret(secret_text), job_id=job_id,
                   auth=config.get("HYBRIDNET_KVSTORE_AUTH"), heartbeat_interval=interval,
                   heartbeat_timeout=timeout,
                   rendezvous_timeout=config.get("HYBRIDNET_KVSTORE_RENDEZVOUS_TIMEOUT"),
                   stall_warn=config.get("HYBRIDNET_KVSTORE_STALL_WARN"),
                   stall_abort=config.get("HYBRIDNET_KVSTORE_STALL_ABORT"),
                   abort_grace=config.get("HYBRIDNET_KVSTORE_ABORT_GRACE"),
                   bigarray_bound=config.get("HYBRIDNET_KVSTORE_BIGARRAY_BOUND"),
                   max_frame=config.get("HYBRIDNET_KVSTORE_MAX_MESSAGE_MB") << 20,
                   verbose=config.get("HYBRIDNET_VERBOSE"))

    @property
    def pid(self) -> int:
        return os.getpid()


def _own_host(root_ip: str) -> str:
    """The IP this node binds and advertises: DMLC_NODE_HOST, else DMLC_INTERFACE's address,
    else the address the kernel routes towards the scheduler (127.0.0.1 for a local job)."""
    host = config.get("HYBRIDNET_NODE_HOST")
    if host:
        return resolve_host(host, "node host (DMLC_NODE_HOST)")
    iface = config.get("HYBRIDNET_INTERFACE")
    if iface:
        return interface_ip(iface)
    return route_ip(root_ip)
