"""One task spec (pipelines/taskspec.py): validation, storage, a run's snapshot, the API shape and the admin all
derive from it, so a new task field is one change. These tests fail when one of them stops following the spec."""

from __future__ import annotations

import typing

from django.contrib import admin as django_admin

from pipelines.admin import TASK_FIELDS, TaskAdmin
from pipelines.api.serializers import TaskSerializer
from pipelines.models import Task
from pipelines.taskspec import REDACTED, Collector, TaskSpec

FULL = {
    "id": "build",
    "description": "compiles",
    "image": "busybox:latest",
    "registry_auth": {"user": "ci", "pass": "s3cr3t-password"},
    "depends_on": {"prepare": "Success"},
    "variables": {"mode": "fast"},
    "entrypoint": ["/bin/sh"],
    "command": ["-c", "true"],
    "inject_api_token": True,
    "always_pull_newest_image": True,
    "timeout": 600,
    "cpu": 1.5,
    "memory": 512,
    "logging": False,
}


def test_every_spec_field_is_stored_in_a_task_column():
    columns = {f.name for f in Task._meta.get_fields()}
    assert {TaskSpec.column(name) for name in TaskSpec.names()} <= columns


def test_a_parsed_task_round_trips_through_storage_and_the_snapshot(db):
    errors = Collector()
    spec = TaskSpec.parse(FULL, "config.tasks[0]", errors)
    assert errors.errors == []
    assert TaskSpec.from_row(Task(**spec.row_values())) == spec
    snapshot = spec.snapshot()
    assert set(snapshot) == TaskSpec.names()
    assert snapshot["registry_auth"] == {"user": "ci"}  # never the password
    back = TaskSpec.from_snapshot(snapshot)
    assert {name: getattr(back, name) for name in TaskSpec.names() - {"registry_auth"}} == {
        name: getattr(spec, name) for name in TaskSpec.names() - {"registry_auth"}
    }


def test_the_api_shape_has_every_spec_field_and_never_the_password():
    spec = TaskSpec.parse(FULL, "t", Collector())
    shown = TaskSerializer(spec).data
    assert set(shown) == TaskSpec.names() == set(TaskSerializer().get_fields())
    assert shown["registry_auth"] == {"user": "ci", "pass": REDACTED}
    assert "s3cr3t-password" not in str(shown)


def test_the_schema_field_types_follow_the_spec_types():
    hints = typing.get_type_hints(TaskSpec)
    fields = TaskSerializer().get_fields()
    assert type(fields["timeout"]).__name__ == "IntegerField" and hints["timeout"] is int
    assert type(fields["logging"]).__name__ == "BooleanField"
    assert fields["cpu"].allow_null and fields["memory"].allow_null


def test_the_admin_shows_every_spec_field():
    assert len(TASK_FIELDS) == len(TaskSpec.names())
    model_admin = django_admin.site._registry[Task]
    assert isinstance(model_admin, TaskAdmin)
    assert set(TASK_FIELDS) <= set(model_admin.fields)


def test_an_unknown_task_field_is_refused_naming_it():
    errors = Collector()
    TaskSpec.parse({**FULL, "colour": "blue"}, "config.tasks[3]", errors)
    assert [e.field for e in errors.errors] == ["config.tasks[3].colour"]
