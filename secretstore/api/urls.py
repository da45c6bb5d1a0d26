"""secretstore API routes (Gofer v0 paths)."""

from django.urls import path

from secretstore.api import views

SECRETS = "namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>/secrets"

urlpatterns = [
    path(SECRETS, views.PipelineSecretListView.as_view(), name="pipeline-secrets"),
    path(f"{SECRETS}/<str:key>", views.PipelineSecretDetailView.as_view(), name="pipeline-secret"),
    path("secrets/global", views.GlobalSecretListView.as_view(), name="global-secrets"),
    path("secrets/global/<str:key>", views.GlobalSecretDetailView.as_view(), name="global-secret"),
]
