"""The permission matrix, generated from the URL conf: a new route is covered the day it is added."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from runs import services as runs
from runs.models import TaskExecution
from secretstore import services as secrets
from tests.conftest import deployed_pipeline

PATH_VALUES = {
    "namespace_id": "team-a",
    "pipeline_id": "build",
    "run_id": "1",
    "version": "1",
    "deployment_id": "1",
    "task_id": "compile",
    "key": "some-key",
    "extension_id": "some-extension",
    "event_id": "1",
    "role_id": "admin",
    "id": "00000000-0000-0000-0000-000000000000",
}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def api_routes():
    """(path template, method, rule) for every API route and method that has an access rule."""
    routes = []
    for template, callback in _walk(get_resolver().url_patterns):
        view_class = getattr(callback, "view_class", None)
        rules = getattr(view_class, "rules", None)
        if not template.startswith("api/") or not rules:
            continue
        for method, rule in rules.items():
            routes.append((template, method, rule))
    return routes


def fill(template: str) -> str:
    def value(match: re.Match) -> str:
        return PATH_VALUES[match.group(1)]

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, template)


NAMESPACED = [(t, m, r) for t, m, r in api_routes() if "<str:namespace_id>" in t]
GLOBAL = [(t, m, r) for t, m, r in api_routes() if "<str:namespace_id>" not in t]


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
def test_read_only_member_cannot_change_anything(victim, bob, template, method, rule):
    response = call(bob, method, fill(template))
    if method == "GET":
        assert response.status_code != 403, (method, template)
    else:
        assert response.status_code == 403, (method, template, response.content)


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
