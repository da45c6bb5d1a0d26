from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operators' console: the Django admin's branding and the tenancy and through-services mixins."""

    name = "console"
    verbose_name = "Operators' console"

    def ready(self) -> None:
        # lazy: the admin package imports models, which must wait for the app registry.
        from django.contrib import admin

        admin.site.site_header = "Gofer operators' console"
        admin.site.site_title = "Gofer console"
        admin.site.index_title = "Namespaces, pipelines, runs and access"
