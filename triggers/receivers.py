"""What the triggers app plugs into the apps below it (connected in TriggersConfig.ready)."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from access.models import Role
from kernel.rbac import Principal, compile_role
from triggers import services, supervisor
from triggers.choices import ExtensionStatus, SubscriptionStatus
from triggers.models import Extension, Subscription

READ_WRITE = ["read", "write"]


def extension_permissions(extension_id: str) -> list[dict[str, list[str]]]:
    """What an extension's token may do outside any pipeline: its own object store, its own subscriptions."""
    own = f"extensions:^{re.escape(extension_id)}$"
    return [
        {"resources": [own, "objects"], "actions": ["read", "write", "delete"]},
        {"resources": [own, "subscriptions"], "actions": ["read"]},
    ]


def pipeline_permissions(namespace_id: str, pipeline_slug: str) -> list[dict[str, list[str]]]:
    """What it may do on one subscribed pipeline: start and read runs (and their task executions), read the
    subscriptions. One role per pipeline, so that permissions of two pipelines never combine into a third."""
    own = [f"namespaces:^{re.escape(namespace_id)}$", f"pipelines:^{re.escape(pipeline_slug)}$"]
    return [
        {"resources": [*own, "runs", "task_executions"], "actions": READ_WRITE},
        {"resources": [*own, "subscriptions"], "actions": ["read"]},
    ]


def extension_principal(token: Any) -> Principal:
    """The principal of a third-party extension's token (least privilege): its own objects and subscriptions,
    and runs only on the pipelines with an active subscription to it, while it is enabled. An uninstalled
    extension's token is deleted with it; a token whose extension is gone grants nothing."""
    extension_id = (token.metadata or {}).get("extension_id", "")
    extension = Extension.objects.filter(id=extension_id, token_id=token.id).first()
    name = f"extension {extension_id}"
    if extension is None:
        return Principal(kind="extension", name=name, roles=(), token_id=str(token.id))
    roles = [compile_role(f"extension:{extension_id}", extension_permissions(extension_id))]
    subscribed: dict[int, list[str]] = {}
    if extension.status == ExtensionStatus.ENABLED:
        rows = Subscription.objects.filter(extension=extension, status=SubscriptionStatus.ACTIVE).values_list(
            "pipeline_id", "namespace_id", "pipeline__slug", "subscription_id"
        )
        for pipeline_pk, namespace_id, slug, subscription_id in rows:
            if pipeline_pk not in subscribed:
                role_id = f"extension:{extension_id}:{namespace_id}/{slug}"
                roles.append(compile_role(role_id, pipeline_permissions(namespace_id, slug)))
            subscribed.setdefault(pipeline_pk, []).append(subscription_id)

    # What an operator granted on purpose at install (Gofer's additional_roles).
    for role in Role.objects.filter(id__in=extension.additional_roles or []):
        roles.append(compile_role(role.id, role.permissions))

    def initiator_for(pipeline: Any) -> dict[str, str]:
        # The run records which subscription of this extension it was started for (several: all of them).
        return {"extension_id": extension_id, "subscription_id": ",".join(subscribed.get(pipeline.pk, []))}

    return Principal(
        kind="extension",
        name=name,
        roles=tuple(roles),
        token_id=str(token.id),
        extra={"extension_id": extension_id, "initiator_for": initiator_for},
    )


def extension_is_installed(extension_id: str) -> bool:
    return Extension.objects.filter(id=extension_id).exists()


def on_post_migrate(sender: Any, **kwargs: Any) -> None:
    """Install the configured built-ins once the tables exist (``make run`` migrates at every start)."""
    services.ensure_builtin_extensions()


def _tell_extensions_on_commit(subscriptions: Any) -> None:
    """Third-party extensions hear of subscriptions that go with a deleted pipeline or namespace (best effort,
    after the commit; the rows cascade away with the pipeline)."""
    gone = [
        (s.extension, s.namespace_id, s.pipeline.slug, s.subscription_id)
        for s in subscriptions.select_related("extension", "pipeline").exclude(extension__image__startswith="builtin:")
    ]
    if gone:
        transaction.on_commit(lambda: supervisor.tell_unsubscribed(gone))


def on_pipeline_deleting(sender: Any, pipeline: Any, **kwargs: Any) -> None:
    _tell_extensions_on_commit(Subscription.objects.filter(pipeline=pipeline))


def on_namespace_deleting(sender: Any, namespace: Any, **kwargs: Any) -> None:
    _tell_extensions_on_commit(Subscription.objects.filter(namespace=namespace))
