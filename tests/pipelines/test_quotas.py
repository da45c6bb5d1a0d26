"""Quotas per namespace (pipelines/quotas.py): GET/PUT .../quotas, and every quota refused where it is checked, with
the error naming the quota, its limit and its use, and nothing half-created."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from kernel.errors import QuotaExceeded, QuotaExceededForNow
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from objectstore.models import PipelineObject
from pipelines import quotas
from pipelines import services as pipelines
from pipelines.models import Namespace, Pipeline, PipelineConfig
from runs import services as runs
from runs.models import Run
from secretstore import services as secrets
from secretstore.models import PipelineSecret
from tests.conftest import deployed_pipeline, simple_config
from tests.support.objects import blob_files, raw_post

QUOTAS = "/api/namespaces/team-a/quotas"
CONFIGS = "/api/namespaces/team-a/pipelines/{}/configs"
RUNS = "/api/namespaces/team-a/pipelines/build/runs"


def set_quotas(namespace_id: str = "team-a", **values) -> None:
    quotas.update_quotas(Namespace.objects.get(pk=namespace_id), values)


def assert_quota_error(response, status: int, name: str, limit: int, used: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == "quota_exceeded"
    assert body["quota"] == {"name": name, "limit": limit, "used": used}
    assert name in body["message"] and f"limit {limit}" in body["message"] and str(used) in body["message"]
    assert body["errors"][0]["field"] == (field or name)
    assert body["message"].startswith(f"{field or name}: ")
    return body


@pytest.fixture
def object_dir(settings, tmp_path):
    settings.GOFER_OBJECT_DIR = tmp_path / "objects"
    return settings.GOFER_OBJECT_DIR


# --- reading and setting ------------------------------------------------------------------------------------------


def test_get_shows_each_quotas_limit_and_current_use(alice, team_a_pipeline):
    set_quotas(pipelines=5, concurrent_runs=3)
    runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})

    response = alice.get(QUOTAS)

    assert response.status_code == 200
    body = response.json()["quotas"]
    assert body["namespace_id"] == "team-a" and body["weight"] == 1
    assert set(body) == {"namespace_id", "weight", "modified", *quotas.NAMES}
    assert body["pipelines"] == {"limit": 5, "used": 1, "unit": "pipelines"}
    assert body["concurrent_runs"] == {"limit": 3, "used": 0, "unit": "runs"}
    assert body["queued_runs"] == {"limit": None, "used": 1, "unit": "runs"}
    assert body["runs_per_hour"]["used"] == 1
    assert body["tasks_per_pipeline"]["used"] == 2  # simple_config has two tasks


def test_an_outsider_gets_404_on_the_quotas(charlie, namespaces):
    assert charlie.get(QUOTAS).status_code == 404
    assert charlie.client.put(QUOTAS, {"pipelines": 1}, format="json", **charlie._headers(None)).status_code == 404


def test_only_admins_may_change_quotas(alice, admin, namespaces):
    refused = alice.client.put(QUOTAS, {"pipelines": 1}, format="json", **alice._headers(None))
    assert refused.status_code == 403
    assert quotas.quotas_of("team-a").pipelines is None

    response = admin.client.put(
        QUOTAS, {"pipelines": 2, "runs_per_hour": 10, "weight": 3}, format="json", **admin._headers(None)
    )

    assert response.status_code == 200, response.content
    body = response.json()["quotas"]
    assert body["pipelines"]["limit"] == 2 and body["runs_per_hour"]["limit"] == 10 and body["weight"] == 3
    row = quotas.quotas_of("team-a")
    assert (row.pipelines, row.runs_per_hour, row.weight) == (2, 10, 3)
    again = admin.client.put(QUOTAS, {"pipelines": 2}, format="json", **admin._headers(None))
    assert again.status_code == 200 and again["Gofer-Changed"] == "false"
    cleared = admin.client.put(QUOTAS, {"pipelines": None}, format="json", **admin._headers(None))
    assert cleared.json()["quotas"]["pipelines"]["limit"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pipelines": -1}, "pipelines"),
        ({"pipelines": "3"}, "pipelines"),
        ({"secrets": True}, "secrets"),
        ({"weight": 0}, "weight"),
        ({"weight": None}, "weight"),
        ({"pipelines": 2, "bananas": 1}, "bananas"),
    ],
)
def test_a_bad_quota_value_is_a_400_naming_it_and_changes_nothing(admin, namespaces, body, field):
    response = admin.client.put(QUOTAS, body, format="json", **admin._headers(None))

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    row = quotas.quotas_of("team-a")
    assert (row.pipelines, row.secrets, row.weight) == (None, None, 1)


def test_new_namespaces_get_the_quota_settings_as_their_defaults(admin, settings, db):
    settings.GOFER_QUOTA_PIPELINES = 7
    settings.GOFER_QUOTA_RUNS_PER_HOUR = 3
    settings.GOFER_QUOTA_WEIGHT = 2

    admin.post("/api/namespaces", {"id": "team-c", "name": "Team C", "description": ""})

    row = quotas.quotas_of("team-c")
    assert (row.pipelines, row.runs_per_hour, row.weight, row.secrets) == (7, 3, 2, None)


def test_without_quota_settings_a_namespace_is_unlimited(namespaces):
    row = quotas.quotas_of("team-a")
    assert all(getattr(row, name) is None for name in quotas.NAMES)


# --- pipelines, tasks and timeouts: registering a config ---------------------------------------------------------


def test_a_pipeline_beyond_the_quota_is_a_403_and_nothing_is_created(alice, namespaces):
    set_quotas(pipelines=1)
    assert alice.post(CONFIGS.format("one"), {"config": simple_config("one")}).status_code == 201

    response = alice.post(CONFIGS.format("two"), {"config": simple_config("two")})

    assert_quota_error(response, 403, "pipelines", 1, 1, field="pipeline_id")
    assert not Pipeline.objects.filter(slug="two").exists()
    # A new version of an existing pipeline is no new pipeline.
    assert alice.post(CONFIGS.format("one"), {"config": simple_config("one")}).status_code == 201


def test_a_config_with_more_tasks_than_the_quota_is_refused(alice, namespaces):
    set_quotas(tasks_per_pipeline=1)

    response = alice.post(CONFIGS.format("build"), {"config": simple_config("build")})

    body = assert_quota_error(response, 403, "tasks_per_pipeline", 1, 0, field="config.tasks")
    assert "2 tasks asked" in body["message"] and "0 used" in body["message"]
    assert not Pipeline.objects.filter(slug="build").exists() and not PipelineConfig.objects.exists()


def test_the_tasks_refusal_says_the_tasks_asked_and_the_namespaces_true_use(alice, namespaces):
    deployed_pipeline("team-a", "small")  # two tasks: the namespace's use of tasks_per_pipeline is 2
    set_quotas(tasks_per_pipeline=2)
    config = simple_config("build")
    config["tasks"].append({**config["tasks"][0], "id": "third", "depends_on": {}})

    response = alice.post(CONFIGS.format("build"), {"config": config})

    body = assert_quota_error(response, 403, "tasks_per_pipeline", 2, 2, field="config.tasks")
    assert body["message"] == (
        "config.tasks: 3 tasks asked is over namespace team-a's quota tasks_per_pipeline (tasks in one config "
        "version): limit 2 tasks, 2 used (the most in a pipeline's latest config)"
    )


def test_a_task_timeout_above_the_quota_is_refused_and_a_task_without_one_gets_the_quota(alice, namespaces):
    set_quotas(task_timeout=600)
    config = simple_config("build")
    config["tasks"][1]["timeout"] = 900

    refused = alice.post(CONFIGS.format("build"), {"config": config})

    body = assert_quota_error(refused, 403, "task_timeout", 600, 0, field="config.tasks[1].timeout")
    # The error's used is the namespace's use (no config yet), and 900 is said to be what was asked.
    assert body["message"] == (
        "config.tasks[1].timeout: 900 seconds asked is over namespace team-a's quota task_timeout (the longest task "
        "timeout; tasks that set none get this): limit 600 seconds, 0 used (the most in a pipeline's latest config)"
    )
    assert not PipelineConfig.objects.exists()
    config["tasks"][1]["timeout"] = 300
    accepted = alice.post(CONFIGS.format("build"), {"config": config})
    assert accepted.status_code == 201, accepted.content
    tasks = accepted.json()["pipeline"]["config"]["tasks"]
    assert tasks["compile"]["timeout"] == 600 and tasks["test"]["timeout"] == 300


# --- runs: queued and per hour ------------------------------------------------------------------------------------


def test_runs_beyond_the_hourly_quota_are_a_429_with_retry_after_and_no_run(alice, team_a_pipeline):
    set_quotas(runs_per_hour=2)
    for _ in range(2):
        assert alice.post(RUNS, {"variables": {}}).status_code == 201
    # The oldest of them started 50 minutes ago: room is made in 10 minutes.
    oldest = Run.objects.order_by("created").first()
    Run.objects.filter(pk=oldest.pk).update(created=timezone.now() - dt.timedelta(minutes=50))

    response = alice.post(RUNS, {"variables": {}})

    assert_quota_error(response, 429, "runs_per_hour", 2, 2)
    assert 590 <= int(response["Retry-After"]) <= 601
    assert Run.objects.count() == 2
    Run.objects.filter(pk=oldest.pk).update(created=timezone.now() - dt.timedelta(minutes=61))
    assert alice.post(RUNS, {"variables": {}}).status_code == 201


def test_runs_beyond_the_queue_quota_are_a_429_with_retry_after(alice, team_a_pipeline):
    set_quotas(queued_runs=1)
    assert alice.post(RUNS, {"variables": {}}).status_code == 201

    response = alice.post(RUNS, {"variables": {}})

    assert_quota_error(response, 429, "queued_runs", 1, 1)
    assert int(response["Retry-After"]) > 0
    assert Run.objects.count() == 1
    Run.objects.update(state="running")  # it left the queue
    assert alice.post(RUNS, {"variables": {}}).status_code == 201


def test_the_run_service_itself_refuses_so_triggers_and_the_cli_obey_too(team_a_pipeline):
    set_quotas(runs_per_hour=0)

    with pytest.raises(QuotaExceededForNow) as refused:
        runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})

    assert (refused.value.quota, refused.value.limit, refused.value.used) == ("runs_per_hour", 0, 0)
    assert not Run.objects.exists()


def test_another_namespaces_quota_does_not_apply(charlie, namespaces):
    set_quotas("team-a", runs_per_hour=0, pipelines=0)
    deployed_pipeline("team-b")
    response = charlie.post("/api/namespaces/team-b/pipelines/build/runs", {"variables": {}})
    assert response.status_code == 201


# --- secrets and objects --------------------------------------------------------------------------------------------


def test_new_secrets_beyond_the_quota_are_refused_but_overwrites_are_not(alice, team_a_pipeline):
    set_quotas(secrets=1)
    secrets.put_pipeline_secret(team_a_pipeline, "first", "value-1")

    with pytest.raises(QuotaExceeded) as refused:
        secrets.put_pipeline_secret(team_a_pipeline, "second", "value-2")

    assert (refused.value.quota, refused.value.limit, refused.value.used) == ("secrets", 1, 1)
    assert list(PipelineSecret.objects.values_list("key", flat=True)) == ["first"]
    secrets.put_pipeline_secret(team_a_pipeline, "first", "value-3", force=True)
    response = alice.post(
        "/api/namespaces/team-a/pipelines/build/secrets", {"key": "third", "content": "x" * 8, "force": False}
    )
    assert_quota_error(response, 403, "secrets", 1, 1, field="key")


def test_objects_beyond_the_byte_quota_are_refused_with_nothing_stored(alice, team_a_pipeline, object_dir):
    set_quotas(object_bytes=10)
    objects.put_pipeline_object(team_a_pipeline, "a", [b"123456"])
    blobs = blob_files()

    response = raw_post(alice, "/api/namespaces/team-a/pipelines/build/objects/b", b"12345")

    assert_quota_error(response, 403, "object_bytes", 10, 6, field="body")
    assert list(PipelineObject.objects.values_list("key", flat=True)) == ["a"]
    assert blob_files() == blobs
    # An overwrite counts only what it adds (10 bytes in place of 6), and run objects count too.
    objects.put_pipeline_object(team_a_pipeline, "a", [b"1234567890"], force=True)
    run = runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})
    with pytest.raises(QuotaExceeded) as refused:
        objects.put_run_object(run, "r", [b"1"])
    assert refused.value.used == 10
    assert quotas.usage("team-a")["object_bytes"] == 10


# --- deletion -------------------------------------------------------------------------------------------------------


def test_a_namespaces_quotas_go_with_it(namespaces):
    set_quotas(pipelines=3)
    pipelines.delete_namespace(Namespace.objects.get(pk="team-a"))
    assert not quotas.NamespaceQuotas.objects.filter(pk="team-a").exists()
