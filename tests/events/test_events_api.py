"""The event log over HTTP: a scoped list, single events, admin delete, and ``after``."""

from __future__ import annotations

import pytest

from access import services as access
from events.models import Event
from pipelines import services as pipelines
from pipelines.models import Namespace
from tests.conftest import make_caller, simple_config


def kinds_and_namespaces(caller, **params):
    response = caller.get("/api/events", limit="500", **params)
    assert response.status_code == 200, response.content
    return [
        (next(iter(e["kind"])), e["kind"][next(iter(e["kind"]))].get("namespace_id")) for e in response.json()["events"]
    ]


@pytest.fixture
def history(namespaces):
    """Events in team-a, team-b and default, plus system events (a role, tokens)."""
    for ns in ("team-a", "team-b"):
        pipelines.register_config(Namespace.objects.get(id=ns), "build", simple_config())
    access.create_role("auditor", "", [{"resources": ["runs"], "actions": ["read"]}])


def test_an_event_has_gofers_shape(history, admin):
    events = admin.get("/api/events").json()["events"]
    assert events
    first = events[0]
    assert set(first) == {"id", "kind", "emitted"}
    assert isinstance(first["id"], str) and first["id"].isdigit()
    assert isinstance(first["kind"], dict) and len(first["kind"]) == 1
    assert first["emitted"] > 1_600_000_000_000


def test_events_are_listed_oldest_first(history, admin):
    ids = [int(e["id"]) for e in admin.get("/api/events", limit="500").json()["events"]]
    assert ids == sorted(ids)
    reversed_ids = [int(e["id"]) for e in admin.get("/api/events", limit="500", reverse="true").json()["events"]]
    assert reversed_ids == ids[::-1]


def test_a_tenant_sees_its_namespaces_events_only(history, alice):
    seen = kinds_and_namespaces(alice)
    assert ("created_namespace", "team-a") in seen
    assert ("registered_pipeline_config", "team-a") in seen
    assert {ns for _, ns in seen} == {"team-a"}


def test_a_tenant_does_not_see_system_events(history, alice):
    kinds = {kind for kind, _ in kinds_and_namespaces(alice)}
    assert not kinds & {"created_role", "created_token"}


def test_admin_sees_system_events(history, admin):
    seen = kinds_and_namespaces(admin)
    assert ("created_role", None) in seen
    assert {"team-a", "team-b"} <= {ns for _, ns in seen}


def test_a_read_only_member_with_events_sees_them(history, bob):
    seen = kinds_and_namespaces(bob)
    assert ("created_pipeline", "team-a") in seen
    assert {ns for _, ns in seen} == {"team-a"}


def test_a_role_without_events_sees_none(history):
    access.create_role(
        "no-events", "", [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], "actions": ["read"]}]
    )
    caller = make_caller("no-events", ["no-events"])
    response = caller.get("/api/events")
    assert response.status_code == 403
    assert response.json()["message"] == "this token lacks permission read on events"
    assert caller.get(f"/api/events/{Event.objects.filter(namespace_id='team-a').first().id}").status_code == 403


def test_the_user_role_sees_default_only(history, user):
    pipelines.register_config(Namespace.objects.get(id="default"), "hello", simple_config("hello"))
    assert {ns for _, ns in kinds_and_namespaces(user)} == {"default"}


def test_pipeline_events_follow_the_pipeline_target(history):
    team_a = Namespace.objects.get(id="team-a")
    pipelines.register_config(team_a, "web-app", simple_config("web-app"))
    access.create_role(
        "web-events", "", [{"resources": ["namespaces:^team-a$", "pipelines:^web-", "events"], "actions": ["read"]}]
    )
    events = make_caller("web", ["web-events"]).get("/api/events", limit="500").json()["events"]
    pipeline_ids = {e["kind"][next(iter(e["kind"]))].get("pipeline_id") for e in events}
    assert pipeline_ids == {None, "web-app"}


def test_anonymous_gets_401(history, anonymous):
    assert anonymous.get("/api/events").status_code == 401


def test_after_returns_only_newer_events(history, admin):
    ids = [int(e["id"]) for e in admin.get("/api/events", limit="500").json()["events"]]
    middle = ids[len(ids) // 2]
    after = [int(e["id"]) for e in admin.get("/api/events", after=str(middle), limit="500").json()["events"]]
    assert after == [i for i in ids if i > middle]
    assert admin.get("/api/events", after=str(ids[-1])).json() == {"events": []}


def test_an_after_beyond_every_id_is_an_empty_list(history, admin):
    assert admin.get("/api/events", after="9" * 30).json() == {"events": []}


def test_after_applies_before_pagination(history, admin):
    ids = [int(e["id"]) for e in admin.get("/api/events", limit="500").json()["events"]]
    page = [int(e["id"]) for e in admin.get("/api/events", after=str(ids[0]), limit="2").json()["events"]]
    assert page == ids[1:3]


@pytest.mark.parametrize(("after", "says"), [("abc", "must be an integer"), ("-1", "must be at least 0")])
def test_a_bad_after_is_400_naming_it(history, admin, after, says):
    response = admin.get("/api/events", after=after)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"after: {says}")
    assert response.json()["errors"][0]["field"] == "after"


def test_get_an_event(history, alice):
    event = Event.objects.filter(kind="created_pipeline", namespace_id="team-a").get()
    response = alice.get(f"/api/events/{event.id}")
    assert response.status_code == 200
    assert response.json()["event"] == {
        "id": str(event.id),
        "kind": {"created_pipeline": {"namespace_id": "team-a", "pipeline_id": "build"}},
        "emitted": response.json()["event"]["emitted"],
    }
    assert response.json()["event"]["emitted"] == int(event.emitted.timestamp() * 1000)


def test_another_tenants_event_is_404(history, alice):
    event = Event.objects.filter(namespace_id="team-b").first()
    response = alice.get(f"/api/events/{event.id}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "event_id"


def test_a_system_event_is_404_for_a_tenant(history, alice):
    event = Event.objects.get(kind="created_role", details={"role_id": "auditor"})
    assert alice.get(f"/api/events/{event.id}").status_code == 404


@pytest.mark.parametrize("event_id", ["abc", "999999", "-1", "1_0", "+1", "9" * 30])
def test_a_bad_or_missing_event_id_is_404(history, admin, event_id):
    response = admin.get(f"/api/events/{event_id}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "event_id"


def test_admin_deletes_an_event(history, admin):
    event = Event.objects.filter(namespace_id="team-a").first()
    assert admin.delete(f"/api/events/{event.id}").status_code == 204
    assert not Event.objects.filter(id=event.id).exists()
    assert admin.get(f"/api/events/{event.id}").status_code == 404


def test_deleting_events_is_admin_only(history, alice):
    event = Event.objects.filter(namespace_id="team-a").first()
    response = alice.delete(f"/api/events/{event.id}")
    assert response.status_code == 403
    assert response.json()["message"] == "this route needs the admin role"
    assert Event.objects.filter(id=event.id).exists()


def test_deleting_a_missing_event_is_404(history, admin):
    assert admin.delete("/api/events/999999").status_code == 404
    assert admin.delete("/api/events/abc").status_code == 404
    assert admin.delete(f"/api/events/{'9' * 30}").status_code == 404
