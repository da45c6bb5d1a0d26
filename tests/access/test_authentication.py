"""The Authorization header: missing, malformed, unknown, and what each caller is told."""

from __future__ import annotations

import pytest

from access.models import Token


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "abc"])
def test_malformed_authorization_header_is_401_naming_the_header(db, anonymous, header):
    response = anonymous.get("/api/namespaces", headers={"Authorization": header})
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "unauthenticated"
    assert body["message"] == "malformed Authorization header: expected 'Bearer <token>'"
    assert body["errors"][0]["field"] == "Authorization"


def test_the_bearer_scheme_is_case_insensitive(admin):
    response = admin.client.get("/api/namespaces", HTTP_AUTHORIZATION=f"bearer {admin.token}")
    assert response.status_code == 200


def test_an_unknown_token_is_401(db, anonymous):
    response = anonymous.get("/api/namespaces", headers={"Authorization": "Bearer " + "x" * 40})
    assert response.status_code == 401
    assert response.json()["message"] == "token not recognised"
    assert response.json()["errors"] == [{"field": "Authorization", "message": "token not recognised"}]


def test_missing_token_on_a_private_route_is_401_saying_how_to_send_one(db, anonymous):
    response = anonymous.get("/api/namespaces")
    assert response.status_code == 401
    body = response.json()
    assert "Authorization: Bearer <token>" in body["message"]
    assert body["errors"][0]["field"] == "Authorization"


def test_an_invalid_token_is_refused_even_where_anonymous_is_allowed(db, anonymous):
    response = anonymous.get("/api/namespaces/default/pipelines", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_a_disabled_token_is_refused_where_anonymous_is_allowed(user):
    Token.objects.filter(id=user.token_id).update(disabled=True)
    response = user.get("/api/namespaces/default/pipelines")
    assert response.status_code == 401
    assert response.json()["message"] == "token is disabled"


def test_using_a_token_records_last_used(admin):
    assert Token.objects.get(id=admin.token_id).last_used is None
    admin.get("/api/namespaces")
    assert Token.objects.get(id=admin.token_id).last_used is not None
