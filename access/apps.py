from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Who may do what: tokens, roles, permission checks and the tenant-scoped lookups every view goes through."""

    name = "access"
    verbose_name = "Access: tokens and roles"
