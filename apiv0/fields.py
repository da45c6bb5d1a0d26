"""Conversions between stored values and Gofer v0's wire formats."""

from __future__ import annotations

import datetime as dt
import re

_DECIMAL = re.compile(r"-?[0-9]{1,30}")


def epoch_ms(value: dt.datetime | None) -> int:
    """Epoch milliseconds, Gofer's timestamp format; 0 means unset."""
    if value is None:
        return 0
    return int(value.timestamp() * 1000)


def from_epoch_ms(value: int) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def strict_int(raw: object) -> int:
    """An integer written as plain ASCII decimal digits, optionally negative; raises ValueError otherwise.

    ``int()`` alone also takes " 7", "+7", "1_000" and non-ASCII digits, so "runs/1_0" would be run 10.
    """
    text = str(raw)
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal integer: {text!r:.40}")
    return int(text)
