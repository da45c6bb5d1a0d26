"""Django's database cache with an atomic ``incr``: the shared cache of an installation without Redis.

Rate limits (kernel/api/ratelimits.py) count requests with ``cache.add`` then ``cache.incr``. Django's
``DatabaseCache.incr`` is a read followed by a write, so two server processes counting at once could both read 4
and both write 5; here the read and the write are one transaction holding the row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's IMMEDIATE transactions take the database's write lock at BEGIN), so no count is lost. The table
(``gofer_cache``) is created by the kernel's migration ``0001_cache_table``.

Growth (``_base_set``). Django's ``DatabaseCache`` runs ``SELECT COUNT(*)`` on every write and, past
``MAX_ENTRIES``, deletes a third of all rows by key order, live ones included: a client with many addresses could
fill the table and so reset other clients' rate-limit counters and free stream slots. Here a write to an existing key
never counts anything (it does not grow the table), and only a new key needs room:

- each process keeps an estimate of the rows (the last count plus its own inserts since); at most every
  ``RECOUNT_SECONDS``, or when the estimate reaches ``MAX_ENTRIES``, it deletes the *expired* rows and counts again;
- when the table is still at ``MAX_ENTRIES`` of live rows, the new key is refused (``add`` answers False; a full
  table is rechecked at most every ``FULL_RECHECK_SECONDS``): no live counter is ever deleted to make room.

A refused new counter is a cache failure to django-ratelimit, which ``GOFER_RATELIMIT_FAIL_OPEN`` decides: a new
caller goes unlimited (normal mode) or is refused with 429 (sandbox mode) until counters expire; the callers already
counted keep their counts either way. The table can exceed ``MAX_ENTRIES`` by what other processes insert between
two counts (each process counts at least every ``RECOUNT_SECONDS``).
"""

from __future__ import annotations

import base64
import datetime as dt
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import DatabaseError, connections, models, router, transaction
from django.utils import timezone

TABLE = "gofer_cache"
# How often a process deletes the expired rows and counts the table, at the latest.
RECOUNT_SECONDS = 60.0
# How often a table found full of live rows is looked at again (until then, new keys are refused at no cost).
FULL_RECHECK_SECONDS = 1.0


@dataclass
class _Room:
    """One process's view of a cache table's size: ``rows`` at the last count plus this process's inserts since."""

    rows: int = 0
    counted: float = float("-inf")


# Per (database, table), shared by the threads of a process (Django gives each thread its own cache object).
_rooms: dict[tuple[str, str], _Room] = {}
_rooms_lock = threading.Lock()


class DatabaseCache(DjangoDatabaseCache):
    """``DatabaseCache`` whose ``incr``/``decr`` cannot lose an update between processes, and whose table is kept
    under ``MAX_ENTRIES`` by deleting expired rows only: a new key that finds no room is refused (see above)."""

    def _has_room(self, db: str, cursor: Any, now: dt.datetime) -> bool:
        """Whether one more row may be inserted; counts it if so. Deletes the expired rows and counts the table
        when the estimate is stale or full (a full table at most every FULL_RECHECK_SECONDS)."""
        room_key = (db, self._table)
        moment = time.monotonic()
        with _rooms_lock:
            room = _rooms.setdefault(room_key, _Room())
            since = moment - room.counted
            if since < RECOUNT_SECONDS and room.rows < self._max_entries:
                room.rows += 1
                return True
            if room.rows >= self._max_entries and since < FULL_RECHECK_SECONDS:
                return False
            room.counted = moment  # the other threads keep to the old estimate while this one counts
        connection = connections[db]
        quote = connection.ops.quote_name
        table = quote(self._table)
        # Only the expired rows: a live counter is never deleted to make room.
        cursor.execute(
            f"DELETE FROM {table} WHERE {quote('expires')} < %s",  # noqa: S608
            [connection.ops.adapt_datetimefield_value(now)],
        )
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
        rows = cursor.fetchone()[0]
        with _rooms_lock:
            room.rows = rows + (1 if rows < self._max_entries else 0)
            return rows < self._max_entries

    def _base_set(self, mode: str, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT) -> bool:
        """Django's ``_base_set`` (set, add, touch) without its COUNT on every write and its cull of live rows:
        an existing key is updated in place; a new key is inserted only when ``_has_room``."""
        timeout = self.get_backend_timeout(timeout)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table = quote(self._table)
        now = timezone.now().replace(microsecond=0)
        if timeout is None:
            expires = dt.datetime.max  # noqa: DTZ901 - as Django stores "never": adapted below, as it does
        else:
            expires = dt.datetime.fromtimestamp(timeout, tz=dt.UTC if settings.USE_TZ else None)
        expires = connection.ops.adapt_datetimefield_value(expires.replace(microsecond=0))
        stored = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        try:
            with transaction.atomic(using=db), connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {quote('cache_key')}, {quote('expires')} FROM {table} "  # noqa: S608
                    f"WHERE {quote('cache_key')} = %s",
                    [key],
                )
                row = cursor.fetchone()
                if row is not None:
                    current = row[1]
                    expression = models.Expression(output_field=models.DateTimeField())
                    for converter in connection.ops.get_db_converters(expression) + expression.get_db_converters(
                        connection
                    ):
                        current = converter(current, expression, connection)
                if row is not None and mode == "touch":
                    cursor.execute(
                        f"UPDATE {table} SET {quote('expires')} = %s WHERE {quote('cache_key')} = %s",  # noqa: S608
                        [expires, key],
                    )
                elif row is not None and (mode == "set" or (mode == "add" and current < now)):
                    cursor.execute(
                        f"UPDATE {table} SET {quote('value')} = %s, {quote('expires')} = %s "  # noqa: S608
                        f"WHERE {quote('cache_key')} = %s",
                        [stored, expires, key],
                    )
                elif row is None and mode != "touch":
                    if not self._has_room(db, cursor, now):
                        return False
                    cursor.execute(
                        f"INSERT INTO {table} ({quote('cache_key')}, {quote('value')}, {quote('expires')}) "  # noqa: S608
                        "VALUES (%s, %s, %s)",
                        [key, stored, expires],
                    )
                else:
                    return False  # touch of a missing key, or add of a live one
        except DatabaseError:
            # As Django's: a concurrent insert of the same key (or an update that lost a race) fails quietly.
            return False
        return True

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table = quote(self._table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        now = connection.ops.adapt_datetimefield_value(timezone.now().replace(microsecond=0))
        with transaction.atomic(using=db), connection.cursor() as cursor:
            # Only quoted identifiers are formatted in (the table is the operator's setting); values are parameters.
            cursor.execute(
                f"SELECT {quote('value')} FROM {table} WHERE {quote('cache_key')} = %s "  # noqa: S608
                f"AND {quote('expires')} >= %s{lock}",
                [key, now],
            )
            row = cursor.fetchone()
            if row is None:
                raise ValueError(f"Key '{key}' not found")
            # Django's own encoding of a cache value (pickled, base64), of rows only this cache writes.
            value = pickle.loads(base64.b64decode(connection.ops.process_clob(row[0]).encode())) + delta  # noqa: S301
            stored = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {quote('value')} = %s WHERE {quote('cache_key')} = %s",  # noqa: S608
                [stored, key],
            )
        return value
