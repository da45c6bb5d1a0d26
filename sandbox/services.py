"""The public sandbox's visitors (GOFER_SANDBOX=true): signing up and expiring.

``sign_up`` creates, in one transaction, a namespace of the visitor's own (with the GOFER_QUOTA_* quotas, strict
in sandbox mode, and attach off) and a token scoped to it (kind ``sandbox``: everything in that namespace, nothing
outside it: not other namespaces, global secrets, extensions, tokens, roles or the system), expiring after
GOFER_SANDBOX_TTL. ``expire_visitors`` (every minute in sandbox mode, by the triggers ticker's holder on the
workers: ``expire_periodically``) deletes expired visitors' namespaces through
``pipelines.services.delete_namespace``, whose ``namespace_deleting`` receivers stop containers and remove logs,
objects, secrets and run tokens, then their tokens.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import string

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access import services as access
from access.choices import TokenKind
from access.models import Token
from kernel.errors import NotFound
from kernel.rbac import Principal, compile_role
from pipelines import services as pipelines
from pipelines.models import Namespace
from sandbox.models import Visitor

logger = logging.getLogger(__name__)

NAMESPACE_PREFIX = "sandbox-"
_ALPHABET = string.ascii_lowercase + string.digits
# What a visitor may do in their namespace: what hangs off it, as the system role ``user`` in ``default``. Not
# ``attach`` (refused in sandbox mode anyway), not ``extensions``, ``tokens``, ``permissions`` or ``system``.
VISITOR_RESOURCES = (
    "pipelines:.*",
    "configs",
    "deployments",
    "events",
    "objects",
    "runs",
    "task_executions",
    "secrets",
    "subscriptions",
)
EXPIRE_BATCH = 50


def visitor_permissions(namespace_id: str) -> list[dict[str, list[str]]]:
    return [
        {
            "resources": [f"namespaces:^{re.escape(namespace_id)}$", *VISITOR_RESOURCES],
            "actions": ["read", "write", "delete"],
        }
    ]


def principal_for_visitor(token: Token) -> Principal:
    """The principal of a sandbox token: its own namespace only (the namespace is in the token's metadata, which
    only sign_up writes). A token whose metadata names none grants nothing."""
    namespace_id = (token.metadata or {}).get("namespace_id", "")
    if not namespace_id:
        return Principal(kind="sandbox", name=token.user, roles=(), token_id=str(token.id))
    role = compile_role(f"sandbox:{namespace_id}", visitor_permissions(namespace_id))
    return Principal(kind="sandbox", name=token.user, roles=(role,), token_id=str(token.id))


def _new_namespace_id() -> str:
    return NAMESPACE_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(12))


@transaction.atomic
def sign_up(address: str = "") -> tuple[Visitor, str]:
    """A new visitor: namespace, token and expiry, all or nothing. Returns ``(visitor, token secret)``; the secret
    exists nowhere else afterwards. Raises NotFound outside sandbox mode (the route does not exist there)."""
    if not settings.GOFER_SANDBOX:
        raise NotFound("the sandbox is not enabled on this server (GOFER_SANDBOX)")
    ttl = settings.GOFER_SANDBOX_TTL
    namespace_id = _new_namespace_id()
    namespace = pipelines.create_namespace(namespace_id, f"Sandbox {namespace_id}", "A sandbox visitor's namespace.")
    pipelines.update_namespace(namespace, allow_attach=False)
    secret, token = access.create_token(
        f"sandbox:{namespace_id}", [], ttl, {"namespace_id": namespace_id}, kind=TokenKind.SANDBOX, roles=[]
    )
    visitor = Visitor.objects.create(
        namespace=namespace, token=token, address=address[:64], expires=timezone.now() + dt.timedelta(seconds=ttl)
    )
    logger.info("sandbox visitor %s signed up from %s", namespace_id, address or "an unknown address")
    return visitor, secret


EXPIRY_SECONDS = 60.0


def expire_periodically(now: dt.datetime) -> float | None:
    """The ticker's periodic work (triggers/ticker.py; registered in sandbox/apps.py): expire visitors, again in a
    minute in sandbox mode. Outside it (visitors left from a time it was on) at the ticker's full rounds only."""
    expire_visitors(now)
    return EXPIRY_SECONDS if settings.GOFER_SANDBOX else None


def expire_visitors(now: dt.datetime | None = None) -> int:
    """Delete the namespaces (with everything in them) and tokens of visitors whose time is up, one transaction
    each, so one that fails does not keep the others. Returns how many were deleted; safe to run anywhere, any
    number of times."""
    now = now or timezone.now()
    deleted = 0
    expired = list(Visitor.objects.filter(expires__lte=now).values_list("namespace_id", "token_id")[:EXPIRE_BATCH])
    for namespace_id, token_id in expired:
        try:
            with transaction.atomic():
                namespace = Namespace.objects.filter(pk=namespace_id).first()
                if token_id is not None:
                    access.revoke_tokens([token_id])
                if namespace is not None:
                    pipelines.delete_namespace(namespace)
            deleted += 1
        except Exception:
            logger.exception("could not delete the expired sandbox namespace %s; retried at the next run", namespace_id)
    return deleted
