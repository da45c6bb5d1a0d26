"""Object store routes (Gofer v0 paths): pipeline, run and extension objects."""

from django.urls import path

from objectstore.api import views

PIPELINE = "namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>"
RUN = f"{PIPELINE}/runs/<str:run_id>"
EXTENSION = "extensions/<str:extension_id>"

urlpatterns = [
    path(f"{PIPELINE}/objects", views.PipelineObjectListView.as_view(), name="pipeline-objects"),
    path(f"{PIPELINE}/objects/<str:key>", views.PipelineObjectDetailView.as_view(), name="pipeline-object"),
    path(f"{RUN}/objects", views.RunObjectListView.as_view(), name="run-objects"),
    path(f"{RUN}/objects/<str:key>", views.RunObjectDetailView.as_view(), name="run-object"),
    path(f"{EXTENSION}/objects", views.ExtensionObjectListView.as_view(), name="extension-objects"),
    path(f"{EXTENSION}/objects/<str:key>", views.ExtensionObjectDetailView.as_view(), name="extension-object"),
]
