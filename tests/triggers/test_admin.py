"""The operators' console for triggers: state, last and next firing, and actions through the services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.triggers.conftest import SUBSCRIPTIONS, runs_of, subscription
from triggers.models import Extension, Subscription


@pytest.fixture
def admin_client(client, db):
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_subscriptions_list_their_state_and_next_firing_and_fire_now_starts_a_run(
    builtins, pipeline, alice, admin_client
):
    alice.post(SUBSCRIPTIONS, {"extension_id": "interval", "subscription_id": "often", "settings": {"every": "1h"}})
    sub = subscription(pipeline, "interval", "often")
    listing = admin_client.get(reverse("admin:triggers_subscription_changelist"))
    assert listing.status_code == 200 and b"often" in listing.content
    page = admin_client.get(reverse("admin:triggers_subscription_change", args=[sub.pk]))
    assert page.status_code == 200 and b"next fire at" in page.content.lower()
    admin_client.post(
        reverse("admin:triggers_subscription_changelist"), {"action": "fire_now", "_selected_action": [sub.pk]}
    )
    assert len(runs_of(pipeline)) == 1
    assert subscription(pipeline, "interval", "often").next_fire_at == sub.next_fire_at  # the schedule is untouched
    admin_client.post(
        reverse("admin:triggers_subscription_changelist"),
        {"action": "disable_subscriptions", "_selected_action": [sub.pk]},
    )
    assert Subscription.objects.get(pk=sub.pk).status == "disabled"
    assert sub.next_fire_at > sub.created + dt.timedelta(minutes=59)


def test_extensions_are_enabled_and_disabled_through_the_services(builtins, admin_client):
    changelist = reverse("admin:triggers_extension_changelist")
    assert b"builtin:cron" in admin_client.get(changelist).content
    admin_client.post(changelist, {"action": "disable_extensions", "_selected_action": ["cron"]})
    assert Extension.objects.get(id="cron").status == "disabled"
    page = admin_client.get(reverse("admin:triggers_extension_change", args=["github"]))
    assert b"[redacted]" in page.content and b"it&#x27;s-a-secret" not in page.content
