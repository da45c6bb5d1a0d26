"""Resolving the namespace and pipeline a request names, for a principal, with kernel.scope's SQL filters.

Something the principal may not read is reported exactly as something that does not exist (404), so ids in other
tenants cannot be probed. Something it may read but not change is a 403 that names the missing permission. Lists
of namespaces and pipelines are querysets filtered in the database (kernel/scope.py), one query whatever the
number of tenants; a single lookup costs at most two.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import BooleanField, CharField, ExpressionWrapper, Q, QuerySet, Value

from kernel import scope as tenancy
from kernel.choices import Action, Resource
from kernel.errors import Forbidden, NotFound
from kernel.identifiers import strict_int
from kernel.rbac import Principal
from pipelines.models import Namespace, Pipeline


def _required(namespace_id: str | None, pipeline_slug: str | None, resources: Iterable[str]) -> dict[str, str | None]:
    required: dict[str, str | None] = {}
    if namespace_id is not None:
        required[Resource.NAMESPACES] = namespace_id
    if pipeline_slug is not None:
        required[Resource.PIPELINES] = pipeline_slug
    for resource in resources:
        required.setdefault(resource, None)
    return required


def describe(action: str, required: dict[str, str | None]) -> str:
    parts = [f"{r}:{t}" if t is not None else str(r) for r, t in required.items()]
    return f"{action} on {', '.join(parts)}"


def _flag(condition: Q) -> ExpressionWrapper | Value:
    """A boolean column for ``condition``; constants for "everything" and "nothing", which SQL cannot select."""
    if condition == Q():
        return Value(True, output_field=BooleanField())
    if condition == tenancy.NOTHING:
        return Value(False, output_field=BooleanField())
    return ExpressionWrapper(condition, output_field=BooleanField())


def namespaces_for(principal: Principal, action: str = Action.READ, resources: Iterable[str] = ()) -> QuerySet:
    """Namespaces on which ``principal`` may perform ``action`` together with ``resources``."""
    return tenancy.restrict(Namespace.objects.all(), principal, action, resources)


def pipelines_for(
    principal: Principal, namespace: Namespace | None = None, action: str = Action.READ, resources: Iterable[str] = ()
) -> QuerySet:
    """Pipelines (in ``namespace``, or in every namespace) on which ``principal`` may perform ``action``."""
    queryset = Pipeline.objects.all() if namespace is None else Pipeline.objects.filter(namespace=namespace)
    return tenancy.restrict(queryset, principal, action, resources)


def get_namespace(
    principal: Principal,
    namespace_id: str,
    action: str = Action.READ,
    resources: Iterable[str] = (),
    *,
    new_pipeline_slug: str | None = None,
) -> Namespace:
    """The namespace, if ``principal`` may perform ``action`` with ``resources`` in it.

    Raises NotFound when it does not exist or the principal may not read it; Forbidden when it may read it but lacks
    the permission asked for. ``new_pipeline_slug`` is for registering a config, which may create that pipeline: the
    permission is then checked against the pipeline id too, whether or not the pipeline exists yet. One query.
    """
    resources = tuple(resources)
    rows = Namespace.objects.filter(id=namespace_id)
    if new_pipeline_slug is None:
        found = rows.annotate(
            readable=_flag(Namespace.tenancy.q(principal, Action.READ)),
            allowed=_flag(Namespace.tenancy.q(principal, action, resources)),
        ).first()
    else:
        # The pipeline may not exist yet: its id is matched as a value, as if it were the row's pipeline.
        as_pipeline = tenancy.Tenancy(namespace="id", pipeline="new_pipeline_slug")
        found = (
            rows.annotate(new_pipeline_slug=Value(new_pipeline_slug, output_field=CharField()))
            .annotate(
                readable=_flag(Namespace.tenancy.q(principal, Action.READ)),
                pipeline_readable=_flag(as_pipeline.q(principal, Action.READ)),
                allowed=_flag(as_pipeline.q(principal, action, resources)),
            )
            .first()
        )
    if found is None or not found.readable:
        raise NotFound.of("namespace", namespace_id, field="namespace_id")
    if new_pipeline_slug is not None and not found.pipeline_readable:
        raise NotFound.of("pipeline", new_pipeline_slug, field="pipeline_id")
    if not found.allowed:
        required = _required(namespace_id, new_pipeline_slug, resources)
        raise Forbidden(f"this token lacks permission {describe(action, required)}")
    return found


def get_pipeline(
    principal: Principal,
    namespace_id: str,
    pipeline_slug: str,
    action: str = Action.READ,
    resources: Iterable[str] = (),
) -> Pipeline:
    """The pipeline, scoped exactly like ``get_namespace``; the missing parent is the one the 404 names.

    At most two queries: the pipeline with its namespace; the namespace alone only when the pipeline is not found,
    to say which of the two is missing.
    """
    resources = tuple(resources)
    found = (
        Pipeline.objects.select_related("namespace")
        .filter(namespace_id=namespace_id, slug=pipeline_slug)
        .annotate(
            readable=_flag(Pipeline.tenancy.q(principal, Action.READ)),
            allowed=_flag(Pipeline.tenancy.q(principal, action, resources)),
        )
        .first()
    )
    if found is None or not found.readable:
        # Which parent is missing: the namespace (or one the principal may not read), or the pipeline in it.
        get_namespace(principal, namespace_id)
        raise NotFound.of("pipeline", pipeline_slug, field="pipeline_id")
    if not found.allowed:
        required = _required(namespace_id, pipeline_slug, resources)
        raise Forbidden(f"this token lacks permission {describe(action, required)}")
    return found


def route_principal(principal: Principal, run_id: object, resources: Iterable[str]) -> Principal:
    """``principal`` with only the roles that apply on a route naming run ``run_id`` (None: no run) and needing
    ``resources`` (kernel/rbac.py ``Binding``: the roles of run tokens are bound to their run).

    A principal limited to one run that asks about another is told that run does not exist (NotFound naming
    ``run_id``), exactly as an outsider is told about a namespace: it may not learn which runs exist."""
    if all(role.binding is None for role in principal.roles):
        return principal
    run: int | None = None
    if run_id is not None:
        try:
            run = strict_int(run_id)
        except ValueError:
            run = 0
        run = run if run > 0 else 0  # no run has number 0: a bad id matches no bound role
    narrowed = principal.on_route(run, resources)
    if run is not None and principal.roles and not narrowed.roles:
        raise NotFound.of("run", run_id, field="run_id")
    return narrowed


def require(principal: Principal, action: str, resources: Iterable[str] = (), *, admin: bool = False) -> None:
    """Check a permission that is not about one namespace (tokens, roles, system). Admin routes need an admin role."""
    if admin and not principal.is_admin:
        raise Forbidden("this route needs the admin role")
    required = _required(None, None, resources)
    if required and not principal.allows(action, required):
        raise Forbidden(f"this token lacks permission {describe(action, required)}")


def may_on_pipeline(principal: Principal, pipeline: Pipeline, action: str, resources: Iterable[str] = ()) -> bool:
    """Whether ``principal`` may perform ``action`` with ``resources`` on this (already resolved) pipeline: a second
    permission a handler needs beyond its route's rule (revealing a secret's value needs write on secrets)."""
    if principal.superuser:
        return True
    return tenancy.restrict(Pipeline.objects.filter(pk=pipeline.pk), principal, action, resources).exists()


def require_extension(principal: Principal, extension_id: str, action: str, resources: Iterable[str] = ()) -> None:
    """Check ``action`` on an extension's own resources (its object store): ``extensions:<regex>`` must match the
    id. Raises Forbidden naming the permission."""
    required = {Resource.EXTENSIONS: extension_id, **dict.fromkeys(resources)}
    if not principal.allows(action, required):
        raise Forbidden(f"this token lacks permission {describe(action, required)}")
