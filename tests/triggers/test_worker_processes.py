"""Exactly once across processes, with real django-q2 clusters (tests/support/processes.py).

Both clusters tick at once (``GOFER_TRIGGER_LEASE_SECONDS=0``: no lease, every worker process runs the ticker), so
only the firings' unique keys stand between them and duplicate runs. Then a cluster is SIGKILLed, time passes with
no worker at all, and a new cluster fires the missed firing once, after the interval's jitter, not once per period.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from runs.models import Run
from tests.conftest import deployed_pipeline
from tests.support.processes import Worker
from triggers import services
from triggers.models import Firing

pytestmark = pytest.mark.slow

SCHEDULED = "GOFER_EXTENSION_INTERVAL_SCHEDULED_TIME"


@pytest.fixture
def clusters(transactional_db, settings):
    settings.GOFER_SCHEDULER = "memory"
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(workers=2, GOFER_TRIGGER_TICK_SECONDS="1", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def every_two_seconds(transactional_db, settings):
    settings.GOFER_BUILTIN_EXTENSIONS = ["interval"]
    services.ensure_builtin_extensions()
    services.record_install(
        services.check_install(
            {
                "id": "interval",
                "image": "builtin:interval",
                "settings": {"min_duration": "1s", "jitter_min": "1s", "jitter_max": "2s"},
            }
        ),
        force=True,
    )
    services.ensure_builtin_extensions()
    pipeline = deployed_pipeline("default", "ticking")
    services.create_subscription(pipeline, "interval", "every-2s", {"every": "2s"})
    return pipeline


def scheduled_times(pipeline) -> list[str]:
    times = []
    for run in Run.objects.filter(pipeline=pipeline).order_by("number"):
        times.extend(v["value"] for v in run.variables if v["key"] == SCHEDULED)
    return times


def wait_for(condition, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    detail = "\n\n".join(p.output()[-3000:] for p in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


def test_two_clusters_ticking_at_once_start_exactly_one_run_per_due_firing(clusters, every_two_seconds):
    pipeline = every_two_seconds
    first, second = clusters(GOFER_TRIGGER_LEASE_SECONDS="0"), clusters(GOFER_TRIGGER_LEASE_SECONDS="0")
    wait_for(lambda: Run.objects.filter(pipeline=pipeline).count() >= 4, 30, "four firings", [first, second])
    first.stop()
    second.stop()
    times = scheduled_times(pipeline)
    assert len(times) == len(set(times)), f"a scheduled time started two runs: {times}"
    parsed = [dt.datetime.fromisoformat(t) for t in times]
    assert all((b - a) == dt.timedelta(seconds=2) for a, b in zip(parsed, parsed[1:], strict=False)), times
    started = Firing.objects.filter(subscription__pipeline=pipeline, outcome="started").count()
    assert started == Run.objects.filter(pipeline=pipeline).count()


def test_a_firing_missed_while_no_worker_ran_fires_once_when_workers_return(clusters, every_two_seconds):
    pipeline = every_two_seconds
    # A lease shorter than the downtime: the dead cluster's lease has lapsed when the new one starts.
    env = {"GOFER_TRIGGER_MISSED_GRACE_SECONDS": "2", "GOFER_TRIGGER_LEASE_SECONDS": "6"}
    worker = clusters(**env)
    wait_for(lambda: Run.objects.filter(pipeline=pipeline).count() >= 1, 30, "a first firing", [worker])
    worker.kill()
    down = timezone.now()
    before = Run.objects.filter(pipeline=pipeline).count()
    time.sleep(8)  # four periods pass with no worker at all
    back = timezone.now()
    returned = clusters(**env)
    wait_for(lambda: Run.objects.filter(pipeline=pipeline).count() > before, 30, "the missed firing", [returned])
    first_back = Run.objects.filter(pipeline=pipeline).order_by("number")[before]
    time.sleep(1.5)
    returned.stop()
    assert first_back.created >= back
    # Once, not once per missed period: nothing else started in the same breath.
    burst = Run.objects.filter(pipeline=pipeline, created__lt=first_back.created + dt.timedelta(seconds=1.5)).count()
    assert burst == before + 1
    # It was moved by the jitter (1 to 2 s after workers noticed), not replayed at its old time.
    moved = dt.datetime.fromisoformat(scheduled_times(pipeline)[before])
    assert moved >= back + dt.timedelta(seconds=1)
    assert moved > down
