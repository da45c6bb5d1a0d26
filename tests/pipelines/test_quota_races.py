"""Quotas hold under concurrency: requests racing at a limit cannot overshoot it (the namespace row lock,
pipelines/quotas.py). Real threads on PostgreSQL, each with its own connection; SQLite serialises write
transactions anyway, so these run where the lock matters (GOFER_TEST_DB=postgres, as under CI=true)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from kernel.errors import QuotaExceeded
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines import quotas
from pipelines import services as pipelines
from pipelines.models import Namespace, Pipeline
from runs import services as runs
from runs.models import Run
from secretstore import services as secrets
from secretstore.models import PipelineSecret
from tests.conftest import deployed_pipeline, simple_config

pytestmark = pytest.mark.postgres

THREADS = 8


def race(action: Callable[[int], object]) -> list[str]:
    """Run ``action(i)`` in THREADS threads released at once; 'ok' or 'refused' for each."""
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        try:
            barrier.wait()
            action(index)
            outcome = "ok"
        except QuotaExceeded:
            outcome = "refused"
        except Exception as exc:  # reported, so that a deadlock or another error fails the test by name
            outcome = f"error: {exc!r}"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return sorted(outcomes)


@pytest.fixture
def on_postgres(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("the quota race tests need PostgreSQL (GOFER_TEST_DB=postgres): this pass runs on SQLite")
    pipelines.create_namespace("team-a", "Team A", "")


def test_runs_started_at_once_at_the_hourly_limit_cannot_overshoot_it(on_postgres):
    pipeline = deployed_pipeline("team-a")
    quotas.update_quotas(Namespace.objects.get(pk="team-a"), {"runs_per_hour": 3})
    runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})

    outcomes = race(lambda i: runs.start_run(SYSTEM_PRINCIPAL, pipeline, {}))

    assert outcomes == ["ok"] * 2 + ["refused"] * (THREADS - 2)
    assert Run.objects.filter(namespace_id="team-a").count() == 3


def test_pipelines_registered_at_once_at_the_limit_cannot_overshoot_it(on_postgres):
    quotas.update_quotas(Namespace.objects.get(pk="team-a"), {"pipelines": 1})
    namespace = Namespace.objects.get(pk="team-a")

    outcomes = race(lambda i: pipelines.register_config(namespace, f"pipe{i}", simple_config(f"pipe{i}")))

    assert outcomes == ["ok"] + ["refused"] * (THREADS - 1)
    assert Pipeline.objects.filter(namespace_id="team-a").count() == 1


def test_secrets_created_at_once_at_the_limit_cannot_overshoot_it(on_postgres):
    pipeline = deployed_pipeline("team-a")
    quotas.update_quotas(Namespace.objects.get(pk="team-a"), {"secrets": 2})

    outcomes = race(lambda i: secrets.put_pipeline_secret(pipeline, f"key{i}", f"value-{i}"))

    assert outcomes == ["ok"] * 2 + ["refused"] * (THREADS - 2)
    assert PipelineSecret.objects.filter(namespace_id="team-a").count() == 2
