"""Sandbox visitors (GOFER_SANDBOX=true): POST /api/sandbox gives a namespace with the sandbox quotas and a token
scoped to it; visitors cannot see one another nor reach what is admin-only; signing up is rate-limited per address;
an expired visitor's namespace goes with everything in it."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from access.models import Token
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from objectstore.models import PipelineObject
from pipelines import quotas
from pipelines.models import Namespace, Pipeline
from runs import services as runs
from runs.models import Run
from sandbox import services as sandbox
from sandbox.models import Visitor
from secretstore import services as secrets
from secretstore.models import PipelineSecret
from tests.conftest import simple_config
from tests.support.sandbox import SIGN_UP, sign_up


def configs(namespace_id: str, pipeline_id: str = "build") -> str:
    return f"/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/configs"


def deploy(caller, namespace_id: str, pipeline_id: str = "build") -> None:
    assert caller.post(configs(namespace_id, pipeline_id), {"config": simple_config(pipeline_id)}).status_code == 201
    assert caller.post(f"{configs(namespace_id, pipeline_id)}/1").status_code == 201


def test_signing_up_is_not_found_outside_sandbox_mode(db):
    response = APIClient().post(SIGN_UP, HTTP_GOFER_API_VERSION="v0")
    assert response.status_code == 404
    assert response.json()["error_code"] == "not_found"
    assert not Namespace.objects.filter(id__startswith="sandbox-").exists()


def test_a_visitor_gets_a_namespace_with_the_sandbox_quotas_and_a_token_that_expires(visitor, settings):
    caller, body = visitor
    namespace_id = body["namespace"]["id"]

    assert namespace_id.startswith("sandbox-")
    assert body["namespace"]["allow_attach"] is False
    assert body["quotas"]["concurrent_runs"]["limit"] == 2 and body["quotas"]["task_timeout"]["limit"] == 600
    token = Token.objects.get(pk=body["token_details"]["id"])
    assert token.kind == "sandbox"
    lifetime = token.expires - token.created
    assert abs(lifetime.total_seconds() - settings.GOFER_SANDBOX_TTL) < 5
    visitor_row = Visitor.objects.get(pk=namespace_id)
    assert visitor_row.token_id == token.pk and visitor_row.address == "198.51.100.7"
    assert abs((visitor_row.expires - token.expires).total_seconds()) < 5
    # What the quotas say is what the namespace has.
    assert quotas.quotas_of(namespace_id).pipelines == 10


def test_a_visitor_works_in_their_own_namespace(visitor):
    caller, body = visitor
    namespace_id = body["namespace"]["id"]

    deploy(caller, namespace_id)
    response = caller.post(f"/api/namespaces/{namespace_id}/pipelines/build/runs", {"variables": {}})

    assert response.status_code == 201, response.content
    assert caller.get(f"/api/namespaces/{namespace_id}/quotas").json()["quotas"]["queued_runs"]["used"] == 1
    listed = caller.get("/api/namespaces").json()["namespaces"]
    assert [n["id"] for n in listed] == [namespace_id]


def test_visitors_cannot_see_one_another(visitor):
    first, first_body = visitor
    second, second_body = sign_up(address="203.0.113.9")
    theirs = first_body["namespace"]["id"]
    deploy(first, theirs)

    assert second.get(f"/api/namespaces/{theirs}").status_code == 404
    assert second.get(f"/api/namespaces/{theirs}/pipelines").status_code == 404
    assert second.get(f"/api/namespaces/{theirs}/quotas").status_code == 404
    assert second.post(configs(theirs, "mine"), {"config": simple_config("mine")}).status_code == 404
    assert [n["id"] for n in second.get("/api/namespaces").json()["namespaces"]] == [second_body["namespace"]["id"]]
    events = second.get("/api/events", limit="200").json()["events"]
    assert events  # their own namespace's events at least, so the check below is not vacuous
    assert all(theirs not in str(event) for event in events)
    # Nor the default namespace, which anonymous callers and the user role see outside sandbox mode.
    assert second.get("/api/namespaces/default/pipelines").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/tokens", {"user": "x", "roles": ["admin"], "expires": 0}),
        ("get", "/api/tokens", None),
        ("post", "/api/roles", {"id": "mine", "description": "", "permissions": []}),
        ("post", "/api/secrets/global", {"key": "k", "content": "v", "namespaces": [".*"]}),
        ("get", "/api/secrets/global", None),
        ("post", "/api/extensions", {"id": "x", "image": "busybox:latest"}),
        ("patch", "/api/system", {"ignore_pipeline_run_events": True}),
        ("post", "/api/namespaces", {"id": "mine", "name": "mine", "description": ""}),
    ],
)
def test_what_is_admin_only_stays_admin_only_for_visitors(visitor, method, path, body):
    caller, _ = visitor
    response = getattr(caller, method)(path, body) if body is not None else getattr(caller, method)(path)
    assert response.status_code in (403, 404), (path, response.status_code)
    assert response.json()["error_code"] in ("permission_denied", "not_found")


def test_a_visitor_cannot_change_delete_or_lift_the_quotas_of_their_namespace(visitor):
    caller, body = visitor
    namespace_id = body["namespace"]["id"]
    path = f"/api/namespaces/{namespace_id}"

    assert (
        caller.client.put(f"{path}/quotas", {"pipelines": None}, format="json", **caller._headers(None)).status_code
        == 403
    )
    assert caller.patch(path, {"allow_attach": True}).status_code == 403
    assert caller.delete(path).status_code == 403
    assert quotas.quotas_of(namespace_id).pipelines == 10


def test_signing_up_is_rate_limited_per_client_address(sandbox_mode):
    sandbox_mode.GOFER_RATELIMIT_SANDBOX = "2/h"
    # Addresses of this test alone, fresh each run: the counters live in the shared cache.
    address, other = (f"2001:db8:{uuid.uuid4().hex[:4]}::{n}" for n in (1, 2))
    sign_up(address=address)
    sign_up(address=address)

    refused = APIClient().post(SIGN_UP, REMOTE_ADDR=address, HTTP_GOFER_API_VERSION="v0")

    assert refused.status_code == 429
    assert refused.json()["error_code"] == "rate_limited"
    assert "GOFER_RATELIMIT_SANDBOX" in refused.json()["message"]
    assert 1 <= int(refused["Retry-After"]) <= 3600  # until the hour's counting window ends
    assert Visitor.objects.count() == 2
    sign_up(address=other)  # another address has its own count


def test_an_expired_visitors_namespace_and_everything_in_it_are_deleted(visitor, settings, tmp_path):
    settings.GOFER_OBJECT_DIR = tmp_path / "objects"
    caller, body = visitor
    namespace_id = body["namespace"]["id"]
    deploy(caller, namespace_id)
    pipeline = Pipeline.objects.get(namespace_id=namespace_id)
    runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    secrets.put_pipeline_secret(pipeline, "key", "a secret value")
    objects.put_pipeline_object(pipeline, "artifact", [b"bytes"])
    other, other_body = sign_up(address="203.0.113.50")

    assert sandbox.expire_visitors() == 0  # nobody's time is up yet
    Visitor.objects.filter(pk=namespace_id).update(expires=timezone.now() - dt.timedelta(seconds=1))
    assert sandbox.expire_visitors() == 1

    assert not Namespace.objects.filter(pk=namespace_id).exists()
    assert not Run.objects.filter(namespace_id=namespace_id).exists()
    assert not PipelineSecret.objects.filter(namespace_id=namespace_id).exists()
    assert not PipelineObject.objects.filter(namespace_id=namespace_id).exists()
    assert not Token.objects.filter(pk=body["token_details"]["id"]).exists()
    assert caller.get("/api/namespaces").status_code == 401
    # The other visitor is untouched.
    assert other.get(f"/api/namespaces/{other_body['namespace']['id']}").status_code == 200


def test_the_tickers_round_expires_visitors_and_asks_for_another_in_a_minute(sandbox_mode):
    from triggers import ticker

    assert sandbox.expire_periodically in ticker._periodic  # registered by the app: no queue message per minute
    caller, body = sign_up()
    namespace_id = body["namespace"]["id"]
    Visitor.objects.filter(pk=namespace_id).update(expires=timezone.now() - dt.timedelta(seconds=1))
    assert sandbox.expire_periodically(timezone.now()) == sandbox.EXPIRY_SECONDS
    assert not Namespace.objects.filter(pk=namespace_id).exists()
    assert not Schedule.objects.filter(name="gofer-sandbox-expiry").exists()  # the old schedule is gone
