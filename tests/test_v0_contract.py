"""Every Gofer v0 route answers a successful call with exactly the status Gofer's OpenAPI document gives it
(tests/fixtures/gofer_v0_contract.json), and a call that changes nothing with that same status and the header
``Gofer-Changed: false`` (docs/api.md, "Updates that change nothing"). Generated Gofer clients treat any other
status as an error.

Each operation is called once, by an admin (anonymous for the bootstrap), on a fresh world where it can succeed.
tests/test_openapi.py checks the schema we serve against the same fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from access import services as access
from events.models import Event
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from pipelines import services as pipelines
from runs import services as runs
from runs.models import Run, TaskExecution
from secretstore import services as secrets
from tests.conftest import deployed_pipeline, simple_config
from tests.support.contract import WEBSOCKET_ONLY, reference_operations
from tests.support.objects import raw_post

CHANGED = "Gofer-Changed"
CORE_TAGS = {
    "Namespaces",
    "Pipelines",
    "Configs",
    "Deployments",
    "Runs",
    "Tasks",
    "Tokens",
    "Permissions",
    "System",
    "Objects",
    "Secrets",
    "Events",
}
READ_RUNS = [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], "actions": ["read"]}]

NS = "/api/namespaces/{namespace_id}"
PIPELINE = f"{NS}/pipelines/{{pipeline_id}}"
RUN = f"{PIPELINE}/runs/{{run_id}}"
TASK = f"{RUN}/tasks/{{task_id}}"


@dataclass
class Call:
    """One request: the path's parameters beyond the world's defaults, a JSON body (or raw bytes for objects)."""

    values: dict[str, str] = field(default_factory=dict)
    body: Any = None
    raw: bytes | None = None
    anonymous: bool = False


# A call that succeeds and changes something, for every operation of the contract we serve (Extensions and
# Subscriptions: add theirs as their routes are built).
CHANGING: dict[tuple[str, str], Call] = {
    ("GET", "/api/events/{event_id}"): Call(),
    ("DELETE", "/api/events/{event_id}"): Call(),
    ("GET", "/api/extensions/{extension_id}/objects"): Call(),
    ("GET", "/api/extensions/{extension_id}/objects/{key}"): Call(),
    ("POST", "/api/extensions/{extension_id}/objects/{key}"): Call({"key": "new-key"}, raw=b"x"),
    ("DELETE", "/api/extensions/{extension_id}/objects/{key}"): Call(),
    ("GET", "/api/namespaces"): Call(),
    ("POST", "/api/namespaces"): Call(body={"id": "team-new", "name": "New"}),
    ("GET", NS): Call(),
    ("DELETE", NS): Call(),
    ("PATCH", NS): Call(body={"name": "Team Alpha"}),
    ("GET", f"{NS}/pipelines"): Call(),
    ("GET", PIPELINE): Call(),
    ("DELETE", PIPELINE): Call(),
    ("PATCH", PIPELINE): Call(body={"state": "disabled"}),
    ("GET", f"{PIPELINE}/configs"): Call(),
    ("POST", f"{PIPELINE}/configs"): Call(body={"config": simple_config("build", name="Build 4")}),
    ("GET", f"{PIPELINE}/configs/{{version}}"): Call(),
    ("POST", f"{PIPELINE}/configs/{{version}}"): Call({"version": "2"}),
    ("DELETE", f"{PIPELINE}/configs/{{version}}"): Call({"version": "2"}),
    ("GET", f"{PIPELINE}/deployments"): Call(),
    ("GET", f"{PIPELINE}/deployments/{{deployment_id}}"): Call(),
    ("GET", f"{PIPELINE}/objects"): Call(),
    ("GET", f"{PIPELINE}/objects/{{key}}"): Call(),
    ("POST", f"{PIPELINE}/objects/{{key}}"): Call({"key": "new-key"}, raw=b"x"),
    ("DELETE", f"{PIPELINE}/objects/{{key}}"): Call(),
    ("GET", f"{PIPELINE}/runs"): Call(),
    ("POST", f"{PIPELINE}/runs"): Call(body={"variables": {}}),
    ("GET", RUN): Call(),
    ("DELETE", RUN): Call(),
    ("GET", f"{RUN}/objects"): Call(),
    ("GET", f"{RUN}/objects/{{key}}"): Call(),
    ("POST", f"{RUN}/objects/{{key}}"): Call({"key": "new-key"}, raw=b"x"),
    ("DELETE", f"{RUN}/objects/{{key}}"): Call(),
    ("GET", f"{RUN}/tasks"): Call(),
    ("GET", TASK): Call(),
    ("DELETE", TASK): Call(),
    ("DELETE", f"{TASK}/logs"): Call({"run_id": "2"}),
    ("GET", f"{PIPELINE}/secrets"): Call(),
    ("POST", f"{PIPELINE}/secrets"): Call(body={"key": "new_key", "content": "value-2"}),
    ("GET", f"{PIPELINE}/secrets/{{key}}"): Call(),
    ("DELETE", f"{PIPELINE}/secrets/{{key}}"): Call(),
    ("GET", "/api/roles"): Call(),
    ("POST", "/api/roles"): Call(body={"id": "new-role", "description": "", "permissions": READ_RUNS}),
    ("GET", "/api/roles/{role_id}"): Call(),
    ("DELETE", "/api/roles/{role_id}"): Call(),
    ("PATCH", "/api/roles/{role_id}"): Call(body={"description": "changed"}),
    ("GET", "/api/secrets/global"): Call(),
    ("POST", "/api/secrets/global"): Call(body={"key": "new_key", "content": "value-2", "namespaces": [".*"]}),
    ("GET", "/api/secrets/global/{key}"): Call(),
    ("DELETE", "/api/secrets/global/{key}"): Call(),
    ("GET", "/api/system"): Call(),
    ("PATCH", "/api/system"): Call(body={"ignore_pipeline_run_events": True}),
    ("GET", "/api/system/metadata"): Call(),
    ("GET", "/api/tokens"): Call(),
    ("POST", "/api/tokens"): Call(body={"user": "dana", "roles": ["user"], "expires": 0}),
    ("POST", "/api/tokens/bootstrap"): Call(anonymous=True),
    ("GET", "/api/tokens/whoami"): Call(),
    ("GET", "/api/tokens/{id}"): Call(),
    ("DELETE", "/api/tokens/{id}"): Call(),
    ("PATCH", "/api/tokens/{id}"): Call(body={"disabled": True}),
}

# Calls that change nothing, on every route that has such a case: the same status, and the header.
NO_OPS: list[tuple[str, str, Call, str]] = [
    ("PATCH", PIPELINE, Call(body={}), "no field"),
    ("PATCH", PIPELINE, Call(body={"state": "active"}), "already active"),
    ("PATCH", "/api/tokens/{id}", Call(body={}), "no field"),
    ("PATCH", "/api/tokens/{id}", Call(body={"disabled": False}), "already enabled"),
    ("DELETE", RUN, Call({"run_id": "2"}), "the run has finished"),
    ("DELETE", TASK, Call({"run_id": "2"}), "the task has finished"),
    ("DELETE", f"{TASK}/logs", Call({"run_id": "2", "task_id": "test"}), "the logs were removed"),
    ("POST", f"{PIPELINE}/configs/{{version}}", Call({"version": "1"}), "the version is live"),
    ("PATCH", NS, Call(body={"name": "Team A"}), "the same name"),
    ("PATCH", NS, Call(body={}), "no field"),
    ("PATCH", "/api/roles/{role_id}", Call(body={"description": "custom role"}), "the same description"),
    ("PATCH", "/api/system", Call(body={}), "no field"),
    ("PATCH", "/api/system", Call(body={"ignore_pipeline_run_events": False}), "the same value"),
]


def served_operations() -> list[tuple[str, str, dict[str, Any]]]:
    """The contract's operations that Gofer serves over HTTP (websocket-only ones are the matrix's)."""
    return [
        (method, path, op)
        for (method, path), op in reference_operations().items()
        if (method, path) not in WEBSOCKET_ONLY and (method, path) != ("GET", "/api/events")
        if op["tag"] in CORE_TAGS or (method, path) in CHANGING
    ]


SERVED = served_operations()


@pytest.fixture
def world(namespaces, monkeypatch) -> dict[str, str]:
    """team-a/build with config 1 live and 2 and 3 registered (2 can be deleted: neither live nor the latest);
    run 1 pending (task ``compile`` waiting) and run 2 complete (``compile`` complete with its logs, ``test``
    complete with its logs removed); a secret, a global secret and objects named ``some-key``; a custom role, a
    token and an event. Returns the path values that name them."""
    # Extension objects are kept for installed extensions only (the triggers app's registry); any id here.
    monkeypatch.setattr(objects, "_extension_registry", None)
    pipeline = deployed_pipeline("team-a")
    for name in ("Build 2", "Build 3"):
        pipelines.register_config(pipeline.namespace, "build", simple_config("build", name=name))
    first = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    TaskExecution.objects.create(namespace=first.namespace, pipeline=pipeline, run=first, task_slug="compile")
    second = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    Run.objects.filter(pk=second.pk).update(state="complete", status="successful")
    for slug, removed in (("compile", False), ("test", True)):
        TaskExecution.objects.create(
            namespace=second.namespace,
            pipeline=pipeline,
            run=second,
            task_slug=slug,
            state="complete",
            status="successful",
            logs_removed=removed,
        )
    secrets.put_pipeline_secret(pipeline, "some-key", "value-1")
    secrets.put_global_secret("some-key", "value-1", [".*"])
    objects.put_pipeline_object(pipeline, "some-key", [b"x"])
    objects.put_run_object(first, "some-key", [b"x"])
    objects.put_extension_object("some-extension", "some-key", [b"x"])
    access.create_role("custom", "custom role", READ_RUNS)
    _, token = access.create_token("dana", ["user"])
    return {
        "namespace_id": "team-a",
        "pipeline_id": "build",
        "version": "1",
        "deployment_id": "1",
        "run_id": "1",
        "task_id": "compile",
        "key": "some-key",
        "extension_id": "some-extension",
        "event_id": str(Event.objects.order_by("id").values_list("id", flat=True).first()),
        "role_id": "custom",
        "id": str(token.id),
    }


def send(caller, method: str, template: str, call: Call, values: dict[str, str]):
    values = {**values, **call.values}
    path = template.format(**values)
    if call.raw is not None:
        return raw_post(caller, path, call.raw)
    if method == "GET":
        return caller.get(path)
    return getattr(caller, method.lower())(path, *([call.body] if method != "DELETE" else []))


def test_every_core_operation_of_the_contract_has_a_call_here():
    assert sorted((m, p) for m, p, _ in SERVED if (m, p) not in CHANGING) == []


@pytest.mark.parametrize(("method", "path", "op"), SERVED, ids=[f"{op['operation_id']}" for _, _, op in SERVED])
def test_a_successful_call_answers_the_status_of_the_contract(world, admin, anonymous, method, path, op):
    call = CHANGING[(method, path)]
    response = send(anonymous if call.anonymous else admin, method, path, call, world)
    assert [str(response.status_code)] == op["success"], (method, path, getattr(response, "content", b"")[:300])
    assert CHANGED not in response, "a call that changed something does not say it changed nothing"
    if response.status_code == 204:
        assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "call", "why"), NO_OPS, ids=[f"{m} {p.rsplit('/', 1)[-1]} ({w})" for m, p, _, w in NO_OPS]
)
def test_a_call_that_changes_nothing_answers_the_same_status_and_says_so_in_a_header(
    world, admin, method, path, call, why
):
    expected = reference_operations()[(method, path)]["success"]
    response = send(admin, method, path, call, world)
    assert [str(response.status_code)] == expected, (method, path, why, response.content[:300])
    assert response[CHANGED] == "false"
    if response.status_code == 204:
        assert response.content == b""
    else:
        assert response.json()["changed"] is False
        assert response.json()["message"].startswith("nothing changed")
