"""Tokens, roles, staff grants and the system-wide switches."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from access.choices import TokenKind


class Role(models.Model):
    """A named list of permissions: ``[{"resources": ["namespaces:^team-a$", "runs"], "actions": ["read"]}]``.

    System roles (bootstrap, admin, user, anonymous) are created by a migration and cannot be changed.
    """

    id = models.CharField(primary_key=True, max_length=64)
    description = models.TextField(blank=True, default="")
    permissions = models.JSONField(default=list)
    system_role = models.BooleanField(default=False, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id


class Token(models.Model):
    """An API token. Only the SHA-256 of the secret is stored; the plaintext is shown once, at creation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=TokenKind.choices, default=TokenKind.USER)
    roles = models.ManyToManyField(Role, related_name="tokens", blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    disabled = models.BooleanField(default=False)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.user} ({self.id})"

    @property
    def is_expired(self) -> bool:
        return self.expires is not None and self.expires <= timezone.now()


class StaffAccess(models.Model):
    """Roles granted to a Django staff user in the operators' admin.

    A staff user who is not a superuser sees in the admin exactly what these roles let a token see in the API: the
    same permission check scopes both.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gofer_access")
    roles = models.ManyToManyField(Role, related_name="staff", blank=True)

    class Meta:
        verbose_name = "staff access"
        verbose_name_plural = "staff access"

    def __str__(self) -> str:
        return f"access for {self.user}"


class SystemPreferences(models.Model):
    """The single row of system-wide switches (GET/PATCH /api/system)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    bootstrap_token_created = models.BooleanField(default=False)
    # The kill switch: while true, new runs are refused with 503.
    ignore_pipeline_run_events = models.BooleanField(default=False)
    # This installation's identity, made once: it labels every container Gofer starts, so that Gofer adopts and
    # prunes only its own containers, even beside another installation on the same engine.
    installation_id = models.UUIDField(default=uuid.uuid4, editable=False)

    class Meta:
        verbose_name = "system preferences"
        verbose_name_plural = "system preferences"

    def __str__(self) -> str:
        return "system preferences"

    @classmethod
    def load(cls) -> SystemPreferences:
        prefs, _ = cls.objects.get_or_create(
            id=1, defaults={"ignore_pipeline_run_events": settings.GOFER_IGNORE_PIPELINE_RUN_EVENTS}
        )
        return prefs
