"""Pipeline configs: register (which creates the pipeline), list, get, and the delete guards."""

from __future__ import annotations

import pytest
from django.db import connection

from events.models import Event
from pipelines.models import Pipeline, PipelineConfig, Task
from tests.conftest import simple_config

BUILD = "/api/namespaces/team-a/pipelines/build"
CONFIG_KEYS = {
    "namespace_id",
    "pipeline_id",
    "version",
    "parallelism",
    "parallelism_mode",
    "logging",
    "run_token_grants",
    "name",
    "description",
    "registered",
    "deprecated",
    "state",
    "tasks",
}
TASK_KEYS = {
    "id",
    "description",
    "image",
    "registry_auth",
    "depends_on",
    "variables",
    "entrypoint",
    "command",
    "inject_api_token",
    "always_pull_newest_image",
    "timeout",
    "cpu",
    "memory",
    "logging",
}


def register(caller, config=None, path=BUILD):
    return caller.post(f"{path}/configs", {"config": config or simple_config()})


def test_register_creates_the_pipeline_and_version_1(alice):
    response = register(alice)
    assert response.status_code == 201
    body = response.json()["pipeline"]
    assert set(body) == {"metadata", "config"}
    assert body["metadata"]["pipeline_id"] == "build"
    assert body["metadata"]["state"] == "active"
    config = body["config"]
    assert set(config) == CONFIG_KEYS
    assert (config["namespace_id"], config["pipeline_id"], config["version"]) == ("team-a", "build", 1)
    assert config["state"] == "unreleased"
    assert config["deprecated"] == 0
    assert config["registered"] > 0
    assert (config["name"], config["description"], config["parallelism"]) == ("Build", "builds things", 0)
    assert Pipeline.objects.filter(namespace_id="team-a", slug="build").exists()


def test_registered_tasks_are_keyed_by_id_in_gofer_shape(alice):
    tasks = register(alice).json()["pipeline"]["config"]["tasks"]
    assert list(tasks) == ["compile", "test"]
    compile_task, test_task = tasks["compile"], tasks["test"]
    assert set(compile_task) == TASK_KEYS
    assert compile_task["variables"] == [{"key": "MODE", "value": "fast", "source": "pipeline_config"}]
    assert test_task["depends_on"] == {"compile": "success"}
    assert compile_task["timeout"] == 28800
    assert (compile_task["registry_auth"], compile_task["entrypoint"], compile_task["command"]) == (None, None, None)
    assert (compile_task["cpu"], compile_task["memory"]) == (None, None)
    assert compile_task["inject_api_token"] is False
    assert compile_task["logging"] is True


def test_register_publishes_created_pipeline_once_and_registered_each_time(alice):
    register(alice)
    register(alice)
    assert Event.objects.filter(kind="created_pipeline", namespace_id="team-a", pipeline_slug="build").count() == 1
    registered = Event.objects.filter(kind="registered_pipeline_config").order_by("id")
    assert [e.details["version"] for e in registered] == [1, 2]


def test_versions_increase(alice):
    versions = [register(alice).json()["pipeline"]["config"]["version"] for _ in range(3)]
    assert versions == [1, 2, 3]
    assert [c["version"] for c in alice.get(f"{BUILD}/configs").json()["configs"]] == [1, 2, 3]


def test_get_configs_0_is_the_latest(alice):
    register(alice)
    register(alice, simple_config(name="Second"))
    response = alice.get(f"{BUILD}/configs/0")
    assert response.status_code == 200
    assert response.json()["config"]["version"] == 2
    assert response.json()["config"]["name"] == "Second"
    assert alice.get(f"{BUILD}/configs/1").json()["config"]["name"] == "Build"


def test_list_configs_has_the_full_shape(alice):
    register(alice)
    configs = alice.get(f"{BUILD}/configs").json()["configs"]
    assert len(configs) == 1
    assert set(configs[0]) == CONFIG_KEYS
    assert set(configs[0]["tasks"]) == {"compile", "test"}


@pytest.mark.parametrize(
    ("version", "status"),
    [("abc", 400), ("-1", 400), ("1.5", 400), ("0_1", 400), ("+1", 400), ("\uff11", 400), ("7", 404)],
)
def test_get_config_with_a_bad_or_missing_version(alice, version, status):
    register(alice)
    response = alice.get(f"{BUILD}/configs/{version}")
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == "version"


def test_configs_0_of_a_pipeline_without_configs_is_404(alice):
    register(alice)
    PipelineConfig.objects.all().delete()
    response = alice.get(f"{BUILD}/configs/0")
    assert response.status_code == 404
    assert response.json()["message"] == "config version latest not found"


def test_path_and_body_pipeline_id_must_match(alice):
    response = register(alice, simple_config("deploy"))
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == [
        {"field": "config.id", "message": "'deploy' does not match the pipeline id in the path ('build')"}
    ]
    assert body["message"].startswith("config.id: ")
    assert not Pipeline.objects.exists()


def test_an_invalid_config_id_is_reported_once(alice):
    response = register(alice, simple_config("ab"), path="/api/namespaces/team-a/pipelines/ab")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "pipeline_id"
    response = register(alice, simple_config("a_b"))
    body = response.json()
    assert body["errors"] == [{"field": "config.id", "message": "may only contain letters, digits and '-'"}]
    assert body["message"] == "config.id: may only contain letters, digits and '-'"


@pytest.mark.parametrize(
    ("pipeline_id", "in_path"), [("ab", "ab"), ("a_b", "a_b"), ("x" * 33, "x" * 33), ("build\n", "build%0A")]
)
def test_the_pipeline_id_follows_the_identifier_rule(alice, pipeline_id, in_path):
    response = register(alice, simple_config(pipeline_id), path=f"/api/namespaces/team-a/pipelines/{in_path}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "pipeline_id"
    assert not Pipeline.objects.exists()


@pytest.mark.parametrize("body", [{}, {"config": None}, {"config": "id: build"}, {"config": [simple_config()]}])
def test_a_missing_or_non_object_config_is_400(alice, body):
    response = alice.post(f"{BUILD}/configs", body)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "config", "message": "config: must be an object"}]


def test_nothing_is_written_when_the_config_is_invalid(alice):
    response = register(alice, simple_config(tasks=[]))
    assert response.status_code == 400
    assert not Pipeline.objects.exists()
    assert not Event.objects.filter(kind__in=["created_pipeline", "registered_pipeline_config"]).exists()


def test_read_only_member_cannot_register(bob):
    response = register(bob)
    assert response.status_code == 403
    assert not Pipeline.objects.exists()


def test_outsider_cannot_register_in_another_namespace(charlie):
    response = register(charlie)
    assert response.status_code == 404
    assert response.json()["message"] == "namespace team-a not found"
    assert not Pipeline.objects.exists()


def test_registering_in_a_missing_namespace_is_404(admin):
    response = register(admin, path="/api/namespaces/nowhere/pipelines/build")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace nowhere not found"


def test_the_user_role_registers_in_default(user):
    response = register(user, path="/api/namespaces/default/pipelines/build")
    assert response.status_code == 201


def test_a_pipeline_target_limits_which_pipelines_may_be_created(namespaces):
    from access import services as access
    from tests.conftest import make_caller

    access.create_role(
        "web-writer",
        "",
        [{"resources": ["namespaces:^team-a$", "pipelines:^web-", "configs"], "actions": ["read", "write"]}],
    )
    writer = make_caller("writer", ["web-writer"])
    assert (
        register(writer, simple_config("web-app"), path="/api/namespaces/team-a/pipelines/web-app").status_code == 201
    )
    refused = register(writer)
    assert refused.status_code == 404
    assert refused.json()["message"] == "pipeline build not found"


# --- registry credentials ---------------------------------------------------------------------------------------


def with_registry_auth():
    config = simple_config()
    config["tasks"][0]["registry_auth"] = {"user": "robot", "pass": "hunter2-registry-password"}
    return config


def test_registry_password_is_never_returned(alice):
    registered = register(alice, with_registry_auth()).json()["pipeline"]["config"]
    assert registered["tasks"]["compile"]["registry_auth"] == {"user": "robot", "pass": "[redacted]"}
    for response in (alice.get(f"{BUILD}/configs"), alice.get(f"{BUILD}/configs/1"), alice.get("/api/events")):
        assert "hunter2-registry-password" not in response.content.decode()
    assert alice.get(f"{BUILD}/configs/1").json()["config"]["tasks"]["compile"]["registry_auth"]["pass"] == "[redacted]"


def test_registry_password_is_stored_encrypted(alice):
    register(alice, with_registry_auth())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT registry_auth FROM {Task._meta.db_table} WHERE slug = %s", ["compile"])  # noqa: S608
        (stored,) = cursor.fetchone()
    assert stored.startswith("gofer:v1:")
    assert "hunter2-registry-password" not in stored
    assert "robot" not in stored
    assert Task.objects.get(slug="compile").registry_auth == {"user": "robot", "pass": "hunter2-registry-password"}


def test_a_task_without_registry_auth_stores_null(alice):
    register(alice)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT registry_auth FROM {Task._meta.db_table} WHERE slug = %s", ["compile"])  # noqa: S608
        assert cursor.fetchone() == (None,)


# --- delete guards --------------------------------------------------------------------------------------------------


@pytest.fixture
def three_versions(alice):
    """build v1 (deprecated), v2 (live), v3 (latest, unreleased)."""
    for _ in range(3):
        register(alice)
    alice.post(f"{BUILD}/configs/1")
    alice.post(f"{BUILD}/configs/2")
    return Pipeline.objects.get(namespace_id="team-a", slug="build")


def test_deleting_the_latest_version_is_400(three_versions, alice):
    response = alice.delete(f"{BUILD}/configs/3")
    assert response.status_code == 400
    assert response.json()["message"] == "version: 3 is the latest version and cannot be deleted"
    assert response.json()["errors"][0]["field"] == "version"
    assert three_versions.configs.filter(version=3).exists()


def test_deleting_the_live_version_is_400(three_versions, alice):
    response = alice.delete(f"{BUILD}/configs/2")
    assert response.status_code == 400
    assert response.json()["message"] == "version: 2 is live and cannot be deleted"
    assert three_versions.configs.filter(version=2).exists()


def test_deleting_an_old_deprecated_version_is_204(three_versions, alice):
    assert alice.delete(f"{BUILD}/configs/1").status_code == 204
    assert alice.get(f"{BUILD}/configs/1").status_code == 404
    assert [c["version"] for c in alice.get(f"{BUILD}/configs").json()["configs"]] == [2, 3]
    event = Event.objects.get(kind="deleted_pipeline_config")
    assert event.details == {"namespace_id": "team-a", "pipeline_id": "build", "version": 1}


@pytest.fixture
def run_on_version_1(alice):
    """v1 was live when run 1 started; then v2 and v3 were registered and v2 deployed, so v1 is old and deprecated."""
    register(alice)
    alice.post(f"{BUILD}/configs/1")
    assert alice.post(f"{BUILD}/runs", {}).status_code == 201
    register(alice)
    register(alice)
    alice.post(f"{BUILD}/configs/2")
    return Pipeline.objects.get(namespace_id="team-a", slug="build").runs.get(number=1)


def test_deleting_a_version_an_unfinished_run_uses_is_409(run_on_version_1, alice):
    assert alice.get(f"{BUILD}/configs/1").json()["config"]["state"] == "deprecated"
    response = alice.delete(f"{BUILD}/configs/1")
    assert response.status_code == 409
    assert response.json()["error_code"] == "conflict"
    assert response.json()["message"] == "version 1 is used by a run that has not finished"
    assert response.json()["errors"][0]["field"] == "version"
    assert PipelineConfig.objects.filter(pipeline__slug="build", version=1).exists()


def test_a_finished_run_keeps_its_version_number_after_the_config_is_deleted(run_on_version_1, alice):
    run_on_version_1.state, run_on_version_1.status = "complete", "successful"
    run_on_version_1.save()
    assert alice.delete(f"{BUILD}/configs/1").status_code == 204
    assert alice.get(f"{BUILD}/runs/1").json()["run"]["pipeline_config_version"] == 1


@pytest.mark.parametrize(("version", "status"), [("0", 400), ("abc", 400), ("9", 404)])
def test_delete_of_a_bad_or_missing_version(three_versions, alice, version, status):
    response = alice.delete(f"{BUILD}/configs/{version}")
    assert response.status_code == status
    assert response.json()["errors"][0]["field"] == "version"


def test_read_only_member_cannot_delete_a_config(three_versions, bob):
    assert bob.delete(f"{BUILD}/configs/1").status_code == 403
