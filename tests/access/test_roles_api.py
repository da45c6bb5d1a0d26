"""Roles: list and get for every token; create, update and delete for admins; system roles never change."""

from __future__ import annotations

import pytest

from access.models import Role
from events.models import Event
from tests.conftest import deployed_pipeline, make_caller

ROLE_KEYS = {"id", "description", "permissions", "system_role"}
SYSTEM_ROLES = ["admin", "anonymous", "bootstrap", "user"]
READ_RUNS = [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], "actions": ["read"]}]


def create(caller, role_id="run-reader", description="reads runs", permissions=None):
    return caller.post(
        "/api/roles",
        {"id": role_id, "description": description, "permissions": READ_RUNS if permissions is None else permissions},
    )


def test_admins_list_every_role_including_the_system_roles(admin, alice):
    response = admin.get("/api/roles")
    assert response.status_code == 200
    roles = {r["id"]: r for r in response.json()["roles"]}
    assert set(SYSTEM_ROLES) <= set(roles)
    assert all(set(r) == ROLE_KEYS for r in roles.values())
    assert all(roles[r]["system_role"] is True for r in SYSTEM_ROLES)
    assert roles["team-a-full"]["system_role"] is False


def test_a_token_lists_only_the_roles_it_holds(alice, charlie, user):
    """Issue 8, finding 15: the role list exposed every tenant's namespace ids (in the roles' targets)."""
    assert [r["id"] for r in alice.get("/api/roles").json()["roles"]] == ["team-a-full"]
    assert [r["id"] for r in charlie.get("/api/roles").json()["roles"]] == ["team-b-full"]
    assert [r["id"] for r in user.get("/api/roles").json()["roles"]] == ["user"]


def test_a_role_the_token_does_not_hold_is_404_as_if_it_did_not_exist(alice, charlie):
    response = alice.get("/api/roles/team-b-full")
    assert response.status_code == 404
    assert response.json()["message"] == "role team-b-full not found"
    assert alice.get("/api/roles/admin").status_code == 404
    assert alice.get("/api/roles/team-a-full").status_code == 200


def test_get_a_role(admin):
    response = admin.get("/api/roles/admin")
    assert response.status_code == 200
    assert response.json() == {
        "role": {
            "id": "admin",
            "description": Role.objects.get(id="admin").description,
            "permissions": [{"resources": ["all"], "actions": ["read", "write", "delete"]}],
            "system_role": True,
        }
    }


def test_a_token_gets_a_role_it_holds(user):
    response = user.get("/api/roles/user")
    assert response.status_code == 200
    assert response.json()["role"]["id"] == "user"


def test_get_an_unknown_role_is_404(user):
    response = user.get("/api/roles/wizard")
    assert response.status_code == 404
    assert response.json()["message"] == "role wizard not found"
    assert response.json()["errors"][0]["field"] == "role_id"


def test_roles_need_a_token(anonymous):
    assert anonymous.get("/api/roles").status_code == 401


def test_admin_creates_a_role(admin):
    response = create(admin)
    assert response.status_code == 201
    assert response.json() == {
        "role": {"id": "run-reader", "description": "reads runs", "permissions": READ_RUNS, "system_role": False},
        "warnings": [],
    }
    assert Role.objects.get(id="run-reader").permissions == READ_RUNS
    assert Event.objects.filter(kind="created_role", details={"role_id": "run-reader"}).exists()


def test_role_ids_may_use_underscores(admin):
    assert create(admin, role_id="run_reader").status_code == 201


def test_duplicate_role_is_409(admin):
    create(admin)
    response = create(admin)
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "id"


@pytest.mark.parametrize("role_id", ["ab", "a b", "x" * 65, "", 7, None])
def test_invalid_role_id_is_400(admin, role_id):
    response = create(admin, role_id=role_id)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id"


@pytest.mark.parametrize(
    ("permissions", "field", "says"),
    [
        (
            [{"resources": ["wizards"], "actions": ["read"]}],
            "permissions[0].resources[0]",
            "unknown resource 'wizards'",
        ),
        ([{"resources": ["namespaces:("], "actions": ["read"]}], "permissions[0].resources[0]", "not a valid regex"),
        ([{"resources": ["runs:^x$"], "actions": ["read"]}], "permissions[0].resources[0]", "takes no target"),
        ([{"resources": ["namespaces:"], "actions": ["read"]}], "permissions[0].resources[0]", "empty target"),
        (
            [{"resources": ["runs"], "actions": ["read"]}, {"resources": ["runs", "tokens:x"], "actions": ["read"]}],
            "permissions[1].resources[1]",
            "takes no target",
        ),
        (
            [{"resources": ["runs"], "actions": ["execute"]}],
            "permissions[0].actions[0]",
            "is not read, write or delete",
        ),
        ([{"resources": ["runs"], "actions": ["read", "READ"]}], "permissions[0].actions[1]", "is not read"),
        ([{"resources": [], "actions": ["read"]}], "permissions[0].resources", "non-empty list"),
        ([{"resources": "runs", "actions": ["read"]}], "permissions[0].resources", "non-empty list"),
        ([{"resources": ["runs"], "actions": []}], "permissions[0].actions", "non-empty list"),
        ([{"resources": ["runs"]}], "permissions[0].actions", "non-empty list"),
        ([{"resources": ["runs"], "actions": ["read"], "effect": "deny"}], "permissions[0]", "unknown field 'effect'"),
        (["runs:read"], "permissions[0]", "must be an object"),
        ("all", "permissions", "must be a list"),
    ],
)
def test_invalid_permissions_are_400_naming_the_permission(admin, permissions, field, says):
    response = create(admin, permissions=permissions)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert body["message"].startswith(f"{field}: ")
    assert says in body["message"]
    assert not Role.objects.filter(id="run-reader").exists()


def test_create_role_needs_permissions(admin):
    response = admin.post("/api/roles", {"id": "run-reader", "description": ""})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "permissions"


def test_create_role_with_a_non_string_description_is_400(admin):
    response = create(admin, description=["x"])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "description"


def test_non_admin_cannot_create_update_or_delete_roles(alice):
    assert create(alice).status_code == 403
    assert alice.patch("/api/roles/team-a-full", {"description": "mine now"}).status_code == 403
    assert alice.delete("/api/roles/team-a-full").status_code == 403
    assert Role.objects.get(id="team-a-full").description == "everything in team-a"


def test_admin_updates_a_role(admin):
    create(admin)
    new_permissions = [{"resources": ["namespaces:^team-b$", "pipelines:.*", "runs"], "actions": ["read", "write"]}]
    response = admin.patch("/api/roles/run-reader", {"description": "now team-b", "permissions": new_permissions})
    assert response.status_code == 200
    assert response.json()["role"]["permissions"] == new_permissions
    assert response.json()["role"]["description"] == "now team-b"
    assert "changed" not in response.json()
    assert "Gofer-Changed" not in response
    assert Role.objects.get(id="run-reader").permissions == new_permissions
    assert Event.objects.filter(kind="updated_role", details={"role_id": "run-reader"}).count() == 1


def test_update_with_the_same_values_says_changed_false(admin):
    create(admin)
    response = admin.patch("/api/roles/run-reader", {"description": "reads runs", "permissions": READ_RUNS})
    assert response.status_code == 200
    assert response["Gofer-Changed"] == "false"
    assert response.json()["changed"] is False
    assert response.json()["role"]["id"] == "run-reader"
    assert not Event.objects.filter(kind="updated_role").exists()


def test_update_validates_permissions(admin):
    create(admin)
    response = admin.patch("/api/roles/run-reader", {"permissions": [{"resources": ["x"], "actions": ["read"]}]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "permissions[0].resources[0]"
    assert Role.objects.get(id="run-reader").permissions == READ_RUNS


def test_a_role_change_applies_to_the_next_request(admin, namespaces):
    create(admin)
    deployed_pipeline("team-a")
    reader = make_caller("reader", ["run-reader"])
    assert reader.get("/api/namespaces/team-a/pipelines/build/runs").status_code == 200
    admin.patch("/api/roles/run-reader", {"permissions": [{"resources": ["namespaces:^team-b$"], "actions": ["read"]}]})
    assert reader.get("/api/namespaces/team-a/pipelines/build/runs").status_code == 404


@pytest.mark.parametrize("role_id", SYSTEM_ROLES)
def test_system_roles_cannot_be_updated(admin, role_id):
    before = Role.objects.get(id=role_id).permissions
    response = admin.patch(f"/api/roles/{role_id}", {"permissions": [{"resources": ["runs"], "actions": ["read"]}]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "role_id"
    assert "system role" in response.json()["message"]
    assert Role.objects.get(id=role_id).permissions == before


@pytest.mark.parametrize("role_id", SYSTEM_ROLES)
def test_system_roles_cannot_be_deleted(admin, role_id):
    response = admin.delete(f"/api/roles/{role_id}")
    assert response.status_code == 400
    assert "system role" in response.json()["message"]
    assert Role.objects.filter(id=role_id).exists()


def test_admin_deletes_a_role(admin):
    create(admin)
    assert admin.delete("/api/roles/run-reader").status_code == 204
    assert admin.get("/api/roles/run-reader").status_code == 404
    assert Event.objects.filter(kind="deleted_role", details={"role_id": "run-reader"}).exists()


def test_delete_of_an_unknown_role_is_404(admin):
    assert admin.delete("/api/roles/wizard").status_code == 404


def test_deleting_a_role_takes_its_rights_from_tokens(admin, alice):
    assert alice.get("/api/namespaces/team-a").status_code == 200
    admin.delete("/api/roles/team-a-full")
    assert alice.get("/api/namespaces/team-a").status_code == 404
