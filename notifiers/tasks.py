"""django-q2 entry points. Their dotted paths are stored in queued messages: never rename them."""

from __future__ import annotations

from notifiers import services


def deliver_notice(notice_pk: int) -> None:
    services.deliver(notice_pk)
