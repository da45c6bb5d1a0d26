"""``github``: runs on GitHub webhook events (``POST /api/external/github``), for subscriptions whose ``repository``
and ``event_filter`` match. The signature (``X-Hub-Signature-256``) is checked with the install setting
``app_webhook_secret``; the delivery id (``X-GitHub-Delivery``) deduplicates redeliveries. Variables are Gofer's:
``GOFER_EXTENSION_GITHUB_{EVENT,ACTION,REF,REPOSITORY,HEAD_COMMIT_ID}``, plus per-event ones (see docs/triggers.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from triggers.builtins.base import Builtin, Param, settings_error

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
SIGNATURE_HEADER = "X-Hub-Signature-256"
PREFIX = "GOFER_EXTENSION_GITHUB_"
# pull_request_with_check: as pull_request, and the run says a check run is wanted (created by notify-github).
EVENTS = ("push", "pull_request", "pull_request_with_check", "release")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_ACTION = re.compile(r"[a-z_]{1,64}")


@dataclass(frozen=True)
class Filter:
    event: str
    actions: frozenset[str]  # empty: any action

    def matches(self, event: str, action: str) -> bool:
        wanted = "pull_request" if self.event == "pull_request_with_check" else self.event
        return wanted == event and (not self.actions or action in self.actions)


def parse_filters(text: str) -> list[Filter]:
    """``push pull_request/opened,synchronize release/published`` as filters; raises naming ``event_filter``."""
    filters = []
    for part in text.split():
        event, _, actions = part.partition("/")
        if event not in EVENTS:
            raise settings_error("event_filter", f"{event!r:.40} is not a supported event ({', '.join(EVENTS)})")
        names = frozenset(a for a in actions.split(",") if a) if actions else frozenset()
        for name in names:
            if not _ACTION.fullmatch(name):
                raise settings_error("event_filter", f"{name!r:.40} is not an action name (such as opened)")
        filters.append(Filter(event, names))
    if not filters:
        raise settings_error("event_filter", "must name at least one event, such as push")
    return filters


def _get(payload: Any, *path: str) -> str:
    value = payload
    for key in path:
        if not isinstance(value, dict):
            return ""
        value = value.get(key)
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def event_variables(event: str, payload: dict[str, Any], filters: list[Filter]) -> dict[str, str]:
    """The run variables of one event for one subscription (Gofer's names)."""
    action = _get(payload, "action")
    out = {
        "EVENT": event,
        "ACTION": action,
        "REPOSITORY": _get(payload, "repository", "full_name"),
    }
    if event == "push":
        out.update(
            REF=_get(payload, "ref"),
            HEAD_COMMIT_ID=_get(payload, "head_commit", "id") or _get(payload, "after"),
            HEAD_COMMIT_AUTHOR_NAME=_get(payload, "head_commit", "author", "name"),
            HEAD_COMMIT_AUTHOR_EMAIL=_get(payload, "head_commit", "author", "email"),
            HEAD_COMMIT_AUTHOR_USERNAME=_get(payload, "head_commit", "author", "username"),
            HEAD_COMMIT_COMMITTER_NAME=_get(payload, "head_commit", "committer", "name"),
            HEAD_COMMIT_COMMITTER_EMAIL=_get(payload, "head_commit", "committer", "email"),
            HEAD_COMMIT_COMMITTER_USERNAME=_get(payload, "head_commit", "committer", "username"),
        )
    elif event == "pull_request":
        head_sha = _get(payload, "pull_request", "head", "sha")
        out.update(
            REF=_get(payload, "pull_request", "head", "ref"),
            HEAD_COMMIT_ID=head_sha,
            PULLREQUEST_HEAD_REF=_get(payload, "pull_request", "head", "ref"),
            PULLREQUEST_HEAD_SHA=head_sha,
            PULLREQUEST_NUMBER=_get(payload, "pull_request", "number") or _get(payload, "number"),
            PULLREQUEST_AUTHOR_USERNAME=_get(payload, "pull_request", "user", "login"),
            PULLREQUEST_AUTHOR_EMAIL=_get(payload, "pull_request", "user", "email"),
            PULLREQUEST_AUTHOR_NAME=_get(payload, "pull_request", "user", "name"),
        )
        if any(f.event == "pull_request_with_check" and f.matches(event, action) for f in filters):
            out["CHECK"] = "true"
    elif event == "release":
        out.update(
            REF=_get(payload, "release", "tag_name"),
            HEAD_COMMIT_ID=_get(payload, "release", "target_commitish"),
            RELEASE_TAG_NAME=_get(payload, "release", "tag_name"),
            RELEASE_TARGET_COMMITISH=_get(payload, "release", "target_commitish"),
            RELEASE_AUTHOR_LOGIN=_get(payload, "release", "author", "login"),
            RELEASE_CREATED_AT=_get(payload, "release", "created_at"),
            RELEASE_PUBLISHED_AT=_get(payload, "release", "published_at"),
        )
    return {PREFIX + key: value for key, value in out.items()}


class GitHub(Builtin):
    id = "github"
    body = (
        "Starts runs on GitHub webhook events sent to /api/external/github (the GitHub App's webhook URL). "
        "Subscriptions name a repository (owner/name) and an event filter: push, pull_request/opened,synchronize, "
        "release/published; several separated by spaces."
    )
    config_params = (
        Param("app_webhook_secret", True, "The GitHub App's webhook secret (verifies X-Hub-Signature-256).", True),
        Param("app_id", False, "The GitHub App's id (for check runs)."),
        Param("app_installation", False, "The App's installation id (for check runs)."),
        Param("app_key", False, "The App's private key, base64 PEM (for check runs).", True),
    )
    subscription_params = (
        Param("repository", True, "The repository, owner/name."),
        Param("event_filter", True, "Events and actions: push, pull_request/opened,synchronize, release/published."),
    )

    def validate_subscription(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        repository = settings["repository"].strip()
        if not _REPOSITORY.fullmatch(repository):
            raise settings_error("repository", f"{repository!r:.80} is not owner/name")
        filters = parse_filters(settings["event_filter"])
        if any(f.event == "pull_request_with_check" for f in filters) and not all(
            config.get(k) for k in ("app_id", "app_installation", "app_key")
        ):
            raise settings_error(
                "event_filter", "pull_request_with_check needs the extension's app_id, app_installation and app_key"
            )
        return {**settings, "repository": repository}
