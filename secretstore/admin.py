"""Pipeline and global secrets in the operators' console: key names and metadata, never a value.

The ``value`` column is never loaded here: every queryset defers it and no form, list, filter or page includes it, so
not even the ciphertext is decrypted. Where a value lives is read from the column's NULL-ness alone ("stored in
database (encrypted)" or "stored in Vault"). Secrets are created and changed through the API only; deleting goes
through ``secretstore.services.delete_pipeline_secret`` / ``delete_global_secret``, which remove the Vault entry
together with the row (a Vault that cannot be reached refuses the delete, shown as an error message).

Pipeline secrets are scoped for staff like the API's ``secrets`` routes; global secrets are superuser-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import HttpRequest

from console.mixins import NamespacedAdminMixin, SuperuserOnlyMixin, ThroughServicesMixin, pretty_json
from kernel.choices import Action, Resource
from secretstore import services
from secretstore.models import GlobalSecret, PipelineSecret

SECRETS = (Resource.SECRETS,)
IN_DATABASE = "stored in database (encrypted)"
IN_VAULT = "stored in Vault"


def _metadata_only(queryset: QuerySet) -> QuerySet:
    """The rows without their value column, and whether the value lives in Vault (its column is NULL)."""
    return queryset.defer("value").annotate(
        _in_vault=ExpressionWrapper(Q(value__isnull=True), output_field=BooleanField())
    )


class StorageFilter(admin.SimpleListFilter):
    title = "storage"
    parameter_name = "storage"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("database", IN_DATABASE), ("vault", IN_VAULT)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "database":
            return queryset.filter(value__isnull=False)
        if self.value() == "vault":
            return queryset.filter(value__isnull=True)
        return queryset


class SecretAdminMixin:
    """What both secret admins share: no value anywhere, no add or change, the storage column."""

    exclude = ("value",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return _metadata_only(super().get_queryset(request))  # type: ignore[misc]

    @admin.display(description="storage", ordering="_in_vault")
    def storage(self, secret: PipelineSecret | GlobalSecret) -> str:
        in_vault = getattr(secret, "_in_vault", None)
        if in_vault is None:  # a row not read through get_queryset: ask the column, never load the value
            in_vault = type(secret).objects.filter(pk=secret.pk, value__isnull=True).exists()
        return IN_VAULT if in_vault else IN_DATABASE

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PipelineSecret)
class PipelineSecretAdmin(SecretAdminMixin, NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Pipeline secrets: key, pipeline, where the value is kept, dates. Delete through delete_pipeline_secret."""

    scope_resources = SECRETS
    list_display = ("key", "pipeline", "namespace", "storage", "created", "modified")
    list_filter = (StorageFilter, ("namespace", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("pipeline",)
    search_fields = ("key", "pipeline__slug", "namespace__id")
    date_hierarchy = "modified"
    fields = ("namespace", "pipeline", "key", "storage", "created", "modified")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def delete_with_service(self, request: HttpRequest, obj: PipelineSecret) -> None:
        services.delete_pipeline_secret(obj.pipeline, obj.key)


@admin.register(GlobalSecret)
class GlobalSecretAdmin(SecretAdminMixin, SuperuserOnlyMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Global secrets (superusers only): key, the namespace regexes allowed to use it, where the value is kept."""

    list_display = ("key", "namespace_patterns", "storage", "created", "modified")
    list_filter = (StorageFilter,)
    search_fields = ("key",)
    date_hierarchy = "modified"
    fields = ("key", "namespaces_display", "storage", "created", "modified")
    readonly_fields = fields

    @admin.display(description="namespaces")
    def namespace_patterns(self, secret: GlobalSecret) -> str:
        return ", ".join(secret.namespaces or [])

    @admin.display(description="namespaces (regexes)")
    def namespaces_display(self, secret: GlobalSecret) -> str:
        return pretty_json(secret.namespaces or [])

    def delete_with_service(self, request: HttpRequest, obj: GlobalSecret) -> None:
        services.delete_global_secret(obj.key)
