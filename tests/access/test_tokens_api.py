"""Tokens: create, list, get, whoami, disable/enable and delete (admin routes), and what is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import Token
from events.models import Event
from tests.conftest import ApiCaller

TOKEN_KEYS = {"id", "user", "kind", "roles", "metadata", "created", "expires", "disabled", "last_used"}


def now_ms() -> int:
    return int(time.time() * 1000)


def caller_for(secret: str) -> ApiCaller:
    return ApiCaller(APIClient(), secret)


def create(caller, **overrides):
    body = {"user": "dana", "roles": ["user"], "expires": 0, **overrides}
    return caller.post("/api/tokens", body)


def test_admin_creates_a_token(admin):
    response = create(admin, metadata={"team": "ops"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"secret", "token_details"}
    details = body["token_details"]
    assert set(details) == TOKEN_KEYS
    assert details["user"] == "dana"
    assert details["roles"] == ["user"]
    assert details["metadata"] == {"team": "ops"}
    assert details["kind"] == "user"
    assert details["expires"] == 0
    assert details["last_used"] == 0
    assert details["disabled"] is False
    assert abs(details["created"] - now_ms()) < 60_000
    assert uuid.UUID(details["id"])


def test_the_new_secret_works_and_whoami_names_its_user(admin):
    secret = create(admin).json()["secret"]
    dana = caller_for(secret)
    response = dana.get("/api/tokens/whoami")
    assert response.status_code == 200
    token = response.json()["token"]
    assert token["user"] == "dana"
    assert token["roles"] == ["user"]
    assert token["last_used"] > 0


def test_creating_a_token_publishes_created_token(admin):
    token_id = create(admin).json()["token_details"]["id"]
    event = Event.objects.filter(kind="created_token").latest("id")
    assert event.details == {"token_id": token_id, "user": "dana"}
    assert event.namespace_id is None


def test_only_the_sha256_of_the_secret_is_stored(admin):
    body = create(admin).json()
    secret, token_id = body["secret"], body["token_details"]["id"]
    token = Token.objects.get(id=token_id)
    assert token.hash == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Token._meta.db_table}")  # noqa: S608 - a constant table name
        rows = cursor.fetchall()
    assert rows
    assert all(secret not in str(value) for row in rows for value in row)
    assert all(secret not in str(e.details) for e in Event.objects.all())


def test_the_secret_is_shown_only_once(admin):
    body = create(admin).json()
    listed = admin.get("/api/tokens").json()["tokens"]
    fetched = admin.get(f"/api/tokens/{body['token_details']['id']}").json()
    assert body["secret"] not in str(listed)
    assert body["secret"] not in str(fetched)
    assert all("hash" not in t and "secret" not in t for t in listed)


def test_admin_lists_tokens(admin):
    create(admin, user="erin")
    response = admin.get("/api/tokens")
    assert response.status_code == 200
    tokens = response.json()["tokens"]
    assert [t["user"] for t in tokens] == ["admin@example.com", "erin"]
    assert all(set(t) == TOKEN_KEYS for t in tokens)


def test_admin_gets_a_token_by_id(admin):
    token_id = create(admin).json()["token_details"]["id"]
    response = admin.get(f"/api/tokens/{token_id}")
    assert response.status_code == 200
    assert response.json()["token"]["id"] == token_id


@pytest.mark.parametrize("token_id", ["not-a-uuid", "0190d5a4-8b7e-7c3a-9f21-5d2e8c4b6a10"])
def test_get_of_an_unknown_token_is_404(admin, token_id):
    response = admin.get(f"/api/tokens/{token_id}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "id"


def test_bootstrap_role_cannot_be_assigned(admin):
    response = create(admin, roles=["user", "bootstrap"])
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == "roles"
    assert "bootstrap" in body["message"]
    assert not Token.objects.filter(user="dana").exists()


def test_unknown_role_is_400(admin):
    response = create(admin, roles=["user", "wizard"])
    assert response.status_code == 400
    assert response.json()["message"] == "roles: unknown role 'wizard'"
    assert response.json()["errors"][0]["field"] == "roles"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"roles": []}, "roles"),
        ({"roles": "user"}, "roles"),
        ({"roles": [1]}, "roles"),
        ({"user": ""}, "user"),
        ({"user": "   "}, "user"),
        ({"user": 7}, "user"),
        ({"user": "x" * 201}, "user"),
        ({"expires": -1}, "expires"),
        ({"expires": 1.5}, "expires"),
        ({"expires": "60"}, "expires"),
        ({"expires": True}, "expires"),
        ({"expires": 10 * 365 * 24 * 3600 + 1}, "expires"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": {"team": 1}}, "metadata.team"),
        ({"metadata": {f"k{n}": "v" for n in range(51)}}, "metadata"),
    ],
)
def test_invalid_token_fields_are_400_naming_the_field(admin, overrides, field):
    response = create(admin, **overrides)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert body["message"].startswith(f"{field}: ")


def test_a_token_with_expiry_has_expires_in_epoch_ms(admin):
    details = create(admin, expires=3600).json()["token_details"]
    assert abs(details["expires"] - details["created"] - 3_600_000) < 1000


def test_token_expiry_moves_with_time(admin, monkeypatch):
    secret = create(admin, expires=1).json()["secret"]
    dana = caller_for(secret)
    assert dana.get("/api/tokens/whoami").status_code == 200

    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + dt.timedelta(seconds=2))
    response = dana.get("/api/tokens/whoami")
    assert response.status_code == 401
    assert response.json()["message"] == "token expired"


def test_a_token_whose_expiry_has_passed_gets_401(admin):
    body = create(admin, expires=3600).json()
    Token.objects.filter(id=body["token_details"]["id"]).update(expires=timezone.now() - dt.timedelta(seconds=1))
    response = caller_for(body["secret"]).get("/api/namespaces")
    assert response.status_code == 401
    assert response.json() | {"request_id": ""} == {
        "error_code": "unauthenticated",
        "message": "token expired",
        "request_id": "",
        "errors": [{"field": "Authorization", "message": "token expired"}],
    }


def test_disable_then_enable_a_token(admin):
    body = create(admin).json()
    token_id = body["token_details"]["id"]
    dana = caller_for(body["secret"])

    assert admin.patch(f"/api/tokens/{token_id}", {"disabled": True}).status_code == 204
    assert admin.get(f"/api/tokens/{token_id}").json()["token"]["disabled"] is True
    refused = dana.get("/api/tokens/whoami")
    assert refused.status_code == 401
    assert refused.json()["message"] == "token is disabled"
    assert Event.objects.filter(kind="updated_token", details__token_id=token_id).count() == 1

    assert admin.patch(f"/api/tokens/{token_id}", {"disabled": False}).status_code == 204
    assert dana.get("/api/tokens/whoami").status_code == 200


def test_disabling_a_disabled_token_is_204_with_a_header_saying_nothing_changed(admin):
    token_id = create(admin).json()["token_details"]["id"]
    first = admin.patch(f"/api/tokens/{token_id}", {"disabled": True})
    assert (first.status_code, first.get("Gofer-Changed")) == (204, None)
    response = admin.patch(f"/api/tokens/{token_id}", {"disabled": True})
    assert response.status_code == 204
    assert response["Gofer-Changed"] == "false"
    assert response.content == b""
    assert Event.objects.filter(kind="updated_token", details__token_id=token_id).count() == 1


def test_patch_without_fields_is_204_with_a_header_saying_nothing_changed(admin):
    token_id = create(admin).json()["token_details"]["id"]
    response = admin.patch(f"/api/tokens/{token_id}", {})
    assert response.status_code == 204
    assert response["Gofer-Changed"] == "false"


def test_patch_with_a_non_boolean_is_400(admin):
    token_id = create(admin).json()["token_details"]["id"]
    response = admin.patch(f"/api/tokens/{token_id}", {"disabled": "yes"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "disabled"


def test_delete_a_token(admin):
    body = create(admin).json()
    token_id = body["token_details"]["id"]
    assert admin.delete(f"/api/tokens/{token_id}").status_code == 204
    assert admin.get(f"/api/tokens/{token_id}").status_code == 404
    response = caller_for(body["secret"]).get("/api/tokens/whoami")
    assert response.status_code == 401
    assert response.json()["message"] == "token not recognised"
    assert Event.objects.filter(kind="deleted_token", details__token_id=token_id).exists()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/tokens", None),
        ("post", "/api/tokens", {"user": "x", "roles": ["user"], "expires": 0}),
        ("get", "/api/tokens/{id}", None),
        ("patch", "/api/tokens/{id}", {"disabled": True}),
        ("delete", "/api/tokens/{id}", None),
    ],
)
def test_token_management_is_admin_only(admin, alice, user, method, path, body):
    path = path.format(id=user.token_id)
    for caller in (alice, user):
        args = (path, body) if body is not None else (path,)
        response = getattr(caller, method)(*args)
        assert response.status_code == 403, (caller.name, response.content)
        assert response.json()["message"] == "this route needs the admin role"
    assert Token.objects.get(id=user.token_id).disabled is False


def test_whoami_works_for_any_token(alice):
    response = alice.get("/api/tokens/whoami")
    assert response.status_code == 200
    assert response.json()["token"]["id"] == alice.token_id
    assert response.json()["token"]["roles"] == ["team-a-full"]


def test_whoami_needs_a_token(anonymous):
    response = anonymous.get("/api/tokens/whoami")
    assert response.status_code == 401
    assert "Authorization" in response.json()["message"]
