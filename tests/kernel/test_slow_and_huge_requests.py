"""Slow and huge requests are cut off by the server (kernel/api/daphne_streaming.py), tried with real sockets against a
real daphne: headers and bodies that trickle in, bodies larger than their route takes, bodies without a valid token,
and more connections from one address than it may hold. Websocket streams and ordinary requests are untouched."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest
import requests
from websockets.sync.client import connect

from tests.support.processes import Server

pytestmark = [pytest.mark.slow]

MB = 1024 * 1024
OBJECT = "/api/namespaces/team-a/pipelines/build/objects/blob"


def open_socket(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, *, length: int | None = None, token: str | None = None, extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict, bytes]:
    """The status, headers and body of one response; raises TimeoutError when none arrives in time."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without a response: {data!r}")
        data += chunk
    header_block, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes the connection within ``timeout`` (anything it sends first is read and dropped)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


@pytest.fixture
def strict(transactional_db, team_a_pipeline):
    process = Server(
        GOFER_HTTP_HEADER_TIMEOUT="2",
        GOFER_HTTP_BODY_TIMEOUT="2",
        GOFER_HTTP_BODY_MIN_RATE="10000",
        GOFER_OBJECT_MAX_BYTES=str(600 * MB),
    )
    yield process
    process.stop()


def test_connections_that_send_their_headers_slowly_are_all_cut_off(strict):
    sockets = [open_socket(strict) for _ in range(30)]
    for sock in sockets:
        sock.sendall(b"GET /api/system/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    # A slowloris client: one more header line every half second, forever.
    while time.monotonic() - started < 4:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.sendall(b"X-Slow: a\r\n")
        time.sleep(0.5)
    assert all(closed_by_server(sock, 2) for sock in sockets)
    for sock in sockets:
        sock.close()


def test_a_body_that_trickles_in_is_cut_off(strict, admin):
    sock = open_socket(strict)
    sock.sendall(
        head("POST", "/api/namespaces", length=100_000, token=admin.token, extra="Content-Type: application/json")
    )
    started = time.monotonic()
    while time.monotonic() - started < 5:
        try:
            sock.sendall(b"          ")  # 20 bytes a second, far below the minimum rate
        except OSError:
            break
        time.sleep(0.5)
    assert closed_by_server(sock, 3)
    sock.close()


@pytest.mark.parametrize("token", [None, "not-a-real-token"])
def test_a_huge_body_without_a_valid_token_is_refused_before_it_is_read(strict, token):
    sock = open_socket(strict)
    sock.sendall(head("POST", OBJECT, length=500 * MB, token=token, extra="Content-Type: application/octet-stream"))
    sock.sendall(b"x" * 65536)  # the start of the body; the rest is never sent
    status, headers, body = read_response(sock, timeout=5)
    sock.close()
    assert status == 401
    error = json.loads(body)
    assert error["error_code"] == "unauthenticated"
    assert error["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"


def test_a_body_larger_than_its_route_takes_is_413_before_it_is_read(strict, admin):
    sock = open_socket(strict)
    sock.sendall(
        head("POST", "/api/namespaces", length=100 * MB, token=admin.token, extra="Content-Type: application/json")
    )
    status, _, body = read_response(sock, timeout=5)
    sock.close()
    assert status == 413
    assert json.loads(body)["error_code"] == "body_too_large"
    sock = open_socket(strict)
    sock.sendall(head("POST", OBJECT, length=700 * MB, token=admin.token))
    status, _, body = read_response(sock, timeout=5)
    sock.close()
    assert status == 413
    assert "GOFER_OBJECT_MAX_BYTES" in json.loads(body)["message"]


def test_a_chunked_body_past_its_routes_limit_is_413(strict, admin):
    sock = open_socket(strict)
    sock.sendall(
        head(
            "POST",
            "/api/namespaces",
            token=admin.token,
            extra="Transfer-Encoding: chunked\r\nContent-Type: application/json",
        )
    )
    chunk = b"x" * 65536
    try:
        for _ in range(200):  # 12.5 MiB, past the 8 MiB of GOFER_MAX_REQUEST_BYTES
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    except OSError:
        pass
    status, _, _ = read_response(sock, timeout=5)
    sock.close()
    assert status == 413


def test_uploads_with_a_valid_token_and_ordinary_requests_work_as_before(strict, admin):
    auth = {"Authorization": f"Bearer {admin.token}", "Content-Type": "application/octet-stream"}
    data = b"0123456789abcdef" * (MB // 8)  # 2 MiB
    response = requests.post(f"{strict.url}{OBJECT}", data=data, headers=auth, timeout=30)
    assert response.status_code == 201, response.text
    chunked = requests.post(f"{strict.url}{OBJECT}-2", data=iter([data[:MB], data[MB:]]), headers=auth, timeout=30)
    assert chunked.status_code == 201, chunked.text
    got = requests.get(f"{strict.url}{OBJECT}-2", headers=auth, timeout=30)
    assert got.content == data
    created = requests.post(
        f"{strict.url}/api/namespaces",
        json={"id": "team-c", "name": "C", "description": ""},
        headers={"Authorization": f"Bearer {admin.token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text


def test_a_missing_token_is_still_401_for_small_bodies_and_public_routes_still_work(strict):
    response = requests.post(f"{strict.url}/api/namespaces", json={"id": "x", "name": "x"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "unauthenticated"
    assert requests.get(f"{strict.url}/api/system/metadata", timeout=10).status_code == 200


def test_websocket_streams_outlive_the_header_timeout(strict, admin):
    url = f"{strict.ws_url}/api/events"
    with connect(url, additional_headers={"Authorization": f"Bearer {admin.token}"}, open_timeout=10) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=4)  # idle, twice the header timeout
        ws.ping().wait(5)


def test_connections_from_one_address_are_capped(transactional_db):
    server = Server(GOFER_MAX_CONNECTIONS_PER_CLIENT="5", GOFER_HTTP_HEADER_TIMEOUT="30")
    try:
        held = [open_socket(server) for _ in range(5)]
        time.sleep(0.3)
        extra = open_socket(server)
        status, _, body = read_response(extra, timeout=5)
        extra.close()
        assert status == 429
        assert "GOFER_MAX_CONNECTIONS_PER_CLIENT" in json.loads(body)["message"]
        held.pop().close()
        time.sleep(0.5)
        again = open_socket(server)
        again.sendall(head("GET", "/api/system/metadata", extra="Connection: close"))
        status, _, _ = read_response(again, timeout=5)
        again.close()
        assert status == 200
        for sock in held:
            sock.close()
    finally:
        server.stop()
