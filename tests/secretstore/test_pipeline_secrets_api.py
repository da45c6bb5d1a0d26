"""Pipeline secrets through the API, with the database backend: shapes, conflicts, permissions, validation."""

from __future__ import annotations

import logging

import pytest

from secretstore.models import PipelineSecret
from tests.conftest import deployed_pipeline
from tests.support.secrets import SECRETS

VALUE = "s3cr3t-value-Zq9"


@pytest.fixture
def pipeline(team_a_pipeline):
    return team_a_pipeline


def put(caller, key="db_password", content=VALUE, **extra):
    return caller.post(SECRETS, {"key": key, "content": content, **extra})


def test_put_returns_201_with_gofers_secret_shape(alice, pipeline):
    response = put(alice)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"secret"}
    assert set(body["secret"]) == {"key", "namespaces", "created"}
    assert body["secret"]["key"] == "db_password"
    assert body["secret"]["namespaces"] == ["team-a"]
    assert isinstance(body["secret"]["created"], int) and body["secret"]["created"] > 0
    assert VALUE not in response.content.decode()


def test_list_shows_keys_and_metadata_never_values(alice, pipeline):
    put(alice, "b_key")
    put(alice, "a_key")
    response = alice.get(SECRETS)
    assert response.status_code == 200
    secrets = response.json()["secrets"]
    assert [s["key"] for s in secrets] == ["a_key", "b_key"]
    assert all(set(s) == {"key", "namespaces", "created"} for s in secrets)
    assert VALUE not in response.content.decode()


def test_read_only_member_may_list_keys(alice, bob, pipeline):
    put(alice)
    response = bob.get(SECRETS)
    assert response.status_code == 200
    assert [s["key"] for s in response.json()["secrets"]] == ["db_password"]


def test_list_is_paginated(alice, pipeline):
    for index in range(5):
        put(alice, f"key{index}")
    first = alice.get(SECRETS, limit="2").json()["secrets"]
    rest = alice.get(SECRETS, limit="2", offset="2").json()["secrets"]
    backwards = alice.get(SECRETS, reverse="true", limit="1").json()["secrets"]
    assert [s["key"] for s in first] == ["key0", "key1"]
    assert [s["key"] for s in rest] == ["key2", "key3"]
    assert [s["key"] for s in backwards] == ["key4"]


def test_bad_pagination_parameter_names_the_field(alice, pipeline):
    response = alice.get(SECRETS, limit="lots")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "limit"


def test_get_without_include_secret_has_no_secret_field(alice, pipeline):
    put(alice)
    response = alice.get(f"{SECRETS}/db_password")
    assert response.status_code == 200
    assert response.json() == {"metadata": response.json()["metadata"]}
    assert response.json()["metadata"]["key"] == "db_password"
    assert response.json()["metadata"]["namespaces"] == ["team-a"]
    assert VALUE not in response.content.decode()


def test_get_with_include_secret_returns_the_plaintext_to_a_writer(alice, pipeline):
    put(alice)
    response = alice.get(f"{SECRETS}/db_password", include_secret="true")
    assert response.status_code == 200
    assert response.json()["secret"] == VALUE
    assert response.json()["metadata"]["key"] == "db_password"


def test_include_secret_false_is_metadata_only(alice, pipeline):
    put(alice)
    response = alice.get(f"{SECRETS}/db_password", include_secret="false")
    assert response.status_code == 200
    assert "secret" not in response.json()


def test_read_only_member_may_read_metadata_but_never_the_value(alice, bob, pipeline):
    put(alice)
    assert bob.get(f"{SECRETS}/db_password").status_code == 200
    response = bob.get(f"{SECRETS}/db_password", include_secret="true")
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "include_secret"
    assert VALUE not in response.content.decode()


def test_read_only_member_gets_403_for_a_value_even_when_the_key_does_not_exist(bob, pipeline):
    response = bob.get(f"{SECRETS}/nothing_here", include_secret="true")
    assert response.status_code == 403


def test_include_secret_must_be_a_boolean(alice, pipeline):
    put(alice)
    response = alice.get(f"{SECRETS}/db_password", include_secret="please")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "include_secret"


def test_second_put_without_force_is_a_409_that_keeps_the_first_value(alice, pipeline):
    put(alice)
    response = put(alice, content="another-value")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "key"
    assert alice.get(f"{SECRETS}/db_password", include_secret="true").json()["secret"] == VALUE


def test_put_with_force_overwrites(alice, pipeline):
    put(alice)
    created = PipelineSecret.objects.get(key="db_password").created
    response = put(alice, content="another-value", force=True)
    assert response.status_code == 201
    assert alice.get(f"{SECRETS}/db_password", include_secret="true").json()["secret"] == "another-value"
    row = PipelineSecret.objects.get(key="db_password")
    assert row.created == created
    assert row.modified > created


def test_delete_removes_the_secret(alice, pipeline):
    put(alice)
    assert alice.delete(f"{SECRETS}/db_password").status_code == 204
    assert alice.get(f"{SECRETS}/db_password").status_code == 404
    assert not PipelineSecret.objects.exists()


def test_delete_of_a_missing_key_is_404_naming_key(alice, pipeline):
    response = alice.delete(f"{SECRETS}/missing")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "key"


def test_get_of_a_missing_key_is_404_naming_key(alice, pipeline):
    response = alice.get(f"{SECRETS}/missing", include_secret="true")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "key"


def test_read_only_member_cannot_put_or_delete(alice, bob, pipeline):
    put(alice)
    assert put(bob, "other").status_code == 403
    assert bob.delete(f"{SECRETS}/db_password").status_code == 403
    assert PipelineSecret.objects.filter(key="db_password").exists()
    assert not PipelineSecret.objects.filter(key="other").exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", SECRETS),
        ("post", SECRETS),
        ("get", f"{SECRETS}/db_password"),
        ("delete", f"{SECRETS}/db_password"),
    ],
)
def test_outsider_gets_404_on_another_tenants_pipeline(alice, charlie, pipeline, method, path):
    put(alice)
    if method == "post":
        response = charlie.post(path, {"key": "x_key", "content": VALUE})
    elif method == "get":
        response = charlie.get(path, include_secret="true")
    else:
        response = charlie.delete(path)
    assert response.status_code == 404
    assert PipelineSecret.objects.count() == 1


def test_outsider_cannot_read_by_naming_the_key_in_its_own_pipeline(alice, charlie, pipeline):
    put(alice)
    deployed_pipeline("team-b")
    response = charlie.get("/api/namespaces/team-b/pipelines/build/secrets/db_password", include_secret="true")
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_anonymous_gets_401(anonymous, pipeline, method):
    path = SECRETS if method != "delete" else f"{SECRETS}/db_password"
    response = getattr(anonymous, method)(path)
    assert response.status_code == 401


def test_secrets_of_another_pipeline_are_not_listed(alice, pipeline):
    deployed_pipeline("team-a", "deploy")
    put(alice, "build_only")
    response = alice.get("/api/namespaces/team-a/pipelines/deploy/secrets")
    assert response.json()["secrets"] == []
    assert alice.get("/api/namespaces/team-a/pipelines/deploy/secrets/build_only").status_code == 404


@pytest.mark.parametrize(
    "key",
    ["", "a" * 129, "has space", "slash/inside", ".", "..", ".hidden", "-dash", "ünïcode", "semi;colon"],
)
def test_invalid_keys_are_refused_naming_key(alice, pipeline, key):
    response = put(alice, key)
    assert response.status_code == 400, key
    assert response.json()["errors"][0]["field"] == "key"
    assert "key" in response.json()["message"]


@pytest.mark.parametrize("key", ["a", "A_1", "gofer_api_token_run_id_12", "my.key-v2", "_private", "9lives", "k" * 128])
def test_valid_keys_are_accepted(alice, pipeline, key):
    assert put(alice, key).status_code == 201


def test_a_key_that_is_not_a_string_is_refused(alice, pipeline):
    response = put(alice, 42)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "key"


@pytest.mark.parametrize("content", [None, 12, "", ["list"]])
def test_content_must_be_a_non_empty_string(alice, pipeline, content):
    response = put(alice, content=content)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "content"


def test_content_above_the_limit_is_413_naming_content(alice, pipeline, settings):
    settings.GOFER_SECRET_MAX_BYTES = 16
    response = put(alice, content="é" * 9)  # 18 bytes in UTF-8, 9 characters
    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "content"
    assert put(alice, content="é" * 8).status_code == 201


def test_force_must_be_a_boolean(alice, pipeline):
    response = put(alice, force="yes")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "force"


def test_unknown_fields_are_refused_by_name(alice, pipeline):
    response = put(alice, namespaces=[".*"])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "namespaces"


def test_body_must_be_an_object(alice, pipeline):
    response = alice.post(SECRETS, ["key", "content"])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_values_never_reach_the_logs(alice, pipeline, caplog):
    caplog.set_level(logging.DEBUG)
    put(alice)
    put(alice, content=VALUE, force=True)
    alice.get(f"{SECRETS}/db_password", include_secret="true")
    alice.delete(f"{SECRETS}/db_password")
    assert "db_password" in caplog.text
    assert VALUE not in caplog.text


def test_user_role_manages_secrets_in_default_only(user):
    deployed_pipeline("default", "tools")
    path = "/api/namespaces/default/pipelines/tools/secrets"
    assert user.post(path, {"key": "k_default", "content": VALUE}).status_code == 201
    assert user.get(f"{path}/k_default", include_secret="true").json()["secret"] == VALUE


def test_deleting_the_pipeline_deletes_its_secrets(alice, pipeline):
    put(alice)
    assert alice.delete("/api/namespaces/team-a/pipelines/build").status_code == 204
    assert not PipelineSecret.objects.exists()
