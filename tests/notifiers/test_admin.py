"""Notices and deliveries in the operators' console: visible, read-only, scoped for staff like the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from notifiers.models import Delivery, Notice
from tests.notifiers.conftest import deliver_all, finished_run, subscribe
from tests.notifiers.receivers import Answer
from tests.support.admin import TEAM_A_READ, change_url, changelist_url, staff_client

SECRET = "admin-page-secret-0123456789"


@pytest.fixture
def superuser_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def attempt(pipeline, webhook_kind, receiver, queued):
    subscribe(pipeline, "notify-webhook", "hook", when="run_failed", url=f"{receiver.url}/in", secret=SECRET)
    receiver.default = Answer(502, f"upstream said {SECRET}".encode())
    finished_run(pipeline, "failed")
    [delivery] = deliver_all(queued)
    return delivery


def test_notices_and_attempts_are_shown_read_only_without_secrets(superuser_client, attempt):
    notice = Notice.objects.get()
    for url in (changelist_url(Notice), change_url(notice), changelist_url(Delivery), change_url(attempt)):
        page = superuser_client.get(url)
        assert page.status_code == 200, url
        assert SECRET.encode() not in page.content
    page = superuser_client.get(change_url(notice)).content.decode()
    assert "upstream said ********" in page and "retrying" in page
    assert b'name="_save"' not in superuser_client.get(change_url(notice)).content
    assert superuser_client.post(change_url(notice), {"state": "delivered"}).status_code == 403


def test_staff_see_their_namespace_only(attempt, namespaces, db):
    reader = staff_client("reader", TEAM_A_READ)
    assert reader.get(change_url(Notice.objects.get())).status_code == 200
    outsider = staff_client(
        "outsider", [{"resources": ["namespaces:^team-b$", "pipelines:.*", "subscriptions"], "actions": ["read"]}]
    )
    assert outsider.get(change_url(Notice.objects.get())).status_code == 404
    assert outsider.get(change_url(attempt)).status_code == 404
