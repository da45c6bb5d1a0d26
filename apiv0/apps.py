from django.apps import AppConfig


class Apiv0Config(AppConfig):
    """Gofer's v0 REST protocol: version header, error envelope, request ids, pagination and the base view."""

    name = "apiv0"
    verbose_name = "API v0 protocol"
