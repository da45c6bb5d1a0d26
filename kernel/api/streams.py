"""Open websocket streams and their owners: the cap per token, and the push that makes a revoked token's streams
re-check themselves at once.

**The cap.** A token (an anonymous caller: a client address) may hold ``GOFER_MAX_STREAMS_PER_TOKEN`` open streams
(events, logs, attach) at once; one more is refused with 429 (close code 4429). Each open stream holds one of the
owner's numbered *slots* in Django's cache, taken with ``cache.add`` (atomic, first one wins) and renewed while the
stream lives; a slot whose server died expires by itself ``slot_ttl()`` seconds later. With ``GOFER_REDIS_URL`` the
cache is Redis, shared by every server process, so the cap holds across them; without it, the cache is the process's
memory, which is the whole server in the embedded default (one daphne).

**Revocation.** When a token is disabled or deleted, or a role it holds changes or is deleted, ``access`` calls
``access_changed(token_ids)``: once the transaction commits, every stream of those tokens is told through the Channels
layer (group ``gofer.token.<id>``) and re-checks its token and roles at once (kernel/api/websockets.py). The in-process
layer (no Redis) reaches the streams of this process only; the others find out at their periodic re-check,
``GOFER_STREAM_RECHECK_SECONDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from kernel.errors import TooMany

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "gofer.access.changed"


def token_group(token_id: str) -> str:
    """The Channels group of one token's open streams."""
    return f"gofer.token.{token_id}"


def slot_ttl() -> int:
    """How long a slot outlives its last renewal (a stream renews at every re-check)."""
    return 3 * settings.GOFER_STREAM_RECHECK_SECONDS + 10


def _keys(owner: str) -> list[str]:
    return [f"gofer.stream.{owner}.{index}" for index in range(settings.GOFER_MAX_STREAMS_PER_TOKEN)]


def acquire(owner: str, holder: str) -> str:
    """Take a free slot of ``owner`` for ``holder`` (unique per stream); returns its key ("" when there is no cap).
    Raises TooMany when every slot is held. Sync: the cache may be Redis."""
    keys = _keys(owner)
    if not keys:
        return ""
    held = cache.get_many(keys)
    for key in keys:
        if key not in held and cache.add(key, holder, timeout=slot_ttl()):
            return key
    raise TooMany(
        f"this token already has {len(keys)} open streams (GOFER_MAX_STREAMS_PER_TOKEN); close one and retry",
        field="Authorization",
    )


def renew(key: str, holder: str) -> None:
    """Keep ``holder``'s slot (taking it again if it expired meanwhile and nobody else took it)."""
    if not key:
        return
    if cache.get(key) == holder:
        cache.touch(key, slot_ttl())
    else:
        cache.add(key, holder, timeout=slot_ttl())


def release(key: str, holder: str) -> None:
    if key and cache.get(key) == holder:
        cache.delete(key)


def access_changed(token_ids: Iterable[Any]) -> None:
    """Tell the open streams of these tokens to re-check them, once the current transaction commits (a rollback
    changed nothing). Never fails the caller: the periodic re-check is the fallback."""
    groups = [token_group(str(token_id)) for token_id in token_ids if token_id is not None]
    if groups:
        transaction.on_commit(lambda: _push(groups))


def _push(groups: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, {"type": ACCESS_CHANGED})
    except Exception:
        logger.warning("could not tell open streams that %d tokens changed", len(groups), exc_info=True)
