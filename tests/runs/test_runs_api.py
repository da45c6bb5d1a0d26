"""Runs over the API: start (the live version), list with pagination, get, cancel, and the timeline."""

from __future__ import annotations

import time

import pytest

from access import services as access
from access.models import Token
from events.models import Event
from kernel.errors import Forbidden
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines import services as pipelines
from pipelines.models import Namespace, Pipeline
from runs import services as runs
from runs.models import Run
from tests.conftest import deployed_pipeline, make_caller, simple_config
from tests.support.contract import RUN_FIELDS as RUN_KEYS

BUILD = "/api/namespaces/team-a/pipelines/build"
RUNS = f"{BUILD}/runs"


def start(caller, variables=None):
    return caller.post(RUNS, {"variables": variables or {}})


def test_start_a_run(team_a_pipeline, alice):
    response = start(alice, {"foo": "bar", "Second": "2"})
    assert response.status_code == 201
    run = response.json()["run"]
    assert set(run) == RUN_KEYS
    assert (run["namespace_id"], run["pipeline_id"], run["run_id"]) == ("team-a", "build", 1)
    assert (run["state"], run["status"], run["status_reason"]) == ("pending", "unknown", None)
    assert (run["started"], run["ended"]) == (0, 0)
    assert abs(run["queued"] - time.time() * 1000) < 60_000
    assert run["variables"] == [
        {"key": "FOO", "value": "bar", "source": "run_options"},
        {"key": "SECOND", "value": "2", "source": "run_options"},
    ]
    assert run["token_id"] is None
    assert run["store_objects_expired"] is False


def test_the_initiator_is_the_tokens_user(team_a_pipeline, alice):
    run = start(alice).json()["run"]
    assert run["initiator"] == {"id": alice.token_id, "user": "alice", "kind": "token"}
    assert Run.objects.get(number=1).initiator["user"] == "alice"


def test_starting_a_run_publishes_queued_run_and_starts_the_timeline(team_a_pipeline, alice):
    start(alice)
    event = Event.objects.get(kind="queued_run")
    assert event.details == {"namespace_id": "team-a", "pipeline_id": "build", "run_id": 1}
    assert (event.namespace_id, event.pipeline_slug, event.run_number) == ("team-a", "build", 1)
    timeline = alice.get(f"{RUNS}/1/timeline").json()["timeline"]
    assert timeline[0]["kind"] == "queued"
    assert set(timeline[0]) == {"at", "task_id", "kind", "message"}
    assert "alice" in timeline[0]["message"]


def test_run_ids_count_up_per_pipeline(team_a_pipeline, alice, namespaces):
    assert [start(alice).json()["run"]["run_id"] for _ in range(3)] == [1, 2, 3]
    pipelines.register_config(Namespace.objects.get(id="team-a"), "lint", simple_config("lint"))
    lint = team_a_pipeline.namespace.pipelines.get(slug="lint")
    pipelines.deploy_config(lint, 1)
    response = alice.post("/api/namespaces/team-a/pipelines/lint/runs", {})
    assert response.json()["run"]["run_id"] == 1


def test_a_run_body_may_be_empty(team_a_pipeline, alice):
    response = alice.post(RUNS)
    assert response.status_code == 201
    assert response.json()["run"]["variables"] == []


def test_runs_execute_the_live_version_not_the_newest(team_a_pipeline, alice):
    alice.post(f"{BUILD}/configs", {"config": simple_config(name="v2, not deployed")})
    response = start(alice)
    assert response.status_code == 201
    assert response.json()["run"]["pipeline_config_version"] == 1
    assert Run.objects.get(number=1).config.version == 1


def test_after_deploying_v2_runs_use_v2(team_a_pipeline, alice):
    alice.post(f"{BUILD}/configs", {"config": simple_config()})
    alice.post(f"{BUILD}/configs/2")
    assert start(alice).json()["run"]["pipeline_config_version"] == 2


def test_no_live_version_is_409(namespaces, alice):
    alice.post(f"{BUILD}/configs", {"config": simple_config()})
    response = start(alice)
    assert response.status_code == 409
    assert response.json()["error_code"] == "conflict"
    assert "no live config version" in response.json()["message"]
    assert not Run.objects.exists()


def test_disabled_pipeline_is_503_and_enabled_again_is_201(team_a_pipeline, alice):
    alice.patch(BUILD, {"state": "disabled"})
    response = start(alice)
    assert response.status_code == 503
    assert response.json()["error_code"] == "unavailable"
    assert "disabled" in response.json()["message"]
    alice.patch(BUILD, {"state": "active"})
    response = start(alice)
    assert response.status_code == 201
    assert response.json()["run"]["run_id"] == 1


def test_the_kill_switch_is_503(team_a_pipeline, admin, alice):
    admin.patch("/api/system", {"ignore_pipeline_run_events": True})
    assert start(alice).status_code == 503
    assert not Run.objects.exists()


def test_a_missing_pipeline_is_404_not_500(namespaces, alice):
    response = alice.post("/api/namespaces/team-a/pipelines/nothing/runs", {})
    assert response.status_code == 404
    assert response.json()["message"] == "pipeline nothing not found"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"1ABC": "x"}, "variables.1ABC"),
        ({"A-B": "x"}, "variables.A-B"),
        ({"COUNT": 1}, "variables.COUNT"),
        ({"mode": "a", "MODE": "b"}, "variables.MODE"),
        ("FOO=bar", "variables"),
        ([{"key": "FOO"}], "variables[0]"),
    ],
)
def test_invalid_run_variables_are_400(team_a_pipeline, alice, variables, field):
    response = alice.post(RUNS, {"variables": variables})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Run.objects.exists()


def test_read_only_member_cannot_start_runs(team_a_pipeline, bob):
    assert start(bob).status_code == 403


def test_outsider_gets_404_on_runs(team_a_pipeline, charlie, alice):
    start(alice)
    assert start(charlie).status_code == 404
    assert charlie.get(RUNS).status_code == 404
    assert charlie.get(f"{RUNS}/1").status_code == 404
    assert charlie.delete(f"{RUNS}/1").status_code == 404


# --- listing --------------------------------------------------------------------------------------------------------


@pytest.fixture
def fifteen_runs(team_a_pipeline):
    for _ in range(15):
        runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})
    return team_a_pipeline


def run_ids(caller, **params):
    response = caller.get(RUNS, **params)
    assert response.status_code == 200
    return [r["run_id"] for r in response.json()["runs"]]


def test_list_runs(fifteen_runs, bob):
    listed = bob.get(RUNS).json()["runs"]
    assert [r["run_id"] for r in listed] == list(range(1, 16))
    assert all(set(r) == RUN_KEYS for r in listed)


def test_limit_10_of_15_runs_returns_10(fifteen_runs, bob):
    assert run_ids(bob, limit="10") == list(range(1, 11))


def test_offset_10_of_15_runs_returns_5(fifteen_runs, bob):
    assert run_ids(bob, offset="10") == [11, 12, 13, 14, 15]


def test_reverse_lists_the_newest_first(fifteen_runs, bob):
    assert run_ids(bob, reverse="true") == list(range(15, 0, -1))
    assert run_ids(bob, reverse="true", limit="10") == list(range(15, 5, -1))
    assert run_ids(bob, reverse="true", limit="10", offset="10") == [5, 4, 3, 2, 1]


def test_a_pipeline_without_runs_lists_none(team_a_pipeline, bob):
    assert bob.get(RUNS).json() == {"runs": []}


# --- get ------------------------------------------------------------------------------------------------------------


def test_get_a_run(team_a_pipeline, alice, bob):
    started = start(alice, {"x": "1"}).json()["run"]
    response = bob.get(f"{RUNS}/1")
    assert response.status_code == 200
    assert response.json() == {"run": started}


@pytest.mark.parametrize("run_id", ["abc", "0", "-1", "1.0", "1e3", "1_0", "+1", "%201", "\uff11", "0x1"])
def test_a_bad_run_id_is_400_naming_run_id(team_a_pipeline, alice, run_id):
    start(alice)
    response = alice.get(f"{RUNS}/{run_id}")
    assert response.status_code == 400
    assert response.json()["message"] == "run_id: must be a positive integer"
    assert response.json()["errors"][0]["field"] == "run_id"


@pytest.mark.parametrize("run_id", ["2", "99999999999999999999999"])
def test_a_missing_run_is_404(team_a_pipeline, alice, run_id):
    start(alice)
    response = alice.get(f"{RUNS}/{run_id}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "run_id"


def test_system_variables_are_not_shown_on_runs(team_a_pipeline, alice):
    start(alice, {"mine": "yes"})
    run = Run.objects.get(number=1)
    run.variables = [*run.variables, {"key": "GOFER_TOKEN", "value": "sekrit-token", "source": "system"}]
    run.save()
    response = alice.get(f"{RUNS}/1")
    assert response.json()["run"]["variables"] == [{"key": "MINE", "value": "yes", "source": "run_options"}]
    assert "sekrit-token" not in alice.get(RUNS).content.decode()


# --- cancel ---------------------------------------------------------------------------------------------------------


def test_cancel_a_pending_run(team_a_pipeline, alice):
    start(alice)
    response = alice.delete(f"{RUNS}/1")
    assert response.status_code == 204
    assert "Gofer-Changed" not in response
    run = Run.objects.get(number=1)
    assert run.cancel_requested is not None
    assert run.cancel_reason == "user_cancelled"
    assert "alice" in run.cancel_description
    event = Event.objects.get(kind="started_run_cancellation")
    assert event.details == {"namespace_id": "team-a", "pipeline_id": "build", "run_id": 1}
    kinds = [e["kind"] for e in alice.get(f"{RUNS}/1/timeline").json()["timeline"]]
    assert kinds == ["queued", "cancel_requested"]


def test_an_admin_cancel_is_recorded_as_admin_cancelled(team_a_pipeline, admin):
    start(admin)
    admin.delete(f"{RUNS}/1")
    assert Run.objects.get(number=1).cancel_reason == "admin_cancelled"


def test_cancelling_twice_records_one_request(team_a_pipeline, alice):
    start(alice)
    alice.delete(f"{RUNS}/1")
    first = Run.objects.get(number=1).cancel_requested
    assert alice.delete(f"{RUNS}/1").status_code == 204
    assert Run.objects.get(number=1).cancel_requested == first
    assert Event.objects.filter(kind="started_run_cancellation").count() == 1


def test_cancelling_a_finished_run_is_204_with_a_header_saying_nothing_changed(team_a_pipeline, alice):
    start(alice)
    Run.objects.filter(number=1).update(state="complete", status="successful")
    response = alice.delete(f"{RUNS}/1")
    assert response.status_code == 204
    assert response["Gofer-Changed"] == "false"
    assert response.content == b""
    assert Run.objects.get(number=1).cancel_requested is None
    assert not Event.objects.filter(kind="started_run_cancellation").exists()


def test_read_only_member_cannot_cancel(team_a_pipeline, alice, bob):
    start(alice)
    assert bob.delete(f"{RUNS}/1").status_code == 403
    assert Run.objects.get(number=1).cancel_requested is None


@pytest.mark.parametrize(("run_id", "status"), [("abc", 400), ("7", 404)])
def test_cancelling_a_bad_or_missing_run(team_a_pipeline, alice, run_id, status):
    assert alice.delete(f"{RUNS}/{run_id}").status_code == status


# --- timeline -------------------------------------------------------------------------------------------------------


def test_the_timeline_of_a_run(team_a_pipeline, alice):
    start(alice)
    run = Run.objects.get(number=1)
    runs.note(run, "task_started", "compile started", task_slug="compile")
    response = alice.get(f"{RUNS}/1/timeline")
    assert response.status_code == 200
    timeline = response.json()["timeline"]
    assert [(e["kind"], e["task_id"]) for e in timeline] == [("queued", ""), ("task_started", "compile")]
    assert all(e["at"] > 0 for e in timeline)


def test_the_timeline_of_a_missing_run_is_404(team_a_pipeline, alice):
    assert alice.get(f"{RUNS}/3/timeline").status_code == 404


# --- issue 8, finding 11: run variables may resolve only the secrets their initiator may read ------------------------


@pytest.fixture
def runner(namespaces):
    """May start runs in team-a, nothing about secrets (the audit's ``runs:write`` role)."""
    access.create_role(
        "team-a-runner",
        "",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], "actions": ["read", "write"]}],
    )
    return make_caller("runner", ["team-a-runner"])


@pytest.mark.parametrize("reference", ["pipeline_secret{{pw}}", "global_secret{{pw}}", " PIPELINE_SECRET{{ pw }} "])
def test_a_run_variable_cannot_reference_a_secret_its_initiator_may_not_read(team_a_pipeline, runner, reference):
    response = start(runner, {"MODE": reference})
    assert response.status_code == 403, response.json()
    assert response.json()["errors"][0]["field"] == "variables.MODE"
    assert "MODE" in response.json()["message"]
    assert not Run.objects.exists()


def test_a_member_who_may_read_the_pipelines_secrets_may_reference_them(team_a_pipeline, alice):
    assert start(alice, {"MODE": "pipeline_secret{{pw}}"}).status_code == 201


def test_global_secrets_are_referenced_by_admins_only(team_a_pipeline, alice, admin):
    refused = start(alice, {"KEY": "global_secret{{shared}}"})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "variables.KEY"
    assert start(admin, {"KEY": "global_secret{{shared}}"}).status_code == 201


def test_plain_run_variables_need_no_secret_permission(team_a_pipeline, runner):
    assert start(runner, {"MODE": "fast", "NOTE": "pipeline_secret{{"}).status_code == 201


def test_the_rule_is_the_services_so_every_caller_of_start_run_obeys_it(team_a_pipeline, runner):
    principal = access.principal_for_token(Token.objects.get(pk=runner.token_id))
    with pytest.raises(Forbidden) as refused:
        runs.start_run(principal, team_a_pipeline, {"MODE": "pipeline_secret{{pw}}"})
    assert refused.value.errors[0].field == "variables.MODE"
    runs.check_run_variables(SYSTEM_PRINCIPAL, team_a_pipeline, [{"key": "MODE", "value": "global_secret{{x}}"}])


@pytest.mark.parametrize("name", ["PATH", "path", "GOFER_TOKEN", "GOFER_API_BASE_URL", "gofer_run_id"])
def test_a_protected_variable_name_is_400_naming_it(team_a_pipeline, alice, name):
    response = start(alice, {name: "/bin:/evil"})
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][0]["field"] == f"variables.{name.upper()}"
    assert "protected" in response.json()["message"]
    assert not Run.objects.exists()


def test_operators_choose_the_protected_names(team_a_pipeline, alice, settings):
    settings.GOFER_PROTECTED_VARIABLES = ["LD_*"]
    assert start(alice, {"PATH": "/bin"}).status_code == 201
    response = start(alice, {"LD_PRELOAD": "/evil.so"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "variables.LD_PRELOAD"


# --- issue 8, finding 16: anonymous readers of default see no run variables and no token ids ---------------------------


@pytest.fixture
def default_run(db):
    deployed_pipeline("default", "hello")
    starter = make_caller("starter", ["user"])
    starter.post("/api/namespaces/default/pipelines/hello/runs", {"variables": {"MODE": "private-value"}})
    run = Run.objects.get(pipeline=Pipeline.objects.get(namespace_id="default", slug="hello"))
    _, token = access.mint_run_token(run)
    Run.objects.filter(pk=run.pk).update(token=token)
    return starter


def test_anonymous_readers_see_neither_run_variables_nor_token_ids(default_run, anonymous):
    for response in (
        anonymous.get("/api/namespaces/default/pipelines/hello/runs/1"),
        anonymous.get("/api/namespaces/default/pipelines/hello/runs"),
    ):
        assert response.status_code == 200
        body = response.json()
        run = body["run"] if "run" in body else body["runs"][0]
        assert run["variables"] == []
        assert run["token_id"] is None
        assert run["initiator"]["id"] == ""
        assert run["initiator"]["user"] == "starter"
        assert "private-value" not in str(body)


def test_a_token_reader_still_sees_them(default_run):
    run = default_run.get("/api/namespaces/default/pipelines/hello/runs/1").json()["run"]
    assert run["variables"] == [{"key": "MODE", "value": "private-value", "source": "run_options"}]
    assert run["token_id"] is not None
    assert run["initiator"]["id"] == default_run.token_id
