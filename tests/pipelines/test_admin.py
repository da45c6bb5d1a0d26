"""The operators' console for namespaces, pipelines, configs, tasks and deployments: pages, actions through the
services, deletion through the services, and tenant scoping of staff users."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.urls import reverse

from events.models import Event
from pipelines import services as pipelines
from pipelines.choices import ConfigState, PipelineState
from pipelines.models import Deployment, Namespace, Pipeline, PipelineConfig, Task
from runs.models import Run
from tests.conftest import simple_config
from tests.support.admin import (
    TEAM_A_FULL,
    TEAM_A_READ,
    WRITES_A_READS_B,
    change_url,
    changelist_url,
    delete_url,
    messages_of,
    staff_client,
    tenant_data,
)


@pytest.fixture
def data(namespaces):
    return tenant_data()


def test_every_pipelines_page_renders_for_a_superuser(admin_client, data):
    team_a = data["team-a"]
    pages = {
        changelist_url(Namespace): "team-a",
        change_url(team_a.namespace): "Team A",
        reverse("admin:pipelines_namespace_add"): "Name",
        changelist_url(Pipeline): "build",
        change_url(team_a.pipeline): "build",
        changelist_url(PipelineConfig): "team-a/build v1",
        change_url(team_a.config): "team-a/build v1",
        changelist_url(Task): "compile",
        change_url(team_a.task): "busybox:latest",
        changelist_url(Deployment): "team-a/build deployment 1",
        change_url(team_a.deployment): "team-a/build deployment 1",
    }
    for url, expected in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url


def test_pipelines_can_be_searched_and_filtered(admin_client, data):
    pipelines.register_config(data["team-a"].namespace, "deploy", simple_config("deploy"))
    pipelines.set_pipeline_state(data["team-b"].pipeline, PipelineState.DISABLED)

    found = admin_client.get(changelist_url(Pipeline), {"q": "deploy"})
    assert list(found.context["cl"].result_list.values_list("slug", flat=True)) == ["deploy"]

    disabled = admin_client.get(changelist_url(Pipeline), {"state__exact": "disabled"})
    assert [str(p) for p in disabled.context["cl"].result_list] == ["team-b/build"]

    in_team_a = admin_client.get(changelist_url(Pipeline), {"namespace__id__exact": "team-a"})
    assert sorted(str(p) for p in in_team_a.context["cl"].result_list) == ["team-a/build", "team-a/deploy"]

    live = admin_client.get(changelist_url(PipelineConfig), {"state__exact": ConfigState.LIVE})
    assert sorted(str(c) for c in live.context["cl"].result_list) == ["team-a/build v1", "team-b/build v1"]


def test_a_pipeline_page_lists_its_configs_with_links(admin_client, data):
    pipeline = data["team-a"].pipeline
    _, v2 = pipelines.register_config(pipeline.namespace, "build", simple_config())
    page = admin_client.get(change_url(pipeline)).content.decode()
    assert "config versions" in page.lower()
    assert f'href="{change_url(data["team-a"].config)}"' in page
    assert f'href="{change_url(v2)}"' in page
    assert "Live (runs use it)" in page
    # Read-only: no form fields for the configs.
    assert 'name="configs-0-name"' not in page


def test_a_config_page_lists_its_tasks_without_registry_passwords(admin_client, namespaces):
    config = simple_config()
    config["tasks"][0]["registry_auth"] = {"user": "robot", "pass": "hunter2-secret"}
    _, registered = pipelines.register_config(namespaces["team-a"], "build", config)

    for url in (change_url(registered), change_url(registered.tasks.get(slug="compile"))):
        page = admin_client.get(url).content.decode()
        assert "compile" in page
        assert "user robot, password [redacted]" in page
        assert "hunter2-secret" not in page
    tasks_page = admin_client.get(change_url(registered)).content.decode()
    assert "test" in tasks_page and 'name="tasks-0-image"' not in tasks_page


def test_the_disable_and_enable_actions_go_through_the_service(admin_client, data):
    pipeline = data["team-a"].pipeline
    response = admin_client.post(
        changelist_url(Pipeline), {"action": "disable_pipelines", "_selected_action": [pipeline.pk]}
    )
    assert response.status_code == 302
    pipeline.refresh_from_db()
    assert pipeline.state == PipelineState.DISABLED
    assert Event.objects.filter(kind="disabled_pipeline", namespace_id="team-a", pipeline_slug="build").exists()
    assert any("Disabled 1 pipeline: team-a/build" in m for m in messages_of(response))

    admin_client.post(changelist_url(Pipeline), {"action": "enable_pipelines", "_selected_action": [pipeline.pk]})
    pipeline.refresh_from_db()
    assert pipeline.state == PipelineState.ACTIVE
    assert Event.objects.filter(kind="enabled_pipeline", namespace_id="team-a").exists()


def test_the_deploy_action_makes_the_version_live_and_records_a_deployment(admin_client, data):
    pipeline = data["team-a"].pipeline
    _, v2 = pipelines.register_config(pipeline.namespace, "build", simple_config())
    response = admin_client.post(
        changelist_url(PipelineConfig), {"action": "deploy_configs", "_selected_action": [v2.pk]}
    )
    assert response.status_code == 302
    v2.refresh_from_db()
    assert v2.state == ConfigState.LIVE
    assert PipelineConfig.objects.get(pipeline=pipeline, version=1).state == ConfigState.DEPRECATED
    deployment = Deployment.objects.get(pipeline=pipeline, end_version=2)
    assert (deployment.start_version, deployment.number) == (1, 2)
    assert any("Deployed 1 pipeline config: team-a/build v2 (deployment 2)" in m for m in messages_of(response))

    again = admin_client.post(changelist_url(PipelineConfig), {"action": "deploy_configs", "_selected_action": [v2.pk]})
    assert any("already live" in m for m in messages_of(again))
    assert Deployment.objects.filter(pipeline=pipeline).count() == 2


def test_deploying_two_versions_of_one_pipeline_at_once_is_refused(admin_client, data):
    pipeline = data["team-a"].pipeline
    _, v2 = pipelines.register_config(pipeline.namespace, "build", simple_config())
    _, v3 = pipelines.register_config(pipeline.namespace, "build", simple_config())
    response = admin_client.post(
        changelist_url(PipelineConfig), {"action": "deploy_configs", "_selected_action": [v2.pk, v3.pk]}
    )
    assert any("select one version per pipeline" in m for m in messages_of(response))
    assert PipelineConfig.objects.get(pipeline=pipeline, state=ConfigState.LIVE).version == 1


def test_deleting_a_namespace_goes_through_the_service(admin_client, data):
    namespace = data["team-a"].namespace
    confirm = admin_client.get(delete_url(namespace))
    assert confirm.status_code == 200
    assert "Runs: 1" in confirm.content.decode()

    response = admin_client.post(delete_url(namespace), {"post": "yes"})
    assert response.status_code == 302
    assert not Namespace.objects.filter(id="team-a").exists()
    assert not Pipeline.objects.filter(namespace_id="team-a").exists()
    assert not Run.objects.filter(namespace_id="team-a").exists()
    assert Event.objects.filter(kind="deleted_namespace", namespace_id="team-a").exists()
    assert Pipeline.objects.filter(namespace_id="team-b").exists()


def test_bulk_deleting_pipelines_goes_through_the_service(admin_client, data):
    selected = [data["team-a"].pipeline.pk, data["team-b"].pipeline.pk]
    confirm = admin_client.post(changelist_url(Pipeline), {"action": "delete_selected", "_selected_action": selected})
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.content.decode()

    response = admin_client.post(
        changelist_url(Pipeline), {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
    )
    assert response.status_code == 302
    assert not Pipeline.objects.exists()
    assert Event.objects.filter(kind="deleted_pipeline").count() == 2
    assert any("Deleted 2 pipelines" in m for m in messages_of(response))


def test_deleting_the_live_config_is_refused_with_a_message_not_a_500(admin_client, data):
    config = data["team-a"].config
    response = admin_client.post(delete_url(config), {"post": "yes"})
    assert response.status_code == 302
    assert response.url == change_url(config)
    assert any("is the latest version and cannot be deleted" in m for m in messages_of(response))
    assert PipelineConfig.objects.filter(pk=config.pk).exists()
    assert not Event.objects.filter(kind="deleted_pipeline_config").exists()
    # The console's own history entry for the delete was rolled back with it.
    assert not LogEntry.objects.filter(object_id=str(config.pk), action_flag=DELETION).exists()


def test_an_old_config_is_deleted_through_the_service(admin_client, namespaces):
    pipeline, v1 = pipelines.register_config(namespaces["team-a"], "build", simple_config())
    pipelines.register_config(namespaces["team-a"], "build", simple_config())
    pipelines.deploy_config(pipeline, 2)
    response = admin_client.post(delete_url(v1), {"post": "yes"})
    assert response.status_code == 302
    assert not PipelineConfig.objects.filter(pipeline=pipeline, version=1).exists()
    assert Event.objects.filter(kind="deleted_pipeline_config", details__version=1).exists()


def test_a_config_that_an_unfinished_run_uses_is_not_deleted(admin_client, data):
    pipeline = data["team-a"].pipeline
    pipelines.register_config(pipeline.namespace, "build", simple_config())
    pipelines.deploy_config(pipeline, 2)
    response = admin_client.post(delete_url(data["team-a"].config), {"post": "yes"})
    assert response.status_code == 302
    assert any("used by a run that has not finished" in m for m in messages_of(response))
    assert PipelineConfig.objects.filter(pipeline=pipeline, version=1).exists()


def test_namespaces_are_created_and_renamed_through_the_services(admin_client, db):
    response = admin_client.post(
        reverse("admin:pipelines_namespace_add"), {"id": "team-c", "name": "Team C", "description": "third"}
    )
    assert response.status_code == 302
    assert Namespace.objects.get(id="team-c").name == "Team C"
    assert Event.objects.filter(kind="created_namespace", namespace_id="team-c").exists()

    namespace = Namespace.objects.get(id="team-c")
    response = admin_client.post(
        change_url(namespace),
        {"name": "Team Sea", "description": "third", "pipelines-TOTAL_FORMS": "0", "pipelines-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 302
    assert Namespace.objects.get(id="team-c").name == "Team Sea"
    assert Event.objects.filter(kind="updated_namespace", namespace_id="team-c").exists()


def test_a_namespace_id_is_checked_like_the_api_does(admin_client, db):
    response = admin_client.post(reverse("admin:pipelines_namespace_add"), {"id": "no spaces!", "name": "Bad"})
    assert response.status_code == 200
    assert "id: may only contain letters, digits and &#x27;-&#x27;" in response.content.decode()
    assert not Namespace.objects.filter(name="Bad").exists()


# --- tenancy ----------------------------------------------------------------------------------------------------------


def test_staff_with_a_team_a_role_sees_only_team_a(data):
    client = staff_client("ann", TEAM_A_READ)
    expectations = {
        Namespace: ["team-a"],
        Pipeline: ["team-a/build"],
        PipelineConfig: ["team-a/build v1"],
        Task: ["compile", "test"],
        Deployment: ["team-a/build deployment 1"],
    }
    for model, expected in expectations.items():
        response = client.get(changelist_url(model))
        assert response.status_code == 200, model
        assert sorted(str(obj) for obj in response.context["cl"].result_list) == expected, model
        assert Task.objects.filter(config__namespace_id="team-b").exists()
    # The namespace filter offers only what the user can see.
    assert "team-b" not in client.get(changelist_url(Pipeline)).content.decode()


def test_another_namespaces_objects_are_404_for_staff(data):
    client = staff_client("ann", TEAM_A_READ)
    team_a, team_b = data["team-a"], data["team-b"]
    for obj in (team_b.namespace, team_b.pipeline, team_b.config, team_b.task, team_b.deployment):
        assert client.get(change_url(obj)).status_code == 404, obj
        assert client.get(change_url(obj) + "history/").status_code == 404, obj
        assert client.get(delete_url(obj)).status_code == 404, obj
    for obj in (team_a.namespace, team_a.pipeline, team_a.config, team_a.task, team_a.deployment):
        assert client.get(change_url(obj)).status_code == 200, obj


def test_staff_without_staff_access_sees_nothing(data):
    client = staff_client("nobody", None)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert "Pipelines" not in index.content.decode()
    for model in (Namespace, Pipeline, PipelineConfig, Task, Deployment):
        assert client.get(changelist_url(model)).status_code == 403, model
    assert client.get(change_url(data["team-a"].pipeline)).status_code == 404  # nothing readable: as if absent


def test_read_only_staff_cannot_change_pipelines(data):
    client = staff_client("ann", TEAM_A_READ)
    pipeline = data["team-a"].pipeline
    listing = client.get(changelist_url(Pipeline)).content.decode()
    assert "disable_pipelines" not in listing
    client.post(changelist_url(Pipeline), {"action": "disable_pipelines", "_selected_action": [pipeline.pk]})
    client.post(delete_url(pipeline), {"post": "yes"})
    pipeline.refresh_from_db()
    assert pipeline.state == PipelineState.ACTIVE


def test_staff_with_write_rights_act_only_inside_their_namespace(data):
    client = staff_client("ann", TEAM_A_FULL)
    team_a, team_b = data["team-a"].pipeline, data["team-b"].pipeline
    response = client.post(
        changelist_url(Pipeline), {"action": "disable_pipelines", "_selected_action": [team_a.pk, team_b.pk]}
    )
    assert response.status_code == 302
    team_a.refresh_from_db()
    team_b.refresh_from_db()
    assert team_a.state == PipelineState.DISABLED
    assert team_b.state == PipelineState.ACTIVE
    # Namespaces need the admin role to change, as in the API.
    assert client.post(delete_url(data["team-a"].namespace), {"post": "yes"}).status_code == 403
    assert Namespace.objects.filter(id="team-a").exists()


def test_foreign_key_choices_are_scoped(data, django_user_model):
    staff_client("ann", TEAM_A_FULL)
    request = RequestFactory().get("/admin/")
    request.user = django_user_model.objects.get(username="ann")
    model_admin = site.get_model_admin(PipelineConfig)
    namespace_field = model_admin.formfield_for_foreignkey(PipelineConfig._meta.get_field("namespace"), request)
    pipeline_field = model_admin.formfield_for_foreignkey(PipelineConfig._meta.get_field("pipeline"), request)
    assert [ns.id for ns in namespace_field.queryset] == ["team-a"]
    assert [str(p) for p in pipeline_field.queryset] == ["team-a/build"]

    request = RequestFactory().get("/admin/")
    request.user = django_user_model.objects.create_superuser("root", password="x")
    namespace_field = model_admin.formfield_for_foreignkey(PipelineConfig._meta.get_field("namespace"), request)
    assert sorted(ns.id for ns in namespace_field.queryset) == ["default", "team-a", "team-b"]


def test_actions_and_deletes_skip_what_staff_may_see_but_not_change(data):
    client = staff_client("ann", WRITES_A_READS_B)
    team_a, team_b = data["team-a"].pipeline, data["team-b"].pipeline
    response = client.post(
        changelist_url(Pipeline), {"action": "disable_pipelines", "_selected_action": [team_a.pk, team_b.pk]}
    )
    team_a.refresh_from_db()
    team_b.refresh_from_db()
    assert (team_a.state, team_b.state) == (PipelineState.DISABLED, PipelineState.ACTIVE)
    assert any("do not allow you to disable 1 pipeline: team-b/build" in m for m in messages_of(response))
    assert client.get(change_url(team_b)).status_code == 200

    response = client.post(
        changelist_url(Pipeline),
        {"action": "delete_selected", "_selected_action": [team_a.pk, team_b.pk], "post": "yes"},
    )
    assert list(Pipeline.objects.values_list("namespace_id", flat=True)) == ["team-b"]
    assert any("do not allow you to delete 1 pipeline: team-b/build" in m for m in messages_of(response))
    assert client.post(delete_url(team_b), {"post": "yes"}).status_code == 403
