"""Admission: which pending runs may start now, and what starting one creates.

Limits are counted from the database (every run in state ``running``), under a lock on the system row, so two
workers admitting at once cannot both take the last slot. Runs are admitted oldest first; a pipeline whose oldest
pending run cannot start blocks its younger runs (FIFO per pipeline) but not other pipelines'. Admitting a run
creates one task execution per task (state ``waiting``) with a snapshot of the task spec and its merged variables,
and mints the run token when a task asks for one.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access import services as access
from access.models import SystemPreferences
from events import services as events
from events.choices import EventKind
from pipelines.choices import ParallelismMode
from runs import queue
from runs.choices import RunState, RunStatusReason, TaskExecutionState
from runs.engine.outcomes import finish_run, te_details
from runs.engine.retention import expire_old_logs
from runs.models import Run, TaskExecution
from runs.services import note, run_details, run_scope
from runs.signals import run_admitted
from runs.variables import final_variables

logger = logging.getLogger(__name__)

# How many pending runs one admission pass looks at.
ADMISSION_WINDOW = 1000


def admit_pending_runs() -> list[int]:
    """Admit pending runs, oldest first, while the global and per-pipeline limits allow. Returns admitted run pks."""
    if not Run.objects.filter(state=RunState.PENDING).exists():
        return []
    admitted: list[int] = []
    with transaction.atomic():
        SystemPreferences.load()
        SystemPreferences.objects.select_for_update().get(pk=1)
        pending = list(
            Run.objects.select_for_update(of=("self",))
            .filter(state=RunState.PENDING)
            .select_related("pipeline", "config")
            .order_by("created", "id")[:ADMISSION_WINDOW]
        )
        running = Run.objects.filter(state=RunState.RUNNING)
        running_total = running.count()
        running_by_pipeline = Counter(running.values_list("pipeline_id", flat=True))
        global_limit = settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT
        blocked: set[int] = set()
        for run in pending:
            if run.cancel_requested is not None:
                finish_run(run, [])
                continue
            if run.pipeline_id in blocked:
                continue
            limit = (run.config.parallelism if run.config else 0) or settings.GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT
            if running_by_pipeline[run.pipeline_id] >= limit:
                blocked.add(run.pipeline_id)
                if run.config and run.config.parallelism_mode == ParallelismMode.CANCEL_OLDEST:
                    _supersede_oldest(run, running_by_pipeline[run.pipeline_id] - limit + 1)
                _note_waiting(run, f"waiting: {running_by_pipeline[run.pipeline_id]} of {limit} runs of this pipeline")
                continue
            if running_total >= global_limit:
                _note_waiting(run, f"waiting: the server runs its limit of {global_limit} runs")
                break
            _admit(run)
            running_total += 1
            running_by_pipeline[run.pipeline_id] += 1
            admitted.append(run.pk)
    for pk in admitted:
        _after_admission(pk)
    return admitted


def _note_waiting(run: Run, message: str) -> None:
    last = run.timeline.order_by("-id").first()
    if last is None or last.message != message:
        note(run, "waiting", message)


def _supersede_oldest(new_run: Run, how_many: int) -> None:
    """The cancel-oldest parallelism mode: make room for ``new_run`` by cancelling the oldest running runs."""
    victims = (
        Run.objects.select_for_update()
        .filter(pipeline_id=new_run.pipeline_id, state=RunState.RUNNING, cancel_requested__isnull=True)
        .order_by("number")[: max(how_many, 0)]
    )
    for victim in victims:
        victim.cancel_requested = timezone.now()
        victim.cancel_reason = RunStatusReason.SUPERSEDED
        victim.cancel_description = f"superseded by run {new_run.number} (parallelism mode cancel_oldest)"
        victim.save(update_fields=["cancel_requested", "cancel_reason", "cancel_description"])
        events.publish(EventKind.STARTED_RUN_CANCELLATION, run_details(victim), **run_scope(victim))
        note(victim, "cancel_requested", victim.cancel_description)
        queue.advance_run_on_commit(victim.pk)


def _admit(run: Run) -> None:
    now = timezone.now()
    tasks = [task.spec for task in run.config.tasks.all()]
    run.state = RunState.RUNNING
    run.started = now
    fields = ["state", "started"]
    if any(task.inject_api_token for task in tasks):
        secret, token = access.mint_run_token(run)
        run.token = token
        run.token_secret = secret
        fields += ["token", "token_secret"]
    run.save(update_fields=fields)
    events.publish(EventKind.STARTED_RUN, run_details(run), **run_scope(run))
    note(run, "admitted", f"admitted; {len(tasks)} task(s)")
    for task in tasks:
        snapshot = task.snapshot(config_logging=run.config.logging)
        te = TaskExecution.objects.create(
            namespace_id=run.namespace_id,
            pipeline=run.pipeline,
            run=run,
            task_slug=task.id,
            task=snapshot,
            state=TaskExecutionState.WAITING,
            variables=final_variables(run.namespace_id, run.pipeline.slug, run.number, snapshot, run.variables),
        )
        te.run = run
        events.publish(EventKind.CREATED_TASK_EXECUTION, te_details(te), **run_scope(run))


def _after_admission(run_pk: int) -> None:
    """Housekeeping that a new run triggers for its pipeline, after admission committed: log retention here, and
    whatever the apps built on runs do on ``run_admitted`` (the object store expires old run objects)."""
    run = Run.objects.select_related("pipeline").filter(pk=run_pk).first()
    if run is None:
        return
    try:
        expire_old_logs(run.pipeline)
    except Exception:
        logger.exception("log retention for pipeline %s failed; it will be retried at the next run", run.pipeline)
    for receiver, outcome in run_admitted.send_robust(sender=Run, run=run):
        if isinstance(outcome, Exception):
            logger.error(
                "%s failed after run %s was admitted; it is retried at the next run",
                getattr(receiver, "__qualname__", receiver),
                run,
                exc_info=outcome,
            )
