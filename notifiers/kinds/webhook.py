"""``notify-webhook``: a JSON POST of the notice's facts to the subscription's ``url``, signed with ``secret`` as
``X-Gofer-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` (the same scheme as the webhook trigger)."""

from __future__ import annotations

import hashlib
import hmac
import json

from kernel.references import parse_reference
from notifiers import outbound
from notifiers.kinds.base import ALLOWED_HOSTS, Context, NotifierKind
from triggers.builtins.base import Param

SIGNATURE_HEADER = "X-Gofer-Signature-256"
NOTICE_HEADER = "X-Gofer-Notice"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(NotifierKind):
    id = "notify-webhook"
    body = (
        "POSTs a JSON notice (namespace, pipeline, run, state, status, times, failing tasks, the rule, triggered or "
        "recovered, a link) to `url`, signed with `secret` as X-Gofer-Signature-256: sha256=<hex HMAC-SHA256>."
    )
    config_params = (ALLOWED_HOSTS,)
    own_subscription_params = (
        Param("url", True, "Where to POST the notice (http or https); may be a secret reference."),
        Param("secret", False, "The HMAC key that signs the body; may be a secret reference.", sensitive=True),
    )

    def validate_own(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        if parse_reference(settings["url"]) is None:
            settings["url"] = outbound.check_url(settings["url"], self.policy(config), "url")
        return settings

    def send(self, context: Context) -> outbound.Sent:
        body = json.dumps(context.facts, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", NOTICE_HEADER: str(context.notice.pk)}
        if context.settings.get("secret"):
            headers[SIGNATURE_HEADER] = signature(context.settings["secret"], body)
        # The policy is applied again here, by name and with DNS (a URL from a secret reference is checked only now).
        response = outbound.request("POST", context.settings["url"], policy=context.policy, headers=headers, data=body)
        return outbound.Sent(response.status_code, outbound.excerpt(response))
