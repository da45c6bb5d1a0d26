"""Notices and their delivery attempts in the operators' console: read-only, scoped for staff like the API's
``subscriptions`` routes (a notice is about a pipeline's run, seen by whoever may read its subscriptions)."""

from __future__ import annotations

from django.contrib import admin

from console.mixins import NamespacedAdminMixin, ReadOnlyInlineMixin
from kernel.choices import Resource
from notifiers.models import Delivery, Notice

SUBSCRIPTIONS = (Resource.SUBSCRIPTIONS,)


class DeliveryInline(ReadOnlyInlineMixin, NamespacedAdminMixin, admin.TabularInline):
    model = Delivery
    fk_name = "notice"
    scope_resources = SUBSCRIPTIONS
    fields = ("attempt", "started", "duration_ms", "outcome", "status_code", "error", "response", "retry_at")
    readonly_fields = fields
    ordering = ("-id",)


@admin.register(Notice)
class NoticeAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """Every notice a rule recorded, and where its delivery is."""

    scope_resources = SUBSCRIPTIONS
    list_display = ("created", "subscription", "run_number", "kind", "rule", "state", "attempts", "finished")
    list_filter = ("state", "kind", "rule")
    list_select_related = ("subscription", "subscription__pipeline", "run")
    date_hierarchy = "created"
    show_full_result_count = False
    fields = (
        "subscription",
        "run",
        "kind",
        "rule",
        "description",
        "task_slug",
        "created",
        "state",
        "attempts",
        "next_attempt_at",
        "claim_expires",
        "finished",
        "last_error",
    )
    readonly_fields = fields
    inlines = (DeliveryInline,)

    @admin.display(description="run", ordering="run__number")
    def run_number(self, notice: Notice) -> int:
        return notice.run.number


@admin.register(Delivery)
class DeliveryAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    """Every attempt: when, the answer's status, the error and the answer's first bytes (secrets masked)."""

    scope_resources = SUBSCRIPTIONS
    list_display = ("started", "subscription", "notice", "attempt", "outcome", "status_code", "error")
    list_filter = ("outcome",)
    list_select_related = ("subscription", "subscription__pipeline", "notice", "notice__run", "notice__subscription")
    date_hierarchy = "started"
    show_full_result_count = False
    fields = (
        "notice",
        "subscription",
        "attempt",
        "started",
        "duration_ms",
        "outcome",
        "status_code",
        "error",
        "response",
        "retry_at",
    )
    readonly_fields = fields
