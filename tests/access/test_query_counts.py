"""Lists cost a bounded number of queries whatever the number of tenants: tenancy is matched by the database
(kernel/scope.py), not by reading every namespace and matching its id in Python.

A caller whose role targets namespaces by regex (``^ns-``) lists with 5 namespaces and again with 50: the count is
the same, and under a small bound.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from access import services as access
from events.models import Event
from kernel.rbac import SYSTEM_PRINCIPAL
from objectstore import services as objects
from pipelines import services as pipelines
from runs import services as runs
from runs.models import TaskExecution
from secretstore import services as secrets
from tests.conftest import TENANT_RESOURCES, deployed_pipeline, make_caller

PIPELINE = "/api/namespaces/ns-00/pipelines/build"
# Each list, and the queries it costs today, as its bound: authentication (the token and its roles), the gate's
# namespace and pipeline (and run), the page. One more is a regression to look at, not a number to bump.
LISTS = {
    "namespaces": ("/api/namespaces", 4),
    "pipelines": ("/api/namespaces/ns-00/pipelines", 5),
    "configs": (f"{PIPELINE}/configs", 6),
    "deployments": (f"{PIPELINE}/deployments", 6),
    "runs": (f"{PIPELINE}/runs", 5),
    "task executions": (f"{PIPELINE}/runs/1/tasks", 6),
    "pipeline secrets": (f"{PIPELINE}/secrets", 5),
    "pipeline objects": (f"{PIPELINE}/objects", 5),
    "run objects": (f"{PIPELINE}/runs/1/objects", 6),
    "events": ("/api/events", 4),
    "global secrets": ("/api/secrets/global", 4),
}


def add_tenants(start: int, stop: int) -> None:
    """Namespaces ns-<i>, each with a deployed pipeline, a run with a task execution, a secret and objects (and the
    events all of that publishes): something for every list to find in every tenant."""
    for i in range(start, stop):
        namespace_id = f"ns-{i:02d}"
        pipelines.create_namespace(namespace_id, f"Namespace {i}", "")
        pipeline = deployed_pipeline(namespace_id)
        run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
        TaskExecution.objects.create(namespace=run.namespace, pipeline=pipeline, run=run, task_slug="compile")
        secrets.put_pipeline_secret(pipeline, "token", f"value-{i}")
        secrets.put_global_secret(f"shared_{i}", f"value-{i}", [f"^{namespace_id}$"])
        objects.put_pipeline_object(pipeline, "settings", [b"x"])
        objects.put_run_object(run, "artifact", [b"x"])


@pytest.fixture
def regex_reader(db):
    """Reads every namespace whose id starts with ``ns-``, and everything in it."""
    access.create_role(
        "ns-reader",
        "reads ns-*",
        [{"resources": ["namespaces:^ns-", "pipelines:.*", *TENANT_RESOURCES], "actions": ["read"]}],
    )
    return make_caller("reader", ["ns-reader"])


def count(caller, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = caller.get(path, limit="500")
    assert response.status_code == 200, (path, response.content[:300])
    return len(captured)


def test_every_main_list_costs_the_same_few_queries_with_5_namespaces_as_with_50(
    regex_reader, admin, django_assert_max_num_queries
):
    def caller_of(path: str):
        return admin if path == "/api/secrets/global" else regex_reader

    add_tenants(0, 5)
    with_five = {}
    for name, (path, bound) in LISTS.items():
        with django_assert_max_num_queries(bound, info=name):
            assert caller_of(path).get(path, limit="500").status_code == 200
        with_five[name] = count(caller_of(path), path)

    add_tenants(5, 50)
    for name, (path, bound) in LISTS.items():
        with django_assert_max_num_queries(bound, info=name):
            assert caller_of(path).get(path, limit="500").status_code == 200
    assert {name: count(caller_of(path), path) for name, (path, _) in LISTS.items()} == with_five


def test_the_lists_grow_with_the_tenants_so_the_counts_above_measure_real_pages(regex_reader, admin):
    add_tenants(0, 50)
    assert len(regex_reader.get("/api/namespaces", limit="500").json()["namespaces"]) == 50
    events = regex_reader.get("/api/events", limit="500").json()["events"]
    assert len(events) == Event.objects.filter(namespace_id__startswith="ns-").count() >= 50 * 3
    assert len(admin.get("/api/secrets/global", limit="500").json()["secrets"]) == 50
