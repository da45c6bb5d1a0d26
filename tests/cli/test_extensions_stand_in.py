"""Extension and subscription commands against a stand-in that answers with the shapes of Gofer v0's OpenAPI
document, byte for byte. The same commands run against the live server in test_extensions_live.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REGISTRATION = {
    "extension_id": "cron",
    "image": "ghcr.io/clintjedwards/gofer/extensions/cron:latest",
    "settings": [{"key": "TIMEZONE", "value": "UTC", "source": "pipeline_config"}],
    "status": "enabled",
    "additional_roles": [],
    "created": 1796230000000,
    "modified": 1796230000000,
    "registry_auth": None,
}
EXTENSION = {
    "registration": REGISTRATION,
    "url": "http://127.0.0.1:8082",
    "started": 1796230000000,
    "state": "running",
    "documentation": {"body": "Runs pipelines on a schedule.", "config_params": [], "pipeline_subscription_params": []},
}
SUBSCRIPTION = {
    "namespace_id": "default",
    "pipeline_id": "build",
    "extension_id": "cron",
    "subscription_id": "nightly",
    "settings": {"expression": "0 3 * * *"},
    "status": "active",
    "status_reason": None,
}
SUBSCRIPTIONS = "/api/namespaces/default/pipelines/build/subscriptions"


class StandIn(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, object]] = []
    routes = {
        ("GET", "/api/extensions"): (200, {"extensions": [EXTENSION]}),
        ("POST", "/api/extensions"): (201, {"extension": EXTENSION}),
        ("GET", "/api/extensions/cron"): (200, {"extension": EXTENSION}),
        ("PATCH", "/api/extensions/cron"): (204, None),
        ("DELETE", "/api/extensions/cron"): (204, None),
        ("GET", "/api/extensions/cron/debug"): (200, {"info": "all good"}),
        ("GET", SUBSCRIPTIONS): (200, {"subscriptions": [SUBSCRIPTION]}),
        ("POST", SUBSCRIPTIONS): (201, {"subscription": SUBSCRIPTION}),
        ("GET", f"{SUBSCRIPTIONS}/cron/nightly"): (200, {"subscription": SUBSCRIPTION}),
        ("DELETE", f"{SUBSCRIPTIONS}/cron/nightly"): (204, None),
    }

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = self.path.split("?", 1)[0]
        self.requests.append((self.command, self.path, body))
        status, payload = self.routes.get((self.command, path), (404, None))
        if status == 404:
            payload = {
                "error_code": "not_found",
                "message": f"extension {path.rsplit('/', 1)[-1]} not found",
                "request_id": "stand-in",
                "errors": [],
            }
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in():
    StandIn.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def gofer(url: str, home, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFER_")}
    env.update({"HOME": str(home), "GOFER_API_BASE_URL": url, "GOFER_TOKEN": "stand-in-token"})
    done = subprocess.run(
        [sys.executable, "-m", "gofer_cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == expect, done.stderr
    return done


def test_extension_commands_send_and_print_the_openapi_shapes(stand_in, tmp_path):
    listed = json.loads(gofer(stand_in, tmp_path, "extension", "list", "-o", "json").stdout)
    assert listed == {"extensions": [EXTENSION]}
    plain = gofer(stand_in, tmp_path, "extension", "list", "-o", "plain").stdout
    assert plain.split("\t")[:3] == ["cron", REGISTRATION["image"], "enabled"]
    assert "Runs pipelines on a schedule." in gofer(stand_in, tmp_path, "extension", "get", "cron").stdout
    installed = gofer(
        stand_in,
        tmp_path,
        "extension",
        "install",
        "cron",
        REGISTRATION["image"],
        "-s",
        "TIMEZONE=UTC",
        "-a",
        "extra-role",
        "-o",
        "json",
    )
    assert json.loads(installed.stdout) == {"extension": EXTENSION}
    assert StandIn.requests[-1] == (
        "POST",
        "/api/extensions",
        {
            "id": "cron",
            "image": REGISTRATION["image"],
            "settings": {"TIMEZONE": "UTC"},
            "additional_roles": ["extra-role"],
        },
    )
    disabled = json.loads(gofer(stand_in, tmp_path, "extension", "disable", "cron", "-o", "json").stdout)
    assert disabled == {"changed": True, "message": None}
    assert StandIn.requests[-1] == ("PATCH", "/api/extensions/cron", {"enable": False})
    gofer(stand_in, tmp_path, "extension", "enable", "cron")
    assert StandIn.requests[-1] == ("PATCH", "/api/extensions/cron", {"enable": True})
    assert gofer(stand_in, tmp_path, "extension", "debug", "cron").stdout == "all good\n"
    gofer(stand_in, tmp_path, "extension", "uninstall", "cron")
    assert StandIn.requests[-1][:2] == ("DELETE", "/api/extensions/cron")
    missing = gofer(stand_in, tmp_path, "extension", "get", "nope", expect=3)
    assert "not_found: extension nope not found" in missing.stderr


def test_subscribe_and_unsubscribe_send_the_openapi_shapes(stand_in, tmp_path):
    created = gofer(
        stand_in,
        tmp_path,
        "pipeline",
        "subscribe",
        "build",
        "cron",
        "nightly",
        "-s",
        "expression=0 3 * * *",
        "-o",
        "json",
    )
    assert json.loads(created.stdout) == {"subscription": SUBSCRIPTION}
    assert StandIn.requests[-1] == (
        "POST",
        SUBSCRIPTIONS,
        {
            "extension_id": "cron",
            "subscription_id": "nightly",
            "settings": {"expression": "0 3 * * *"},
        },
    )
    listed = json.loads(gofer(stand_in, tmp_path, "pipeline", "subscription", "list", "build", "-o", "json").stdout)
    assert listed == {"subscriptions": [SUBSCRIPTION]}
    shown = json.loads(
        gofer(stand_in, tmp_path, "pipeline", "subscription", "get", "build", "cron", "nightly", "-o", "json").stdout
    )
    assert shown == {"subscription": SUBSCRIPTION}
    removed = json.loads(
        gofer(stand_in, tmp_path, "pipeline", "unsubscribe", "build", "cron", "nightly", "-o", "json").stdout
    )
    assert removed == {"changed": True, "message": None}
    assert StandIn.requests[-1][:2] == ("DELETE", f"{SUBSCRIPTIONS}/cron/nightly")
