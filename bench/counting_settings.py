"""Settings for ``bench/idle.py`` only: ``bench/q_settings.py`` (Gofer's settings, plus ``--q-option``s) plus a count of
every SQL statement each server and worker process sends, written to ``$BENCH_QUERY_DIR/<pid>`` within a second.

The count is taken in Django's cursor (an execute wrapper on every connection), so it is the same for SQLite and
PostgreSQL and includes django-q2's own queries (its broker, scheduler and monitor use the ORM).
"""

import os
import threading
import time
from pathlib import Path

from django.db.backends.signals import connection_created

from bench.q_settings import *  # noqa: F403

_DIR = os.environ.get("BENCH_QUERY_DIR", "")
_LOG = os.environ.get("BENCH_QUERY_LOG") == "1"  # also each statement, to <pid>.sql (to find who queries)
_counts: dict[int, int] = {}  # pid -> statements (a forked child starts its own)
_writers: set[int] = set()
_lock = threading.Lock()


def _writer(pid: int) -> None:
    # Once a second, and only when the count moved: the counting must not be what an idle installation spends its
    # CPU on (bench/idle.py measures both at once).
    path = Path(_DIR) / str(pid)
    written = None
    while True:
        count = _counts.get(pid, 0)
        if count != written:
            path.write_text(str(count))
            written = count
        time.sleep(1.0)


def _count(execute, sql, params, many, context):
    pid = os.getpid()
    with _lock:
        _counts[pid] = _counts.get(pid, 0) + 1
        if pid not in _writers:  # threads do not survive fork: each process starts its own writer
            _writers.add(pid)
            threading.Thread(target=_writer, args=(pid,), daemon=True, name="bench-query-count").start()
    if _LOG:
        with open(Path(_DIR) / f"{pid}.sql", "a") as log:  # noqa: PTH123 - one line
            log.write(f"{time.time():.3f} {sql[:160]}\n")
    return execute(sql, params, many, context)


def _install(sender, connection, **kwargs):
    if _DIR and _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


connection_created.connect(_install, dispatch_uid="bench-query-count")
