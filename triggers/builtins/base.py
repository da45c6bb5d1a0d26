"""What a built-in extension is: its documentation (Gofer's ``Documentation`` with ``config_params`` and
``pipeline_subscription_params``), the validation of its settings, and, for scheduled kinds, when it fires.

The generic part (``check_settings``: unknown or missing keys, string values) is the same for third-party
extensions, whose parameters come from their ``/api/info``; a built-in adds its own checks of the values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from kernel.errors import FieldError, ValidationFailed
from kernel.references import parse_reference
from triggers.choices import ExtensionKind

MAX_SETTINGS = 100
MAX_SETTING_VALUE = 64 * 1024


@dataclass(frozen=True)
class Param:
    """One documented setting. ``sensitive`` (ours) values are never shown back; ``default`` fills a missing
    optional one."""

    key: str
    required: bool
    documentation: str
    sensitive: bool = False
    default: str | None = None

    def as_api(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "required": self.required,
            "documentation": self.documentation,
            "sensitive": self.sensitive,
        }


def params_from_documentation(documentation: dict[str, Any], which: str) -> list[Param]:
    """The parameters an extension documented (``config_params`` or ``pipeline_subscription_params``)."""
    params = []
    for raw in documentation.get(which) or []:
        if isinstance(raw, dict) and isinstance(raw.get("key"), str):
            params.append(
                Param(
                    key=raw["key"],
                    required=bool(raw.get("required")),
                    documentation=str(raw.get("documentation") or ""),
                    sensitive=bool(raw.get("sensitive", False)),
                )
            )
    return params


def check_settings(values: object, params: list[Param], field: str = "settings") -> dict[str, str]:
    """``values`` checked against ``params``: an object of strings, no unknown key, every required key present
    (defaults filled in). Raises ValidationFailed naming every key at fault (``settings.every``)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValidationFailed(f"{field}: must be an object of key: string value", field=field)
    if len(values) > MAX_SETTINGS:
        raise ValidationFailed(f"{field}: at most {MAX_SETTINGS} settings", field=field)
    known = {p.key: p for p in params}
    errors: list[FieldError] = []
    for key, value in values.items():
        where = f"{field}.{key!s:.64}"
        if key not in known:
            documented = ", ".join(sorted(known)) or "none"
            errors.append(FieldError(where, f"unknown setting; this extension documents: {documented}"))
        elif not isinstance(value, str):
            errors.append(FieldError(where, "must be a string"))
        elif len(value) > MAX_SETTING_VALUE:
            errors.append(FieldError(where, f"must be at most {MAX_SETTING_VALUE} characters"))
    out = {k: v for k, v in values.items() if k in known and isinstance(v, str)}
    for param in params:
        if param.key in out and out[param.key].strip() == "" and param.required:
            errors.append(FieldError(f"{field}.{param.key}", "required; must not be empty"))
        elif param.key not in out:
            if param.required:
                errors.append(FieldError(f"{field}.{param.key}", "required setting is missing"))
            elif param.default is not None:
                out[param.key] = param.default
    if errors:
        raise ValidationFailed.from_errors(errors)
    return out


def redact(values: dict[str, str], params: list[Param]) -> dict[str, str]:
    """``values`` as the API shows them: sensitive or undocumented values as ``[redacted]``; a reference
    (``pipeline_secret{{k}}``) is shown, since it is not the secret."""
    known = {p.key: p for p in params}
    shown = {}
    for key, value in values.items():
        param = known.get(key)
        documented_plain = param is not None and not param.sensitive
        is_reference = isinstance(value, str) and parse_reference(value) is not None
        shown[key] = value if documented_plain or is_reference else "[redacted]"
    return shown


class Builtin:
    """A built-in extension: runs inside Gofer's own processes (no container, no token)."""

    id: str = ""
    kind: str = ExtensionKind.TRIGGER
    body: str = ""
    config_params: tuple[Param, ...] = ()
    subscription_params: tuple[Param, ...] = ()
    # True: the ticker fires it (next_fire); False: it fires on deliveries (webhooks).
    scheduled: bool = False
    # Settings whose references must resolve for the subscription to be healthy.
    verifies_references: bool = True

    def documentation(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "config_params": [p.as_api() for p in self.config_params],
            "pipeline_subscription_params": [p.as_api() for p in self.subscription_params],
        }

    def validate_config(self, settings: dict[str, str]) -> dict[str, str]:
        """Install settings after the generic checks; raise ValidationFailed naming ``settings.<key>``."""
        return settings

    def validate_subscription(self, settings: dict[str, str], config: dict[str, str]) -> dict[str, str]:
        """Subscription settings after the generic checks, knowing the install settings."""
        return settings

    def validate_for_pipeline(self, settings: dict[str, str], config: dict[str, str], pipeline: Any) -> dict[str, str]:
        """Subscription settings checked against the pipeline (a notifier's ``task`` must be one of its tasks)."""
        return settings

    def lookup_key(self, settings: dict[str, str]) -> str:
        """What finds the subscription without decrypting its settings (``Subscription.lookup_key``); never
        sensitive. The notifiers store their rule (``when``) here."""
        return ""

    def first_fire(self, settings: dict[str, str], config: dict[str, str], now: dt.datetime) -> dt.datetime | None:
        """When a new (or re-enabled, or healed) subscription fires first. None: not scheduled."""
        return None

    def next_fire(
        self, settings: dict[str, str], config: dict[str, str], scheduled: dt.datetime, now: dt.datetime
    ) -> dt.datetime | None:
        """The next firing after the one scheduled at ``scheduled`` (fired at ``now``): strictly after ``now``,
        so that firings missed while nobody ticked are not replayed one by one."""
        return None

    def missed(self, settings: dict[str, str], config: dict[str, str], now: dt.datetime) -> dt.datetime | None:
        """Where to move a firing that fell due while no worker ran (None: fire it now). The interval spreads them
        over its jitter, so that workers coming back do not start every pipeline at once."""
        return None

    def check(self, subscription: Any) -> tuple[str, str] | None:
        """A kind's own health check, after the generic ones (services.diagnose): ``(reason, description)`` while
        the subscription cannot work, None when it can. A notifier keeps its subscription in error until a delivery
        succeeds; the triggers have nothing to add."""
        return None

    def run_variables(self, settings: dict[str, str], scheduled: dt.datetime) -> dict[str, str]:
        """Variables of a scheduled firing's run (source ``extension``)."""
        return {}


def settings_error(key: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"settings.{key}: {message}", field=f"settings.{key}")
