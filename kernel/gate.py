"""The access gate: who the caller is, and which namespace and pipeline a route's path names for them.

The kernel's API view and websocket consumer (kernel/api) pass every request through the gate before a handler
runs, but the kernel imports no app: the ``access`` app, which owns tokens and roles, implements ``Gate`` and
installs it when Django starts (``AccessConfig.ready``). Until then every request fails loudly rather than running
unchecked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kernel.rbac import Principal


@dataclass(frozen=True)
class Resolved:
    """What a route's path resolved to for a caller: the namespace and pipeline objects (None where the path has
    none)."""

    namespace: Any = None
    pipeline: Any = None
    # The principal with only the roles that apply on this route (kernel/rbac.py ``Principal.on_route``: the bound
    # roles of run tokens); None: the caller's own. Handlers must act as this one.
    principal: Principal | None = None


class Gate(ABC):
    """Authentication and tenant resolution, implemented by the access app."""

    @abstractmethod
    def principal_for_bearer(self, secret: str) -> Principal:
        """The principal of a bearer token; raises Unauthenticated saying why it is refused."""

    @abstractmethod
    def anonymous(self) -> Principal:
        """The principal of a caller without a token (the ``anonymous`` role)."""

    @abstractmethod
    def principal_for_user(self, user: Any) -> Principal:
        """The principal of a Django user in the operators' console."""

    @abstractmethod
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
        """The namespace and pipeline named by a path, if ``principal`` may perform ``action`` there.

        Raises NotFound (404) for what does not exist or may not be read, Forbidden (403) for what may be read but
        not acted on. With ``may_create_pipeline`` the pipeline need not exist (registering a config creates it);
        the permission is then checked on its id. ``run_id`` is the run the path names, if any: roles bound to a run
        (run tokens) apply only on routes naming theirs, so a caller that omits it gets less, never more."""

    @abstractmethod
    def require(self, principal: Principal, action: str, resources: Iterable[str], *, admin: bool = False) -> None:
        """Check a permission that is not about one namespace (tokens, roles, system); raises Forbidden."""


_gate: Gate | None = None


def install(gate: Gate) -> None:
    """Make ``gate`` the one every API view and websocket consumer uses (called once, at start-up)."""
    global _gate
    _gate = gate


def current() -> Gate:
    if _gate is None:
        raise RuntimeError("no access gate installed: the access app must be in INSTALLED_APPS")
    return _gate
