"""Pagination on every list: ``limit`` (default 50, at most 500), ``offset`` and ``reverse``, each validated."""

from __future__ import annotations

import pytest

from access import services as access
from events.models import Event
from kernel.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines import services as pipelines
from pipelines.models import Namespace
from runs import services as runs
from runs.models import TaskExecution, TimelineEntry
from tests.conftest import deployed_pipeline, simple_config

BUILD = "/api/namespaces/team-a/pipelines/build"
RUN = f"{BUILD}/runs/1"

# (list path, wrapper key, how to tell one item from another)
LISTS = [
    ("/api/namespaces", "namespaces", lambda item: item["id"]),
    ("/api/namespaces/team-a/pipelines", "pipelines", lambda item: item["pipeline_id"]),
    (f"{BUILD}/configs", "configs", lambda item: item["version"]),
    (f"{BUILD}/deployments", "deployments", lambda item: item["deployment_id"]),
    (f"{BUILD}/runs", "runs", lambda item: item["run_id"]),
    ("/api/tokens", "tokens", lambda item: item["id"]),
    ("/api/roles", "roles", lambda item: item["id"]),
    ("/api/events", "events", lambda item: item["id"]),
    (f"{RUN}/tasks", "task_executions", lambda item: item["task_id"]),
    (f"{RUN}/timeline", "timeline", lambda item: item["message"]),
]
IDS = [key for _, key, _ in LISTS]


@pytest.fixture
def populated(namespaces, admin):
    """At least four items in every list the admin can read."""
    pipelines.create_namespace("team-c", "Team C", "")
    team_a = Namespace.objects.get(id="team-a")
    pipeline = deployed_pipeline("team-a")
    for version in (2, 3, 4):
        pipelines.register_config(team_a, "build", simple_config())
        pipelines.deploy_config(pipeline, version)
    for other in ("deploy", "lint", "scan"):
        pipelines.register_config(team_a, other, simple_config(other))
    run = None
    for _ in range(4):
        run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    first = run.pipeline.runs.get(number=1)
    for slug in ("compile", "test", "package", "publish"):
        TaskExecution.objects.create(namespace=team_a, pipeline=pipeline, run=first, task_slug=slug)
    for index in range(3):
        runs.note(first, "note", f"entry {index}")
    for user in ("one", "two", "three"):
        access.create_token(user, ["user"])
    return pipeline


@pytest.fixture
def reachable(team_a_pipeline):
    """Just enough for every list path to resolve: pipeline build in team-a with run 1."""
    return runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})


def fetch(caller, path, key, **params):
    response = caller.get(path, **params)
    assert response.status_code == 200, response.content
    return response.json()[key]


@pytest.mark.parametrize(("path", "key", "ident"), LISTS, ids=IDS)
def test_limit_offset_and_reverse_page_through_the_list(populated, admin, path, key, ident):
    def page(**params):
        return [ident(i) for i in fetch(admin, path, key, **params)]

    everything = page(limit=str(MAX_LIMIT))
    assert len(everything) >= 4
    assert page() == everything
    assert page(limit="2") == everything[:2]
    assert page(offset="1", limit="2") == everything[1:3]
    assert page(offset=str(len(everything))) == []
    assert page(reverse="true") == everything[::-1]
    assert page(reverse="false") == everything
    assert page(reverse="true", limit="1") == everything[-1:]
    assert page(reverse="true", offset="1", limit="2") == everything[::-1][1:3]


BAD_PARAMS = [
    ("limit", "abc", "must be an integer"),
    ("limit", "1.5", "must be an integer"),
    ("limit", "1_0", "must be an integer"),
    ("limit", "+5", "must be an integer"),
    ("limit", " 5", "must be an integer"),
    ("limit", "\uff15", "must be an integer"),
    ("limit", "-1", "must be at least 1"),
    ("limit", "0", "must be at least 1"),
    ("limit", str(MAX_LIMIT + 1), f"must be at most {MAX_LIMIT}"),
    ("offset", "x", "must be an integer"),
    ("offset", "-5", "must be at least 0"),
    ("offset", "9" * 30, "must be at most"),
    ("reverse", "maybe", "must be true or false"),
]


@pytest.mark.parametrize(("path", "key", "ident"), LISTS, ids=IDS)
def test_bad_pagination_parameters_are_400_naming_the_parameter(reachable, admin, path, key, ident):
    for param, value, says in BAD_PARAMS:
        response = admin.get(path, **{param: value})
        assert response.status_code == 400, (param, value, response.content)
        body = response.json()
        assert body["error_code"] == "validation_error"
        assert body["message"].startswith(f"{param}: {says}"), (param, value, body["message"])
        assert body["errors"][0]["field"] == param


def test_limit_defaults_to_50(admin, db):
    Event.objects.bulk_create(Event(kind="created_role", details={"n": n}) for n in range(DEFAULT_LIMIT + 10))
    assert len(fetch(admin, "/api/events", "events")) == DEFAULT_LIMIT
    assert len(fetch(admin, "/api/events", "events", limit=str(MAX_LIMIT))) > DEFAULT_LIMIT


def test_limit_defaults_to_50_on_the_timeline(admin, team_a_pipeline):
    run = runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})
    TimelineEntry.objects.bulk_create(TimelineEntry(run=run, kind="note", message=str(n)) for n in range(60))
    assert len(fetch(admin, f"{BUILD}/runs/1/timeline", "timeline")) == DEFAULT_LIMIT
    assert len(fetch(admin, f"{BUILD}/runs/1/timeline", "timeline", limit="500")) == 61


def test_limit_of_500_is_accepted(admin):
    assert admin.get("/api/namespaces", limit="500").status_code == 200


def test_pagination_applies_after_scoping(populated, alice):
    """alice sees team-a only: a page of namespaces never pads itself with namespaces she cannot read."""
    assert [n["id"] for n in fetch(alice, "/api/namespaces", "namespaces")] == ["team-a"]
    assert fetch(alice, "/api/namespaces", "namespaces", offset="1") == []
