"""Extensions and subscriptions: every change goes through these functions (API, admin, the ticker, commands).

Guarantees:
- An extension id is installed once: installing it again is a 409 unless ``force``, which updates its settings in
  place and keeps its subscriptions. Uninstalling removes its subscriptions, its objects and its token.
- A subscription's settings are checked against the extension's documented ``pipeline_subscription_params`` (an
  unknown key, a missing required one, a bad value: a 400 naming ``settings.<key>``), stored unresolved and
  encrypted, and resolved (with the namespace checks) each time they are used.
- ``disabled`` really stops a subscription: the ticker, the webhook endpoints and a third-party extension's token
  all read the status in the transaction that would start a run.
- A subscription whose firing cannot work (the pipeline is disabled, has no live version, a secret reference does
  not resolve, the extension does not answer) is ``error`` with a reason and fires nothing; ``heal_if_possible``
  re-checks it and returns it to ``active`` when the cause is gone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from access import services as access
from access.models import Role, SystemPreferences
from events import services as events
from events.choices import EventKind
from kernel import bells
from kernel.errors import Conflict, NotFound, ValidationFailed
from kernel.identifiers import check_identifier
from kernel.rbac import Principal
from kernel.references import parse_reference
from objectstore import services as objects
from pipelines.choices import ConfigState, PipelineState
from pipelines.models import Pipeline, PipelineConfig
from runs.interpolation import InterpolationError, resolve_settings
from triggers import logbook
from triggers.builtins import BUILTINS
from triggers.builtins.base import Builtin, Param, check_settings, params_from_documentation, redact
from triggers.choices import (
    ExtensionKind,
    ExtensionState,
    ExtensionStatus,
    SubscriptionStatus,
    SubscriptionStatusReason,
)
from triggers.models import BUILTIN_IMAGE_PREFIX, Extension, SeededBuiltin, Subscription

logger = logging.getLogger(__name__)

MAX_IMAGE = 512


# --- reading ----------------------------------------------------------------------------------------------------


def get_extension(extension_id: object) -> Extension:
    """The installed extension; NotFound naming ``extension_id`` otherwise."""
    extension = Extension.objects.filter(id=extension_id).first() if isinstance(extension_id, str) else None
    if extension is None:
        raise NotFound.of("extension", extension_id, field="extension_id")
    return extension


def extension_exists(extension_id: str) -> bool:
    return Extension.objects.filter(id=extension_id).exists()


def builtin_of(extension: Extension) -> Builtin | None:
    return BUILTINS.get(extension.builtin) if extension.builtin else None


def documentation_of(extension: Extension) -> dict[str, Any]:
    """Gofer's ``Documentation``: the built-in's own, or what a third-party extension reported on /api/info."""
    builtin = builtin_of(extension)
    if builtin is not None:
        return builtin.documentation()
    doc = extension.documentation or {}
    return {
        "body": str(doc.get("body") or ""),
        "config_params": list(doc.get("config_params") or []),
        "pipeline_subscription_params": list(doc.get("pipeline_subscription_params") or []),
    }


def config_params(extension: Extension) -> list[Param]:
    builtin = builtin_of(extension)
    if builtin is not None:
        return list(builtin.config_params)
    return params_from_documentation(extension.documentation or {}, "config_params")


def subscription_params(extension: Extension) -> list[Param]:
    builtin = builtin_of(extension)
    if builtin is not None:
        return list(builtin.subscription_params)
    return params_from_documentation(extension.documentation or {}, "pipeline_subscription_params")


def shown_config(extension: Extension) -> dict[str, str]:
    """Install settings as the API and the admin show them (sensitive ones redacted)."""
    return redact(extension.settings or {}, config_params(extension))


def shown_settings(subscription: Subscription) -> dict[str, str]:
    return redact(subscription.settings or {}, subscription_params(subscription.extension))


def subscriptions_of(pipeline: Pipeline) -> QuerySet:
    return Subscription.objects.filter(pipeline=pipeline).select_related("extension", "pipeline")


def get_subscription(pipeline: Pipeline, extension_id: object, subscription_id: object) -> Subscription:
    found = (
        subscriptions_of(pipeline).filter(extension_id=extension_id, subscription_id=subscription_id).first()
        if isinstance(extension_id, str) and isinstance(subscription_id, str)
        else None
    )
    if found is None:
        if not isinstance(extension_id, str) or not extension_exists(extension_id):
            raise NotFound.of("extension", extension_id, field="extension_id")
        raise NotFound.of("subscription", f"{extension_id}/{subscription_id}", field="subscription_id")
    return found


def extension_principal(extension: Extension) -> Principal:
    """Who a built-in's firings act as: the extension itself (no token). ``start_run`` checks no permission;
    the subscription was authorised when it was made."""
    return Principal(kind="extension", name=f"extension {extension.id}", roles=(), superuser=True)


def initiator_for(subscription: Subscription) -> dict[str, str]:
    """The run's ``initiator``: Gofer's ``{id, user}`` plus which extension and subscription started it."""
    return {
        "id": "",
        "user": f"extension {subscription.extension_id}",
        "kind": "extension",
        "extension_id": subscription.extension_id,
        "subscription_id": subscription.subscription_id,
    }


# --- installing -------------------------------------------------------------------------------------------------


def _check_string_list(value: object, field: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or len(value) > 100:
        raise ValidationFailed(f"{field}: must be a list of non-empty strings", field=field)
    return list(value)


def _check_registry_auth(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) - {"user", "pass"}
        or not all(isinstance(value.get(k), str) for k in ("user", "pass"))
    ):
        raise ValidationFailed("registry_auth: must be {user, pass}", field="registry_auth")
    return {"user": value["user"], "pass": value["pass"]}


def _check_roles(value: object) -> list[str]:
    roles = _check_string_list(value, "additional_roles") or []
    found = set(Role.objects.filter(id__in=roles).values_list("id", flat=True))
    missing = [r for r in roles if r not in found]
    if missing:
        raise ValidationFailed(f"additional_roles: unknown role {missing[0]!r:.64}", field="additional_roles")
    return roles


@dataclass
class InstallRequest:
    """What ``POST /api/extensions`` asks for, checked."""

    id: str
    image: str
    settings: dict[str, str]
    kind: str = ExtensionKind.TRIGGER
    registry_auth: dict[str, str] | None = None
    additional_roles: list[str] | None = None
    entrypoint: list[str] | None = None
    command: list[str] | None = None


def check_install(body: dict[str, Any]) -> InstallRequest:
    """The install request's fields, validated: a 400 naming the field at fault."""
    extension_id = check_identifier(body.get("id"), "id")
    image = body.get("image")
    if not isinstance(image, str) or not image.strip() or len(image) > MAX_IMAGE:
        raise ValidationFailed(f"image: must be a non-empty string of at most {MAX_IMAGE} characters", field="image")
    kind = body.get("kind", ExtensionKind.TRIGGER)
    if kind not in ExtensionKind.values:
        raise ValidationFailed(f"kind: must be one of {', '.join(ExtensionKind.values)}", field="kind")
    request = InstallRequest(
        id=extension_id,
        image=image.strip(),
        settings={},
        kind=kind,
        registry_auth=_check_registry_auth(body.get("registry_auth")),
        additional_roles=_check_roles(body.get("additional_roles")),
        entrypoint=_check_string_list(body.get("entrypoint"), "entrypoint"),
        command=_check_string_list(body.get("command"), "command"),
    )
    raw_settings = body.get("settings")
    if request.image.startswith(BUILTIN_IMAGE_PREFIX):
        name = request.image[len(BUILTIN_IMAGE_PREFIX) :]
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise ValidationFailed(
                f"image: {request.image!r:.80} is not a built-in; they are "
                + ", ".join(BUILTIN_IMAGE_PREFIX + b for b in BUILTINS),
                field="image",
            )
        if extension_id != builtin.id:
            raise ValidationFailed(f"id: the built-in {name} is installed under its own id, {name}", field="id")
        request.kind = builtin.kind
        request.settings = builtin.validate_config(check_settings(raw_settings, list(builtin.config_params)))
    else:
        # A third-party extension documents its parameters only once it runs (/api/info): any string keys now.
        request.settings = check_settings(
            raw_settings, [Param(k, False, "") for k in (raw_settings or {}) if isinstance(k, str)]
        )
    return request


@transaction.atomic
def record_install(request: InstallRequest, *, force: bool = False) -> tuple[Extension, bool]:
    """Create the registration, or with ``force`` update an existing one in place; returns ``(extension,
    created)``. A third-party extension is left ``processing``: starting it is ``triggers.supervisor``'s job."""
    existing = Extension.objects.select_for_update().filter(id=request.id).first()
    now = timezone.now()
    if existing is not None and not force:
        raise Conflict(f"extension {request.id} is already installed; ?force=true updates it in place", field="id")
    builtin = request.image.startswith(BUILTIN_IMAGE_PREFIX)
    fields = {
        "kind": request.kind,
        "image": request.image,
        "settings": request.settings,
        "registry_auth": request.registry_auth,
        "additional_roles": request.additional_roles or [],
        "entrypoint": request.entrypoint,
        "command": request.command,
        "modified": now,
    }
    if existing is None:
        extension = Extension(
            id=request.id,
            created=now,
            state=ExtensionState.RUNNING if builtin else ExtensionState.PROCESSING,
            started=now if builtin else None,
            **fields,
        )
        try:
            with transaction.atomic():
                extension.save(force_insert=True)
        except IntegrityError:
            raise Conflict(f"extension {request.id} is already installed", field="id") from None
        created = True
    else:
        for name, value in fields.items():
            setattr(existing, name, value)
        if builtin:
            existing.state, existing.started = ExtensionState.RUNNING, existing.started or now
        else:
            # A new image or new settings: the service is restarted with them.
            existing.state = ExtensionState.PROCESSING
            existing.state_description = "updated: restarting with the new settings"
        existing.save()
        extension, created = existing, False
    events.publish(
        EventKind.INSTALLED_EXTENSION, {"id": extension.id, "image": extension.image, "updated": not created}
    )
    logbook.write(extension.id, "installed" if created else "installed again (settings updated in place)")
    wake_ticker()
    if builtin:
        for subscription in Subscription.objects.filter(extension=extension):
            _reschedule(subscription, extension, timezone.now())
    return extension, created


@transaction.atomic
def uninstall_extension(extension: Extension) -> list[dict[str, Any]]:
    """Remove the registration, its subscriptions (each unregistered with an event), its objects and its token.

    Returns what the caller must stop once this commits (the service of a third-party extension); see
    ``triggers.supervisor.stop_service``."""
    extension = Extension.objects.select_for_update().get(pk=extension.pk)
    for subscription in Subscription.objects.filter(extension=extension).select_related("pipeline"):
        _publish_subscription(EventKind.PIPELINE_EXTENSION_SUBSCRIPTION_UNREGISTERED, subscription)
    service = {
        "id": extension.id,
        "scheduler": extension.scheduler,
        "container_id": extension.container_id,
        "url": extension.url,
        "secret": extension.token_secret,
    }
    if extension.token_id is not None:
        access.revoke_tokens([extension.token_id])
    objects.delete_extension_objects(extension.id)
    image = extension.image
    extension.delete()
    events.publish(EventKind.UNINSTALLED_EXTENSION, {"id": service["id"], "image": image})
    wake_ticker()
    logbook.write(service["id"], "uninstalled")
    return [service] if service["container_id"] or service["url"] else []


@transaction.atomic
def set_extension_enabled(extension: Extension, enable: object) -> bool:
    """Enable or disable an extension. Returns False when nothing changed. Disabled, none of its subscriptions
    fires (the ticker and the webhook endpoints read the status; a third-party extension's token loses its run
    permissions); enabled again, scheduled subscriptions start counting from now."""
    if not isinstance(enable, bool):
        raise ValidationFailed("enable: must be true or false", field="enable")
    extension = Extension.objects.select_for_update().get(pk=extension.pk)
    status = ExtensionStatus.ENABLED if enable else ExtensionStatus.DISABLED
    if extension.status == status:
        return False
    extension.status = status
    extension.modified = timezone.now()
    extension.save(update_fields=["status", "modified"])
    kind = EventKind.ENABLED_EXTENSION if enable else EventKind.DISABLED_EXTENSION
    events.publish(kind, {"id": extension.id, "image": extension.image})
    logbook.write(extension.id, "enabled" if enable else "disabled: none of its subscriptions fires")
    wake_ticker()
    if enable:
        now = timezone.now()
        for subscription in Subscription.objects.filter(extension=extension, status=SubscriptionStatus.ACTIVE):
            _reschedule(subscription, extension, now)
    return True


def builtin_defaults(builtin_id: str) -> dict[str, str]:
    """Install settings of a built-in from the environment: ``GOFER_BUILTIN_<ID>_<KEY>``, or the contents of the
    file ``GOFER_BUILTIN_<ID>_<KEY>_FILE`` names (Docker secrets), as every Gofer setting. A ``-`` of the id is
    ``_`` in the name (``GOFER_BUILTIN_NOTIFY_SLACK_WEBHOOK_URL``)."""
    values = {}
    for param in BUILTINS[builtin_id].config_params:
        name = f"GOFER_BUILTIN_{builtin_id.upper().replace('-', '_')}_{param.key.upper()}"
        raw = os.environ.get(name, "")
        if os.environ.get(f"{name}_FILE"):
            raw = Path(os.environ[f"{name}_FILE"]).read_text().strip()
        if raw:
            values[param.key] = raw
    return values


def ensure_builtin_extensions() -> list[str]:
    """Install, once per database, the built-ins named in ``GOFER_BUILTIN_EXTENSIONS`` with their configured
    settings. One an operator uninstalled is not installed again; one whose required settings are not configured
    (``github`` without ``GOFER_BUILTIN_GITHUB_APP_WEBHOOK_SECRET``) is skipped, and installed by a later start once
    they are. Returns the ids installed now."""
    wanted = [b for b in settings.GOFER_BUILTIN_EXTENSIONS if b in BUILTINS]
    seeded = set(SeededBuiltin.objects.filter(extension_id__in=wanted).values_list("extension_id", flat=True))
    installed = []
    for builtin_id in wanted:
        if builtin_id in seeded:
            continue
        try:
            request = check_install(
                {"id": builtin_id, "image": BUILTIN_IMAGE_PREFIX + builtin_id, "settings": builtin_defaults(builtin_id)}
            )
        except ValidationFailed as exc:
            logger.warning("built-in extension %s is not installed: %s", builtin_id, exc.message)
            continue
        with transaction.atomic():
            if not Extension.objects.filter(id=builtin_id).exists():
                record_install(request)
                installed.append(builtin_id)
            SeededBuiltin.objects.get_or_create(extension_id=builtin_id)
    return installed


# --- subscriptions ----------------------------------------------------------------------------------------------


def _status_reason(subscription: Subscription) -> dict[str, str] | None:
    if not subscription.status_reason:
        return None
    return {"reason": subscription.status_reason, "description": subscription.status_description}


def subscription_details(subscription: Subscription) -> dict[str, Any]:
    return {
        "namespace_id": subscription.namespace_id,
        "pipeline_id": subscription.pipeline.slug,
        "extension_id": subscription.extension_id,
        "subscription_id": subscription.subscription_id,
    }


# The ticker's bell (kernel/bells.py): rung whenever what the ticker looks at changes, so that it looks at once.
TICKER_BELL = "ticker.triggers"


def wake_ticker() -> None:
    """Make this host's ticker look at subscriptions and extensions once the current transaction commits. Called by
    every change below; a change made on another host is seen at the ticker's next look (GOFER_TRIGGER_TICK_SECONDS)."""
    bells.ring_on_commit(TICKER_BELL)


def _publish_subscription(kind: str, subscription: Subscription, **extra: Any) -> None:
    wake_ticker()  # every change of a subscription is published through here
    events.publish(
        kind,
        {**subscription_details(subscription), **extra},
        namespace_id=subscription.namespace_id,
        pipeline_slug=subscription.pipeline.slug,
    )


def check_references(values: dict[str, str], pipeline: Pipeline) -> None:
    """Every reference in ``values`` resolves for ``pipeline`` now (with the namespace checks); a 400 naming the
    setting otherwise."""
    try:
        resolve_settings({k: v for k, v in values.items() if parse_reference(v)}, pipeline=pipeline)
    except InterpolationError as exc:
        message = str(exc).removeprefix("variable ")
        key = message.split(":", 1)[0]
        raise ValidationFailed(f"settings.{message}", field=f"settings.{key}") from None


def validate_subscription_settings(extension: Extension, raw: object, pipeline: Pipeline) -> dict[str, str]:
    """``raw`` checked against the extension's documented parameters and its own rules."""
    builtin = builtin_of(extension)
    if builtin is None and not extension.documentation:
        raise Conflict(
            f"extension {extension.id} has not reported its parameters yet (state {extension.state}); "
            "try again once it runs",
            field="extension_id",
        )
    values = check_settings(raw, subscription_params(extension))
    if builtin is not None:
        values = builtin.validate_subscription(values, extension.settings or {})
        values = builtin.validate_for_pipeline(values, extension.settings or {}, pipeline)
    check_references(values, pipeline)
    return values


def lookup_key_of(extension: Extension, values: dict[str, str]) -> str:
    """What deliveries find the subscription by (GitHub: the repository, lower-cased; a built-in's own
    ``lookup_key``: the notifiers' rule); "" for others."""
    if extension.builtin == "github":
        return values.get("repository", "").lower()
    builtin = builtin_of(extension)
    return builtin.lookup_key(values) if builtin is not None else ""


def _reschedule(subscription: Subscription, extension: Extension, now: dt.datetime) -> None:
    """Start a scheduled subscription's counting afresh from ``now`` (created, enabled, healed)."""
    builtin = builtin_of(extension)
    nxt = None
    if builtin is not None and builtin.scheduled and subscription.status == SubscriptionStatus.ACTIVE:
        nxt = builtin.first_fire(subscription.settings, extension.settings or {}, now)
    subscription.next_fire_at = nxt
    if subscription.status == SubscriptionStatus.ACTIVE:
        subscription.due_at = nxt
    Subscription.objects.filter(pk=subscription.pk).update(next_fire_at=nxt, due_at=subscription.due_at)


@transaction.atomic
def create_subscription(
    pipeline: Pipeline, extension_id: object, subscription_id: object, raw_settings: object
) -> Subscription:
    """Subscribe ``pipeline`` to an extension. 404 for an unknown extension, 409 for a duplicate id or a disabled
    extension, 400 naming the setting at fault. A scheduled kind's first firing is computed and stored.

    A third-party extension is told after this commits (``triggers.supervisor.send_subscription``)."""
    subscription_id = check_identifier(subscription_id, "subscription_id")
    if not isinstance(extension_id, str):
        raise ValidationFailed("extension_id: must be a string", field="extension_id")
    extension = get_extension(extension_id)
    if not extension.enabled:
        raise Conflict(f"extension {extension.id} is disabled by an admin", field="extension_id")
    values = validate_subscription_settings(extension, raw_settings, pipeline)
    if Subscription.objects.filter(pipeline=pipeline, extension=extension, subscription_id=subscription_id).exists():
        raise Conflict(
            f"subscription {extension.id}/{subscription_id} already exists on pipeline {pipeline.slug}",
            field="subscription_id",
        )
    now = timezone.now()
    subscription = Subscription(
        namespace_id=pipeline.namespace_id,
        pipeline=pipeline,
        extension=extension,
        subscription_id=subscription_id,
        settings=values,
        lookup_key=lookup_key_of(extension, values),
        status=SubscriptionStatus.ACTIVE,
        created=now,
        modified=now,
    )
    try:
        with transaction.atomic():
            subscription.save(force_insert=True)
    except IntegrityError:
        raise Conflict(
            f"subscription {extension.id}/{subscription_id} already exists", field="subscription_id"
        ) from None
    _reschedule(subscription, extension, now)
    _publish_subscription(EventKind.PIPELINE_EXTENSION_SUBSCRIPTION_REGISTERED, subscription)
    when = f"; first firing {subscription.next_fire_at.isoformat()}" if subscription.next_fire_at else ""
    logbook.write(extension.id, f"subscribed{when}", subscription=subscription)
    return subscription


@transaction.atomic
def set_subscription_status(subscription: Subscription, status: object) -> bool:
    """``disabled`` stops firing at once; ``active`` starts counting again from now (a subscription in ``error``
    is re-checked first and stays in error, 409, while the cause remains). Returns False when nothing changed."""
    if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.DISABLED):
        raise ValidationFailed("status: must be active or disabled", field="status")
    subscription = _locked(subscription)
    if subscription.status == status:
        return False
    now = timezone.now()
    if status == SubscriptionStatus.DISABLED:
        subscription.status = SubscriptionStatus.DISABLED
        subscription.status_reason = subscription.status_description = ""
        subscription.next_fire_at = subscription.due_at = None
        subscription.modified = now
        subscription.save()
        logbook.write(subscription.extension_id, "disabled: fires nothing", subscription=subscription)
    else:
        problem = diagnose(subscription)
        if problem is not None:
            if subscription.status == SubscriptionStatus.ERROR:
                raise Conflict(f"subscription is in error and stays so: {problem[1]}", field="status")
            _mark_error(subscription, problem, now)
        else:
            subscription.status = SubscriptionStatus.ACTIVE
            subscription.status_reason = subscription.status_description = ""
            subscription.modified = now
            subscription.save()
            _reschedule(subscription, subscription.extension, now)
            logbook.write(subscription.extension_id, "enabled", subscription=subscription)
    _publish_subscription(EventKind.PIPELINE_EXTENSION_SUBSCRIPTION_UPDATED, subscription, status=subscription.status)
    return True


@transaction.atomic
def delete_subscription(subscription: Subscription) -> None:
    """Unsubscribe: from the commit on, nothing fires for it (its firings go with it). A third-party extension is
    told after the commit."""
    subscription = _locked(subscription)
    _publish_subscription(EventKind.PIPELINE_EXTENSION_SUBSCRIPTION_UNREGISTERED, subscription)
    logbook.write(subscription.extension_id, "unsubscribed", subscription=subscription)
    subscription.delete()


def _locked(subscription: Subscription) -> Subscription:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("extension", "pipeline")
        .get(pk=subscription.pk)
    )


# --- health -----------------------------------------------------------------------------------------------------

Problem = tuple[str, str]  # (SubscriptionStatusReason, description)


def diagnose(subscription: Subscription) -> Problem | None:
    """Why this subscription cannot fire now, or None when it can. Reads the pipeline, its live version, the
    settings' references and, for a third-party extension, its service's state. Never reports the kill switch,
    which refuses runs for everybody and is not the subscription's fault."""
    pipeline = Pipeline.objects.filter(pk=subscription.pipeline_id).first()
    if pipeline is None:
        return SubscriptionStatusReason.NOT_FOUND, "the pipeline was deleted"
    if pipeline.state != PipelineState.ACTIVE:
        return SubscriptionStatusReason.FAILED, f"pipeline {pipeline.slug} is disabled"
    if not PipelineConfig.objects.filter(pipeline=pipeline, state=ConfigState.LIVE).exists():
        return SubscriptionStatusReason.NOT_FOUND, f"pipeline {pipeline.slug} has no live config version"
    try:
        resolve_settings(subscription.settings or {}, pipeline=pipeline)
    except InterpolationError as exc:
        return SubscriptionStatusReason.NOT_FOUND, f"setting {str(exc).removeprefix('variable ')}"
    extension = subscription.extension
    if not extension.builtin and extension.state != ExtensionState.RUNNING:
        why = f": {extension.state_description}" if extension.state_description else ""
        return SubscriptionStatusReason.NOT_FOUND, f"extension {extension.id} is not answering{why}"
    builtin = builtin_of(extension)
    return builtin.check(subscription) if builtin is not None else None


def _mark_error(subscription: Subscription, problem: Problem, now: dt.datetime) -> None:
    reason, description = problem
    subscription.status = SubscriptionStatus.ERROR
    subscription.status_reason, subscription.status_description = reason, description[:2000]
    subscription.next_fire_at = None
    subscription.due_at = now + dt.timedelta(seconds=settings.GOFER_TRIGGER_HEAL_SECONDS)
    subscription.modified = now
    subscription.save()
    _publish_subscription(EventKind.SUBSCRIPTION_ERROR, subscription, reason=reason, description=description)
    logbook.write(
        subscription.extension_id,
        f"error ({reason}): {description}; fires nothing until it heals",
        subscription=subscription,
    )


def mark_error(subscription: Subscription, problem: Problem, now: dt.datetime | None = None) -> bool:
    """Put a subscription in ``error`` (in the caller's transaction). False if it already was, for this reason."""
    now = now or timezone.now()
    if (
        subscription.status == SubscriptionStatus.ERROR
        and (subscription.status_reason, subscription.status_description) == problem
    ):
        return False
    if subscription.status == SubscriptionStatus.DISABLED:
        return False
    _mark_error(subscription, problem, now)
    return True


@transaction.atomic
def heal_if_possible(subscription: Subscription, now: dt.datetime | None = None) -> bool:
    """Re-check a subscription in ``error``: back to ``active`` (event ``subscription_healed``, counting afresh
    from now) when the cause is gone; otherwise the next check is scheduled. Returns whether it healed."""
    now = now or timezone.now()
    subscription = _locked(subscription)
    if subscription.status != SubscriptionStatus.ERROR:
        return subscription.status == SubscriptionStatus.ACTIVE
    problem = diagnose(subscription)
    if problem is not None:
        if subscription.status_reason != problem[0]:
            _mark_error(subscription, problem, now)
        else:
            # The same kind of cause (its wording may differ from the firing's): no new event, a later check.
            subscription.status_description = problem[1][:2000]
            subscription.due_at = now + dt.timedelta(seconds=settings.GOFER_TRIGGER_HEAL_SECONDS)
            Subscription.objects.filter(pk=subscription.pk).update(
                due_at=subscription.due_at, status_description=subscription.status_description
            )
        return False
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.status_reason = subscription.status_description = ""
    subscription.modified = now
    subscription.save()
    _reschedule(subscription, subscription.extension, now)
    _publish_subscription(EventKind.SUBSCRIPTION_HEALED, subscription)
    logbook.write(subscription.extension_id, "healed: active again", subscription=subscription)
    return True


def runs_refused() -> bool:
    """The kill switch: while on, firings are skipped (not errors: nobody's subscription is at fault)."""
    return SystemPreferences.load().ignore_pipeline_run_events
