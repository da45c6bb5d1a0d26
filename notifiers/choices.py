"""Rules, notices and delivery attempts: their states, with the groups the code asks about (all ours)."""

from django.db import models


class Rule(models.TextChoices):
    """The subscription setting ``when``: what makes a notice (docs/notifiers.md, "Rules")."""

    RUN_FINISHED = "run_finished", "Every completed run"
    RUN_FAILED = "run_failed", "Every failed run"
    FAILED_IN_A_ROW = "failed_in_a_row", "count failed runs in a row (and the run that ends the streak)"
    FAILURE_RATE = "failure_rate", "Failure rate of the last window runs above threshold (and back)"
    DURATION_EXCEEDED = "duration_exceeded", "A run still running after duration"
    TASK_FAILED = "task_failed", "A task execution of task failed"
    TASK_SUCCEEDED = "task_succeeded", "A task execution of task succeeded"


class NoticeKind(models.TextChoices):
    TRIGGERED = "triggered", "Triggered (the rule fired)"
    RECOVERED = "recovered", "Recovered (the condition is over)"
    # notify-github only: the run started (a pending commit status, an in_progress check run).
    STARTED = "started", "Started (the run began)"


class NoticeState(models.TextChoices):
    PENDING = "pending", "Pending (to be delivered, or retried at next_attempt_at)"
    DELIVERING = "delivering", "Delivering (claimed by a worker until claim_expires)"
    DELIVERED = "delivered"
    FAILED = "failed", "Failed (every attempt, or a permanent refusal)"
    SILENCED = "silenced", "Silenced (recovery=false: recorded for the rule's state, not sent)"


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded"
    RETRYING = "retrying", "Failed, to be retried"
    FAILED = "failed", "Failed, no more attempts"


# Rules that read the pipeline's history and have a recovered notice.
STATEFUL_RULES = frozenset({Rule.FAILED_IN_A_ROW, Rule.FAILURE_RATE})
RUN_RULES = frozenset({Rule.RUN_FINISHED, Rule.RUN_FAILED, Rule.FAILED_IN_A_ROW, Rule.FAILURE_RATE})
TASK_RULES = frozenset({Rule.TASK_FAILED, Rule.TASK_SUCCEEDED})
# Notices a worker still has to deliver.
OPEN_NOTICE_STATES = frozenset({NoticeState.PENDING, NoticeState.DELIVERING})

# How much of a receiver's answer a delivery attempt keeps (secrets masked).
RESPONSE_EXCERPT_BYTES = 512
