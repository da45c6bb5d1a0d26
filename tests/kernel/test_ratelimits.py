"""Rate limits: per token and per client address on the API (the forwarded address behind a trusted proxy), the
external endpoints' own limit, the admin login's lockout; 429 with Retry-After in the error shape; the counters in
the shared cache hold across two real server processes; and the database cache's increments lose nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from django.core.cache import cache
from django.db import close_old_connections
from django.test import Client, override_settings

from kernel import cache as gofer_cache
from kernel.api.ratelimits import rate_limited
from tests.support.processes import Server

NAMESPACES = "/api/namespaces"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _empty_counters(db):
    """Counters live in a table the test database does not truncate: each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@override_settings(GOFER_RATELIMIT_API="3/m", GOFER_RATELIMIT_ANONYMOUS="")
def test_a_token_over_its_limit_gets_429_with_retry_after_in_the_error_shape(admin):
    assert [admin.get(NAMESPACES).status_code for _ in range(3)] == [200, 200, 200]
    limited = admin.get(NAMESPACES)
    assert limited.status_code == 429
    body = limited.json()
    assert body["error_code"] == "rate_limited"
    assert "GOFER_RATELIMIT_API" in body["message"]
    assert set(body) >= {"error_code", "message", "request_id", "errors"}
    assert 1 <= int(limited["Retry-After"]) <= 60


@override_settings(GOFER_RATELIMIT_API="2/m", GOFER_RATELIMIT_ANONYMOUS="")
def test_each_token_has_its_own_count(admin, alice):
    assert [admin.get(NAMESPACES).status_code for _ in range(3)] == [200, 200, 429]
    assert alice.get(NAMESPACES).status_code == 200


@override_settings(GOFER_RATELIMIT_API="", GOFER_RATELIMIT_ANONYMOUS="2/m")
def test_anonymous_callers_are_counted_per_address(anonymous):
    first = Client(REMOTE_ADDR="198.51.100.7")
    second = Client(REMOTE_ADDR="198.51.100.8")
    assert [first.get("/api/system/metadata").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/system/metadata").status_code == 200


@override_settings(GOFER_RATELIMIT_API="", GOFER_RATELIMIT_ANONYMOUS="2/m", GOFER_TRUSTED_PROXIES=["10.0.0.1"])
def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(anonymous):
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    one = {"HTTP_X_FORWARDED_FOR": "203.0.113.1"}
    other = {"HTTP_X_FORWARDED_FOR": "203.0.113.2"}
    assert [proxy.get("/api/system/metadata", **one).status_code for _ in range(3)] == [200, 200, 429]
    assert proxy.get("/api/system/metadata", **other).status_code == 200
    # A client that is not a trusted proxy cannot choose its address with the header.
    direct = Client(REMOTE_ADDR="192.0.2.9")
    spoofed = [direct.get("/api/system/metadata", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(3)]
    assert spoofed == [200, 200, 429]


@override_settings(GOFER_RATELIMIT_API="", GOFER_RATELIMIT_ANONYMOUS="2/m")
def test_guessed_tokens_count_against_the_address(db):
    guesser = Client(REMOTE_ADDR="192.0.2.80")
    statuses = [guesser.get(NAMESPACES, HTTP_AUTHORIZATION=f"Bearer guess-{n}").status_code for n in range(3)]
    assert statuses == [401, 401, 429]


@override_settings(GOFER_RATELIMIT_API="", GOFER_RATELIMIT_ANONYMOUS="2/m")
def test_requests_without_a_token_to_routes_that_need_one_count_against_the_address(db):
    caller = Client(REMOTE_ADDR="192.0.2.81")
    statuses = [caller.get("/api/tokens").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


@override_settings(GOFER_RATELIMIT_API="", GOFER_RATELIMIT_ANONYMOUS="2/m")
def test_an_ipv6_client_is_counted_by_its_64_and_an_ipv4_mapped_one_by_its_own_address(anonymous):
    # One host is routinely given a whole /64: changing the interface id must not buy a new allowance.
    hops = [Client(REMOTE_ADDR=f"2001:db8:7:9::{n:x}") for n in (1, 2, 0xBEEF)]
    assert [client.get("/api/system/metadata").status_code for client in hops] == [200, 200, 429]
    assert Client(REMOTE_ADDR="2001:db8:7:a::1").get("/api/system/metadata").status_code == 200
    # IPv4 clients of a dual-stack socket are not all one /64 (::ffff:0:0/96 lies in a single one).
    mapped = [Client(REMOTE_ADDR=f"::ffff:198.51.100.{n}") for n in range(3)]
    assert [client.get("/api/system/metadata").status_code for client in mapped] == [200, 200, 200]


@override_settings(GOFER_RATELIMIT_API="", GOFER_RATELIMIT_ANONYMOUS="")
def test_an_empty_rate_is_no_limit(admin):
    assert {admin.get(NAMESPACES).status_code for _ in range(30)} == {200}


@override_settings(GOFER_RATELIMIT_ADMIN_LOGIN="3/15m")
def test_the_admin_login_locks_an_address_out_after_repeated_failures(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "right-password-123")
    attacker = Client(REMOTE_ADDR="192.0.2.50")
    wrong = {"username": "root", "password": "wrong", "next": "/admin/"}
    assert [attacker.post("/admin/login/", wrong).status_code for _ in range(3)] == [200, 200, 200]
    locked = attacker.post("/admin/login/", {**wrong, "password": "right-password-123"})
    assert locked.status_code == 429
    assert locked.json()["error_code"] == "rate_limited"
    assert "GOFER_RATELIMIT_ADMIN_LOGIN" in locked.json()["message"]
    assert 1 <= int(locked["Retry-After"]) <= 15 * 60
    # Another address still logs in.
    other = Client(REMOTE_ADDR="192.0.2.51")
    response = other.post("/admin/login/", {**wrong, "password": "right-password-123"})
    assert response.status_code == 302 and response["Location"] == "/admin/"


@override_settings(GOFER_RATELIMIT_ADMIN_LOGIN="3/15m")
def test_successful_admin_logins_do_not_count(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "right-password-123")
    for _ in range(5):
        visitor = Client(REMOTE_ADDR="192.0.2.60")
        response = visitor.post("/admin/login/", {"username": "root", "password": "right-password-123"})
        assert response.status_code == 302


def test_the_route_decorator_counts_in_a_group_of_its_own(rf, settings):
    settings.GOFER_RATELIMIT_TEST_ROUTE = "1/m"
    calls = []

    class View:
        principal = None

        @rate_limited("GOFER_RATELIMIT_TEST_ROUTE")
        def post(self, request):
            calls.append(request)
            return "ok"

    request = rf.post("/api/sandbox", REMOTE_ADDR="192.0.2.70")
    assert View().post(request) == "ok"
    from kernel.errors import RateLimited  # noqa: PLC0415 - test-local

    with pytest.raises(RateLimited) as raised:
        View().post(request)
    assert raised.value.retry_after >= 1 and len(calls) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_increments_of_the_database_cache_lose_nothing():
    db_cache = gofer_cache.DatabaseCache("gofer_cache", {})
    db_cache.set("counter", 0, 60)
    errors = []

    def bump():
        try:
            for _ in range(10):
                db_cache.incr("counter")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db_cache.get("counter") == 40


def test_a_missing_key_cannot_be_incremented():
    db_cache = gofer_cache.DatabaseCache("gofer_cache", {})
    with pytest.raises(ValueError, match="not found"):
        db_cache.incr("never-set")


@pytest.mark.slow
def test_a_limit_holds_across_two_server_processes(transactional_db, admin):
    """Two daphne processes sharing the cache (the database table, or Redis under GOFER_TEST_REDIS=1): a token's
    requests spread over both are counted once."""
    servers = [Server(GOFER_RATELIMIT_API="4/m"), Server(GOFER_RATELIMIT_API="4/m")]
    try:
        headers = {"Authorization": f"Bearer {admin.token}"}
        statuses = [
            requests.get(servers[n % 2].url + NAMESPACES, headers=headers, timeout=10).status_code for n in range(6)
        ]
        assert statuses == [200, 200, 200, 200, 429, 429]
        limited = requests.get(servers[0].url + NAMESPACES, headers=headers, timeout=10)
        assert limited.json()["error_code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    finally:
        for server in servers:
            server.stop()


def _settings_in_a_fresh_process(tmp_path, **env: str) -> list:
    """Import gofer_site.settings with only ``env`` set among the rate-limit and sandbox variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GOFER_RATELIMIT_", "GOFER_SANDBOX"))}
    clean.update(GOFER_HOME=str(tmp_path), DJANGO_SETTINGS_MODULE="gofer_site.settings", **env)
    code = (
        "import json; from gofer_site import settings as s; "
        "print(json.dumps([s.GOFER_RATELIMIT_API, s.GOFER_RATELIMIT_ANONYMOUS, s.GOFER_RATELIMIT_EXTERNAL, "
        "s.GOFER_RATELIMIT_ADMIN_LOGIN, s.RATELIMIT_FAIL_OPEN]))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_are_generous_and_strict_in_sandbox_mode(tmp_path):
    assert _settings_in_a_fresh_process(tmp_path) == ["1200/m", "300/m", "120/m", "10/15m", True]
    sandbox = _settings_in_a_fresh_process(tmp_path, GOFER_SANDBOX="true")
    assert sandbox == ["120/m", "30/m", "30/m", "5/15m", False]
    assert _settings_in_a_fresh_process(tmp_path, GOFER_SANDBOX="true", GOFER_RATELIMIT_API="7/s")[0] == "7/s"
    assert _settings_in_a_fresh_process(tmp_path, GOFER_EXTERNAL_RATE_LIMIT="3/m")[2] == "3/m"
    # Set but empty: off, in sandbox mode too.
    assert _settings_in_a_fresh_process(tmp_path, GOFER_SANDBOX="true", GOFER_RATELIMIT_API="")[0] == ""


def test_a_malformed_rate_stops_the_process_naming_the_variable(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOFER_RATELIMIT_")}
    clean.update(GOFER_HOME=str(tmp_path), GOFER_RATELIMIT_API="lots")
    code = "import gofer_site.settings"
    result = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert "GOFER_RATELIMIT_API must be count/period" in result.stderr
