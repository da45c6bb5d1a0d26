"""The rules (subscription setting ``when``) : their settings, checked, and their decisions over a pipeline's
history as the database holds it.

Every decision reads completed runs from the database, in completion order (``ended``, then the run number), so
that any worker, at any time, decides the same thing for the same run. Cancelled runs are left out of
``failed_in_a_row`` and ``failure_rate`` altogether: a cancel says nothing about the code, so it neither breaks nor
extends a streak and does not count in a window. The two rules with a recovery decide from their own last notice
(triggered or recovered, recorded in the same transaction under the subscription's lock), so each crossing of the
condition gives one notice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q

from notifiers.choices import NoticeKind, Rule
from pipelines.choices import ConfigState
from pipelines.models import PipelineConfig, Task
from runs.choices import RunState, RunStatus, TaskExecutionStatus
from runs.models import Run, TaskExecution
from triggers.builtins.base import Param, settings_error
from triggers.durations import InvalidDuration, parse_duration

PARAMS = (
    Param("when", True, "The rule: " + ", ".join(Rule.values) + "."),
    Param("count", False, "failed_in_a_row: how many failed runs in a row (default 3)."),
    Param("threshold", False, "failure_rate: the failure rate, in percent, above which it notifies."),
    Param("window", False, "failure_rate: how many of the last completed runs the rate is over (default 20)."),
    Param("duration", False, "duration_exceeded: how long a run may run, such as 10m or 1h30m."),
    Param("task", False, "task_failed, task_succeeded: the task id."),
    Param("recovery", False, "failed_in_a_row, failure_rate: false sends no recovered notice (default true)."),
)
# The settings each rule takes (the others are refused, so that a typo does not pass silently).
RULE_SETTINGS: dict[str, frozenset[str]] = {
    Rule.RUN_FINISHED: frozenset(),
    Rule.RUN_FAILED: frozenset(),
    Rule.FAILED_IN_A_ROW: frozenset({"count", "recovery"}),
    Rule.FAILURE_RATE: frozenset({"threshold", "window", "recovery"}),
    Rule.DURATION_EXCEEDED: frozenset({"duration"}),
    Rule.TASK_FAILED: frozenset({"task"}),
    Rule.TASK_SUCCEEDED: frozenset({"task"}),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    Rule.FAILURE_RATE: ("threshold",),
    Rule.DURATION_EXCEEDED: ("duration",),
    Rule.TASK_FAILED: ("task",),
    Rule.TASK_SUCCEEDED: ("task",),
}
RULE_KEYS = frozenset(p.key for p in PARAMS)
MAX_COUNT = 1000


def _int(settings: dict[str, str], key: str, default: int) -> int:
    raw = settings.get(key, "").strip()
    if raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
        raise settings_error(key, f"must be a whole number from 1 to {MAX_COUNT}, not {raw!r:.20}")
    return int(raw)


def check(settings: dict[str, str]) -> dict[str, str]:
    """The rule settings of a subscription, checked and normalised; raises ValidationFailed naming
    ``settings.<key>``. Settings of other rules are refused."""
    when = settings.get("when", "").strip()
    if when not in Rule.values:
        raise settings_error("when", f"{when!r:.40} is not a rule; use one of {', '.join(Rule.values)}")
    out = {k: v for k, v in settings.items() if k not in RULE_KEYS}
    out["when"] = when
    for key in sorted(RULE_KEYS - {"when"}):
        if key in settings and key not in RULE_SETTINGS[when]:
            raise settings_error(key, f"is not a setting of when={when}")
    for key in REQUIRED.get(when, ()):
        if not settings.get(key, "").strip():
            raise settings_error(key, f"is required with when={when}")
    if when == Rule.FAILED_IN_A_ROW:
        out["count"] = str(_int(settings, "count", 3))
    elif when == Rule.FAILURE_RATE:
        raw = settings["threshold"].strip().removesuffix("%").strip()
        try:
            threshold = Decimal(raw)
        except InvalidOperation:
            raise settings_error("threshold", f"must be a percentage such as 25, not {raw!r:.20}") from None
        if not threshold.is_finite() or not 0 <= threshold < 100:
            raise settings_error("threshold", "must be a percentage from 0 to below 100")
        out["threshold"] = format(threshold.normalize(), "f")
        out["window"] = str(_int(settings, "window", 20))
    elif when == Rule.DURATION_EXCEEDED:
        try:
            duration = parse_duration(settings["duration"].strip())
        except InvalidDuration as exc:
            raise settings_error("duration", str(exc)) from None
        if duration <= dt.timedelta(0):
            raise settings_error("duration", "must be longer than 0")
        out["duration"] = settings["duration"].strip()
    elif when in (Rule.TASK_FAILED, Rule.TASK_SUCCEEDED):
        out["task"] = settings["task"].strip()
    if "recovery" in settings:
        value = settings["recovery"].strip().lower()
        if value not in ("true", "false"):
            raise settings_error("recovery", f"must be true or false, not {value!r:.20}")
        out["recovery"] = value
    return out


def check_for_pipeline(settings: dict[str, str], pipeline: Any) -> None:
    """A ``task`` rule names a task of the pipeline's live version."""
    if settings.get("when") not in (Rule.TASK_FAILED, Rule.TASK_SUCCEEDED):
        return
    live = PipelineConfig.objects.filter(pipeline=pipeline, state=ConfigState.LIVE).first()
    tasks = sorted(Task.objects.filter(config=live).values_list("slug", flat=True)) if live else []
    if settings["task"] not in tasks:
        known = ", ".join(tasks) or "none (no live version)"
        raise settings_error(
            "task", f"pipeline {pipeline.slug} has no task {settings['task']!r:.64}; its tasks: {known}"
        )


def recovery_on(settings: dict[str, str]) -> bool:
    return settings.get("recovery", "true") != "false"


# --- decisions -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    kind: str
    description: str
    task_slug: str = ""


def _history(run: Run, limit: int) -> list[str]:
    """The statuses of the pipeline's last ``limit`` completed, not cancelled runs up to ``run`` (newest first)."""
    rows = (
        Run.objects.filter(pipeline_id=run.pipeline_id, state=RunState.COMPLETE)
        .exclude(status=RunStatus.CANCELLED)
        .filter(Q(ended__lt=run.ended) | Q(ended=run.ended, number__lte=run.number))
        .order_by("-ended", "-number")
        .values_list("status", flat=True)[:limit]
    )
    return list(rows)


def is_after(run: Run, other: Run | None) -> bool:
    """Whether ``run`` completed after ``other`` (completion order: ended, then number)."""
    if other is None:
        return True
    if other.ended is None or run.ended is None:
        return run.number > other.number
    return (run.ended, run.number) > (other.ended, other.number)


def decide_run(settings: dict[str, str], run: Run, last_kind: str | None) -> Decision | None:
    """What the rule says about the completed ``run``; ``last_kind`` is the subscription's last triggered or
    recovered notice (None: none yet). None: nothing to notify."""
    when = settings.get("when")
    status = run.status
    if when == Rule.RUN_FINISHED:
        return Decision(NoticeKind.TRIGGERED, f"run {run.number} finished: {status}")
    if when == Rule.RUN_FAILED:
        return Decision(NoticeKind.TRIGGERED, f"run {run.number} failed") if status == RunStatus.FAILED else None
    if status == RunStatus.CANCELLED:
        return None
    triggered = last_kind == NoticeKind.TRIGGERED
    if when == Rule.FAILED_IN_A_ROW:
        count = int(settings.get("count") or 3)
        if status == RunStatus.FAILED:
            recent = _history(run, count)
            if not triggered and len(recent) == count and all(s == RunStatus.FAILED for s in recent):
                return Decision(NoticeKind.TRIGGERED, f"{count} failed runs in a row (the last: run {run.number})")
            return None
        if status == RunStatus.SUCCESSFUL and triggered:
            return Decision(NoticeKind.RECOVERED, f"run {run.number} succeeded after {count} or more failed in a row")
        return None
    if when == Rule.FAILURE_RATE:
        window = int(settings.get("window") or 20)
        threshold = Decimal(settings["threshold"])
        recent = _history(run, window)
        if len(recent) < window:
            return None
        failed = sum(1 for s in recent if s == RunStatus.FAILED)
        rate = Decimal(failed * 100) / window
        shown = f"{rate.quantize(Decimal('0.1'))} % of the last {window} runs failed ({failed})"
        if rate > threshold and not triggered:
            return Decision(NoticeKind.TRIGGERED, f"{shown}, above {threshold} %")
        if rate <= threshold and triggered:
            return Decision(NoticeKind.RECOVERED, f"{shown}, back to {threshold} % or below")
        return None
    return None


def decide_task(settings: dict[str, str], te: TaskExecution) -> Decision | None:
    when = settings.get("when")
    if settings.get("task") != te.task_slug:
        return None
    if when == Rule.TASK_FAILED and te.status == TaskExecutionStatus.FAILED:
        return Decision(NoticeKind.TRIGGERED, f"task {te.task_slug} of run {te.run.number} failed", te.task_slug)
    if when == Rule.TASK_SUCCEEDED and te.status == TaskExecutionStatus.SUCCESSFUL:
        return Decision(NoticeKind.TRIGGERED, f"task {te.task_slug} of run {te.run.number} succeeded", te.task_slug)
    return None


def duration_of(settings: dict[str, str]) -> dt.timedelta:
    return parse_duration(settings["duration"])
