"""Pipeline, run and extension objects in the operators' console: key records only (key, size, SHA-256, created).

An object's bytes, and the backend's name for them, are never shown. Objects are stored through the API only;
deleting goes through ``objectstore.services.delete_pipeline_object`` / ``delete_run_object`` /
``delete_extension_object``, which delete the blob once the deletion commits.

Pipeline and run objects are scoped for staff like the API's ``objects`` routes; extension objects are
superuser-only (their permission targets extension ids, which no namespace scope can express).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from console.mixins import NamespacedAdminMixin, SuperuserOnlyMixin, ThroughServicesMixin
from kernel.choices import Action, Resource
from objectstore import services
from objectstore.models import ExtensionObject, PipelineObject, RunObject, StoredObject

OBJECTS = (Resource.OBJECTS,)


class ObjectAdminMixin:
    """Read-only key records; no add or change; the blob name and the bytes stay out of every page."""

    exclude = ("blob",)

    @admin.display(description="size", ordering="size")
    def size_display(self, obj: StoredObject) -> str:
        return f"{filesizeformat(obj.size)} ({obj.size} bytes)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PipelineObject)
class PipelineObjectAdmin(ObjectAdminMixin, NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Objects of pipelines. Delete through delete_pipeline_object."""

    scope_resources = OBJECTS
    list_display = ("key", "pipeline", "namespace", "size_display", "sha256", "created")
    list_filter = (("namespace", admin.RelatedOnlyFieldListFilter), ("pipeline", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("pipeline",)
    search_fields = ("key", "sha256", "pipeline__slug", "namespace__id")
    date_hierarchy = "created"
    fields = ("namespace", "pipeline", "key", "size_display", "sha256", "created")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def delete_with_service(self, request: HttpRequest, obj: PipelineObject) -> None:
        services.delete_pipeline_object(obj.pipeline, obj.key)


@admin.register(RunObject)
class RunObjectAdmin(ObjectAdminMixin, NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Objects of runs (gone once the run's objects expire). Delete through delete_run_object."""

    scope_resources = OBJECTS
    list_display = ("key", "run", "namespace", "size_display", "sha256", "created")
    list_filter = (("namespace", admin.RelatedOnlyFieldListFilter), ("pipeline", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("run__pipeline",)
    search_fields = ("key", "sha256", "pipeline__slug", "namespace__id", "run__number__exact")
    date_hierarchy = "created"
    fields = ("namespace", "pipeline", "run", "key", "size_display", "sha256", "created")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def delete_with_service(self, request: HttpRequest, obj: RunObject) -> None:
        services.delete_run_object(obj.run, obj.key)


@admin.register(ExtensionObject)
class ExtensionObjectAdmin(ObjectAdminMixin, SuperuserOnlyMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Objects in extensions' private stores (superusers only). Delete through delete_extension_object."""

    list_display = ("key", "extension_id", "size_display", "sha256", "created")
    list_filter = ("extension_id",)
    search_fields = ("key", "sha256", "extension_id")
    date_hierarchy = "created"
    fields = ("extension_id", "key", "size_display", "sha256", "created")
    readonly_fields = fields

    def delete_with_service(self, request: HttpRequest, obj: ExtensionObject) -> None:
        services.delete_extension_object(obj.extension_id, obj.key)
