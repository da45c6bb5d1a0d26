"""Fixtures for the triggers tests: the built-in extensions, pipelines to subscribe, and helpers to fire them.

Runs started by triggers are only recorded and queued (``runs.services.start_run``); the tests read the Run rows.
The queue's doorbell is replaced by a list (``queued``), so no broker is needed in the test process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from runs import queue
from runs.models import Run
from runs.schedulers import get_scheduler
from tests.conftest import deployed_pipeline
from tests.support.processes import Server
from triggers import firing, services, supervisor
from triggers.models import Extension, Subscription

SUBSCRIPTIONS = "/api/namespaces/team-a/pipelines/build/subscriptions"


@pytest.fixture(autouse=True)
def queued(monkeypatch):
    """Messages the engine would send to workers (the tests look at runs, not at their execution)."""
    sent: list[tuple] = []
    monkeypatch.setattr(queue, "_enqueue", lambda func, *args: sent.append((func, args)))
    return sent


@pytest.fixture
def builtins(db, settings):
    """The built-ins installed by configuration, interval allowing 1 s (and missed firings jittered by 1-2 s);
    github with a webhook secret."""
    settings.GOFER_BUILTIN_EXTENSIONS = ["interval", "cron", "webhook", "github"]
    services.ensure_builtin_extensions()
    for builtin_id, config in {
        "interval": {"min_duration": "1s", "jitter_min": "1s", "jitter_max": "2s"},
        "github": {"app_webhook_secret": GITHUB_SECRET},
    }.items():
        services.record_install(
            services.check_install({"id": builtin_id, "image": f"builtin:{builtin_id}", "settings": config}),
            force=True,
        )
    return services


GITHUB_SECRET = "it's-a-secret-to-everybody"


@pytest.fixture
def pipeline(namespaces):
    return deployed_pipeline("team-a")


def runs_of(pipeline) -> list[Run]:
    return list(Run.objects.filter(pipeline=pipeline).order_by("number"))


def subscription(pipeline, extension_id: str, subscription_id: str) -> Subscription:
    return Subscription.objects.select_related("extension", "pipeline").get(
        pipeline=pipeline, extension_id=extension_id, subscription_id=subscription_id
    )


def tick_after(seconds: float) -> dt.datetime | None:
    """Run the ticker as if ``seconds`` had passed."""
    return firing.tick(timezone.now() + dt.timedelta(seconds=seconds))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- the third-party tester extension (tests/support/extension_server.py), shared by its tests and the suite ----

EXTENSION_SERVER = str(Path(__file__).resolve().parents[1] / "support" / "extension_server.py")


def install_body(**settings: str) -> dict:
    return {
        "id": "tester",
        "image": "example.com/gofer-tester:1",
        "settings": {"greeting": "hi", **settings},
        "command": [sys.executable, EXTENSION_SERVER],
    }


@pytest.fixture
def live(transactional_db, settings):
    settings.GOFER_SCHEDULER = "memory"
    settings.GOFER_EXTENSION_SCHEDULER = "local"
    settings.GOFER_EXTENSION_START_TIMEOUT = 15
    get_scheduler.cache_clear()
    server = Server(GOFER_EXTENSION_SCHEDULER="local")
    settings.GOFER_EXTENSION_GOFER_URL = server.url
    yield server
    for extension in Extension.objects.all():
        if not extension.builtin:
            supervisor.uninstall(extension)
    server.stop()
