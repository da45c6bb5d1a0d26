"""The notifiers' route (ours): a subscription's deliveries, beside the v0 subscription paths."""

from django.urls import path

from notifiers.api import views

PIPELINE = "namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>"

urlpatterns = [
    path(
        f"{PIPELINE}/subscriptions/<str:extension_id>/<str:subscription_id>/deliveries",
        views.DeliveryListView.as_view(),
        name="subscription-deliveries",
    ),
]
