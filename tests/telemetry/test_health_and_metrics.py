"""/healthz, /readyz (503 naming what is unreachable: a real Redis port nothing listens on, a real Nomad address
that refuses), /metrics (Prometheus' text, operators only), and the trigger firing counter (the notifier delivery
counter: tests/notifiers/test_outbound.py, through real deliveries)."""

from __future__ import annotations

import sys
import time

import pytest
import requests
from django.test import Client

from access import services as access
from runs.models import Run
from runs.schedulers import get_scheduler
from telemetry import health
from tests.conftest import deployed_pipeline, make_caller, need
from tests.support.fake_nomad import FakeNomad
from tests.support.images import docker_available
from tests.support.processes import Process, _log_path, child_env, free_port
from triggers import firing
from triggers import services as triggers
from triggers.models import Subscription


def test_healthz_answers_without_a_token_or_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_says_ready_when_database_queue_and_scheduler_answer(db, settings):
    settings.GOFER_SCHEDULER = "memory"
    get_scheduler.cache_clear()
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "queue": "ok", "scheduler": "ok"}}


def test_a_burst_of_probes_shares_one_round_of_checks(db, settings, monkeypatch):
    """/readyz is public: a flood of probes must not become a flood of database connections and engine pings."""
    settings.GOFER_SCHEDULER = "memory"
    get_scheduler.cache_clear()
    monkeypatch.setattr(health, "READINESS_REUSE_SECONDS", 3600, raising=False)
    original = health.checks()["database"]
    rounds = []

    def counted() -> None:
        rounds.append(1)
        original()

    health.register("database", counted)
    try:
        statuses = [Client().get("/readyz").status_code for _ in range(10)]
    finally:
        health.register("database", original)
    assert statuses == [200] * 10
    assert len(rounds) == 1


@pytest.mark.docker
def test_readyz_pings_the_docker_engine(db, settings):
    need(docker_available(), "the Docker engine is not running (see docs/development.md)")
    settings.GOFER_SCHEDULER = "docker"
    get_scheduler.cache_clear()
    try:
        response = Client().get("/readyz")
    finally:
        get_scheduler.cache_clear()
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["scheduler"] == "ok"


def test_readyz_asks_a_nomad_engine_for_its_leader(db, settings):
    with FakeNomad() as nomad:
        settings.GOFER_SCHEDULER = "nomad"
        settings.GOFER_NOMAD_ADDR = nomad.address
        get_scheduler.cache_clear()
        try:
            response = Client().get("/readyz")
        finally:
            get_scheduler.cache_clear()
        assert response.status_code == 200, response.content
        assert response.json()["checks"]["scheduler"] == "ok"
        assert nomad.requests_to("GET", "/v1/status/leader")


def test_readyz_names_an_unreachable_scheduler_engine_and_not_its_address(db, settings):
    settings.GOFER_SCHEDULER = "nomad"
    settings.GOFER_NOMAD_ADDR = f"http://127.0.0.1:{free_port()}"
    settings.GOFER_READYZ_TIMEOUT = 10
    get_scheduler.cache_clear()
    try:
        response = Client().get("/readyz")
    finally:
        get_scheduler.cache_clear()
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == "not_ready"
    assert body["checks"] == {"database": "ok", "queue": "ok", "scheduler": "unreachable"}
    assert body["errors"] == [{"field": "scheduler", "message": "unreachable"}]
    assert "scheduler" in body["message"] and "127.0.0.1" not in response.content.decode()


@pytest.mark.slow
def test_readyz_of_a_server_whose_queue_broker_is_down_names_the_queue(transactional_db):
    """A real server process configured with a Redis address nothing listens on."""
    port = free_port()
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "gofer_site.asgi:application"]
    env = child_env(GOFER_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", GOFER_SCHEDULER="memory")
    server = Process(argv, env, _log_path("daphne-no-redis"))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(f"{url}/healthz", server)
        answer = requests.get(f"{url}/readyz", timeout=30)
        assert answer.status_code == 503, answer.text
        assert answer.json()["checks"]["queue"] == "unreachable"
        assert answer.json()["checks"]["database"] == "ok"
    finally:
        server.stop()


def _wait_until_answering(url: str, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.exit_code() is None, process.output()
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer:\n{process.log_tail()}")


def test_metrics_are_for_operators_only(admin, user, anonymous):
    assert anonymous.get("/metrics").status_code == 401
    assert user.get("/metrics").status_code == 403
    response = admin.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    # An operator's role for the scraper: read on system, nothing else.
    access.create_role("scraper", "reads metrics", [{"resources": ["system"], "actions": ["read"]}])
    assert make_caller("prometheus", ["scraper"]).get("/metrics").status_code == 200


def test_metrics_serve_the_gauges_and_counters_in_prometheus_text(telemetry_memory, admin, namespaces):
    pipeline = deployed_pipeline("team-a")
    from kernel.rbac import SYSTEM_PRINCIPAL  # noqa: PLC0415 - test-local
    from runs import services as runs  # noqa: PLC0415

    runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    text = admin.get("/metrics").content.decode()
    assert 'gofer_queue_depth{namespace="team-a"} 1.0' in text
    assert 'gofer_runs{state="pending"} 1.0' in text
    # The notifier counter is counted by real deliveries: tests/notifiers/test_outbound.py.


def test_trigger_firings_are_counted_by_extension_and_outcome(telemetry_memory, namespaces, settings, monkeypatch):
    from runs import queue  # noqa: PLC0415 - test-local

    monkeypatch.setattr(queue, "_enqueue", lambda *args: None)
    _, reader = telemetry_memory
    settings.GOFER_BUILTIN_EXTENSIONS = ["interval"]
    triggers.ensure_builtin_extensions()
    pipeline = deployed_pipeline("team-a")
    triggers.create_subscription(pipeline, "interval", "hourly", {"every": "1h"})
    subscription = Subscription.objects.select_related("extension", "pipeline").get(subscription_id="hourly")
    assert firing.fire_now(subscription).run is not None
    assert Run.objects.filter(pipeline=pipeline).count() == 1
    points = [
        point
        for rm in reader.get_metrics_data().resource_metrics
        for scope in rm.scope_metrics
        for metric in scope.metrics
        if metric.name == "gofer.trigger.firings"
        for point in metric.data.data_points
    ]
    assert [(dict(p.attributes), p.value) for p in points] == [({"extension": "interval", "outcome": "started"}, 1)]
