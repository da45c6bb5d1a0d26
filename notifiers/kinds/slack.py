"""``notify-slack``: Slack's ``text`` (the fallback) and ``blocks`` message, through the incoming webhook the
install setting ``webhook_url`` names, or with a bot ``token`` through ``chat.postMessage`` to ``channel``.
A 429's ``Retry-After`` is honoured (Slack allows about one message a second per webhook).

The webhook or token is the operator's: the install setting ``namespaces`` lists who may subscribe, and with a bot
token ``channels`` the channels it may post to (the bot can post wherever it was invited). Both default to everything
in normal mode and to nothing in sandbox mode."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kernel.errors import ValidationFailed
from notifiers import outbound
from notifiers.kinds.base import (
    ALLOWED_HOSTS,
    NAMESPACES,
    Context,
    NotifierKind,
    allowlist,
    check_patterns,
    matches,
)
from notifiers.payload import duration_text, headline
from triggers.builtins.base import Param, settings_error

EMOJI = {"successful": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}


def message(facts: dict[str, Any], channel: str = "") -> dict[str, Any]:
    """Slack's message for a notice: ``text`` for notifications and old clients, ``blocks`` for the rest."""
    status = facts["status"] if facts["state"] == "complete" else facts["state"]
    title = f"{facts['namespace_id']}/{facts['pipeline_id']} run {facts['run_id']}"
    kind = "Recovered: " if facts["notice"] == "recovered" else ""
    fields = [
        {"type": "mrkdwn", "text": f"*Status*\n{status}"},
        {"type": "mrkdwn", "text": f"*Duration*\n{duration_text(facts)}"},
        {"type": "mrkdwn", "text": f"*Rule*\n{facts['rule']}"},
        {"type": "mrkdwn", "text": "*Failing tasks*\n" + (", ".join(facts["failed_tasks"]) or "none")},
    ]
    body: dict[str, Any] = {
        "text": headline(facts) + f" {facts['url']}",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"{EMOJI.get(status, ':hourglass:')} {kind}*<{facts['url']}|{title}>* {status}",
                },
            },
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": facts["description"] or facts["rule"]}]},
        ],
    }
    if channel:
        body["channel"] = channel
    return body


class SlackNotifier(NotifierKind):
    id = "notify-slack"
    body = (
        "Posts a Slack message (text and blocks: status, duration, failing tasks, a link to the run) through the "
        "incoming webhook `webhook_url`, or with a bot `token` to the subscription's `channel`."
    )
    config_params = (
        Param("webhook_url", False, "An incoming-webhook URL (https://hooks.slack.com/services/...).", sensitive=True),
        Param("token", False, "A bot token (xoxb-...) for chat.postMessage, instead of a webhook.", sensitive=True),
        Param("api_url", False, "Slack's Web API (for the token).", default="https://slack.com/api"),
        ALLOWED_HOSTS,
        NAMESPACES,
        Param(
            "channels",
            False,
            "With a bot token: comma-separated channel names or ids (or globs: #builds-*) subscriptions may post to. "
            "Empty: any channel, except in sandbox mode, where it is none.",
        ),
    )
    operator_credentials = True
    own_subscription_params = (
        Param("channel", False, "The channel (required with a bot token; with a webhook, the webhook's own)."),
    )

    def validate_own_config(self, settings: dict[str, str]) -> dict[str, str]:
        settings = check_patterns(settings, "channels", "#-_.")
        policy = self.policy(settings)
        for key in ("webhook_url", "api_url"):
            if settings.get(key):
                settings[key] = outbound.check_url(settings[key], policy, key)
        return settings

    def validate_own(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        if not config.get("webhook_url") and not config.get("token"):
            raise ValidationFailed(
                f"extension_id: {self.id} has neither webhook_url nor token installed; an admin sets one with "
                "POST /api/extensions?force=true",
                field="extension_id",
            )
        if config.get("token") and not config.get("webhook_url") and not settings.get("channel", "").strip():
            raise settings_error("channel", "is required: this installation posts with a bot token")
        return settings

    def validate_for_pipeline(self, settings: dict[str, str], config: dict[str, str], pipeline: Any) -> dict[str, str]:
        settings = super().validate_for_pipeline(settings, config, pipeline)
        channel = settings.get("channel", "").strip()
        if not self.channel_allowed(config, channel):
            raise settings_error("channel", self.refusal(channel))
        return settings

    @staticmethod
    def channel_allowed(config: dict[str, str], channel: str) -> bool:
        """Whether the bot token may post to ``channel`` (install setting ``channels``). Through the incoming
        webhook the channel is the webhook's own: nothing to check."""
        if config.get("webhook_url") or not config.get("token"):
            return True
        return matches(channel, allowlist(config, "channels"))

    def refusal(self, channel: str) -> str:
        return (
            f"{channel!r:.100} is not in {self.id}'s install setting channels; an admin lists it with "
            "POST /api/extensions?force=true"
        )

    def permit(self, context: Context) -> None:
        super().permit(context)
        channel = context.settings.get("channel", "").strip()
        if not self.channel_allowed(context.config, channel):
            raise outbound.DeliveryError(f"not sent: {self.refusal(channel)}", retryable=False)

    def secrets(self, context: Context) -> list[str]:
        values = super().secrets(context)
        url = context.config.get("webhook_url") or ""
        if url:
            # The webhook's path is its credential: masked on its own too, wherever it shows up.
            values.append(urlsplit(url).path.removeprefix("/services/").strip("/"))
        return [v for v in values if v]

    def send(self, context: Context) -> outbound.Sent:
        config = context.config
        body = message(context.facts, context.settings.get("channel", "").strip())
        if config.get("webhook_url"):
            response = outbound.request("POST", config["webhook_url"], policy=context.policy, json=body)
            return outbound.Sent(response.status_code, outbound.excerpt(response))
        url = config.get("api_url", "https://slack.com/api").rstrip("/") + "/chat.postMessage"
        headers = {"Authorization": f"Bearer {config['token']}"}
        response = outbound.request("POST", url, policy=context.policy, headers=headers, json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not answer.get("ok"):
            error = str(answer.get("error") or "no ok in the answer")
            raise outbound.DeliveryError(
                f"Slack refused the message: {error}",
                retryable=error == "ratelimited",
                status=response.status_code,
                response=outbound.excerpt(response),
            )
        return outbound.Sent(response.status_code, outbound.excerpt(response))
