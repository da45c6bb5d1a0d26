"""A crash between recording a notice and delivering it delivers it once, with real django-q2 clusters
(tests/support/processes.py).

The notice is recorded and its queue message lost (the test's queue drops it: a crash right after the commit);
a cluster's sweep hands it to a worker, which is SIGKILLed in the middle of its request. Two fresh clusters, both
sweeping (``GOFER_TRIGGER_LEASE_SECONDS=0``: every worker process runs the ticker), find the lapsed claim; one of
them delivers it, the other never sends it.
"""

from __future__ import annotations

import threading
import time

import pytest

from notifiers.models import Delivery, Notice
from tests.notifiers.conftest import finished_run, install, subscribe
from tests.support.processes import Worker

pytestmark = pytest.mark.slow

CLAIM_SECONDS = 6
WORKER_ENV = {
    "GOFER_TRIGGER_TICK_SECONDS": "1",
    "GOFER_TRIGGER_LEASE_SECONDS": "0",
    "GOFER_NOTIFIER_SWEEP_SECONDS": "1",
    "GOFER_NOTIFIER_CLAIM_SECONDS": str(CLAIM_SECONDS),
    "GOFER_NOTIFIER_TIMEOUT_SECONDS": str(CLAIM_SECONDS - 1),
    "GOFER_BUILTIN_EXTENSIONS": "",
}


def wait_for(condition, timeout: float, what: str, processes=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    detail = "\n\n".join(p.output()[-3000:] for p in processes)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")


@pytest.fixture
def clusters(transactional_db, settings):
    settings.GOFER_SCHEDULER = "memory"
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(workers=2, **WORKER_ENV)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_a_worker_killed_mid_delivery_leaves_the_notice_to_be_delivered_once(clusters, receiver, queued, namespaces):
    from tests.conftest import deployed_pipeline

    install("notify-webhook", allowed_hosts="127.0.0.1")
    pipeline = deployed_pipeline("team-a")
    subscribe(pipeline, "notify-webhook", "hook", when="run_failed", url=f"{receiver.url}/in")
    release = threading.Event()
    receiver.hold = release
    finished_run(pipeline, "failed")
    notice = Notice.objects.get()
    assert queued and receiver.received == []  # recorded; its message never reached a broker

    first = clusters()
    wait_for(lambda: len(receiver.received) == 1, 60, "the first worker's request", [first])
    first.kill()  # SIGKILL mid-request: the notice stays claimed by a dead worker
    release.set()
    assert Notice.objects.get(pk=notice.pk).state == "delivering"
    assert not Delivery.objects.exists()

    second, third = clusters(), clusters()
    wait_for(lambda: Notice.objects.get(pk=notice.pk).state == "delivered", 90, "the redelivery", [second, third])
    # A later notice, delivered through the same sweeps, shows they kept running after the redelivery.
    finished_run(pipeline, "failed")
    wait_for(lambda: Notice.objects.filter(state="delivered").count() == 2, 90, "the next notice", [second, third])

    paths = [(r.path, r.json()["run_id"]) for r in receiver.received]
    assert paths == [("/in", 1), ("/in", 1), ("/in", 2)]  # the killed request, its one redelivery, the next one
    [attempt] = Delivery.objects.filter(notice=notice)
    assert attempt.outcome == "succeeded" and attempt.attempt == 1
