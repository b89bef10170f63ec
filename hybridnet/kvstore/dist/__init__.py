"""The distributed KVStore: scheduler, servers and workers over authenticated ZeroMQ messages.

Layers, bottom up (each testable alone, as in ps-lite): ``wire`` (message format, HMAC,
replay protection) -> ``transport`` (sockets, addresses) -> ``membership`` / ``scheduler``
(rendezvous, barriers, heartbeats, stopping the job) -> ``requests`` (replies matched to
requests) -> ``server`` / ``worker`` (keys, rounds, optimizer, compression).

Processes: ``python -m hybridnet.launch -n 2 -s 2 python train.py`` starts one scheduler
(``python -m hybridnet.kvstore.dist.scheduler``), the servers (``python -m
hybridnet.kvstore.dist.server``) and the workers (the command). As in MXNet, a process whose
DMLC_ROLE is ``server`` or ``scheduler`` also runs that role inside ``import hybridnet`` and
exits with its code when the job ends (so one script works for every role, e.g. under MXNet's
own launcher); set HYBRIDNET_KVSTORE_ROLE_AT_IMPORT=0 to turn that off.
"""
from __future__ import annotations

from .errors import EXIT_ABORTED, KVStoreDistError, PeerFailure

__all__ = ["create_dist", "run_role", "KVStoreDistError", "PeerFailure", "EXIT_ABORTED"]


def create_dist(name: str):
    """The worker's distributed store for type ``name`` (one per process, as in MXNet)."""
    from .worker import KVStoreDist, current_store
    from ...base import HybridNetError
    store = current_store()
    if store is not None and not store._closed:
        if store.type != name:
            raise HybridNetError(f"this process already joined the job with a {store.type!r} "
                                 f"store; cannot create a {name!r} one too")
        return store
    return KVStoreDist(name)


def run_role(role: str) -> int:
    """Run the ``'scheduler'`` or ``'server'`` role until the job ends; return the exit code."""
    from .job import JobConfig
    from .membership import setup_logging
    job = JobConfig.from_env(role)
    setup_logging(job.verbose)
    if role == "scheduler":
        from .scheduler import Scheduler
        return Scheduler(job).run()
    from .server import KVServer
    return KVServer(job).run()
