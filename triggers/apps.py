from django.apps import AppConfig


class TriggersConfig(AppConfig):
    """What starts runs besides the API: extensions (built-in interval, cron, webhook, github, and third-party
    services speaking Gofer's extension protocol) and the pipelines' subscriptions to them."""

    name = "triggers"
    verbose_name = "Triggers: extensions and subscriptions"

    def ready(self) -> None:
        # lazy: these modules import models, which exist only once the app registry is ready.
        from django.db.models.signals import post_migrate
        from django_q.signals import post_spawn

        from access import services as access
        from access.choices import TokenKind
        from objectstore import services as objects
        from pipelines.signals import namespace_deleting, pipeline_deleting
        from triggers import receivers, ticker

        # The ticker runs in worker processes (triggers/ticker.py).
        post_spawn.connect(ticker.on_worker_spawned, dispatch_uid="triggers.ticker")
        post_migrate.connect(receivers.on_post_migrate, sender=self, dispatch_uid="triggers.builtins")
        # An extension's token is scoped to its own subscriptions, which only this app knows (docs/extensions.md).
        access.register_principal_factory(TokenKind.EXTENSION, receivers.extension_principal)
        # The object store serves /api/extensions/{id}/objects for installed extensions only.
        objects.set_extension_registry(receivers.extension_is_installed)
        pipeline_deleting.connect(receivers.on_pipeline_deleting, dispatch_uid="triggers.pipeline_deleting")
        namespace_deleting.connect(receivers.on_namespace_deleting, dispatch_uid="triggers.namespace_deleting")
