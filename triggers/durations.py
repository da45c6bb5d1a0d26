"""Durations as Gofer's extensions wrote them: Go's ``time.ParseDuration`` syntax (``30s``, ``5m``, ``1h30m``,
``1.5h``, ``500ms``), so that Gofer users' ``every`` settings keep working."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {
    "ns": dt.timedelta(microseconds=0.001),
    "us": dt.timedelta(microseconds=1),
    "µs": dt.timedelta(microseconds=1),
    "ms": dt.timedelta(milliseconds=1),
    "s": dt.timedelta(seconds=1),
    "m": dt.timedelta(minutes=1),
    "h": dt.timedelta(hours=1),
}
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
MAX = dt.timedelta(days=3650)


class InvalidDuration(ValueError):
    """Not a duration; the message says what is expected."""


def parse_duration(text: object) -> dt.timedelta:
    """``text`` as a non-negative timedelta; raises InvalidDuration. A bare ``0`` is zero, as in Go."""
    if not isinstance(text, str):
        raise InvalidDuration("must be a duration string such as 30s, 5m or 1h")
    raw = text.strip()
    if raw == "0":
        return dt.timedelta(0)
    position, total = 0, dt.timedelta(0)
    while position < len(raw):
        match = _PART.match(raw, position)
        if match is None:
            raise InvalidDuration(
                f"{text!r:.40} is not a duration: use numbers with units ns, us, ms, s, m, h (30s, 5m, 1h30m)"
            )
        total += _UNITS[match.group(2)] * float(match.group(1))
        position = match.end()
    if position == 0:
        raise InvalidDuration("must not be empty: a duration such as 30s, 5m or 1h")
    if total > MAX:
        raise InvalidDuration(f"{text!r:.40} is longer than ten years")
    return total


def format_duration(value: dt.timedelta) -> str:
    """A short form for messages: ``90s`` as ``1m30s``."""
    seconds = int(value.total_seconds())
    if seconds != value.total_seconds() or seconds == 0:
        return f"{value.total_seconds():g}s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out
