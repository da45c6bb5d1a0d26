"""The gofer CLI against a live server: one daphne and one django-q2 cluster for the whole tests/cli package.

The server and the worker use the local scheduler (tasks are host processes), so real runs need no Docker. Each
test gets a fresh database (``transactional_db`` flushes it afterwards) and an admin token made in the test process;
the CLI runs as a real subprocess (``python -m gofer_cli``) with ``HOME`` in a temporary directory, so no config
file of the machine is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import deployed_pipeline
from tests.support.processes import Server, Worker

CLI_TIMEOUT = 90


@pytest.fixture(scope="package")
def gofer_server(django_db_setup, django_db_blocker):
    """A daphne server and a worker cluster on the test database, for every test of tests/cli."""
    server = Server(GOFER_SCHEDULER="local")
    # Tasks reach the API at GOFER_API_BASE_URL: this server, so a task can run the CLI itself.
    worker = Worker(workers=2, GOFER_SCHEDULER="local", GOFER_DRIVE_SLICE_SECONDS="2", GOFER_API_BASE_URL=server.url)
    yield server
    worker.stop()
    server.stop()


@dataclass
class Result:
    """A finished CLI invocation."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(
                f"stdout of gofer {' '.join(self.args)} is not one JSON document: {exc}\n{self}"
            ) from None

    @property
    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Gofer:
    """Runs ``gofer`` as a subprocess: ``gofer("run", "list", "build", "-o", "json")``."""

    url: str
    home: Path
    token: str | None
    env: dict[str, str] = field(default_factory=dict)

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOFER_") and k not in ("NO_COLOR", "COLUMNS")}
        env.update({"HOME": str(self.home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
        env["GOFER_API_BASE_URL"] = self.url
        if self.token:
            env["GOFER_TOKEN"] = self.token
        env.update(self.env)
        return env

    def __call__(
        self, *args: str, env: dict[str, str | None] | None = None, input: str | None = None, expect: int | None = 0
    ) -> Result:
        full_env = self.base_env()
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        done = subprocess.run(
            [sys.executable, "-m", "gofer_cli", *args],
            env=full_env,
            cwd=self.home,
            input=input,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        if expect is not None:
            assert result.code == expect, f"gofer {' '.join(args)}: expected exit {expect}\n{result}"
        return result

    def json(self, *args: str, **kwargs: Any) -> Any:
        return self(*args, "--output", "json", **kwargs).json


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def gofer(gofer_server, transactional_db, admin, home) -> Gofer:
    """The CLI as an admin, against the package's live server."""
    return Gofer(gofer_server.url, home, admin.token)


@pytest.fixture
def anonymous_gofer(gofer_server, transactional_db, home) -> Gofer:
    return Gofer(gofer_server.url, home, None)


COUNT_SCRIPT = "for i in $(seq 1 {n}); do echo {prefix}-$i; sleep {pause}; done; exit {code}"


def counting_pipeline(pipeline_id: str = "count", n: int = 4, pause: float = 0.2, fail: bool = False):
    """A deployed pipeline of two tasks the local scheduler runs: ``count`` prints n lines, then ``after`` runs.
    With ``fail``, ``count`` exits 3 and ``after`` is skipped."""
    return deployed_pipeline(
        "default",
        pipeline_id,
        {
            "id": pipeline_id,
            "name": "Count",
            "tasks": [
                {
                    "id": "count",
                    "image": "busybox",
                    "command": [
                        "sh",
                        "-c",
                        COUNT_SCRIPT.format(n=n, pause=pause, prefix="line", code=3 if fail else 0),
                    ],
                },
                {
                    "id": "side",
                    "image": "busybox",
                    "command": ["sh", "-c", COUNT_SCRIPT.format(n=2, pause=pause, prefix="side", code=0)],
                },
                {"id": "after", "image": "busybox", "command": ["echo", "after"], "depends_on": {"count": "Success"}},
            ],
        },
    )


def wait_until(condition, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
