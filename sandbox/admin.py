"""Sandbox visitors in the operators' console: read-only (they come and go by themselves)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from console.mixins import NamespacedAdminMixin
from sandbox.models import Visitor


@admin.register(Visitor)
class VisitorAdmin(NamespacedAdminMixin, admin.ModelAdmin):
    list_display = ("namespace", "address", "created", "expires")
    search_fields = ("namespace__id", "address")
    fields = ("namespace", "token", "address", "created", "expires")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
