"""Notices: deciding them (when runs and task executions complete, when runs start, and in the sweep) and
delivering them (on the workers), with every attempt recorded.

Guarantees:
- A notice is recorded in the transaction that decided it, under a lock on its subscription row, at most once per
  ``(subscription, run, kind)``; deciding the same run again (a second worker, the sweep) records nothing.
- Delivery happens on the workers (``notifiers.tasks.deliver_notice``), never in a request or in the engine's
  transaction. A worker claims the notice with a conditional UPDATE before it sends, so two workers never both send
  it; a claim whose worker died lapses (``GOFER_NOTIFIER_CLAIM_SECONDS``) and the sweep hands the notice on.
- Network errors, 5xx and 429 are retried with exponential backoff and jitter (a 429's Retry-After is waited at
  least), up to ``GOFER_NOTIFIER_MAX_ATTEMPTS``; every attempt is a Delivery row, its error and the first bytes of
  the answer masked of the kind's secrets.
- After ``GOFER_NOTIFIER_ERROR_AFTER`` notices in a row failed, the subscription is ``error`` (triggers' status,
  with the reason); notices are still decided and sent, and the first success heals it.
- Credentials are never in a notice, an attempt, an event or a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from events import services as events
from events.choices import EventKind
from notifiers import rules
from notifiers.choices import (
    RUN_RULES,
    TASK_RULES,
    AttemptOutcome,
    NoticeKind,
    NoticeState,
    Rule,
)
from notifiers.kinds import KINDS
from notifiers.kinds.base import Context, NotifierKind
from notifiers.models import Delivery, Notice
from notifiers.outbound import DeliveryError, Sent
from notifiers.payload import facts
from runs import queue
from runs.choices import RunState, TaskExecutionState
from runs.interpolation import InterpolationError, resolve_settings
from runs.models import Run, TaskExecution
from secretstore.masking import Masker
from telemetry import metrics
from triggers import logbook
from triggers import services as triggers
from triggers.choices import (
    WATCHED_SUBSCRIPTION_STATES,
    ExtensionKind,
    ExtensionStatus,
    SubscriptionStatus,
)
from triggers.models import Subscription

logger = logging.getLogger(__name__)

DELIVER = "notifiers.tasks.deliver_notice"  # a contract with queued messages: never rename
# The outcome of an attempt as the gofer.notifier.deliveries counter names it (docs/observability.md).
METRIC_OUTCOMES = {
    AttemptOutcome.SUCCEEDED: "delivered",
    AttemptOutcome.RETRYING: "failed",
    AttemptOutcome.FAILED: "given_up",
}
OWNER = f"{socket.gethostname()}:{os.getpid()}"
# Runs that finished this long before the last sweep are looked at again: their ``ended`` was written before
# their transaction committed, and by another worker's clock.
SWEEP_MARGIN = dt.timedelta(seconds=15)
SWEEP_BATCH = 500


# --- which subscriptions ------------------------------------------------------------------------------------------


def notifier_subscriptions(pipeline_id: int, rule_names: frozenset[str] | set[str]) -> QuerySet:
    """The pipeline's notifier subscriptions with one of ``rule_names`` that may notify now (active or error,
    extension enabled), found by their lookup key (the rule) without decrypting anybody's settings."""
    return Subscription.objects.filter(
        pipeline_id=pipeline_id,
        extension__kind=ExtensionKind.NOTIFIER,
        extension__status=ExtensionStatus.ENABLED,
        status__in=WATCHED_SUBSCRIPTION_STATES,
        lookup_key__in=sorted(rule_names),
    ).select_related("extension", "pipeline")


def kind_of(subscription: Subscription) -> NotifierKind | None:
    return KINDS.get(subscription.extension.builtin)


def _locked(subscription_pk: int) -> Subscription | None:
    found = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("extension", "pipeline")
        .filter(pk=subscription_pk)
        .first()
    )
    if found is None or found.status not in WATCHED_SUBSCRIPTION_STATES or not found.extension.enabled:
        return None
    return found if kind_of(found) is not None else None


# --- deciding -----------------------------------------------------------------------------------------------------


def _record(subscription: Subscription, run: Run, decision: rules.Decision, *, silenced: bool = False) -> Notice | None:
    """Record the notice (in the caller's transaction, under the subscription's lock) and queue its delivery
    after the commit. None when this run already has this kind of notice."""
    now = timezone.now()
    try:
        with transaction.atomic():
            notice = Notice.objects.create(
                namespace_id=subscription.namespace_id,
                pipeline_id=subscription.pipeline_id,
                subscription=subscription,
                run=run,
                kind=decision.kind,
                rule=subscription.settings.get("when", ""),
                description=decision.description[:2000],
                task_slug=decision.task_slug,
                state=NoticeState.SILENCED if silenced else NoticeState.PENDING,
                finished=now if silenced else None,
                enqueued_at=None if silenced else now,
            )
    except IntegrityError:
        return None
    events.publish(
        EventKind.NOTIFIED,
        {
            **triggers.subscription_details(subscription),
            "run_id": run.number,
            "notice_id": notice.pk,
            "notice": notice.kind,
            "rule": notice.rule,
            "silenced": silenced,
        },
        namespace_id=subscription.namespace_id,
        pipeline_slug=subscription.pipeline.slug,
        run_number=run.number,
    )
    logbook.write(
        subscription.extension_id,
        f"notice {notice.kind} for run {run.number} ({notice.rule}): {notice.description}"
        + (" (silenced: recovery=false)" if silenced else ""),
        subscription=subscription,
    )
    if not silenced:
        queue.enqueue_on_commit(DELIVER, notice.pk)
    return notice


def _last_state_notice(subscription: Subscription) -> Notice | None:
    return (
        Notice.objects.filter(subscription=subscription, kind__in=[NoticeKind.TRIGGERED, NoticeKind.RECOVERED])
        .select_related("run")
        .order_by("-id")
        .first()
    )


def _before(run: Run, subscription: Subscription) -> bool:
    """A run that completed before the subscription existed is not its business (the sweep looks back)."""
    return run.ended is not None and run.ended < subscription.created


def evaluate_run_for(subscription_pk: int, run: Run) -> Notice | None:
    """Decide what one subscription's rule says about the completed ``run`` and record it."""
    with transaction.atomic():
        subscription = _locked(subscription_pk)
        if subscription is None or subscription.settings.get("when") not in RUN_RULES:
            return None
        if _before(run, subscription):
            return None
        config = subscription.settings
        last = None
        if config.get("when") in (Rule.FAILED_IN_A_ROW, Rule.FAILURE_RATE):
            last = _last_state_notice(subscription)
            # A run that completed before the last decision was decided already (or is too late to matter).
            if last is not None and not rules.is_after(run, last.run):
                return None
        decision = rules.decide_run(config, run, last.kind if last else None)
        if decision is None:
            return None
        silenced = decision.kind == NoticeKind.RECOVERED and not rules.recovery_on(config)
        return _record(subscription, run, decision, silenced=silenced)


def evaluate_run(run_pk: int) -> list[Notice]:
    """Every notifier subscription of the run's pipeline, on the run that just completed."""
    run = Run.objects.select_related("pipeline").filter(pk=run_pk, state=RunState.COMPLETE).first()
    if run is None:
        return []
    recorded = []
    # A subscription with a notice about this run has decided it already (the sweep comes back to every run).
    decided = Notice.objects.filter(run=run).exclude(kind=NoticeKind.STARTED).values("subscription_id")
    candidates = notifier_subscriptions(run.pipeline_id, RUN_RULES).exclude(pk__in=decided)
    for subscription_pk in candidates.values_list("pk", flat=True):
        notice = evaluate_run_for(subscription_pk, run)
        if notice is not None:
            recorded.append(notice)
    return recorded


def evaluate_task_execution(task_execution_pk: int, pipeline_pk: int | None = None) -> list[Notice]:
    """The task rules of the pipeline, on a task execution that just completed. With ``pipeline_pk`` (the
    signal's), a pipeline without task-rule subscriptions costs one query and nothing is loaded."""
    if pipeline_pk is not None and not notifier_subscriptions(pipeline_pk, TASK_RULES).exists():
        return []
    te = (
        TaskExecution.objects.select_related("run", "run__pipeline")
        .filter(pk=task_execution_pk, state=TaskExecutionState.COMPLETE)
        .first()
    )
    if te is None:
        return []
    recorded = []
    for subscription_pk in notifier_subscriptions(te.pipeline_id, TASK_RULES).values_list("pk", flat=True):
        with transaction.atomic():
            subscription = _locked(subscription_pk)
            if subscription is not None and _before(te, subscription):
                subscription = None
            decision = rules.decide_task(subscription.settings, te) if subscription is not None else None
            notice = _record(subscription, te.run, decision) if decision is not None else None
        if notice is not None:
            recorded.append(notice)
    return recorded


def run_started(run_pk: int) -> list[Notice]:
    """Kinds that report a run's start (notify-github: pending status, in_progress check run)."""
    run = Run.objects.select_related("pipeline").filter(pk=run_pk).first()
    if run is None:
        return []
    recorded = []
    for subscription in notifier_subscriptions(run.pipeline_id, {Rule.RUN_FINISHED}):
        kind = kind_of(subscription)
        if kind is None or not kind.starts(subscription.settings, subscription.extension.settings or {}):
            continue
        with transaction.atomic():
            locked = _locked(subscription.pk)
            decision = rules.Decision(NoticeKind.STARTED, f"run {run.number} started")
            notice = _record(locked, run, decision) if locked is not None else None
        if notice is not None:
            recorded.append(notice)
    return recorded


def check_durations(now: dt.datetime | None = None) -> list[Notice]:
    """``duration_exceeded``: a notice for every run still running longer than its subscription's duration."""
    now = now or timezone.now()
    recorded = []
    subscriptions = Subscription.objects.filter(
        extension__kind=ExtensionKind.NOTIFIER,
        extension__status=ExtensionStatus.ENABLED,
        status__in=WATCHED_SUBSCRIPTION_STATES,
        lookup_key=Rule.DURATION_EXCEEDED,
    ).select_related("extension", "pipeline")
    for subscription in subscriptions:
        duration = rules.duration_of(subscription.settings)
        notified = Notice.objects.filter(subscription=subscription, kind=NoticeKind.TRIGGERED).values("run_id")
        overdue = (
            Run.objects.filter(
                pipeline_id=subscription.pipeline_id, state=RunState.RUNNING, started__lte=now - duration
            )
            .exclude(pk__in=notified)
            .select_related("pipeline")[:SWEEP_BATCH]
        )
        for run in overdue:
            with transaction.atomic():
                locked = _locked(subscription.pk)
                if locked is None:
                    break
                text = f"run {run.number} has run longer than {subscription.settings['duration']}"
                notice = _record(locked, run, rules.Decision(NoticeKind.TRIGGERED, text))
            if notice is not None:
                recorded.append(notice)
    return recorded


# --- delivering ---------------------------------------------------------------------------------------------------


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: base * 2^(attempt-1), at most the maximum, drawn from its upper
    half (jitter, so that notices failing together do not retry together); a Retry-After is waited at least."""
    delay = min(
        settings.GOFER_NOTIFIER_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), settings.GOFER_NOTIFIER_RETRY_MAX_SECONDS
    )
    delay = random.uniform(delay / 2, delay)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def claim(notice_pk: int, now: dt.datetime | None = None) -> str | None:
    """Take the notice for this worker (conditional UPDATE): pending and due, or delivering under a lapsed claim.
    Returns the claim's token, or None when it is not this worker's to deliver now."""
    now = now or timezone.now()
    token = f"{OWNER}:{uuid.uuid4().hex[:12]}"
    due = Q(state=NoticeState.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    lapsed = Q(state=NoticeState.DELIVERING, claim_expires__lt=now)
    taken = Notice.objects.filter(due | lapsed, pk=notice_pk).update(
        state=NoticeState.DELIVERING,
        claimed_by=token,
        claim_expires=now + dt.timedelta(seconds=settings.GOFER_NOTIFIER_CLAIM_SECONDS),
    )
    return token if taken == 1 else None


def _context(notice: Notice, kind: NotifierKind) -> tuple[Context, list[str]]:
    subscription = notice.subscription
    config = subscription.extension.settings or {}
    try:
        resolved = resolve_settings(subscription.settings or {}, pipeline=subscription.pipeline)
    except InterpolationError as exc:
        raise DeliveryError(f"setting {str(exc).removeprefix('variable ')}", retryable=exc.transient) from None
    context = Context(
        notice=notice,
        run=notice.run,
        subscription=subscription,
        settings=resolved.env,
        config=config,
        policy=kind.policy(config),
        facts=facts(notice),
    )
    return context, [*resolved.secret_values, *kind.secrets(context)]


def deliver(notice_pk: int, now: dt.datetime | None = None) -> Delivery | None:
    """One attempt at delivering a notice, if it is due and this worker wins the claim. Returns the attempt."""
    now = now or timezone.now()
    token = claim(notice_pk, now)
    if token is None:
        return None
    notice = Notice.objects.select_related(
        "subscription", "subscription__extension", "subscription__pipeline", "run", "run__pipeline"
    ).get(pk=notice_pk)
    subscription = notice.subscription
    kind = kind_of(subscription)
    secrets: list[str] = []
    started = time.monotonic()
    sent: Sent | None = None
    error: DeliveryError | None = None
    try:
        if kind is None:
            raise DeliveryError(f"extension {subscription.extension_id} is not a built-in notifier", retryable=False)
        if subscription.status == SubscriptionStatus.DISABLED or not subscription.extension.enabled:
            raise DeliveryError("not sent: the subscription or its extension is disabled", retryable=False)
        context, secrets = _context(notice, kind)
        kind.permit(context)
        sent = kind.send(context)
    except DeliveryError as exc:
        error = exc
    except Exception as exc:  # a bug in a kind must not keep the notice claimed until the claim lapses
        logger.exception("notice %s: the %s kind failed", notice_pk, subscription.extension_id)
        error = DeliveryError(f"internal error ({type(exc).__name__}); see the server log")
    mask = Masker(secrets).mask if secrets else (lambda text: text)
    return _finish(notice, token, sent, error, mask, now, int((time.monotonic() - started) * 1000))


def _finish(notice: Notice, token: str, sent: Sent | None, error: DeliveryError | None, mask: Any, now, ms: int):
    attempt = notice.attempts + 1
    subscription = notice.subscription
    finished = timezone.now()
    fields: dict[str, Any] = {"attempts": attempt, "claimed_by": "", "claim_expires": None}
    retry_at = None
    if error is None:
        outcome = AttemptOutcome.SUCCEEDED
        fields.update(state=NoticeState.DELIVERED, finished=finished, last_error="", next_attempt_at=None)
        if sent is not None and sent.remote_id:
            fields["remote_id"] = sent.remote_id[:64]
    elif error.retryable and attempt < settings.GOFER_NOTIFIER_MAX_ATTEMPTS:
        outcome = AttemptOutcome.RETRYING
        retry_at = finished + dt.timedelta(seconds=backoff(attempt, error.retry_after))
        fields.update(
            state=NoticeState.PENDING, next_attempt_at=retry_at, enqueued_at=None, last_error=mask(error.message)[:2000]
        )
    else:
        outcome = AttemptOutcome.FAILED
        fields.update(
            state=NoticeState.FAILED, finished=finished, next_attempt_at=None, last_error=mask(error.message)[:2000]
        )
    with transaction.atomic():
        if Notice.objects.filter(pk=notice.pk, claimed_by=token).update(**fields) != 1:
            # The claim lapsed and another worker took the notice: this attempt is recorded, its outcome is theirs.
            fields = {}
        delivery = Delivery.objects.create(
            notice=notice,
            namespace_id=notice.namespace_id,
            pipeline_id=notice.pipeline_id,
            subscription=subscription,
            attempt=attempt,
            started=now,
            duration_ms=ms,
            outcome=outcome,
            status_code=(sent.status if sent is not None else error.status if error is not None else None),
            error=mask(error.message)[:2000] if error is not None else "",
            response=mask(sent.response if sent is not None else error.response if error else "")[:2000],
            retry_at=retry_at,
        )
        if fields and outcome != AttemptOutcome.RETRYING:
            _published(notice, outcome, attempt)
    metrics.notifier_delivery(subscription.extension_id, METRIC_OUTCOMES[outcome])
    if fields and outcome == AttemptOutcome.SUCCEEDED and subscription.status == SubscriptionStatus.ERROR:
        triggers.heal_if_possible(subscription)
    elif fields and outcome == AttemptOutcome.FAILED:
        _maybe_error(subscription)
    return delivery


def _published(notice: Notice, outcome: str, attempts: int) -> None:
    subscription = notice.subscription
    kind = EventKind.NOTICE_DELIVERED if outcome == AttemptOutcome.SUCCEEDED else EventKind.NOTICE_FAILED
    events.publish(
        kind,
        {
            **triggers.subscription_details(subscription),
            "run_id": notice.run.number,
            "notice_id": notice.pk,
            "attempts": attempts,
        },
        namespace_id=subscription.namespace_id,
        pipeline_slug=subscription.pipeline.slug,
        run_number=notice.run.number,
    )
    verb = "delivered" if outcome == AttemptOutcome.SUCCEEDED else "not delivered"
    logbook.write(
        subscription.extension_id,
        f"notice {notice.pk} (run {notice.run.number}) {verb} after {attempts} attempt(s)",
        subscription=subscription,
    )


def _maybe_error(subscription: Subscription) -> None:
    kind = kind_of(subscription)
    problem = kind.check(subscription) if kind is not None else None
    if problem is None:
        return
    with transaction.atomic():
        locked = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("extension", "pipeline")
            .filter(pk=subscription.pk)
            .first()
        )
        if locked is not None:
            triggers.mark_error(locked, problem)


# --- the sweep ----------------------------------------------------------------------------------------------------

_sweep_state: dict[str, Any] = {"last": None, "through": None}


def requeue_open_notices(now: dt.datetime | None = None) -> int:
    """Queue again every notice a worker should be delivering but nobody is: queued long ago and still pending
    (the message was lost), due for a retry, or claimed by a worker whose claim lapsed (it died)."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.GOFER_NOTIFIER_CLAIM_SECONDS)
    pending = Q(state=NoticeState.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    pending &= Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    lapsed = Q(state=NoticeState.DELIVERING, claim_expires__lt=now)
    pks = list(Notice.objects.filter(pending | lapsed).order_by("id").values_list("pk", flat=True)[:SWEEP_BATCH])
    if pks:
        with transaction.atomic():
            Notice.objects.filter(pk__in=pks).update(enqueued_at=now)
            for pk in pks:
                queue.enqueue_on_commit(DELIVER, pk)
    return len(pks)


def _notifier_subscriptions() -> list[tuple[int, str]]:
    """``(pipeline_id, lookup_key)`` of every notifier subscription (one query)."""
    return list(
        Subscription.objects.filter(extension__kind=ExtensionKind.NOTIFIER).values_list("pipeline_id", "lookup_key")
    )


def reevaluate_since(since: dt.datetime, pipelines: set[int] | None = None) -> int:
    """Decide again every run and task execution that completed since ``since`` on a pipeline with a notifier
    subscription (``pipelines``, when the caller knows them): what a crash between the engine's commit and the
    signal lost is recorded now (what was not lost is found recorded already, and nothing is repeated)."""
    if pipelines is None:
        pipelines = {pipeline_id for pipeline_id, _ in _notifier_subscriptions()}
    if not pipelines:
        return 0
    count = 0
    runs = Run.objects.filter(pipeline_id__in=pipelines, state=RunState.COMPLETE, ended__gte=since)
    for run_pk in runs.order_by("ended", "number").values_list("pk", flat=True)[:SWEEP_BATCH]:
        count += len(evaluate_run(run_pk))
    tes = TaskExecution.objects.filter(pipeline_id__in=pipelines, state=TaskExecutionState.COMPLETE, ended__gte=since)
    for te_pk in tes.order_by("ended").values_list("pk", flat=True)[:SWEEP_BATCH]:
        count += len(evaluate_task_execution(te_pk))
    return count


def sweep(now: dt.datetime | None = None, *, force: bool = False) -> float | None:
    """The periodic work (run by the ticker's holder, triggers/ticker.py): duration rules, lost decisions and lost
    deliveries. Returns how soon it wants to run again: every ``GOFER_NOTIFIER_SWEEP_SECONDS`` while there are
    notifier subscriptions; None (the ticker's next full round, which a new subscription rings for) while there are
    none, when there is nothing to sweep either (notices go with their subscription). One query then."""
    now = now or timezone.now()
    every = float(settings.GOFER_NOTIFIER_SWEEP_SECONDS)
    last = _sweep_state["last"]
    if not force and last is not None and (now - last).total_seconds() < every:
        return every - (now - last).total_seconds()
    _sweep_state["last"] = now
    since = _sweep_state["through"] or now - dt.timedelta(seconds=settings.GOFER_NOTIFIER_REEVALUATE_SECONDS)
    subscriptions = _notifier_subscriptions()
    if not subscriptions:
        _sweep_state["through"] = now
        return None
    if any(lookup_key == Rule.DURATION_EXCEEDED for _, lookup_key in subscriptions):
        check_durations(now)
    reevaluate_since(since - SWEEP_MARGIN, {pipeline_id for pipeline_id, _ in subscriptions})
    _sweep_state["through"] = now
    requeue_open_notices(now)
    return every


# --- reading ------------------------------------------------------------------------------------------------------


def deliveries_of(subscription: Subscription) -> QuerySet:
    return Delivery.objects.filter(subscription=subscription).select_related("notice", "notice__run")
