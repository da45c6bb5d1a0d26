"""Sandbox mode's task containers (GOFER_SANDBOX=true): locked down whatever the GOFER_TASK_* settings say.

A fixed unprivileged user whatever the image says (GOFER_SANDBOX_TASK_USER, never root), every capability dropped,
``no-new-privileges``, a read-only root filesystem with size-capped tmpfs workspaces (GOFER_SANDBOX_TMPFS_MIB), a
process cap (GOFER_SANDBOX_TASK_PIDS_LIMIT, or the operator's lower one) and the engine's log bounds. CPU, memory and
the timeout are capped in the task's snapshot at admission (pipelines/sandbox.py); registry credentials are never
sent; no host network (``check_engine``); attach is refused (runs/services.py) and so are the local and memory
engines (runs/schedulers/__init__.py). The Docker and Nomad schedulers both apply the ``Hardening`` given here.
"""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from runs.schedulers.base import Hardening


def locked_down(hardening: Hardening) -> Hardening:
    """``hardening`` (the operator's defaults) with sandbox mode's forced values."""
    pids = settings.GOFER_SANDBOX_TASK_PIDS_LIMIT
    if hardening.pids_limit:
        pids = min(pids, hardening.pids_limit)
    return dataclasses.replace(
        hardening,
        user=settings.GOFER_SANDBOX_TASK_USER,
        read_only_rootfs=True,
        tmpfs_mib=settings.GOFER_SANDBOX_TMPFS_MIB,
        no_new_privileges=True,
        capabilities=(),
        pids_limit=pids,
    )


def check_engine() -> None:
    """Refuse an engine set-up that would give sandbox tasks the host: Docker's host network."""
    if settings.GOFER_SANDBOX and settings.GOFER_DOCKER_NETWORK_MODE.strip().lower() == "host":
        raise ImproperlyConfigured(
            "GOFER_DOCKER_NETWORK_MODE=host gives tasks the host's network and is refused in sandbox mode"
        )
