"""Driving the orchestrator in tests.

``InlineQueue`` stands in for the django-q2 broker inside one test process: messages the engine enqueues are kept in
order and ``drain()`` runs them, one at a time, through the same worker entry points (runs/tasks.py) a real worker
uses, until the queue is empty or a condition holds. Nothing of the engine is replaced; only the hop through the
broker is. Tests of the real broker and real worker processes (crash recovery) live in test_worker_processes.py.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections
from django.utils.module_loading import import_string

from runs import queue


class InlineQueue:
    def __init__(self) -> None:
        self.messages: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    def enqueue(self, func: str, *args: Any) -> None:
        self.messages.append((func, args))

    def run_one(self) -> bool:
        if not self.messages:
            return False
        func, args = self.messages.popleft()
        self.executed.append((func, args))
        import_string(func)(*args)
        return True

    def drain(
        self, until: Callable[[], bool] | None = None, timeout: float = 60.0, reconcile_every: float = 2.0
    ) -> None:
        """Run queued work until ``until()`` is true (or, without it, until the queue is empty).

        Every ``reconcile_every`` seconds it also runs the reconciler, as the django-q2 schedule does (every minute
        in production; more often here so tests of timeouts and recovery take seconds).
        """
        deadline = time.monotonic() + timeout
        next_reconcile = time.monotonic() + reconcile_every
        while time.monotonic() < deadline:
            if until is not None and until():
                return
            if time.monotonic() >= next_reconcile:
                import_string("runs.tasks.reconcile")()
                next_reconcile = time.monotonic() + reconcile_every
            if not self.run_one():
                if until is None:
                    return
                time.sleep(0.05)
            close_old_connections()
        raise AssertionError(f"the engine did not get there within {timeout} s; queue: {list(self.messages)[:5]}")


def install(monkeypatch: Any) -> InlineQueue:
    inline = InlineQueue()
    monkeypatch.setattr(queue, "_enqueue", inline.enqueue)
    return inline
