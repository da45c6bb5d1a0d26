"""The URL conf of the separate external listener (``GOFER_EXTERNAL_BIND``, Gofer's second port): only
``/api/external/...``, so that the address exposed to the internet for webhooks serves nothing else."""

from django.urls import include, path

urlpatterns = [path("api/", include(("triggers.api.external_urls", "api")))]

handler404 = "kernel.api.handlers.not_found"
handler500 = "kernel.api.handlers.server_error"
