"""Firing: the one place where a subscription starts a run, and the tick that finds due subscriptions.

``fire`` claims the firing under its unique key (``Firing(subscription, key)``) and starts the run through
``runs.services.start_run`` in **one transaction**, under a lock on the subscription row: two workers that see the
same due firing start one run between them (the second finds the key taken, or the schedule already moved, and does
nothing); a run exists exactly when its firing row does; and the subscription's state (its next firing, or
``error`` with the reason) changes in that same transaction, so state and firings cannot drift apart.

``tick`` is what the ticker (triggers/ticker.py) runs: one indexed query (``due_at <= now``) finds every scheduled
firing that is due and every subscription in error whose re-check is due, and it returns when to wake next. A
firing that fell due while no worker ran (overdue by more than ``GOFER_TRIGGER_MISSED_GRACE_SECONDS``) fires once,
not once per missed period; the interval moves it by its jitter first, so that returning workers do not start
every pipeline at the same moment.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from events import services as events
from events.choices import EventKind
from kernel.errors import Conflict, NotFound, QuotaExceeded, Unavailable
from kernel.times import epoch_ms
from runs import services as runs
from runs.choices import VariableSource
from runs.interpolation import InterpolationError, resolve_settings
from runs.models import Run
from telemetry import metrics, tracing
from triggers import logbook, services
from triggers.choices import (
    ExtensionStatus,
    FiringCause,
    FiringOutcome,
    SubscriptionStatus,
    SubscriptionStatusReason,
)
from triggers.models import Firing, Subscription

logger = logging.getLogger(__name__)

# How many due subscriptions one tick takes; more are taken by the next tick, at once.
TICK_BATCH = 200


@dataclass
class Fired:
    """What ``fire`` did: ``firing`` is None when someone else already fired this key (or the schedule moved)."""

    firing: Firing | None
    run: Run | None = None
    duplicate: bool = False

    @property
    def outcome(self) -> str | None:
        return self.firing.outcome if self.firing is not None else None


def scheduled_key(scheduled_for: dt.datetime) -> str:
    return f"at:{epoch_ms(scheduled_for)}"


def _lock(subscription_pk: int) -> Subscription | None:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("extension", "pipeline", "pipeline__namespace")
        .filter(pk=subscription_pk)
        .first()
    )


def _record(subscription: Subscription, key: str, cause: str, scheduled_for: dt.datetime, outcome: str, text: str):
    return Firing.objects.create(
        namespace_id=subscription.namespace_id,
        pipeline_id=subscription.pipeline_id,
        subscription=subscription,
        key=key,
        cause=cause,
        scheduled_for=scheduled_for,
        outcome=outcome,
        description=text[:2000],
    )


def _refused_key(key: str) -> str:
    """A firing that started nothing does not keep its key: a redelivery of the same webhook may try again."""
    return f"{key}/refused/{uuid.uuid4().hex[:12]}"


@transaction.atomic
def fire(
    subscription_pk: int,
    *,
    key: str,
    cause: str,
    scheduled_for: dt.datetime,
    variables: dict[str, str] | None = None,
    expect_next_fire_at: dt.datetime | None = None,
    advance_schedule: bool = False,
    with_run: Callable[[Run], Any] | None = None,
) -> Fired:
    """Claim ``key`` for the subscription and start its run, in one transaction.

    - Nothing happens (``Fired(None)``) when the subscription is gone or not ``active``, its extension is disabled,
      or, with ``expect_next_fire_at``, the schedule has already moved (another worker fired it).
    - A key already claimed by a started run answers that run (``duplicate``): a redelivered webhook starts nothing.
    - The kill switch records a ``skipped`` firing and leaves the subscription active; a pipeline that is disabled
      or has no live version, or a setting whose reference does not resolve, records a ``failed`` firing and puts
      the subscription in ``error`` with the reason.
    - With ``advance_schedule`` the subscription's next firing is computed (strictly after now).
    - ``with_run(run)`` runs inside the transaction once the run exists (the webhook stores its payload object).
    """
    now = timezone.now()
    subscription = _lock(subscription_pk)
    if subscription is None:
        return Fired(None)
    extension = subscription.extension
    if subscription.status != SubscriptionStatus.ACTIVE or extension.status != ExtensionStatus.ENABLED:
        return Fired(None)
    if expect_next_fire_at is not None and subscription.next_fire_at != expect_next_fire_at:
        return Fired(None)
    existing = Firing.objects.filter(subscription=subscription, key=key).first()
    if existing is not None:
        run = Run.objects.filter(pipeline_id=subscription.pipeline_id, number=existing.run_number).first()
        return Fired(existing, run, duplicate=True)

    if advance_schedule:
        _advance(subscription, scheduled_for, now)

    if services.runs_refused():
        firing = _record(subscription, _refused_key(key), cause, scheduled_for, FiringOutcome.SKIPPED, "kill switch")
        _publish(EventKind.SKIPPED, subscription, firing, reason="new runs are refused (ignore_pipeline_run_events)")
        logbook.write(
            extension.id, f"skipped {_when(scheduled_for)}: new runs are refused by an admin", subscription=subscription
        )
        metrics.trigger_fired(extension.id, FiringOutcome.SKIPPED)
        return Fired(firing)

    try:
        resolve_settings(subscription.settings or {}, pipeline=subscription.pipeline)
    except InterpolationError as exc:
        problem = (SubscriptionStatusReason.NOT_FOUND, f"setting {str(exc).removeprefix('variable ')}")
        return _failed(subscription, key, cause, scheduled_for, problem, now)

    try:
        # The run's trace hangs off this span (telemetry/tracing.py): a trigger's runs are traced from the firing.
        with (
            tracing.span("trigger.firing", {"gofer.extension": extension.id, "gofer.cause": cause}),
            transaction.atomic(),
        ):
            run = runs.start_run(
                services.extension_principal(extension),
                subscription.pipeline,
                variables or {},
                source=VariableSource.EXTENSION,
                initiator=services.initiator_for(subscription),
            )
            firing = _record(subscription, key, cause, scheduled_for, FiringOutcome.STARTED, "")
            firing.run_number = run.number
            firing.save(update_fields=["run_number"])
            if with_run is not None:
                with_run(run)
    except IntegrityError:
        # Claimed by a concurrent transaction that committed first (the row lock is a no-op on SQLite, where
        # BEGIN IMMEDIATE already serialises writers): that one started the run.
        return Fired(None)
    except (Unavailable, QuotaExceeded) as exc:
        # A namespace at a quota (pipelines/quotas.py) refuses the run as it refuses one from the API: recorded,
        # with the quota's message, and the subscription heals once the namespace is below it again.
        return _failed(subscription, key, cause, scheduled_for, (SubscriptionStatusReason.FAILED, exc.message), now)
    except (Conflict, NotFound) as exc:
        return _failed(subscription, key, cause, scheduled_for, (SubscriptionStatusReason.NOT_FOUND, exc.message), now)

    subscription.last_fired_at = now
    subscription.last_run_number = run.number
    subscription.save(update_fields=["last_fired_at", "last_run_number", "next_fire_at", "due_at"])
    _publish(EventKind.FIRED, subscription, firing, run_id=run.number)
    metrics.trigger_fired(extension.id, FiringOutcome.STARTED)
    late = (now - scheduled_for).total_seconds()
    lateness = f" ({late:.1f} s after its time)" if cause == FiringCause.SCHEDULE and late >= 1 else ""
    logbook.write(
        extension.id, f"fired {_when(scheduled_for)}{lateness}: started run {run.number}", subscription=subscription
    )
    return Fired(firing, run)


def _when(scheduled_for: dt.datetime) -> str:
    return f"for {scheduled_for.astimezone(dt.UTC).isoformat(timespec='seconds')}"


def _advance(subscription: Subscription, scheduled_for: dt.datetime, now: dt.datetime) -> None:
    builtin = services.builtin_of(subscription.extension)
    nxt = None
    if builtin is not None and builtin.scheduled:
        nxt = builtin.next_fire(subscription.settings, subscription.extension.settings or {}, scheduled_for, now)
    subscription.next_fire_at = subscription.due_at = nxt
    Subscription.objects.filter(pk=subscription.pk).update(next_fire_at=nxt, due_at=nxt)


def _failed(
    subscription: Subscription,
    key: str,
    cause: str,
    scheduled_for: dt.datetime,
    problem: services.Problem,
    now: dt.datetime,
) -> Fired:
    firing = _record(subscription, _refused_key(key), cause, scheduled_for, FiringOutcome.FAILED, problem[1])
    services.mark_error(subscription, problem, now)
    metrics.trigger_fired(subscription.extension_id, FiringOutcome.FAILED)
    return Fired(firing)


def _publish(kind: str, subscription: Subscription, firing: Firing, **extra: Any) -> None:
    events.publish(
        kind,
        {
            **services.subscription_details(subscription),
            "cause": firing.cause,
            "scheduled": epoch_ms(firing.scheduled_for),
            **extra,
        },
        namespace_id=subscription.namespace_id,
        pipeline_slug=subscription.pipeline.slug,
    )


def fire_now(subscription: Subscription) -> Fired:
    """Fire once, now, outside the schedule (the admin's "fire now"); the schedule is left as it is."""
    return fire(
        subscription.pk, key=f"manual:{uuid.uuid4().hex}", cause=FiringCause.MANUAL, scheduled_for=timezone.now()
    )


# --- the tick ---------------------------------------------------------------------------------------------------


def _postpone_missed(row: dict[str, Any], now: dt.datetime) -> bool:
    """Move a firing that fell due while no worker ran to where its extension wants it (the interval's jitter).
    Returns True when it was moved (it fires later), False when it should fire now. Conditional on the schedule
    not having moved, so two tickers move it once."""
    subscription = Subscription.objects.select_related("extension", "pipeline").filter(pk=row["pk"]).first()
    if subscription is None:
        return True
    builtin = services.builtin_of(subscription.extension)
    moved = builtin.missed(subscription.settings, subscription.extension.settings or {}, now) if builtin else None
    if moved is None:
        return False
    with transaction.atomic():
        updated = Subscription.objects.filter(
            pk=row["pk"], next_fire_at=row["next_fire_at"], status=SubscriptionStatus.ACTIVE
        ).update(next_fire_at=moved, due_at=moved)
        if updated:
            logbook.write(
                subscription.extension_id,
                f"missed {_when(row['next_fire_at'])} while no worker ran; fires once at "
                f"{moved.astimezone(dt.UTC).isoformat(timespec='seconds')} (jitter)",
                subscription=subscription,
            )
    return True


def tick(now: dt.datetime | None = None) -> dt.datetime | None:
    """Fire every due scheduled firing and re-check every subscription in error whose check is due. Returns when
    the next one is due (None: nothing scheduled). Safe to run in several processes at once."""
    now = now or timezone.now()
    grace = dt.timedelta(seconds=settings.GOFER_TRIGGER_MISSED_GRACE_SECONDS)
    rows = list(
        Subscription.objects.filter(due_at__isnull=False, extension__status=ExtensionStatus.ENABLED)
        .order_by("due_at")
        .values("pk", "status", "due_at", "next_fire_at")[: TICK_BATCH + 1]
    )
    for row in rows[:TICK_BATCH]:
        if row["due_at"] > now:
            return row["due_at"]
        try:
            if row["status"] == SubscriptionStatus.ERROR:
                subscription = Subscription.objects.select_related("extension", "pipeline").filter(pk=row["pk"]).first()
                if subscription is not None:
                    services.heal_if_possible(subscription, now)
                continue
            if row["status"] != SubscriptionStatus.ACTIVE or row["next_fire_at"] is None:
                continue
            scheduled_for = row["next_fire_at"]
            if now - scheduled_for > grace and _postpone_missed(row, now):
                continue
            fire(
                row["pk"],
                key=scheduled_key(scheduled_for),
                cause=FiringCause.SCHEDULE,
                scheduled_for=scheduled_for,
                variables=_scheduled_variables(row["pk"], scheduled_for),
                expect_next_fire_at=scheduled_for,
                advance_schedule=True,
            )
        except Exception:
            # One broken subscription must not stop the others; it is due again and retried on the next tick.
            logger.exception("firing subscription %s failed", row["pk"])
    if not rows:
        return None
    if len(rows) > TICK_BATCH:
        return now
    # Everything taken was due; what is due next is known only after this tick's changes.
    upcoming = (
        Subscription.objects.filter(due_at__isnull=False, extension__status=ExtensionStatus.ENABLED)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    return upcoming


def _scheduled_variables(subscription_pk: int, scheduled_for: dt.datetime) -> dict[str, str]:
    subscription = Subscription.objects.select_related("extension").filter(pk=subscription_pk).first()
    builtin = services.builtin_of(subscription.extension) if subscription else None
    return builtin.run_variables(subscription.settings, scheduled_for) if builtin else {}


def prune_firings(now: dt.datetime | None = None) -> int:
    """Forget firings older than ``GOFER_TRIGGER_FIRING_RETENTION_SECONDS`` (and with them old delivery ids)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.GOFER_TRIGGER_FIRING_RETENTION_SECONDS)
    deleted, _ = Firing.objects.filter(created__lt=cutoff).delete()
    return deleted
