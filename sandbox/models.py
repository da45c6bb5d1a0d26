"""Sandbox visitors: who signed up, for which namespace, until when."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from kernel.scope import Tenancy
from pipelines.models import Namespace


class Visitor(models.Model):
    """A sandbox visitor's namespace and token (POST /api/sandbox). When ``expires`` passes, the periodic job
    (sandbox.services.expire_visitors, every minute) deletes the namespace with everything in it, and the token."""

    namespace = models.OneToOneField(Namespace, primary_key=True, on_delete=models.CASCADE, related_name="visitor")
    token = models.ForeignKey(
        "access.Token", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    # The client address it signed up from (as kernel.api.middleware.client_address saw it), for operators.
    address = models.CharField(max_length=64, blank=True, default="")
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires = models.DateTimeField(db_index=True)

    # Where its rows hang, for tenant scoping in SQL (kernel/scope.py).
    tenancy = Tenancy(namespace="namespace__id")

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"sandbox visitor {self.namespace_id}"
