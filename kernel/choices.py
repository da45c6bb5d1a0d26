"""Actions, resources and system roles of Gofer's RBAC: what every route's access rule is written in."""

from django.db import models


class Action(models.TextChoices):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"


class Resource(models.TextChoices):
    """What a permission applies to. Targeted resources carry a regex: ``pipelines:^web-.*``."""

    ALL = "all"
    # Attach (an interactive command in a running task's container, which can read its secrets): ``write`` on it is
    # needed on top of write on runs and task executions. Only admins (``all``) have it by default; never run tokens.
    ATTACH = "attach"
    CONFIGS = "configs"
    DEPLOYMENTS = "deployments"
    EVENTS = "events"
    EXTENSIONS = "extensions"
    NAMESPACES = "namespaces"
    OBJECTS = "objects"
    PERMISSIONS = "permissions"
    PIPELINES = "pipelines"
    RUNS = "runs"
    SECRETS = "secrets"
    SUBSCRIPTIONS = "subscriptions"
    SYSTEM = "system"
    TASK_EXECUTIONS = "task_executions"
    TOKENS = "tokens"


TARGETED_RESOURCES = frozenset({Resource.NAMESPACES, Resource.PIPELINES, Resource.EXTENSIONS})


class SystemRole(models.TextChoices):
    BOOTSTRAP = "bootstrap"
    ADMIN = "admin"
    USER = "user"
    ANONYMOUS = "anonymous"


ADMIN_ROLES = frozenset({SystemRole.BOOTSTRAP, SystemRole.ADMIN})
