"""``cron``: a run at the times of a cron ``expression``, in ``timezone`` (an IANA name, default UTC).

Standard 5-field expressions (``minute hour day-of-month month day-of-week``, with ``@hourly`` and the like) and
Gofer's 6-field form, the same with a trailing year, so that Gofer users' subscriptions keep working. Parsing and
iteration are croniter's (a maintained library), never ours. Every occurrence is computed from the previous one's
scheduled time, so nothing drifts (Gofer's loop of "sleep 60 s, then work" did). A firing that fell due while no
worker ran fires once when they return; the next one is the first occurrence after that.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from croniter import croniter
from croniter.croniter import CroniterError

from triggers.builtins.base import Builtin, Param, settings_error

# How far ahead an expression must have an occurrence to be accepted (a year in the past never fires).
HORIZON_YEARS = 100


def croniter_expression(expression: str) -> str:
    """The expression in croniter's syntax. Gofer's 6th field is a year; croniter reads a 6th field as seconds and
    a 7-field form as ``... seconds year``, so Gofer's form becomes the 7-field one with second 0."""
    fields = expression.split()
    if len(fields) == 6:
        return " ".join([*fields[:5], "0", fields[5]])
    return " ".join(fields)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise settings_error("timezone", f"{name!r:.60} is not an IANA time zone name (such as Europe/Paris)") from None


def next_occurrence(expression: str, timezone: str, after: dt.datetime) -> dt.datetime | None:
    """The first occurrence strictly after ``after``, as an aware UTC datetime; None if there is none."""
    zone = zoneinfo.ZoneInfo(timezone)
    try:
        value = croniter(croniter_expression(expression), after.astimezone(zone)).get_next(dt.datetime)
    except (CroniterError, ValueError, KeyError):
        return None
    if value.year > after.year + HORIZON_YEARS:
        return None
    return value.astimezone(dt.UTC)


class Cron(Builtin):
    id = "cron"
    body = (
        "Starts a run at the times of a cron expression: five fields (minute hour day-of-month month day-of-week) "
        "or Gofer's six, with a trailing year. `timezone` is an IANA name (default UTC)."
    )
    subscription_params = (
        Param("expression", True, "A cron expression: `*/15 * * * *`, or Gofer's `0 12 * * * *` with a year."),
        Param("timezone", False, "The IANA time zone the expression is read in.", default="UTC"),
    )
    scheduled = True

    def validate_subscription(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        expression = " ".join(settings["expression"].split())
        fields = expression.split()
        if not expression.startswith("@") and len(fields) not in (5, 6):
            raise settings_error(
                "expression", f"has {len(fields)} fields; use 5 (minute hour day month weekday) or Gofer's 6 (+ year)"
            )
        if not croniter.is_valid(croniter_expression(expression)):
            raise settings_error("expression", f"{expression!r:.100} is not a valid cron expression")
        _zone(settings.get("timezone") or "UTC")
        timezone = settings.get("timezone") or "UTC"
        if next_occurrence(expression, timezone, dt.datetime.now(dt.UTC)) is None:
            raise settings_error("expression", f"{expression!r:.100} never fires from now on")
        return {**settings, "expression": expression, "timezone": timezone}

    def first_fire(self, settings: dict[str, str], config: dict[str, str], now: dt.datetime) -> dt.datetime | None:
        return next_occurrence(settings["expression"], settings.get("timezone") or "UTC", now)

    def next_fire(
        self, settings: dict[str, str], config: dict[str, str], scheduled: dt.datetime, now: dt.datetime
    ) -> dt.datetime | None:
        return next_occurrence(settings["expression"], settings.get("timezone") or "UTC", max(scheduled, now))

    def run_variables(self, settings: dict[str, str], scheduled: dt.datetime) -> dict[str, str]:
        return {"GOFER_EXTENSION_CRON_SCHEDULED_TIME": scheduled.astimezone(dt.UTC).isoformat()}
