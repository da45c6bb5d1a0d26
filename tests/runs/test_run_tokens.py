"""A run token lives as long as its run (issue 8, finding 2): GOFER_TOKEN works in every task of the run, and the
token stops working (401) once the run completes. Its expiry is never later than the global run timeout."""

from __future__ import annotations

import datetime as dt

from rest_framework.test import APIClient

from access.models import Token
from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from runs.models import Run
from tests.conftest import ApiCaller
from tests.support.engine import pipeline_with, run_to_completion, sh, tasks_of


def test_a_run_token_works_for_the_whole_run_and_gets_401_after_completion(engine, settings):
    settings.GOFER_CONTINUE_IN_WORKER = False  # it waits for a state a continued run passes within one step
    pipeline = pipeline_with(
        [
            sh("first", engine.image, 'test -n "$GOFER_TOKEN"', inject_api_token=True),
            sh(
                "second", engine.image, 'test -n "$GOFER_TOKEN"', inject_api_token=True, depends_on={"first": "Success"}
            ),
        ],
        pipeline_id="tokens",
    )
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).token_secret is not None)
    secret = Run.objects.get(pk=run.pk).token_secret
    caller = ApiCaller(APIClient(), secret)
    assert caller.get(f"/api/namespaces/team-a/pipelines/tokens/runs/{run.number}").status_code == 200
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete")
    run = Run.objects.get(pk=run.pk)
    assert {te.status for te in tasks_of(run).values()} == {"successful"}  # the later task had its token too
    response = caller.get(f"/api/namespaces/team-a/pipelines/tokens/runs/{run.number}")
    assert response.status_code == 401, response.json()
    assert run.token_id is None and run.token_secret is None
    assert not Token.objects.filter(kind="run").exists()


def test_a_failed_run_revokes_its_token_too(engine):
    pipeline = pipeline_with([sh("fails", engine.image, "exit 3", inject_api_token=True)], pipeline_id="tokens")
    run = run_to_completion(engine, pipeline)
    assert run.status == "failed"
    assert run.token_id is None and run.token_secret is None
    assert not Token.objects.filter(kind="run").exists()


def test_a_run_tokens_lifetime_does_not_exceed_the_global_run_timeout(engine, settings):
    settings.GOFER_GLOBAL_RUN_TIMEOUT = 600
    pipeline = pipeline_with([sh("t", engine.image, "sleep 30", inject_api_token=True)], pipeline_id="tokens")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).token_id is not None)
    run = Run.objects.get(pk=run.pk)
    token = Token.objects.get(pk=run.token_id)
    assert token.expires is not None
    assert token.expires - token.created <= dt.timedelta(seconds=600)
    assert token.expires <= run.started + dt.timedelta(seconds=600) + dt.timedelta(seconds=1)
    runs.cancel_run(SYSTEM_PRINCIPAL, run)
    engine.drain(until=lambda: Run.objects.get(pk=run.pk).state == "complete")
