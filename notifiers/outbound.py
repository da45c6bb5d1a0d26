"""Where a notifier may send (kernel/outbound.py's one policy, with the install setting ``allowed_hosts``) and the
HTTP call itself.

A URL is checked by name when it is set (a subscription's ``url``, an install's ``webhook_url`` or ``api_url``: an
address or ``localhost`` that is not listed is a 400 naming the setting), and again with DNS just before every
attempt, since a name can start resolving to a private address after it was accepted. Redirects are never
followed: a 3xx is a failed attempt, so a public host cannot bounce a delivery into the operator's network.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from kernel import outbound
from notifiers.choices import RESPONSE_EXCERPT_BYTES
from triggers.builtins.base import settings_error

USER_AGENT = "Gofer-Notifier"
# Longest Retry-After honoured: a receiver cannot park a notice for a day.
MAX_RETRY_AFTER = 3600


class DeliveryError(Exception):
    """An attempt failed. ``retryable``: network errors, 5xx and 429; everything else is permanent."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        response: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.response = response
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sent:
    """A successful attempt: the status and the start of the answer (masked before it is stored)."""

    status: int | None
    response: str = ""
    remote_id: str = ""


def policy_for(config: dict[str, str], extension_id: str) -> outbound.Policy:
    allowed = [h.strip() for h in (config.get("allowed_hosts") or "").split(",") if h.strip()]
    return outbound.policy(allowed, allow_public=True, setting=f"{extension_id}'s install setting allowed_hosts")


def check_url(url: str, policy: outbound.Policy, key: str) -> str:
    """``url`` as a destination, by name (no DNS): http(s), a host, allowed by ``policy``. Raises a 400 naming
    ``settings.<key>``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise settings_error(key, "must be an http:// or https:// URL with a host")
    try:
        policy.check_literal(parts.hostname, parts.port)
    except outbound.Refused as exc:
        raise settings_error(key, f"refused: {exc}") from None
    except ValueError:
        raise settings_error(key, "has an invalid port") from None
    return url.strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


def request(
    method: str, url: str, *, policy: outbound.Policy, headers: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    """One HTTP call to ``url`` after the DNS check of the policy. A 2xx is returned; anything else raises
    DeliveryError (network errors, 5xx and 429 retryable, with Retry-After)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError("the URL is not http(s)", retryable=False)
    try:
        policy.check(parts.hostname, parts.port)
    except outbound.Refused as exc:
        raise DeliveryError(f"destination refused: {exc}", retryable=False) from None
    try:
        response = requests.request(
            method,
            url,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=settings.GOFER_NOTIFIER_TIMEOUT_SECONDS,
            allow_redirects=False,
            **kwargs,
        )
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if 200 <= response.status_code < 300:
        return response
    retryable = response.status_code == 429 or response.status_code >= 500
    raise DeliveryError(
        f"{parts.hostname} answered {response.status_code}",
        retryable=retryable,
        status=response.status_code,
        response=excerpt(response),
        retry_after=_retry_after(response.headers.get("Retry-After")) if retryable else None,
    )


def excerpt(response: requests.Response) -> str:
    """The first bytes of the answer (masked by the caller before it is stored)."""
    return response.content[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
