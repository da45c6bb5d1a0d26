"""Deliveries from the outside world: the generic webhook, GitHub, and events forwarded to third-party extensions.

Each authenticates by signature, never by token, and answers fast: it records the firing and starts the run (one
transaction, triggers/firing.py), never waiting for the run. Failures say as little as they must: an unknown
address and a wrong signature are the same 401, so ids cannot be probed and a computed signature is never echoed.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from kernel.errors import Conflict, NotFound, Unauthenticated, Unavailable, ValidationFailed
from objectstore import services as objects
from runs.interpolation import InterpolationError, resolve_settings
from triggers import firing, services, supervisor
from triggers.builtins import github, webhook
from triggers.choices import ExtensionState, FiringCause, FiringOutcome, SubscriptionStatus, SubscriptionStatusReason
from triggers.models import Extension, Subscription
from triggers.protocol import ExtensionRefused, ExtensionUnreachable

_DELIVERY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
GITHUB_PAYLOAD_OBJECT = "github-payload"


@dataclass
class Started:
    """One subscription's answer to a delivery."""

    namespace_id: str
    pipeline_id: str
    subscription_id: str
    run_id: int | None
    duplicate: bool = False
    outcome: str = FiringOutcome.STARTED
    reason: str = ""

    def as_api(self) -> dict[str, Any]:
        out = {
            "namespace_id": self.namespace_id,
            "pipeline_id": self.pipeline_id,
            "subscription_id": self.subscription_id,
            "run_id": self.run_id,
            "duplicate": self.duplicate,
            "outcome": self.outcome,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Delivery:
    delivery_id: str
    runs: list[Started] = field(default_factory=list)


def _delivery_id(raw: str | None, header: str) -> str:
    if raw is None or raw == "":
        return uuid.uuid4().hex
    if not _DELIVERY.fullmatch(raw):
        raise ValidationFailed(f"{header}: 1 to 128 letters, digits and . _ : -", field=header)
    return raw


def _signature_refused(header: str) -> Unauthenticated:
    return Unauthenticated(
        f"{header}: missing, or not the signature of this body with the subscription's secret", field=header
    )


def _usable(subscription: Subscription) -> None:
    """Raise unless the subscription can fire now (healing it first if it was in error and the cause is gone)."""
    if not subscription.extension.enabled:
        raise Conflict(f"extension {subscription.extension_id} is disabled: nothing was started")
    if subscription.status == SubscriptionStatus.DISABLED:
        raise Conflict(f"subscription {subscription.subscription_id} is disabled: nothing was started")
    if subscription.status == SubscriptionStatus.ERROR and not services.heal_if_possible(subscription):
        subscription.refresh_from_db()
        raise Unavailable(f"subscription {subscription.subscription_id} is in error: {subscription.status_description}")


def _fire(
    subscription: Subscription, key: str, cause: str, variables: dict[str, str], payload: bytes, name: str
) -> Started:
    def store_payload(run: Any) -> None:
        objects.put_run_object(run, name, [payload] if payload else [b""])

    result = firing.fire(
        subscription.pk,
        key=key,
        cause=cause,
        scheduled_for=timezone.now(),
        variables=variables,
        with_run=store_payload,
    )
    answer = Started(subscription.namespace_id, subscription.pipeline.slug, subscription.subscription_id, None)
    if result.firing is None:
        answer.outcome, answer.reason = FiringOutcome.SKIPPED, "the subscription is not active"
        return answer
    answer.outcome = result.firing.outcome
    answer.run_id = result.run.number if result.run is not None else result.firing.run_number
    answer.duplicate = result.duplicate
    if result.firing.outcome != FiringOutcome.STARTED:
        answer.reason = result.firing.description or result.firing.outcome
    return answer


# --- the generic webhook --------------------------------------------------------------------------------------------


def deliver_webhook(namespace_id: str, pipeline_slug: str, subscription_id: str, body: bytes, headers: Any) -> Delivery:
    """One signed delivery to one webhook subscription: one run (or the first run again, for a delivery id seen
    before). Raises Unauthenticated (401) for an unknown address or a bad signature, Conflict (409) for a disabled
    subscription, Unavailable (503) when it cannot fire (the reason is given: the caller proved it knows the
    secret)."""
    subscription = (
        Subscription.objects.select_related("extension", "pipeline")
        .filter(
            namespace_id=namespace_id,
            pipeline__slug=pipeline_slug,
            subscription_id=subscription_id,
            extension__image="builtin:webhook",
        )
        .first()
    )
    signature = headers.get(webhook.SIGNATURE_HEADER)
    if subscription is None:
        raise _signature_refused(webhook.SIGNATURE_HEADER)
    try:
        secret = resolve_settings({"secret": subscription.settings.get("secret", "")}, pipeline=subscription.pipeline)
    except InterpolationError as exc:
        with transaction.atomic():
            services.mark_error(
                Subscription.objects.select_related("extension", "pipeline").get(pk=subscription.pk),
                (SubscriptionStatusReason.NOT_FOUND, f"setting {str(exc).removeprefix('variable ')}"),
            )
        raise _signature_refused(webhook.SIGNATURE_HEADER) from None
    if not webhook.signature_matches(secret.env["secret"], body, signature):
        raise _signature_refused(webhook.SIGNATURE_HEADER)
    delivery_id = _delivery_id(headers.get(webhook.DELIVERY_HEADER), webhook.DELIVERY_HEADER)
    _usable(subscription)
    started = _fire(
        subscription,
        f"delivery:{delivery_id}",
        FiringCause.WEBHOOK,
        webhook.payload_variables(body, delivery_id),
        body,
        webhook.PAYLOAD_OBJECT,
    )
    if started.outcome == FiringOutcome.SKIPPED:
        raise Unavailable(f"nothing was started: {started.reason}")
    if started.outcome == FiringOutcome.FAILED:
        raise Unavailable(f"nothing was started: {started.reason}")
    return Delivery(delivery_id, [started])


# --- GitHub ---------------------------------------------------------------------------------------------------------


def github_extension() -> Extension:
    extension = Extension.objects.filter(image="builtin:github").first()
    if extension is None:
        raise NotFound("extension github is not installed", field="extension_id")
    return extension


def deliver_github(body: bytes, headers: Any) -> Delivery | None:
    """A GitHub webhook delivery: verified with the install setting ``app_webhook_secret`` (401 otherwise),
    ``ping`` answered with None (nothing started), then one run per active subscription whose repository and
    event filter match. A redelivery (same ``X-GitHub-Delivery``) starts nothing and answers the first runs."""
    extension = github_extension()
    secret = (extension.settings or {}).get("app_webhook_secret", "")
    if not webhook.signature_matches(secret, body, headers.get(github.SIGNATURE_HEADER)):
        raise Unauthenticated(
            f"{github.SIGNATURE_HEADER}: missing, or not the signature of this body with the app's webhook secret",
            field=github.SIGNATURE_HEADER,
        )
    event = headers.get(github.EVENT_HEADER) or ""
    if not re.fullmatch(r"[a-z_]{1,64}", event):
        raise ValidationFailed(f"{github.EVENT_HEADER}: missing or not an event name", field=github.EVENT_HEADER)
    delivery_id = headers.get(github.DELIVERY_HEADER)
    if not delivery_id:
        raise ValidationFailed(f"{github.DELIVERY_HEADER}: required", field=github.DELIVERY_HEADER)
    delivery_id = _delivery_id(delivery_id, github.DELIVERY_HEADER)
    if event == "ping":
        return None
    raw = body
    if body.startswith(b"payload="):
        # GitHub's other content type (application/x-www-form-urlencoded): the JSON is the payload field.
        raw = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("payload", [""])[0].encode()
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("body: not JSON", field="body") from None
    if not isinstance(payload, dict):
        raise ValidationFailed("body: must be a JSON object", field="body")
    repository = str((payload.get("repository") or {}).get("full_name") or "").lower()
    action = str(payload.get("action") or "")
    delivery = Delivery(delivery_id)
    candidates = Subscription.objects.filter(extension=extension, lookup_key=repository).select_related(
        "extension", "pipeline"
    )
    for subscription in candidates.order_by("pk"):
        filters = github.parse_filters(subscription.settings.get("event_filter", ""))
        if not any(f.matches(event, action) for f in filters):
            continue
        try:
            _usable(subscription)
        except (Conflict, Unavailable) as exc:
            delivery.runs.append(
                Started(
                    subscription.namespace_id,
                    subscription.pipeline.slug,
                    subscription.subscription_id,
                    None,
                    outcome=FiringOutcome.SKIPPED,
                    reason=exc.message,
                )
            )
            continue
        delivery.runs.append(
            _fire(
                subscription,
                f"delivery:{delivery_id}",
                FiringCause.GITHUB,
                github.event_variables(event, payload, filters),
                body,
                GITHUB_PAYLOAD_OBJECT,
            )
        )
    return delivery


# --- third-party extensions ---------------------------------------------------------------------------------------

# Headers a forwarded event never carries (credentials of the caller, hop-by-hop).
_DROPPED_HEADERS = {"authorization", "cookie", "proxy-authorization", "connection", "host", "content-length"}


def forward(extension_id: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """Forward an external event to a third-party extension's ``POST /api/external-event`` (its own address
    only), answering what it answered. Its authenticity is the extension's to check (it has the body and headers).
    404 for an unknown or built-in extension, 409 if disabled, 503 when it does not answer."""
    extension = Extension.objects.filter(id=extension_id).first()
    if extension is None or extension.builtin:
        raise NotFound.of("extension", extension_id, field="extension_id")
    if not extension.enabled:
        raise Conflict(f"extension {extension.id} is disabled")
    if extension.state != ExtensionState.RUNNING:
        raise Unavailable(f"extension {extension.id} is {extension.state}")
    kept = {k: v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS}
    try:
        return supervisor.target(extension).external_event(kept, body)
    except ExtensionRefused as exc:
        if exc.status >= 500:
            raise Unavailable(f"extension {extension.id} failed on the event: {exc.message}") from None
        raise ValidationFailed(
            f"body: extension {extension.id} refused the event: {exc.message}", field="body"
        ) from None
    except ExtensionUnreachable as exc:
        raise Unavailable(f"extension {extension.id} did not answer: {exc}") from None
