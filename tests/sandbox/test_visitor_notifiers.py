"""A sandbox visitor and the notifiers: the kinds that write with the operator's credentials (Slack, GitHub, the
SMTP server) refuse a visitor's namespace unless the operator lists it; notify-webhook, the visitor's own URL, stays
open within the outbound policy."""

from __future__ import annotations

import pytest

from tests.conftest import simple_config
from triggers import services as triggers

INSTALLS = {
    "notify-slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/X"},
    "notify-github": {"token": "ghp_operator"},
    "notify-email": {},
    "notify-webhook": {},
}
SUBSCRIPTION_SETTINGS = {
    "notify-slack": {},
    "notify-github": {"repository": "victim/repository"},
    "notify-email": {"to": "anyone@example.com"},
    "notify-webhook": {"url": "https://hooks.example.com/gofer"},
}


def install(kind_id: str, **extra: str) -> None:
    request = triggers.check_install(
        {"id": kind_id, "image": f"builtin:{kind_id}", "settings": {**INSTALLS[kind_id], **extra}}
    )
    triggers.record_install(request, force=True)


def subscribe(caller, namespace_id: str, kind_id: str):
    settings = {"when": "run_failed", **SUBSCRIPTION_SETTINGS[kind_id]}
    return caller.post(
        f"/api/namespaces/{namespace_id}/pipelines/build/subscriptions",
        {"extension_id": kind_id, "subscription_id": "notice", "settings": settings},
    )


@pytest.fixture
def visitors_pipeline(visitor):
    caller, body = visitor
    namespace_id = body["namespace"]["id"]
    configs = f"/api/namespaces/{namespace_id}/pipelines/build/configs"
    assert caller.post(configs, {"config": simple_config("build")}).status_code == 201
    assert caller.post(f"{configs}/1").status_code == 201
    return caller, namespace_id


@pytest.mark.parametrize("kind_id", ["notify-slack", "notify-github", "notify-email"])
def test_a_visitor_cannot_use_the_operators_notifier_credentials(visitors_pipeline, kind_id):
    caller, namespace_id = visitors_pipeline
    install(kind_id)
    refused = subscribe(caller, namespace_id, kind_id)
    assert refused.status_code == 403, refused.content
    assert refused.json()["errors"][0]["field"] == "extension_id"


def test_a_visitors_namespace_listed_by_the_operator_still_reaches_only_the_listed_repositories(visitors_pipeline):
    caller, namespace_id = visitors_pipeline
    install("notify-github", namespaces="sandbox-*")
    refused = subscribe(caller, namespace_id, "notify-github")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "settings.repository"
    install("notify-github", namespaces="sandbox-*", repositories="victim/*")
    assert subscribe(caller, namespace_id, "notify-github").status_code == 201


def test_a_visitor_may_use_notify_webhook_to_their_own_url(visitors_pipeline):
    caller, namespace_id = visitors_pipeline
    install("notify-webhook")
    assert subscribe(caller, namespace_id, "notify-webhook").status_code == 201
