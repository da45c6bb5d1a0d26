"""Tenant scoping in SQL: the one place that turns a principal's roles into a database filter.

Every query of tenant data is narrowed by ``visible(...)``: a ``Q`` that keeps the rows whose namespace (and
pipeline) the principal's roles grant the action on, together with the other resources the request needs. Role
targets are regexes; they are matched by the database (PostgreSQL ``~``, SQLite ``REGEXP``, which Django implements
with Python's ``re.search``), so a list costs the same number of queries whatever the number of tenants, and a list
and a single-object read can never disagree about what is visible.

The rule (kernel/rbac.py): a request is allowed when *one role* grants, for *every* required resource, the action.
For a row that means: OR over roles of (the role grants the untargeted resources) AND (its namespace patterns match
the row's namespace) AND (its pipeline patterns match the row's pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Model, Q, QuerySet

from kernel.choices import Resource
from kernel.rbac import CompiledRole, Principal

# A Q that matches no row (``Q(pk__in=[])`` is what Django turns into an always-false condition).
NOTHING = Q(pk__in=[])


def _matching(field: str, patterns: list[str] | None) -> Q | None:
    """A Q for ``field`` matching one of ``patterns``; None when any value will do; NOTHING when none can."""
    if patterns is None:
        return None
    if not patterns:
        return NOTHING
    condition = Q()
    for pattern in patterns:
        condition |= Q(**{f"{field}__regex": pattern})
    return condition


def _role_condition(
    role: CompiledRole,
    action: str,
    resources: tuple[str, ...],
    namespace: str,
    pipeline: str | None,
    pipeline_optional: bool,
) -> Q | None:
    """This role's part of ``visible``: a Q, None for "every row", or NOTHING."""
    for resource in resources:
        if not role.grants(action, resource):
            return NOTHING
    parts: list[Q] = []
    ns = _matching(namespace, role.target_patterns(action, Resource.NAMESPACES))
    if ns is not None:
        parts.append(ns)
    if pipeline is not None:
        pipe = _matching(pipeline, role.target_patterns(action, Resource.PIPELINES))
        if pipe is not None:
            parts.append(Q(**{f"{pipeline}__isnull": True}) | pipe if pipeline_optional else pipe)
    if not parts:
        return None
    condition = parts[0]
    for part in parts[1:]:
        condition &= part
    return condition


def visible(
    principal: Principal,
    action: str,
    resources: Iterable[str] = (),
    *,
    namespace: str,
    pipeline: str | None = None,
    pipeline_optional: bool = False,
) -> Q:
    """Rows on which ``principal`` may perform ``action`` on ``resources``.

    ``namespace`` and ``pipeline`` are the lookup paths from the queried model to its namespace id and pipeline id
    (``"namespace_id"``, ``"pipeline__slug"``; ``"id"`` and ``"slug"`` for the models themselves). With
    ``pipeline_optional``, rows whose pipeline is NULL need only the namespace (namespace-level events).
    """
    if principal.superuser:
        return Q()
    # The namespace and pipeline are matched against the row; every other resource needs only to be granted.
    untargeted = tuple(r for r in dict.fromkeys(resources) if r not in (Resource.NAMESPACES, Resource.PIPELINES))
    condition = NOTHING
    for role in principal.roles:
        part = _role_condition(role, action, untargeted, namespace, pipeline, pipeline_optional)
        if part is None:
            return Q()
        if part is not NOTHING:
            condition = part if condition is NOTHING else condition | part
    return condition


def grants_anywhere(principal: Principal, action: str, resources: Iterable[str]) -> bool:
    """Whether some role grants ``action`` on every one of ``resources`` in some namespace (model-level checks in the
    admin and on routes that are not under a namespace)."""
    if principal.superuser:
        return True
    resources = tuple(resources)
    return any(all(role.grants(action, r) for r in resources) for role in principal.roles)


@dataclass(frozen=True)
class Tenancy:
    """Where a tenant model's rows hang: lookup paths to their namespace id and pipeline id.

    Every tenant model declares one (``tenancy = Tenancy(namespace="namespace_id", pipeline="pipeline__slug")``), so
    that the API, the admin and the websockets scope any queryset the same way: ``restrict(queryset, ...)``.
    """

    namespace: str
    pipeline: str | None = None
    # Rows whose pipeline is NULL belong to the namespace only (namespace-level events).
    pipeline_optional: bool = False

    def q(self, principal: Principal, action: str, resources: Iterable[str] = ()) -> Q:
        return visible(
            principal,
            action,
            resources,
            namespace=self.namespace,
            pipeline=self.pipeline,
            pipeline_optional=self.pipeline_optional,
        )


def tenancy_of(model: type[Model]) -> Tenancy:
    """The model's declared tenancy; a model without one is not tenant data and cannot be scoped (TypeError)."""
    declared = getattr(model, "tenancy", None)
    if not isinstance(declared, Tenancy):
        raise TypeError(f"{model.__name__} declares no tenancy = Tenancy(...); it cannot be scoped")
    return declared


def restrict(queryset: QuerySet, principal: Principal, action: str, resources: Iterable[str] = ()) -> QuerySet:
    """``queryset`` narrowed to the rows on which ``principal`` may perform ``action`` with ``resources``."""
    if principal.superuser:
        return queryset
    return queryset.filter(tenancy_of(queryset.model).q(principal, action, resources))
