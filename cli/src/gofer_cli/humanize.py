"""Humanised values for the default output: relative times, durations, sizes. Pure functions of raw values.

Raw values (epoch milliseconds, byte counts) stay raw everywhere else; only the human renderer calls these.
"""

from __future__ import annotations

import datetime as dt
import time


def now_ms() -> int:
    return int(time.time() * 1000)


def duration(ms: float) -> str:
    """``450ms``, ``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 04h``."""
    if ms < 0:
        ms = 0
    if ms < 1000:
        return f"{int(ms)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def relative(ms: int | None, now: int | None = None) -> str:
    """``just now``, ``5m ago``, ``in 3d``; ``-`` for 0 (Gofer's "unset")."""
    if not ms:
        return "-"
    now = now_ms() if now is None else now
    delta = now - ms
    if abs(delta) < 5000:
        return "just now"
    text = _coarse(abs(delta))
    return f"{text} ago" if delta > 0 else f"in {text}"


def _coarse(ms: float) -> str:
    seconds = int(ms / 1000)
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timestamp(ms: int | None) -> str:
    """Local wall-clock time of epoch milliseconds (``2026-11-28 16:43:41``); ``-`` for 0."""
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def clock(ms: float | None) -> str:
    """``16:43:41.123`` local time, for log lines."""
    if not ms:
        return "--:--:--.---"
    moment = dt.datetime.fromtimestamp(ms / 1000).astimezone()
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def span(started: int | None, ended: int | None, now: int | None = None) -> str:
    """How long something ran: ended - started, or started until now while it runs; ``-`` if it never started."""
    if not started:
        return "-"
    end = ended or (now_ms() if now is None else now)
    text = duration(end - started)
    return text if ended else f"{text}…"


def size(count: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``."""
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
