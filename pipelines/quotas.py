"""Quotas per namespace: what a tenant may use, checked where the thing is created.

Each quota is a field of ``NamespaceQuotas`` (pipelines/models.py), empty for no limit. A new namespace gets the
``GOFER_QUOTA_*`` settings (unlimited outside sandbox mode); a namespace older than quotas gets them the first time
one is checked. The service that creates a thing checks its quota itself, so the API, the admin, triggers and the
CLI all obey the same rule:

| quota | checked by | refused with |
|---|---|---|
| ``pipelines``, ``tasks_per_pipeline``, ``task_timeout`` | ``pipelines.services.register_config`` | 403 |
| ``queued_runs``, ``runs_per_hour`` | ``runs.services.start_run`` | 429 + Retry-After |
| ``concurrent_runs`` | admission (runs/engine/admission.py): more runs wait, nothing is refused | |
| ``run_duration`` | the engine: a longer run is cancelled (reason timeout) | |
| ``object_bytes`` | ``objectstore.services`` (pipeline and run objects together) | 403 |
| ``secrets`` | ``secretstore.services.put_pipeline_secret`` (new keys only) | 403 |

Race-free: a checking service calls ``lock(namespace_id)`` first in its transaction, which locks the namespace row
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises write transactions anyway), then counts and creates
under that lock, so two requests at the limit cannot both pass. The namespace row is always locked before a
pipeline or run row, the order ``delete_namespace`` takes them in.

Current use of a quota whose things live in apps above this one (runs, objects, secrets) is counted by a function
that app registers at start-up (``register_usage``), which GET .../quotas shows beside each limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from events import services as events
from events.choices import EventKind
from kernel.errors import NotFound, QuotaExceeded, QuotaExceededForNow, ValidationFailed
from pipelines.models import Namespace, NamespaceQuotas, Pipeline, PipelineConfig, Task

MAX_WEIGHT = 1000
_MAX_INT = 2**31 - 1
_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True)
class Quota:
    name: str  # the NamespaceQuotas field, the API's key and the error's ``quota.name``
    unit: str
    description: str
    # Waiting helps (the use falls by itself): exceeding it is a 429 with Retry-After, not a 403.
    waits: bool = False


QUOTAS: tuple[Quota, ...] = (
    Quota("concurrent_runs", "runs", "runs running at once; more wait in the queue"),
    Quota("queued_runs", "runs", "runs waiting to start", waits=True),
    Quota("runs_per_hour", "runs", "runs started in the last hour", waits=True),
    Quota("pipelines", "pipelines", "pipelines in the namespace"),
    Quota("tasks_per_pipeline", "tasks", "tasks in one config version"),
    Quota("task_timeout", "seconds", "the longest task timeout; tasks that set none get this"),
    Quota("run_duration", "seconds", "the longest a run may last; a longer run is cancelled"),
    Quota("object_bytes", "bytes", "bytes of pipeline and run objects together"),
    Quota("secrets", "secrets", "pipeline secrets"),
)
BY_NAME = {quota.name: quota for quota in QUOTAS}
NAMES = tuple(BY_NAME)


def defaults() -> dict[str, Any]:
    """The quotas of a new namespace: the GOFER_QUOTA_* settings (None: unlimited)."""
    values: dict[str, Any] = {name: getattr(settings, f"GOFER_QUOTA_{name.upper()}") for name in NAMES}
    values["weight"] = settings.GOFER_QUOTA_WEIGHT
    return values


def quotas_of(namespace_id: str) -> NamespaceQuotas:
    """The namespace's quotas; created from ``defaults()`` for a namespace that has none yet."""
    row = NamespaceQuotas.objects.filter(pk=namespace_id).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return NamespaceQuotas.objects.create(namespace_id=namespace_id, **defaults())
    except IntegrityError:
        # Created concurrently (or the namespace is gone: then this raises DoesNotExist, as a missing one should).
        return NamespaceQuotas.objects.get(pk=namespace_id)


def lock(namespace_id: str) -> NamespaceQuotas:
    """Lock the namespace row for the rest of the transaction and return its quotas: what is counted and created
    under this lock cannot overshoot a limit. Raises NotFound when the namespace is gone."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quotas.lock() must run inside a transaction")
    if Namespace.objects.select_for_update().filter(pk=namespace_id).only("pk").first() is None:
        raise NotFound.of("namespace", namespace_id, field="namespace_id")
    return quotas_of(namespace_id)


def limited(namespace_id: str, name: str) -> int | None:
    """One quota's limit, without a lock (for the engine's caps: task timeout, run duration, concurrency)."""
    return getattr(quotas_of(namespace_id), name)


# --- current use ------------------------------------------------------------------------------------------------------

UsageCounter = Callable[[str], int]
_usage: dict[str, UsageCounter] = {}


def register_usage(name: str, counter: UsageCounter) -> None:
    """Make ``counter(namespace_id)`` the current use of quota ``name`` (called once, at start-up, by the app that
    owns what the quota counts)."""
    if name not in BY_NAME:
        raise ValueError(f"unknown quota {name!r}")
    _usage[name] = counter


def used(namespace_id: str, name: str) -> int:
    counter = _usage.get(name)
    return counter(namespace_id) if counter is not None else 0


def usage(namespace_id: str) -> dict[str, int]:
    """The current use of every quota (0 where nothing registered a counter)."""
    return {name: used(namespace_id, name) for name in NAMES}


def _latest_configs(namespace_id: str) -> Any:
    return PipelineConfig.objects.filter(namespace_id=namespace_id, version=F("pipeline__last_config_version"))


register_usage("pipelines", lambda ns: Pipeline.objects.filter(namespace_id=ns).count())
register_usage(
    "tasks_per_pipeline",
    lambda ns: _latest_configs(ns).annotate(n=Count("tasks")).aggregate(m=Max("n"))["m"] or 0,
)
register_usage(
    "task_timeout",
    lambda ns: Task.objects.filter(config__in=_latest_configs(ns)).aggregate(m=Max("timeout"))["m"] or 0,
)


# --- refusing ---------------------------------------------------------------------------------------------------------


def check(
    quotas: NamespaceQuotas,
    name: str,
    current: int,
    *,
    adding: int = 1,
    field: str | None = None,
    what: str = "",
    retry_after: int | None = None,
) -> None:
    """Refuse (QuotaExceeded, 403; or QuotaExceededForNow, 429, for quotas where waiting helps) when ``current``
    plus ``adding`` is over the namespace's limit of ``name``. The message names the field (``field``, else the
    quota), the quota, its limit and the current use; ``what`` says what was asked for."""
    limit = getattr(quotas, name)
    if limit is None or current + adding <= limit:
        return
    quota = BY_NAME[name]
    where = field or name
    asked = f"{what}: " if what else ""
    message = (
        f"{where}: {asked}namespace {quotas.namespace_id} is at its quota {name} ({quota.description}): limit "
        f"{limit} {quota.unit}, {current} used"
    )
    if quota.waits:
        wait = retry_after if retry_after is not None else 30
        raise QuotaExceededForNow(
            f"{message}; retry in {wait} s", quota=name, limit=limit, used=current, retry_after=wait, field=where
        )
    raise QuotaExceeded(message, quota=name, limit=limit, used=current, field=where)


def check_ceiling(quotas: NamespaceQuotas, name: str, value: int, *, field: str) -> None:
    """Refuse (403) a single value over a ceiling quota (``tasks_per_pipeline``: one config's tasks;
    ``task_timeout``: one task's timeout). The message says the value asked and the namespace's current use of the
    quota (what GET .../quotas shows: the largest value in the pipelines' latest configs), and the error's ``used``
    is that use, not the value asked."""
    limit = getattr(quotas, name)
    if limit is None or value <= limit:
        return
    quota = BY_NAME[name]
    current = used(quotas.namespace_id, name)
    raise QuotaExceeded(
        f"{field}: {value} {quota.unit} asked is over namespace {quotas.namespace_id}'s quota {name} "
        f"({quota.description}): limit {limit} {quota.unit}, {current} used (the most in a pipeline's latest config)",
        quota=name,
        limit=limit,
        used=current,
        field=field,
    )


# --- changing ---------------------------------------------------------------------------------------------------------


def _limit_value(name: str, value: object) -> int | None:
    maximum = _MAX_BIGINT if name == "object_bytes" else _MAX_INT
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise ValidationFailed(f"{name}: must be an integer from 0 to {maximum}, or null for no limit", field=name)
    return value


@transaction.atomic
def update_quotas(namespace: Namespace, values: dict[str, object]) -> tuple[NamespaceQuotas, bool]:
    """Set the quotas named in ``values`` (null: no limit) and ``weight``; the others keep theirs. Everything is
    checked before anything is written. Returns ``(quotas, changed)``. Lowering a limit below the current use
    refuses nothing that exists: it refuses what would be created next."""
    unknown = sorted(set(values) - set(NAMES) - {"weight"})
    if unknown:
        raise ValidationFailed(f"{unknown[0]}: unknown quota", field=unknown[0])
    cleaned: dict[str, Any] = {name: _limit_value(name, value) for name, value in values.items() if name != "weight"}
    if "weight" in values:
        weight = values["weight"]
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= MAX_WEIGHT:
            raise ValidationFailed(f"weight: must be an integer from 1 to {MAX_WEIGHT}", field="weight")
        cleaned["weight"] = weight
    quotas = lock(namespace.id)
    changed = [name for name, value in cleaned.items() if getattr(quotas, name) != value]
    if not changed:
        return quotas, False
    for name in changed:
        setattr(quotas, name, cleaned[name])
    quotas.modified = timezone.now()
    quotas.save(update_fields=[*changed, "modified"])
    events.publish(
        EventKind.UPDATED_NAMESPACE,
        {"namespace_id": namespace.id, "quotas": sorted(changed)},
        namespace_id=namespace.id,
    )
    return quotas, True
