from django.urls import path

from pipelines.api import views

NS = "namespaces/<str:namespace_id>"
P = f"{NS}/pipelines/<str:pipeline_id>"

urlpatterns = [
    path("namespaces", views.NamespaceListView.as_view(), name="namespaces"),
    path(NS, views.NamespaceDetailView.as_view(), name="namespace"),
    path(f"{NS}/quotas", views.NamespaceQuotasView.as_view(), name="namespace-quotas"),
    path(f"{NS}/pipelines", views.PipelineListView.as_view(), name="pipelines"),
    path(P, views.PipelineDetailView.as_view(), name="pipeline"),
    path(f"{P}/configs", views.ConfigListView.as_view(), name="configs"),
    path(f"{P}/configs/<str:version>", views.ConfigDetailView.as_view(), name="config"),
    path(f"{P}/deployments", views.DeploymentListView.as_view(), name="deployments"),
    path(f"{P}/deployments/<str:deployment_id>", views.DeploymentDetailView.as_view(), name="deployment"),
]
