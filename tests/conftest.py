"""Shared fixtures: the cast of callers and helpers to build pipelines.

The cast, as in healthchecks' tests:
- ``admin``: a token with the admin role;
- ``alice``: full rights in namespace ``team-a`` (a custom role);
- ``bob``: read-only in ``team-a``;
- ``charlie``: full rights in ``team-b`` only, an outsider to ``team-a``;
- ``anonymous``: no token at all.
Each is an ``ApiCaller``: ``alice.get(path)``, ``alice.post(path, body)``... returning DRF test responses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from access import services as access
from pipelines import services as pipelines

IN_CI = os.environ.get("CI", "").lower() == "true"

# Session fixtures for locally built container images (busybox_image, docker_client).
pytest_plugins = ["tests.support.images"]

FULL = ["read", "write", "delete"]
TENANT_RESOURCES = [
    "configs",
    "deployments",
    "events",
    "objects",
    "runs",
    "task_executions",
    "secrets",
    "subscriptions",
]


def need(condition: bool, reason: str) -> None:
    """Skip when a service a test needs is missing, except under CI=true, where a missing service is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@dataclass
class ApiCaller:
    client: APIClient
    token: str | None
    token_id: str | None = None
    name: str = ""

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"HTTP_GOFER_API_VERSION": "v0"}
        if self.token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        for key, value in (extra or {}).items():
            headers["HTTP_" + key.upper().replace("-", "_")] = value
        return headers

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(path, params or None, **self._headers(headers))

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, body, format="json", **self._headers(headers))

    def patch(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.patch(path, body, format="json", **self._headers(headers))

    def put(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.put(path, body, format="json", **self._headers(headers))

    def delete(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.delete(path, **self._headers(headers))


@pytest.fixture(autouse=True)
def _system_rows(request):
    """Tests on a truncated database (transactional_db, live_server, or the django_db(transaction=True) mark) get back
    what the data migrations create."""
    marker = request.node.get_closest_marker("django_db")
    transactional_mark = marker is not None and marker.kwargs.get("transaction", False)
    if not transactional_mark and not {"transactional_db", "live_server"} & set(request.fixturenames):
        return
    request.getfixturevalue("transactional_db")
    access.ensure_system_roles()
    pipelines.ensure_default_namespace()


def make_caller(user: str, roles: list[str]) -> ApiCaller:
    secret, token = access.create_token(user, roles)
    return ApiCaller(APIClient(), secret, str(token.id), user)


@pytest.fixture
def namespaces(db):
    """Namespaces team-a and team-b (besides default)."""
    return {
        "team-a": pipelines.create_namespace("team-a", "Team A", ""),
        "team-b": pipelines.create_namespace("team-b", "Team B", ""),
    }


@pytest.fixture
def admin(db) -> ApiCaller:
    return make_caller("admin@example.com", ["admin"])


@pytest.fixture
def alice(namespaces) -> ApiCaller:
    access.create_role(
        "team-a-full",
        "everything in team-a",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES], "actions": FULL}],
    )
    return make_caller("alice", ["team-a-full"])


@pytest.fixture
def bob(namespaces) -> ApiCaller:
    access.create_role(
        "team-a-read",
        "read team-a",
        [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES], "actions": ["read"]}],
    )
    return make_caller("bob", ["team-a-read"])


@pytest.fixture
def charlie(namespaces) -> ApiCaller:
    access.create_role(
        "team-b-full",
        "everything in team-b",
        [{"resources": ["namespaces:^team-b$", "pipelines:.*", *TENANT_RESOURCES], "actions": FULL}],
    )
    return make_caller("charlie", ["team-b-full"])


@pytest.fixture
def user(db) -> ApiCaller:
    """A token with Gofer's system ``user`` role (the default namespace only)."""
    return make_caller("user", ["user"])


@pytest.fixture
def anonymous(db) -> ApiCaller:
    return ApiCaller(APIClient(), None, None, "anonymous")


def simple_config(pipeline_id: str = "build", **overrides: Any) -> dict[str, Any]:
    """A valid two-task config in the shape Gofer's SDKs print."""
    config = {
        "id": pipeline_id,
        "name": "Build",
        "description": "builds things",
        "parallelism": 0,
        "tasks": [
            {"id": "compile", "image": "busybox:latest", "variables": {"mode": "fast"}},
            {"id": "test", "image": "busybox:latest", "depends_on": {"compile": "Success"}},
        ],
    }
    config.update(overrides)
    return config


def deployed_pipeline(namespace_id: str, pipeline_id: str = "build", config: dict[str, Any] | None = None):
    """Register and deploy ``config`` through the services; returns the pipeline."""
    from pipelines.models import Namespace

    namespace = Namespace.objects.get(id=namespace_id)
    pipeline, version = pipelines.register_config(namespace, pipeline_id, config or simple_config(pipeline_id))
    pipelines.deploy_config(pipeline, version.version)
    return pipeline


@pytest.fixture
def team_a_pipeline(namespaces):
    return deployed_pipeline("team-a")
