"""The operators' console for the event log: pages, filters, scoping by events_for, deletion through the service."""

from __future__ import annotations

import pytest

from access import services as access
from events.models import Event
from tests.support.admin import (
    TEAM_A_FULL,
    TEAM_A_READ,
    change_url,
    changelist_url,
    delete_url,
    staff_client,
    tenant_data,
)


@pytest.fixture
def data(namespaces):
    return tenant_data()


def kinds_and_namespaces(response) -> set[tuple[str, str | None]]:
    assert response.status_code == 200
    return {(event.kind, event.namespace_id) for event in response.context["cl"].result_list}


def test_the_event_pages_render_for_a_superuser(admin_client, data):
    event = data["team-a"].event
    listing = admin_client.get(changelist_url(Event))
    assert listing.status_code == 200
    assert "queued_run" in listing.content.decode()
    page = admin_client.get(change_url(event))
    assert page.status_code == 200
    assert "&quot;run_id&quot;: 1" in page.content.decode()


def test_events_can_be_filtered_and_searched(admin_client, data):
    by_kind = kinds_and_namespaces(admin_client.get(changelist_url(Event), {"kind__exact": "queued_run"}))
    assert by_kind == {("queued_run", "team-a"), ("queued_run", "team-b")}
    by_namespace = kinds_and_namespaces(admin_client.get(changelist_url(Event), {"namespace_id": "team-b"}))
    assert by_namespace and {ns for _, ns in by_namespace} == {"team-b"}
    searched = kinds_and_namespaces(admin_client.get(changelist_url(Event), {"q": "completed_deployment"}))
    assert searched == {("completed_deployment", "team-a"), ("completed_deployment", "team-b")}


def test_staff_see_their_namespaces_events_but_not_others_nor_system_events(data):
    access.create_token("someone", ["user"])  # a system event (no namespace): admins only
    assert Event.objects.filter(kind="created_token").exists()
    client = staff_client("ann", TEAM_A_READ)
    response = client.get(changelist_url(Event))
    seen = kinds_and_namespaces(response)
    assert seen and {ns for _, ns in seen} == {"team-a"}
    # The namespace filter offers only the namespaces the user can see.
    assert "team-b" not in response.content.decode()
    assert client.get(change_url(data["team-b"].event)).status_code == 404
    assert client.get(change_url(data["team-a"].event)).status_code == 200


def test_only_admins_delete_events_and_through_the_service(admin_client, data):
    team_a_event = data["team-a"].event
    client = staff_client("ann", TEAM_A_FULL)
    assert client.post(delete_url(team_a_event), {"post": "yes"}).status_code == 403
    assert Event.objects.filter(pk=team_a_event.pk).exists()

    response = admin_client.post(delete_url(team_a_event), {"post": "yes"})
    assert response.status_code == 302
    assert not Event.objects.filter(pk=team_a_event.pk).exists()


def test_events_are_read_only(admin_client, data):
    event = data["team-a"].event
    assert admin_client.post(change_url(event), {"kind": "deleted_namespace"}).status_code == 403
    assert admin_client.get(changelist_url(Event) + "add/").status_code == 403
    event.refresh_from_db()
    assert event.kind == "queued_run"
