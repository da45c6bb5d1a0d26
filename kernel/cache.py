"""Django's database cache with an atomic ``incr``: the shared cache of an installation without Redis.

Rate limits (kernel/api/ratelimits.py) count requests with ``cache.add`` then ``cache.incr``. Django's
``DatabaseCache.incr`` is a read followed by a write, so two server processes counting at once could both read 4
and both write 5; here the read and the write are one transaction holding the row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's IMMEDIATE transactions take the database's write lock at BEGIN), so no count is lost. The table
(``gofer_cache``) is created by the kernel's migration ``0001_cache_table``.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import connections, router, transaction
from django.utils import timezone

TABLE = "gofer_cache"


class DatabaseCache(DjangoDatabaseCache):
    """``DatabaseCache`` whose ``incr``/``decr`` cannot lose an update between processes."""

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
