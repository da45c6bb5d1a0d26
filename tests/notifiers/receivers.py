"""Real HTTP receivers on loopback for the notifier tests: ``Receiver`` (a webhook or Slack endpoint that records
what it gets and answers what the test queued) and ``GitHubStandIn`` (answers as GitHub's statuses, App
installation tokens and check-runs API do, and checks the App's JWT with the App's public key).

GitHub itself is unreachable from the test machine: the stand-in follows GitHub's documented requests and answers
(docs/notifiers.md, "What was verified against a stand-in").
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """An HTTP server in a thread. ``answers`` are used in order (then ``default``); ``hold`` (an Event) makes the
    next request wait for it before answering (a worker killed mid-request)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[Answer] = []
        self.default = Answer()
        self.hold: threading.Event | None = None
        self.answered = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = Received(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.received.append(got)
                    hold, receiver.hold = receiver.hold, None
                if hold is not None:
                    hold.wait(60)
                answer = receiver.answer(got)
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    with receiver._lock:
                        receiver.answered += 1
                except OSError:
                    pass

            do_POST = do_PATCH = do_GET = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, got: Received) -> Answer:
        with self._lock:
            return self.answers.pop(0) if self.answers else self.default

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return self.received
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.received)} requests, not {count}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GitHubStandIn(Receiver):
    """GitHub's REST API for what notify-github calls. With ``public_key``, the App's JWT must verify with it."""

    def __init__(self, app_id: str = "", public_key: rsa.RSAPublicKey | None = None) -> None:
        self.app_id = app_id
        self.public_key = public_key
        self.installation_token = "ghs_installation_token_0123456789"
        self.next_check_run = 4242
        super().__init__()

    def _jwt_ok(self, header: str) -> bool:
        if self.public_key is None or not header.startswith("Bearer "):
            return False
        try:
            head, claims, signature = header.removeprefix("Bearer ").split(".")
            self.public_key.verify(_unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
            payload = json.loads(_unb64(claims))
        except Exception:
            return False
        return json.loads(_unb64(head)).get("alg") == "RS256" and payload.get("iss") == self.app_id

    def answer(self, got: Received) -> Answer:
        with self._lock:
            if self.answers:
                return self.answers.pop(0)
        auth = got.headers.get("Authorization", "")
        if re.fullmatch(r"/app/installations/\d+/access_tokens", got.path) and got.method == "POST":
            if not self._jwt_ok(auth):
                return Answer(401, b'{"message": "A JSON web token could not be decoded"}')
            body = {"token": self.installation_token, "expires_at": "2099-01-01T00:00:00Z"}
            return Answer(201, json.dumps(body).encode(), {"Content-Type": "application/json"})
        if re.fullmatch(r"/repos/[^/]+/[^/]+/statuses/[0-9a-f]+", got.path) and got.method == "POST":
            return Answer(201, json.dumps({"id": 1, "state": got.json()["state"]}).encode())
        if re.fullmatch(r"/repos/[^/]+/[^/]+/check-runs", got.path) and got.method == "POST":
            if auth != f"Bearer {self.installation_token}":
                return Answer(401, b'{"message": "Bad credentials"}')
            with self._lock:
                number, self.next_check_run = self.next_check_run, self.next_check_run + 1
            return Answer(201, json.dumps({"id": number, **got.json()}).encode())
        if re.fullmatch(r"/repos/[^/]+/[^/]+/check-runs/\d+", got.path) and got.method == "PATCH":
            if auth != f"Bearer {self.installation_token}":
                return Answer(401, b'{"message": "Bad credentials"}')
            return Answer(200, json.dumps({"id": int(got.path.rsplit("/", 1)[1]), **got.json()}).encode())
        return Answer(404, b'{"message": "Not Found"}')
