"""The access gate the kernel's API view and websocket consumer use (kernel/gate.py), implemented with tokens,
roles and ``access.scope``. Installed by ``AccessConfig.ready``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from access import scope
from access import services as access
from kernel.gate import Gate, Resolved
from kernel.rbac import Principal


class AccessGate(Gate):
    def principal_for_bearer(self, secret: str) -> Principal:
        token = access.authenticate(secret)
        access.touch_last_used(token)
        return access.principal_for_token(token)

    def anonymous(self) -> Principal:
        return access.anonymous_principal()

    def principal_for_user(self, user: Any) -> Principal:
        return access.principal_for_user(user)

    def resolve(
        self,
        principal: Principal,
        action: str,
        resources: Iterable[str],
        *,
        namespace_id: str | None,
        pipeline_id: str | None,
        may_create_pipeline: bool = False,
        run_id: str | None = None,
    ) -> Resolved:
        resources = tuple(resources)
        # Run tokens: only the roles bound to this route's run (or to routes naming no run) count.
        principal = scope.route_principal(principal, run_id, resources)
        if pipeline_id is not None and not may_create_pipeline:
            pipeline = scope.get_pipeline(principal, namespace_id or "", pipeline_id, action, resources)
            return Resolved(namespace=pipeline.namespace, pipeline=pipeline, principal=principal)
        namespace = scope.get_namespace(
            principal,
            namespace_id or "",
            action,
            resources,
            new_pipeline_slug=pipeline_id if may_create_pipeline else None,
        )
        return Resolved(namespace=namespace, principal=principal)

    def require(self, principal: Principal, action: str, resources: Iterable[str], *, admin: bool = False) -> None:
        resources = tuple(resources)
        scope.require(scope.route_principal(principal, None, resources), action, resources, admin=admin)
