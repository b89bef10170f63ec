"""Errors of the distributed KVStore and the exit codes its processes use."""
from __future__ import annotations

from ...base import HybridNetError

__all__ = ["KVStoreDistError", "PeerFailure", "EXIT_ABORTED", "EXIT_FAILED"]

#: exit code of a process that stopped because *another* node failed (the launcher reports
#: the node that failed first, not these)
EXIT_ABORTED = 75
#: exit code of a role process that detected a problem itself (rendezvous timeout, stall)
EXIT_FAILED = 1


class KVStoreDistError(HybridNetError, RuntimeError):
    """A distributed KVStore request failed (the message says which node refused it and why)."""


class PeerFailure(KVStoreDistError):
    """The job stopped: a node died, stalled or failed; the message names it."""
