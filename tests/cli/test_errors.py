"""Errors: the API's code and message, a hint where one helps, and a distinct exit code per kind of failure."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Gofer
from tests.conftest import deployed_pipeline, make_caller, simple_config
from tests.support.processes import free_port

pytestmark = [pytest.mark.slow]


def test_a_missing_or_unknown_token_is_exit_4_with_how_to_set_one(anonymous_gofer: Gofer):
    missing = anonymous_gofer("token", "list", expect=4)
    assert "unauthenticated: missing token" in missing.stderr
    assert "no token is set" in missing.stderr and "GOFER_TOKEN" in missing.stderr
    assert "gofer token bootstrap" in missing.stderr
    unknown = anonymous_gofer("--token", "not-a-real-token", "namespace", "list", expect=4)
    assert "token not recognised" in unknown.stderr and "from flag --token" in unknown.stderr


def test_a_forbidden_action_is_exit_4_naming_the_missing_permission(gofer: Gofer):
    secret = make_caller("user@example.com", ["user"]).token
    denied = Gofer(gofer.url, gofer.home, secret)("namespace", "create", "team-z", "Z", expect=4)
    assert "permission_denied" in denied.stderr and "gofer token whoami" in denied.stderr


def test_not_found_is_exit_3_and_the_hint_names_the_missing_parent(gofer: Gofer):
    namespace = gofer("--namespace", "nope", "pipeline", "list", expect=3)
    assert "not_found: namespace nope not found" in namespace.stderr
    assert "namespace 'nope' (from flag --namespace)" in namespace.stderr
    from_env = gofer("pipeline", "list", env={"GOFER_NAMESPACE": "nope"}, expect=3)
    assert "(from env GOFER_NAMESPACE)" in from_env.stderr
    pipeline = gofer("run", "list", "nope", expect=3)
    assert "pipeline nope not found" in pipeline.stderr and "gofer pipeline list" in pipeline.stderr
    deployed_pipeline("default", "build", simple_config("build"))
    run = gofer("run", "get", "build", "7", expect=3)
    assert "run 7 not found" in run.stderr or "run" in run.stderr


def test_conflict_is_exit_5_and_suggests_force_where_the_command_has_it(gofer: Gofer):
    deployed_pipeline("default", "build", simple_config("build"))
    gofer("pipeline", "secret", "put", "build", "k", "v1")
    conflict = gofer("pipeline", "secret", "put", "build", "k", "v2", expect=5)
    assert "conflict" in conflict.stderr and "add --force" in conflict.stderr
    exists = gofer("namespace", "create", "default", "Default", expect=5)
    assert "already exists" in exists.stderr and "--force" not in exists.stderr


def test_an_unreachable_server_is_exit_6_and_names_the_url_tried(gofer: Gofer):
    url = f"http://127.0.0.1:{free_port()}"
    result = gofer("namespace", "list", env={"GOFER_API_BASE_URL": url}, expect=6)
    assert f"could not reach the Gofer API at {url}/api/namespaces" in result.stderr
    assert "from env GOFER_API_BASE_URL" in result.stderr


def test_usage_errors_are_exit_2(gofer: Gofer):
    assert gofer("pipeline", "frobnicate", expect=2).code == 2
    assert "expected KEY=VALUE" in gofer("pipeline", "run", "build", "-v", "novalue", expect=2).stderr
    assert gofer("run", "get", "build", "not-a-number", expect=2).code == 2
    invalid = gofer("namespace", "create", "no_underscores", "X", expect=2)
    assert "validation_error" in invalid.stderr and "id" in invalid.stderr


def test_with_json_output_an_error_is_one_json_line_on_stderr_and_stdout_stays_empty(gofer: Gofer):
    result = gofer("pipeline", "get", "nope", "-o", "json", expect=3)
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert error["error_code"] == "not_found" and error["status"] == 404 and error["exit_code"] == 3
    assert error["message"] == "pipeline nope not found" and error["request_id"]
    assert error["errors"] == [{"field": "pipeline_id", "message": "pipeline nope not found"}]
