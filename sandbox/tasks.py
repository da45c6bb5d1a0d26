"""Worker entry points of the sandbox. Their dotted paths are a contract with the django-q2 schedule (migration
0002): never rename."""

from sandbox import services


def expire_visitors() -> int:
    return services.expire_visitors()
