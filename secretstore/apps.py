from django.apps import AppConfig


class SecretstoreConfig(AppConfig):
    """Pipeline and global secrets (encrypted at rest or in Vault) and the encryption of every stored credential."""

    name = "secretstore"
    verbose_name = "Secret store"

    def ready(self) -> None:
        # lazy: these modules import models, which exist only once the app registry is ready.
        from kernel import references
        from pipelines import quotas
        from pipelines.signals import namespace_deleting, pipeline_deleting
        from secretstore import checks, resolvers, services  # noqa: F401 - checks registers the configuration check
        from secretstore.receivers import release_namespace_secrets, release_pipeline_secrets

        quotas.register_usage("secrets", services.count_namespace_secrets)
        references.register(references.ReferenceKind.PIPELINE_SECRET, resolvers.pipeline_secret)
        references.register(references.ReferenceKind.GLOBAL_SECRET, resolvers.global_secret)

        namespace_deleting.connect(release_namespace_secrets, dispatch_uid="secretstore.release_namespace_secrets")
        pipeline_deleting.connect(release_pipeline_secrets, dispatch_uid="secretstore.release_pipeline_secrets")
