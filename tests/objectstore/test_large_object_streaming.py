"""Gofer checklist 47: a 1 GiB object goes up and comes back through a real daphne process in bounded memory.

The server is ``daphne gofer_site.asgi:application``, as ``make run`` starts it, in its own process, with
DJANGO_SETTINGS_MODULE=tests.settings, this session's GOFER_TEST_HOME and this test's database (committed data:
``transactional_db``; tests/support/processes.py). The body is generated on the fly and hashed while it is sent and while it is read back, so the
test process holds one mebibyte at a time too. The server's peak resident memory (VmHWM) must stay far below the
object's size; without kernel/api/daphne_streaming.py, daphne alone holds the whole upload in memory.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from access import services as access
from tests.conftest import deployed_pipeline, need
from tests.support.objects import blob_files
from tests.support.processes import Server

SIZE = 1024**3
CHUNK = 1024 * 1024
PEAK_RSS_LIMIT = 256 * 1024**2
OBJECT = "/api/namespaces/team-a/pipelines/build/objects/one-gibibyte.bin"


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


def mib(value: int) -> str:
    return f"{value / 1024**2:.0f} MiB"


@dataclass
class Client:
    """HTTP calls to the server with the test's token, over http.client so that bodies can be streamed."""

    server: Server
    token: str

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "gofer-api-version": "v0"}

    def log_tail(self) -> str:
        return self.server.output()[-4000:]


@pytest.fixture
def daphne_server(transactional_db, namespaces, object_dir, tmp_path):
    """daphne (tests/support/processes.py) on this test's database and object directory, stopped at teardown."""
    deployed_pipeline("team-a")
    token, _ = access.create_token("streamer", ["admin"])
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    object_dir.mkdir(parents=True, exist_ok=True)
    need(
        shutil.disk_usage(temp_dir).free > 4 * SIZE,
        "4 GiB of free disk for the 1 GiB streaming test (Twisted's and Django's body spools, and the object)",
    )
    # TMPDIR: Twisted and Django spool request bodies to temporary files; keep them where this test cleans up.
    server = Server(GOFER_OBJECT_DIR=str(object_dir), TMPDIR=str(temp_dir), GOFER_LOG_LEVEL="WARNING")
    try:
        yield Client(server, token)
    finally:
        server.stop()


def generated_body():
    """SIZE bytes, CHUNK at a time: random, and each chunk numbered, so a lost or repeated chunk changes the hash."""
    block = os.urandom(CHUNK)
    for index in range(SIZE // CHUNK):
        yield index.to_bytes(8, "big") + block[8:]


@pytest.mark.slow
def test_a_one_gibibyte_object_streams_up_and_back_through_daphne_in_bounded_memory(daphne_server, object_dir):
    server = daphne_server
    pid = server.server.proc.pid
    baseline = memory_of(pid)

    started = time.monotonic()
    sent = hashlib.sha256()
    conn = server.connection()
    conn.putrequest("POST", OBJECT)
    for name, value in {**server.headers(), "Content-Type": "application/octet-stream"}.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", str(SIZE))
    conn.endheaders()
    for chunk in generated_body():
        sent.update(chunk)
        conn.send(chunk)
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    uploaded = time.monotonic()
    after_upload = memory_of(pid)
    assert response.status == 201, (answer, server.log_tail())

    received = hashlib.sha256()
    size = 0
    conn = server.connection()
    conn.request("GET", OBJECT, headers=server.headers())
    response = conn.getresponse()
    assert response.status == 200, server.log_tail()
    assert response.getheader("Content-Length") == str(SIZE)
    while chunk := response.read(CHUNK):
        received.update(chunk)
        size += len(chunk)
    conn.close()
    downloaded = time.monotonic()
    after_download = memory_of(pid)

    report = (
        f"server RSS at start {mib(baseline['VmRSS'])}; peak after upload {mib(after_upload['VmHWM'])}; "
        f"peak after download {mib(after_download['VmHWM'])}; upload {uploaded - started:.1f}s, "
        f"download {downloaded - uploaded:.1f}s"
    )
    print(report)
    assert size == SIZE
    assert received.hexdigest() == sent.hexdigest()
    assert [path.stat().st_size for path in blob_files()] == [SIZE]
    assert after_download["VmHWM"] < PEAK_RSS_LIMIT, report

    conn = server.connection()
    conn.request("DELETE", OBJECT, headers=server.headers())
    assert conn.getresponse().status == 204
    conn.close()
    assert blob_files() == []


@pytest.mark.slow
def test_a_chunked_upload_without_content_length_is_stored_whole_through_daphne(daphne_server):
    """Clients that stream without knowing the size send chunked bodies; under ASGI nothing needs the length."""
    server = daphne_server
    payload = os.urandom(3 * CHUNK + 12345)
    conn = server.connection()
    conn.putrequest("POST", OBJECT.replace("one-gibibyte.bin", "chunked.bin"))
    for name, value in {**server.headers(), "Content-Type": "application/octet-stream"}.items():
        conn.putheader(name, value)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for start in range(0, len(payload), 100_000):
        piece = payload[start : start + 100_000]
        conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    assert response.status == 201, (response.read(), server.log_tail())
    conn.close()

    conn = server.connection()
    conn.request("GET", OBJECT.replace("one-gibibyte.bin", "chunked.bin"), headers=server.headers())
    assert conn.getresponse().read() == payload
