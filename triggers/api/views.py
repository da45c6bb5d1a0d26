"""Extensions and subscriptions (Gofer v0 paths). Handlers parse, call a service, render.

Extensions are not tenant data: reading one needs ``read`` on ``extensions`` whose target matches its id
(``extensions:^github$``); installing, updating and uninstalling are admin-only. Subscriptions hang off pipelines
and are scoped like everything under ``/namespaces/{namespace_id}/pipelines/{pipeline_id}``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from access import scope as access_scope
from kernel import scope as tenancy
from kernel.api.pagination import page_from, parse_bool
from kernel.api.views import GoferAPIView, created, no_content, no_content_unchanged, ok, rule
from kernel.choices import Action, Resource
from triggers import services, supervisor
from triggers.api import serializers as s
from triggers.models import Extension, Subscription

EXTENSIONS = Resource.EXTENSIONS
SUBSCRIPTIONS = Resource.SUBSCRIPTIONS
PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="At most 500; default 50."),
    OpenApiParameter("offset", int),
    OpenApiParameter("reverse", bool, description="Newest first."),
]
INSTALL_FIELDS = {"id", "image", "settings", "kind", "registry_auth", "additional_roles", "entrypoint", "command"}


def _readable_extension(view: GoferAPIView, extension_id: str, resources: tuple[str, ...] = ()) -> Extension:
    """The extension, if the caller's ``extensions:<regex>`` matches its id (403 naming the permission)."""
    access_scope.require_extension(view.principal, extension_id, Action.READ, resources)
    return services.get_extension(extension_id)


class ExtensionListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, EXTENSIONS), "POST": rule(Action.WRITE, EXTENSIONS, admin=True)}

    @extend_schema(
        operation_id="list_extensions",
        parameters=PAGE_PARAMETERS,
        responses=s.ListExtensionsResponse,
        tags=["Extensions"],
    )
    def get(self, request: Request) -> Response:
        page = page_from(request)
        principal = self.principal
        visible = [e.id for e in Extension.objects.only("id") if principal.allows(Action.READ, {EXTENSIONS: e.id})]
        extensions = page.apply(Extension.objects.filter(id__in=visible), "id")
        return ok({"extensions": s.ExtensionSerializer(extensions, many=True).data})

    @extend_schema(
        operation_id="install_extension",
        parameters=[OpenApiParameter("force", bool, description="Update an installed extension in place.")],
        request=s.InstallExtensionRequest,
        responses={201: s.InstallExtensionResponse},
        tags=["Extensions"],
    )
    def post(self, request: Request) -> Response:
        body = self.known_fields(self.body(), INSTALL_FIELDS)
        force = parse_bool(request.query_params.get("force"), "force")
        install = services.check_install(body)
        extension = supervisor.install(install, force=force)
        return created({"extension": s.ExtensionSerializer(extension).data})


class ExtensionDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ, EXTENSIONS),
        "PATCH": rule(Action.WRITE, EXTENSIONS, admin=True),
        "DELETE": rule(Action.DELETE, EXTENSIONS, admin=True),
    }

    @extend_schema(operation_id="get_extension", responses=s.GetExtensionResponse, tags=["Extensions"])
    def get(self, request: Request, extension_id: str) -> Response:
        return ok({"extension": s.ExtensionSerializer(_readable_extension(self, extension_id)).data})

    @extend_schema(
        operation_id="update_extension",
        request=s.UpdateExtensionRequest,
        responses={204: None},
        tags=["Extensions"],
    )
    def patch(self, request: Request, extension_id: str) -> Response:
        body = self.known_fields(self.body(), {"enable"})
        extension = services.get_extension(extension_id)
        if "enable" not in body or not services.set_extension_enabled(extension, body["enable"]):
            return no_content_unchanged()
        return no_content()

    @extend_schema(operation_id="uninstall_extension", responses={204: None}, tags=["Extensions"])
    def delete(self, request: Request, extension_id: str) -> Response:
        supervisor.uninstall(services.get_extension(extension_id))
        return no_content()


class ExtensionDebugView(GoferAPIView):
    rules = {"GET": rule(Action.READ, EXTENSIONS)}

    @extend_schema(operation_id="get_extension_debug_info", responses=s.DebugResponse, tags=["Extensions"])
    def get(self, request: Request, extension_id: str) -> Response:
        extension = _readable_extension(self, extension_id)
        return ok({"info": supervisor.debug_info(extension)})


class ExtensionSubscriptionListView(GoferAPIView):
    """Which pipelines are subscribed to an extension (those the caller may read subscriptions of)."""

    rules = {"GET": rule(Action.READ, EXTENSIONS, SUBSCRIPTIONS)}

    @extend_schema(
        operation_id="list_extension_subscriptions",
        parameters=PAGE_PARAMETERS,
        responses=s.ListExtensionSubscriptionsResponse,
        tags=["Extensions"],
    )
    def get(self, request: Request, extension_id: str) -> Response:
        extension = _readable_extension(self, extension_id, (SUBSCRIPTIONS,))
        rows = tenancy.restrict(
            Subscription.objects.filter(extension=extension).select_related("extension", "pipeline"),
            self.principal,
            Action.READ,
            (SUBSCRIPTIONS,),
        )
        page = page_from(request)
        subscriptions = page.apply(rows, "namespace_id", "pipeline__slug", "subscription_id")
        return ok({"subscriptions": s.SubscriptionSerializer(subscriptions, many=True).data})


class SubscriptionListView(GoferAPIView):
    rules = {"GET": rule(Action.READ, SUBSCRIPTIONS), "POST": rule(Action.WRITE, SUBSCRIPTIONS)}

    @extend_schema(
        operation_id="list_subscriptions",
        parameters=PAGE_PARAMETERS,
        responses=s.ListSubscriptionsResponse,
        tags=["Subscriptions"],
    )
    def get(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        page = page_from(request)
        subscriptions = page.apply(services.subscriptions_of(self.pipeline), "extension_id", "subscription_id")
        return ok({"subscriptions": s.SubscriptionSerializer(subscriptions, many=True).data})

    @extend_schema(
        operation_id="create_subscription",
        request=s.CreateSubscriptionRequest,
        responses={201: s.CreateSubscriptionResponse},
        tags=["Subscriptions"],
    )
    def post(self, request: Request, namespace_id: str, pipeline_id: str) -> Response:
        body = self.known_fields(self.body(), {"extension_id", "subscription_id", "settings"})
        subscription = supervisor.subscribe(
            self.pipeline, body.get("extension_id"), body.get("subscription_id"), body.get("settings")
        )
        return created({"subscription": s.SubscriptionSerializer(subscription).data})


class SubscriptionDetailView(GoferAPIView):
    rules = {
        "GET": rule(Action.READ, SUBSCRIPTIONS),
        "PATCH": rule(Action.WRITE, SUBSCRIPTIONS),
        "DELETE": rule(Action.DELETE, SUBSCRIPTIONS),
    }

    @extend_schema(operation_id="get_subscription", responses=s.GetSubscriptionResponse, tags=["Subscriptions"])
    def get(
        self, request: Request, namespace_id: str, pipeline_id: str, extension_id: str, subscription_id: str
    ) -> Response:
        subscription = services.get_subscription(self.pipeline, extension_id, subscription_id)
        return ok({"subscription": s.SubscriptionSerializer(subscription).data})

    @extend_schema(
        operation_id="update_subscription",
        request=s.UpdateSubscriptionRequest,
        responses={204: None},
        tags=["Subscriptions"],
    )
    def patch(
        self, request: Request, namespace_id: str, pipeline_id: str, extension_id: str, subscription_id: str
    ) -> Response:
        body = self.known_fields(self.body(), {"status"})
        subscription = services.get_subscription(self.pipeline, extension_id, subscription_id)
        if body.get("status") is None or not supervisor.set_subscription_status(subscription, body["status"]):
            return no_content_unchanged()
        return no_content()

    @extend_schema(operation_id="delete_subscription", responses={204: None}, tags=["Subscriptions"])
    def delete(
        self, request: Request, namespace_id: str, pipeline_id: str, extension_id: str, subscription_id: str
    ) -> Response:
        supervisor.unsubscribe(services.get_subscription(self.pipeline, extension_id, subscription_id))
        return no_content()
