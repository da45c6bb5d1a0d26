"""POST /api/tokens/bootstrap: the root token, once."""

from __future__ import annotations

from access.models import SystemPreferences, Token
from events.models import Event
from tests.conftest import ApiCaller


def bootstrap(anonymous):
    return anonymous.post("/api/tokens/bootstrap")


def test_first_bootstrap_returns_a_token_with_the_bootstrap_role(anonymous):
    response = bootstrap(anonymous)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"secret", "token_details"}
    assert len(body["secret"]) == 40 and body["secret"].isalnum()
    details = body["token_details"]
    assert details["roles"] == ["bootstrap"]
    assert details["kind"] == "bootstrap"
    assert details["user"] == "bootstrap"
    assert details["expires"] == 0
    assert details["disabled"] is False


def test_bootstrap_token_is_an_admin(anonymous):
    secret = bootstrap(anonymous).json()["secret"]
    root = ApiCaller(anonymous.client, secret)
    assert root.post("/api/namespaces", {"id": "my-ns", "name": "Mine"}).status_code == 201
    assert root.get("/api/tokens").status_code == 200


def test_second_bootstrap_gets_409(anonymous):
    assert bootstrap(anonymous).status_code == 201
    response = bootstrap(anonymous)
    assert response.status_code == 409
    body = response.json()
    assert body["error_code"] == "conflict"
    assert "bootstrap" in body["message"]
    assert Token.objects.filter(kind="bootstrap").count() == 1


def test_bootstrap_token_created_flips(anonymous, admin):
    assert admin.get("/api/system").json()["bootstrap_token_created"] is False
    bootstrap(anonymous)
    assert admin.get("/api/system").json()["bootstrap_token_created"] is True
    assert SystemPreferences.load().bootstrap_token_created is True


def test_bootstrap_publishes_created_token_without_the_secret(anonymous):
    secret = bootstrap(anonymous).json()["secret"]
    event = Event.objects.filter(kind="created_token").latest("id")
    assert event.details["user"] == "bootstrap"
    assert secret not in str(event.details)


def test_bootstrap_needs_no_token_but_refuses_a_bad_one(anonymous):
    response = anonymous.post("/api/tokens/bootstrap", headers={"Authorization": "Bearer not-a-real-token"})
    assert response.status_code == 401
    assert SystemPreferences.load().bootstrap_token_created is False
