"""``webhook``: a generic signed webhook. ``POST /api/external/webhook/{namespace_id}/{pipeline_id}/{subscription_id}``
with ``X-Gofer-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the secret>`` starts one run.

The secret is the subscription setting ``secret`` (it may be a secret reference, resolved at each delivery). An
optional ``X-Gofer-Delivery`` makes a delivery idempotent. The raw body becomes the run object ``webhook-payload``;
a JSON object body's top-level scalar fields become ``GOFER_EXTENSION_WEBHOOK_<KEY>`` variables.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from triggers.builtins.base import Builtin, Param

SIGNATURE_HEADER = "X-Gofer-Signature-256"
DELIVERY_HEADER = "X-Gofer-Delivery"
PAYLOAD_OBJECT = "webhook-payload"
PREFIX = "GOFER_EXTENSION_WEBHOOK_"
# Top-level fields beyond these many, and values longer than this, do not become variables (the payload object
# still has everything).
MAX_FIELDS = 200
MAX_VALUE = 4096
_NOT_NAME = re.compile(r"[^A-Z0-9_]")


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=<hex HMAC-SHA256(secret, body)>``, compared in constant time."""
    if not header or not secret:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))


def variable_name(key: str) -> str:
    return PREFIX + _NOT_NAME.sub("_", key.upper())


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float | str):
        text = str(value)
        return text if len(text) <= MAX_VALUE else None
    return None


def payload_variables(body: bytes, delivery: str) -> dict[str, str]:
    """The run variables of a delivery: top-level scalar fields of a JSON object body, and the delivery id."""
    variables: dict[str, str] = {}
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        for key, value in list(parsed.items())[:MAX_FIELDS]:
            text = _scalar(value)
            if text is not None and isinstance(key, str) and key:
                variables.setdefault(variable_name(key), text)
    variables[PREFIX + "DELIVERY"] = delivery
    return variables


class Webhook(Builtin):
    id = "webhook"
    body = (
        "Starts one run per signed POST to /api/external/webhook/{namespace_id}/{pipeline_id}/{subscription_id}. "
        "Sign the raw body: X-Gofer-Signature-256: sha256=<hex HMAC-SHA256 with the secret>. X-Gofer-Delivery makes "
        "a delivery idempotent."
    )
    subscription_params = (
        Param("secret", True, "The HMAC key senders sign with; may be a secret reference.", sensitive=True),
    )
