"""What involves an extension's service: installing (and starting), subscribing, health, restarts, uninstalling.

For a built-in these are the services' database changes alone. For a third-party extension Gofer also runs its
container as a long-lived service through the scheduler interface (runs/schedulers/base.py), and speaks the
extension protocol to it (triggers/protocol.py):

- **Install** starts the service and waits (``GOFER_EXTENSION_START_TIMEOUT``) until it answers ``/api/health``,
  reads ``/api/info`` (its documentation) and checks its protocol version. An extension that does not come up, or
  speaks another major version, is refused with an error saying why, and nothing stays installed.
- **Subscriptions** are sent to it (``POST /api/subscribe``) with their settings resolved at that moment (secret
  references with the namespace checks), again whenever the service (re)starts, so a restarted extension never
  sees a raw ``pipeline_secret{{...}}`` (Gofer's bug). A refusal by the extension fails the API call.
- **Health** is checked every ``GOFER_EXTENSION_HEALTH_SECONDS`` by the ticker's process. After
  ``GOFER_EXTENSION_HEALTH_FAILURES`` failed checks (or when the engine says it exited) the extension is ``exited``,
  its subscriptions go to ``error`` (``not_found``: not answering), and it is restarted with exponential back-off
  (1 s, 2 s, 4 s... up to ``GOFER_EXTENSION_RESTART_BACKOFF_MAX``); once it answers again its subscriptions are
  resent and heal. A restart is claimed with a conditional UPDATE of ``generation``, so two supervisors never
  start two services.
- Its output is pumped into the extension's log (the logs websocket), resumable from the scheduler's cursor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access import services as access
from access.choices import TokenKind
from kernel.errors import Unavailable, ValidationFailed
from pipelines.models import Pipeline
from runs.interpolation import InterpolationError, resolve_settings
from runs.schedulers import get_scheduler
from runs.schedulers.base import (
    LABEL_EXTENSION,
    LABEL_MANAGED,
    ContainerSpec,
    RegistryAuth,
    Scheduler,
    SchedulerError,
    State,
)
from triggers import logbook, services
from triggers.choices import ExtensionState, SubscriptionStatus, SubscriptionStatusReason
from triggers.models import BUILTIN_IMAGE_PREFIX, Extension, ExtensionLogEntry, Subscription
from triggers.protocol import ExtensionRefused, ExtensionUnreachable, IncompatibleExtension, Target, check_version

logger = logging.getLogger(__name__)

HEALTH_POLL_SECONDS = 0.2
LOG_PUMP_LINES = 2000


class StartFailed(Exception):
    """The service did not come up; the message says why (for the API error and the extension's state)."""

    def __init__(self, message: str, *, incompatible: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.incompatible = incompatible


def target(extension: Extension) -> Target:
    return Target(url=extension.url, secret=extension.token_secret or "")


def _scheduler_name(extension: Extension) -> str:
    return extension.scheduler or settings.GOFER_EXTENSION_SCHEDULER or settings.GOFER_SCHEDULER


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# --- install and uninstall ------------------------------------------------------------------------------------------


def install(request: services.InstallRequest, *, force: bool = False) -> Extension:
    """Install (or, with ``force``, update in place) and, for a third-party extension, start its service and wait
    until it answers. A service that does not come up is a 503 (400 for an incompatible protocol version) and
    leaves nothing installed (an update leaves the extension ``exited`` with the reason, to be restarted)."""
    extension, created = services.record_install(request, force=force)
    if extension.builtin:
        return extension
    try:
        start_service(extension)
    except StartFailed as exc:
        if created:
            uninstall(Extension.objects.get(pk=extension.pk))
        else:
            _mark_exited(extension.pk, exc.message, restart=not exc.incompatible)
        if exc.incompatible:
            raise ValidationFailed(f"image: {exc.message}", field="image") from None
        raise Unavailable(f"extension {extension.id} did not start: {exc.message}") from None
    return Extension.objects.get(pk=extension.pk)


def uninstall(extension: Extension) -> None:
    """Uninstall (services.uninstall_extension), then stop its service: ``/api/shutdown``, then the engine's
    stop and remove. A service that does not stop is killed."""
    stopped = services.uninstall_extension(extension)
    for service in stopped:
        stop_service(service)


def stop_service(service: dict[str, Any]) -> None:
    if service.get("url") and service.get("secret"):
        with contextlib.suppress(ExtensionUnreachable, ExtensionRefused):
            Target(service["url"], service["secret"]).shutdown()
    if service.get("container_id"):
        try:
            scheduler = get_scheduler(service.get("scheduler") or None)
            scheduler.stop(service["container_id"])
            scheduler.remove(service["container_id"])
        except SchedulerError:
            logger.warning("could not remove the service of extension %s", service["id"], exc_info=True)


# --- starting -------------------------------------------------------------------------------------------------------


def _claim_start(extension_pk: str) -> Extension | None:
    """Take the right to (re)start the service: a new generation, a token if it has none, a port. None when
    another process claimed it first."""
    with transaction.atomic():
        extension = Extension.objects.select_for_update().filter(pk=extension_pk).first()
        if extension is None:
            return None
        generation = extension.generation
        now = timezone.now()
        claimed = Extension.objects.filter(pk=extension_pk, generation=generation).update(
            generation=generation + 1,
            next_restart_at=now + dt.timedelta(seconds=2 * settings.GOFER_EXTENSION_START_TIMEOUT + 10),
        )
        if not claimed:
            return None
        extension.refresh_from_db()
        if extension.token_id is None or not extension.token_secret:
            secret, token = access.create_token(
                f"extension:{extension.id}",
                [],
                kind=TokenKind.EXTENSION,
                roles=[],
                metadata={"extension_id": extension.id},
            )
            extension.token, extension.token_secret = token, secret
        port = _free_port(settings.GOFER_EXTENSION_HOST)
        extension.scheduler = _scheduler_name(extension)
        extension.url = f"http://{settings.GOFER_EXTENSION_HOST}:{port}"
        extension.container_name = f"gofer-extension-{extension.id}-{extension.generation}"
        extension.state = ExtensionState.PROCESSING
        extension.save()
        return extension


def _spec(extension: Extension, scheduler: Scheduler) -> ContainerSpec:
    port = int(extension.url.rsplit(":", 1)[1])
    # Where the service listens inside its container: the engine knows whether that is the host's network.
    bind_host = scheduler.service_bind_host(settings.GOFER_EXTENSION_HOST)
    env = {
        "GOFER_EXTENSION_SYSTEM_ID": extension.id,
        "GOFER_EXTENSION_SYSTEM_KIND": extension.kind,
        "GOFER_EXTENSION_SYSTEM_SECRET": extension.token_secret or "",
        "GOFER_EXTENSION_SYSTEM_GOFER_HOST": settings.GOFER_EXTENSION_GOFER_URL,
        "GOFER_EXTENSION_SYSTEM_BIND_ADDRESS": f"{bind_host}:{port}",
        "GOFER_EXTENSION_SYSTEM_PROTOCOL_VERSION": settings.GOFER_SEMVER,
        "GOFER_EXTENSION_SYSTEM_LOG_LEVEL": str(settings.LOGGING["root"]["level"]).lower(),
        "GOFER_EXTENSION_SYSTEM_USE_TLS": "false",
    }
    for key, value in (extension.settings or {}).items():
        env[f"GOFER_EXTENSION_CONFIG_{key.upper()}"] = value
    auth = extension.registry_auth
    return ContainerSpec(
        name=extension.container_name,
        image=extension.image,
        env=env,
        entrypoint=extension.entrypoint,
        command=extension.command,
        registry_auth=RegistryAuth(auth["user"], auth["pass"]) if auth else None,
        labels={LABEL_EXTENSION: extension.id, LABEL_MANAGED: "true"},
        ports={port: port},
    )


def start_service(extension: Extension) -> Extension:
    """(Re)start the service under a new generation and wait until it is healthy, documented and compatible; then
    send it every subscription. Raises StartFailed. Returns the extension (``running``)."""
    previous = {"scheduler": extension.scheduler, "container_id": extension.container_id}
    claimed = _claim_start(extension.pk)
    if claimed is None:
        raise StartFailed("another Gofer process is starting it")
    extension = claimed
    if previous["container_id"]:
        with contextlib.suppress(SchedulerError):
            scheduler = get_scheduler(previous["scheduler"] or None)
            scheduler.kill(previous["container_id"])
            scheduler.remove(previous["container_id"])
    if extension.scheduler == "memory":
        raise StartFailed("the memory scheduler cannot run extension services; set GOFER_EXTENSION_SCHEDULER")
    try:
        scheduler = get_scheduler(extension.scheduler)
        started = scheduler.start(_spec(extension, scheduler))
    except SchedulerError as exc:
        raise StartFailed(f"the {extension.scheduler} scheduler could not start {extension.image}: {exc}") from None
    Extension.objects.filter(pk=extension.pk).update(container_id=started.handle, log_cursor=None)
    extension.container_id = started.handle
    logbook.write(extension.id, f"service started (generation {extension.generation}) at {extension.url}")
    _await_health(extension, scheduler)
    service = target(extension)
    try:
        info = service.info()
        version = check_version(info.get("protocol_version"))
    except IncompatibleExtension as exc:
        _stop_quietly(extension)
        raise StartFailed(str(exc), incompatible=True) from None
    except (ExtensionUnreachable, ExtensionRefused) as exc:
        _stop_quietly(extension)
        raise StartFailed(f"GET /api/info failed: {exc}") from None
    documentation = info.get("documentation") if isinstance(info.get("documentation"), dict) else {}
    now = timezone.now()
    Extension.objects.filter(pk=extension.pk).update(
        state=ExtensionState.RUNNING,
        state_description="",
        started=now,
        documentation=documentation,
        protocol_version=version,
        last_healthy=now,
        health_failures=0,
        next_restart_at=None,
    )
    extension.refresh_from_db()
    logbook.write(extension.id, f"running: protocol {version}")
    resend_subscriptions(extension)
    return extension


def _await_health(extension: Extension, scheduler: Any) -> None:
    service = target(extension)
    deadline = time.monotonic() + settings.GOFER_EXTENSION_START_TIMEOUT
    while time.monotonic() < deadline:
        if service.health(timeout=1):
            return
        status = scheduler.status(extension.container_id)
        if status.state in (State.EXITED, State.MISSING):
            pump_logs(extension)
            raise StartFailed(
                f"its service exited (code {status.exit_code}) before answering /api/health{_tail(extension)}"
            )
        time.sleep(HEALTH_POLL_SECONDS)
    pump_logs(extension)
    _stop_quietly(extension)
    raise StartFailed(
        f"no answer on {extension.url}/api/health within {settings.GOFER_EXTENSION_START_TIMEOUT} s{_tail(extension)}"
    )


def _tail(extension: Extension) -> str:
    lines = list(extension_log(extension.id).exclude(source="gofer").order_by("-id").values_list("text", flat=True)[:3])
    return f"; last output: {' | '.join(reversed(lines))[:500]}" if lines else ""


def extension_log(extension_id: str) -> Any:
    return ExtensionLogEntry.objects.filter(extension_id=extension_id)


def _stop_quietly(extension: Extension) -> None:
    with contextlib.suppress(SchedulerError):
        scheduler = get_scheduler(extension.scheduler or None)
        scheduler.kill(extension.container_id)


def _mark_exited(extension_pk: str, why: str, *, restart: bool) -> None:
    """The service is down: ``exited`` with the reason; its subscriptions go to error; a restart is scheduled."""
    now = timezone.now()
    with transaction.atomic():
        extension = Extension.objects.select_for_update().filter(pk=extension_pk).first()
        if extension is None:
            return
        backoff = min(2**extension.restarts, settings.GOFER_EXTENSION_RESTART_BACKOFF_MAX)
        extension.state = ExtensionState.EXITED
        extension.state_description = why[:2000]
        extension.restarts += 1
        extension.next_restart_at = now + dt.timedelta(seconds=backoff) if restart else None
        extension.save()
        logbook.write(extension.id, f"exited: {why}" + (f"; restarting in {backoff} s" if restart else ""))
        problem = (SubscriptionStatusReason.NOT_FOUND, f"extension {extension.id} is not answering: {why}"[:2000])
        for subscription in Subscription.objects.filter(extension=extension).select_related("extension", "pipeline"):
            services.mark_error(subscription, problem, now)


# --- subscriptions ------------------------------------------------------------------------------------------------


def _resolved(subscription: Subscription) -> dict[str, str]:
    return resolve_settings(subscription.settings or {}, pipeline=subscription.pipeline).env


def send_subscription(subscription: Subscription) -> None:
    """Tell the service about one subscription, settings resolved now. Raises ExtensionRefused or
    ExtensionUnreachable; InterpolationError when a reference no longer resolves."""
    target(subscription.extension).subscribe(
        subscription.namespace_id, subscription.pipeline.slug, subscription.subscription_id, _resolved(subscription)
    )


def resend_subscriptions(extension: Extension) -> None:
    """After a (re)start: send every subscription that is not disabled; those the service takes heal, those it
    refuses go to error with its message."""
    rows = Subscription.objects.filter(extension=extension).exclude(status=SubscriptionStatus.DISABLED)
    for subscription in rows.select_related("extension", "pipeline"):
        try:
            send_subscription(subscription)
        except InterpolationError as exc:
            _error(subscription, SubscriptionStatusReason.NOT_FOUND, f"setting {str(exc).removeprefix('variable ')}")
            continue
        except ExtensionRefused as exc:
            _error(subscription, SubscriptionStatusReason.FAILED, f"the extension refused it: {exc.message}")
            continue
        except ExtensionUnreachable as exc:
            _error(
                subscription, SubscriptionStatusReason.NOT_FOUND, f"extension {extension.id} is not answering: {exc}"
            )
            continue
        if subscription.status == SubscriptionStatus.ERROR:
            services.heal_if_possible(subscription)
    logbook.write(extension.id, f"sent {rows.count()} subscription(s)")


def _error(subscription: Subscription, reason: str, description: str) -> None:
    with transaction.atomic():
        locked = Subscription.objects.select_related("extension", "pipeline").filter(pk=subscription.pk).first()
        if locked is not None:
            services.mark_error(locked, (reason, description))


def subscribe(pipeline: Pipeline, extension_id: object, subscription_id: object, raw_settings: object) -> Subscription:
    """Create the subscription and, for a third-party extension, send it: a refusal by the extension undoes it
    and is a 400 with the extension's message; an extension that does not answer leaves it in ``error``, to be
    resent when it is back."""
    subscription = services.create_subscription(pipeline, extension_id, subscription_id, raw_settings)
    if subscription.extension.builtin:
        return subscription
    try:
        send_subscription(subscription)
    except ExtensionRefused as exc:
        services.delete_subscription(subscription)
        raise ValidationFailed(
            f"settings: extension {subscription.extension_id} refused the subscription: {exc.message}", field="settings"
        ) from None
    except ExtensionUnreachable as exc:
        _error(
            subscription,
            SubscriptionStatusReason.NOT_FOUND,
            f"extension {subscription.extension_id} is not answering: {exc}",
        )
    return Subscription.objects.select_related("extension", "pipeline").get(pk=subscription.pk)


def set_subscription_status(subscription: Subscription, status: object) -> bool:
    changed = services.set_subscription_status(subscription, status)
    if changed and not subscription.extension.builtin:
        with contextlib.suppress(ExtensionUnreachable, ExtensionRefused, InterpolationError):
            if status == SubscriptionStatus.DISABLED:
                target(subscription.extension).unsubscribe(
                    subscription.namespace_id, subscription.pipeline.slug, subscription.subscription_id
                )
            else:
                send_subscription(subscription)
    return changed


def unsubscribe(subscription: Subscription) -> None:
    extension = subscription.extension
    names = (subscription.namespace_id, subscription.pipeline.slug, subscription.subscription_id)
    services.delete_subscription(subscription)
    if not extension.builtin:
        with contextlib.suppress(ExtensionUnreachable, ExtensionRefused):
            target(extension).unsubscribe(*names)


# --- health ---------------------------------------------------------------------------------------------------------


def supervise_all() -> int:
    """One round of supervision of every third-party extension (the ticker calls it every
    ``GOFER_EXTENSION_HEALTH_SECONDS`` while there are some): pump its output, check its health, restart what is
    due. Returns how many there are."""
    extensions = list(Extension.objects.exclude(image__startswith=BUILTIN_IMAGE_PREFIX))
    for extension in extensions:
        try:
            supervise(extension)
        except Exception:
            logger.exception("supervising extension %s failed", extension.id)
    return len(extensions)


def supervise(extension: Extension) -> None:
    now = timezone.now()
    if extension.container_id:
        pump_logs(extension)
    if extension.state == ExtensionState.RUNNING:
        if target(extension).health():
            if extension.health_failures:
                Extension.objects.filter(pk=extension.pk).update(health_failures=0, last_healthy=now)
            return
        failures = extension.health_failures + 1
        Extension.objects.filter(pk=extension.pk).update(health_failures=failures)
        exited = False
        with contextlib.suppress(SchedulerError):
            exited = get_scheduler(extension.scheduler or None).status(extension.container_id).state in (
                State.EXITED,
                State.MISSING,
            )
        if exited or failures >= settings.GOFER_EXTENSION_HEALTH_FAILURES:
            why = "its service exited" if exited else f"no answer on /api/health ({failures} checks)"
            _mark_exited(extension.pk, why, restart=True)
        return
    due = extension.next_restart_at
    if due is None and extension.state == ExtensionState.PROCESSING:
        due = now  # updated in place (install ?force=true) or a start that never finished
    if due is None or due > now:
        return
    try:
        start_service(extension)
    except StartFailed as exc:
        _mark_exited(extension.pk, exc.message, restart=not exc.incompatible)


def pump_logs(extension: Extension) -> None:
    """Copy the service's new output lines into the extension's log, from the stored cursor on."""
    try:
        scheduler = get_scheduler(extension.scheduler or None)
        lines = []
        cursor = extension.log_cursor
        for line in scheduler.logs(extension.container_id, cursor):
            lines.append((line.stream, line.text))
            cursor = line.cursor
            if len(lines) >= LOG_PUMP_LINES:
                break
    except SchedulerError:
        return
    if lines:
        logbook.write_many(extension.id, lines)
        Extension.objects.filter(pk=extension.pk).update(log_cursor=cursor)
        extension.log_cursor = cursor


def debug_info(extension: Extension) -> str:
    """``GET /api/extensions/{id}/debug``: a built-in's own summary, or the service's ``/api/debug`` (which must
    hold no secrets: the protocol says so)."""
    if extension.builtin:
        rows = Subscription.objects.filter(extension=extension)
        summary = {
            "extension_id": extension.id,
            "builtin": True,
            "status": extension.status,
            "subscriptions": {status: rows.filter(status=status).count() for status in SubscriptionStatus.values},
            "next_firing": (
                rows.filter(status=SubscriptionStatus.ACTIVE, next_fire_at__isnull=False)
                .order_by("next_fire_at")
                .values_list("next_fire_at", flat=True)
                .first()
            ),
        }
        return json.dumps(summary, default=str)
    if extension.state != ExtensionState.RUNNING:
        raise Unavailable(f"extension {extension.id} is {extension.state}: {extension.state_description}")
    try:
        return target(extension).debug()
    except (ExtensionUnreachable, ExtensionRefused) as exc:
        raise Unavailable(f"extension {extension.id} did not answer /api/debug: {exc}") from None


def tell_unsubscribed(gone: list[tuple[Extension, str, str, str]]) -> None:
    """``DELETE /api/subscribe`` for subscriptions that went with their pipeline (best effort)."""
    for extension, namespace_id, pipeline_id, subscription_id in gone:
        with contextlib.suppress(ExtensionUnreachable, ExtensionRefused):
            target(extension).unsubscribe(namespace_id, pipeline_id, subscription_id)
