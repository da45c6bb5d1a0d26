import logging

from django.apps import AppConfig


class Apiv0Config(AppConfig):
    """Gofer's v0 REST protocol: version header, error envelope, request ids, pagination and the base view."""

    name = "apiv0"
    verbose_name = "API v0 protocol"

    def ready(self) -> None:
        from apiv0.middleware import RequestIdLogFilter

        request_logger = logging.getLogger("django.request")
        if not any(isinstance(f, RequestIdLogFilter) for f in request_logger.filters):
            request_logger.addFilter(RequestIdLogFilter())
