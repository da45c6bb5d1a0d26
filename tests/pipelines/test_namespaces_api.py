"""Namespaces: list (scoped), get, and create/update/delete for admins."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, transaction

from events.models import Event
from pipelines.models import Namespace

NAMESPACE_KEYS = {"id", "name", "description", "allow_attach", "created", "modified"}


def create(caller, namespace_id="my-ns", name="My namespace", description="mine"):
    return caller.post("/api/namespaces", {"id": namespace_id, "name": name, "description": description})


def test_admin_lists_every_namespace(admin, namespaces):
    response = admin.get("/api/namespaces")
    assert response.status_code == 200
    listed = response.json()["namespaces"]
    assert [n["id"] for n in listed] == ["default", "team-a", "team-b"]
    assert all(set(n) == NAMESPACE_KEYS for n in listed)
    team_a = listed[1]
    assert team_a["name"] == "Team A"
    assert team_a["created"] > 1_600_000_000_000
    assert team_a["modified"] >= team_a["created"]


def test_the_default_namespace_exists_after_migrate(admin):
    response = admin.get("/api/namespaces/default")
    assert response.status_code == 200
    assert response.json()["namespace"]["name"] == "Default"


@pytest.mark.parametrize(
    ("caller", "visible"), [("alice", ["team-a"]), ("bob", ["team-a"]), ("charlie", ["team-b"]), ("user", ["default"])]
)
def test_the_namespace_list_is_scoped(request, namespaces, caller, visible):
    response = request.getfixturevalue(caller).get("/api/namespaces")
    assert response.status_code == 200
    assert [n["id"] for n in response.json()["namespaces"]] == visible


def test_admin_creates_a_namespace(admin):
    response = create(admin)
    assert response.status_code == 201
    namespace = response.json()["namespace"]
    assert set(namespace) == NAMESPACE_KEYS
    assert (namespace["id"], namespace["name"], namespace["description"]) == ("my-ns", "My namespace", "mine")
    assert abs(namespace["created"] - time.time() * 1000) < 60_000
    assert Namespace.objects.filter(id="my-ns").exists()
    event = Event.objects.get(kind="created_namespace", namespace_id="my-ns")
    assert event.details == {"namespace_id": "my-ns"}


def test_description_is_optional(admin):
    response = admin.post("/api/namespaces", {"id": "my-ns", "name": "x"})
    assert response.status_code == 201
    assert response.json()["namespace"]["description"] == ""


def test_duplicate_namespace_is_409(admin, namespaces):
    response = create(admin, "team-a")
    assert response.status_code == 409
    assert response.json()["error_code"] == "conflict"
    assert response.json()["errors"][0]["field"] == "id"
    assert Namespace.objects.get(id="team-a").name == "Team A"


@pytest.mark.parametrize(
    ("namespace_id", "says"),
    [
        ("ab", "must be 3 to 32 characters long"),
        ("x" * 33, "must be 3 to 32 characters long"),
        ("a_b", "may only contain letters, digits and '-'"),
        ("my ns", "may only contain"),
        ("ns/x", "may only contain"),
        ("ñam", "may only contain"),
        ("team-a\n", "may only contain"),
        (None, "must be a string"),
        (123, "must be a string"),
    ],
)
def test_identifier_rule_is_enforced(admin, namespace_id, says):
    response = create(admin, namespace_id)
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == f"id: {says}" or body["message"].startswith(f"id: {says}")
    assert body["errors"][0]["field"] == "id"
    assert Namespace.objects.count() == 1


@pytest.mark.parametrize("namespace_id", ["my-ns", "abc", "x" * 32, "A-1"])
def test_valid_identifiers_are_accepted(admin, namespace_id):
    assert create(admin, namespace_id).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "my-ns"}, "name"),
        ({"id": "my-ns", "name": ""}, "name"),
        ({"id": "my-ns", "name": "   "}, "name"),
        ({"id": "my-ns", "name": 5}, "name"),
        ({"id": "my-ns", "name": "x" * 201}, "name"),
        ({"id": "my-ns", "name": "x", "description": 5}, "description"),
        ({"id": "my-ns", "name": "x", "description": "x" * 2001}, "description"),
    ],
)
def test_invalid_namespace_fields_are_400(admin, body, field):
    response = admin.post("/api/namespaces", body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("caller", ["alice", "user"])
def test_only_admins_create_namespaces(request, namespaces, caller):
    response = create(request.getfixturevalue(caller))
    assert response.status_code == 403
    assert response.json()["message"] == "this route needs the admin role"
    assert not Namespace.objects.filter(id="my-ns").exists()


def test_anonymous_cannot_create_namespaces(anonymous):
    assert create(anonymous).status_code == 401


def test_get_a_namespace(alice):
    response = alice.get("/api/namespaces/team-a")
    assert response.status_code == 200
    assert response.json()["namespace"]["id"] == "team-a"
    assert set(response.json()["namespace"]) == NAMESPACE_KEYS


def test_outsider_gets_404(charlie):
    response = charlie.get("/api/namespaces/team-a")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace team-a not found"


def test_a_missing_namespace_is_404_naming_it(admin):
    response = admin.get("/api/namespaces/nowhere")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace nowhere not found"
    assert response.json()["errors"][0]["field"] == "namespace_id"


def test_admin_updates_a_namespace(admin, namespaces):
    before = admin.get("/api/namespaces/team-a").json()["namespace"]
    response = admin.patch("/api/namespaces/team-a", {"name": "Team Alpha", "description": "renamed"})
    assert response.status_code == 200
    after = response.json()["namespace"]
    assert (after["name"], after["description"]) == ("Team Alpha", "renamed")
    assert after["created"] == before["created"]
    assert after["modified"] >= before["modified"]
    assert "changed" not in response.json()
    assert "Gofer-Changed" not in response
    assert Namespace.objects.get(id="team-a").name == "Team Alpha"
    assert Event.objects.filter(kind="updated_namespace", namespace_id="team-a").count() == 1


def test_patch_with_no_change_says_changed_false(admin, namespaces):
    response = admin.patch("/api/namespaces/team-a", {"name": "Team A"})
    assert response.status_code == 200
    assert response["Gofer-Changed"] == "false"
    body = response.json()
    assert body["changed"] is False
    assert body["namespace"]["name"] == "Team A"
    assert not Event.objects.filter(kind="updated_namespace").exists()


def test_empty_patch_says_changed_false(admin, namespaces):
    response = admin.patch("/api/namespaces/team-a", {})
    assert response.status_code == 200
    assert response["Gofer-Changed"] == "false"
    assert response.json()["changed"] is False


@pytest.mark.parametrize(
    ("body", "field"), [({"name": ""}, "name"), ({"name": 1}, "name"), ({"description": []}, "description")]
)
def test_invalid_patch_is_400(admin, namespaces, body, field):
    response = admin.patch("/api/namespaces/team-a", body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert Namespace.objects.get(id="team-a").name == "Team A"


def test_patch_cannot_change_the_id(admin, namespaces):
    response = admin.patch("/api/namespaces/team-a", {"id": "team-z"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id"


def test_member_cannot_update_or_delete_its_namespace(alice):
    assert alice.patch("/api/namespaces/team-a", {"name": "Mine"}).status_code == 403
    assert alice.delete("/api/namespaces/team-a").status_code == 403
    assert Namespace.objects.get(id="team-a").name == "Team A"


def test_outsider_gets_404_on_update_and_delete(charlie):
    assert charlie.patch("/api/namespaces/team-a", {"name": "Mine"}).status_code == 404
    assert charlie.delete("/api/namespaces/team-a").status_code == 404


def test_admin_deletes_a_namespace(admin, namespaces):
    assert admin.delete("/api/namespaces/team-b").status_code == 204
    assert admin.get("/api/namespaces/team-b").status_code == 404
    assert [n["id"] for n in admin.get("/api/namespaces").json()["namespaces"]] == ["default", "team-a"]
    assert Event.objects.filter(kind="deleted_namespace", namespace_id="team-b").exists()


def test_delete_of_a_missing_namespace_is_404(admin):
    assert admin.delete("/api/namespaces/nowhere").status_code == 404


# --- issue 8, finding 19: ids that differ only in case share a directory on case-insensitive filesystems ------------


@pytest.mark.parametrize(("first", "second"), [("PRBB", "prbb"), ("prbb", "PRBB"), ("Team-X", "tEAM-x")])
def test_a_namespace_differing_only_in_case_is_409_naming_id(admin, first, second):
    assert create(admin, first).status_code == 201
    response = create(admin, second)
    assert response.status_code == 409, response.json()
    assert response.json()["errors"][0]["field"] == "id"
    assert first in response.json()["message"]
    assert list(Namespace.objects.filter(id__iexact=first).values_list("id", flat=True)) == [first]


def test_the_database_refuses_case_insensitive_duplicates_whoever_writes(admin):
    """Race-free: the constraint is the database's, so two concurrent creations cannot both pass a check."""
    Namespace.objects.create(id="prbb", name="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Namespace.objects.create(id="PRBB", name="y")


# --- issue 8, finding 1: attach can be turned off per namespace ------------------------------------------------------


def test_attach_is_allowed_in_a_new_namespace_and_admins_turn_it_off(admin, namespaces):
    assert admin.get("/api/namespaces/team-a").json()["namespace"]["allow_attach"] is True
    response = admin.patch("/api/namespaces/team-a", {"allow_attach": False})
    assert response.status_code == 200
    assert response.json()["namespace"]["allow_attach"] is False
    assert Namespace.objects.get(id="team-a").allow_attach is False
    assert Event.objects.filter(kind="updated_namespace", namespace_id="team-a").count() == 1
    assert admin.patch("/api/namespaces/team-a", {"allow_attach": False}).json()["changed"] is False


def test_allow_attach_must_be_a_boolean(admin, namespaces):
    response = admin.patch("/api/namespaces/team-a", {"allow_attach": "no"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "allow_attach"


def test_members_cannot_turn_attach_back_on(alice, namespaces):
    Namespace.objects.filter(id="team-a").update(allow_attach=False)
    assert alice.patch("/api/namespaces/team-a", {"allow_attach": True}).status_code == 403
    assert Namespace.objects.get(id="team-a").allow_attach is False
