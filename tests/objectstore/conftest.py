"""Fixtures of the object store tests: a fresh GOFER_OBJECT_DIR per test, pipelines and runs to hang objects on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.choices import RunState, RunStatus
from runs.models import Run
from tests.conftest import deployed_pipeline

PIPELINE = "/api/namespaces/team-a/pipelines/build"


@pytest.fixture(autouse=True)
def object_dir(settings, tmp_path) -> Path:
    """Every test stores its blobs in its own directory, inside a parent that nothing else writes to."""
    settings.GOFER_OBJECT_DIR = tmp_path / "store" / "objects"
    return settings.GOFER_OBJECT_DIR


@pytest.fixture
def pipeline(namespaces):
    """The deployed pipeline team-a/build."""
    return deployed_pipeline("team-a")


def start_run(pipeline, *, complete: bool = True) -> Run:
    """A run of ``pipeline``, complete unless asked otherwise (the run engine is not part of these tests)."""
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    if complete:
        Run.objects.filter(pk=run.pk).update(state=RunState.COMPLETE, status=RunStatus.SUCCESSFUL)
        run.refresh_from_db()
    return run


@pytest.fixture
def run(pipeline) -> Run:
    """Run 1 of team-a/build, complete."""
    return start_run(pipeline)
