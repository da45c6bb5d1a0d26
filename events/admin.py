"""The event log in the operators' console: read-only, scoped like ``events.services.visible_events``.

Events without a namespace (tokens, roles, system) are visible to admins only, as in the API. Deleting an event
needs the admin role and goes through ``events.services.delete_event``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from console.mixins import NamespacedAdminMixin, ThroughServicesMixin, pretty_json
from events import services
from events.models import Event
from kernel.choices import Action, Resource


@admin.register(Event)
class EventAdmin(NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    scope_resources = (Resource.EVENTS,)
    scope_admin_writes = True
    list_display = ("id", "kind", "emitted", "namespace_id", "pipeline_slug", "run_number", "short_details")
    list_filter = ("kind", "namespace_id")
    search_fields = ("kind", "namespace_id", "pipeline_slug", "run_number__exact")
    date_hierarchy = "emitted"
    ordering = ("-id",)
    show_full_result_count = False
    fields = ("id", "kind", "emitted", "namespace_id", "pipeline_slug", "run_number", "details_display")
    readonly_fields = fields

    @admin.display(description="details")
    def short_details(self, event: Event) -> str:
        text = ", ".join(f"{key}={value}" for key, value in (event.details or {}).items())
        return text if len(text) <= 100 else text[:97] + "..."

    @admin.display(description="details")
    def details_display(self, event: Event) -> str:
        return pretty_json(event.details)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def delete_with_service(self, request: HttpRequest, obj: Event) -> None:
        services.delete_event(obj.id)
