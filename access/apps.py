from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Who may do what: tokens, roles, staff access, system preferences, and the access gate every API view and
    websocket consumer goes through."""

    name = "access"
    verbose_name = "Access: tokens and roles"

    def ready(self) -> None:
        # lazy: the gate's modules import models, which exist only once the app registry is ready.
        from access.gate import AccessGate
        from kernel import gate

        gate.install(AccessGate())
