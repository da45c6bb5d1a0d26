"""Websocket routes of the runs app (same paths as Gofer v0)."""

from django.urls import path

from runs import consumers

TASK = "api/namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>/runs/<str:run_id>/tasks/<str:task_id>"

websocket_urlpatterns = [
    path(f"{TASK}/logs", consumers.TaskLogsConsumer.as_asgi()),
    path(f"{TASK}/attach", consumers.TaskAttachConsumer.as_asgi()),
]
