"""Extensions, the pipelines' subscriptions to them, and the firings that started runs.

An **extension** is installed once (the built-ins by configuration, others by ``POST /api/extensions``); a pipeline
**subscribes** to it with settings; the extension then starts runs on the pipeline's behalf. A notifier (issue 11)
is an extension of the other kind and reuses all of this: settings validated against the documented parameters,
encryption of settings at rest, the subscription's status with its reason, and health.

A **firing** is one decision to start a run for one subscription, claimed in the database under a unique key (the
scheduled time, or the delivery id of a webhook) in the same transaction that starts the run: two workers that see
the same due firing start one run between them, and a subscription's state and its firings cannot drift apart.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from kernel.fields import EncryptedJSONField, EncryptedTextField
from kernel.scope import Tenancy
from pipelines.models import Namespace, Pipeline
from triggers.choices import (
    ExtensionKind,
    ExtensionState,
    ExtensionStatus,
    FiringCause,
    FiringOutcome,
    SubscriptionStatus,
    SubscriptionStatusReason,
)

BUILTIN_IMAGE_PREFIX = "builtin:"


class Extension(models.Model):
    """An installed extension: its registration (image, settings, roles), its status set by admins and, for
    third-party extensions, the service Gofer runs for it through a scheduler.

    ``settings`` (the install settings) are encrypted at rest as a whole; the API shows the values of documented,
    non-sensitive keys only. A built-in (image ``builtin:<id>``) runs inside Gofer's own processes: it has no
    service, no token and no address, and is always ``running`` while installed.
    """

    id = models.CharField(primary_key=True, max_length=32)
    kind = models.CharField(max_length=16, choices=ExtensionKind.choices, default=ExtensionKind.TRIGGER)
    image = models.CharField(max_length=512)
    settings = EncryptedJSONField(default=dict, blank=True)
    registry_auth = EncryptedJSONField(null=True, blank=True)
    additional_roles = models.JSONField(default=list, blank=True)
    # Ours: what to run instead of the image's default (the local scheduler has no images, so it needs one).
    entrypoint = models.JSONField(null=True, blank=True)
    command = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ExtensionStatus.choices, default=ExtensionStatus.ENABLED)
    state = models.CharField(max_length=16, choices=ExtensionState.choices, default=ExtensionState.PROCESSING)
    state_description = models.TextField(blank=True, default="")
    # What the extension reported on /api/info (kept, so that subscriptions validate while it restarts).
    documentation = models.JSONField(default=dict, blank=True)
    protocol_version = models.CharField(max_length=64, blank=True, default="")
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)

    # --- the service of a third-party extension ---------------------------------------------------------------------
    token = models.ForeignKey(
        "access.Token", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    # The token's plaintext: the extension's API credential and the key Gofer calls it with (both ways, as in Gofer).
    token_secret = EncryptedTextField(null=True, blank=True, editable=False)
    scheduler = models.CharField(max_length=16, blank=True, default="", editable=False)
    container_name = models.CharField(max_length=200, blank=True, default="", editable=False)
    container_id = models.CharField(max_length=200, blank=True, default="", editable=False)
    # Gofer calls the extension here, and nowhere else.
    url = models.CharField(max_length=300, blank=True, default="", editable=False)
    # Incremented on every (re)start; part of the container's name, so a restart never adopts the dead one.
    generation = models.PositiveIntegerField(default=0, editable=False)
    last_healthy = models.DateTimeField(null=True, blank=True, editable=False)
    health_failures = models.PositiveIntegerField(default=0, editable=False)
    restarts = models.PositiveIntegerField(default=0, editable=False)
    next_restart_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Where the pump of the service's output into the extension's log stopped (the scheduler's cursor).
    log_cursor = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id

    @property
    def builtin(self) -> str:
        """The built-in this is (``interval``...), or "" for a third-party extension."""
        return self.image[len(BUILTIN_IMAGE_PREFIX) :] if self.image.startswith(BUILTIN_IMAGE_PREFIX) else ""

    @property
    def enabled(self) -> bool:
        return self.status == ExtensionStatus.ENABLED


class Subscription(models.Model):
    """A pipeline's subscription to an extension, with its settings.

    ``settings`` are stored as given, references (``pipeline_secret{{k}}``) unresolved, and encrypted at rest; they
    are resolved, with the namespace checks, each time they are used. ``due_at`` is when the ticker must look at the
    subscription next: its next firing while ``active`` (scheduled kinds only), its next health check while
    ``error``, NULL otherwise. One indexed query over it finds all the work there is.
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="subscriptions")
    extension = models.ForeignKey(Extension, on_delete=models.CASCADE, related_name="subscriptions")
    subscription_id = models.CharField(max_length=32)
    settings = EncryptedJSONField(default=dict, blank=True)
    # What deliveries find it by without decrypting every subscription's settings (GitHub: the repository,
    # lower-cased); "" for the other kinds. Never sensitive.
    lookup_key = models.CharField(max_length=200, blank=True, default="", db_index=True, editable=False)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    status_reason = models.CharField(
        max_length=16, choices=SubscriptionStatusReason.choices, blank=True, default="", editable=False
    )
    status_description = models.TextField(blank=True, default="", editable=False)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    due_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_number = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(default=timezone.now)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["pipeline_id", "extension_id", "subscription_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "extension", "subscription_id"], name="subscription_unique_per_pipeline"
            )
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=Q(due_at__isnull=False), name="subscription_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} {self.extension_id}/{self.subscription_id}"


class Firing(models.Model):
    """One decision of a subscription to start a run, claimed under ``(subscription, key)``.

    ``key`` is ``at:<epoch ms of the scheduled time>`` for scheduled firings, ``delivery:<id>`` for webhooks and
    GitHub deliveries (so a redelivery starts nothing), ``manual:<uuid>`` for "fire now". The row is written in the
    transaction that starts the run, so a firing exists exactly when its run does (or its refusal is recorded).
    """

    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="firings")
    key = models.CharField(max_length=200)
    cause = models.CharField(max_length=16, choices=FiringCause.choices)
    scheduled_for = models.DateTimeField()
    created = models.DateTimeField(default=timezone.now, editable=False)
    outcome = models.CharField(max_length=16, choices=FiringOutcome.choices)
    description = models.TextField(blank=True, default="")
    run_number = models.PositiveBigIntegerField(null=True, blank=True)

    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["subscription", "key"], name="firing_unique_key")]
        indexes = [models.Index(fields=["created"], name="firing_created_idx")]

    def __str__(self) -> str:
        return f"{self.subscription} {self.key} {self.outcome}"


class ExtensionLogEntry(models.Model):
    """One line of an extension's log: a firing decision of Gofer's (``source="gofer"``) or a line of a
    third-party extension's own output (``stdout``/``stderr``). Streamed by ``GET (websocket)
    /api/extensions/{id}/logs``; the oldest lines beyond ``GOFER_EXTENSION_LOG_LINES`` per extension are pruned.

    Lines about a subscription carry its namespace and pipeline: they are shown only to callers who may read that
    pipeline's subscriptions (admins see everything).
    """

    id = models.BigAutoField(primary_key=True)
    extension_id = models.CharField(max_length=32)
    created = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=8, default="gofer")
    text = models.TextField()
    namespace_id = models.CharField(max_length=32, null=True, blank=True)
    pipeline_slug = models.CharField(max_length=32, null=True, blank=True)

    # Lines without a namespace (the service's own output, extension-wide decisions) match no role target: they are
    # for admins only.
    tenancy = Tenancy(namespace="namespace_id", pipeline="pipeline_slug", pipeline_optional=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["extension_id", "id"], name="extension_log_idx")]
        verbose_name_plural = "extension log entries"

    def __str__(self) -> str:
        return f"{self.extension_id} {self.text[:60]}"


class TickerLease(models.Model):
    """The single row that says which worker runs the ticker (triggers/ticker.py) until when.

    Only an optimisation: the firings' unique keys make each due firing start one run whoever ticks; the lease
    keeps the idle cost at one ticker's queries for the whole installation.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    owner = models.CharField(max_length=128, blank=True, default="")
    expires = models.DateTimeField(null=True, blank=True)
    last_tick = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ticker lease held by {self.owner or 'nobody'}"


class SeededBuiltin(models.Model):
    """A built-in extension installed once by configuration (``GOFER_BUILTIN_EXTENSIONS``). Kept after an operator
    uninstalls it, so that a restart does not install it again."""

    extension_id = models.CharField(primary_key=True, max_length=32)
    seeded = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.extension_id
