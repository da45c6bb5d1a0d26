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


class LineMask:
    """A task execution's masker for log lines: ``mask(text)`` masks one line, ``mask.lines(texts)`` a batch.

    A batch is masked in one scan of its lines joined by newlines, which gives exactly the per-line result: the
    masker's needles never contain a line break (secretstore/masking.py), so no match crosses from one line into
    the next and the replacement has none either; matches in two lines never touch, because the newline between
    them is not part of either. A batch without a secret in it, the common case, costs one regex scan and no copy.
    """

    __slots__ = ("_mask",)

    def __init__(self, masker: Masker) -> None:
        self._mask = masker.mask

    def __call__(self, text: str) -> str:
        return self._mask(text)

    def lines(self, texts: list[str]) -> list[str]:
        """``[mask(text) for text in texts]``."""
        if len(texts) < 2:
            return [self._mask(text) for text in texts]
        joined = "\n".join(texts)
        if joined.count("\n") != len(texts) - 1:
            return [self._mask(text) for text in texts]  # a text with a newline of its own: one at a time
        masked = self._mask(joined)
        if masked is joined or masked == joined:
            return texts
        return masked.split("\n")


_cache: OrderedDict[int, LineMask | None] = OrderedDict()
_lock = threading.Lock()


def masker_for(te: TaskExecution) -> LineMask | None:
    """The masker of ``te``'s secret values (None when it has none): a ``Mask`` function that also masks a batch
    of lines at once (``LineMask.lines``). Resolved once per task execution."""
    with _lock:
        if te.pk in _cache:
            _cache.move_to_end(te.pk)
            return _cache[te.pk]
    values = interpolation.secret_values(te.variables, run=te.run, run_token=te.run.token_secret)
    mask = LineMask(Masker(values)) if values else None
    with _lock:
        _cache[te.pk] = mask
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return mask


def forget(te_pk: int) -> None:
    """Drop a finished task execution's masker (its secret values) from memory."""
    with _lock:
        _cache.pop(te_pk, None)
