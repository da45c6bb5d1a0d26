"""An extension's log: Gofer's firing decisions and a third-party extension's own output, as database rows
(``ExtensionLogEntry``), so that every process (server, workers) writes to it and the websocket reads it from any.

Lines never hold setting values: decisions name subscriptions, times and run ids only.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db.models import Max

from triggers.models import ExtensionLogEntry

logger = logging.getLogger("triggers")

MAX_LINE = 4000


def write(extension_id: str, text: str, *, subscription: Any = None, source: str = "gofer") -> None:
    """Append a line (in the caller's transaction: a decision that rolls back was never logged)."""
    namespace_id = pipeline_slug = None
    if subscription is not None:
        namespace_id, pipeline_slug = subscription.namespace_id, subscription.pipeline.slug
        text = f"{namespace_id}/{pipeline_slug} {subscription.subscription_id}: {text}"
    ExtensionLogEntry.objects.create(
        extension_id=extension_id,
        text=text[:MAX_LINE],
        source=source,
        namespace_id=namespace_id,
        pipeline_slug=pipeline_slug,
    )
    if source == "gofer":
        logger.info("extension %s: %s", extension_id, text[:MAX_LINE])


def write_many(extension_id: str, lines: list[tuple[str, str]]) -> None:
    """Append the service's output lines ``(source, text)`` in one statement."""
    ExtensionLogEntry.objects.bulk_create(
        [ExtensionLogEntry(extension_id=extension_id, source=source, text=text[:MAX_LINE]) for source, text in lines]
    )


def prune() -> int:
    """Keep the newest ``GOFER_EXTENSION_LOG_LINES`` lines of each extension; returns how many went."""
    keep = settings.GOFER_EXTENSION_LOG_LINES
    removed = 0
    newest = ExtensionLogEntry.objects.values("extension_id").annotate(top=Max("id"))
    for row in newest:
        deleted, _ = ExtensionLogEntry.objects.filter(
            extension_id=row["extension_id"], id__lte=row["top"] - keep
        ).delete()
        removed += deleted
    return removed
