"""Leases: how one worker at a time owns an active task execution, and how it keeps owning it while it works.

A lease is two columns, ``lease_owner`` and ``lease_expires``, taken with a conditional UPDATE (only when free or
lapsed) and renewed by the same kind of UPDATE (only while still ours). Everything a worker changes on a task
execution is conditional on its owner id, so a worker that lost its lease (it stalled past the expiry, and the
reconciler handed the task to another) can change nothing.

A step never sleeps or blocks longer than its lease without renewing it: ``Lease.sleep`` renews between short
sleeps, and ``Lease.kept()`` renews from a heartbeat thread while the step is inside a call that can block for
long (pulling an image, draining a huge log line), then raises LeaseLost if a renewal failed meanwhile.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from runs.choices import ACTIVE_TASK_STATES
from runs.models import TaskExecution


class LeaseLost(Exception):
    """Another worker took over this task execution (ours expired); stop touching it."""


def lease_seconds() -> int:
    return settings.GOFER_LEASE_SECONDS


def claim(te_pk: int) -> Lease | None:
    """The lease of an active task execution if it is free or lapsed (None when another worker holds it)."""
    owner = uuid.uuid4().hex
    now = timezone.now()
    taken = (
        TaskExecution.objects.filter(pk=te_pk, state__in=ACTIVE_TASK_STATES)
        .filter(Q(lease_owner="") | Q(lease_expires__isnull=True) | Q(lease_expires__lt=now))
        .update(lease_owner=owner, lease_expires=now + dt.timedelta(seconds=lease_seconds()))
    )
    return Lease(te_pk, owner, taken_at=time.monotonic()) if taken == 1 else None


# A renewal this soon after the last one is skipped: the lease still has nearly all of its time, and nobody can take
# a lease before it lapses, so the UPDATE would change nothing (a step renews at each of its phases, and a short
# task's phases come milliseconds apart).
RENEW_AT_MOST_EVERY = 1.0


class Lease:
    """A held lease on one task execution. ``owner`` is the id every conditional update filters on."""

    def __init__(self, te_pk: int, owner: str, *, taken_at: float | None = None) -> None:
        self.te_pk = te_pk
        self.owner = owner
        self._renewed = taken_at  # time.monotonic() of the last claim or renewal that this object made

    def mine(self) -> Q:
        """The filter that makes an update conditional on still holding this lease."""
        return Q(pk=self.te_pk, lease_owner=self.owner)

    def renew(self) -> None:
        """Extend the lease by GOFER_LEASE_SECONDS from now; raises LeaseLost if it is no longer ours. Within
        RENEW_AT_MOST_EVERY (at most a tenth of the lease) of the last renewal it is already as good as renewed."""
        started = time.monotonic()
        if self._renewed is not None and started - self._renewed < min(RENEW_AT_MOST_EVERY, lease_seconds() / 10):
            return
        expires = timezone.now() + dt.timedelta(seconds=lease_seconds())
        if TaskExecution.objects.filter(self.mine()).update(lease_expires=expires) != 1:
            raise LeaseLost(self.te_pk)
        self._renewed = started

    def release(self, *, not_before: dt.datetime | None = None) -> bool:
        """Give the lease up. With ``not_before``, nobody (the reconciler included) takes it before then: used when
        a message for the next step is already queued, so the reconciler does not queue a second one."""
        return TaskExecution.objects.filter(self.mine()).update(lease_owner="", lease_expires=not_before) == 1

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` without letting the lease lapse: renew at least every third of the lease."""
        deadline = time.monotonic() + seconds
        step = max(0.5, lease_seconds() / 3)
        while True:
            self.renew()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(step, left))

    @contextlib.contextmanager
    def kept(self) -> Iterator[None]:
        """Renew the lease from a heartbeat thread while the body runs (a call that may block longer than the
        lease). Raises LeaseLost after the body if a renewal found the lease taken.

        Never use it inside a transaction: on SQLite the heartbeat's write would wait for the body's write lock."""
        stop = threading.Event()
        lost = threading.Event()
        interval = max(0.5, lease_seconds() / 3)

        def beat() -> None:
            try:
                while not stop.wait(interval):
                    try:
                        self.renew()
                    except LeaseLost:
                        lost.set()
                        return
                    except Exception:  # noqa: S112 - a database hiccup: the next beat tries again
                        continue
            finally:
                # The thread's own database connection: close it, Django only closes those of request threads.
                connection.close()

        thread = threading.Thread(target=beat, name=f"lease-{self.te_pk}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        if lost.is_set():
            raise LeaseLost(self.te_pk)
