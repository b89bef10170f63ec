"""MXNet's role-at-import: ``import hybridnet`` with DMLC_ROLE=server|scheduler runs that role.

MXNet blocks inside ``import mxnet`` in such processes and never returns to user code; we do
the same (then exit with the role's code), so a script written for MXNet's launcher, which
starts the user's command for every role, works unchanged. HYBRIDNET_KVSTORE_ROLE_AT_IMPORT=0
turns it off (the process then imports normally).
"""
from __future__ import annotations

import sys

from ... import config

__all__ = ["run_role_at_import"]


def run_role_at_import() -> None:
    role = config.get("HYBRIDNET_ROLE").strip().lower()
    if role not in ("server", "scheduler") or not config.get("HYBRIDNET_KVSTORE_ROLE_AT_IMPORT"):
        return
    from . import run_role
    sys.exit(run_role(role))
