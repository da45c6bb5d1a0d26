"""States of extensions, subscriptions and firings, with the groups the code asks about.

Values are Gofer v0's (``extension_state``, ``extension_status``, ``subscription_status``,
``subscription_status_reason_type``); the ones Gofer lacked are marked.
"""

from django.db import models


class ExtensionKind(models.TextChoices):
    """What an extension is for (ours). Triggers start runs; notifiers tell people about them (issue 11). Both are
    installed through ``/api/extensions`` and used through the same subscription paths."""

    TRIGGER = "trigger"
    NOTIFIER = "notifier"


class ExtensionState(models.TextChoices):
    """Where the extension's service is (Gofer's ``extension_state``). Built-ins are always ``running``."""

    UNKNOWN = "unknown"
    PROCESSING = "processing", "Processing (starting)"
    RUNNING = "running"
    EXITED = "exited"


class ExtensionStatus(models.TextChoices):
    """Whether an admin lets pipelines use it (Gofer's ``extension_status``)."""

    UNKNOWN = "unknown"
    ENABLED = "enabled"
    DISABLED = "disabled"


class SubscriptionStatus(models.TextChoices):
    UNKNOWN = "unknown"
    ACTIVE = "active"
    ERROR = "error", "Error (fires nothing until it heals)"
    DISABLED = "disabled"


class SubscriptionStatusReason(models.TextChoices):
    """Gofer's ``subscription_status_reason_type``: what kind of failure put a subscription in ``error``."""

    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"  # something it needs is gone: a secret, a live config, the extension's service
    FAILED = "failed"  # something it needs refused: the pipeline is disabled, the extension answered an error


class FiringCause(models.TextChoices):
    """Why a firing happened (ours)."""

    SCHEDULE = "schedule"  # interval and cron
    WEBHOOK = "webhook"
    GITHUB = "github"
    MANUAL = "manual", "Manual (fire now)"


class FiringOutcome(models.TextChoices):
    """What a firing did (ours)."""

    STARTED = "started", "Started a run"
    SKIPPED = "skipped", "Skipped (nothing started, the subscription stays healthy)"
    FAILED = "failed", "Failed (the subscription went to error)"


# Subscriptions the ticker looks at: active ones fire, error ones are re-checked.
WATCHED_SUBSCRIPTION_STATES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.ERROR})
