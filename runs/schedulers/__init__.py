"""Container engines ("schedulers" in Gofer's words), chosen by ``GOFER_SCHEDULER``.

Implementations are imported lazily so a machine without, say, the Nomad client configured never loads it.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from runs import sandbox
from runs.schedulers.base import Scheduler

SCHEDULERS = {
    "docker": "runs.schedulers.docker.DockerScheduler",
    "nomad": "runs.schedulers.nomad.NomadScheduler",
    "local": "runs.schedulers.local.LocalScheduler",
    "memory": "runs.schedulers.memory.MemoryScheduler",
}


@functools.cache
def get_scheduler(name: str | None = None) -> Scheduler:
    """The configured scheduler (one instance per process; implementations are thread-safe)."""
    name = name or settings.GOFER_SCHEDULER
    if name not in SCHEDULERS:
        raise ImproperlyConfigured(f"GOFER_SCHEDULER must be one of {', '.join(SCHEDULERS)}, not {name!r}")
    if name == "docker":
        sandbox.check_engine()
    if name == "local" and settings.GOFER_SANDBOX:
        raise ImproperlyConfigured("the local scheduler runs commands on the host and is refused in sandbox mode")
    if name == "memory":
        # Tasks as threads of the worker, in a shell subset: for tests only, never for real work.
        if settings.GOFER_SANDBOX:
            raise ImproperlyConfigured("the memory scheduler is for tests and is refused in sandbox mode")
        if not settings.GOFER_DEV_SCHEDULERS:
            raise ImproperlyConfigured(
                "the memory scheduler runs tasks as threads of the worker in a shell subset, for tests: "
                "set GOFER_DEV_SCHEDULERS to use it"
            )
    return import_string(SCHEDULERS[name])()
