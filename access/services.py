"""Tokens, roles and system preferences: every change goes through these functions (API, admin, commands)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
import string
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from access.choices import TokenKind
from access.models import Role, StaffAccess, SystemPreferences, Token
from access.system_roles import SYSTEM_ROLE_PERMISSIONS
from events import services as events
from events.choices import EventKind
from kernel.api import streams
from kernel.choices import SystemRole
from kernel.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from kernel.identifiers import check_identifier
from kernel.rbac import (
    Binding,
    CompiledRole,
    InvalidPermission,
    Principal,
    anchoring_warnings,
    compile_role,
    parse_resource,
    principal_for_roles,
    validate_permissions,
)
from pipelines.validation import RUN_TOKEN_GRANT_RESOURCES, run_token_grant_strings

logger = logging.getLogger(__name__)

TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 40
# A token's expiry, when given, is at most ten years out: beyond that "0 = never" is the honest request.
MAX_TOKEN_LIFETIME = 10 * 365 * 24 * 3600
MAX_METADATA_ENTRIES = 50
# The field that authentication errors name: the request header that carried the token.
AUTH_HEADER = "Authorization"


def ensure_system_roles() -> None:
    """Create the system roles and the system preferences row if missing (the data migration does it first)."""
    for role_id, (description, permissions) in SYSTEM_ROLE_PERMISSIONS.items():
        Role.objects.update_or_create(
            id=str(role_id), defaults={"description": description, "permissions": permissions, "system_role": True}
        )
    SystemPreferences.load()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def authenticate(secret: str) -> Token:
    """The enabled, unexpired token whose secret this is; raises Unauthenticated saying which check failed."""
    token = Token.objects.filter(hash=hash_secret(secret)).first()
    if token is None:
        raise Unauthenticated("token not recognised", field=AUTH_HEADER)
    if token.disabled:
        raise Unauthenticated("token is disabled", field=AUTH_HEADER)
    if token.is_expired:
        raise Unauthenticated("token expired", field=AUTH_HEADER)
    return token


def _own(namespace_id: str, pipeline_slug: str) -> list[str]:
    return [f"namespaces:^{re.escape(namespace_id)}$", f"pipelines:^{re.escape(pipeline_slug)}$"]


def run_token_roles(
    namespace_id: str, pipeline_slug: str, run_number: int, grants: Iterable[str] = ()
) -> tuple[CompiledRole, ...]:
    """What a run token may do (issue 8, least privilege), as bound roles (kernel/rbac.py ``Binding``):

    - on routes that name its own run: read, write and delete that run's objects, read the run (and its timeline);
    - on routes of its pipeline that name no run: read the pipeline's objects (and the pipeline itself);
    - what the config version the run executes grants in ``run_token_grants`` (``"runs:write"``...), on its own
      pipeline and any of its runs, never on the pipeline itself (disable, delete).

    Nothing else: not configs, deployments, events, secrets, task executions, other pipelines; never attach.
    """
    own = _own(namespace_id, pipeline_slug)
    label = f"run-token:{namespace_id}/{pipeline_slug}/{run_number}"
    run_role = compile_role(
        f"{label}:run",
        [
            {"resources": [*own, "objects"], "actions": ["read", "write", "delete"]},
            {"resources": [*own, "runs"], "actions": ["read"]},
        ],
    )
    pipeline_role = compile_role(f"{label}:pipeline", [{"resources": [*own, "objects"], "actions": ["read"]}])
    roles = [
        replace(run_role, binding=Binding(run=run_number)),
        replace(pipeline_role, binding=Binding(outside_runs=True)),
    ]
    by_resource: dict[str, list[str]] = {}
    for grant in grants:
        resource, _, action = grant.partition(":")
        # Checked again here, whatever was stored: a grant outside the allowed set grants nothing.
        if resource in RUN_TOKEN_GRANT_RESOURCES and action in ("read", "write", "delete"):
            by_resource.setdefault(resource, []).append(action)
    if by_resource:
        granted = compile_role(
            f"{label}:granted",
            [{"resources": [*own, resource], "actions": actions} for resource, actions in sorted(by_resource.items())],
        )
        roles.append(replace(granted, binding=Binding(subresources_only=True)))
    return tuple(roles)


# Token kinds whose principal an app above this one computes (triggers: an extension's token, scoped to the
# pipelines subscribed to it). Registered in that app's ready(); a kind without a factory grants nothing.
PrincipalFactory = Callable[[Token], Principal]
_principal_factories: dict[str, PrincipalFactory] = {}


def register_principal_factory(kind: str, factory: PrincipalFactory) -> None:
    """Make ``factory`` compute the principal of tokens of ``kind`` (called once, at start-up)."""
    _principal_factories[kind] = factory


def principal_for_token(token: Token) -> Principal:
    if token.kind in _principal_factories:
        return _principal_factories[token.kind](token)
    if token.kind == TokenKind.EXTENSION:
        return Principal(kind="extension", name=token.user, roles=(), token_id=str(token.id))
    if token.kind == TokenKind.RUN:
        meta = token.metadata or {}
        try:
            run_number = int(meta.get("run_id", ""))
        except ValueError:
            return Principal(kind="run", name=token.user, roles=(), token_id=str(token.id))
        roles = run_token_roles(
            meta.get("namespace_id", ""), meta.get("pipeline_id", ""), run_number, meta.get("grants", "").split()
        )
        return Principal(kind="run", name=token.user, roles=roles, token_id=str(token.id))
    return principal_for_roles("token", token.user, token.roles.all(), token_id=str(token.id))


def mint_run_token(run: Any) -> tuple[str, Token]:
    """A token for one run's tasks (``inject_api_token``), scoped to the run (``run_token_roles``), with the extra
    grants of the config version the run executes (``run_token_grants``), fixed for the run's life.

    Returns ``(secret, token)``; the caller stores the secret encrypted on the run. It is revoked when the run
    completes (runs/engine/outcomes.py::finish_run calls revoke_run_token), and expires after the global run timeout
    (GOFER_GLOBAL_RUN_TIMEOUT) at the latest, since no run may last longer.
    """
    metadata = {"namespace_id": run.namespace_id, "pipeline_id": run.pipeline.slug, "run_id": str(run.number)}
    config = getattr(run, "config", None)
    grants = run_token_grant_strings(getattr(config, "run_token_grants", None) or [])
    if grants:
        metadata["grants"] = " ".join(grants)
    return create_token(
        f"run:{run.namespace_id}/{run.pipeline.slug}/{run.number}",
        [],
        min(settings.GOFER_GLOBAL_RUN_TIMEOUT, MAX_TOKEN_LIFETIME),
        metadata,
        kind=TokenKind.RUN,
        roles=[],
    )


@transaction.atomic
def revoke_run_token(run: Any) -> None:
    """Delete a run's token and forget its secret. Nothing happens if it has none."""
    if run.token_id is not None:
        Token.objects.filter(pk=run.token_id).delete()
        streams.access_changed([run.token_id])
    if run.token_id is not None or run.token_secret:
        type(run).objects.filter(pk=run.pk).update(token=None, token_secret=None)
        run.token_id, run.token_secret = None, None


@transaction.atomic
def revoke_tokens(token_ids: Iterable[Any]) -> int:
    """Delete these tokens at once (a run's token when its run is deleted); returns how many existed. They stop
    working with the transaction's commit."""
    token_ids = list(token_ids)
    _, per_model = Token.objects.filter(pk__in=token_ids).delete()
    streams.access_changed(token_ids)
    return per_model.get(Token._meta.label, 0)


def principal_for_user(user: Any) -> Principal:
    """The principal of a Django user in the admin: superusers see all; staff see what their granted roles allow."""
    if user.is_superuser:
        return Principal(kind="staff", name=user.get_username(), roles=(), superuser=True)
    access = StaffAccess.objects.filter(user=user).prefetch_related("roles").first()
    roles = access.roles.all() if access else []
    return principal_for_roles("staff", user.get_username(), roles)


def anonymous_principal() -> Principal:
    role = Role.objects.filter(id=SystemRole.ANONYMOUS).first()
    roles = (compile_role(role.id, role.permissions),) if role else ()
    return Principal(kind="anonymous", name="anonymous", roles=roles)


def _validate_metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValidationFailed("metadata: must be an object of strings", field="metadata")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValidationFailed(f"metadata: at most {MAX_METADATA_ENTRIES} entries", field="metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 100 or len(value) > 1000:
            raise ValidationFailed(
                f"metadata.{key:.40}: values must be strings (keys up to 100, values up to 1000 chars)",
                field=f"metadata.{key:.40}",
            )
    return metadata


def _roles_by_id(role_ids: Any) -> list[Role]:
    if not isinstance(role_ids, list) or not all(isinstance(r, str) for r in role_ids):
        raise ValidationFailed("roles: must be a list of role ids", field="roles")
    if not role_ids:
        raise ValidationFailed("roles: a token needs at least one role", field="roles")
    if SystemRole.BOOTSTRAP in role_ids:
        raise ValidationFailed("roles: the bootstrap role cannot be assigned", field="roles")
    found = {role.id: role for role in Role.objects.filter(id__in=role_ids)}
    missing = [r for r in role_ids if r not in found]
    if missing:
        raise ValidationFailed(f"roles: unknown role {missing[0]!r:.64}", field="roles")
    return [found[r] for r in dict.fromkeys(role_ids)]


@transaction.atomic
def create_token(
    user: str,
    role_ids: list[str],
    expires_in: int = 0,
    metadata: dict[str, str] | None = None,
    *,
    kind: str = TokenKind.USER,
    roles: list[Role] | None = None,
) -> tuple[str, Token]:
    """Create a token; returns ``(plaintext secret, token)``. The plaintext exists nowhere else afterwards.

    ``expires_in`` is in seconds, 0 meaning never.
    """
    if not isinstance(user, str) or not user.strip() or len(user) > 200:
        raise ValidationFailed("user: must be a non-empty string of at most 200 characters", field="user")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 0:
        raise ValidationFailed("expires: must be a number of seconds, 0 for never", field="expires")
    if expires_in > MAX_TOKEN_LIFETIME:
        raise ValidationFailed(f"expires: at most {MAX_TOKEN_LIFETIME} seconds; use 0 for never", field="expires")
    resolved_roles = roles if roles is not None else _roles_by_id(role_ids)
    secret = _new_secret()
    token = Token.objects.create(
        hash=hash_secret(secret),
        user=user.strip(),
        kind=kind,
        metadata=_validate_metadata(metadata),
        expires=timezone.now() + dt.timedelta(seconds=expires_in) if expires_in else None,
    )
    token.roles.set(resolved_roles)
    events.publish(EventKind.CREATED_TOKEN, {"token_id": str(token.id), "user": token.user})
    return secret, token


@transaction.atomic
def bootstrap_token() -> tuple[str, Token]:
    """Create the root token with the bootstrap role. Works once; afterwards raises Conflict."""
    prefs = SystemPreferences.load()
    prefs = SystemPreferences.objects.select_for_update().get(pk=prefs.pk)
    if prefs.bootstrap_token_created:
        raise Conflict("the bootstrap token was already created; ask an admin for a token")
    bootstrap_role = Role.objects.get(id=SystemRole.BOOTSTRAP)
    secret, token = create_token("bootstrap", [], kind=TokenKind.BOOTSTRAP, roles=[bootstrap_role])
    prefs.bootstrap_token_created = True
    prefs.save(update_fields=["bootstrap_token_created"])
    return secret, token


def get_token(token_id: str) -> Token:
    try:
        parsed = uuid.UUID(str(token_id))
    except ValueError:
        raise NotFound.of("token", token_id, field="id") from None
    token = Token.objects.prefetch_related("roles").filter(id=parsed).first()
    if token is None:
        raise NotFound.of("token", token_id, field="id")
    return token


@transaction.atomic
def set_token_disabled(token: Token, disabled: bool) -> bool:
    """Enable or disable a token. Returns False when it already was in that state (nothing changed)."""
    if not isinstance(disabled, bool):
        raise ValidationFailed("disabled: must be true or false", field="disabled")
    if token.disabled == disabled:
        return False
    token.disabled = disabled
    token.save(update_fields=["disabled"])
    if disabled:
        streams.access_changed([token.id])
    events.publish(EventKind.UPDATED_TOKEN, {"token_id": str(token.id), "disabled": disabled})
    return True


@transaction.atomic
def delete_token(token: Token) -> None:
    token_id = str(token.id)
    token.delete()
    streams.access_changed([token_id])
    events.publish(EventKind.DELETED_TOKEN, {"token_id": token_id})


def _check_role_fields(description: Any, permissions: Any) -> list[dict[str, list[str]]] | None:
    if description is not None and (not isinstance(description, str) or len(description) > 2000):
        raise ValidationFailed("description: must be a string of at most 2000 characters", field="description")
    if permissions is None:
        return None
    try:
        normalised = validate_permissions(permissions)
    except InvalidPermission as exc:
        field = str(exc).split(":", 1)[0]
        raise ValidationFailed(str(exc), field=field) from None
    _check_targets_on_database(normalised)
    return normalised


def _check_targets_on_database(permissions: list[dict[str, list[str]]]) -> None:
    """Every target must compile on the database in use, which matches them in lists (kernel/scope.py): Python's
    ``re`` has syntax PostgreSQL's ``~`` refuses (named groups ``(?P<n>...)``). SQLite matches with Python's ``re``,
    which validate_permissions already compiled. A target that fails here would make every list of its role fail."""
    if connection.vendor != "postgresql":
        return
    for index, perm in enumerate(permissions):
        for r_index, resource in enumerate(perm["resources"]):
            compiled = parse_resource(resource)
            if compiled.pattern is None:
                continue
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT '' ~ %s", [compiled.pattern.pattern])
            except DatabaseError as exc:
                field = f"permissions[{index}].resources[{r_index}]"
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValidationFailed(
                    f"{field}: the target of {resource.partition(':')[0]!r} does not compile on this server's "
                    f"database (PostgreSQL): {reason:.200}",
                    field=field,
                ) from None


def role_warnings(role_id: str, permissions: list[dict[str, list[str]]] | None) -> list[dict[str, str]]:
    """Warnings about a role being created or updated with these permissions (``[{field, message}]``, also in the
    server log): targets whose meaning changed when targets became anchored (kernel/rbac.py)."""
    if not permissions:
        return []
    warnings = [{"field": field, "message": message} for field, message in anchoring_warnings(permissions)]
    for warning in warnings:
        logger.warning("role %s: %s: %s", role_id, warning["field"], warning["message"])
    return warnings


def visible_roles(principal: Principal) -> QuerySet:
    """The roles ``principal`` may see: every role for admins, else only the roles it holds (a role's targets name
    namespaces, which other tenants must not learn). Run tokens hold no stored role: they see none."""
    if principal.is_admin:
        return Role.objects.all()
    return Role.objects.filter(id__in=[role.id for role in principal.roles])


@transaction.atomic
def create_role(role_id: str, description: str, permissions: list) -> Role:

    check_identifier(role_id, "id", max_length=64, allow_underscore=True)
    normalised = _check_role_fields(description, permissions)
    if normalised is None:
        raise ValidationFailed("permissions: required", field="permissions")
    try:
        with transaction.atomic():
            role = Role.objects.create(id=role_id, description=description or "", permissions=normalised)
    except IntegrityError:
        raise Conflict(f"role {role_id} already exists", field="id") from None
    events.publish(EventKind.CREATED_ROLE, {"role_id": role.id})
    return role


def get_role(role_id: str, visible_to: Principal | None = None) -> Role:
    """A role; with ``visible_to``, only one that principal may see (``visible_roles``), else NotFound as if it did
    not exist."""
    roles = Role.objects.all() if visible_to is None else visible_roles(visible_to)
    role = roles.filter(id=role_id).first()
    if role is None:
        raise NotFound.of("role", role_id, field="role_id")
    return role


@transaction.atomic
def update_role(role: Role, description: str | None = None, permissions: list | None = None) -> bool:
    """Change a custom role. Returns False when nothing changed. System roles cannot be changed."""
    if role.system_role:
        raise ValidationFailed(f"role {role.id} is a system role and cannot be changed", field="role_id")
    normalised = _check_role_fields(description, permissions)
    changed = []
    if description is not None and description != role.description:
        role.description = description
        changed.append("description")
    if normalised is not None and normalised != role.permissions:
        role.permissions = normalised
        changed.append("permissions")
    if not changed:
        return False
    role.save(update_fields=changed)
    if "permissions" in changed:
        streams.access_changed(Token.objects.filter(roles=role).values_list("id", flat=True))
    events.publish(EventKind.UPDATED_ROLE, {"role_id": role.id})
    return True


@transaction.atomic
def delete_role(role: Role) -> None:
    if role.system_role:
        raise ValidationFailed(f"role {role.id} is a system role and cannot be deleted", field="role_id")
    role_id = role.id
    holders = list(Token.objects.filter(roles=role).values_list("id", flat=True))
    role.delete()
    streams.access_changed(holders)
    events.publish(EventKind.DELETED_ROLE, {"role_id": role_id})


@transaction.atomic
def update_system_preferences(ignore_pipeline_run_events: bool | None) -> bool:
    """Flip the run kill switch. Returns False when nothing changed."""
    if ignore_pipeline_run_events is not None and not isinstance(ignore_pipeline_run_events, bool):
        raise ValidationFailed("ignore_pipeline_run_events: must be true or false", field="ignore_pipeline_run_events")
    prefs = SystemPreferences.load()
    prefs = SystemPreferences.objects.select_for_update().get(pk=prefs.pk)
    if ignore_pipeline_run_events is None or prefs.ignore_pipeline_run_events == ignore_pipeline_run_events:
        return False
    prefs.ignore_pipeline_run_events = ignore_pipeline_run_events
    prefs.save(update_fields=["ignore_pipeline_run_events"])
    events.publish(EventKind.UPDATED_SYSTEM_PREFERENCES, {"ignore_pipeline_run_events": ignore_pipeline_run_events})
    return True


def installation_id() -> str:
    """This installation's id (made once, at migration): the label every container Gofer starts carries."""
    return str(SystemPreferences.load().installation_id)


def touch_last_used(token: Token) -> None:
    """Record use at most once a minute per token (a write per request would make reads contend on SQLite)."""
    now = timezone.now()
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        Token.objects.filter(pk=token.pk).update(last_used=now)
