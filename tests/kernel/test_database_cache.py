"""The database cache (kernel/cache.py) keeps its table under MAX_ENTRIES by deleting expired rows only: a table full
of live rate-limit counters refuses new keys instead of deleting live ones (Django's cull deleted a third of all
rows, so a client with many addresses could reset other clients' limits), and it does not count the table on every
write."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kernel import cache as gofer_cache

NAMESPACES = "/api/namespaces"


@pytest.fixture
def tiny(db):
    """A database cache of five entries on the shared table, emptied (inside the test's transaction), with no
    estimate of its size left over from another test."""
    gofer_cache._rooms.clear()
    small = gofer_cache.DatabaseCache(gofer_cache.TABLE, {"OPTIONS": {"MAX_ENTRIES": 5}})
    small.clear()
    yield small
    gofer_cache._rooms.clear()


def _expire_all() -> None:
    past = connection.ops.adapt_datetimefield_value(timezone.now() - dt.timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE gofer_cache SET expires = %s", [past])


def _rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM gofer_cache")
        return cursor.fetchone()[0]


def test_a_table_full_of_live_counters_refuses_new_keys_and_keeps_every_live_one(tiny):
    for n in range(5):
        assert tiny.add(f"a-live-{n}", n, 60) is True
    # An attacker's many addresses: each a new key. None gets in, and none pushes a live counter out.
    assert [tiny.add(f"z-attacker-{n}", 0, 60) for n in range(20)] == [False] * 20
    assert tiny.get_many([f"a-live-{n}" for n in range(5)]) == {f"a-live-{n}": n for n in range(5)}
    assert tiny.incr("a-live-0") == 1  # and the live ones keep counting
    assert tiny.add("a-live-1", 99, 60) is False  # add of a live key stays a no-op
    assert _rows() == 5


def test_expired_rows_are_deleted_to_make_room(tiny):
    for n in range(5):
        tiny.add(f"old-{n}", n, 60)
    _expire_all()
    gofer_cache._rooms.clear()  # as after RECOUNT_SECONDS
    assert tiny.add("new", 1, 60) is True
    assert tiny.get("new") == 1 and _rows() == 1


def test_a_full_table_is_looked_at_again_once_its_rows_expire(tiny, monkeypatch):
    for n in range(5):
        tiny.add(f"k-{n}", n, 60)
    assert tiny.add("waiting", 1, 60) is False
    _expire_all()
    monkeypatch.setattr(gofer_cache, "FULL_RECHECK_SECONDS", 0.0)
    assert tiny.add("waiting", 1, 60) is True


def test_an_existing_key_is_rewritten_even_when_the_table_is_full(tiny):
    for n in range(5):
        tiny.add(f"k-{n}", n, 60)
    tiny.set("k-0", "changed", 60)
    assert tiny.get("k-0") == "changed"
    assert tiny.touch("k-1", 120) is True


def test_new_keys_do_not_count_the_table_on_every_write(tiny):
    tiny.add("first", 0, 60)  # the first write of a process counts once
    with CaptureQueriesContext(connection) as queries:
        for n in range(3):
            tiny.add(f"key-{n}", n, 60)
            tiny.set(f"key-{n}", n + 1, 60)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts == []
    assert tiny.get_many(["key-0", "key-1", "key-2"]) == {"key-0": 1, "key-1": 2, "key-2": 3}


def test_many_addresses_cannot_reset_another_clients_rate_limit(client, settings, db):
    gofer_cache._rooms.clear()
    settings.CACHES = {
        **settings.CACHES,
        "tiny": {"BACKEND": "kernel.cache.DatabaseCache", "LOCATION": gofer_cache.TABLE, "OPTIONS": {"MAX_ENTRIES": 5}},
    }
    settings.RATELIMIT_USE_CACHE = "tiny"
    settings.GOFER_RATELIMIT_ANONYMOUS = "2/m"
    settings.RATELIMIT_FAIL_OPEN = False
    victim = "198.51.100.1"
    statuses = [client.get(NAMESPACES, REMOTE_ADDR=victim).status_code for _ in range(3)]
    assert statuses[-1] == 429
    for n in range(30):
        client.get(NAMESPACES, REMOTE_ADDR=f"203.0.113.{n + 1}")
    assert client.get(NAMESPACES, REMOTE_ADDR=victim).status_code == 429  # still counted, not reset
    gofer_cache._rooms.clear()
