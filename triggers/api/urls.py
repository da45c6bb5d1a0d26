"""Extension and subscription routes (Gofer v0 paths). The extension objects (``extensions/{id}/objects``) are the
object store's; the logs websocket is in triggers/routing.py."""

from django.urls import path

from triggers.api import views

PIPELINE = "namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>"
EXTENSION = "extensions/<str:extension_id>"

urlpatterns = [
    path("extensions", views.ExtensionListView.as_view(), name="extensions"),
    path(EXTENSION, views.ExtensionDetailView.as_view(), name="extension"),
    path(f"{EXTENSION}/debug", views.ExtensionDebugView.as_view(), name="extension-debug"),
    path(f"{EXTENSION}/subscriptions", views.ExtensionSubscriptionListView.as_view(), name="extension-subscriptions"),
    path(f"{PIPELINE}/subscriptions", views.SubscriptionListView.as_view(), name="subscriptions"),
    path(
        f"{PIPELINE}/subscriptions/<str:extension_id>/<str:subscription_id>",
        views.SubscriptionDetailView.as_view(),
        name="subscription",
    ),
]
