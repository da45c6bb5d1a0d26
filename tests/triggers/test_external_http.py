"""The webhook and GitHub endpoints over real HTTP (a daphne process), with GitHub's payload shapes, headers and
signatures: 202 and one run per delivery, 401 for a bad or missing signature (and nothing started), the same
delivery id twice starts one run, ping starts nothing, a body over the limit is a 413, and a source over its rate
limit gets 429."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from objectstore import services as objects
from runs.models import Run
from secretstore import services as secrets
from tests.conftest import deployed_pipeline
from tests.support.processes import Process, Server, _log_path, child_env, free_port
from tests.triggers.conftest import GITHUB_SECRET, sign
from triggers import services

pytestmark = pytest.mark.slow

PAYLOADS = Path(__file__).with_name("payloads")


@pytest.fixture
def server(transactional_db, settings, builtins):
    settings.GOFER_SCHEDULER = "memory"
    servers = []

    def start(**env: str) -> Server:
        servers.append(Server(GOFER_EXTERNAL_MAX_BODY_BYTES="65536", **env))
        return servers[-1]

    yield start
    for process in servers:
        process.stop()


@pytest.fixture
def hooked(namespaces):
    pipeline = deployed_pipeline("team-a")
    secrets.put_pipeline_secret(pipeline, "hook-key", "s3cr3t-webhook-key")
    services.create_subscription(pipeline, "webhook", "deploys", {"secret": "pipeline_secret{{hook-key}}"})
    services.create_subscription(
        pipeline, "github", "pushes", {"repository": "octocat/hello-world", "event_filter": "push pull_request/opened"}
    )
    return pipeline


WEBHOOK = "/api/external/webhook/team-a/build/deploys"


def post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        server.url + path, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10
    )


def test_a_signed_webhook_starts_one_run_with_its_payload_and_variables(server, hooked):
    live = server()
    body = json.dumps({"ref": "main", "build": 42, "ok": True, "nested": {"x": 1}}).encode()
    response = post(
        live, WEBHOOK, body, {"X-Gofer-Signature-256": sign("s3cr3t-webhook-key", body), "X-Gofer-Delivery": "d-1"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["run_id"] == 1 and response.json()["delivery_id"] == "d-1"
    run = Run.objects.get(pipeline=hooked, number=1)
    variables = {v["key"]: v["value"] for v in run.variables}
    assert variables == {
        "GOFER_EXTENSION_WEBHOOK_REF": "main",
        "GOFER_EXTENSION_WEBHOOK_BUILD": "42",
        "GOFER_EXTENSION_WEBHOOK_OK": "true",
        "GOFER_EXTENSION_WEBHOOK_DELIVERY": "d-1",
    }
    assert {v["source"] for v in run.variables} == {"extension"}
    assert objects.read_run_object(run, "webhook-payload", 10_000) == body

    again = post(
        live, WEBHOOK, body, {"X-Gofer-Signature-256": sign("s3cr3t-webhook-key", body), "X-Gofer-Delivery": "d-1"}
    )
    assert again.status_code == 202 and again.json()["run_id"] == 1 and again.json()["duplicate"] is True
    assert Run.objects.filter(pipeline=hooked).count() == 1


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"],
    ids=["missing", "wrong", "other-algorithm", "malformed"],
)
def test_a_bad_signature_is_a_401_that_starts_nothing_and_echoes_no_signature(server, hooked, signature):
    live = server()
    body = b'{"ref": "main"}'
    headers = {} if signature is None else {"X-Gofer-Signature-256": signature}
    response = post(live, WEBHOOK, body, headers)
    assert response.status_code == 401
    assert sign("s3cr3t-webhook-key", body)[7:] not in response.text
    assert Run.objects.count() == 0


def test_an_unknown_webhook_address_answers_as_a_bad_signature(server, hooked):
    live = server()
    body = b"{}"
    for path in ("/api/external/webhook/team-a/build/nope", "/api/external/webhook/team-b/build/deploys"):
        response = post(live, path, body, {"X-Gofer-Signature-256": sign("s3cr3t-webhook-key", body)})
        assert response.status_code == 401


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        (
            "push",
            "push.json",
            {
                "GOFER_EXTENSION_GITHUB_EVENT": "push",
                "GOFER_EXTENSION_GITHUB_REF": "refs/heads/main",
                "GOFER_EXTENSION_GITHUB_REPOSITORY": "Octocat/Hello-World",
                "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
                "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_AUTHOR_USERNAME": "Codertocat",
                "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_COMMITTER_NAME": "GitHub",
            },
        ),
        (
            "pull_request",
            "pull_request.json",
            {
                "GOFER_EXTENSION_GITHUB_EVENT": "pull_request",
                "GOFER_EXTENSION_GITHUB_ACTION": "opened",
                "GOFER_EXTENSION_GITHUB_PULLREQUEST_HEAD_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
                "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
                "GOFER_EXTENSION_GITHUB_PULLREQUEST_AUTHOR_USERNAME": "Codertocat",
            },
        ),
    ],
)
def test_a_github_event_starts_one_run_per_matching_subscription(server, hooked, event, payload, expected):
    live = server()
    body = (PAYLOADS / payload).read_bytes()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": sign(GITHUB_SECRET, body),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    response = post(live, "/api/external/github", body, headers)
    assert response.status_code == 202, response.text
    assert [r["run_id"] for r in response.json()["runs"]] == [1]
    variables = {v["key"]: v["value"] for v in Run.objects.get(pipeline=hooked, number=1).variables}
    assert expected.items() <= variables.items()
    # GitHub's manual redelivery reuses the delivery id: nothing more starts.
    assert post(live, "/api/external/github", body, headers).json()["runs"][0]["duplicate"] is True
    assert Run.objects.filter(pipeline=hooked).count() == 1


def test_a_github_event_no_subscription_wants_starts_nothing(server, hooked):
    live = server()
    body = (PAYLOADS / "release.json").read_bytes()
    headers = {
        "X-GitHub-Event": "release",
        "X-GitHub-Delivery": "r-1",
        "X-Hub-Signature-256": sign(GITHUB_SECRET, body),
    }
    response = post(live, "/api/external/github", body, headers)
    assert response.status_code == 202 and response.json()["runs"] == []


def test_github_ping_answers_200_and_a_bad_signature_401(server, hooked):
    live = server()
    body = (PAYLOADS / "ping.json").read_bytes()
    ok = post(
        live,
        "/api/external/github",
        body,
        {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p-1", "X-Hub-Signature-256": sign(GITHUB_SECRET, body)},
    )
    assert ok.status_code == 200
    bad = post(
        live,
        "/api/external/github",
        body,
        {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p-1", "X-Hub-Signature-256": sign("not-it", body)},
    )
    assert bad.status_code == 401
    assert Run.objects.count() == 0


def test_a_body_over_the_limit_is_a_413(server, hooked):
    live = server()
    body = b"x" * 70_000
    response = post(live, "/api/external/github", body, {"X-Hub-Signature-256": sign(GITHUB_SECRET, body)})
    assert response.status_code == 413
    assert response.json()["error_code"] == "body_too_large"


def test_a_source_over_the_rate_limit_gets_429_with_retry_after(server, hooked):
    live = server(GOFER_EXTERNAL_RATE_LIMIT="3/m")
    statuses = [post(live, WEBHOOK, b"{}", {}).status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429]
    limited = post(live, WEBHOOK, b"{}", {})
    # The seconds left in the current one-minute window.
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error_code"] == "rate_limited"


def test_the_external_listener_serves_only_the_external_routes(transactional_db, settings, builtins, hooked):
    """One daphne, two listeners, as ``make run`` starts it with GOFER_EXTERNAL_BIND (manage.py serve's argv)."""
    from kernel.management.commands.serve import daphne_argv

    main, external = free_port(), free_port()
    settings.GOFER_BIND, settings.GOFER_EXTERNAL_BIND = f"127.0.0.1:{main}", f"127.0.0.1:{external}"
    argv = daphne_argv()
    assert f"tcp:port={external}:interface=127.0.0.1" in argv
    env = child_env(GOFER_BIND=settings.GOFER_BIND, GOFER_EXTERNAL_BIND=settings.GOFER_EXTERNAL_BIND)
    daphne = Process(argv, env, _log_path("daphne-external"))
    try:
        wait_until_answering(f"http://127.0.0.1:{main}/api/system/metadata", daphne)
        outside = f"http://127.0.0.1:{external}"
        assert requests.get(f"{outside}/api/system/metadata", timeout=5).status_code == 404
        assert requests.get(f"{outside}/admin/", timeout=5).status_code == 404
        body = b"{}"
        answer = requests.post(
            f"{outside}{WEBHOOK}",
            data=body,
            headers={"X-Gofer-Signature-256": sign("s3cr3t-webhook-key", body)},
            timeout=5,
        )
        assert answer.status_code == 202, answer.text
        assert requests.post(f"http://127.0.0.1:{main}{WEBHOOK}", data=b"{}", timeout=5).status_code == 401
    finally:
        daphne.stop()


def wait_until_answering(url: str, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"no answer on {url}:\n{process.output()}")
