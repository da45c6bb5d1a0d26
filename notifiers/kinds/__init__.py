"""The built-in notifier kinds, registered into the triggers app's built-ins by NotifiersConfig.ready()."""

from __future__ import annotations

from notifiers.kinds.base import NotifierKind
from notifiers.kinds.email import EmailNotifier
from notifiers.kinds.github import GitHubNotifier
from notifiers.kinds.slack import SlackNotifier
from notifiers.kinds.webhook import WebhookNotifier

KINDS: dict[str, NotifierKind] = {
    k.id: k for k in (WebhookNotifier(), SlackNotifier(), GitHubNotifier(), EmailNotifier())
}
