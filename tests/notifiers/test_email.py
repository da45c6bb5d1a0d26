"""notify-email through a real SMTP server on loopback (aiosmtpd): plain text and HTML, the recipients of ``to``."""

from __future__ import annotations

import email
import email.policy

import pytest
from aiosmtpd.controller import Controller

from tests.notifiers.conftest import SUBSCRIPTIONS, deliver_all, finished_run, install, subscribe
from tests.support.processes import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox(settings):
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.GOFER_EMAIL_HOST, settings.GOFER_EMAIL_PORT = "127.0.0.1", port
    settings.GOFER_EMAIL_FROM = "gofer@ci.example.com"
    yield handler
    controller.stop()


def test_a_failed_run_is_mailed_in_plain_text_and_html(pipeline, inbox, queued, db):
    install("notify-email")
    subscribe(pipeline, "notify-email", "mail", when="run_failed", to="dev@example.com, lead@example.com")
    run = finished_run(pipeline, "failed", tasks={"compile": "failed"})
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "succeeded", attempt.error

    [(recipients, message)] = inbox.messages
    assert recipients == ["dev@example.com", "lead@example.com"]
    assert message["From"] == "gofer@ci.example.com"
    assert f"team-a/build run {run.number} failed" in message["Subject"]
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Failing:   compile" in plain and f"/pipelines/build/runs/{run.number}" in plain
    assert "<table>" in html and "compile" in html


def test_an_unreachable_smtp_server_is_retried(pipeline, queued, settings, db):
    settings.GOFER_EMAIL_HOST, settings.GOFER_EMAIL_PORT = "127.0.0.1", free_port()
    install("notify-email")
    subscribe(pipeline, "notify-email", "mail", when="run_failed", to="dev@example.com")
    finished_run(pipeline, "failed")
    [attempt] = deliver_all(queued)
    assert attempt.outcome == "retrying" and "SMTP" in attempt.error


def test_bad_addresses_are_400s_naming_to(pipeline, alice, db):
    install("notify-email")
    body = {"extension_id": "notify-email", "subscription_id": "mail", "settings": {"when": "run_failed", "to": "x@"}}
    response = alice.post(SUBSCRIPTIONS, body)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "settings.to"
