"""Durations as Gofer's extensions wrote them: Go's ``time.ParseDuration`` syntax (``30s``, ``5m``, ``1h30m``,
``1.5h``, ``500ms``), so that Gofer users' ``every`` settings keep working."""

from __future__ import annotations

import datetime as dt
import math
import re

# Seconds per unit, as floats: a timedelta unit would round a nanosecond to 0, and ``1000000000000ns`` with it.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
MAX = dt.timedelta(days=3650)
_MAX_SECONDS = MAX.total_seconds()


class InvalidDuration(ValueError):
    """Not a duration; the message says what is expected."""


def parse_duration(text: object) -> dt.timedelta:
    """``text`` as a non-negative timedelta of at most ten years; raises InvalidDuration (never OverflowError,
    however large the numbers). A bare ``0`` is zero, as in Go."""
    if not isinstance(text, str):
        raise InvalidDuration("must be a duration string such as 30s, 5m or 1h")
    raw = text.strip()
    if raw == "0":
        return dt.timedelta(0)
    position, seconds = 0, 0.0
    while position < len(raw):
        match = _PART.match(raw, position)
        if match is None:
            raise InvalidDuration(
                f"{text!r:.40} is not a duration: use numbers with units ns, us, ms, s, m, h (30s, 5m, 1h30m)"
            )
        # Summed in float seconds and bounded before any timedelta is built: 99999999999h (or a number of 400
        # digits, which float() makes infinite) would overflow timedelta, an OverflowError rather than a refusal.
        seconds += _UNITS[match.group(2)] * float(match.group(1))
        if not math.isfinite(seconds) or seconds > _MAX_SECONDS:
            raise InvalidDuration(f"{text!r:.40} is longer than ten years")
        position = match.end()
    if position == 0:
        raise InvalidDuration("must not be empty: a duration such as 30s, 5m or 1h")
    return dt.timedelta(seconds=seconds)


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
