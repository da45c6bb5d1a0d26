"""PostgreSQL connections of the server process are pooled (gofer_site/settings.py ``pooled``, switched on by
gofer_site/asgi.py), and the workers, which django-q2 forks after Django starts, run beside it on their own
connections.

Measured with PostgreSQL's own count of sessions established in the test database (``pg_stat_database.sessions``),
read after the server has exited so that every session it opened is counted. Without the pool each request opens a
session of its own (a request's synchronous code runs in a new thread under ASGI).
"""

from __future__ import annotations

import time

import pytest
import requests
from django.db import connection

from runs.models import Run
from tests.conftest import deployed_pipeline
from tests.support.processes import Server, Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REQUESTS = 30


def sessions_established() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the connection pool is for PostgreSQL (GOFER_TEST_DB=postgres): this pass runs on SQLite")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def get_runs(server: Server, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "gofer-api-version": "v0"}
    with requests.Session() as session:
        for _ in range(REQUESTS):
            response = session.get(
                f"{server.url}/api/namespaces/team-a/pipelines/build/runs?limit=50", headers=headers, timeout=30
            )
            assert response.status_code == 200, response.text


def test_the_server_reuses_pooled_connections_across_requests(on_postgres, alice):
    deployed_pipeline("team-a", "build")
    before = sessions_established()
    server = Server()
    try:
        get_runs(server, alice.token)
    finally:
        server.stop()
    # Every session the server opened has ended by now (and been counted): a few for the pool, not one per request.
    wait_for(lambda: sessions_established() > before, 30, "PostgreSQL to count the server's sessions")
    opened = sessions_established() - before
    assert 0 < opened <= 5, f"{opened} sessions for {REQUESTS} requests"


def test_without_the_pool_each_request_opens_a_session_so_the_test_above_can_fail(on_postgres, alice):
    deployed_pipeline("team-a", "build")
    before = sessions_established()
    server = Server(GOFER_DATABASE_POOL_SIZE="0")
    try:
        get_runs(server, alice.token)
    finally:
        server.stop()
    wait_for(lambda: sessions_established() >= before + REQUESTS, 30, "PostgreSQL to count the server's sessions")


def test_workers_run_a_run_beside_a_pooled_server(on_postgres, alice):
    config = {"id": "build", "name": "build", "tasks": [{"id": "t", "image": "busybox:latest", "command": ["true"]}]}
    deployed_pipeline("team-a", "build", config)
    server = Server()
    worker = Worker(workers=2, GOFER_SCHEDULER="memory")
    try:
        headers = {"Authorization": f"Bearer {alice.token}", "gofer-api-version": "v0"}
        response = requests.post(
            f"{server.url}/api/namespaces/team-a/pipelines/build/runs",
            json={"variables": {}},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        number = response.json()["run"]["run_id"]
        wait_for(lambda: Run.objects.get(pipeline__slug="build", number=number).state == "complete", 60, "the run")
        assert Run.objects.get(pipeline__slug="build", number=number).status == "successful"
        get_runs(server, alice.token)  # the pool still serves after the cluster forked its workers
    finally:
        worker.stop()
        server.stop()
