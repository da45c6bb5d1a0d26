"""What each resource looks like in the human and plain formats: columns over raw API objects, and detail views.

Plain output prints the raw value of every non-``human_only`` column, in the order listed here; docs/cli.md lists
those columns per command (generated from ``PLAIN_COLUMNS``).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from gofer_cli import humanize as h
from gofer_cli.output import Column, Output, Row, field

STATE_STYLES = {
    "successful": "green",
    "success": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "processing": "cyan",
    "pending": "dim",
    "waiting": "dim",
    "active": "green",
    "enabled": "green",
    "disabled": "yellow",
    "live": "green",
    "unreleased": "dim",
    "deprecated": "dim",
    "error": "bold red",
    "exited": "bold red",
}
STATE_ICONS = {
    "successful": "✓",
    "failed": "✗",
    "cancelled": "⊘",
    "skipped": "↷",
    "running": "●",
    "processing": "◌",
    "pending": "…",
    "waiting": "○",
}


def outcome(obj: Row) -> str:
    """The one word for a run or task execution: its status once complete, else its state."""
    state = str(obj.get("state") or "")
    status = str(obj.get("status") or "")
    return status if state.lower() == "complete" and status else state


def styled(word: Any) -> Text:
    """A state or status word, coloured."""
    text = str(word or "-")
    return Text(text, style=STATE_STYLES.get(text.lower(), ""))


def icon(obj: Row) -> Text:
    word = outcome(obj)
    return Text(STATE_ICONS.get(word, "·"), style=STATE_STYLES.get(word, ""))


def when(value: Any, row: Row) -> str:
    return h.relative(value)


def took(row: Row) -> str:
    return h.span(row.get("started"), row.get("ended"))


def _reason(value: Any, row: Row) -> str:
    if not value:
        return "-"
    return f"{value.get('reason')}: {value.get('description')}" if value.get("description") else str(value["reason"])


def _outcome_col(header: str = "STATE") -> Column:
    return Column(header, outcome, lambda v, row: styled(v), human_only=True)


def _list(value: Any, row: Row) -> str:
    return ", ".join(str(v) for v in value) if value else "-"


NAMESPACE = [
    field("id"),
    field("name"),
    field("description"),
    field("created", human=when),
    field("modified", human=when),
]
PIPELINE = [
    field("pipeline_id", "ID"),
    field("state", human=lambda v, r: styled(v)),
    field("created", human=when),
    field("modified", human=when),
]
CONFIG = [
    field("version"),
    field("state", human=lambda v, r: styled(v)),
    field("name"),
    Column("TASKS", lambda r: len(r.get("tasks") or {})),
    field("parallelism"),
    field("registered", human=when),
    field("deprecated", human=when),
]
DEPLOYMENT = [
    field("deployment_id", "ID"),
    field("start_version", "FROM"),
    field("end_version", "TO"),
    field("state"),
    field("status", human=lambda v, r: styled(v)),
    field("started", human=when),
    Column(
        "DURATION",
        lambda r: (r.get("ended") or 0) - (r.get("started") or 0) if r.get("ended") else None,
        lambda v, r: took(r),
    ),
]
OBJECT = [field("key"), field("created", human=when)]
SECRET = [field("key"), field("namespaces", human=_list), field("created", human=when)]
RUN = [
    Column("", lambda r: None, lambda v, r: icon(r), human_only=True),
    field("run_id", "RUN"),
    field("state"),
    field("status", human=lambda v, r: styled(outcome(r))),
    field("queued", human=when),
    field("started", human=when),
    Column(
        "DURATION",
        lambda r: (r["ended"] - r["started"]) if r.get("ended") and r.get("started") else None,
        lambda v, r: took(r),
    ),
    Column("INITIATOR", lambda r: (r.get("initiator") or {}).get("user")),
    field("pipeline_config_version", "VERSION"),
]
TASK_EXECUTION = [
    Column("", lambda r: None, lambda v, r: icon(r), human_only=True),
    field("task_id", "TASK"),
    field("state"),
    field("status", human=lambda v, r: styled(outcome(r))),
    field("started", human=when),
    Column(
        "DURATION",
        lambda r: (r["ended"] - r["started"]) if r.get("ended") and r.get("started") else None,
        lambda v, r: took(r),
    ),
    field("exit_code", "EXIT"),
    Column(
        "REASON",
        lambda r: (r.get("status_reason") or {}).get("reason"),
        lambda v, r: _reason(r.get("status_reason"), r),
    ),
]
EVENT = [
    field("id"),
    Column("KIND", lambda r: next(iter(r.get("kind") or {}), None)),
    Column(
        "DETAILS",
        lambda r: next(iter((r.get("kind") or {}).values()), None),
        lambda v, r: " ".join(f"{k}={val}" for k, val in (v or {}).items()),
    ),
    field("emitted", human=when),
]
TOKEN = [
    field("id"),
    field("user"),
    field("kind"),
    field("roles", human=_list),
    field("created", human=when),
    field("expires", human=lambda v, r: h.relative(v) if v else "never"),
    field("disabled", human=lambda v, r: Text("disabled", style="yellow") if v else Text("enabled", style="green")),
    field("last_used", human=when),
]
ROLE = [
    field("id"),
    field("description"),
    field("system_role", "SYSTEM"),
    Column("PERMISSIONS", lambda r: len(r.get("permissions") or [])),
]
PERMISSION = [field("resources", human=_list), field("actions", human=_list)]
EXTENSION = [
    Column("ID", lambda r: (r.get("registration") or {}).get("extension_id")),
    Column("IMAGE", lambda r: (r.get("registration") or {}).get("image")),
    Column("STATUS", lambda r: (r.get("registration") or {}).get("status"), lambda v, r: styled(v)),
    field("state", human=lambda v, r: styled(v)),
    field("started", human=when),
    field("url"),
]
SUBSCRIPTION = [
    field("extension_id", "EXTENSION"),
    field("subscription_id", "LABEL"),
    field("status", human=lambda v, r: styled(v)),
    Column(
        "REASON",
        lambda r: (r.get("status_reason") or {}).get("reason"),
        lambda v, r: _reason(r.get("status_reason"), r),
    ),
    field("settings", human=lambda v, r: " ".join(f"{k}={val}" for k, val in (v or {}).items()) or "-"),
]
LOG_LINE = [field("task_id", "TASK"), field("line"), field("time"), field("stream"), field("text")]
TASK = [
    field("id", "TASK"),
    field("image"),
    Column(
        "DEPENDS ON",
        lambda r: r.get("depends_on") or {},
        lambda v, r: ", ".join(f"{k} ({s})" for k, s in v.items()) or "-",
    ),
    Column(
        "COMMAND",
        lambda r: [*(r.get("entrypoint") or []), *(r.get("command") or [])],
        lambda v, r: " ".join(v) or "(image default)",
    ),
]

#: Plain output's columns for each list, in order (documented in docs/cli.md).
PLAIN_COLUMNS = {
    name: [c.name for c in columns if not c.human_only]
    for name, columns in {
        "namespace list": NAMESPACE,
        "pipeline list": PIPELINE,
        "pipeline config list": CONFIG,
        "pipeline deployment list": DEPLOYMENT,
        "pipeline object list": OBJECT,
        "pipeline secret list": SECRET,
        "pipeline subscription list": SUBSCRIPTION,
        "run list": RUN,
        "run object list": OBJECT,
        "task list": TASK_EXECUTION,
        "secret global list": SECRET,
        "extension list": EXTENSION,
        "event list": EVENT,
        "token list": TOKEN,
        "role list": ROLE,
    }.items()
}


def detail(out: Output, obj: Row, fields: list[tuple[str, str]], humanisers: dict[str, Any] | None = None) -> None:
    """A key/value view of ``obj``: ``fields`` are ``(key, label)``; a humaniser per key renders it for people."""
    humanisers = humanisers or {}
    items = []
    for key, label in fields:
        raw = obj.get(key)
        human = humanisers[key](raw, obj) if key in humanisers else None
        items.append((label, raw, human))
    out.pairs(items)


TIME_FIELDS = {"created", "modified", "registered", "deprecated", "started", "ended", "queued", "emitted", "last_used"}


def generic_detail(out: Output, obj: Row, skip: tuple[str, ...] = ()) -> None:
    """Every top-level field of ``obj``; times humanised for people."""
    fields = [(key, key) for key in obj if key not in skip]
    detail(out, obj, fields, {k: _time_human for k in TIME_FIELDS} | {"state": _styled, "status": _styled})


def _time_human(value: Any, row: Row) -> str:
    return f"{h.timestamp(value)} ({h.relative(value)})" if value else "-"


def _styled(value: Any, row: Row) -> Text:
    return styled(value)


def humanised_times() -> dict[str, Any]:
    """Humanisers for the time fields of any object: wall-clock time and relative time."""
    return {k: _time_human for k in TIME_FIELDS}
