"""Tenant scoping: the one place that turns a principal's roles into what it may see.

Every read of tenant data starts here: views get their namespace and pipeline through ``get_namespace`` and
``get_pipeline`` and derive every queryset from those objects; lists of namespaces, pipelines and events come from
the ``*_for`` functions. Something the principal may not read is reported exactly as something that does not exist
(404), so ids in other tenants cannot be probed. Something it may read but not change is a 403 that names the
missing permission.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from access.choices import Action, Resource
from access.permissions import Principal
from apiv0.errors import Forbidden, NotFound
from events.models import Event
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


def can_see_namespace(principal: Principal, namespace_id: str) -> bool:
    """Whether the principal may read anything at all in the namespace."""
    return principal.allows(Action.READ, {Resource.NAMESPACES: namespace_id})


def can_see_pipeline(principal: Principal, namespace_id: str, pipeline_slug: str) -> bool:
    return principal.allows(Action.READ, {Resource.NAMESPACES: namespace_id, Resource.PIPELINES: pipeline_slug})


def namespace_ids_for(principal: Principal, action: str = Action.READ, resources: Iterable[str] = ()) -> list[str]:
    """Ids of the namespaces on which ``principal`` may perform ``action`` together with ``resources``."""
    resources = tuple(resources)
    ids = Namespace.objects.values_list("id", flat=True)
    return [ns for ns in ids if principal.allows(action, _required(ns, None, resources))]


def namespaces_for(principal: Principal, action: str = Action.READ, resources: Iterable[str] = ()) -> QuerySet:
    if principal.superuser:
        return Namespace.objects.all()
    return Namespace.objects.filter(id__in=namespace_ids_for(principal, action, resources))


def pipelines_for(
    principal: Principal, namespace: Namespace | None = None, action: str = Action.READ, resources: Iterable[str] = ()
) -> QuerySet:
    """Pipelines (in ``namespace``, or in every namespace) on which ``principal`` may perform ``action``."""
    queryset = Pipeline.objects.all() if namespace is None else Pipeline.objects.filter(namespace=namespace)
    if principal.superuser:
        return queryset
    resources = tuple(resources)
    allowed = [
        pk
        for pk, ns, slug in queryset.values_list("pk", "namespace_id", "slug")
        if principal.allows(action, _required(ns, slug, resources))
    ]
    return queryset.filter(pk__in=allowed)


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
    permission is then checked against the pipeline id too, whether or not the pipeline exists yet.
    """
    if not can_see_namespace(principal, namespace_id):
        raise NotFound.of("namespace", namespace_id, field="namespace_id")
    namespace = Namespace.objects.filter(id=namespace_id).first()
    if namespace is None:
        raise NotFound.of("namespace", namespace_id, field="namespace_id")
    if new_pipeline_slug is not None and not can_see_pipeline(principal, namespace_id, new_pipeline_slug):
        raise NotFound.of("pipeline", new_pipeline_slug, field="pipeline_id")
    required = _required(namespace_id, new_pipeline_slug, resources)
    if not principal.allows(action, required):
        raise Forbidden(f"this token lacks permission {describe(action, required)}")
    return namespace


def get_pipeline(
    principal: Principal,
    namespace_id: str,
    pipeline_slug: str,
    action: str = Action.READ,
    resources: Iterable[str] = (),
) -> Pipeline:
    """The pipeline, scoped exactly like ``get_namespace``; the missing parent is the one the 404 names."""
    if not can_see_namespace(principal, namespace_id) or not Namespace.objects.filter(id=namespace_id).exists():
        raise NotFound.of("namespace", namespace_id, field="namespace_id")
    if not can_see_pipeline(principal, namespace_id, pipeline_slug):
        raise NotFound.of("pipeline", pipeline_slug, field="pipeline_id")
    pipeline = (
        Pipeline.objects.select_related("namespace").filter(namespace_id=namespace_id, slug=pipeline_slug).first()
    )
    if pipeline is None:
        raise NotFound.of("pipeline", pipeline_slug, field="pipeline_id")
    required = _required(namespace_id, pipeline_slug, resources)
    if not principal.allows(action, required):
        raise Forbidden(f"this token lacks permission {describe(action, required)}")
    return pipeline


def require(principal: Principal, action: str, resources: Iterable[str] = (), *, admin: bool = False) -> None:
    """Check a permission that is not about one namespace (tokens, roles, system). Admin routes need an admin role."""
    if admin and not principal.is_admin:
        raise Forbidden("this route needs the admin role")
    required = _required(None, None, resources)
    if required and not principal.allows(action, required):
        raise Forbidden(f"this token lacks permission {describe(action, required)}")


def events_for(principal: Principal) -> QuerySet:
    """Events the principal may read: those of namespaces (and pipelines) it can read, plus system events for admins."""
    queryset = Event.objects.all()
    if principal.is_admin:
        return queryset
    if not principal.allows(Action.READ, {Resource.EVENTS: None}):
        return queryset.none()
    visible_ns = namespace_ids_for(principal, Action.READ, (Resource.EVENTS,))
    # Pipeline-level events need the pipeline to be visible too; namespace-level events (no pipeline) only the
    # namespace. Slugs come from the events themselves so that a deleted pipeline's events stay readable.
    visible_pipelines = Q()
    for ns in visible_ns:
        slugs = [
            slug
            for slug in Event.objects.filter(namespace_id=ns, pipeline_slug__isnull=False)
            .order_by()
            .values_list("pipeline_slug", flat=True)
            .distinct()
            if principal.allows(Action.READ, _required(ns, slug, (Resource.EVENTS,)))
        ]
        if slugs:
            visible_pipelines |= Q(namespace_id=ns, pipeline_slug__in=slugs)
    return queryset.filter(Q(namespace_id__in=visible_ns, pipeline_slug__isnull=True) | visible_pipelines)
