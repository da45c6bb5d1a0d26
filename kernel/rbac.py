"""Gofer's RBAC, evaluated in one place.

A role is a list of permissions; a permission is a list of actions and a list of resources, where
``namespaces``, ``pipelines`` and ``extensions`` carry a regex target (``pipelines:^web-``). A request needs one
action on a set of resources, for example ``write`` on ``{namespaces: "team-a", pipelines: "build", runs: None}``.
It is allowed when *one role* has, for *every* required resource, a permission that includes the action and whose
resource matches (``all`` matches everything; a required resource without a target, as in list routes, matches any
permission of that resource type).

Targets are anchored (issue 8): a target must match the *whole* id unless it says otherwise with an explicit anchor.
``namespaces:team-a`` is exactly ``team-a`` and ``pipelines:web-.*`` every id starting with ``web-``; a target that
starts with ``^`` or ends with ``$`` (after leading inline flags such as ``(?i)``) is a regex taken as written, with
``re.search`` semantics (Gofer's), so ``pipelines:^web-`` is a prefix too and ``namespaces:-prod$`` a suffix. The
compiled pattern (``CompiledResource.pattern``) is the anchored one, and it is what kernel/scope.py gives the
database (PostgreSQL ``~``, SQLite ``REGEXP``), so Python and SQL match the same ids.

A role may also be *bound* (``Binding``): the roles of run tokens apply only on routes that name their run, or only
on routes that name no run, or only on routes that act on something inside a pipeline rather than on the pipeline
itself. ``Principal.on_route`` drops the roles that do not apply before a request is checked (access/gate.py).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from kernel.choices import ADMIN_ROLES, TARGETED_RESOURCES, Action, Resource

RESOURCE_NAMES = frozenset(r.value for r in Resource)
ACTION_NAMES = frozenset(a.value for a in Action)


class InvalidPermission(ValueError):
    """A permission or resource string is malformed; the message says which part."""


# Leading inline flags, ``(?i)``: they must stay first when a target is anchored (Python and PostgreSQL agree on it).
_LEADING_FLAGS = re.compile(r"\A\(\?[a-zA-Z]+\)")


def _split_flags(target: str) -> tuple[str, str]:
    match = _LEADING_FLAGS.match(target)
    return (match.group(0), target[match.end() :]) if match else ("", target)


def _ends_with_anchor(body: str) -> bool:
    """Whether ``body`` ends with an unescaped ``$`` (``\\$`` is a literal dollar)."""
    if not body.endswith("$"):
        return False
    backslashes = len(body[:-1]) - len(body[:-1].rstrip("\\"))
    return backslashes % 2 == 0


def is_explicitly_anchored(target: str) -> bool:
    """Whether a target says how it is anchored (``^...`` or ``...$``), and so is a regex taken as written."""
    _, body = _split_flags(target)
    return body.startswith("^") or _ends_with_anchor(body)


def anchored(target: str) -> str:
    """The regex a target stands for: as written when it is explicitly anchored, else a match of the whole id."""
    if is_explicitly_anchored(target):
        return target
    flags, body = _split_flags(target)
    return f"{flags}^(?:{body})$"


def anchoring_changed_meaning(target: str) -> bool:
    """Whether this target meant something else before targets were anchored (issue 8), when it was matched with
    ``re.search`` as written. Unchanged: explicitly anchored targets, and those that begin and end with ``.*``
    (a search for ``p`` is a full match of ``.*p.*``)."""
    if is_explicitly_anchored(target):
        return False
    _, body = _split_flags(target)
    return not (body.startswith(".*") and body.endswith(".*") and not _ends_with_anchor(body))


@dataclass(frozen=True)
class CompiledResource:
    resource: str
    pattern: re.Pattern[str] | None

    def matches(self, resource: str, target: str | None) -> bool:
        if self.resource == Resource.ALL:
            return True
        if self.resource != resource:
            return False
        if target is None or self.pattern is None:
            return True
        # The pattern is anchored (``anchored``) unless its target said otherwise: search, as the database does.
        return self.pattern.search(target) is not None


@dataclass(frozen=True)
class CompiledPermission:
    actions: frozenset[str]
    resources: tuple[CompiledResource, ...]


@dataclass(frozen=True)
class Binding:
    """Where a bound role applies, beyond what its permissions say (the roles of run tokens, access/services.py).

    ``run``: only on routes whose path names this run number. ``outside_runs``: only on routes whose path names no
    run. ``subresources_only``: only on routes that need a resource besides the namespace and the pipeline, so that
    a grant on a pipeline's runs is no grant on the pipeline itself (``PATCH``/``DELETE .../pipelines/{id}`` need
    only write or delete on the namespace and pipeline targets).
    """

    run: int | None = None
    outside_runs: bool = False
    subresources_only: bool = False

    def applies(self, run: int | None, resources: Iterable[str]) -> bool:
        """Whether the role applies on a route naming ``run`` (None: no run) and needing ``resources``."""
        if self.run is not None and run != self.run:
            return False
        if self.outside_runs and run is not None:
            return False
        # A route that needs only the namespace and pipeline targets acts on the pipeline itself.
        return not self.subresources_only or any(r not in TARGETED_RESOURCES for r in resources)


@dataclass(frozen=True)
class CompiledRole:
    id: str
    permissions: tuple[CompiledPermission, ...]
    # None: the role applies on every route. Set only on the synthetic roles of run tokens.
    binding: Binding | None = None

    @property
    def is_admin(self) -> bool:
        return self.id in ADMIN_ROLES

    def grants(self, action: str, resource: str) -> bool:
        """Whether some permission allows ``action`` on ``resource`` with any target (list routes ask this)."""
        return any(
            action in perm.actions and any(r.matches(resource, None) for r in perm.resources)
            for perm in self.permissions
        )

    def target_patterns(self, action: str, resource: str) -> list[str] | None:
        """The regexes a target of ``resource`` must match (one of) for ``action``: None when any target will do
        (``all``, or the resource without a target), ``[]`` when this role grants nothing on it.

        kernel/scope.py turns these into SQL, so that tenant rows are matched in the database."""
        patterns: list[str] = []
        for perm in self.permissions:
            if action not in perm.actions:
                continue
            for r in perm.resources:
                if r.resource == Resource.ALL or (r.resource == resource and r.pattern is None):
                    return None
                if r.resource == resource and r.pattern is not None:
                    patterns.append(r.pattern.pattern)
        return patterns

    def allows(self, action: str, required: Mapping[str, str | None]) -> bool:
        for resource, target in required.items():
            if not any(
                action in perm.actions and any(r.matches(resource, target) for r in perm.resources)
                for perm in self.permissions
            ):
                return False
        return True


def parse_resource(text: str) -> CompiledResource:
    """``"pipelines:^web-"`` → CompiledResource; raises InvalidPermission naming the problem."""
    name, sep, target = text.partition(":")
    name = name.strip()
    if name not in RESOURCE_NAMES:
        raise InvalidPermission(f"unknown resource {name!r:.40}; known: {', '.join(sorted(RESOURCE_NAMES))}")
    if sep and name not in TARGETED_RESOURCES:
        raise InvalidPermission(f"resource {name!r} takes no target (only namespaces, pipelines and extensions do)")
    pattern = None
    if sep:
        if target == "":
            raise InvalidPermission(f"resource {name!r} has an empty target; use '{name}:.*' for every {name}")
        try:
            re.compile(target)
            pattern = re.compile(anchored(target))
        except re.error as exc:
            raise InvalidPermission(f"target of {name!r} is not a valid regex: {exc}") from None
    return CompiledResource(name, pattern)


def anchoring_warnings(permissions: list[dict[str, list[str]]]) -> list[tuple[str, str]]:
    """``(field, message)`` for each target of these (valid) permissions whose meaning changed when targets became
    anchored (issue 8): the role still works, with the new meaning, but its author may have meant the old one."""
    warnings = []
    for index, perm in enumerate(permissions):
        for r_index, resource in enumerate(perm.get("resources", [])):
            name, sep, target = resource.partition(":")
            if not sep or not anchoring_changed_meaning(target):
                continue
            warnings.append(
                (
                    f"permissions[{index}].resources[{r_index}]",
                    f"{resource} must now match the whole id (targets are anchored); before, it matched every id "
                    f"that merely contained a match. Write {name}:^{target} for ids starting with it, or "
                    f"{name}:.*{target}.* for the old meaning",
                )
            )
    return warnings


def validate_permissions(permissions: object) -> list[dict[str, list[str]]]:
    """Check a role's permission list; returns it normalised. Raises InvalidPermission with a path to the fault."""
    if not isinstance(permissions, list):
        raise InvalidPermission("permissions: must be a list")
    out = []
    for index, perm in enumerate(permissions):
        where = f"permissions[{index}]"
        if not isinstance(perm, dict):
            raise InvalidPermission(f"{where}: must be an object with resources and actions")
        resources, actions = perm.get("resources"), perm.get("actions")
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) for r in resources):
            raise InvalidPermission(f"{where}.resources: must be a non-empty list of strings")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
            raise InvalidPermission(f"{where}.actions: must be a non-empty list of read, write, delete")
        for r_index, resource in enumerate(resources):
            try:
                parse_resource(resource)
            except InvalidPermission as exc:
                raise InvalidPermission(f"{where}.resources[{r_index}]: {exc}") from None
        for a_index, action in enumerate(actions):
            if action not in ACTION_NAMES:
                raise InvalidPermission(f"{where}.actions[{a_index}]: {action!r:.20} is not read, write or delete")
        extra = set(perm) - {"resources", "actions"}
        if extra:
            raise InvalidPermission(f"{where}: unknown field {sorted(extra)[0]!r}")
        out.append({"resources": list(resources), "actions": list(dict.fromkeys(actions))})
    return out


@functools.lru_cache(maxsize=4096)
def _compile(role_id: str, permissions_json: str) -> CompiledRole:
    perms = []
    for perm in json.loads(permissions_json):
        try:
            resources = tuple(parse_resource(r) for r in perm.get("resources", []))
        except InvalidPermission:
            # A stored role that no longer parses grants nothing rather than failing every request.
            continue
        perms.append(CompiledPermission(frozenset(perm.get("actions", [])), resources))
    return CompiledRole(role_id, tuple(perms))


def compile_role(role_id: str, permissions: list) -> CompiledRole:
    return _compile(role_id, json.dumps(permissions, sort_keys=True))


@dataclass(frozen=True)
class Principal:
    """Whoever is making a request: a token, a staff user in the admin, or anonymous. Carries compiled roles."""

    kind: str  # "token" | "staff" | "anonymous" | "system"
    name: str
    roles: tuple[CompiledRole, ...]
    token_id: str | None = None
    superuser: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def is_admin(self) -> bool:
        return self.superuser or any(role.is_admin for role in self.roles)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    def on_route(self, run: int | None, resources: Iterable[str]) -> Principal:
        """This principal with only the roles that apply on a route naming ``run`` (None: no run; 0: a run id that
        is not a number) and needing ``resources`` (see ``Binding``). Unbound roles apply everywhere."""
        if all(role.binding is None for role in self.roles):
            return self
        resources = tuple(resources)
        kept = tuple(role for role in self.roles if role.binding is None or role.binding.applies(run, resources))
        return replace(self, roles=kept)

    def allows(self, action: str, required: Mapping[str, str | None]) -> bool:
        """True when one role grants ``action`` on every resource in ``required``."""
        if self.superuser:
            return True
        return any(role.allows(action, required) for role in self.roles)

    def initiator(self) -> dict[str, str]:
        return {"id": self.token_id or "", "user": self.name, "kind": self.kind}


def principal_for_roles(kind: str, name: str, roles: Iterable, token_id: str | None = None) -> Principal:
    return Principal(
        kind=kind,
        name=name,
        roles=tuple(compile_role(role.id, role.permissions) for role in roles),
        token_id=token_id,
    )


SYSTEM_PRINCIPAL = Principal(kind="system", name="gofer", roles=(), superuser=True)
