"""Global secrets through the API: admin-only, namespace regexes validated, Gofer's shapes."""

from __future__ import annotations

import pytest

from secretstore.models import GlobalSecret
from tests.support.secrets import GLOBAL

VALUE = "global-Vvalue-8812"


def put(caller, key="slack_token", content=VALUE, namespaces=("^prod$",), **extra):
    body = {"key": key, "content": content, "namespaces": list(namespaces) if namespaces is not None else None}
    return caller.post(GLOBAL, {**body, **extra})


def test_admin_puts_lists_gets_and_deletes(admin):
    response = put(admin)
    assert response.status_code == 201, response.content
    assert response.json() == {
        "secret": {"key": "slack_token", "namespaces": ["^prod$"], "created": response.json()["secret"]["created"]}
    }
    listed = admin.get(GLOBAL).json()["secrets"]
    assert [(s["key"], s["namespaces"]) for s in listed] == [("slack_token", ["^prod$"])]
    assert VALUE not in admin.get(GLOBAL).content.decode()

    metadata = admin.get(f"{GLOBAL}/slack_token")
    assert metadata.status_code == 200
    assert "secret" not in metadata.json()
    assert metadata.json()["metadata"]["key"] == "slack_token"

    revealed = admin.get(f"{GLOBAL}/slack_token", include_secret="true")
    assert revealed.json()["secret"] == VALUE

    assert admin.delete(f"{GLOBAL}/slack_token").status_code == 204
    assert admin.get(f"{GLOBAL}/slack_token").status_code == 404
    assert not GlobalSecret.objects.exists()


def test_second_put_without_force_is_409_and_force_replaces_value_and_namespaces(admin):
    put(admin)
    conflict = put(admin, content="other", namespaces=[".*"])
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["field"] == "key"
    forced = put(admin, content="other", namespaces=[".*"], force=True)
    assert forced.status_code == 201
    assert forced.json()["secret"]["namespaces"] == [".*"]
    assert admin.get(f"{GLOBAL}/slack_token", include_secret="true").json()["secret"] == "other"


@pytest.mark.parametrize("caller_name", ["alice", "bob", "charlie", "user"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", GLOBAL), ("post", GLOBAL), ("get", f"{GLOBAL}/slack_token"), ("delete", f"{GLOBAL}/slack_token")],
)
def test_non_admins_get_403_on_every_global_route(request, admin, caller_name, method, path):
    put(admin)
    caller = request.getfixturevalue(caller_name)
    if method == "post":
        response = put(caller, "other")
    elif method == "get":
        response = caller.get(path, include_secret="true")
    else:
        response = caller.delete(path)
    assert response.status_code == 403, (caller_name, method, path)
    assert response.json()["error_code"] == "permission_denied"
    assert VALUE not in response.content.decode()
    assert GlobalSecret.objects.count() == 1


@pytest.mark.parametrize(("method", "path"), [("get", GLOBAL), ("post", GLOBAL), ("delete", f"{GLOBAL}/k")])
def test_anonymous_gets_401_on_global_routes(anonymous, method, path):
    assert getattr(anonymous, method)(path).status_code == 401


def test_an_invalid_regex_is_refused_naming_its_index(admin):
    response = put(admin, namespaces=["^ok$", "(unclosed", "also["])
    assert response.status_code == 400
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["namespaces[1]", "namespaces[2]"]
    assert "namespaces[1]" in response.json()["message"]
    assert not GlobalSecret.objects.exists()


@pytest.mark.parametrize(
    ("namespaces", "field"),
    [
        (None, "namespaces"),
        ("^prod$", "namespaces"),
        ([], "namespaces"),
        ([""], "namespaces[0]"),
        (["ok", 3], "namespaces[1]"),
        (["x" * 257], "namespaces[0]"),
    ],
)
def test_namespaces_must_be_a_non_empty_list_of_regexes(admin, namespaces, field):
    response = admin.post(GLOBAL, {"key": "k_1", "content": VALUE, "namespaces": namespaces})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_missing_namespaces_is_refused(admin):
    response = admin.post(GLOBAL, {"key": "k_1", "content": VALUE})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "namespaces"


def test_global_keys_follow_the_key_rule(admin):
    response = put(admin, key="../escape")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "key"


def test_global_content_size_is_limited(admin, settings):
    settings.GOFER_SECRET_MAX_BYTES = 10
    response = put(admin, content="x" * 11)
    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "content"


def test_unknown_fields_are_refused(admin):
    response = put(admin, pipeline="build")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "pipeline"


def test_global_list_is_paginated(admin):
    for index in range(3):
        put(admin, f"g{index}")
    assert [s["key"] for s in admin.get(GLOBAL, limit="2").json()["secrets"]] == ["g0", "g1"]
    assert [s["key"] for s in admin.get(GLOBAL, offset="2").json()["secrets"]] == ["g2"]


def test_delete_of_a_missing_global_secret_is_404(admin):
    response = admin.delete(f"{GLOBAL}/nope")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "key"


def test_duplicate_regexes_are_stored_once(admin):
    response = put(admin, namespaces=["^a$", "^a$", "^b$"])
    assert response.json()["secret"]["namespaces"] == ["^a$", "^b$"]
