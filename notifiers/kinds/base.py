"""What a notifier kind is: a built-in extension of kind ``notifier`` (registered into the triggers app's
registry), whose subscriptions take a rule (notifiers/rules.py) and whose ``send`` makes one delivery attempt."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from kernel import outbound as kernel_outbound
from kernel.errors import Forbidden
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

NAMESPACES = Param(
    "namespaces",
    False,
    "Comma-separated namespace ids or globs (team-*) whose pipelines may use this installation's credentials. "
    "Empty: every namespace, except in sandbox mode (GOFER_SANDBOX), where it is none.",
)


def patterns(text: str | None) -> list[str]:
    """A comma-separated allowlist setting as its entries."""
    return [entry.strip() for entry in (text or "").split(",") if entry.strip()]


def check_patterns(settings: dict[str, str], key: str, allowed: str) -> dict[str, str]:
    """An allowlist install setting normalised (entries joined by commas); a 400 naming ``settings.<key>`` for an
    entry with characters outside ``allowed`` (besides the glob's ``*``, ``?`` and ``[...]``)."""
    if key not in settings:
        return settings
    entries = patterns(settings[key])
    for entry in entries:
        if any(not (c.isalnum() or c in allowed or c in "*?[]!") for c in entry):
            raise settings_error(key, f"{entry!r:.60} is not a glob of {allowed!r} characters, letters and digits")
    return {**settings, key: ",".join(entries)}


def allowlist(config: dict[str, str], key: str) -> list[str]:
    """The patterns an operator-credential allowlist setting grants: the setting's entries; when it is empty,
    everything (``*``) in normal mode and nothing in sandbox mode, where the tenants are the public."""
    listed = patterns(config.get(key))
    if listed:
        return listed
    return [] if django_settings.GOFER_SANDBOX else ["*"]


def matches(value: str, globs: list[str]) -> bool:
    """``value`` matches one of ``globs`` (case-insensitive: namespace ids are lower-case, GitHub's owner/name and
    e-mail addresses are not case-sensitive)."""
    value = value.lower()
    return any(fnmatch.fnmatchcase(value, glob.lower()) for glob in globs)


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
    # True: the kind writes with the operator's credentials (a bot token, a GitHub token, the SMTP server), so only
    # the namespaces its install setting ``namespaces`` lists may use it. notify-webhook posts to the tenant's own
    # URL with the tenant's own secret: open to all, within the outbound policy.
    operator_credentials: bool = False

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
        settings = check_patterns(settings, "namespaces", "-_")
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
        self.check_namespace(config, pipeline.namespace_id)
        rules.check_for_pipeline(settings, pipeline)
        return settings

    def check_namespace(self, config: dict[str, str], namespace_id: str) -> None:
        """Forbidden (403 naming ``extension_id``) when the kind uses the operator's credentials and the install
        setting ``namespaces`` does not grant ``namespace_id``."""
        if self.operator_credentials and not matches(namespace_id, allowlist(config, "namespaces")):
            raise Forbidden(
                f"extension_id: {self.id} writes with the operator's credentials and namespace {namespace_id} is not "
                "in its install setting namespaces; an admin lists it with POST /api/extensions?force=true",
                field="extension_id",
            )

    def permit(self, context: Context) -> None:
        """Checked before every attempt, since the install settings (and a run's variables) may have changed since
        the subscription was accepted: raises a permanent outbound.DeliveryError when this delivery is not allowed.
        A kind adds its own targets (notify-github: the repository)."""
        try:
            self.check_namespace(context.config, context.subscription.namespace_id)
        except Forbidden as exc:
            raise outbound.DeliveryError(
                f"not sent: {exc.message.removeprefix('extension_id: ')}", retryable=False
            ) from None

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
