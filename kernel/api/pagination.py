"""Pagination for every list: ``limit`` (default 50, at most 500), ``offset`` and ``reverse``."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from rest_framework.request import Request

from kernel.errors import ValidationFailed
from kernel.identifiers import strict_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Far beyond any real list, and inside every database's integer range: a larger OFFSET is a 500 on SQLite and
# PostgreSQL rather than an empty page.
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int
    reverse: bool

    def apply(self, queryset: QuerySet, *order: str) -> list:
        """The page of ``queryset`` ordered by ``order`` (ascending unless ``reverse``)."""
        if self.reverse:
            order = tuple(f[1:] if f.startswith("-") else f"-{f}" for f in order)
        return list(queryset.order_by(*order)[self.offset : self.offset + self.limit])


def parse_bool(raw: str | None, field: str, default: bool = False) -> bool:
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise ValidationFailed(f"{field}: must be true or false, not {raw!r:.40}", field=field)


def parse_int(raw: str | None, field: str, default: int, minimum: int, maximum: int | None = None) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = strict_int(raw)
    except ValueError:
        raise ValidationFailed(f"{field}: must be an integer, not {raw!r:.40}", field=field) from None
    if value < minimum:
        raise ValidationFailed(f"{field}: must be at least {minimum}", field=field)
    if maximum is not None and value > maximum:
        raise ValidationFailed(f"{field}: must be at most {maximum}", field=field)
    return value


def page_from(request: Request) -> Page:
    params = request.query_params
    return Page(
        limit=parse_int(params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=parse_int(params.get("offset"), "offset", 0, 0, MAX_OFFSET),
        reverse=parse_bool(params.get("reverse"), "reverse"),
    )
