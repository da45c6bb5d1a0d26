"""The ticker: a thread in a worker process that runs ``firing.tick`` when something is due.

How it runs (docs/architecture.md, "The ticker"): every django-q2 worker process starts the thread when it spawns
(``post_spawn``), but only one of them per host ticks (an ``flock`` on ``$GOFER_HOME/triggers-ticker.lock``, so the
others cost nothing), and only one host of the installation does (the ``TickerLease`` row, taken and renewed with
conditional UPDATEs). The holder sleeps until the next firing is due, at most ``GOFER_TRIGGER_TICK_SECONDS``, so
that a subscription made elsewhere is noticed: one indexed query per wake-up when idle. A subscription made or
changed in this process wakes it at once (``wake``). The same thread supervises third-party extensions' services
(health checks, restarts: triggers/supervisor.py).

Neither the lock nor the lease is needed for correctness: each due firing's unique key makes it start one run
whoever ticks. With ``GOFER_TRIGGER_LEASE_SECONDS=0`` every worker process ticks, which shows exactly that.
A django-q2 schedule could not do this: it is minute-granular, and ``every: 30s`` needs better.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from triggers import firing, logbook, services, supervisor
from triggers.models import TickerLease

logger = logging.getLogger(__name__)

# The lock file's owner keeps it for its whole life; others retry this often (no database cost).
LOCK_RETRY_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 3600

_started = False
_start_lock = threading.Lock()
_wake = threading.Event()
_stop = threading.Event()
OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# Periodic work of the apps above this one (the notifiers' sweep: duration rules, lost deliveries), run by the
# ticker's holder at every round; each returns how soon it wants the next round (seconds), or None.
_periodic: list[Callable[[dt.datetime], float | None]] = []


def register_periodic(func: Callable[[dt.datetime], float | None]) -> None:
    """Run ``func(now)`` at every round of the ticker (one process of the installation at a time, see above)."""
    if func not in _periodic:
        _periodic.append(func)


def wake() -> None:
    """Make this process's ticker look at the database now (a subscription was made or changed here)."""
    _wake.set()


def on_worker_spawned(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    start()


def start() -> None:
    """Start this process's ticker thread, once."""
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_run, name="gofer-ticker", daemon=True).start()


def _lock_file() -> IO[str] | None:
    """This host's ticker lock, or None when another process of the host holds it."""
    path = Path(settings.GOFER_HOME) / "triggers-ticker.lock"
    handle = path.open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def take_lease(now: dt.datetime | None = None) -> bool:
    """Take or renew the installation's ticker lease for this process; False while another holds it."""
    now = now or timezone.now()
    seconds = settings.GOFER_TRIGGER_LEASE_SECONDS
    expires = now + dt.timedelta(seconds=seconds)
    claimable = TickerLease.objects.filter(pk=1).filter(Q(owner=OWNER) | Q(expires__isnull=True) | Q(expires__lt=now))
    if claimable.update(owner=OWNER, expires=expires, last_tick=now) == 1:
        return True
    # The first ticker ever creates the row (one statement per renewal otherwise).
    defaults = {"owner": OWNER, "expires": expires, "last_tick": now}
    _, created = TickerLease.objects.get_or_create(pk=1, defaults=defaults)
    return created


def release_lease() -> None:
    TickerLease.objects.filter(pk=1, owner=OWNER).update(owner="", expires=None)


def _run() -> None:
    lock = None
    leased = settings.GOFER_TRIGGER_LEASE_SECONDS > 0
    try:
        while not _stop.is_set():
            if leased and lock is None:
                lock = _lock_file()
                if lock is None:
                    _stop.wait(LOCK_RETRY_SECONDS)
                    continue
            try:
                wait = _step(leased)
            except Exception:
                logger.exception("the trigger ticker failed; retrying")
                wait = settings.GOFER_TRIGGER_TICK_SECONDS
            finally:
                close_old_connections()
            _wake.wait(wait)
            _wake.clear()
    finally:
        with contextlib.suppress(Exception):
            if leased:
                release_lease()
        connection.close()
        if lock is not None:
            lock.close()


_state: dict[str, Any] = {"renewed": None, "housekeeping": None, "seeded": False, "supervised": None}


def _step(leased: bool) -> float:
    """One round: hold the lease, tick, supervise extensions; returns how long to sleep."""
    now = timezone.now()
    longest = float(settings.GOFER_TRIGGER_TICK_SECONDS)
    if leased:
        renew_every = max(settings.GOFER_TRIGGER_LEASE_SECONDS / 3, 1)
        renewed = _state["renewed"]
        if renewed is None or (now - renewed).total_seconds() >= renew_every:
            if not take_lease(now):
                _state["renewed"] = None
                return float(settings.GOFER_TRIGGER_LEASE_SECONDS) / 2
            _state["renewed"] = now
        longest = min(longest, renew_every)
    if not _state["seeded"]:
        services.ensure_builtin_extensions()
        _state["seeded"] = True
    next_due = firing.tick(now)
    supervised = _state["supervised"]
    if supervised is None or (now - supervised).total_seconds() >= settings.GOFER_EXTENSION_HEALTH_SECONDS:
        supervisor.supervise_all()
        _state["supervised"] = now
    longest = min(longest, float(settings.GOFER_EXTENSION_HEALTH_SECONDS))
    for func in _periodic:
        try:
            wanted = func(now)
        except Exception:
            logger.exception("periodic work %s failed; retrying at the next round", getattr(func, "__qualname__", func))
            wanted = None
        if wanted is not None:
            longest = min(longest, max(wanted, 0.0))
    housekeeping = _state["housekeeping"]
    if housekeeping is None or (now - housekeeping).total_seconds() >= HOUSEKEEPING_SECONDS:
        firing.prune_firings(now)
        logbook.prune()
        _state["housekeeping"] = now
    if next_due is None:
        return longest
    return max(0.0, min(longest, (next_due - timezone.now()).total_seconds()))
