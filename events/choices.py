"""Event kinds: Gofer v0's names, plus the ones Gofer lacked (marked)."""

from django.db import models


class EventKind(models.TextChoices):
    CREATED_NAMESPACE = "created_namespace"
    UPDATED_NAMESPACE = "updated_namespace"  # ours
    DELETED_NAMESPACE = "deleted_namespace"
    CREATED_PIPELINE = "created_pipeline"
    DISABLED_PIPELINE = "disabled_pipeline"
    ENABLED_PIPELINE = "enabled_pipeline"
    DELETED_PIPELINE = "deleted_pipeline"
    REGISTERED_PIPELINE_CONFIG = "registered_pipeline_config"  # ours
    DELETED_PIPELINE_CONFIG = "deleted_pipeline_config"  # ours
    STARTED_DEPLOYMENT = "started_deployment"
    COMPLETED_DEPLOYMENT = "completed_deployment"
    QUEUED_RUN = "queued_run"
    STARTED_RUN = "started_run"
    COMPLETED_RUN = "completed_run"
    STARTED_RUN_CANCELLATION = "started_run_cancellation"
    CREATED_TASK_EXECUTION = "created_task_execution"
    STARTED_TASK_EXECUTION = "started_task_execution"
    COMPLETED_TASK_EXECUTION = "completed_task_execution"
    STARTED_TASK_EXECUTION_CANCELLATION = "started_task_execution_cancellation"
    ATTACHED_TASK_EXECUTION = "attached_task_execution"  # ours: who attached to a task, when, with which command
    INSTALLED_EXTENSION = "installed_extension"
    UNINSTALLED_EXTENSION = "uninstalled_extension"
    ENABLED_EXTENSION = "enabled_extension"
    DISABLED_EXTENSION = "disabled_extension"
    PIPELINE_EXTENSION_SUBSCRIPTION_REGISTERED = "pipeline_extension_subscription_registered"
    PIPELINE_EXTENSION_SUBSCRIPTION_UNREGISTERED = "pipeline_extension_subscription_unregistered"
    PIPELINE_EXTENSION_SUBSCRIPTION_UPDATED = "pipeline_extension_subscription_updated"  # ours: status changes
    FIRED = "fired"  # ours: a subscription started a run
    SKIPPED = "skipped"  # ours: a subscription's firing started nothing, and it stays healthy (kill switch)
    SUBSCRIPTION_ERROR = "subscription_error"  # ours: a subscription went to error, with the reason
    SUBSCRIPTION_HEALED = "subscription_healed"  # ours: back to active by itself
    NOTIFIED = "notified"  # ours: a notifier's rule recorded a notice about a run
    NOTICE_DELIVERED = "notice_delivered"  # ours: a notice reached its destination
    NOTICE_FAILED = "notice_failed"  # ours: a notice could not be delivered (every attempt failed, or refused)
    CREATED_ROLE = "created_role"
    UPDATED_ROLE = "updated_role"  # ours
    DELETED_ROLE = "deleted_role"
    CREATED_TOKEN = "created_token"  # ours
    UPDATED_TOKEN = "updated_token"  # ours
    DELETED_TOKEN = "deleted_token"  # ours
    UPDATED_SYSTEM_PREFERENCES = "updated_system_preferences"  # ours
