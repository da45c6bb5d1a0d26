"""Admission: which pending runs may start now, and what starting one creates.

Limits are counted from the database (every run in state ``running``), under a lock on the system row, so two
workers admitting at once cannot both take the last slot. Within a namespace runs are admitted oldest first; a
pipeline whose oldest pending run cannot start blocks its younger runs (FIFO per pipeline) but not other pipelines';
a namespace at its ``concurrent_runs`` quota (pipelines/quotas.py) keeps its runs waiting.

Between namespaces the free slots of the global limit are shared by weight (stride scheduling): each namespace
has a virtual time (``NamespaceQuotas.admission_pass``) that grows by ``STRIDE / weight`` with every run of it
admitted, and each free slot goes to the namespace with pending runs whose virtual time is lowest (ties: fewer
running runs per weight, then the one whose next run has waited longest). A namespace that was idle does not bank
credit: it joins at the virtual time of those being served. One tenant's thousand queued runs therefore cannot
starve another's one, whatever the global limit (even 1): the other's run starts within the next free slots, and
over time a namespace of weight 3 starts three runs for every one of a namespace of weight 1. Each pass looks at
the oldest ``NAMESPACE_WINDOW`` pending runs of every namespace (one query, a window function), so a namespace's
runs are seen however many another has queued.

Admitting a run creates one task execution per task (state ``waiting``) with a snapshot of the task spec and its
merged variables, the task timeout capped by the namespace's ``task_timeout`` quota and, in sandbox mode, the
sandbox's caps (pipelines/sandbox.py), and mints the run token when a task asks for one.
"""

from __future__ import annotations

import logging
from collections import Counter, deque

from django.conf import settings
from django.db import transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from access import services as access
from access.models import SystemPreferences
from events import services as events
from events.choices import EventKind
from pipelines import quotas, sandbox
from pipelines.choices import ParallelismMode
from pipelines.models import NamespaceQuotas
from runs import queue
from runs.choices import RunState, RunStatusReason, TaskExecutionState
from runs.engine.outcomes import finish_run, te_details
from runs.engine.retention import expire_old_logs
from runs.models import Run, TaskExecution
from runs.services import note, run_details, run_scope
from runs.signals import run_admitted
from runs.variables import final_variables

logger = logging.getLogger(__name__)

# Virtual time a namespace of weight 1 spends per admitted run (weight w: STRIDE // w; weights go up to 1000).
STRIDE = 1_000_000
# How many pending runs of one namespace one admission pass looks at, and of all namespaces together.
NAMESPACE_WINDOW = 200
ADMISSION_WINDOW = 2000


def admit_pending_runs() -> list[int]:
    """Admit pending runs while the global, per-namespace and per-pipeline limits allow, sharing the global limit's
    free slots fairly between namespaces (module docstring). Returns admitted run pks."""
    if not Run.objects.filter(state=RunState.PENDING).exists():
        return []
    admitted: list[int] = []
    with transaction.atomic():
        SystemPreferences.load()
        SystemPreferences.objects.select_for_update().get(pk=1)
        running = Run.objects.filter(state=RunState.RUNNING)
        running_total = running.count()
        running_by_pipeline = Counter(running.values_list("pipeline_id", flat=True))
        running_by_namespace = Counter(running.values_list("namespace_id", flat=True))
        global_limit = settings.GOFER_GLOBAL_RUN_CONCURRENCY_LIMIT
        if running_total >= global_limit:
            # Nothing can start: say so on the oldest waiting run (one indexed query; a saturated server runs this
            # pass at every step of every run), and leave the queues alone. Cancelled pending runs are finished by
            # advance_run itself.
            oldest = Run.objects.filter(state=RunState.PENDING).order_by("created", "id").first()
            if oldest is not None:
                _note_waiting(oldest, f"waiting: the server runs its limit of {global_limit} runs")
            return []
        queues = _pending_by_namespace(NAMESPACE_WINDOW)
        limits = _quotas_of(list(queues))
        virtual = _virtual_times(limits, running_by_namespace)
        blocked: set[int] = set()
        active = set(queues)
        while active:
            namespace_id = min(
                active,
                key=lambda ns: (
                    virtual[ns],
                    running_by_namespace[ns] / limits[ns].weight,
                    queues[ns][0].created,
                    queues[ns][0].id,
                ),
            )
            queue = queues[namespace_id]
            concurrent = limits[namespace_id].concurrent_runs
            while queue:
                run = queue[0]
                if run.cancel_requested is not None:
                    finish_run(run, [])
                    queue.popleft()
                    continue
                if run.pipeline_id in blocked:
                    queue.popleft()
                    continue
                if concurrent is not None and running_by_namespace[namespace_id] >= concurrent:
                    _note_waiting(
                        run, f"waiting: namespace {namespace_id} runs its quota of {concurrent} concurrent runs"
                    )
                    queue.clear()
                    break
                limit = (run.config.parallelism if run.config else 0) or settings.GOFER_PIPELINE_RUN_CONCURRENCY_LIMIT
                if running_by_pipeline[run.pipeline_id] >= limit:
                    blocked.add(run.pipeline_id)
                    if run.config and run.config.parallelism_mode == ParallelismMode.CANCEL_OLDEST:
                        _supersede_oldest(run, running_by_pipeline[run.pipeline_id] - limit + 1)
                    _note_waiting(
                        run, f"waiting: {running_by_pipeline[run.pipeline_id]} of {limit} runs of this pipeline"
                    )
                    queue.popleft()
                    continue
                if running_total >= global_limit:
                    _note_waiting(run, f"waiting: the server runs its limit of {global_limit} runs")
                    queue.clear()
                    break
                _admit(run, limits[namespace_id])
                queue.popleft()
                running_total += 1
                running_by_pipeline[run.pipeline_id] += 1
                running_by_namespace[namespace_id] += 1
                virtual[namespace_id] += STRIDE // limits[namespace_id].weight
                admitted.append(run.pk)
                break  # the next slot goes to whichever namespace is furthest below its share now
            if not queue:
                active.discard(namespace_id)
        _save_virtual_times(limits, virtual)
    for pk in admitted:
        _after_admission(pk)
    return admitted


def _pending_by_namespace(per_namespace: int) -> dict[str, deque[Run]]:
    """The oldest ``per_namespace`` pending runs of every namespace (at most ADMISSION_WINDOW in all, each
    namespace's oldest first), locked, in queue order per namespace."""
    ranked = (
        Run.objects.filter(state=RunState.PENDING)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("namespace_id")], order_by=[F("created").asc(), F("id").asc()])
        )
        .filter(rank__lte=per_namespace)
        .order_by("rank", "created", "id")
        .values_list("pk", flat=True)[:ADMISSION_WINDOW]
    )
    # Locked in a second query: PostgreSQL refuses FOR UPDATE beside a window function.
    runs = (
        Run.objects.select_for_update(of=("self",))
        .filter(pk__in=list(ranked), state=RunState.PENDING)
        .select_related("pipeline", "config")
        .order_by("created", "id")
    )
    queues: dict[str, deque[Run]] = {}
    for run in runs:
        queues.setdefault(run.namespace_id, deque()).append(run)
    return queues


def _quotas_of(namespace_ids: list[str]) -> dict[str, NamespaceQuotas]:
    found = {q.namespace_id: q for q in NamespaceQuotas.objects.filter(namespace_id__in=namespace_ids)}
    return {ns: found.get(ns) or quotas.quotas_of(ns) for ns in namespace_ids}


def _virtual_times(limits: dict[str, NamespaceQuotas], running: Counter) -> dict[str, int]:
    """Each waiting namespace's virtual time for this pass. One that is not being served (no running run) is lifted
    to the current virtual time, the lowest at which one of those being served started its last run: an idle
    namespace joins there instead of claiming every slot until it has caught up with what it did not use (and,
    joining just below them, it gets the next slot)."""
    virtual = {ns: row.admission_pass for ns, row in limits.items()}
    served = [virtual[ns] - STRIDE // limits[ns].weight for ns in virtual if running[ns]]
    if served:
        now = min(served)
        for ns in virtual:
            if not running[ns]:
                virtual[ns] = max(virtual[ns], now)
    return virtual


def _save_virtual_times(limits: dict[str, NamespaceQuotas], virtual: dict[str, int]) -> None:
    changed = [row for ns, row in limits.items() if row.admission_pass != virtual[ns]]
    for row in changed:
        row.admission_pass = virtual[row.namespace_id]
    NamespaceQuotas.objects.bulk_update(changed, ["admission_pass"])


def _capped(snapshot: dict, limits: NamespaceQuotas) -> dict:
    """A task's snapshot with the namespace's task_timeout quota and, in sandbox mode, the sandbox's caps applied
    (a config registered before they were set or lowered runs within them too)."""
    if limits.task_timeout is not None and snapshot.get("timeout", 0) > limits.task_timeout:
        snapshot = {**snapshot, "timeout": limits.task_timeout}
    if sandbox.active():
        snapshot = sandbox.capped_snapshot(snapshot)
    return snapshot


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


def _admit(run: Run, limits: NamespaceQuotas) -> None:
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
        snapshot = _capped(task.snapshot(config_logging=run.config.logging), limits)
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
