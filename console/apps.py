from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operators' console: the Django admin's branding and the tenancy and through-services mixins."""

    name = "console"
    verbose_name = "Operators' console"

    def ready(self) -> None:
        # lazy: the admin package imports models, which must wait for the app registry.
        from django.contrib import admin
        from django.contrib.auth.signals import user_login_failed

        from kernel.api import ratelimits

        admin.site.site_header = "Gofer operators' console"
        admin.site.site_title = "Gofer console"
        admin.site.index_title = "Namespaces, pipelines, runs and access"
        # Lockout after repeated failed logins from one address (GOFER_RATELIMIT_ADMIN_LOGIN). The URLs are built
        # after ready(), so they take the wrapped view.
        if not getattr(admin.site.login, "gofer_lockout", False):
            admin.site.login = ratelimits.login_lockout(admin.site.login)
            admin.site.login.gofer_lockout = True
        user_login_failed.connect(ratelimits.count_failed_login, dispatch_uid="gofer.count_failed_login")
