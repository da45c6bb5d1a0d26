"""A small third-party extension speaking Gofer's extension protocol (docs/extensions.md), for tests.

Run by Gofer as a service (``python tests/support/extension_server.py``, through the local scheduler), configured by
the environment Gofer gives it: ``GOFER_EXTENSION_SYSTEM_*`` and the install settings as ``GOFER_EXTENSION_CONFIG_*``.
Standard library only, as an extension author's first try would be.

- ``GET /api/health``: 204, no auth.
- ``GET /api/info``: its id, ``protocol_version`` (``GOFER_EXTENSION_CONFIG_PROTOCOL_VERSION`` overrides it, to test
  refusals) and documentation: install setting ``greeting``, subscription settings ``label`` (required) and
  ``token`` (sensitive).
- ``GET /api/debug``: what it knows: its subscriptions with the settings it received, as JSON in ``info``.
- ``POST``/``DELETE /api/subscribe``: remember or forget a subscription; ``label: refuse`` is refused (400).
- ``POST /api/external-event``: the forwarded body (base64) is JSON ``{"subscription_id": ...}``; it starts a run of
  that subscription's pipeline through Gofer's API with its own token and answers Gofer's answer.
- ``POST /api/shutdown``: exits.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("GOFER_EXTENSION_SYSTEM_SECRET", "")
GOFER = os.environ.get("GOFER_EXTENSION_SYSTEM_GOFER_HOST", "").rstrip("/")
EXTENSION_ID = os.environ.get("GOFER_EXTENSION_SYSTEM_ID", "")
VERSION = os.environ.get("GOFER_EXTENSION_CONFIG_PROTOCOL_VERSION") or os.environ.get(
    "GOFER_EXTENSION_SYSTEM_PROTOCOL_VERSION", ""
)
subscriptions: dict[str, dict] = {}
lock = threading.Lock()


def documentation() -> dict:
    return {
        "body": "A test extension: starts a run when told to through /api/external/{id}.",
        "config_params": [
            {"key": "greeting", "required": False, "documentation": "Printed at start.", "sensitive": False},
            {"key": "protocol_version", "required": False, "documentation": "Override (tests).", "sensitive": False},
        ],
        "pipeline_subscription_params": [
            {"key": "label", "required": True, "documentation": "A name; 'refuse' is refused.", "sensitive": False},
            {"key": "token", "required": False, "documentation": "Something secret.", "sensitive": True},
        ],
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)

    def _answer(self, status: int, body: object = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {SECRET}":
            self._answer(401, {"message": "bad secret"})
            return False
        return True

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        if self.path == "/api/health":
            self._answer(204)
        elif not self._authorised():
            return
        elif self.path == "/api/info":
            self._answer(
                200, {"extension_id": EXTENSION_ID, "protocol_version": VERSION, "documentation": documentation()}
            )
        elif self.path == "/api/debug":
            with lock:
                self._answer(200, {"info": json.dumps({"subscriptions": subscriptions})})
        else:
            self._answer(404, {"message": "no such route"})

    def do_POST(self) -> None:
        if not self._authorised():
            return
        if self.path == "/api/subscribe":
            body = self._body()
            params = body.get("pipeline_subscription_params") or {}
            if params.get("label") == "refuse":
                self._answer(400, {"message": "label 'refuse' is not accepted"})
                return
            with lock:
                subscriptions[body["pipeline_subscription_id"]] = body
            self._answer(200, {})
        elif self.path == "/api/external-event":
            event = json.loads(base64.b64decode(self._body()["body"]))
            with lock:
                known = subscriptions.get(event.get("subscription_id", ""))
            if known is None:
                self._answer(404, {"message": "no such subscription"})
                return
            self._answer(*start_run(known))
        elif self.path == "/api/shutdown":
            self._answer(200, {})
            threading.Thread(target=server.shutdown, daemon=True).start()
        else:
            self._answer(404, {"message": "no such route"})

    def do_DELETE(self) -> None:
        if not self._authorised():
            return
        if self.path == "/api/subscribe":
            body = self._body()
            with lock:
                subscriptions.pop(body.get("pipeline_subscription_id", ""), None)
            self._answer(200, {})
        else:
            self._answer(404, {"message": "no such route"})


def start_run(subscription: dict, namespace_id: str = "", pipeline_id: str = "") -> tuple[int, dict]:
    """Start a run through Gofer's normal API with the extension's own token."""
    namespace_id = namespace_id or subscription["namespace_id"]
    pipeline_id = pipeline_id or subscription["pipeline_id"]
    url = f"{GOFER}/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/runs"
    body = json.dumps(
        {"variables": {"GOFER_EXTENSION_TEST_LABEL": subscription["pipeline_subscription_params"]["label"]}}
    )
    request = urllib.request.Request(  # noqa: S310 - Gofer's own address, from the environment Gofer gave
        url,
        data=body.encode(),
        method="POST",
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json", "gofer-api-version": "v0"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - Gofer's own address
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


if __name__ == "__main__":
    host, _, port = os.environ["GOFER_EXTENSION_SYSTEM_BIND_ADDRESS"].rpartition(":")
    print(f"{EXTENSION_ID}: {os.environ.get('GOFER_EXTENSION_CONFIG_GREETING', 'hello')} on {host}:{port}", flush=True)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.serve_forever()
    sys.exit(0)
