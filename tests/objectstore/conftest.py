"""Fixtures of the object store tests: a fresh GOFER_OBJECT_DIR per test, pipelines and runs to hang objects on."""

from __future__ import annotations

from pathlib import Path

import pytest

from runs.models import Run
from tests.conftest import deployed_pipeline
from tests.support.objects import start_run


@pytest.fixture(autouse=True)
def object_dir(settings, tmp_path) -> Path:
    """Every test stores its blobs in its own directory, inside a parent that nothing else writes to."""
    settings.GOFER_OBJECT_DIR = tmp_path / "store" / "objects"
    return settings.GOFER_OBJECT_DIR


@pytest.fixture
def pipeline(namespaces):
    """The deployed pipeline team-a/build."""
    return deployed_pipeline("team-a")


@pytest.fixture
def run(pipeline) -> Run:
    """Run 1 of team-a/build, complete."""
    return start_run(pipeline)
