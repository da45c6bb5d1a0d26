"""HTTPS in development: ``manage.py dev_certificate`` makes a local CA and a server certificate, and ``manage.py
serve`` (what ``make run`` starts) serves HTTPS and ``wss://`` with them when GOFER_TLS_CERT and GOFER_TLS_KEY are
set."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from websockets.sync.client import connect

from tests.support.processes import REPO, Process, child_env, free_port

pytestmark = [pytest.mark.slow]


def make_certificate(directory: Path) -> dict[str, Path]:
    result = subprocess.run(
        [sys.executable, "manage.py", "dev_certificate", "--dir", str(directory)],
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "GOFER_TLS_CERT=" in result.stdout and "GOFER_TLS_KEY=" in result.stdout
    return {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}


def test_the_dev_certificate_names_localhost_and_its_key_is_private(tmp_path):
    files = make_certificate(tmp_path / "tls")
    cert = x509.load_pem_x509_certificate(files["cert"].read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert stat.S_IMODE(files["key"].stat().st_mode) == 0o600
    # Verifies against its CA, as a client given the CA file would.
    context = ssl.create_default_context(cafile=str(files["ca"]))
    assert context.get_ca_certs()


def test_serve_speaks_https_and_wss_with_the_certificate(transactional_db, admin, tmp_path):
    files = make_certificate(tmp_path / "tls")
    port = free_port()
    env = child_env(GOFER_BIND=f"127.0.0.1:{port}", GOFER_TLS_CERT=str(files["cert"]), GOFER_TLS_KEY=str(files["key"]))
    server = Process([sys.executable, "manage.py", "serve"], env, tmp_path / "serve.log")
    context = ssl.create_default_context(cafile=str(files["ca"]))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(  # noqa: S310 - loopback
                    f"https://localhost:{port}/api/system/metadata", context=context, timeout=2
                ) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline or server.proc.poll() is not None:
                    raise AssertionError(f"no HTTPS answer:\n{server.output()}") from None
                time.sleep(0.2)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/system/metadata", timeout=2).read()  # noqa: S310
        url = f"wss://localhost:{port}/api/events"
        bearer = {"Authorization": f"Bearer {admin.token}"}
        with connect(url, ssl=context, additional_headers=bearer) as ws, pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # accepted and authenticated: nothing to say yet
        with connect(url, ssl=context) as ws:
            assert json.loads(ws.recv(timeout=10))["error_code"] == "unauthenticated"
    finally:
        server.stop()


def test_serve_refuses_half_a_tls_configuration(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "serve"],
        env=child_env(GOFER_TLS_CERT=str(tmp_path / "cert.pem")),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "GOFER_TLS_KEY" in result.stderr
