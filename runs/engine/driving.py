"""``drive_task_execution``: one slice of work on one task execution, under its lease.

- **starting** (``processing``): resolves the variables, starts (or adopts) the container on the task execution's
  engine, records the container id and digest, and ends the step so other ready tasks can start (a continued start,
  see ``continue_run``, watches the container's first round first);
- **watching** (``running``), for one time slice: pumps new log lines to the durable log file (masked), enforces
  the task timeout and cancellation (SIGTERM, then SIGKILL at the deadline), and on exit records the exit code with
  the engine's own start and finish times. A container still running at the end of its slice is handed back to the
  queue, so a handful of workers can watch any number of containers.

The engine that started a task execution drives it to the end: its name is recorded on the task execution before
the container is asked for, and every later step uses that engine, whatever ``GOFER_SCHEDULER`` says now.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from access import services as access
from events import services as events
from events.choices import EventKind
from kernel import outbound
from pipelines.models import Task
from pipelines.taskspec import TaskSpec, registry_policy
from runs import interpolation, logs, queue, sandbox, telemetry
from runs.choices import TaskExecutionState, TaskExecutionStatus, TaskExecutionStatusReason
from runs.engine import advancing, masking
from runs.engine.leases import Lease, LeaseLost, claim, lease_seconds
from runs.engine.outcomes import complete_task, te_details
from runs.models import TaskExecution
from runs.schedulers import get_scheduler
from runs.schedulers.base import (
    LABEL_INSTALLATION,
    LABEL_MANAGED,
    LABEL_NAMESPACE,
    LABEL_PIPELINE,
    LABEL_RUN,
    LABEL_TASK,
    LABEL_TASK_EXECUTION,
    ContainerSpec,
    EngineUnavailable,
    Hardening,
    NoSuchContainer,
    RegistryAuth,
    Scheduler,
    SchedulerError,
    State,
    Status,
)
from runs.services import note, run_scope

logger = logging.getLogger(__name__)

MAX_START_ATTEMPTS = 10
MAX_DRIVE_ERRORS = 5
LOG_FOLLOW_SECONDS = 1.0
# A start taken from the queue watches this long before handing back: most short tasks exit inside it (one message
# instead of two), and a worker is held at most this long from the next start waiting in the queue.
QUEUED_FIRST_ROUND_SECONDS = 0.25
# A finished task's container is removed at the latest this long after it ended (see _Removals).
REMOVAL_DELAY_SECONDS = 1.0


def container_name(te: TaskExecution, installation: str) -> str:
    """Deterministic per task execution (what makes ``start`` idempotent across workers and crashes), and per
    installation, so that two installations on one engine never want the same name."""
    return f"gofer-{installation[:8]}-{te.namespace_id}-{te.pipeline.slug}-{te.run.number}-{te.task_slug}-{te.pk}"


def task_hardening() -> Hardening:
    """The operator's container defaults (GOFER_TASK_*): what every task container gets (docs/security.md); in
    sandbox mode, the sandbox's (docs/sandbox.md)."""
    capabilities = settings.GOFER_TASK_CAPABILITIES.strip()
    hardening = Hardening(
        user=settings.GOFER_TASK_USER,
        read_only_rootfs=settings.GOFER_TASK_READ_ONLY_ROOTFS,
        tmpfs_mib=settings.GOFER_TASK_TMPFS_MIB,
        no_new_privileges=settings.GOFER_TASK_NO_NEW_PRIVILEGES,
        capabilities=None
        if capabilities == "docker-default"
        else tuple(c.strip().upper() for c in capabilities.split(",") if c.strip()),
        pids_limit=settings.GOFER_TASK_PIDS_LIMIT,
        log_max_bytes=settings.GOFER_TASK_ENGINE_LOG_MAX_MIB * 1024 * 1024,
        log_max_files=settings.GOFER_TASK_ENGINE_LOG_MAX_FILES,
    )
    # Sandbox mode forces its own (runs/sandbox.py), whatever the operator's defaults say.
    return sandbox.locked_down(hardening) if settings.GOFER_SANDBOX else hardening


def engine_of(te: TaskExecution) -> Scheduler:
    """The engine that runs (or will run) ``te``: the one recorded on it, else the configured one."""
    return get_scheduler(te.scheduler or None)


def drive_task_execution(te_pk: int) -> None:
    """One slice of work on one task execution, under its lease, then the run's next step in this worker when there
    is one (``continue_run``). See the module docstring."""
    removals = _Removals()
    try:
        continue_run(_drive(te_pk, removals, continued=False), removals)
    finally:
        removals.finish()


def advance_and_drive(run_pk: int) -> None:
    """``advance_run``, then drive the task execution it made ready in this worker instead of queueing it, when it
    made exactly one ready (GOFER_CONTINUE_IN_WORKER; when off, everything it readies is queued)."""
    removals = _Removals()
    try:
        continue_run(advancing.advance_run(run_pk, keep_one=settings.GOFER_CONTINUE_IN_WORKER), removals)
    finally:
        removals.finish()


def continue_run(te_pk: int | None, removals: _Removals) -> None:
    """Drive ``te_pk`` and then whatever its completion makes ready in its run, one task execution after the other,
    in this worker: a chain of tasks costs no queue round trip per link. Each task execution is claimed under its own
    lease first, exactly as a queued ``drive_task_execution`` would claim it, so a continuation never touches a task
    execution another worker holds (it stops instead), and a worker killed mid-chain leaves every task execution in a
    state the reconciler re-drives. When a step readies several task executions they are all queued, so that idle
    workers start them side by side."""
    while te_pk is not None:
        te_pk = _drive(te_pk, removals, continued=True)


def _drive(te_pk: int, removals: _Removals, *, continued: bool) -> int | None:
    """One step on one task execution under its lease: start it, or watch it for a slice. A continued start also
    watches the container's first round. Returns the task execution to continue with (the one its completion made
    ready), or None."""
    lease = claim(te_pk)
    if lease is None:
        return None
    done = False
    run_pk: int | None = None
    try:
        te = TaskExecution.objects.select_related("run", "run__pipeline", "pipeline").get(pk=te_pk)
        run_pk = te.run_id
        if te.state == TaskExecutionState.PROCESSING:
            done = _start(te, lease)
            removals.start()  # the previous link's container, now that this one's start no longer competes
            # Started (_start keeps the instance current): watch a first round before handing back, so that a short
            # task ends inside it with no queue round trip between its start and its exit. The only ready task of
            # its run, taken by the worker that readied it, watches LOG_FOLLOW_SECONDS; a start from the queue only
            # QUEUED_FIRST_ROUND_SECONDS, so that starts waiting for a worker (its siblings, other runs') wait
            # little for this one; with GOFER_CONTINUE_IN_WORKER off, none (one message per step).
            first_round = LOG_FOLLOW_SECONDS if continued else QUEUED_FIRST_ROUND_SECONDS
            if not settings.GOFER_CONTINUE_IN_WORKER:
                first_round = 0
            if not done and te.state == TaskExecutionState.RUNNING and first_round > 0:
                done = _watch(te, engine_of(te), lease, slice_seconds=first_round)
        elif te.state == TaskExecutionState.RUNNING:
            done = _watch(te, engine_of(te), lease)
    except LeaseLost:
        return None
    except EngineUnavailable as exc:
        logger.warning("engine unavailable while driving task execution %s: %s", te_pk, exc)
        try:
            lease.sleep(1)
        except LeaseLost:
            return None
    except Exception as exc:
        done = _drive_failed(te_pk, lease, exc)
        if not done:
            return None
    if done:
        masking.forget(te_pk)
        # Removing the container is not on the path from this task's exit to its child's start: see _Removals.
        removals.defer(te_pk)
        if run_pk is None:  # the step failed before it read the task execution
            run_pk = TaskExecution.objects.filter(pk=te_pk).values_list("run_id", flat=True).first()
        if run_pk is not None:
            return advancing.advance_run(run_pk, keep_one=settings.GOFER_CONTINUE_IN_WORKER)
        return None
    _hand_back(lease)
    return None


def _in_thread(func: Any, *args: Any) -> threading.Thread:
    def body() -> None:
        try:
            func(*args)
        finally:
            # The thread's own database connection: Django closes only those of request threads.
            connection.close()

    thread = threading.Thread(target=body, name=f"{func.__name__}-{args}", daemon=True)
    thread.start()
    return thread


class _Removals:
    """The finished containers of one worker step, removed off the path from a task's exit to its child's start:
    each removal starts once the next task of the chain has been started (the engine does both on the same cores: a
    removal beside a start slows the start), at the latest REMOVAL_DELAY_SECONDS after the task ended (a start that
    pulls an image must not keep the last container, and the secrets in its configuration, for as long), or when the
    step ends. The step waits for every removal before it ends. One that never ran (the worker died) is the
    pruner's (pruning.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deferred: dict[int, threading.Timer] = {}
        self._threads: list[threading.Thread] = []

    def defer(self, te_pk: int) -> None:
        timer = threading.Timer(REMOVAL_DELAY_SECONDS, self._start_one, args=(te_pk,))
        timer.daemon = True
        with self._lock:
            self._deferred[te_pk] = timer
        timer.start()

    def _start_one(self, te_pk: int) -> None:
        with self._lock:
            timer = self._deferred.pop(te_pk, None)
            if timer is None:
                return  # started already
            timer.cancel()
            self._threads.append(_in_thread(_remove_finished_container, te_pk))

    def start(self) -> None:
        """Start every deferred removal now."""
        for te_pk in list(self._deferred):
            self._start_one(te_pk)

    def finish(self) -> None:
        self.start()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()


def _remove_finished_container(te_pk: int) -> None:
    """Remove a completed task's container at once (GOFER_CONTAINER_PRUNE_AFTER 0): its configuration holds the
    task's secrets and the engine's own log its unmasked output. Best effort: the reconciler's prune retries."""
    if settings.GOFER_CONTAINER_PRUNE_AFTER:
        return
    te = (
        TaskExecution.objects.filter(pk=te_pk, state=TaskExecutionState.COMPLETE)
        .only("container_id", "scheduler")
        .first()
    )
    if te is None or not te.container_id:
        return
    try:
        engine_of(te).remove(te.container_id)
    except Exception as exc:  # the sweep in pruning.py removes it later
        logger.warning("could not remove the container of task execution %s yet: %s", te_pk, exc)


def _hand_back(lease: Lease) -> None:
    """Release the lease and queue the next slice; the grace keeps the reconciler from queueing a second one."""
    if lease.release(not_before=timezone.now() + dt.timedelta(seconds=lease_seconds() * 2)):
        queue.task_execution_now(lease.te_pk)


def _drive_failed(te_pk: int, lease: Lease, exc: Exception) -> bool:
    """An unexpected error (a bug, an engine answer we do not understand). The task execution is left where it is
    and retried when the reconciler next passes; after MAX_DRIVE_ERRORS it fails, its container is killed, and the
    error is recorded on it rather than only in a log. Returns True when it was failed."""
    logger.exception("driving task execution %s failed", te_pk)
    te = TaskExecution.objects.select_related("run", "pipeline").filter(lease.mine()).first()
    if te is None:
        return False
    errors = te.drive_errors + 1
    if errors < MAX_DRIVE_ERRORS:
        TaskExecution.objects.filter(lease.mine()).update(
            drive_errors=errors, lease_owner="", lease_expires=timezone.now()
        )
        note(te.run, "internal_error", f"error {errors}/{MAX_DRIVE_ERRORS}, will retry: {exc!r:.300}", te.task_slug)
        return False
    if te.container_id:
        try:
            engine_of(te).kill(te.container_id)
        except Exception:
            logger.warning("could not kill container %s of failed task execution %s", te.container_id, te_pk)
    return complete_task(
        te,
        TaskExecutionStatus.FAILED,
        TaskExecutionStatusReason.SCHEDULER_ERROR,
        f"Gofer could not drive this task after {errors} errors; the last: {exc!r:.500}",
        lease=lease,
    )


# --- starting ---------------------------------------------------------------------------------------------------------


def _registry_auth(te: TaskExecution, spec: TaskSpec) -> RegistryAuth | None:
    """The registry credentials, read from the encrypted task row (snapshots never hold the password)."""
    if not spec.registry_auth:
        return None
    task = Task.objects.filter(config_id=te.run.config_id, slug=te.task_slug).first()
    if task is None or not task.registry_auth:
        return None
    return RegistryAuth(user=task.registry_auth["user"], password=task.registry_auth.get("pass", ""))


def _retry_start(te: TaskExecution, lease: Lease, why: str) -> bool:
    """Count a transient failure to start and back off (renewing the lease while waiting); the caller hands the task
    execution back to the queue."""
    attempts = te.start_attempts + 1
    TaskExecution.objects.filter(lease.mine()).update(start_attempts=attempts)
    note(te.run, "start_retry", f"{why}; retrying ({attempts}/{MAX_START_ATTEMPTS})", te.task_slug)
    lease.sleep(min(2**attempts, 30))
    return False


def _start(te: TaskExecution, lease: Lease) -> bool:
    """Start (or adopt) the container. Returns True if the task execution is complete (it failed to start)."""
    if te.cancel_requested is not None:
        return complete_task(
            te,
            TaskExecutionStatus.CANCELLED,
            TaskExecutionStatusReason.CANCELLED,
            te.cancel_description or "cancelled before it started",
            lease=lease,
        )
    run = te.run
    try:
        environment = interpolation.resolve(te.variables, run=run, run_token=run.token_secret)
    except interpolation.InterpolationError as exc:
        if exc.transient and te.start_attempts + 1 < MAX_START_ATTEMPTS:
            return _retry_start(te, lease, str(exc))
        return complete_task(
            te, TaskExecutionStatus.FAILED, TaskExecutionStatusReason.FAILED_PRECONDITION, str(exc), lease=lease
        )
    spec = TaskSpec.from_snapshot(te.task)
    policy = registry_policy()
    try:
        # The operator's list may have changed since registration. The engine checks again, with DNS, just before
        # it pulls (a name registered as public may resolve to a private address now).
        policy.check_literal(*outbound.registry_of(spec.image))
    except outbound.Refused as exc:
        return complete_task(
            te,
            TaskExecutionStatus.FAILED,
            TaskExecutionStatusReason.FAILED_PRECONDITION,
            f"image {spec.image}: its registry is not allowed: {exc}",
            lease=lease,
        )
    installation = access.installation_id()
    container = ContainerSpec(
        name=container_name(te, installation),
        image=spec.image,
        env=environment.env,
        entrypoint=spec.entrypoint,
        command=spec.command,
        registry_auth=_registry_auth(te, spec),
        always_pull=spec.always_pull_newest_image,
        labels={
            LABEL_MANAGED: "true",
            LABEL_INSTALLATION: installation,
            LABEL_NAMESPACE: te.namespace_id,
            LABEL_PIPELINE: te.pipeline.slug,
            LABEL_RUN: str(run.number),
            LABEL_TASK: te.task_slug,
            LABEL_TASK_EXECUTION: str(te.pk),
        },
        cpu=spec.cpu if spec.cpu is not None else settings.GOFER_TASK_DEFAULT_CPU,
        memory_mib=spec.memory if spec.memory is not None else (settings.GOFER_TASK_DEFAULT_MEMORY_MIB or None),
        hardening=task_hardening(),
        registry_policy=policy,
    )
    if not te.scheduler:
        # Recorded before the engine is asked: a worker that dies after asking leaves a container on this engine,
        # and the next one must look for it there, whatever GOFER_SCHEDULER says by then.
        te.scheduler = get_scheduler().name
        TaskExecution.objects.filter(lease.mine()).update(scheduler=te.scheduler)
    scheduler = engine_of(te)
    lease.renew()
    telemetry.queue_waited(te)
    try:
        # Pulling an image can take longer than a lease: keep it while the engine works.
        with lease.kept(), telemetry.phase("task.container_start", te):
            started = scheduler.start(container)
    except SchedulerError as exc:
        if exc.permanent or te.start_attempts + 1 >= MAX_START_ATTEMPTS:
            return complete_task(
                te,
                TaskExecutionStatus.FAILED,
                TaskExecutionStatusReason.SCHEDULER_ERROR,
                f"could not start the container: {exc}",
                lease=lease,
            )
        return _retry_start(te, lease, f"engine error: {exc}")
    with transaction.atomic():
        running = {
            "state": TaskExecutionState.RUNNING,
            "container_id": started.handle,
            "image_digest": started.image_digest,
            "started": timezone.now(),
        }
        updated = TaskExecution.objects.filter(lease.mine(), state=TaskExecutionState.PROCESSING).update(**running)
        if updated != 1:
            raise LeaseLost(te.pk)
        for name, value in running.items():
            setattr(te, name, value)  # the caller watches this instance next: no need to read it back
        events.publish(EventKind.STARTED_TASK_EXECUTION, te_details(te), **run_scope(run))
        verb = "adopted existing container" if started.adopted else "started container"
        note(run, "task_started", f"{verb} {started.handle[:12]} ({started.image_digest or spec.image})", te.task_slug)
    return False


# --- watching ---------------------------------------------------------------------------------------------------------


def _stop_if_needed(te: TaskExecution, scheduler: Scheduler, lease: Lease) -> TaskExecution:
    """Apply cancellation, the task timeout and the SIGKILL deadline. Returns the refreshed task execution."""
    te.refresh_from_db(
        fields=[
            "cancel_requested",
            "cancel_wait_for",
            "cancel_reason",
            "cancel_description",
            "stop_reason",
            "stop_signalled",
            "stop_deadline",
        ]
    )
    now = timezone.now()
    if te.stop_signalled is None:
        reason, wait_for = "", 0
        timeout = TaskSpec.from_snapshot(te.task).timeout or settings.GOFER_MAX_TASK_TIMEOUT
        if te.cancel_requested is not None:
            reason = TaskExecutionStatusReason.CANCELLED
            wait_for = te.cancel_wait_for if te.cancel_wait_for is not None else settings.GOFER_TASK_STOP_TIMEOUT
        elif te.started is not None and now - te.started > dt.timedelta(seconds=timeout):
            reason = TaskExecutionStatusReason.TIMEOUT
            wait_for = min(settings.GOFER_TASK_STOP_TIMEOUT, 30)
        if reason:
            deadline = now + dt.timedelta(seconds=wait_for)
            TaskExecution.objects.filter(lease.mine()).update(
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


class _Pump:
    """Moves lines from the engine to the log file, one write and one fsync per batch the engine had ready (Docker:
    per read of its stream, so a line is stored as soon as it arrives, and a fast container's lines thousands at a
    time), renewing the lease as it goes and noticing a cancellation while it drains (a task that printed gigabytes
    before it exited must not hold its worker, nor ignore a cancel, for as long as reading them takes)."""

    def __init__(self, te: TaskExecution, writer: logs.LogWriter, mask: masking.Mask | None, lease: Lease) -> None:
        self.te = te
        self.writer = writer
        self.mask = mask
        self.lease = lease
        self.renew_every = max(0.5, lease_seconds() / 3)
        self.renewed = time.monotonic()
        self.cancelled = False

    def _checkpoint(self) -> None:
        if time.monotonic() - self.renewed >= self.renew_every:
            self.lease.renew()
            self.renewed = time.monotonic()
            self.cancelled = TaskExecution.objects.filter(pk=self.te.pk, cancel_requested__isnull=False).exists()

    def pump(self, batches: Any) -> None:
        """Store ``batches`` (an engine's ``log_batches`` iterator) until it ends or the task is found cancelled. A
        single huge line is read under the lease's heartbeat, so no read outlives the lease."""
        with self.lease.kept():
            try:
                for batch in batches:
                    self.writer.append_batch(batch, self.mask)
                    self._checkpoint()
                    if self.cancelled:
                        break
            finally:
                # Stopping early must release the engine's stream now, not when the generator is collected.
                close = getattr(batches, "close", None)
                if close is not None:
                    close()


def _watch(te: TaskExecution, scheduler: Scheduler, lease: Lease, slice_seconds: float | None = None) -> bool:
    """Pump logs and watch the container for one slice (GOFER_DRIVE_SLICE_SECONDS unless ``slice_seconds``).
    Returns True once the task execution is complete."""
    slice_ends = time.monotonic() + (settings.GOFER_DRIVE_SLICE_SECONDS if slice_seconds is None else slice_seconds)
    logging_on = TaskSpec.from_snapshot(te.task).logging
    mask = masking.masker_for(te) if logging_on else None
    writer = logs.LogWriter(logs.path_for(te)) if logging_on else None
    try:
        if writer is not None:
            writer.__enter__()
        pump = _Pump(te, writer, mask, lease) if writer is not None else None
        while True:
            lease.renew()  # once per round: everything below acts only while this worker owns the task
            try:
                te = _stop_if_needed(te, scheduler, lease)
                if pump is not None and not writer.finished:
                    follow = max(0.0, min(LOG_FOLLOW_SECONDS, slice_ends - time.monotonic()))
                    pump.pump(scheduler.log_batches(te.container_id, writer.cursor, follow_for=follow))
                status = scheduler.status(te.container_id)
            except NoSuchContainer:
                status = Status(State.MISSING)
            if status.state == State.EXITED:
                if pump is not None and not writer.finished:
                    lease.renew()
                    with telemetry.phase("task.log_drain", te):
                        pump.pump(scheduler.log_batches(te.container_id, writer.cursor, follow_for=0))
                    if pump.cancelled:
                        # Cancelled while its output was still being stored: stop storing, end the task now.
                        writer.finish(status.exit_code, note="log drain stopped: the task was cancelled")
                        return _record_cancelled_drain(te, status, lease)
                    writer.finish(status.exit_code)
                return _record_exit(te, status, lease)
            if status.state == State.MISSING:
                if writer is not None:
                    writer.finish(None, note="the container disappeared from the engine")
                return complete_task(
                    te,
                    TaskExecutionStatus.FAILED,
                    TaskExecutionStatusReason.ORPHANED,
                    "the container disappeared from the engine before its result was recorded",
                    lease=lease,
                )
            if time.monotonic() >= slice_ends:
                return False
            if writer is None:
                time.sleep(min(LOG_FOLLOW_SECONDS, max(0.0, slice_ends - time.monotonic())))
    finally:
        if writer is not None:
            writer.__exit__(None, None, None)


def _record_cancelled_drain(te: TaskExecution, status: Status, lease: Lease) -> bool:
    te.refresh_from_db(fields=["cancel_description"])
    return complete_task(
        te,
        TaskExecutionStatus.CANCELLED,
        TaskExecutionStatusReason.CANCELLED,
        (te.cancel_description or "cancelled") + "; its remaining output was not stored",
        exit_code=status.exit_code,
        started=status.started_at,
        ended=status.finished_at,
        lease=lease,
    )


def _record_exit(te: TaskExecution, status: Status, lease: Lease) -> bool:
    exit_code = status.exit_code
    if te.stop_reason == TaskExecutionStatusReason.CANCELLED:
        result = (TaskExecutionStatus.CANCELLED, TaskExecutionStatusReason.CANCELLED, te.cancel_description)
    elif te.stop_reason == TaskExecutionStatusReason.TIMEOUT:
        result = (
            TaskExecutionStatus.FAILED,
            TaskExecutionStatusReason.TIMEOUT,
            f"stopped after its timeout of {TaskSpec.from_snapshot(te.task).timeout} s",
        )
    elif exit_code == 0:
        result = (TaskExecutionStatus.SUCCESSFUL, "", "")
    else:
        detail = f"; {status.message}" if status.message else ""
        result = (TaskExecutionStatus.FAILED, TaskExecutionStatusReason.ABNORMAL_EXIT, f"exit code {exit_code}{detail}")
    return complete_task(
        te,
        *result,
        exit_code=exit_code,
        started=status.started_at,
        ended=status.finished_at,
        lease=lease,
    )
