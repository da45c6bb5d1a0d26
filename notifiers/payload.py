"""What a notice says, the same for every kind: the run's facts, the rule, and a link to the run.

Only facts about the run: never a setting's value, a variable's value or a log line (they may hold secrets).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from notifiers.models import Notice
from runs.choices import TaskExecutionStatus
from runs.models import Run, TaskExecution


def run_url(run: Run) -> str:
    return (
        f"{settings.GOFER_PUBLIC_URL}/api/namespaces/{run.namespace_id}/pipelines/{run.pipeline.slug}/runs/{run.number}"
    )


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def facts(notice: Notice, run: Run | None = None) -> dict[str, Any]:
    """The notice as JSON (the webhook's body; Slack, GitHub and email render the same facts)."""
    run = run or notice.run
    tasks = list(TaskExecution.objects.filter(run=run).order_by("id").values("task_slug", "status", "state"))
    failing = [t["task_slug"] for t in tasks if t["status"] == TaskExecutionStatus.FAILED]
    end = run.ended or timezone.now()
    duration = (end - run.started).total_seconds() if run.started else None
    return {
        "notice": notice.kind,
        "notice_id": notice.pk,
        "rule": notice.rule,
        "description": notice.description,
        "subscription_id": notice.subscription.subscription_id,
        "extension_id": notice.subscription.extension_id,
        "namespace_id": run.namespace_id,
        "pipeline_id": run.pipeline.slug,
        "run_id": run.number,
        "state": run.state,
        "status": run.status,
        "status_reason": run.status_reason,
        "started": _time(run.started),
        "ended": _time(run.ended),
        "duration_seconds": round(duration, 3) if duration is not None else None,
        "failed_tasks": failing,
        "task_id": notice.task_slug or None,
        "url": run_url(run),
    }


def headline(data: dict[str, Any]) -> str:
    """One line: ``team-a/build run 7 failed (3 failed runs in a row)``."""
    what = data["status"] if data["state"] == "complete" else data["state"]
    if data["notice"] == "recovered":
        what = f"recovered: {what}"
    return f"{data['namespace_id']}/{data['pipeline_id']} run {data['run_id']} {what} ({data['description']})"


def duration_text(data: dict[str, Any]) -> str:
    seconds = data.get("duration_seconds")
    if seconds is None:
        return "not started"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
