"""``notify-github``: the run's outcome on the commit it was started for.

With a ``token``: a commit status (``POST {api_url}/repos/{owner}/{repo}/statuses/{sha}``: pending when the run
starts, then success, failure or error). With a GitHub App (``app_id``, ``app_installation``, ``app_key``): a check
run, created ``in_progress`` when the run starts (``POST .../check-runs``) and completed with its conclusion
(``PATCH .../check-runs/{id}``); the App authenticates with a JWT signed RS256 with ``app_key`` and trades it for
an installation token (``POST /app/installations/{id}/access_tokens``), kept in memory until shortly before it
expires and never stored. The repository is the subscription's ``repository`` or the run's
``GOFER_EXTENSION_GITHUB_REPOSITORY``; the commit the run's ``GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID`` or the variable
``commit_variable`` names (both set by the github trigger).

The credentials are the operator's, so the install settings bound who uses them and where: ``namespaces`` (globs of
the namespaces that may subscribe) and ``repositories`` (owner/name globs the statuses may go to; ``{namespace}``
stands for the subscribing namespace's id, so ``acme/{namespace}-*`` gives each team its own repositories). Both
default to everything in normal mode and to nothing in sandbox mode. The repository is checked when subscribing (the
``repository`` setting) and again before every attempt, since a run variable can name another one.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import re
import threading
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.utils import timezone

from kernel.errors import ValidationFailed
from notifiers import outbound
from notifiers.choices import NoticeKind, Rule
from notifiers.kinds.base import (
    ALLOWED_HOSTS,
    NAMESPACES,
    Context,
    NotifierKind,
    allowlist,
    check_patterns,
    matches,
)
from notifiers.models import Notice
from notifiers.payload import headline
from triggers.builtins.base import Param, settings_error

REPOSITORY_VARIABLE = "GOFER_EXTENSION_GITHUB_REPOSITORY"
COMMIT_VARIABLE = "GOFER_EXTENSION_GITHUB_HEAD_COMMIT_ID"
# owner/name as GitHub spells them; neither part may be "." or ".." (they would climb out of /repos/ in the URL and
# send the operator's credential to another API route).
_REPOSITORY = re.compile(r"(?!\.{1,2}/)[A-Za-z0-9_.-]{1,100}/(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
ACCEPT = "application/vnd.github+json"
STATUS_STATES = {"successful": "success", "failed": "failure", "cancelled": "error"}
CONCLUSIONS = {"successful": "success", "failed": "failure", "cancelled": "cancelled"}

_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_key(text: str) -> rsa.RSAPrivateKey:
    """The App's private key from PEM text or base64 of it; ValueError otherwise."""
    raw = text.strip().encode()
    if not raw.startswith(b"-----BEGIN"):
        try:
            raw = base64.b64decode(raw, validate=False)
        except ValueError:
            raise ValueError("is neither a PEM private key nor base64 of one") from None
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise ValueError("is not a readable PEM private key (unencrypted RSA)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("must be an RSA key (GitHub Apps sign RS256)")
    return key


def app_jwt(app_id: str, key_text: str, now: float | None = None) -> str:
    """The App's JWT: RS256, issued a minute in the past (clock drift), valid nine minutes, as GitHub asks."""
    now = time.time() if now is None else now
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iat": int(now) - 60, "exp": int(now) + 540, "iss": app_id}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
    signature = load_key(key_text).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{_b64(signature)}"


def installation_token(context: Context) -> str:
    config = context.config
    api = config["api_url"].rstrip("/")
    cache_key = (api, config["app_id"], config["app_installation"])
    with _tokens_lock:
        cached = _tokens.get(cache_key)
        if cached is not None and cached[1] > time.time() + 60:
            return cached[0]
    response = outbound.request(
        "POST",
        f"{api}/app/installations/{config['app_installation']}/access_tokens",
        policy=context.policy,
        headers={"Authorization": f"Bearer {app_jwt(config['app_id'], config['app_key'])}", "Accept": ACCEPT},
    )
    try:
        answer = response.json()
        token = str(answer["token"])
    except (ValueError, KeyError, TypeError):
        raise outbound.DeliveryError("GitHub's access_tokens answer has no token", retryable=False) from None
    expires = time.time() + 3000
    with contextlib.suppress(ValueError):
        expires = dt.datetime.fromisoformat(str(answer.get("expires_at")).replace("Z", "+00:00")).timestamp()
    with _tokens_lock:
        _tokens[cache_key] = (token, expires)
    return token


def _variable(run: Any, key: str) -> str:
    for variable in run.variables or []:
        if variable.get("key") == key:
            return str(variable.get("value") or "")
    return ""


class GitHubNotifier(NotifierKind):
    id = "notify-github"
    body = (
        "Sets a commit status (token) or a check run (GitHub App: in_progress at the start, completed with the "
        "conclusion) on the commit the run was started for. With when=run_finished every run reports pending first."
    )
    config_params = (
        Param("token", False, "A token allowed to write commit statuses.", sensitive=True),
        Param("app_id", False, "The GitHub App's id (check runs)."),
        Param("app_installation", False, "The App's installation id."),
        Param("app_key", False, "The App's private key: PEM, or base64 of it.", sensitive=True),
        Param(
            "api_url", False, "GitHub's API (GitHub Enterprise: https://host/api/v3).", default="https://api.github.com"
        ),
        ALLOWED_HOSTS,
        NAMESPACES,
        Param(
            "repositories",
            False,
            "Comma-separated owner/name globs statuses may be set on ({namespace}: the subscribing namespace's id, "
            "as in acme/{namespace}-*). Empty: any repository, except in sandbox mode, where it is none.",
        ),
    )
    operator_credentials = True
    own_subscription_params = (
        Param("repository", False, f"owner/name; default: the run's {REPOSITORY_VARIABLE}."),
        Param("commit_variable", False, f"The run variable holding the commit; default {COMMIT_VARIABLE}."),
        Param("context", False, "The status context or check run name; default gofer/<pipeline id>."),
    )

    def validate_own_config(self, settings: dict[str, str]) -> dict[str, str]:
        settings = check_patterns(settings, "repositories", "-_./{}")
        settings["api_url"] = outbound.check_url(
            settings.get("api_url") or "https://api.github.com", self.policy(settings), "api_url"
        )
        app = [k for k in ("app_id", "app_installation", "app_key") if settings.get(k)]
        if app and len(app) != 3:
            missing = next(k for k in ("app_id", "app_installation", "app_key") if not settings.get(k))
            raise settings_error(missing, "app_id, app_installation and app_key go together")
        if settings.get("app_key"):
            try:
                load_key(settings["app_key"])
            except ValueError as exc:
                raise settings_error("app_key", str(exc)) from None
        return settings

    @staticmethod
    def uses_app(config: dict[str, str]) -> bool:
        return all(config.get(k) for k in ("app_id", "app_installation", "app_key"))

    def validate_own(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        if not config.get("token") and not self.uses_app(config):
            raise ValidationFailed(
                f"extension_id: {self.id} has neither a token nor a GitHub App installed; an admin sets one with "
                "POST /api/extensions?force=true",
                field="extension_id",
            )
        if settings.get("repository") and not _REPOSITORY.fullmatch(settings["repository"].strip()):
            raise settings_error("repository", f"{settings['repository']!r:.80} is not owner/name")
        if settings.get("commit_variable") and not _VARIABLE.fullmatch(settings["commit_variable"].strip()):
            raise settings_error("commit_variable", "must be a variable name")
        return settings

    def validate_for_pipeline(self, settings: dict[str, str], config: dict[str, str], pipeline: Any) -> dict[str, str]:
        settings = super().validate_for_pipeline(settings, config, pipeline)
        repository = (settings.get("repository") or "").strip()
        if repository and not self.repository_allowed(config, repository, pipeline.namespace_id):
            raise settings_error("repository", self.refusal(repository, pipeline.namespace_id))
        return settings

    @staticmethod
    def repository_allowed(config: dict[str, str], repository: str, namespace_id: str) -> bool:
        """Whether the install setting ``repositories`` lets ``namespace_id`` set statuses on ``repository``."""
        globs = [glob.replace("{namespace}", namespace_id) for glob in allowlist(config, "repositories")]
        return matches(repository, globs)

    def refusal(self, repository: str, namespace_id: str) -> str:
        return (
            f"{repository!r:.210} is not in {self.id}'s install setting repositories for namespace {namespace_id}; "
            "an admin lists it with POST /api/extensions?force=true"
        )

    def permit(self, context: Context) -> None:
        super().permit(context)
        repository = self._repository(context)
        namespace_id = context.subscription.namespace_id
        if _REPOSITORY.fullmatch(repository) and not self.repository_allowed(context.config, repository, namespace_id):
            raise outbound.DeliveryError(f"not sent: {self.refusal(repository, namespace_id)}", retryable=False)

    def starts(self, settings: dict[str, str], config: dict[str, str]) -> bool:
        return settings.get("when") == Rule.RUN_FINISHED

    @staticmethod
    def _repository(context: Context) -> str:
        """The subscription's ``repository``, else the run's GOFER_EXTENSION_GITHUB_REPOSITORY (which whoever
        starts the run may set: hence ``permit`` checks it before every attempt)."""
        return (context.settings.get("repository") or "").strip() or _variable(context.run, REPOSITORY_VARIABLE)

    def _target(self, context: Context) -> tuple[str, str]:
        run, settings = context.run, context.settings
        repository = self._repository(context)
        variable = (settings.get("commit_variable") or "").strip() or COMMIT_VARIABLE
        sha = _variable(run, variable)
        if not _REPOSITORY.fullmatch(repository):
            raise outbound.DeliveryError(
                f"no repository: set the subscription's repository or start the run with {REPOSITORY_VARIABLE}",
                retryable=False,
            )
        if not re.fullmatch(r"[0-9a-fA-F]{7,64}", sha):
            raise outbound.DeliveryError(f"run {run.number} has no commit in its variable {variable}", retryable=False)
        return repository, sha

    def send(self, context: Context) -> outbound.Sent:
        repository, sha = self._target(context)
        api = context.config["api_url"].rstrip("/")
        facts, run = context.facts, context.run
        name = (context.settings.get("context") or "").strip() or f"gofer/{run.pipeline.slug}"
        complete = run.state == "complete" and context.notice.kind != NoticeKind.STARTED
        if not self.uses_app(context.config):
            state = STATUS_STATES.get(run.status, "error") if complete else "pending"
            body = {"state": state, "target_url": facts["url"], "description": headline(facts)[:140], "context": name}
            headers = {"Authorization": f"Bearer {context.config['token']}", "Accept": ACCEPT}
            response = outbound.request(
                "POST", f"{api}/repos/{repository}/statuses/{sha}", policy=context.policy, headers=headers, json=body
            )
            return outbound.Sent(response.status_code, outbound.excerpt(response))
        headers = {"Authorization": f"Bearer {installation_token(context)}", "Accept": ACCEPT}
        output = {"title": headline(facts)[:200], "summary": facts["description"] or facts["rule"]}
        if not complete:
            body = {
                "name": name,
                "head_sha": sha,
                "status": "in_progress",
                "started_at": facts["started"] or timezone.now().isoformat(),
                "details_url": facts["url"],
                "external_id": f"{run.namespace_id}/{run.pipeline.slug}/{run.number}",
                "output": output,
            }
            response = outbound.request(
                "POST", f"{api}/repos/{repository}/check-runs", policy=context.policy, headers=headers, json=body
            )
            return outbound.Sent(response.status_code, outbound.excerpt(response), _check_run_id(response))
        conclusion = CONCLUSIONS.get(run.status, "neutral")
        if run.status == "failed" and run.status_reason == "timeout":
            conclusion = "timed_out"
        body = {
            "name": name,
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": facts["ended"] or timezone.now().isoformat(),
            "details_url": facts["url"],
            "output": output,
        }
        started = (
            Notice.objects.filter(subscription=context.subscription, run=run, kind=NoticeKind.STARTED)
            .exclude(remote_id="")
            .first()
        )
        if started is not None:
            url = f"{api}/repos/{repository}/check-runs/{started.remote_id}"
            response = outbound.request("PATCH", url, policy=context.policy, headers=headers, json=body)
            return outbound.Sent(response.status_code, outbound.excerpt(response), started.remote_id)
        # The start was never delivered (or came too late): one completed check run says it all.
        body.update(head_sha=sha, started_at=facts["started"] or body["completed_at"])
        response = outbound.request(
            "POST", f"{api}/repos/{repository}/check-runs", policy=context.policy, headers=headers, json=body
        )
        return outbound.Sent(response.status_code, outbound.excerpt(response), _check_run_id(response))


def _check_run_id(response: Any) -> str:
    try:
        return str(int(response.json()["id"]))
    except (ValueError, KeyError, TypeError):
        raise outbound.DeliveryError("GitHub's check-runs answer has no id", retryable=False) from None
