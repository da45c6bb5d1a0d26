"""The orchestrator: state in the database, idempotent steps in workers.

Three kinds of step, each a django-q2 task (runs/tasks.py) that any worker may run, any number of times:

``advance_run(run)``
    Under a row lock on the run: admits pending runs when parallelism allows, decides for each waiting task whether
    its parents let it run (``depends_on`` any/success/failure; a failed check skips it, and skips cascade), hands
    the tasks that may start to ``drive_task_execution``, applies run cancellation and the global run timeout, and
    completes the run with its final status once every task execution is complete.

``drive_task_execution(task execution)``
    Under a lease (a conditional UPDATE on ``lease_owner``/``lease_expires``, renewed every couple of seconds):
    resolves the task's variables, starts (or adopts) its container, then for one time slice pumps its logs to the
    durable log file, enforces the task timeout and cancellation (SIGTERM, then SIGKILL at the deadline), and on
    exit records the exit code with the engine's own start/finish times. A task still running at the end of its
    slice re-enqueues itself, so a handful of workers can watch any number of containers.

``reconcile()``
    Every minute (a django-q2 schedule) and at start-up: re-drives task executions whose lease expired (their worker
    died), steps every running run, admits pending runs, prunes old containers and events.

Why this survives crashes: the container name is derived from the task execution, so a second start adopts the
first container instead of running the task twice; the container id is recorded as soon as the engine returns it;
log pumping resumes from the cursor stored in the log file itself; every state change is a conditional update that
only the lease holder (or the run-lock holder) can make.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import Counter
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.models import SystemPreferences
from events import services as events
from events.choices import EventKind
from pipelines.choices import ParallelismMode
from pipelines.models import Task
from runs import interpolation, logs, queue
from runs.choices import (
    ACTIVE_TASK_STATES,
    RunState,
    RunStatus,
    RunStatusReason,
    TaskExecutionState,
    TaskExecutionStatus,
    TaskExecutionStatusReason,
)
from runs.models import Run, TaskExecution
from runs.schedulers import get_scheduler
from runs.schedulers.base import (
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_PIPELINE,
    LABEL_RUN,
    LABEL_TASK,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    EngineUnavailable,
    NoSuchContainer,
    RegistryAuth,
    Scheduler,
    SchedulerError,
    State,
    Status,
)
from runs.services import note, run_details, run_scope

logger = logging.getLogger(__name__)

MAX_START_ATTEMPTS = 10
MAX_DRIVE_ERRORS = 5
CANCEL_FIELDS = ("cancel_requested", "cancel_wait_for", "cancel_description")
LOG_FOLLOW_SECONDS = 1.0


class LeaseLost(Exception):
    """Another worker took over this task execution (ours expired); stop touching it."""


# --- Small helpers ----------------------------------------------------------------------------------------------------


def _lease_seconds() -> int:
    return settings.GOFER_LEASE_SECONDS


def _te_details(te: TaskExecution, **extra: Any) -> dict[str, Any]:
    return {**run_details(te.run), "task_execution_id": te.task_slug, **extra}


def container_name(te: TaskExecution) -> str:
    """Deterministic per task execution: what makes ``start`` idempotent across workers and crashes."""
    return f"gofer-{te.namespace_id}-{te.pipeline.slug}-{te.run.number}-{te.task_slug}-{te.pk}"


def _satisfied(requirement: str, parent_status: str) -> bool:
    if requirement == "success":
        return parent_status == TaskExecutionStatus.SUCCESSFUL
    if requirement == "failure":
        return parent_status == TaskExecutionStatus.FAILED
    # "any": the parent finished one way or another; a cancelled parent does not count as finished work.
    return parent_status in {TaskExecutionStatus.SUCCESSFUL, TaskExecutionStatus.FAILED, TaskExecutionStatus.SKIPPED}


def _complete_task(
    te: TaskExecution,
    status: str,
    reason: str,
    description: str,
    *,
    exit_code: int | None = None,
    started: dt.datetime | None = None,
    ended: dt.datetime | None = None,
    owner: str | None = None,
) -> bool:
    """Mark ``te`` complete (once). With ``owner``, only while that worker still holds the lease."""
    queryset = TaskExecution.objects.filter(pk=te.pk).exclude(state=TaskExecutionState.COMPLETE)
    if owner is not None:
        queryset = queryset.filter(lease_owner=owner)
    fields = {
        "state": TaskExecutionState.COMPLETE,
        "status": status,
        "status_reason": reason,
        "status_description": description,
        "exit_code": exit_code,
        "ended": ended or timezone.now(),
        "lease_owner": "",
        "lease_expires": None,
    }
    if started is not None:
        fields["started"] = started
    with transaction.atomic():
        if queryset.update(**fields) != 1:
            return False
        events.publish(EventKind.COMPLETED_TASK_EXECUTION, _te_details(te, status=status), **run_scope(te.run))
        note(te.run, "task_completed", f"{status}" + (f" ({reason}): {description}" if reason else ""), te.task_slug)
    return True


# --- advance_run ------------------------------------------------------------------------------------------------------


def advance_run(run_pk: int) -> None:
    """Move a run forward as far as the database allows right now. Safe to call any number of times."""
    to_drive: list[int] = []
    with transaction.atomic():
        run = Run.objects.select_for_update(of=("self",)).select_related("pipeline").filter(pk=run_pk).first()
        if run is None or run.state == RunState.COMPLETE:
            return
        if run.state == RunState.PENDING and run.cancel_requested is not None:
            _finish_run(run, [])
        elif run.state == RunState.RUNNING:
            to_drive = _step_running(run)
    admitted = admit_pending_runs()
    for te_pk in to_drive:
        queue.task_execution_now(te_pk)
    if run.state == RunState.PENDING and run.pk in admitted:
        # Our own run was just admitted: start its root tasks now rather than after another queue round trip.
        advance_run(run.pk)
    for other in admitted:
        if other != run.pk:
            queue.advance_run_now(other)


def _step_running(run: Run) -> list[int]:
    """Under the run lock: apply cancellation and timeouts, resolve waiting tasks, finish the run if all is done."""
    now = timezone.now()
    task_executions = list(run.task_executions.select_related("run", "pipeline").order_by("id"))
    if (
        run.cancel_requested is None
        and run.started is not None
        and now - run.started > dt.timedelta(seconds=settings.GOFER_GLOBAL_RUN_TIMEOUT)
    ):
        run.cancel_requested = now
        run.cancel_reason = RunStatusReason.TIMEOUT
        run.cancel_description = f"the run exceeded the global run timeout of {settings.GOFER_GLOBAL_RUN_TIMEOUT} s"
        run.save(update_fields=["cancel_requested", "cancel_reason", "cancel_description"])
        events.publish(EventKind.STARTED_RUN_CANCELLATION, run_details(run), **run_scope(run))
        note(run, "timeout", run.cancel_description)

    to_drive: list[int] = []
    if run.cancel_requested is not None:
        reason = (
            TaskExecutionStatusReason.TIMEOUT
            if run.cancel_reason == RunStatusReason.TIMEOUT
            else TaskExecutionStatusReason.CANCELLED
        )
        for te in task_executions:
            if te.state == TaskExecutionState.WAITING:
                status = TaskExecutionStatus.FAILED if reason == "timeout" else TaskExecutionStatus.CANCELLED
                _complete_task(te, status, reason, run.cancel_description)
            elif te.state in ACTIVE_TASK_STATES and te.cancel_requested is None:
                wait_for = settings.GOFER_TASK_STOP_TIMEOUT
                TaskExecution.objects.filter(pk=te.pk, cancel_requested__isnull=True).update(
                    cancel_requested=now, cancel_wait_for=wait_for, cancel_description=run.cancel_description
                )
                to_drive.append(te.pk)
    else:
        changed = True
        while changed:  # skipping a task can make its children decidable: repeat until nothing moves
            changed = False
            by_slug = {te.task_slug: te for te in task_executions}
            for te in task_executions:
                if te.state != TaskExecutionState.WAITING:
                    continue
                parents = te.task.get("depends_on", {})
                if any(by_slug[p].state != TaskExecutionState.COMPLETE for p in parents if p in by_slug):
                    continue
                unmet = [
                    f"{p} is {by_slug[p].status}, needs {req}"
                    for p, req in parents.items()
                    if p in by_slug and not _satisfied(req, by_slug[p].status)
                ]
                if unmet:
                    _complete_task(
                        te,
                        TaskExecutionStatus.SKIPPED,
                        TaskExecutionStatusReason.FAILED_PRECONDITION,
                        "skipped: " + "; ".join(unmet),
                    )
                else:
                    grace = timezone.now() + dt.timedelta(seconds=_lease_seconds() * 2)
                    TaskExecution.objects.filter(pk=te.pk, state=TaskExecutionState.WAITING).update(
                        state=TaskExecutionState.PROCESSING, lease_owner="", lease_expires=grace
                    )
                    note(run, "task_ready", "parents done; starting", te.task_slug)
                    to_drive.append(te.pk)
                te.refresh_from_db()
                changed = True
    task_executions = list(run.task_executions.select_related("run", "pipeline").order_by("id"))
    if task_executions and all(te.state == TaskExecutionState.COMPLETE for te in task_executions):
        _finish_run(run, task_executions)
        return []
    return to_drive


_REASON_FROM_TASK = {
    TaskExecutionStatusReason.ABNORMAL_EXIT: RunStatusReason.ABNORMAL_EXIT,
    TaskExecutionStatusReason.SCHEDULER_ERROR: RunStatusReason.SCHEDULER_ERROR,
    TaskExecutionStatusReason.ORPHANED: RunStatusReason.SCHEDULER_ERROR,
    TaskExecutionStatusReason.FAILED_PRECONDITION: RunStatusReason.FAILED_PRECONDITION,
    TaskExecutionStatusReason.TIMEOUT: RunStatusReason.TIMEOUT,
}


def _finish_run(run: Run, task_executions: list[TaskExecution]) -> None:
    """Complete the run with Gofer's status rule; the completed_run event carries the final status."""
    cancelled = [te for te in task_executions if te.status == TaskExecutionStatus.CANCELLED]
    failed = [te for te in task_executions if te.status == TaskExecutionStatus.FAILED]
    if run.cancel_requested is not None and run.cancel_reason == RunStatusReason.TIMEOUT:
        status, reason, description = RunStatus.FAILED, RunStatusReason.TIMEOUT, run.cancel_description
    elif run.cancel_requested is not None:
        status, reason, description = RunStatus.CANCELLED, run.cancel_reason, run.cancel_description
    elif cancelled:
        who = cancelled[0].cancel_description or "cancelled"
        status, reason = RunStatus.CANCELLED, RunStatusReason.USER_CANCELLED
        if "admin" in who:
            reason = RunStatusReason.ADMIN_CANCELLED
        description = f"task {cancelled[0].task_slug} was {who}"
    elif failed:
        first = failed[0]
        status = RunStatus.FAILED
        reason = _REASON_FROM_TASK.get(first.status_reason, RunStatusReason.UNKNOWN)
        description = f"task {first.task_slug} failed: {first.status_description}"
    else:
        status, reason, description = RunStatus.SUCCESSFUL, "", ""
    run.state = RunState.COMPLETE
    run.status = status
    run.status_reason = reason
    run.status_description = description
    run.ended = timezone.now()
    run.save(update_fields=["state", "status", "status_reason", "status_description", "ended"])
    events.publish(EventKind.COMPLETED_RUN, {**run_details(run), "status": status}, **run_scope(run))
    note(run, "completed", f"{status}" + (f" ({reason}): {description}" if reason else ""))


# --- Admission ----------------------------------------------------------------------------------------------------


def admit_pending_runs() -> list[int]:
    """Admit pending runs, oldest first, while the global and per-pipeline limits allow. Returns admitted run pks.

    Limits are counted from the database (every run in state ``running``), under a lock on the system row, so two
    workers admitting at once cannot both take the last slot. A pipeline whose oldest pending run cannot start
    blocks its younger runs (FIFO per pipeline) but not other pipelines'.
    """
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
            .order_by("created", "id")[:1000]
        )
        running = Run.objects.filter(state=RunState.RUNNING)
        running_total = running.count()
        running_by_pipeline = Counter(running.values_list("pipeline_id", flat=True))
        global_limit = settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT
        blocked: set[int] = set()
        for run in pending:
            if run.cancel_requested is not None:
                _finish_run(run, [])
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


def _task_snapshot(task: Task, config_logging: bool) -> dict[str, Any]:
    """The task as the run sees it. The registry password is not copied: the worker reads it from the encrypted
    task row when it starts the container."""
    return {
        "id": task.slug,
        "description": task.description,
        "image": task.image,
        "registry_auth": {"user": task.registry_auth["user"]} if task.registry_auth else None,
        "depends_on": task.depends_on,
        "variables": [{**v, "source": "pipeline_config"} for v in task.variables],
        "entrypoint": task.entrypoint,
        "command": task.command,
        "inject_api_token": task.inject_api_token,
        "always_pull_newest_image": task.always_pull_newest_image,
        "timeout": task.timeout,
        "cpu": float(task.cpu) if task.cpu is not None else None,
        "memory": task.memory,
        "logging": bool(config_logging and task.logging),
    }


def _admit(run: Run) -> None:
    from access import services as access
    from runs.variables import final_variables

    now = timezone.now()
    tasks = list(run.config.tasks.all())
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
        snapshot = _task_snapshot(task, run.config.logging)
        te = TaskExecution.objects.create(
            namespace_id=run.namespace_id,
            pipeline=run.pipeline,
            run=run,
            task_slug=task.slug,
            task=snapshot,
            state=TaskExecutionState.WAITING,
            variables=final_variables(run.namespace_id, run.pipeline.slug, run.number, snapshot, run.variables),
        )
        te.run = run
        events.publish(EventKind.CREATED_TASK_EXECUTION, _te_details(te), **run_scope(run))


def _after_admission(run_pk: int) -> None:
    """Housekeeping that a new run triggers for its pipeline: log retention and run-object expiry."""
    run = Run.objects.select_related("pipeline").filter(pk=run_pk).first()
    if run is None:
        return
    try:
        expire_old_logs(run.pipeline)
        expire_old_run_objects(run.pipeline)
    except Exception:
        logger.exception("retention for pipeline %s failed; it will be retried at the next run", run.pipeline)


def expire_old_logs(pipeline: Any) -> int:
    """Delete the log files of complete runs older than the newest GOFER_TASK_LOG_RETENTION_RUNS runs."""
    keep = settings.GOFER_TASK_LOG_RETENTION_RUNS
    newest = list(Run.objects.filter(pipeline=pipeline).order_by("-number").values_list("number", flat=True)[:keep])
    if len(newest) < keep:
        return 0
    old = Run.objects.filter(pipeline=pipeline, state=RunState.COMPLETE, number__lt=newest[-1])
    stale = TaskExecution.objects.filter(run__in=old, logs_expired=False).select_related("run", "pipeline")
    count = 0
    for te in stale:
        logs.path_for(te).unlink(missing_ok=True)
        TaskExecution.objects.filter(pk=te.pk).update(logs_expired=True, logs_removed=True)
        count += 1
    return count


def expire_old_run_objects(pipeline: Any) -> None:
    """Expire run objects beyond the newest GOFER_RUN_OBJECT_EXPIRY runs, and revoke those runs' tokens."""
    from access import services as access
    from objectstore import services as objects

    for run in objects.expire_run_objects(pipeline):
        access.revoke_run_token(run)


# --- drive_task_execution ---------------------------------------------------------------------------------------------


def _claim(te_pk: int, owner: str) -> bool:
    now = timezone.now()
    return (
        TaskExecution.objects.filter(pk=te_pk, state__in=ACTIVE_TASK_STATES)
        .filter(Q(lease_owner="") | Q(lease_expires__isnull=True) | Q(lease_expires__lt=now))
        .update(lease_owner=owner, lease_expires=now + dt.timedelta(seconds=_lease_seconds()))
        == 1
    )


def _renew(te_pk: int, owner: str) -> None:
    expires = timezone.now() + dt.timedelta(seconds=_lease_seconds())
    if TaskExecution.objects.filter(pk=te_pk, lease_owner=owner).update(lease_expires=expires) != 1:
        raise LeaseLost(te_pk)


def _hand_back(te_pk: int, owner: str) -> None:
    """Release the lease and queue the next slice; the queued message keeps the reconciler away for a while."""
    grace = timezone.now() + dt.timedelta(seconds=_lease_seconds() * 2)
    if TaskExecution.objects.filter(pk=te_pk, lease_owner=owner).update(lease_owner="", lease_expires=grace) == 1:
        queue.task_execution_now(te_pk)


def drive_task_execution(te_pk: int) -> None:
    """One slice of work on one task execution, under its lease. See the module docstring."""
    owner = uuid.uuid4().hex
    if not _claim(te_pk, owner):
        return
    done = False
    try:
        te = TaskExecution.objects.select_related("run", "run__pipeline", "pipeline").get(pk=te_pk)
        scheduler = get_scheduler()
        if te.state == TaskExecutionState.PROCESSING:
            # Starting is its own step: hand back right after, so that other ready tasks waiting for a worker start
            # without waiting for this one's first watch slice.
            done = _start(te, scheduler, owner)
        elif te.state == TaskExecutionState.RUNNING:
            done = _watch(te, scheduler, owner)
    except LeaseLost:
        return
    except EngineUnavailable as exc:
        logger.warning("engine unavailable while driving task execution %s: %s", te_pk, exc)
        time.sleep(1)
    except Exception as exc:
        done = _drive_failed(te_pk, owner, exc)
        if not done:
            return
    if done:
        queue.advance_run_now(TaskExecution.objects.filter(pk=te_pk).values_list("run_id", flat=True).first())
    else:
        _hand_back(te_pk, owner)


def _drive_failed(te_pk: int, owner: str, exc: Exception) -> bool:
    """An unexpected error (a bug, an engine answer we do not understand). The task execution is left where it is
    and retried when the reconciler next passes; after MAX_DRIVE_ERRORS it fails, its container is killed, and the
    error is recorded on it rather than only in a log. Returns True when it was failed."""
    logger.exception("driving task execution %s failed", te_pk)
    te = TaskExecution.objects.select_related("run", "pipeline").filter(pk=te_pk, lease_owner=owner).first()
    if te is None:
        return False
    errors = te.drive_errors + 1
    if errors < MAX_DRIVE_ERRORS:
        TaskExecution.objects.filter(pk=te_pk, lease_owner=owner).update(
            drive_errors=errors, lease_owner="", lease_expires=timezone.now()
        )
        note(te.run, "internal_error", f"error {errors}/{MAX_DRIVE_ERRORS}, will retry: {exc!r:.300}", te.task_slug)
        return False
    if te.container_id:
        try:
            get_scheduler(te.scheduler or None).kill(te.container_id)
        except Exception:
            logger.warning("could not kill container %s of failed task execution %s", te.container_id, te_pk)
    return _complete_task(
        te,
        TaskExecutionStatus.FAILED,
        TaskExecutionStatusReason.SCHEDULER_ERROR,
        f"Gofer could not drive this task after {errors} errors; the last: {exc!r:.500}",
        owner=owner,
    )


def _registry_auth(te: TaskExecution) -> RegistryAuth | None:
    if not te.task.get("registry_auth"):
        return None
    task = Task.objects.filter(config_id=te.run.config_id, slug=te.task_slug).first()
    if task is None or not task.registry_auth:
        return None
    return RegistryAuth(user=task.registry_auth["user"], password=task.registry_auth.get("pass", ""))


def _retry_start(te: TaskExecution, owner: str, why: str) -> bool:
    """Count a transient failure to start and back off; the caller hands the task execution back to the queue."""
    attempts = te.start_attempts + 1
    TaskExecution.objects.filter(pk=te.pk, lease_owner=owner).update(start_attempts=attempts)
    note(te.run, "start_retry", f"{why}; retrying ({attempts}/{MAX_START_ATTEMPTS})", te.task_slug)
    time.sleep(min(2**attempts, 30))
    return False


def _start(te: TaskExecution, scheduler: Scheduler, owner: str) -> bool:
    """Start (or adopt) the container. Returns True if the task execution is complete (it failed to start)."""
    if te.cancel_requested is not None:
        return _complete_task(
            te,
            TaskExecutionStatus.CANCELLED,
            TaskExecutionStatusReason.CANCELLED,
            te.cancel_description or "cancelled before it started",
            owner=owner,
        )
    run = te.run
    try:
        environment = interpolation.resolve(te.variables, run=run, run_token=run.token_secret)
    except interpolation.InterpolationError as exc:
        if exc.transient and te.start_attempts + 1 < MAX_START_ATTEMPTS:
            return _retry_start(te, owner, str(exc))
        return _complete_task(
            te, TaskExecutionStatus.FAILED, TaskExecutionStatusReason.FAILED_PRECONDITION, str(exc), owner=owner
        )
    task = te.task
    spec = ContainerSpec(
        name=container_name(te),
        image=task["image"],
        env=environment.env,
        entrypoint=task.get("entrypoint"),
        command=task.get("command"),
        registry_auth=_registry_auth(te),
        always_pull=bool(task.get("always_pull_newest_image")),
        labels={
            LABEL_MANAGED: "true",
            LABEL_NAMESPACE: te.namespace_id,
            LABEL_PIPELINE: te.pipeline.slug,
            LABEL_RUN: str(run.number),
            LABEL_TASK: te.task_slug,
            LABEL_TASK_EXECUTION: str(te.pk),
        },
        cpu=task.get("cpu"),
        memory_mib=task.get("memory"),
    )
    _renew(te.pk, owner)
    try:
        started = scheduler.start(spec)
    except SchedulerError as exc:
        if exc.permanent or te.start_attempts + 1 >= MAX_START_ATTEMPTS:
            return _complete_task(
                te,
                TaskExecutionStatus.FAILED,
                TaskExecutionStatusReason.SCHEDULER_ERROR,
                f"could not start the container: {exc}",
                owner=owner,
            )
        return _retry_start(te, owner, f"engine error: {exc}")
    with transaction.atomic():
        updated = TaskExecution.objects.filter(pk=te.pk, lease_owner=owner, state=TaskExecutionState.PROCESSING).update(
            state=TaskExecutionState.RUNNING,
            container_id=started.handle,
            image_digest=started.image_digest,
            scheduler=scheduler.name,
            started=timezone.now(),
        )
        if updated != 1:
            raise LeaseLost(te.pk)
        events.publish(EventKind.STARTED_TASK_EXECUTION, _te_details(te), **run_scope(run))
        verb = "adopted existing container" if started.adopted else "started container"
        note(
            run, "task_started", f"{verb} {started.handle[:12]} ({started.image_digest or task['image']})", te.task_slug
        )
    return False


def _masker(te: TaskExecution) -> Any:
    from secretstore.masking import Masker

    values = interpolation.secret_values(te.variables, run=te.run, run_token=te.run.token_secret)
    return Masker(values).mask if values else None


def _stop_if_needed(te: TaskExecution, scheduler: Scheduler, owner: str) -> TaskExecution:
    """Apply cancellation, the task timeout and the SIGKILL deadline. Returns the refreshed task execution."""
    te.refresh_from_db(
        fields=[
            "cancel_requested",
            "cancel_wait_for",
            "cancel_description",
            "stop_reason",
            "stop_signalled",
            "stop_deadline",
        ]
    )
    now = timezone.now()
    if te.stop_signalled is None:
        reason, wait_for = "", 0
        timeout = te.task.get("timeout") or settings.GOFER_MAX_TASK_TIMEOUT
        if te.cancel_requested is not None:
            reason = TaskExecutionStatusReason.CANCELLED
            wait_for = te.cancel_wait_for if te.cancel_wait_for is not None else settings.GOFER_TASK_STOP_TIMEOUT
        elif te.started is not None and now - te.started > dt.timedelta(seconds=timeout):
            reason = TaskExecutionStatusReason.TIMEOUT
            wait_for = min(settings.GOFER_TASK_STOP_TIMEOUT, 30)
        if reason:
            deadline = now + dt.timedelta(seconds=wait_for)
            TaskExecution.objects.filter(pk=te.pk, lease_owner=owner).update(
                stop_reason=reason, stop_signalled=now, stop_deadline=deadline
            )
            te.stop_reason, te.stop_signalled, te.stop_deadline = reason, now, deadline
            what = "cancel requested" if reason == TaskExecutionStatusReason.CANCELLED else f"timeout of {timeout} s"
            if wait_for == 0:
                scheduler.kill(te.container_id)
                note(te.run, "task_stopping", f"{what}: killed (SIGKILL)", te.task_slug)
            else:
                scheduler.stop(te.container_id)
                note(te.run, "task_stopping", f"{what}: SIGTERM, SIGKILL in {wait_for} s", te.task_slug)
    elif te.stop_deadline is not None and now >= te.stop_deadline:
        scheduler.kill(te.container_id)
    return te


def _watch(te: TaskExecution, scheduler: Scheduler, owner: str) -> bool:
    """Pump logs and watch the container for one slice. Returns True once the task execution is complete."""
    slice_ends = time.monotonic() + settings.GOFER_DRIVE_SLICE_SECONDS
    logging_on = bool(te.task.get("logging", True))
    mask = _masker(te) if logging_on else None
    path = logs.path_for(te)
    writer = logs.LogWriter(path) if logging_on else None
    try:
        if writer is not None:
            writer.__enter__()
        while True:
            _renew(te.pk, owner)  # once per round: everything below acts only while this worker owns the task
            try:
                te = _stop_if_needed(te, scheduler, owner)
                if writer is not None:
                    follow = max(0.0, min(LOG_FOLLOW_SECONDS, slice_ends - time.monotonic()))
                    writer.append(list(scheduler.logs(te.container_id, writer.cursor, follow_for=follow)), mask)
                status = scheduler.status(te.container_id)
            except NoSuchContainer:
                status = Status(State.MISSING)
            if status.state == State.EXITED:
                if writer is not None:
                    _renew(te.pk, owner)
                    writer.append(list(scheduler.logs(te.container_id, writer.cursor, follow_for=0)), mask)
                    writer.finish(status.exit_code)
                return _record_exit(te, status, owner)
            if status.state == State.MISSING:
                if writer is not None:
                    writer.finish(None, note="the container disappeared from the engine")
                return _complete_task(
                    te,
                    TaskExecutionStatus.FAILED,
                    TaskExecutionStatusReason.ORPHANED,
                    "the container disappeared from the engine before its result was recorded",
                    owner=owner,
                )
            if time.monotonic() >= slice_ends:
                return False
            if writer is None:
                time.sleep(min(LOG_FOLLOW_SECONDS, max(0.0, slice_ends - time.monotonic())))
    finally:
        if writer is not None:
            writer.__exit__(None, None, None)


def _record_exit(te: TaskExecution, status: Any, owner: str) -> bool:
    exit_code = status.exit_code
    if te.stop_reason == TaskExecutionStatusReason.CANCELLED:
        result = (TaskExecutionStatus.CANCELLED, TaskExecutionStatusReason.CANCELLED, te.cancel_description)
    elif te.stop_reason == TaskExecutionStatusReason.TIMEOUT:
        result = (
            TaskExecutionStatus.FAILED,
            TaskExecutionStatusReason.TIMEOUT,
            f"stopped after its timeout of {te.task.get('timeout')} s",
        )
    elif exit_code == 0:
        result = (TaskExecutionStatus.SUCCESSFUL, "", "")
    else:
        detail = f"; {status.message}" if status.message else ""
        result = (TaskExecutionStatus.FAILED, TaskExecutionStatusReason.ABNORMAL_EXIT, f"exit code {exit_code}{detail}")
    return _complete_task(
        te,
        *result,
        exit_code=exit_code,
        started=status.started_at,
        ended=status.finished_at,
        owner=owner,
    )


# --- reconcile --------------------------------------------------------------------------------------------------------


def reconcile() -> dict[str, int]:
    """Re-drive whatever has nobody working on it. Idempotent; scheduled every minute and run at start-up."""
    now = timezone.now()
    orphaned = list(
        TaskExecution.objects.filter(state__in=ACTIVE_TASK_STATES)
        .filter(Q(lease_expires__isnull=True) | Q(lease_expires__lt=now))
        .values_list("pk", flat=True)
    )
    for te_pk in orphaned:
        queue.task_execution_now(te_pk)
    # Running runs that nobody is driving (their last message was lost), or past the global run timeout. A run
    # with a task under a live lease moves on by itself when that task completes.
    overdue = now - dt.timedelta(seconds=settings.GOFER_GLOBAL_RUN_TIMEOUT)
    driven = TaskExecution.objects.filter(state__in=ACTIVE_TASK_STATES, lease_expires__gte=now).values("run_id")
    running = list(
        Run.objects.filter(state=RunState.RUNNING)
        .filter(Q(started__lt=overdue, cancel_requested__isnull=True) | ~Q(pk__in=driven))
        .values_list("pk", flat=True)
    )
    for run_pk in running:
        queue.advance_run_now(run_pk)
    admitted = admit_pending_runs()
    for run_pk in admitted:
        queue.advance_run_now(run_pk)
    pruned = prune_containers()
    expired_events = prune_events()
    return {
        "orphaned_task_executions": len(orphaned),
        "stepped_runs": len(running),
        "admitted_runs": len(admitted),
        "pruned_containers": pruned,
        "pruned_events": expired_events,
    }


def prune_containers() -> int:
    """Remove containers whose task executions finished more than GOFER_CONTAINER_PRUNE_AFTER ago."""
    if not settings.GOFER_CONTAINER_PRUNE_AFTER:
        return 0

    def is_done(te_pk: str) -> bool:
        try:
            return TaskExecution.objects.filter(pk=int(te_pk), state=TaskExecutionState.COMPLETE).exists()
        except ValueError:
            return False

    try:
        return get_scheduler().prune(dt.timedelta(seconds=settings.GOFER_CONTAINER_PRUNE_AFTER), is_done)
    except SchedulerError as exc:
        logger.warning("container pruning failed: %s", exc)
        return 0


def prune_events() -> int:
    from events.models import Event

    cutoff = timezone.now() - dt.timedelta(seconds=settings.GOFER_EVENT_RETENTION_SECONDS)
    deleted, _ = Event.objects.filter(emitted__lt=cutoff).delete()
    return deleted
