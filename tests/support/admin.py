"""Helpers of the operators' console tests: URLs of admin pages, logged-in staff users with console roles, and a
tenant in each of team-a and team-b with something of every kind to look at."""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from access import services as access
from access.models import StaffAccess
from events.models import Event
from kernel.rbac import SYSTEM_PRINCIPAL
from pipelines.models import Deployment, PipelineConfig
from runs import services as runs
from runs.models import TaskExecution
from tests.conftest import FULL, TENANT_RESOURCES, deployed_pipeline

User = get_user_model()

TEAM_A_READ = [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES], "actions": ["read"]}]
TEAM_A_FULL = [{"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES], "actions": FULL}]
# Reads team-a and team-b, changes team-a only: what is visible is not always writable.
WRITES_A_READS_B = [
    {"resources": ["namespaces:^team-(a|b)$", "pipelines:.*", *TENANT_RESOURCES], "actions": ["read"]},
    {"resources": ["namespaces:^team-a$", "pipelines:.*", *TENANT_RESOURCES], "actions": ["write", "delete"]},
]


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[quote(obj.pk)])


def delete_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_delete", args=[quote(obj.pk)])


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def messages_of(response) -> list[str]:
    return [str(message.message) for message in get_messages(response.wsgi_request)]


def staff_client(username: str, permissions: list | None) -> Client:
    """A logged-in staff user (not a superuser), with a StaffAccess role of ``permissions`` unless None."""
    user = User.objects.create_user(username, password="not-used-here", is_staff=True)
    if permissions is not None:
        role = access.create_role(f"console-{username}", f"console role of {username}", permissions)
        StaffAccess.objects.create(user=user).roles.set([role])
    client = Client()
    client.force_login(user)
    return client


def tenant_data() -> dict[str, SimpleNamespace]:
    """team-a and team-b (the ``namespaces`` fixture) each with a deployed pipeline ``build`` and one run, with a
    task execution and the run's timeline; everything but the task execution made through the services."""
    data = {}
    for namespace_id in ("team-a", "team-b"):
        pipeline = deployed_pipeline(namespace_id)
        run = runs.start_run(SYSTEM_PRINCIPAL, pipeline, {})
        # Test data only: in a live system the orchestrator creates task executions when it admits the run.
        te = TaskExecution.objects.create(namespace_id=namespace_id, pipeline=pipeline, run=run, task_slug="compile")
        data[namespace_id] = SimpleNamespace(
            pipeline=pipeline,
            namespace=pipeline.namespace,
            config=PipelineConfig.objects.get(pipeline=pipeline, version=1),
            task=PipelineConfig.objects.get(pipeline=pipeline, version=1).tasks.get(slug="compile"),
            deployment=Deployment.objects.get(pipeline=pipeline, number=1),
            run=run,
            te=te,
            timeline=run.timeline.get(kind="queued"),
            event=Event.objects.filter(namespace_id=namespace_id, kind="queued_run").get(),
        )
    return data
