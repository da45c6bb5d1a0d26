import logging

from django.apps import AppConfig


class KernelConfig(AppConfig):
    """What every app stands on: domain errors, identifiers, times, encryption of stored credentials, RBAC
    evaluation and tenant scoping in SQL, the access gate, and the v0 protocol (base view, errors, pagination,
    websockets, flow control). It imports no app."""

    name = "kernel"
    verbose_name = "Gofer kernel"

    def ready(self) -> None:
        # lazy: AppConfig.ready runs after the app registry is built; middleware imports Django's request machinery.
        from kernel.api.middleware import RequestIdLogFilter

        request_logger = logging.getLogger("django.request")
        if not any(isinstance(f, RequestIdLogFilter) for f in request_logger.filters):
            request_logger.addFilter(RequestIdLogFilter())
