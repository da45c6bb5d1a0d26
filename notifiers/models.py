"""Notices (one decision of a rule about one run) and their delivery attempts.

A **notice** is written in the transaction that decided it, under a lock on the subscription row, and is unique on
``(subscription, run, kind)``: a second evaluation of the same run (another worker, the sweep after a restart)
finds it and records nothing. Its delivery state lives on the row: a worker **claims** it with a conditional UPDATE
(``pending`` and due, or ``delivering`` with a lapsed claim) before it sends anything, so two workers never both
send it, and one that died mid-delivery leaves a claim that lapses and the sweep hands the notice to another.

A **delivery** is one attempt: when, the HTTP status, the error and the response's first bytes, secrets masked.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from kernel.scope import Tenancy
from notifiers.choices import AttemptOutcome, NoticeKind, NoticeState, Rule
from pipelines.models import Namespace, Pipeline
from runs.models import Run
from triggers.models import Subscription


class Notice(models.Model):
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="notices")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=NoticeKind.choices)
    rule = models.CharField(max_length=32, choices=Rule.choices)
    # Why it fired, in words ("3 failed runs in a row"); never sensitive.
    description = models.TextField(blank=True, default="")
    task_slug = models.CharField(max_length=64, blank=True, default="")
    created = models.DateTimeField(default=timezone.now, editable=False)

    state = models.CharField(max_length=16, choices=NoticeState.choices, default=NoticeState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a delivery message was last queued for it: the sweep queues again only what has waited too long.
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=128, blank=True, default="", editable=False)
    claim_expires = models.DateTimeField(null=True, blank=True, editable=False)
    finished = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # What the receiving service named the thing it made (notify-github: the check run's id).
    remote_id = models.CharField(max_length=64, blank=True, default="", editable=False)

    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "run", "kind"], name="notice_once_per_run_and_kind")
        ]
        indexes = [
            models.Index(
                fields=["state", "next_attempt_at"],
                condition=Q(state__in=["pending", "delivering"]),
                name="notice_open_idx",
            ),
            models.Index(fields=["subscription", "finished"], name="notice_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subscription} run {self.run.number if self.run_id else '?'} {self.kind}"


class Delivery(models.Model):
    """One attempt to deliver a notice."""

    notice = models.ForeignKey(Notice, on_delete=models.CASCADE, related_name="deliveries")
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="+")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    started = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # The first RESPONSE_EXCERPT_BYTES of the answer, secrets masked.
    response = models.TextField(blank=True, default="")
    retry_at = models.DateTimeField(null=True, blank=True)

    tenancy = Tenancy(namespace="namespace__id", pipeline="pipeline__slug")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["subscription", "-id"], name="delivery_subscription_idx")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.notice} attempt {self.attempt}: {self.outcome}"
