"""Regex targets on namespaces and pipelines, Gofer's own example first."""

from __future__ import annotations

import pytest
from django.db import connection

from access import services as access
from access.models import Role
from kernel.rbac import Principal, compile_role
from pipelines import services as pipelines
from pipelines.models import Namespace
from tests.conftest import make_caller, simple_config


@pytest.fixture
def devops(admin):
    """Gofer's checklist example: a role limited to namespaces matching ^devops.*"""
    for ns in ("devops-x", "devops-y"):
        pipelines.create_namespace(ns, ns, "")
        pipelines.register_config(Namespace.objects.get(id=ns), "deploy", simple_config("deploy"))
    pipelines.register_config(Namespace.objects.get(id="default"), "hello", simple_config("hello"))
    access.create_role(
        "devops", "devops teams", [{"resources": ["namespaces:^devops.*", "pipelines:.*"], "actions": ["read"]}]
    )
    return make_caller("devops-bot", ["devops"])


def test_a_devops_role_lists_pipelines_in_devops_x(devops):
    response = devops.get("/api/namespaces/devops-x/pipelines")
    assert response.status_code == 200
    assert [p["pipeline_id"] for p in response.json()["pipelines"]] == ["deploy"]


def test_a_devops_role_is_refused_in_default(devops):
    response = devops.get("/api/namespaces/default/pipelines")
    assert response.status_code == 404
    assert response.json()["message"] == "namespace default not found"


def test_a_devops_role_lists_only_devops_namespaces(devops):
    response = devops.get("/api/namespaces")
    assert [n["id"] for n in response.json()["namespaces"]] == ["devops-x", "devops-y"]


# --- issue 8, finding 18: a target is a full match unless it has an explicit anchor --------------------------------


def reader_of(target: str, name: str = "reader"):
    access.create_role(name, "", [{"resources": [f"namespaces:{target}", "pipelines:.*"], "actions": ["read"]}])
    return make_caller(name, [name])


def visible_namespaces(caller) -> list[str]:
    return sorted(n["id"] for n in caller.get("/api/namespaces").json()["namespaces"])


@pytest.fixture
def prba(admin):
    for ns in ("prba", "prba-evil", "x-prba", "PRBA-2"):
        pipelines.create_namespace(ns, ns, "")


def test_a_bare_target_names_exactly_one_namespace(prba):
    reader = reader_of("prba")
    assert visible_namespaces(reader) == ["prba"]
    assert reader.get("/api/namespaces/prba").status_code == 200
    assert reader.get("/api/namespaces/prba-evil").status_code == 404
    assert reader.get("/api/namespaces/x-prba/pipelines").status_code == 404


def test_a_pattern_without_anchors_must_match_the_whole_id(prba):
    assert visible_namespaces(reader_of("prba-.*")) == ["prba-evil"]
    assert visible_namespaces(reader_of("prba|x-prba", "two")) == ["prba", "x-prba"]


def test_an_explicit_anchor_takes_the_target_as_a_regex_as_written(prba):
    assert visible_namespaces(reader_of("^prba")) == ["prba", "prba-evil"]
    assert visible_namespaces(reader_of("prba$", "suffix")) == ["prba", "x-prba"]
    assert visible_namespaces(reader_of("(?i)^prba-", "flags")) == ["PRBA-2", "prba-evil"]
    assert visible_namespaces(reader_of(".*prba.*", "contains")) == ["prba", "prba-evil", "x-prba"]


@pytest.mark.parametrize(
    "target", ["prba", "prba-.*", "^prba", "prba$", ".*", ".*prba.*", "(?i)prba", "p.b.", "prba|x-prba", "[a-z]+"]
)
def test_python_and_the_database_agree_on_every_target(prba, target):
    """The gate matches a single id in Python (kernel/rbac.py); lists are matched by the database (kernel/scope.py)."""
    from access import scope
    from kernel.choices import Action

    role = compile_role("r", [{"resources": [f"namespaces:{target}"], "actions": ["read"]}])
    principal = Principal(kind="token", name="t", roles=(role,))
    in_python = sorted(ns.id for ns in Namespace.objects.all() if principal.allows("read", {"namespaces": ns.id}))
    in_sql = sorted(scope.namespaces_for(principal, Action.READ).values_list("id", flat=True))
    assert in_python == in_sql


def test_a_stored_role_of_the_old_form_keeps_working_with_the_new_semantics(prba):
    """A role stored before targets were anchored (written to the table, not through the service)."""
    Role.objects.create(id="old-form", permissions=[{"resources": ["namespaces:prba"], "actions": ["read"]}])
    assert visible_namespaces(make_caller("old", ["old-form"])) == ["prba"]


@pytest.mark.parametrize(
    ("target", "changed"),
    [
        ("prba", True),
        ("prba-.*", True),
        ("team-a|team-b", True),
        ("^prba$", False),
        ("^prba", False),
        ("prba$", False),
        (".*", False),
        (".*prba.*", False),
        ("(?i)^prba$", False),
    ],
)
def test_a_role_whose_target_changed_meaning_gets_a_warning(admin, caplog, target, changed):
    permissions = [{"resources": ["runs", f"namespaces:{target}"], "actions": ["read"]}]
    with caplog.at_level("WARNING"):
        created = admin.post("/api/roles", {"id": "warned", "description": "", "permissions": permissions})
    assert created.status_code == 201, created.json()
    warnings = created.json()["warnings"]
    if not changed:
        assert warnings == []
        return
    assert len(warnings) == 1
    assert warnings[0]["field"] == "permissions[0].resources[1]"
    assert f"namespaces:{target}" in warnings[0]["message"] and "whole" in warnings[0]["message"]
    assert "warned" in caplog.text and f"namespaces:{target}" in caplog.text
    updated = admin.patch("/api/roles/warned", {"permissions": [{"resources": ["pipelines:web"], "actions": ["read"]}]})
    assert updated.status_code == 200
    assert [w["field"] for w in updated.json()["warnings"]] == ["permissions[0].resources[0]"]


def test_a_target_the_database_cannot_compile_is_refused_at_creation(admin):
    """Python's named groups are no PostgreSQL regex: the target is tried on the database in use."""
    permissions = [{"resources": ["namespaces:^(?P<team>team)-a$"], "actions": ["read"]}]
    response = admin.post("/api/roles", {"id": "py-only", "description": "", "permissions": permissions})
    if connection.vendor == "postgresql":
        assert response.status_code == 400, response.json()
        assert response.json()["errors"][0]["field"] == "permissions[0].resources[0]"
        assert "database" in response.json()["message"]
        assert not Role.objects.filter(id="py-only").exists()
    else:
        assert response.status_code == 201  # SQLite matches with Python's re: it compiles there


def test_a_pipeline_target_limits_pipelines_within_a_namespace(namespaces):
    team_a = Namespace.objects.get(id="team-a")
    for slug in ("web-app", "web-api", "batch"):
        pipelines.register_config(team_a, slug, simple_config(slug))
    access.create_role(
        "web", "", [{"resources": ["namespaces:^team-a$", "pipelines:^web-", "configs"], "actions": ["read"]}]
    )
    web = make_caller("web", ["web"])
    listed = web.get("/api/namespaces/team-a/pipelines").json()["pipelines"]
    assert [p["pipeline_id"] for p in listed] == ["web-api", "web-app"]
    assert web.get("/api/namespaces/team-a/pipelines/web-app/configs").status_code == 200
    refused = web.get("/api/namespaces/team-a/pipelines/batch/configs")
    assert refused.status_code == 404
    assert refused.json()["message"] == "pipeline batch not found"


def test_one_role_must_grant_every_resource(namespaces):
    """Two roles that together would cover a route do not add up: one role must hold all of it."""
    access.create_role("ns-only", "", [{"resources": ["namespaces:^team-a$", "pipelines:.*"], "actions": ["read"]}])
    access.create_role("runs-only", "", [{"resources": ["runs"], "actions": ["read"]}])
    pipelines.register_config(Namespace.objects.get(id="team-a"), "build", simple_config())
    split = make_caller("split", ["ns-only", "runs-only"])
    response = split.get("/api/namespaces/team-a/pipelines/build/runs")
    assert response.status_code == 403
    assert "runs" in response.json()["message"]


def test_a_permission_without_the_action_is_403_naming_it(bob, namespaces):
    pipelines.register_config(Namespace.objects.get(id="team-a"), "build", simple_config())
    response = bob.patch("/api/namespaces/team-a/pipelines/build", {"state": "disabled"})
    assert response.status_code == 403
    assert response.json()["message"] == "this token lacks permission write on namespaces:team-a, pipelines:build"
