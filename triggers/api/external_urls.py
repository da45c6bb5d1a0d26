"""The external routes (``/api/external/...``): also what the separate listener (``GOFER_EXTERNAL_BIND``) serves,
and nothing else (gofer_site/external_urls.py)."""

from django.urls import path

from triggers.api import external_views as views

urlpatterns = [
    path(
        "external/webhook/<str:namespace_id>/<str:pipeline_id>/<str:subscription_id>",
        views.WebhookView.as_view(),
        name="external-webhook",
    ),
    path("external/github", views.GitHubView.as_view(), name="external-github"),
    path("external/<str:extension_id>", views.ForwardView.as_view(), name="external-extension"),
]
