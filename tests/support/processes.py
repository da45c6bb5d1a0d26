"""Real server and worker processes for tests: daphne (HTTP + websockets) and a django-q2 cluster.

They run against the test database of the current test (which must use ``transactional_db`` so that what the test
writes is committed and visible to them) and share ``$GOFER_HOME`` with the test process, so log files are shared as
they are in a real installation. The broker is the database (ORM broker) unless GOFER_TEST_REDIS_URL is set.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**overrides: str) -> dict[str, str]:
    """The environment a child process needs to see this test's database, files and engine settings."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "GOFER_TEST_HOME": str(settings.GOFER_HOME),
            "GOFER_TEST_SUBPROCESS_DB": str(connection.settings_dict["NAME"]),
            "GOFER_SCHEDULER": settings.GOFER_SCHEDULER,
            "GOFER_DOCKER_NETWORK_MODE": settings.GOFER_DOCKER_NETWORK_MODE,
            "GOFER_LEASE_SECONDS": str(settings.GOFER_LEASE_SECONDS),
            "GOFER_DRIVE_SLICE_SECONDS": str(settings.GOFER_DRIVE_SLICE_SECONDS),
            "GOFER_CONTAINER_PRUNE_AFTER": str(settings.GOFER_CONTAINER_PRUNE_AFTER),
            "GOFER_QUEUE_NAME": settings.Q_CLUSTER["name"],
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


class Process:
    def __init__(self, argv: list[str], env: dict[str, str], log_name: str) -> None:
        self.log_path = Path(settings.GOFER_HOME) / f"{log_name}-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # A new session: the process and everything it forks can be signalled as one group (a crash kills all).
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: what a crashed machine or an OOM kill looks like."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()


class Server(Process):
    """daphne serving gofer_site.asgi on a free loopback port."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "gofer_site.asgi:application"]
        super().__init__(argv, child_env(**env), "daphne")
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.output()}")
            try:
                urllib.request.urlopen(f"{self.url}/api/system/metadata", timeout=1).read()  # noqa: S310 - loopback
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer within {timeout} s:\n{self.output()}")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class Worker(Process):
    """``manage.py qcluster``: a django-q2 cluster executing Gofer's worker steps."""

    def __init__(self, workers: int = 2, **env: str) -> None:
        argv = [sys.executable, "manage.py", "qcluster"]
        super().__init__(argv, child_env(GOFER_WORKERS=str(workers), **env), "qcluster")
