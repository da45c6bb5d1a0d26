"""What the runs app releases when a namespace or pipeline is deleted: containers, run tokens, log files.

Connected in RunsConfig.ready(). Runs inside the deleting transaction (pipelines/signals.py): tokens are deleted in
it; containers are killed and log files removed only once it commits, so a rolled-back delete changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from access import services as access
from kernel.errors import Conflict
from runs import logs, queue
from runs.choices import ACTIVE_TASK_STATES, UNFINISHED_RUN_STATES
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler

logger = logging.getLogger(__name__)


def _release(runs: Any, remove_logs: Any) -> None:
    containers = list(
        TaskExecution.objects.filter(run__in=runs, state__in=ACTIVE_TASK_STATES)
        .exclude(container_id="")
        .values_list("scheduler", "container_id")
    )
    access.revoke_tokens(runs.exclude(token=None).values_list("token_id", flat=True))

    def after_commit() -> None:
        for scheduler_name, container_id in containers:
            try:
                scheduler = get_scheduler(scheduler_name or None)
                scheduler.kill(container_id)
                scheduler.remove(container_id)
            except Exception:
                logger.warning("could not stop container %s of a deleted run", container_id, exc_info=True)
        remove_logs()

    transaction.on_commit(after_commit)


def on_namespace_deleting(sender: Any, namespace: Any, **kwargs: Any) -> None:
    namespace_id = namespace.id  # read now: once the row is deleted, Django sets the instance's id to None
    _release(Run.objects.filter(namespace=namespace), lambda: logs.delete_namespace_logs(namespace_id))


def on_pipeline_deleting(sender: Any, pipeline: Any, **kwargs: Any) -> None:
    namespace_id, slug = pipeline.namespace_id, pipeline.slug
    _release(Run.objects.filter(pipeline=pipeline), lambda: logs.delete_pipeline_logs(namespace_id, slug))


def on_config_deleting(sender: Any, config: Any, **kwargs: Any) -> None:
    """A config version that an unfinished run still executes cannot be deleted (409)."""
    if Run.objects.filter(config=config, state__in=UNFINISHED_RUN_STATES).exists():
        raise Conflict(f"version {config.version} is used by a run that has not finished", field="version")


def on_worker_spawned(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    queue.reconcile_now()
