"""What a notifier kind is: a built-in extension of kind ``notifier`` (registered into the triggers app's
registry), whose subscriptions take a rule (notifiers/rules.py) and whose ``send`` makes one delivery attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from kernel import outbound as kernel_outbound
from notifiers import outbound, rules
from notifiers.choices import NoticeState
from notifiers.models import Notice
from triggers.builtins.base import Builtin, Param, settings_error
from triggers.choices import ExtensionKind, SubscriptionStatusReason

ALLOWED_HOSTS = Param(
    "allowed_hosts",
    False,
    "Comma-separated host names or addresses (or CIDRs) notices may go to even if they are not public "
    "(loopback, private and link-local are refused unless listed).",
    default="",
)


@dataclass
class Context:
    """Everything one attempt needs: the notice, its run, the subscription's settings resolved, the install
    settings, the outbound policy and the notice's facts (notifiers/payload.py)."""

    notice: Any
    run: Any
    subscription: Any
    settings: dict[str, str]
    config: dict[str, str]
    policy: kernel_outbound.Policy
    facts: dict[str, Any]


class NotifierKind(Builtin):
    kind = ExtensionKind.NOTIFIER
    own_subscription_params: tuple[Param, ...] = ()

    @property
    def subscription_params(self) -> tuple[Param, ...]:  # type: ignore[override]
        return rules.PARAMS + self.own_subscription_params

    def policy(self, config: dict[str, str]) -> kernel_outbound.Policy:
        return outbound.policy_for(config, self.id)

    def validate_config(self, settings: dict[str, str]) -> dict[str, str]:
        entries = [e.strip() for e in (settings.get("allowed_hosts") or "").split(",") if e.strip()]
        for entry in entries:
            if any(c.isspace() for c in entry) or "://" in entry:
                raise settings_error("allowed_hosts", f"{entry!r:.60} is not a host, host:port, address or CIDR")
        if "allowed_hosts" in settings:
            settings = {**settings, "allowed_hosts": ",".join(entries)}
        return self.validate_own_config(settings)

    def validate_own_config(self, settings: dict[str, str]) -> dict[str, str]:
        """The kind's own install settings (URLs checked against ``allowed_hosts``)."""
        return settings

    def validate_subscription(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        return self.validate_own(rules.check(settings), config)

    def validate_own(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        """The kind's own subscription settings (a URL, an address), after the rule's."""
        return settings

    def validate_for_pipeline(self, settings: dict[str, str], config: dict[str, str], pipeline: Any) -> dict[str, str]:
        rules.check_for_pipeline(settings, pipeline)
        return settings

    def lookup_key(self, settings: dict[str, str]) -> str:
        return settings.get("when", "")

    def check(self, subscription: Any) -> tuple[str, str] | None:
        """In error while the last GOFER_NOTIFIER_ERROR_AFTER finished notices all failed to be delivered; healthy
        again after a success."""
        limit = django_settings.GOFER_NOTIFIER_ERROR_AFTER
        last = list(
            Notice.objects.filter(subscription=subscription, state__in=[NoticeState.DELIVERED, NoticeState.FAILED])
            .order_by("-finished", "-id")
            .values_list("state", "last_error")[:limit]
        )
        if len(last) == limit and all(state == NoticeState.FAILED for state, _ in last):
            return SubscriptionStatusReason.FAILED, f"the last {limit} deliveries failed; the last: {last[0][1]}"[:2000]
        return None

    def starts(self, settings: dict[str, str], config: dict[str, str]) -> bool:
        """Whether the kind says something when a run starts (notify-github)."""
        return False

    def send(self, context: Context) -> outbound.Sent:
        """One attempt. Returns Sent, or raises outbound.DeliveryError."""
        raise NotImplementedError

    def secrets(self, context: Context) -> list[str]:
        """Values to mask in what is stored about an attempt: the kind's sensitive settings."""
        values = []
        for param in self.config_params:
            if param.sensitive and context.config.get(param.key):
                values.append(context.config[param.key])
        for param in self.subscription_params:
            if param.sensitive and context.settings.get(param.key):
                values.append(context.settings[param.key])
        return values
