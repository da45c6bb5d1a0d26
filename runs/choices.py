"""States, statuses and reasons of runs and task executions, with the groups the code asks about.

Values are Gofer v0's; the ones Gofer lacked are marked.
"""

from django.db import models


class RunState(models.TextChoices):
    UNKNOWN = "unknown"
    PENDING = "pending", "Pending (queued)"
    RUNNING = "running"
    COMPLETE = "complete"


class RunStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown (not finished)"
    FAILED = "failed"
    SUCCESSFUL = "successful"
    CANCELLED = "cancelled"


class RunStatusReason(models.TextChoices):
    UNKNOWN = "unknown"
    ABNORMAL_EXIT = "abnormal_exit"
    SCHEDULER_ERROR = "scheduler_error"
    FAILED_PRECONDITION = "failed_precondition"
    USER_CANCELLED = "user_cancelled"
    ADMIN_CANCELLED = "admin_cancelled"
    TIMEOUT = "timeout"  # ours: the global run timeout, or a task's own timeout
    SUPERSEDED = "superseded"  # ours: cancelled by the cancel-oldest parallelism mode
    NAMESPACE_DELETED = "namespace_deleted"  # ours


class TaskExecutionState(models.TextChoices):
    UNKNOWN = "unknown"
    WAITING = "waiting", "Waiting (for parents)"
    PROCESSING = "processing", "Processing (preparing and starting)"
    RUNNING = "running"
    COMPLETE = "complete"


class TaskExecutionStatus(models.TextChoices):
    UNKNOWN = "unknown"
    FAILED = "failed"
    SUCCESSFUL = "successful"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class TaskExecutionStatusReason(models.TextChoices):
    UNKNOWN = "unknown"
    ABNORMAL_EXIT = "abnormal_exit"
    SCHEDULER_ERROR = "scheduler_error"
    FAILED_PRECONDITION = "failed_precondition"
    CANCELLED = "cancelled"
    ORPHANED = "orphaned"
    TIMEOUT = "timeout"  # ours


class VariableSource(models.TextChoices):
    UNKNOWN = "unknown"
    PIPELINE_CONFIG = "pipeline_config"
    SYSTEM = "system"
    RUN_OPTIONS = "run_options"
    EXTENSION = "extension"


UNFINISHED_RUN_STATES = frozenset({RunState.PENDING, RunState.RUNNING})
ACTIVE_TASK_STATES = frozenset({TaskExecutionState.PROCESSING, TaskExecutionState.RUNNING})
UNFINISHED_TASK_STATES = frozenset(
    {TaskExecutionState.WAITING, TaskExecutionState.PROCESSING, TaskExecutionState.RUNNING}
)
