"""Child processes for tests: daphne (HTTP + websockets), a django-q2 cluster, and any service binary (OpenBao, a
registry), all through ``Process``; and ``free_port``.

The server and the workers run against the test database of the current test (which must use ``transactional_db``
so that what the test writes is committed and visible to them) and share ``$GOFER_HOME`` with the test process, so
log files are shared as they are in a real installation. The broker is the database (ORM broker) unless
GOFER_TEST_REDIS_URL is set.
"""

from __future__ import annotations

import contextlib
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
    """A loopback TCP port nothing listens on now (closed again when returned: the caller's process takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
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
    """A child process in a session of its own (it and everything it forks are signalled as one group), its output
    (stdout and stderr) to ``log_path``."""

    def __init__(self, argv: list[str], env: dict[str, str] | None, log_path: Path, cwd: Path | str = REPO) -> None:
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def exit_code(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return self.proc.poll()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group: what a crashed machine or an OOM kill looks like."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM to the group, SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()


def _log_path(name: str) -> Path:
    return Path(settings.GOFER_HOME) / f"{name}-{time.time_ns()}.log"


class Server(Process):
    """daphne serving gofer_site.asgi on a free loopback port."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "gofer_site.asgi:application"]
        super().__init__(argv, child_env(**env), _log_path("daphne"))
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
        super().__init__(argv, child_env(GOFER_WORKERS=str(workers), **env), _log_path("qcluster"))
