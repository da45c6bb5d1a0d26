"""The one error shape, and the errors every route shares: bodies, unknown fields, routes and methods."""

from __future__ import annotations

import pytest

ERROR_KEYS = {"error_code", "message", "request_id", "errors"}


def raw_post(caller, path, body, content_type="application/json", method="post"):
    return getattr(caller.client, method)(
        path, body, content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {caller.token}", HTTP_GOFER_API_VERSION="v0"
    )


def test_every_error_has_the_gofer_shape(admin):
    body = admin.post("/api/namespaces", {"id": "ab", "name": "x"}).json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == "validation_error"
    assert body["message"].startswith("id: ")
    assert body["errors"] == [{"field": "id", "message": body["message"]}]


def test_malformed_json_is_400_malformed_body(admin):
    response = raw_post(admin, "/api/namespaces", '{"id": "my-ns",')
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "malformed_body"
    assert body["message"].startswith("body: ")
    assert body["errors"][0]["field"] == "body"


@pytest.mark.parametrize("payload", ["[1, 2]", '"a string"', "42", "true"])
def test_a_body_that_is_not_an_object_is_400_naming_body(admin, payload):
    response = raw_post(admin, "/api/namespaces", payload)
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "validation_error"
    assert body["message"] == "body: must be a JSON object"
    assert body["errors"] == [{"field": "body", "message": "body: must be a JSON object"}]


def test_a_non_object_body_is_refused_by_patch_too(admin):
    response = raw_post(admin, "/api/namespaces/default", "[]", method="patch")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_a_non_json_content_type_is_415(admin):
    response = raw_post(admin, "/api/namespaces", "id=my-ns", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    body = response.json()
    assert body["error_code"] == "unsupported_media_type"
    assert body["errors"][0]["field"] == "Content-Type"


@pytest.mark.parametrize(
    ("path", "body", "unknown"),
    [
        ("/api/namespaces", {"id": "my-ns", "name": "x", "colour": "red"}, "colour"),
        ("/api/tokens", {"user": "x", "roles": ["user"], "expires": 0, "scopes": []}, "scopes"),
        ("/api/roles", {"id": "my-role", "description": "", "permissions": [], "priority": 1}, "priority"),
        ("/api/namespaces/team-a/pipelines/build/configs", {"config": {}, "deploy": True}, "deploy"),
        ("/api/namespaces/team-a/pipelines/build/runs", {"variables": {}, "priority": 1}, "priority"),
    ],
)
def test_unknown_body_fields_are_400_naming_the_field(admin, team_a_pipeline, path, body, unknown):
    response = admin.post(path, body)
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["message"] == f"{unknown}: unknown field"
    assert error["errors"] == [{"field": unknown, "message": f"{unknown}: unknown field"}]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/namespaces/default", {"label": "x"}),
        ("/api/tokens/00000000-0000-0000-0000-000000000000", {"enabled": True}),
        ("/api/system", {"maintenance": True}),
    ],
)
def test_unknown_fields_in_patch_are_400_naming_the_field(admin, path, body):
    response = admin.patch(path, body)
    assert response.status_code == 400
    field = next(iter(body))
    assert response.json()["errors"] == [{"field": field, "message": f"{field}: unknown field"}]


def test_unknown_api_route_is_a_json_404(admin):
    response = admin.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == "not_found"
    assert "/api/no-such-thing" in body["message"]


def test_a_trailing_slash_is_an_unknown_route_not_a_redirect(admin):
    response = admin.get("/api/namespaces/")
    assert response.status_code == 404
    assert response.json()["error_code"] == "not_found"


def test_unknown_route_is_404_for_anonymous_callers_too(anonymous):
    response = anonymous.get("/api/nothing/here")
    assert response.status_code == 404
    assert response.json()["error_code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"), [("put", "/api/namespaces"), ("post", "/api/events"), ("delete", "/api/system")]
)
def test_a_method_the_route_does_not_have_is_405(admin, method, path):
    response = getattr(admin.client, method)(path, HTTP_AUTHORIZATION=f"Bearer {admin.token}")
    assert response.status_code == 405
    body = response.json()
    assert body["error_code"] == "method_not_allowed"
    assert method.upper() in body["message"]


def test_an_empty_body_counts_as_an_empty_object(admin):
    response = admin.client.post(
        "/api/namespaces", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {admin.token}"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id"


def test_deeply_nested_json_is_400_malformed_body(admin):
    for payload in ("[" * 100_000 + "]" * 100_000, '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        response = raw_post(admin, "/api/namespaces", payload)
        assert response.status_code == 400
        assert response.json()["error_code"] == "malformed_body"
        assert response.json()["message"] == "body: JSON is nested too deeply"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/namespaces", {"id": "my-ns", "name": "a\u0000b"}, "name"),
        ("/api/tokens", {"user": "x", "roles": ["user"], "expires": 0, "metadata": {"k": "\u0000"}}, "metadata.k"),
        ("/api/tokens", {"user": "x", "roles": ["user"], "expires": 0, "metadata": {"k\u0000": "v"}}, "metadata"),
        (
            "/api/roles",
            {"id": "my-role", "description": "", "permissions": [{"resources": ["runs\u0000"]}]},
            "permissions[0].resources[0]",
        ),
        ("/api/namespaces/team-a/pipelines/build/runs", {"variables": {"A": "x\u0000"}}, "variables.A"),
        (
            "/api/namespaces/team-a/pipelines/build/configs",
            {"config": {"id": "build", "name": "x", "tasks": [{"id": "a", "image": "busybox\u0000"}]}},
            "config.tasks[0].image",
        ),
    ],
)
def test_nul_characters_in_the_body_are_400_naming_the_field(admin, team_a_pipeline, path, body, field):
    """PostgreSQL cannot store NUL; without this check these were 500s there (and stored on SQLite)."""
    response = admin.post(path, body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"field": field, "message": f"{field}: must not contain NUL characters"}]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/namespaces/te%00am", "namespace_id"),
        ("/api/namespaces/team-a/pipelines/bu%00ild/runs", "pipeline_id"),
        ("/api/namespaces/team-a/pipelines/build/runs/1/tasks/a%00b", "task_id"),
        ("/api/roles/x%00y", "role_id"),
        ("/api/tokens/x%00y", "id"),
        ("/api/events/1%00", "event_id"),
    ],
)
def test_nul_characters_in_the_path_are_400_naming_the_parameter(admin, team_a_pipeline, path, field):
    response = admin.get(path)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_nul_in_the_path_does_not_hide_a_missing_token(anonymous, db):
    assert anonymous.get("/api/roles/x%00y").status_code == 401


def test_a_body_over_the_size_limit_is_413(admin, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = raw_post(admin, "/api/namespaces", '{"id": "my-ns", "name": "' + "x" * 5000 + '"}')
    assert response.status_code == 413
    assert response.json()["error_code"] == "body_too_large"
    assert response.json()["errors"][0]["field"] == "body"
