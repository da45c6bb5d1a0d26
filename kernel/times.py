"""Time helpers: Gofer v0's wire format for times is epoch milliseconds, with 0 for "unset"."""

from __future__ import annotations

import datetime as dt


def epoch_ms(value: dt.datetime | None) -> int:
    """Epoch milliseconds, Gofer's timestamp format; 0 means unset."""
    if value is None:
        return 0
    return int(value.timestamp() * 1000)


def from_epoch_ms(value: int) -> dt.datetime | None:
    """The aware UTC datetime of an epoch-millisecond value; None for 0 (unset)."""
    if not value:
        return None
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
