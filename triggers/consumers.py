"""``GET (websocket) /api/extensions/{extension_id}/logs?history=true&format=raw|json``: the extension's log.

It streams the trigger's firing decisions (fired, skipped, error, healed, missed while no worker ran...) and, for a
third-party extension, its service's own output, as they are recorded (ExtensionLogEntry rows, written by every
process; read here from the database, so whichever process decided, every listener hears it). With
``history=true`` (the default) the stored lines come first. A caller sees the lines about pipelines it may read
subscriptions of; lines about no pipeline (the service's output) are for admins. ``format=json`` sends ``{"id",
"time", "source", "text"}`` objects; ``raw`` the text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async

from access import scope as access_scope
from kernel import scope as tenancy
from kernel.api.views import rule
from kernel.api.websockets import GoferWebsocketConsumer, query_params
from kernel.choices import Action, Resource
from kernel.errors import GoferError, ValidationFailed
from kernel.times import epoch_ms
from triggers import services
from triggers.models import ExtensionLogEntry

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BATCH = 500


class ExtensionLogsConsumer(GoferWebsocketConsumer):
    rule = rule(Action.READ, Resource.EXTENSIONS)

    def _check(self) -> Any:
        extension_id = self.scope["url_route"]["kwargs"]["extension_id"]
        access_scope.require_extension(self.principal, extension_id, Action.READ)
        extension = services.get_extension(extension_id)
        rows = tenancy.restrict(
            ExtensionLogEntry.objects.filter(extension_id=extension.id),
            self.principal,
            Action.READ,
            (Resource.SUBSCRIPTIONS,),
        )
        history = self.bool_param("history", True)
        cursor = 0 if history else (rows.order_by("-id").values_list("id", flat=True).first() or 0)
        return rows, cursor

    async def open(self) -> None:
        try:
            self.fmt = query_params(self.scope).get("format", "raw")
            if self.fmt not in ("raw", "json"):
                raise ValidationFailed("format: raw or json", field="format")
            self.rows, self.cursor = await database_sync_to_async(self._check)()
        except GoferError as error:
            await self.fail(error)
            return
        self.streamer = asyncio.create_task(self._stream())

    def _next(self) -> list[ExtensionLogEntry]:
        return list(self.rows.filter(id__gt=self.cursor).order_by("id")[:BATCH])

    async def _stream(self) -> None:
        try:
            while True:
                batch = await database_sync_to_async(self._next)()
                for entry in batch:
                    if self.fmt == "json":
                        frame = json.dumps(
                            {
                                "id": entry.id,
                                "time": epoch_ms(entry.created),
                                "source": entry.source,
                                "text": entry.text,
                            }
                        )
                    else:
                        frame = entry.text
                    await self.send(text_data=frame)
                    self.cursor = entry.id
                if len(batch) < BATCH:
                    await asyncio.sleep(POLL_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("extension log stream failed")
            await self.close(code=1011)

    async def disconnect(self, code: int) -> None:
        streamer = getattr(self, "streamer", None)
        if streamer is not None:
            streamer.cancel()
