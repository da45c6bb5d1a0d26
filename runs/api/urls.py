from django.urls import path

from runs.api import views

RUNS = "namespaces/<str:namespace_id>/pipelines/<str:pipeline_id>/runs"
RUN = f"{RUNS}/<str:run_id>"

urlpatterns = [
    path(RUNS, views.RunListView.as_view(), name="runs"),
    path(RUN, views.RunDetailView.as_view(), name="run"),
    path(f"{RUN}/timeline", views.RunTimelineView.as_view(), name="run-timeline"),
    path(f"{RUN}/tasks", views.TaskExecutionListView.as_view(), name="task-executions"),
    path(f"{RUN}/tasks/<str:task_id>", views.TaskExecutionDetailView.as_view(), name="task-execution"),
    path(f"{RUN}/tasks/<str:task_id>/logs", views.TaskLogsView.as_view(), name="task-logs"),
]
