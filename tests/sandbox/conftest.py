"""Fixtures of the sandbox tests: Gofer in sandbox mode with its strict quota defaults, and visitors signing up."""

from __future__ import annotations

import pytest

from tests.conftest import ApiCaller
from tests.support.sandbox import sign_up


@pytest.fixture
def sandbox_mode(settings, db):
    """GOFER_SANDBOX=true with the quota defaults gofer_site/settings.py gives sandbox mode (the settings module was
    loaded outside it), Docker Hub the only registry, and room for the sign-ups of a test session (the counters live
    in the shared cache: they are not cleared, which would reset another test's while it runs)."""
    settings.GOFER_SANDBOX = True
    settings.GOFER_QUOTA_CONCURRENT_RUNS = 2
    settings.GOFER_QUOTA_QUEUED_RUNS = 10
    settings.GOFER_QUOTA_RUNS_PER_HOUR = 30
    settings.GOFER_QUOTA_PIPELINES = 10
    settings.GOFER_QUOTA_TASKS_PER_PIPELINE = 10
    settings.GOFER_QUOTA_TASK_TIMEOUT = 600
    settings.GOFER_QUOTA_RUN_DURATION = 1800
    settings.GOFER_QUOTA_OBJECT_BYTES = 100 * 1024 * 1024
    settings.GOFER_QUOTA_SECRETS = 20
    settings.GOFER_ALLOWED_REGISTRIES = ["docker.io"]
    settings.GOFER_RATELIMIT_SANDBOX = "1000/h"
    return settings


@pytest.fixture
def visitor(sandbox_mode) -> tuple[ApiCaller, dict]:
    return sign_up()
