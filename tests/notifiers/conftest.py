"""Fixtures for the notifier tests: the notifier kinds installed with loopback allowed (the receivers listen on
127.0.0.1), real receivers, and run histories recorded straight into the database.

The queue's doorbell is a list (``queued``): the tests deliver notices by calling the worker entry point
themselves, so each attempt happens when the test says (the end-to-end test uses the engine's inline queue).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase
from django.utils import timezone

from notifiers import services as notifiers
from notifiers.models import Notice
from pipelines.choices import ConfigState
from pipelines.models import PipelineConfig
from runs import queue
from runs.models import Run, TaskExecution
from tests.conftest import deployed_pipeline
from tests.notifiers.receivers import Receiver
from triggers import services as triggers
from triggers.models import Subscription

SUBSCRIPTIONS = "/api/namespaces/team-a/pipelines/build/subscriptions"
DELIVER = "notifiers.tasks.deliver_notice"


@pytest.fixture(autouse=True)
def queued(monkeypatch):
    sent: list[tuple] = []
    monkeypatch.setattr(queue, "_enqueue", lambda func, *args: sent.append((func, args)))
    return sent


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.GOFER_NOTIFIER_RETRY_BASE_SECONDS = 1
    settings.GOFER_NOTIFIER_MAX_ATTEMPTS = 3
    settings.GOFER_NOTIFIER_ERROR_AFTER = 2
    settings.GOFER_NOTIFIER_TIMEOUT_SECONDS = 5


def install(kind_id: str, **config: str):
    """(Re)install a notifier kind with these install settings (as ``POST /api/extensions?force=true`` does)."""
    request = triggers.check_install({"id": kind_id, "image": f"builtin:{kind_id}", "settings": config})
    return triggers.record_install(request, force=True)[0]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def pipeline(namespaces):
    return deployed_pipeline("team-a")


@pytest.fixture
def webhook_kind(db):
    return install("notify-webhook", allowed_hosts="127.0.0.1")


def subscribe(pipeline, extension_id: str, subscription_id: str, **settings: str) -> Subscription:
    triggers.create_subscription(pipeline, extension_id, subscription_id, settings)
    return Subscription.objects.select_related("extension", "pipeline").get(
        pipeline=pipeline, extension_id=extension_id, subscription_id=subscription_id
    )


# Recorded runs end a minute apart, after every subscription a test makes (a run that ended before its
# subscription existed is not notified).
_clock = {"now": timezone.now() + dt.timedelta(minutes=5)}


def finished_run(pipeline, status: str, *, tasks: dict[str, str] | None = None) -> Run:
    """A completed run recorded as the engine records one (later than every run before it), with task executions
    of the given statuses, and the rules evaluated as the ``run_finished`` signal does."""
    _clock["now"] += dt.timedelta(minutes=1)
    config = PipelineConfig.objects.get(pipeline=pipeline, state=ConfigState.LIVE)
    number = (
        Run.objects.filter(pipeline=pipeline).order_by("-number").values_list("number", flat=True).first() or 0
    ) + 1
    run = Run.objects.create(
        namespace_id=pipeline.namespace_id,
        pipeline=pipeline,
        number=number,
        config=config,
        config_version=config.version,
        state="complete",
        status=status,
        started=_clock["now"] - dt.timedelta(seconds=30),
        ended=_clock["now"],
    )
    for slug, task_status in (tasks or {}).items():
        te = TaskExecution.objects.create(
            namespace_id=pipeline.namespace_id,
            pipeline=pipeline,
            run=run,
            task_slug=slug,
            state="complete",
            status=task_status,
            started=run.started,
            ended=run.ended,
        )
        with committed():
            notifiers.evaluate_task_execution(te.pk)
    with committed():
        notifiers.evaluate_run(run.pk)
    return run


def committed():
    """Run what waits for the commit (the delivery's queue message) at the end of the block, as a real commit
    would, inside the test's transaction."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def history(pipeline, *statuses: str) -> list[Run]:
    return [finished_run(pipeline, status) for status in statuses]


def notices(subscription) -> list[tuple[int, str]]:
    """(run number, kind) of the subscription's notices, oldest first."""
    return [(n.run.number, n.kind) for n in Notice.objects.filter(subscription=subscription).order_by("id")]


def deliver_all(queued: list[tuple]) -> list:
    """Run every queued delivery message (as a worker would), once."""
    attempts = []
    while queued:
        func, args = queued.pop(0)
        if func == DELIVER:
            attempts.append(notifiers.deliver(*args))
    return attempts
