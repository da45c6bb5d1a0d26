"""The embedded default's queue: django-q2's ORM broker, woken by a local bell instead of polling.

django-q2's ORM broker reads the queue table every ``poll`` seconds (0.2 s) when it is empty: five queries a second
when idle, and up to 0.2 s added to every hand-off. ``WakeableORM`` keeps the table (the queue is still rows in
Gofer's database, so a message survives any crash) but waits between reads on a **bell**: a Unix datagram socket
that the cluster's pusher binds under ``$GOFER_HOME/wakeup/<queue name>/``. Whoever enqueues (the server, a worker,
django-q2's scheduler) rings every bell in that directory once the message's row is committed, and the pusher reads
the table at once.

The bell itself is kernel/bells.py (the triggers ticker uses the same kind). A ring can be lost (the enqueuing
process died between its commit and the ring, the bell's buffer was full, the queue was written by a process on
another machine): the pusher also reads the table every ``GOFER_QUEUE_POLL_SECONDS`` (django-q2's ``poll``) when
nothing rang, so a lost ring costs at most that long. Idle, that is the pusher's only query.

Rings carry no data and bells trust no sender: a stray datagram only makes the pusher read the table once more. The
directory lives in ``$GOFER_HOME`` (mode 0700), so other local users cannot ring. With Redis (``GOFER_REDIS_URL``)
none of this is used: django-q2's Redis broker blocks on ``BLPOP``.
"""

from __future__ import annotations

import logging
import os
import time

from django.db import transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

from kernel.bells import Bell, ring

logger = logging.getLogger(__name__)


class WakeableORM(ORM):
    """django-q2's ORM broker with rings instead of a fast poll. ``Q_CLUSTER["broker_class"]`` in settings."""

    _bell: Bell | None = None
    _bell_pid: int | None = None

    def enqueue(self, task):
        pk = super().enqueue(task)
        # The pusher must find the row when it wakes: ring after the enclosing transaction (if any) commits.
        transaction.on_commit(lambda: ring(self.list_key), using=Conf.ORM)
        return pk

    def bell(self) -> Bell | None:
        """This process's bell (bound on first use; the broker object is made before django-q2 forks its pusher).
        None if it cannot be bound: the broker then polls every ``poll`` seconds, as django-q2's own does."""
        if self._bell_pid != os.getpid():
            self._bell_pid = os.getpid()
            try:
                self._bell = Bell(self.list_key)
            except OSError as exc:
                logger.warning("queue wake-ups are off (%s); reading the queue every %s s instead", exc, Conf.POLL)
                self._bell = None
        return self._bell

    def dequeue(self):
        bell = self.bell()
        if bell is not None:
            # Rings that arrived before this read are answered by it; a ring from now on wakes the wait below.
            bell.drain()
        now = timezone.now()
        tasks = self.get_connection().filter(key=self.list_key, lock__lt=now)[0 : Conf.BULK]  # noqa: E203
        taken = []
        for task in tasks:
            # Conditional on the lock we read: another cluster that was faster takes it instead.
            if self.get_connection().filter(id=task.id, lock=task.lock).update(lock=self.timeout(task)):
                taken.append((task.pk, task.payload))
        if taken:
            return taken
        if bell is None:
            time.sleep(Conf.POLL)
        else:
            bell.wait(Conf.POLL)
        return None
