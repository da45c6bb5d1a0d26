"""The permission matrix, generated from the URL conf and the websocket routing: a new route is covered the day it
is added. Every caller gets one exact answer on every route."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from access import services as access
from gofer_site.asgi import application
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from runs import services as runs
from runs.models import TaskExecution
from runs.schedulers import memory
from runs.schedulers.base import ContainerSpec
from runs.schedulers.memory import MemoryScheduler
from secretstore import services as secrets
from tests.conftest import FULL, TENANT_RESOURCES, deployed_pipeline, make_caller
from tests.support.routes import PATH_VALUES, api_routes, fill, websocket_routes
from triggers.models import Extension, Subscription

# Public routes authenticate by signature, not through the gate (the webhook endpoint names a namespace but is
# tested in tests/triggers/test_external_http.py): they are global here.
NAMESPACED = [(t, m, r) for t, m, r in api_routes() if "<str:namespace_id>" in t and not r.public]
GLOBAL = [(t, m, r) for t, m, r in api_routes() if "<str:namespace_id>" not in t or r.public]


def call(caller, method: str, path: str):
    return getattr(caller, method.lower())(path)


def test_the_matrix_covers_the_namespaced_routes_we_know():
    templates = {t for t, _, _ in NAMESPACED}
    assert "api/namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>/runs" in templates
    assert len(NAMESPACED) >= 15


@pytest.fixture
def victim(namespaces):
    """A deployed pipeline in team-a with one run, so every path resolves to a real object for its owner."""
    pipeline = deployed_pipeline("team-a")
    run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
    # Test data only: in a live system the orchestrator creates task executions when it admits the run.
    TaskExecution.objects.create(namespace=run.namespace, pipeline=pipeline, run=run, task_slug="compile")
    # Something at every keyed path, so that the owner's 200 proves the path is right.
    secrets.put_pipeline_secret(pipeline, PATH_VALUES["key"], "value-1")
    objects.put_pipeline_object(pipeline, PATH_VALUES["key"], [b"x"])
    objects.put_run_object(run, PATH_VALUES["key"], [b"x"])
    # An installed extension (test data: a third-party one that documented its parameters) with a subscription.
    extension = Extension.objects.create(
        id=PATH_VALUES["extension_id"], image="example.com/ext:1", state="running", documentation={}
    )
    Subscription.objects.create(
        namespace=pipeline.namespace,
        pipeline=pipeline,
        extension=extension,
        subscription_id=PATH_VALUES["subscription_id"],
    )
    return pipeline


@pytest.mark.parametrize(("template", "method", "rule"), NAMESPACED, ids=[f"{m} {t}" for t, m, _ in NAMESPACED])
def test_outsider_gets_404_on_every_namespaced_route(victim, charlie, template, method, rule):
    response = call(charlie, method, fill(template))
    assert response.status_code == 404, (method, template, response.content)
    assert response.json()["error_code"] == "not_found"


@pytest.mark.parametrize(("template", "method", "rule"), NAMESPACED, ids=[f"{m} {t}" for t, m, _ in NAMESPACED])
def test_anonymous_is_refused_on_every_namespaced_route_outside_default(victim, anonymous, template, method, rule):
    response = call(anonymous, method, fill(template))
    expected = 404 if rule.anonymous else 401
    assert response.status_code == expected, (method, template, response.content)


@pytest.mark.parametrize(("template", "method", "rule"), NAMESPACED, ids=[f"{m} {t}" for t, m, _ in NAMESPACED])
def test_read_only_member_reads_everything_and_changes_nothing(victim, bob, template, method, rule):
    response = call(bob, method, fill(template))
    if method == "GET":
        assert response.status_code == 200, (method, template, response.content)
    else:
        assert response.status_code == 403, (method, template, response.content)
        assert response.json()["error_code"] == "permission_denied"


ADMIN_ONLY = [(t, m, r) for t, m, r in GLOBAL if r.admin]


@pytest.mark.parametrize(("template", "method", "rule"), ADMIN_ONLY, ids=[f"{m} {t}" for t, m, _ in ADMIN_ONLY])
def test_user_role_is_refused_on_admin_routes(user, template, method, rule):
    response = call(user, method, fill(template))
    assert response.status_code == 403, (method, template, response.content)
    assert response.json()["error_code"] == "permission_denied"


PRIVATE_GLOBAL = [(t, m, r) for t, m, r in GLOBAL if not r.public and not r.anonymous]


@pytest.mark.parametrize(("template", "method", "rule"), PRIVATE_GLOBAL, ids=[f"{m} {t}" for t, m, _ in PRIVATE_GLOBAL])
def test_anonymous_gets_401_on_every_private_route(anonymous, template, method, rule):
    response = call(anonymous, method, fill(template))
    assert response.status_code == 401, (method, template, response.content)


NAMESPACED_GETS = [(t, m, r) for t, m, r in NAMESPACED if m == "GET"]


@pytest.mark.parametrize(
    ("template", "method", "rule"), NAMESPACED_GETS, ids=[f"{m} {t}" for t, m, _ in NAMESPACED_GETS]
)
def test_owner_reaches_every_namespaced_read_route(victim, alice, template, method, rule):
    """The control for the outsider test: the same paths exist for their owner, so a 404 above means scoping."""
    response = call(alice, method, fill(template))
    assert response.status_code == 200, (method, template, response.content)


# --- websocket routes ----------------------------------------------------------------------------------------------

WEBSOCKETS = websocket_routes()
NAMESPACED_WEBSOCKETS = [(t, c) for t, c in WEBSOCKETS if "<str:namespace_id>" in t]
WS_IDS = [t.removeprefix("api/") for t, _ in WEBSOCKETS]
# What the owner of team-a sees once past the gate, per route: the stream stays open waiting for more (events and
# logs of a running task), or the route starts serving (attach runs ATTACH_COMMAND and sends its output). A new
# websocket route must say here what its owner gets.
# An extension's log is not tenant data: it needs read on ``extensions`` (admins, or a role naming the extension),
# which no tenant role here has, so everyone in this cast is refused alike (tests/triggers has the admin's view).
OWNER_ANSWERS = {
    "EventsConsumer": "open",
    "TaskLogsConsumer": "open",
    "TaskAttachConsumer": "data",
    "ExtensionLogsConsumer": 4403,
}
ATTACH_COMMAND = "echo%20attached"


@pytest.fixture
def ws_victim(victim, transactional_db):
    """The victim's task execution ``compile`` running in a container of the memory engine (which a consumer in this
    process can attach to), committed so that consumers, which read the database from other threads, see it."""
    memory.reset()
    handle = (
        MemoryScheduler()
        .start(
            ContainerSpec(
                name=f"matrix-{victim.pk}",
                image="busybox:latest",
                command=["sh", "-c", "while true; do sleep 0.2; done"],
            )
        )
        .handle
    )
    TaskExecution.objects.filter(pipeline=victim, task_slug="compile").update(
        state="running", scheduler="memory", container_id=handle
    )
    yield victim
    memory.reset()


def ws_headers(caller) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"127.0.0.1:8080")]
    if caller.token:
        headers.append((b"authorization", f"Bearer {caller.token}".encode()))
    return headers


async def ws_answer(caller, template: str) -> int | str:
    """The close code when the route refuses the caller (after one error frame); ``"open"`` when the socket is
    accepted and stays quiet; ``"data"`` when the route starts sending what it serves."""
    path = fill(template) + (f"?command={ATTACH_COMMAND}" if template.endswith("/attach") else "")
    communicator = WebsocketCommunicator(application, path, headers=ws_headers(caller))
    try:
        connected, _ = await communicator.connect(timeout=10)
        assert connected, path
        if await communicator.receive_nothing(timeout=0.5):
            return "open"
        message = await communicator.receive_output(timeout=10)
        if message["type"] == "websocket.close":
            return message["code"]
        if "error_code" in json.loads(message.get("text") or "{}"):
            closed = await communicator.receive_output(timeout=10)
            assert closed["type"] == "websocket.close", closed
            return closed["code"]
        return "data"
    finally:
        await communicator.disconnect()


def test_the_matrix_covers_every_websocket_route():
    assert {consumer.__name__ for _, consumer in WEBSOCKETS} == set(OWNER_ANSWERS)
    assert len(NAMESPACED_WEBSOCKETS) == 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("template", "consumer"), WEBSOCKETS, ids=WS_IDS)
async def test_owner_passes_the_gate_of_every_websocket_route(ws_victim, alice, template, consumer):
    owner = alice
    if consumer.__name__ == "TaskAttachConsumer":
        # Attach needs its own permission (issue 8), which no tenant role has unless it says so: alice has
        # everything else in team-a and is refused; her role with ``attach`` added is the owner here.
        assert await ws_answer(alice, template) == 4403
        owner = await sync_to_async(_with_attach)()
    assert await ws_answer(owner, template) == OWNER_ANSWERS[consumer.__name__]


def _with_attach():
    access.create_role(
        "team-a-attach",
        "everything in team-a, attach too",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES, "attach"], "actions": FULL}],
    )
    return make_caller("alice-attach", ["team-a-attach"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("template", "consumer"), WEBSOCKETS, ids=WS_IDS)
async def test_outsider_gets_4404_on_every_namespaced_websocket_route(ws_victim, charlie, template, consumer):
    # The events stream names no namespace: an outsider reads it, scoped to what it may see (events tests).
    expected = 4404 if "<str:namespace_id>" in template else OWNER_ANSWERS[consumer.__name__]
    assert await ws_answer(charlie, template) == expected


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("template", "consumer"), WEBSOCKETS, ids=WS_IDS)
async def test_read_only_member_gets_4403_where_a_websocket_route_needs_more_than_read(
    ws_victim, bob, template, consumer
):
    expected = OWNER_ANSWERS[consumer.__name__] if consumer.rule.action == "read" else 4403
    assert await ws_answer(bob, template) == expected


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("template", "consumer"), WEBSOCKETS, ids=WS_IDS)
async def test_anonymous_gets_4401_on_every_websocket_route(ws_victim, anonymous, template, consumer):
    assert not consumer.rule.anonymous  # else: 4404 for team-a, as on HTTP routes
    assert await ws_answer(anonymous, template) == 4401
