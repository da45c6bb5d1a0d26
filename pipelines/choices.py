"""States of pipelines, configs and deployments, with the groups the code asks about."""

from django.db import models


class PipelineState(models.TextChoices):
    UNKNOWN = "unknown"
    ACTIVE = "active"
    DISABLED = "disabled"


class ConfigState(models.TextChoices):
    UNKNOWN = "unknown"
    UNRELEASED = "unreleased", "Unreleased (never deployed)"
    LIVE = "live", "Live (runs use it)"
    DEPRECATED = "deprecated", "Deprecated (superseded)"


class RequiredParentStatus(models.TextChoices):
    """What a task needs from a parent before it runs (Gofer's depends_on values)."""

    ANY = "any"
    SUCCESS = "success"
    FAILURE = "failure"


class DeploymentState(models.TextChoices):
    UNKNOWN = "Unknown"
    RUNNING = "Running"
    COMPLETE = "Complete"


class DeploymentStatus(models.TextChoices):
    UNKNOWN = "Unknown"
    FAILED = "Failed"
    SUCCESSFUL = "Successful"


class ParallelismMode(models.TextChoices):
    """What a new run does when its pipeline is at its parallelism limit (ours)."""

    QUEUE = "queue", "Wait in pending, in order"
    CANCEL_OLDEST = "cancel_oldest", "Cancel the oldest running run"
