"""``interval``: a run every ``every`` (a Go duration: ``30s``, ``5m``, ``1h``).

Firings are kept on the subscription's own grid (created + k * every), stored in the database, so a restart does
not reset anybody's timer (Gofer's did, which lined every pipeline up after a restart). A firing that fell due while
no worker ran is moved to a random point between ``jitter_min`` and ``jitter_max`` from the moment workers notice
it, fires once there, and counting resumes from it.
"""

from __future__ import annotations

import datetime as dt
import math
import random

from triggers.builtins.base import Builtin, Param, settings_error
from triggers.durations import InvalidDuration, format_duration, parse_duration


def _duration(settings: dict[str, str], key: str) -> dt.timedelta:
    try:
        return parse_duration(settings[key])
    except InvalidDuration as exc:
        raise settings_error(key, str(exc)) from None


class Interval(Builtin):
    id = "interval"
    body = (
        "Starts a run of the pipeline every `every` (a duration such as 30s, 5m, 1h30m). The first run comes one "
        "`every` after subscribing. Firings missed while no worker ran fire once when workers return, after a random "
        "wait between jitter_min and jitter_max."
    )
    config_params = (
        Param("min_duration", False, "The shortest `every` a subscription may ask for.", default="1m"),
        Param("jitter_min", False, "Shortest wait before a missed firing fires, after workers return.", default="2m"),
        Param("jitter_max", False, "Longest wait before a missed firing fires, after workers return.", default="5m"),
    )
    subscription_params = (Param("every", True, "How often to start a run: a duration such as 30s, 5m or 1h."),)
    scheduled = True

    def validate_config(self, settings: dict[str, str]) -> dict[str, str]:
        for key in ("min_duration", "jitter_min", "jitter_max"):
            _duration(settings, key)
        if _duration(settings, "min_duration") <= dt.timedelta(0):
            raise settings_error("min_duration", "must be longer than 0")
        if _duration(settings, "jitter_min") > _duration(settings, "jitter_max"):
            raise settings_error("jitter_min", f"must not be longer than jitter_max ({settings['jitter_max']})")
        return settings

    def validate_subscription(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        every = _duration(settings, "every")
        minimum = parse_duration(config.get("min_duration", "1m"))
        if every < minimum:
            raise settings_error(
                "every",
                f"{settings['every']} is shorter than this installation's min_duration ({format_duration(minimum)})",
            )
        return settings

    def first_fire(self, settings: dict[str, str], config: dict[str, str], now: dt.datetime) -> dt.datetime:
        return now + parse_duration(settings["every"])

    def next_fire(
        self, settings: dict[str, str], config: dict[str, str], scheduled: dt.datetime, now: dt.datetime
    ) -> dt.datetime:
        every = parse_duration(settings["every"])
        periods = math.floor((now - scheduled) / every) + 1 if now >= scheduled else 1
        return scheduled + every * periods

    def missed(self, settings: dict[str, str], config: dict[str, str], now: dt.datetime) -> dt.datetime:
        low = parse_duration(config.get("jitter_min", "2m")).total_seconds()
        high = parse_duration(config.get("jitter_max", "5m")).total_seconds()
        return now + dt.timedelta(seconds=random.uniform(low, high))

    def run_variables(self, settings: dict[str, str], scheduled: dt.datetime) -> dict[str, str]:
        return {"GOFER_EXTENSION_INTERVAL_SCHEDULED_TIME": scheduled.astimezone(dt.UTC).isoformat()}
