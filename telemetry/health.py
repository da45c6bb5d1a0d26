"""The health probes: ``/healthz`` (this process answers: no I/O at all) and ``/readyz`` (what the process needs is
reachable: the database, the queue broker, the scheduler engine; 503 naming each one that is not).

Checks are registered by name (``register``): the database and the broker here, the scheduler engine by the runs
app (runs/apps.py). Each check returns nothing or raises; it gets ``GOFER_READYZ_TIMEOUT`` seconds, after which it
counts as unreachable (a hung engine must not hang the probe). The answer names what failed but not why: the probe
is unauthenticated, so hostnames and error texts go to the server log only.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

_CHECKS: dict[str, Callable[[], None]] = {}
# Checks run in these threads so that one that hangs costs its timeout, not the probe's caller forever.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="gofer-readyz")
# /readyz is unauthenticated and unthrottled: probes arriving together share one round of checks, and a round's
# outcome answers the probes of the next READINESS_REUSE_SECONDS, so a flood of probes cannot become a flood of
# database connections (each round opens one) and engine pings.
READINESS_REUSE_SECONDS = 1.0
_round = threading.Lock()
_last_round: tuple[float, dict[str, str]] | None = None


def register(name: str, check: Callable[[], None]) -> None:
    """Add (or replace) a readiness check: a callable that raises when ``name`` is not reachable."""
    _CHECKS[name] = check
    forget_readiness()


def checks() -> dict[str, Callable[[], None]]:
    return dict(_CHECKS)


def database_ready() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # A thread of the probe's pool: its connection must not outlive the check.
        close_old_connections()
        connection.close()


@functools.cache
def _broker():
    # lazy: django-q2's broker module reads its configuration when first imported.
    from django_q.brokers import get_broker

    return get_broker()


def queue_ready() -> None:
    """The django-q2 broker answers (Redis ``PING``; the ORM broker is the database, checked on its own)."""
    if not _broker().ping():
        raise ConnectionError("the queue broker did not answer")


def readiness() -> dict[str, str]:
    """Every check's outcome, ``ok`` or ``unreachable``, run side by side, each within ``GOFER_READYZ_TIMEOUT``;
    one round at a time in this process, its outcome reused for READINESS_REUSE_SECONDS."""
    global _last_round
    with _round:
        if _last_round is not None and time.monotonic() - _last_round[0] < READINESS_REUSE_SECONDS:
            return dict(_last_round[1])
        outcome = _run_checks()
        _last_round = (time.monotonic(), outcome)
        return dict(outcome)


def forget_readiness() -> None:
    """Make the next probe run the checks again (after a check was registered or the configuration changed)."""
    global _last_round
    with _round:
        _last_round = None


def _run_checks() -> dict[str, str]:
    timeout = settings.GOFER_READYZ_TIMEOUT
    futures = {name: _POOL.submit(check) for name, check in checks().items()}
    outcome: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("readyz: %s did not answer within %s s", name, timeout)
            outcome[name] = "unreachable"
        except Exception as exc:  # noqa: BLE001 - any failure of a check means not ready
            logger.warning("readyz: %s is not reachable: %s", name, exc)
            outcome[name] = "unreachable"
        else:
            outcome[name] = "ok"
    return outcome
