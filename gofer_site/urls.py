"""URL wiring: the admin, the API (each app mounts its own routes under /api/), the schema and the docs page."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from telemetry.views import MetricsView, healthz, readyz

api_patterns = [
    path("", include("access.api.urls")),
    path("", include("events.api.urls")),
    path("", include("pipelines.api.urls")),
    path("", include("runs.api.urls")),
    path("", include("secretstore.api.urls")),
    path("", include("objectstore.api.urls")),
    path("", include("triggers.api.urls")),
    path("", include("triggers.api.external_urls")),
    path("", include("notifiers.api.urls")),
    path("", include("sandbox.api.urls")),
]

urlpatterns = [
    # Probes and the scrape, at the root where load balancers and Prometheus look (docs/observability.md).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include((api_patterns, "api"))),
]

handler404 = "kernel.api.handlers.not_found"
handler500 = "kernel.api.handlers.server_error"
