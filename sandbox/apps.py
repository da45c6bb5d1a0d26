from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The public sandbox's visitors: a namespace and a token each, deleted when they expire (docs/sandbox.md)."""

    name = "sandbox"
    verbose_name = "Sandbox visitors"

    def ready(self) -> None:
        # lazy: the services import models, which exist only once the app registry is ready.
        from access import services as access
        from access.choices import TokenKind
        from sandbox import services
        from triggers import ticker

        access.register_principal_factory(TokenKind.SANDBOX, services.principal_for_visitor)
        # Expiry: run by the ticker's holder on the workers (one process of the installation), no queue message.
        ticker.register_periodic(services.expire_periodically)
