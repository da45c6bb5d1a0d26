"""Extensions, subscriptions, firings and extension logs in the operators' console.

Every change goes through the same functions as the API (triggers/services.py, triggers/supervisor.py,
triggers/firing.py): enabling and disabling extensions and subscriptions, uninstalling, deleting subscriptions and
"fire now". Settings are shown as the API shows them (sensitive values redacted), never edited here; the
state, the last and the next firing are read-only, written by the ticker.

Extensions are not tenant data: their pages are for superusers. Subscriptions and firings are scoped for staff like
the API's ``subscriptions`` routes.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from console.mixins import (
    NamespacedAdminMixin,
    ReadOnlyInlineMixin,
    SuperuserOnlyMixin,
    ThroughServicesMixin,
    apply_each,
    changelist_link,
    pretty_json,
    report,
)
from kernel.choices import Action, Resource
from triggers import firing, services, supervisor
from triggers.choices import FiringOutcome, SubscriptionStatus
from triggers.models import Extension, ExtensionLogEntry, Firing, Subscription

SUBSCRIPTIONS = (Resource.SUBSCRIPTIONS,)


@admin.register(Extension)
class ExtensionAdmin(SuperuserOnlyMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Installed extensions: registration, state, their subscriptions. Enable, disable and uninstall through the
    services; install with ``POST /api/extensions``."""

    list_display = ("id", "kind", "image", "status", "state", "subscription_count", "started")
    list_filter = ("kind", "status", "state")
    search_fields = ("id", "image")
    actions = ("enable_extensions", "disable_extensions")
    fields = (
        "id",
        "kind",
        "image",
        "status",
        "state",
        "state_description",
        "settings_display",
        "documentation_display",
        "protocol_version",
        "url",
        "scheduler",
        "container_id",
        "generation",
        "restarts",
        "last_healthy",
        "next_restart_at",
        "subscriptions_link",
        "created",
        "modified",
        "started",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_subscriptions=Count("subscriptions"))

    @admin.display(description="subscriptions", ordering="_subscriptions")
    def subscription_count(self, extension: Extension) -> int:
        return getattr(extension, "_subscriptions", 0)

    @admin.display(description="settings")
    def settings_display(self, extension: Extension) -> str:
        return pretty_json(services.shown_config(extension))

    @admin.display(description="documentation")
    def documentation_display(self, extension: Extension) -> str:
        return pretty_json(services.documentation_of(extension))

    @admin.display(description="subscriptions")
    def subscriptions_link(self, extension: Extension) -> str:
        return changelist_link(Subscription, "its subscriptions", extension__id__exact=extension.id)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_with_service(self, request: HttpRequest, obj: Extension) -> None:
        supervisor.uninstall(obj)

    @admin.action(description="Enable selected extensions (set_extension_enabled)")
    def enable_extensions(self, request: HttpRequest, queryset: QuerySet) -> None:
        outcome = apply_each(queryset, lambda e: services.set_extension_enabled(e, True))
        report(self, request, outcome, verb="enable", done="Enabled", unchanged="already enabled")

    @admin.action(description="Disable selected extensions: none of their subscriptions fires")
    def disable_extensions(self, request: HttpRequest, queryset: QuerySet) -> None:
        outcome = apply_each(queryset, lambda e: services.set_extension_enabled(e, False))
        report(self, request, outcome, verb="disable", done="Disabled", unchanged="already disabled")


class FiringInline(ReadOnlyInlineMixin, NamespacedAdminMixin, admin.TabularInline):
    model = Firing
    scope_resources = SUBSCRIPTIONS
    fields = ("created", "cause", "scheduled_for", "outcome", "run_number", "description")
    readonly_fields = fields
    ordering = ("-id",)


@admin.register(Subscription)
class SubscriptionAdmin(NamespacedAdminMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Subscriptions with their state, last and next firing. Enable, disable, fire now and delete through the
    services; subscribe with ``POST .../subscriptions``."""

    scope_resources = SUBSCRIPTIONS
    list_display = (
        "__str__",
        "extension",
        "status",
        "status_reason",
        "next_fire_at",
        "last_fired_at",
        "last_run_number",
    )
    list_filter = ("status", "extension", ("namespace", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("pipeline", "extension")
    search_fields = ("subscription_id", "pipeline__slug", "namespace__id", "extension__id")
    actions = ("enable_subscriptions", "disable_subscriptions", "fire_now")
    fields = (
        "namespace",
        "pipeline",
        "extension",
        "subscription_id",
        "settings_display",
        "status",
        "status_reason",
        "status_description",
        "next_fire_at",
        "last_fired_at",
        "last_run_number",
        "created",
        "modified",
    )
    readonly_fields = fields
    inlines = (FiringInline,)

    @admin.display(description="settings")
    def settings_display(self, subscription: Subscription) -> str:
        return pretty_json(services.shown_settings(subscription))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.DELETE, obj)

    def has_write_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.WRITE, obj)

    def delete_with_service(self, request: HttpRequest, obj: Subscription) -> None:
        supervisor.unsubscribe(obj)

    def _set(self, request: HttpRequest, queryset: QuerySet, status: str, verb: str) -> None:
        rows, outcome = self.split_allowed(request, queryset, Action.WRITE)
        apply_each(rows, lambda s: supervisor.set_subscription_status(s, status), outcome)
        report(self, request, outcome, verb=verb, done=f"{verb.capitalize()}d", unchanged=f"already {status}")

    @admin.action(description="Enable selected subscriptions", permissions=["write"])
    def enable_subscriptions(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set(request, queryset, SubscriptionStatus.ACTIVE, "enable")

    @admin.action(description="Disable selected subscriptions: they stop firing", permissions=["write"])
    def disable_subscriptions(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set(request, queryset, SubscriptionStatus.DISABLED, "disable")

    @admin.action(description="Fire selected subscriptions now (one run each)", permissions=["write"])
    def fire_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        rows, outcome = self.split_allowed(request, queryset, Action.WRITE)
        apply_each(rows, lambda s: firing.fire_now(s).outcome == FiringOutcome.STARTED, outcome)
        report(self, request, outcome, verb="fire", done="Fired", unchanged="not active, or refused")


@admin.register(Firing)
class FiringAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """Every firing decision: the key it was claimed under, what it did, the run it started. Read-only."""

    scope_resources = SUBSCRIPTIONS
    list_display = ("created", "subscription", "cause", "scheduled_for", "outcome", "run_number")
    list_filter = ("outcome", "cause")
    list_select_related = ("subscription", "subscription__pipeline")
    date_hierarchy = "created"
    show_full_result_count = False
    fields = ("subscription", "key", "cause", "scheduled_for", "created", "outcome", "run_number", "description")
    readonly_fields = fields


@admin.register(ExtensionLogEntry)
class ExtensionLogEntryAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    """Extensions' logs: firing decisions and services' output (also streamed by the logs websocket)."""

    list_display = ("created", "extension_id", "source", "text")
    list_filter = ("source", "extension_id")
    search_fields = ("text",)
    show_full_result_count = False
    readonly_fields = ("created", "extension_id", "source", "text", "namespace_id", "pipeline_slug")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
