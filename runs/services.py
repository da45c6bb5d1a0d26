"""Starting, cancelling and reading runs. Execution itself lives in runs/engine.py.

``start_run`` only records the run (state ``pending``) and queues it: the HTTP call returns at once and never waits
for a parallelism slot. Admission, task execution and completion happen in workers (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import shlex
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access.models import SystemPreferences
from events import services as events
from events.choices import EventKind
from kernel.errors import Conflict, Forbidden, Gone, NotFound, Unavailable, ValidationFailed
from kernel.identifiers import strict_int
from kernel.rbac import Principal
from kernel.references import ReferenceKind, parse_reference
from pipelines import quotas
from pipelines.choices import ConfigState, PipelineState
from pipelines.models import Namespace, Pipeline, PipelineConfig
from pipelines.validation import parse_variables
from runs import logs, queue
from runs.attach import MaskedSession
from runs.choices import RunState, RunStatusReason, TaskExecutionState, VariableSource
from runs.engine import masking
from runs.models import Run, TaskExecution, TimelineEntry
from runs.schedulers import get_scheduler
from runs.schedulers.base import SchedulerError
from secretstore import services as secrets
from telemetry import tracing


def run_scope(run: Run) -> dict[str, Any]:
    return {"namespace_id": run.namespace_id, "pipeline_slug": run.pipeline.slug, "run_number": run.number}


def run_details(run: Run) -> dict[str, Any]:
    return {"namespace_id": run.namespace_id, "pipeline_id": run.pipeline.slug, "run_id": run.number}


def note(run: Run, kind: str, message: str, task_slug: str = "") -> TimelineEntry:
    """Add a line to the run's timeline (the orchestrator's own account of what it did and why)."""
    return TimelineEntry.objects.create(run=run, kind=kind, message=message, task_slug=task_slug)


def parse_run_number(raw: object) -> int:
    try:
        number = strict_int(raw)
        if number < 1:
            raise ValueError
    except ValueError:
        raise ValidationFailed("run_id: must be a positive integer", field="run_id") from None
    return number


def get_run(pipeline: Pipeline, raw_number: object) -> Run:
    number = parse_run_number(raw_number)
    run = Run.objects.select_related("pipeline").filter(pipeline=pipeline, number=number).first()
    if run is None:
        raise NotFound.of("run", number, field="run_id")
    return run


def get_task_execution(run: Run, task_slug: str) -> TaskExecution:
    task_execution = (
        TaskExecution.objects.select_related("run", "pipeline").filter(run=run, task_slug=task_slug).first()
    )
    if task_execution is None:
        raise NotFound.of("task execution", task_slug, field="task_id")
    return task_execution


# The prefix of the variables extensions set on the runs they start (triggers; Gofer's names).
EXTENSION_VARIABLE_PREFIX = "GOFER_EXTENSION_"


@transaction.atomic
def start_run(
    principal: Principal,
    pipeline: Pipeline,
    variables: object = None,
    *,
    source: str = VariableSource.RUN_OPTIONS,
    initiator: dict[str, str] | None = None,
) -> Run:
    """Queue a run of the pipeline's live config.

    Refused with 503 while the kill switch is on or the pipeline is disabled, and with 409 when no version is live.
    The run gets the next per-pipeline number; workers are told once the transaction commits. ``initiator``
    overrides the principal's own (a subscription records its extension and subscription ids); an extension's
    token starts runs whose variables have source ``extension``.
    """
    if principal.kind == "extension":
        source = VariableSource.EXTENSION
    who = initiator if initiator is not None else principal.initiator()
    describe = principal.extra.get("initiator_for")
    if initiator is None and callable(describe):
        # A principal that knows more about itself per pipeline (an extension's token: which subscription).
        who = {**who, **describe(pipeline)}
    run_variables = parse_variables(variables, "variables")
    check_run_variables(principal, pipeline, run_variables, source=source)
    if SystemPreferences.load().ignore_pipeline_run_events:
        raise Unavailable("new runs are refused: an admin has turned on ignore_pipeline_run_events")
    # The namespace's quotas first, under its row lock (taken before the pipeline's, as delete_namespace does): two
    # runs started at the limit cannot both pass.
    _check_run_quotas(pipeline.namespace_id)
    # The row lock serialises run numbering, and makes a concurrent delete of the pipeline or namespace either wait
    # for this run or make it fail with 404; it never leaves a run in a deleted namespace.
    pipeline = Pipeline.objects.select_for_update().filter(pk=pipeline.pk).first()
    if pipeline is None:
        raise NotFound("pipeline not found", field="pipeline_id")
    if pipeline.state != PipelineState.ACTIVE:
        raise Unavailable(f"pipeline {pipeline.slug} is disabled; enable it to start runs")
    config = PipelineConfig.objects.filter(pipeline=pipeline, state=ConfigState.LIVE).first()
    if config is None:
        raise Conflict(
            f"pipeline {pipeline.slug} has no live config version; deploy one first "
            f"(POST .../pipelines/{pipeline.slug}/configs/{{version}})"
        )
    pipeline.last_run_number += 1
    pipeline.save(update_fields=["last_run_number"])
    run = Run.objects.create(
        namespace_id=pipeline.namespace_id,
        pipeline=pipeline,
        number=pipeline.last_run_number,
        config=config,
        config_version=config.version,
        state=RunState.PENDING,
        initiator=who,
        variables=[{**v, "source": source} for v in run_variables],
        trace_context=tracing.current_context(),
    )
    events.publish(EventKind.QUEUED_RUN, run_details(run), **run_scope(run))
    note(run, "queued", f"queued by {principal.name} ({principal.kind}) on config version {config.version}")
    queue.advance_run_on_commit(run.pk)
    return run


QUEUED_RUNS_RETRY_AFTER = 30  # seconds: a queued run typically starts within this when a slot frees


def _runs_in_last_hour(namespace_id: str) -> Any:
    return Run.objects.filter(namespace_id=namespace_id, created__gt=timezone.now() - dt.timedelta(hours=1))


def _check_run_quotas(namespace_id: str) -> None:
    """``queued_runs`` and ``runs_per_hour`` (pipelines/quotas.py): 429 with Retry-After, since both free up with
    time; for runs per hour, when the oldest run of the last hour leaves it."""
    limits = quotas.lock(namespace_id)
    if limits.queued_runs is not None:
        quotas.check(
            limits, "queued_runs", _count_queued(namespace_id), what="a new run", retry_after=QUEUED_RUNS_RETRY_AFTER
        )
    if limits.runs_per_hour is not None:
        recent = _runs_in_last_hour(namespace_id)
        count = recent.count()
        if count >= limits.runs_per_hour:
            wait = 3600  # a quota of 0: no run leaving the window makes room
            if limits.runs_per_hour > 0:
                # The run whose leaving the window makes room: the (count - limit + 1)-th oldest of the last hour.
                freeing = recent.order_by("created").values_list("created", flat=True)[count - limits.runs_per_hour]
                wait = math.ceil((freeing + dt.timedelta(hours=1) - timezone.now()).total_seconds())
            quotas.check(limits, "runs_per_hour", count, what="a new run", retry_after=max(wait, 1))


def _count_queued(namespace_id: str) -> int:
    return Run.objects.filter(namespace_id=namespace_id, state=RunState.PENDING).count()


def _longest_running(namespace_id: str) -> int:
    started = (
        Run.objects.filter(namespace_id=namespace_id, state=RunState.RUNNING, started__isnull=False)
        .order_by("started")
        .values_list("started", flat=True)
        .first()
    )
    return int((timezone.now() - started).total_seconds()) if started else 0


def register_quota_usage() -> None:
    """The current use of the run quotas, for GET .../quotas (pipelines/quotas.py asks the apps that own what it
    counts). Called in RunsConfig.ready."""
    quotas.register_usage(
        "concurrent_runs", lambda ns: Run.objects.filter(namespace_id=ns, state=RunState.RUNNING).count()
    )
    quotas.register_usage("queued_runs", _count_queued)
    quotas.register_usage("runs_per_hour", lambda ns: _runs_in_last_hour(ns).count())
    quotas.register_usage("run_duration", _longest_running)


def is_protected_variable(key: str) -> bool:
    """Whether a run's own variables may not set ``key`` (GOFER_PROTECTED_VARIABLES: PATH and GOFER_* by
    default). Keys are compared upper-cased, as the task's environment is built (runs/variables.py)."""
    name = key.upper()
    return any(fnmatch.fnmatchcase(name, pattern.upper()) for pattern in settings.GOFER_PROTECTED_VARIABLES)


def check_run_variables(
    principal: Principal,
    pipeline: Pipeline,
    variables: list[dict[str, Any]],
    *,
    source: str = VariableSource.RUN_OPTIONS,
) -> None:
    """The rule for the variables a run is started with, whoever starts it (the API, a subscription of an
    extension, the admin): a protected name is a 400 naming it; a reference to a secret (``pipeline_secret{{k}}``,
    ``global_secret{{k}}``) needs permission to read that secret's value, else a 403 naming the variable. Without
    the rule, anyone allowed to start runs could have a task print secrets they may not read (issue 8).

    ``GOFER_EXTENSION_*`` is the extensions' own prefix (Gofer's ``GOFER_EXTENSION_GITHUB_REF``...): runs started by
    an extension (source ``extension``) may set it; nobody else can, so a task can trust those values."""
    for variable in variables:
        key = str(variable.get("key", ""))
        if source == VariableSource.EXTENSION and key.upper().startswith(EXTENSION_VARIABLE_PREFIX):
            continue
        if is_protected_variable(key):
            raise ValidationFailed(
                f"variables.{key}: this name is protected from run variables (GOFER_PROTECTED_VARIABLES)",
                field=f"variables.{key}",
            )
    for variable in variables:
        key, value = str(variable.get("key", "")), variable.get("value")
        reference = parse_reference(value) if isinstance(value, str) else None
        if reference is None or not reference.is_secret:
            continue
        if reference.kind == ReferenceKind.GLOBAL_SECRET:
            allowed, needs = secrets.may_reveal_global_secrets(principal), "the admin role"
        else:
            allowed = secrets.may_reveal_pipeline_secrets(principal, pipeline)
            needs = f"write on secrets of {pipeline.namespace_id}/{pipeline.slug}"
        if not allowed:
            raise Forbidden(
                f"variables.{key}: references {reference}, a secret this token may not read (it needs {needs})",
                field=f"variables.{key}",
            )


@transaction.atomic
def cancel_run(principal: Principal, run: Run, description: str = "") -> bool:
    """Ask for a run to be cancelled. Returns False when it had already finished (nothing to do).

    A pending run is cancelled at once; a running one is marked and the orchestrator stops its tasks (waiting tasks
    become cancelled, running containers get a graceful stop, then a kill).
    """
    run = Run.objects.select_for_update(of=("self",)).select_related("pipeline").get(pk=run.pk)
    if run.state == RunState.COMPLETE:
        return False
    if run.cancel_requested is not None:
        return True
    reason = RunStatusReason.ADMIN_CANCELLED if principal.is_admin else RunStatusReason.USER_CANCELLED
    who = f"{principal.name} ({'admin' if principal.is_admin else principal.kind})"
    run.cancel_requested = timezone.now()
    run.cancel_reason = reason
    run.cancel_description = description or f"cancelled by {who}"
    run.save(update_fields=["cancel_requested", "cancel_reason", "cancel_description"])
    events.publish(EventKind.STARTED_RUN_CANCELLATION, run_details(run), **run_scope(run))
    note(run, "cancel_requested", run.cancel_description)
    queue.advance_run_on_commit(run.pk)
    return True


@transaction.atomic
def cancel_task_execution(principal: Principal, task_execution: TaskExecution, wait_for: int | None) -> bool:
    """Ask for one task execution to be stopped: SIGTERM, then SIGKILL after ``wait_for`` seconds (0: at once).

    Returns False when it had already finished.
    """
    te = (
        TaskExecution.objects.select_for_update(of=("self",))
        .select_related("run", "pipeline")
        .get(pk=task_execution.pk)
    )
    if te.state == TaskExecutionState.COMPLETE:
        return False
    who = f"{principal.name} ({'admin' if principal.is_admin else principal.kind})"
    te.cancel_requested = te.cancel_requested or timezone.now()
    te.cancel_wait_for = wait_for
    te.cancel_reason = RunStatusReason.ADMIN_CANCELLED if principal.is_admin else RunStatusReason.USER_CANCELLED
    te.cancel_description = f"cancelled by {who}"
    te.save(update_fields=["cancel_requested", "cancel_wait_for", "cancel_reason", "cancel_description"])
    events.publish(
        EventKind.STARTED_TASK_EXECUTION_CANCELLATION,
        {**run_details(te.run), "task_execution_id": te.task_slug, "timeout": wait_for or 0},
        **run_scope(te.run),
    )
    note(te.run, "task_cancel_requested", te.cancel_description, task_slug=te.task_slug)
    queue.task_execution_on_commit(te.pk)
    return True


def check_logs_readable(te: TaskExecution) -> None:
    """Raise Gone when this task execution's logs cannot be read: removed, expired, off, or never written (it
    finished without a log file: skipped, or failed before its container started). A task that has not started yet
    is readable: its logs are still to come."""
    if te.logs_removed or te.logs_expired:
        why = "expired (log retention)" if te.logs_expired else "removed"
        raise Gone(f"the logs of task {te.task_slug} were {why}", field="task_id")
    if not te.task.get("logging", True):
        raise Gone(f"logging is off for task {te.task_slug}: nothing was stored", field="task_id")
    if te.state == TaskExecutionState.COMPLETE and not logs.path_for(te).exists():
        raise Gone(f"task {te.task_slug} never started a container ({te.status}): it has no logs", field="task_id")


@transaction.atomic
def delete_logs(te: TaskExecution) -> bool:
    """Delete a task execution's log file (for example after a secret leaked into it). False if already gone.

    A task that is still running cannot have its logs deleted (409): the worker is appending to them.
    """
    te = TaskExecution.objects.select_for_update(of=("self",)).select_related("run", "pipeline").get(pk=te.pk)
    if te.state != TaskExecutionState.COMPLETE:
        raise Conflict(f"task {te.task_slug} is still {te.state}; cancel it or wait for it to finish", field="task_id")
    if te.logs_removed:
        return False
    path = logs.path_for(te)
    te.logs_removed = True
    te.save(update_fields=["logs_removed"])
    note(te.run, "logs_deleted", "task logs deleted on request", task_slug=te.task_slug)
    transaction.on_commit(lambda: path.unlink(missing_ok=True))
    return True


def check_attach_allowed(te: TaskExecution) -> None:
    """Attach's switches, which apply to everyone, admins included: the server's (GOFER_ALLOW_ATTACH) and the
    namespace's (``allow_attach``). The permission itself (``attach``) is the route's rule (runs/consumers.py)."""
    if settings.GOFER_SANDBOX:
        raise Forbidden("attach is turned off in sandbox mode (GOFER_SANDBOX)")
    if not settings.GOFER_ALLOW_ATTACH:
        raise Forbidden("attach is turned off on this server (GOFER_ALLOW_ATTACH)")
    if not Namespace.objects.filter(pk=te.namespace_id, allow_attach=True).exists():
        raise Forbidden(f"attach is turned off in namespace {te.namespace_id} (its allow_attach is false)")


def attach(principal: Principal, te: TaskExecution, command: str) -> MaskedSession:
    """An interactive session running ``command`` inside the task's running container, its output masked like the
    task's logs; recorded as an ``attached_task_execution`` event and on the run's timeline (who, which command)."""
    check_attach_allowed(te)
    te.refresh_from_db()
    if te.state != TaskExecutionState.RUNNING or not te.container_id:
        raise Conflict(f"task {te.task_slug} is not running ({te.state})", field="task_id")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValidationFailed(f"command: {exc}", field="command") from None
    if not argv:
        raise ValidationFailed("command: must not be empty", field="command")
    te = TaskExecution.objects.select_related("run", "run__pipeline", "pipeline").get(pk=te.pk)
    # Built before the command starts: no output may pass unmasked. The same function the workers use for logs.
    mask = masking.masker_for(te)
    try:
        session = get_scheduler(te.scheduler or None).exec(te.container_id, argv)
    except SchedulerError as exc:
        masking.forget(te.pk)
        raise Conflict(f"cannot attach to task {te.task_slug}: {exc}") from None
    who = f"{principal.name} ({'admin' if principal.is_admin else principal.kind})"
    with transaction.atomic():
        events.publish(
            EventKind.ATTACHED_TASK_EXECUTION,
            {
                **run_details(te.run),
                "task_execution_id": te.task_slug,
                "command": command,
                "user": principal.name,
                "token_id": principal.token_id or "",
            },
            **run_scope(te.run),
        )
        note(te.run, "attached", f"{who} attached with command {command!r}", task_slug=te.task_slug)
    return MaskedSession(session, mask, on_close=lambda: masking.forget(te.pk))
