"""The ticker: a thread in a worker process that runs ``firing.tick`` when something is due.

How it runs (docs/architecture.md, "The ticker"): every django-q2 worker process starts the thread when it spawns
(``post_spawn``), but only one of them per host ticks (an ``flock`` on ``$GOFER_HOME/triggers-ticker.lock``, so the
others cost nothing), and only one host of the installation does (the ``TickerLease`` row, taken and renewed with
conditional UPDATEs; the lock's holder takes over at once a lease left under its host's name by a dead process).
The holder sleeps until something is due (the next firing, a lease renewal, a health check, the apps' periodic
work), and is woken by a **bell** (kernel/bells.py) that every change of a subscription or an extension rings once
committed, in any process of the host (``services.wake_ticker``). Without a ring it still looks at everything every
``GOFER_TRIGGER_TICK_SECONDS``, which catches a lost ring and a change made on another host: a few statements per
period when idle. The same thread supervises third-party extensions' services (health checks, restarts:
triggers/supervisor.py) and runs the apps' periodic work (``register_periodic``).

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

from kernel.bells import Bell
from triggers import firing, logbook, services, supervisor
from triggers.models import TickerLease

logger = logging.getLogger(__name__)

# The lock file's owner keeps it for its whole life; others retry this often (no database cost).
LOCK_RETRY_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 3600

_started = False
_start_lock = threading.Lock()
_stop = threading.Event()
HOST_PREFIX = f"{socket.gethostname()}:"
OWNER = f"{HOST_PREFIX}{os.getpid()}:{uuid.uuid4().hex[:8]}"


# Periodic work of the apps above this one (the notifiers' sweep: duration rules, lost deliveries), run by the
# ticker's holder at every round; each returns how soon it wants the next round (seconds), or None.
_periodic: list[Callable[[dt.datetime], float | None]] = []


def register_periodic(func: Callable[[dt.datetime], float | None]) -> None:
    """Run ``func(now)`` at every round of the ticker (one process of the installation at a time, see above)."""
    if func not in _periodic:
        _periodic.append(func)


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
    """Take or renew the installation's ticker lease for this process; False while another holds it.

    Called only by the holder of this host's ticker lock (or, with no lease, never). A lease still held under this
    host's name by another process is taken at once: that process held the lock before us, and a lock is only
    released when its process ends, so it is dead (a recycled or killed worker), and nobody waits for it to lapse.
    """
    now = now or timezone.now()
    seconds = settings.GOFER_TRIGGER_LEASE_SECONDS
    expires = now + dt.timedelta(seconds=seconds)
    claimable = TickerLease.objects.filter(pk=1).filter(
        Q(owner=OWNER) | Q(owner__startswith=HOST_PREFIX) | Q(expires__isnull=True) | Q(expires__lt=now)
    )
    if claimable.update(owner=OWNER, expires=expires, last_tick=now) == 1:
        return True
    # The first ticker ever creates the row (one statement per renewal otherwise).
    defaults = {"owner": OWNER, "expires": expires, "last_tick": now}
    _, created = TickerLease.objects.get_or_create(pk=1, defaults=defaults)
    return created


def release_lease() -> None:
    TickerLease.objects.filter(pk=1, owner=OWNER).update(owner="", expires=None)


def _bell() -> Bell | None:
    try:
        return Bell(services.TICKER_BELL)
    except OSError as exc:
        logger.warning("ticker wake-ups are off (%s); looking every %s s", exc, settings.GOFER_TRIGGER_TICK_SECONDS)
        return None


def _run() -> None:
    lock = None
    bell = None
    leased = settings.GOFER_TRIGGER_LEASE_SECONDS > 0
    rang = False
    try:
        while not _stop.is_set():
            if leased and lock is None:
                lock = _lock_file()
                if lock is None:
                    _stop.wait(LOCK_RETRY_SECONDS)
                    continue
            if bell is None:
                bell = _bell()
            if bell is not None:
                # Rings that came before this round are answered by it; the ones from now on wake the wait below.
                rang = bool(bell.drain()) or rang
            try:
                wait = _step(leased, rang=rang)
            except Exception:
                logger.exception("the trigger ticker failed; retrying")
                wait = settings.GOFER_TRIGGER_TICK_SECONDS
            finally:
                close_old_connections()
            if bell is not None:
                rang = bell.wait(wait)
            else:
                _stop.wait(wait)
    finally:
        with contextlib.suppress(Exception):
            if leased:
                release_lease()
        connection.close()
        if bell is not None:
            bell.close()
        if lock is not None:
            lock.close()


_state: dict[str, Any] = {
    "renewed": None,  # when this process last took or renewed the lease
    "looked": None,  # the last full round: everything looked at, whatever was known to be due
    "next_due": None,  # the next scheduled firing (or healing) known at the last tick; None: nothing scheduled
    "supervised": None,  # the last round of extension supervision
    "services": True,  # whether that round found third-party extensions (which then need health checks)
    "periodic": {},  # func -> when it wants to run next (None: at the next full round)
    "housekeeping": None,
    "seeded": False,
}


def _seconds_until(when: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if when is None else (when - now).total_seconds()


def _step(leased: bool, *, rang: bool = True) -> float:
    """One round: hold the lease, and do what is due: fire due firings, supervise extensions, the apps' periodic
    work. A ring (something changed: a subscription, an extension) or ``GOFER_TRIGGER_TICK_SECONDS`` without one
    makes a full round, which looks at everything; between them only what is known to be due is done, so an idle
    installation costs a few statements per fallback period. Returns how long to sleep."""
    now = timezone.now()
    tick_seconds = float(settings.GOFER_TRIGGER_TICK_SECONDS)
    looked = _state["looked"]
    full = rang or looked is None or (now - looked).total_seconds() >= tick_seconds
    if full:
        _state["looked"] = looked = now
    waits = [tick_seconds - (now - looked).total_seconds()]
    if leased:
        renew_every = max(settings.GOFER_TRIGGER_LEASE_SECONDS / 3, 1)
        renewed = _state["renewed"]
        if renewed is None or (now - renewed).total_seconds() >= renew_every:
            if not take_lease(now):
                _state["renewed"] = None
                return float(settings.GOFER_TRIGGER_LEASE_SECONDS) / 2
            _state["renewed"] = renewed = now
        waits.append(renew_every - (now - renewed).total_seconds())
    if not _state["seeded"]:
        services.ensure_builtin_extensions()
        _state["seeded"] = True
    next_due = _state["next_due"]
    if full or (next_due is not None and next_due <= now):
        _state["next_due"] = next_due = firing.tick(now)
    supervised = _state["supervised"]
    health = float(settings.GOFER_EXTENSION_HEALTH_SECONDS)
    if full or supervised is None or (_state["services"] and (now - supervised).total_seconds() >= health):
        _state["services"] = supervisor.supervise_all() > 0
        _state["supervised"] = supervised = now
    if _state["services"]:
        waits.append(health - (now - supervised).total_seconds())
    for func in _periodic:
        due = _state["periodic"].get(func)
        if not (full or (due is not None and due <= now)):
            if due is not None:
                waits.append((due - now).total_seconds())
            continue
        try:
            wanted = func(now)
        except Exception:
            logger.exception("periodic work %s failed; retrying at the next round", getattr(func, "__qualname__", func))
            wanted = None
        _state["periodic"][func] = None if wanted is None else now + dt.timedelta(seconds=max(wanted, 0.0))
        if wanted is not None:
            waits.append(max(wanted, 0.0))
    housekeeping = _state["housekeeping"]
    if housekeeping is None or (now - housekeeping).total_seconds() >= HOUSEKEEPING_SECONDS:
        firing.prune_firings(now)
        logbook.prune()
        _state["housekeeping"] = now
    until_due = _seconds_until(next_due, timezone.now())
    if until_due is not None:
        waits.append(until_due)
    return max(0.0, min(waits))
