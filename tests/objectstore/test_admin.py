"""The operators' console for pipeline, run and extension objects: key records only, deletes through the services
(the blob goes from disk once the delete commits), and tenant scoping of staff users."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.urls import reverse

from objectstore import services as objects
from objectstore.models import ExtensionObject, PipelineObject, RunObject
from runs.models import Run
from tests.conftest import deployed_pipeline
from tests.support.admin import (
    TEAM_A_READ,
    WRITES_A_READS_B,
    change_url,
    changelist_url,
    delete_url,
    messages_of,
    staff_client,
)
from tests.support.objects import blob_files, start_run

BYTES_A = b"bytes-of-team-a-object-0123456789"
BYTES_B = b"bytes-of-team-b-object-9876543210"
BYTES_RUN = b"bytes-of-the-run-object-42"
BYTES_EXT = b"bytes-of-the-extension-object-7"


@pytest.fixture
def data(namespaces):
    team_a, team_b = deployed_pipeline("team-a"), deployed_pipeline("team-b")
    run = start_run(team_a)
    return {
        "team-a": objects.put_pipeline_object(team_a, "build.tar", [BYTES_A]),
        "team-b": objects.put_pipeline_object(team_b, "build.tar", [BYTES_B]),
        "run": objects.put_run_object(run, "report.json", [BYTES_RUN]),
        "run-b": objects.put_run_object(start_run(team_b), "report.json", [b"team-b run bytes"]),
        "extension": objects.put_extension_object("cron-ext", "state", [BYTES_EXT]),
    }


def html(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, url
    return response.content.decode()


def results(response) -> list[str]:
    """The listed objects as ``<namespace or extension>/<key>``."""
    assert response.status_code == 200
    return sorted(
        f"{getattr(obj, 'namespace_id', None) or obj.extension_id}/{obj.key}"
        for obj in response.context["cl"].result_list
    )


# --- pages ------------------------------------------------------------------------------------------------------------


def test_every_object_page_shows_key_size_and_digest_but_not_the_bytes(admin_client, data):
    everything = ""
    for obj in data.values():
        for url in (changelist_url(type(obj)), change_url(obj), delete_url(obj)):
            page = html(admin_client, url)
            assert obj.key in page, url
            everything += page
        detail = html(admin_client, change_url(obj))
        assert obj.sha256 in detail
        assert f"{obj.size} bytes" in detail
    everything += html(admin_client, reverse("admin:app_list", args=["objectstore"]))
    for content in (BYTES_A, BYTES_B, BYTES_RUN, BYTES_EXT):
        assert content.decode() not in everything
    for obj in data.values():
        assert obj.blob not in everything  # the backend's name for the bytes stays internal
    assert "team-a/build run 1" in html(admin_client, change_url(data["run"]))
    assert "cron-ext" in html(admin_client, change_url(data["extension"]))


def test_objects_cannot_be_added_or_changed_in_the_console(admin_client, data):
    for model in (PipelineObject, RunObject, ExtensionObject):
        opts = model._meta
        assert admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 403
    obj = data["team-a"]
    response = admin_client.post(change_url(obj), {"key": "renamed", "size": "1", "sha256": "0" * 64})
    assert response.status_code == 403
    obj.refresh_from_db()
    assert (obj.key, obj.size) == ("build.tar", len(BYTES_A))


def test_objects_can_be_searched_and_filtered(admin_client, data):
    assert results(admin_client.get(changelist_url(PipelineObject))) == ["team-a/build.tar", "team-b/build.tar"]
    assert results(admin_client.get(changelist_url(PipelineObject), {"q": "team-b"})) == ["team-b/build.tar"]
    assert results(admin_client.get(changelist_url(PipelineObject), {"namespace__id__exact": "team-a"})) == [
        "team-a/build.tar"
    ]
    assert results(admin_client.get(changelist_url(RunObject), {"q": data["run"].sha256})) == ["team-a/report.json"]
    assert results(admin_client.get(changelist_url(ExtensionObject), {"extension_id": "cron-ext"})) == [
        "cron-ext/state"
    ]


# --- deleting through the services ----------------------------------------------------------------------------------


def test_deleting_an_object_goes_through_the_service_and_its_blob_leaves_the_disk(
    admin_client, data, django_capture_on_commit_callbacks
):
    obj = data["team-a"]
    before = blob_files()
    assert len(before) == 5
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(delete_url(obj), {"post": "yes"})
    assert response.status_code == 302
    assert not PipelineObject.objects.filter(pk=obj.pk).exists()
    # Only the service deletes the bytes: Model.delete would have left the blob behind.
    assert len(blob_files()) == 4
    assert not any(path.name == obj.blob for path in blob_files())
    assert LogEntry.objects.filter(object_id=str(obj.pk), action_flag=DELETION).exists()


def test_run_and_extension_objects_are_deleted_through_their_services(
    admin_client, data, django_capture_on_commit_callbacks
):
    run_object, extension_object = data["run"], data["extension"]
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(delete_url(run_object), {"post": "yes"}).status_code == 302
        assert admin_client.post(delete_url(extension_object), {"post": "yes"}).status_code == 302
    assert not RunObject.objects.filter(pk=run_object.pk).exists()
    assert not ExtensionObject.objects.exists()
    names = {path.name for path in blob_files()}
    assert run_object.blob not in names and extension_object.blob not in names
    assert len(names) == 3


def test_bulk_delete_goes_through_the_service_for_each_object(admin_client, data, django_capture_on_commit_callbacks):
    selected = [data["team-a"].pk, data["team-b"].pk]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            changelist_url(PipelineObject), {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
        )
    assert response.status_code == 302
    assert any("Deleted 2 pipeline objects" in m for m in messages_of(response))
    assert not PipelineObject.objects.exists()
    assert {path.name for path in blob_files()} == {data["run"].blob, data["run-b"].blob, data["extension"].blob}


def test_a_refused_delete_keeps_the_object_and_says_why(admin_client, data, django_capture_on_commit_callbacks):
    run_object = data["run"]
    # The run's objects expired after the page was opened: the service refuses, the row and its bytes stay.
    Run.objects.filter(pk=run_object.run_id).update(store_objects_expired=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(delete_url(run_object), {"post": "yes"})
    assert response.status_code == 302
    assert response.url == change_url(run_object)
    assert any("was not deleted" in m and "expired" in m for m in messages_of(response))
    assert RunObject.objects.filter(pk=run_object.pk).exists()
    assert run_object.blob in {path.name for path in blob_files()}
    assert not LogEntry.objects.filter(object_id=str(run_object.pk), action_flag=DELETION).exists()


# --- tenancy ----------------------------------------------------------------------------------------------------------


def test_staff_with_a_team_a_role_sees_only_team_a_objects(data):
    client = staff_client("ann", TEAM_A_READ)
    assert results(client.get(changelist_url(PipelineObject))) == ["team-a/build.tar"]
    assert results(client.get(changelist_url(RunObject))) == ["team-a/report.json"]
    assert "team-b" not in client.get(changelist_url(PipelineObject)).content.decode()
    assert client.get(change_url(data["team-a"])).status_code == 200
    for obj in (data["team-b"], data["run-b"]):
        assert client.get(change_url(obj)).status_code == 404, obj
        assert client.get(delete_url(obj)).status_code == 404, obj
    # Extension stores are for superusers only.
    assert client.get(changelist_url(ExtensionObject)).status_code == 403
    assert client.get(change_url(data["extension"])).status_code == 403
    assert client.post(delete_url(data["team-a"]), {"post": "yes"}).status_code == 403  # read-only role
    assert staff_client("nobody", None).get(changelist_url(PipelineObject)).status_code == 403


def test_staff_delete_only_inside_their_namespace(data, django_capture_on_commit_callbacks):
    client = staff_client("ann", WRITES_A_READS_B)
    team_a, team_b = data["team-a"], data["team-b"]
    assert client.get(change_url(team_b)).status_code == 200
    assert client.post(delete_url(team_b), {"post": "yes"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            changelist_url(PipelineObject),
            {"action": "delete_selected", "_selected_action": [team_a.pk, team_b.pk], "post": "yes"},
        )
    assert any("do not allow you to delete 1 pipeline object: build.tar" in m for m in messages_of(response))
    assert list(PipelineObject.objects.values_list("namespace_id", flat=True)) == ["team-b"]
    assert team_a.blob not in {path.name for path in blob_files()}
    assert team_b.blob in {path.name for path in blob_files()}
