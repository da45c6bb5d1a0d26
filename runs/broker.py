"""The embedded default's queue: django-q2's ORM broker, woken by a local bell instead of polling.

django-q2's ORM broker reads the queue table every ``poll`` seconds (0.2 s) when it is empty: five queries a second
when idle, and up to 0.2 s added to every hand-off. ``WakeableORM`` keeps the table (the queue is still rows in
Gofer's database, so a message survives any crash) but waits between reads on a **bell**: a Unix datagram socket
that the cluster's pusher binds under ``$GOFER_HOME/wakeup/<queue name>/``. Whoever enqueues (the server, a worker,
django-q2's scheduler) rings every bell in that directory once the message's row is committed, and the pusher reads
the table at once.

A ring can be lost (the enqueuing process died between its commit and the ring, the bell's buffer was full, the
queue was written by a process on another machine): the pusher also reads the table every
``GOFER_QUEUE_POLL_SECONDS`` (django-q2's ``poll``) when nothing rang, so a lost ring costs at most that long. Idle,
that is the pusher's only query.

Rings carry no data and bells trust no sender: a stray datagram only makes the pusher read the table once more. The
directory lives in ``$GOFER_HOME`` (mode 0700), so other local users cannot ring. With Redis (``GOFER_REDIS_URL``)
none of this is used: django-q2's Redis broker blocks on ``BLPOP``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import select
import socket
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

logger = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux; a longer bell path binds under an abstract name derived from it instead.
_MAX_SOCKET_PATH = 100


def bell_directory(list_key: str) -> Path:
    """Where the bells of queue ``list_key`` are: one entry per listening pusher, named by its process id."""
    return Path(settings.GOFER_HOME) / "wakeup" / list_key


def _address(entry: Path) -> str:
    raw = str(entry)
    if len(os.fsencode(raw)) <= _MAX_SOCKET_PATH:
        return raw
    return "\0gofer-bell-" + hashlib.sha256(os.fsencode(raw)).hexdigest()[:40]


_sender: dict[int, socket.socket] = {}
_sender_lock = threading.Lock()


def _sending_socket() -> socket.socket:
    """One unbound, non-blocking datagram socket per process (keyed by pid: workers fork)."""
    pid = os.getpid()
    sock = _sender.get(pid)
    if sock is None:
        with _sender_lock:
            sock = _sender.get(pid)
            if sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                _sender[pid] = sock
    return sock


def ring(list_key: str) -> int:
    """Wake every pusher listening on queue ``list_key``. Never raises: a ring that fails is caught by the pushers'
    fallback read. Returns how many bells were rung. A bell whose pusher is gone is removed."""
    try:
        entries = list(bell_directory(list_key).iterdir())
    except OSError:
        return 0
    rung = 0
    sock = _sending_socket()
    for entry in entries:
        try:
            sock.sendto(b"!", _address(entry))
            rung += 1
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody listens there any more (the pusher exited or was killed): forget it.
            with contextlib.suppress(OSError):
                entry.unlink()
        except BlockingIOError:
            rung += 1  # its buffer is full of rings it has not read yet: it is going to read the table anyway
        except OSError as exc:
            logger.debug("could not ring %s: %s", entry, exc)
    return rung


class Bell:
    """The listening end: a bound datagram socket, registered in the queue's bell directory."""

    def __init__(self, list_key: str) -> None:
        directory = bell_directory(list_key)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.entry = directory / str(os.getpid())
        with contextlib.suppress(FileNotFoundError):
            self.entry.unlink()  # a previous process with our pid
        address = _address(self.entry)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        if address.startswith("\0"):
            self.entry.touch(mode=0o600)  # the registration; the socket itself has no file
        self.sock.setblocking(False)

    def drain(self) -> int:
        """Read every ring received so far (they all mean the same thing). Returns how many."""
        count = 0
        while True:
            try:
                self.sock.recv(64)
                count += 1
            except BlockingIOError:
                return count
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise

    def wait(self, timeout: float) -> bool:
        """Block until a ring arrives or ``timeout`` seconds pass. True if it rang."""
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            self.entry.unlink()


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
