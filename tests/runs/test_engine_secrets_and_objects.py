"""Secrets, objects and run tokens reach task containers; secrets never reach the logs (on every engine, except
the hand-off through the API, which needs a container that can reach a real server).

Values are compared inside the containers, never printed, except in the masking tests, whose point is a task that
prints a secret. On Docker they are compared through their SHA-256, so the expected value is not in the task's
command either; the memory engine has no pipes or command substitution, and compares them with ``test``.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.db import connection

from access import services as access
from access.models import Token
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from runs import logs
from runs import services as runs
from runs.models import Run
from secretstore import services as secrets
from tests.conftest import deployed_pipeline
from tests.support.engine import log_text, pipeline_with, run_to_completion, sh, tasks_of
from tests.support.processes import Server


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same_as(engine, variable: str, expected: str) -> str:
    """Shell that succeeds only when $variable holds ``expected``, without printing either."""
    if engine.kind == "memory":
        assert "'" not in expected
        return f"test \"${variable}\" = '{expected}'"
    return f'test "$(printf %s "${variable}" | sha256sum | cut -d" " -f1)" = {sha(expected)}'


def test_a_task_receives_its_pipeline_secret_a_global_secret_and_a_pipeline_object(engine):
    pipeline = pipeline_with([sh("check", engine.image, "true")], pipeline_id="with-secrets")
    secrets.put_pipeline_secret(pipeline, "db_pass", "s3cr3t-db-password")
    secrets.put_global_secret("shared_key", "gl0bal-shared-value", ["^team-a$"])
    objects.put_pipeline_object(pipeline, "settings", [b"object-content"])
    script = " && ".join(
        [
            same_as(engine, "DB", "s3cr3t-db-password"),
            same_as(engine, "SHARED", "gl0bal-shared-value"),
            same_as(engine, "CONF", "object-content"),
        ]
    )
    pipeline = pipeline_with(
        [
            sh(
                "check",
                engine.image,
                script,
                variables={
                    "DB": "pipeline_secret{{db_pass}}",
                    "SHARED": "global_secret{{ shared_key }}",
                    "CONF": "pipeline_object{{settings}}",
                },
            )
        ],
        pipeline_id="with-secrets",
    )
    run = run_to_completion(engine, pipeline)
    te = tasks_of(run)["check"]
    assert te.status == "successful", te.status_description
    # What is stored and returned is the reference, never the value.
    stored = {v["key"]: v["value"] for v in te.variables}
    assert stored["DB"] == "pipeline_secret{{db_pass}}"
    assert "s3cr3t-db-password" not in str(te.variables)


def test_a_global_secret_not_allowed_for_the_namespace_fails_the_task_before_it_starts(engine):
    secrets.put_global_secret("prod_only", "production-value", ["^prod$"])
    pipeline = pipeline_with(
        [
            sh("deploy", engine.image, "true", variables={"TOKEN": "global_secret{{prod_only}}"}),
            sh("after", engine.image, "true", depends_on={"deploy": "Success"}),
        ],
        pipeline_id="not-prod",
    )
    run = run_to_completion(engine, pipeline)
    te = tasks_of(run)["deploy"]
    assert (te.status, te.status_reason) == ("failed", "failed_precondition")
    assert "prod_only" in te.status_description and "TOKEN" in te.status_description
    assert "production-value" not in te.status_description
    assert te.container_id == ""
    assert tasks_of(run)["after"].status == "skipped"
    assert (run.status, run.status_reason) == ("failed", "failed_precondition")


def test_a_missing_secret_or_object_fails_the_task_naming_the_key(engine):
    pipeline = pipeline_with(
        [
            sh("a", engine.image, "true", variables={"X": "pipeline_secret{{nope}}"}),
            sh("b", engine.image, "true", variables={"Y": "pipeline_object{{absent}}"}),
        ],
        pipeline_id="missing",
    )
    run = run_to_completion(engine, pipeline)
    tes = tasks_of(run)
    assert tes["a"].status_reason == "failed_precondition" and "nope" in tes["a"].status_description
    assert tes["b"].status_reason == "failed_precondition" and "absent" in tes["b"].status_description


def test_another_pipelines_secret_is_not_reachable(engine):
    other = pipeline_with([sh("x", engine.image, "true")], pipeline_id="other")
    secrets.put_pipeline_secret(other, "theirs", "belongs-to-other")
    pipeline = pipeline_with(
        [sh("steal", engine.image, "true", variables={"S": "pipeline_secret{{theirs}}"})], pipeline_id="thief"
    )
    te = tasks_of(run_to_completion(engine, pipeline))["steal"]
    assert te.status_reason == "failed_precondition"


def test_a_secret_printed_by_a_task_is_masked_in_the_stored_and_streamed_logs(engine, alice, monkeypatch):
    minted: list[str] = []
    mint = access.mint_run_token

    def recording_mint(run):
        secret, token = mint(run)
        minted.append(secret)  # the run token is revoked, and its secret erased, when the run completes
        return secret, token

    monkeypatch.setattr(access, "mint_run_token", recording_mint)
    value = "first-secret-line\nsecond-secret-line"
    pipeline = pipeline_with([sh("leak", engine.image, "true")], pipeline_id="leaky")
    secrets.put_pipeline_secret(pipeline, "multi", value)
    secrets.put_pipeline_secret(pipeline, "short", "ab")  # below the masking minimum: must not blank "ab" elsewhere
    encoded = base64.b64encode(value.encode()).decode()
    # What `printf %s "$MULTI" | base64` prints; a plain variable, since the memory engine has neither pipes nor
    # base64.
    script = 'echo "value: $MULTI"; echo "$ENCODED"; echo "token: $GOFER_TOKEN"; echo "label ab stays"; echo "done"'
    pipeline = pipeline_with(
        [
            sh(
                "leak",
                engine.image,
                script,
                variables={
                    "MULTI": "pipeline_secret{{multi}}",
                    "SHORT": "pipeline_secret{{short}}",
                    "ENCODED": encoded,
                },
                inject_api_token=True,
            )
        ],
        pipeline_id="leaky",
    )
    run = run_to_completion(engine, pipeline)
    te = tasks_of(run)["leak"]
    assert te.status == "successful"
    raw = logs.path_for(te).read_text()
    assert "first-secret-line" not in raw and "second-secret-line" not in raw
    assert encoded[:20] not in raw
    assert len(minted) == 1 and minted[0] not in raw
    lines = log_text(te)
    assert lines[0] == "value: ********"
    assert lines[1] == "********"
    assert "label ab stays" in lines and lines[-1] == "done"
    streamed = alice.get(f"/api/namespaces/team-a/pipelines/leaky/runs/{run.number}/tasks/leak/logs")
    body = b"".join(streamed.streaming_content).decode()
    assert "second-secret-line" not in body and "value: ********" in body


@pytest.mark.docker
def test_an_upstream_task_hands_a_run_object_to_a_downstream_task_through_the_api(docker_engine, settings, alice):
    """The upstream task calls Gofer's API with its injected run token (host network, loopback only)."""
    server = Server()
    try:
        settings.GOFER_DOCKER_NETWORK_MODE = "host"
        settings.GOFER_API_BASE_URL = server.url
        deployed_pipeline("team-a", "elsewhere")  # another pipeline, which the run token must not reach
        put = (
            'wget -q -O /dev/null --header "Authorization: Bearer $GOFER_TOKEN" --post-data "handoff-value" '
            '"$GOFER_API_BASE_URL/api/namespaces/$GOFER_NAMESPACE_ID/pipelines/$GOFER_PIPELINE_ID/runs/'
            '$GOFER_RUN_ID/objects/artifact"'
        )
        elsewhere = (
            'if wget -q -O /dev/null --header "Authorization: Bearer $GOFER_TOKEN" '
            '"$GOFER_API_BASE_URL/api/namespaces/team-a/pipelines/elsewhere/runs"; then exit 1; fi'
        )
        pipeline = pipeline_with(
            [
                sh("produce", docker_engine.image, f"{put} && {elsewhere}", inject_api_token=True),
                sh(
                    "consume",
                    docker_engine.image,
                    same_as(docker_engine, "ART", "handoff-value"),
                    depends_on={"produce": "Success"},
                    variables={"ART": "run_object{{artifact}}"},
                ),
            ],
            pipeline_id="handoff",
        )
        run = run_to_completion(docker_engine, pipeline)
        tes = tasks_of(run)
        assert tes["produce"].status == "successful", (tes["produce"].status_description, server.output()[-2000:])
        assert tes["consume"].status == "successful", tes["consume"].status_description
        assert objects.read_run_object(run, "artifact", 100) == b"handoff-value"
        # The token worked for the run and went with it (issue 8: revoked when its run completes).
        assert run.token_id is None and not Token.objects.filter(kind="run").exists()
    finally:
        server.stop()


def test_the_run_token_is_encrypted_at_rest_and_revoked_when_its_run_completes(engine, settings):
    settings.GOFER_CONTINUE_IN_WORKER = False  # it waits for a state a continued run passes within one step
    pipeline = pipeline_with([sh("t", engine.image, "sleep 1", inject_api_token=True)], pipeline_id="tokens")
    first = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    engine.drain(until=lambda: Run.objects.get(pk=first.pk).token_secret is not None)
    first = Run.objects.get(pk=first.pk)
    first_token = first.token_id
    assert first_token is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_secret FROM runs_run WHERE id = %s", [first.pk])
        (raw,) = cursor.fetchone()
    assert raw.startswith("gofer:v1:") and first.token_secret not in raw
    engine.drain(until=lambda: Run.objects.get(pk=first.pk).state == "complete")
    first = Run.objects.get(pk=first.pk)
    assert first.token_id is None and first.token_secret is None
    assert not Token.objects.filter(pk=first_token).exists()


def test_run_variables_can_reference_secrets_too(engine):
    pipeline = pipeline_with([sh("check", engine.image, "true")], pipeline_id="run-vars")
    secrets.put_pipeline_secret(pipeline, "deploy_key", "run-level-secret")
    script = same_as(engine, "KEY", "run-level-secret")
    pipeline = pipeline_with([sh("check", engine.image, script)], pipeline_id="run-vars")
    run = run_to_completion(engine, pipeline, {"KEY": "pipeline_secret{{deploy_key}}"})
    assert tasks_of(run)["check"].status == "successful"


def test_settings_without_a_run_resolve_secrets_and_objects_but_refuse_run_objects(namespaces):
    from runs import interpolation

    pipeline = deployed_pipeline("team-a", "settings")
    secrets.put_pipeline_secret(pipeline, "webhook", "hook-secret")
    objects.put_pipeline_object(pipeline, "repo", [b"owner/name"])
    resolved = interpolation.resolve_settings(
        {"secret": "pipeline_secret{{webhook}}", "repository": "pipeline_object{{repo}}", "every": "5m"},
        pipeline=pipeline,
    )
    assert resolved.env == {"secret": "hook-secret", "repository": "owner/name", "every": "5m"}
    assert resolved.secret_values == ["hook-secret"]
    with pytest.raises(interpolation.InterpolationError, match="run_object.*needs a run"):
        interpolation.resolve_settings({"x": "run_object{{artifact}}"}, pipeline=pipeline)


def test_an_object_too_large_for_an_environment_variable_fails_the_task_naming_it(engine):
    pipeline = pipeline_with([sh("big", engine.image, "true")], pipeline_id="big-object")
    objects.put_pipeline_object(pipeline, "huge", [b"x" * (200 * 1024)])
    pipeline = pipeline_with(
        [sh("big", engine.image, "true", variables={"HUGE": "pipeline_object{{huge}}"})], pipeline_id="big-object"
    )
    te = tasks_of(run_to_completion(engine, pipeline))["big"]
    assert te.status_reason == "failed_precondition"
    assert "huge" in te.status_description
