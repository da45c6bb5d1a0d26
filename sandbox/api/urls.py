from django.urls import path

from sandbox.api import views

urlpatterns = [
    path("sandbox", views.SandboxView.as_view(), name="sandbox"),
]
