"""The masker of a task execution's logs: built once per task execution and worker process.

Building one resolves every secret the task received (from the secret store, Vault perhaps) and compiles them into
one regex (secretstore/masking.py); doing that on every watch slice cost a Vault round trip and a compile each
time. The values do not change for a task execution (its container got them when it started), so the masker is
kept for as long as the process drives the task: a second worker that takes over builds its own, once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from runs import interpolation
from runs.models import TaskExecution
from secretstore.masking import Masker

# Enough for every task a worker process watches at once, with room; the oldest unused masker is dropped first.
CACHE_SIZE = 512

Mask = Callable[[str], str]

_cache: OrderedDict[int, Mask | None] = OrderedDict()
_lock = threading.Lock()


def masker_for(te: TaskExecution) -> Mask | None:
    """The mask function of ``te``'s secret values (None when it has none). Resolved once per task execution."""
    with _lock:
        if te.pk in _cache:
            _cache.move_to_end(te.pk)
            return _cache[te.pk]
    values = interpolation.secret_values(te.variables, run=te.run, run_token=te.run.token_secret)
    mask = Masker(values).mask if values else None
    with _lock:
        _cache[te.pk] = mask
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return mask


def forget(te_pk: int) -> None:
    """Drop a finished task execution's masker (its secret values) from memory."""
    with _lock:
        _cache.pop(te_pk, None)
