from django.apps import AppConfig


class SecretstoreConfig(AppConfig):
    """Pipeline and global secrets (encrypted at rest or in Vault) and the encryption of every stored credential."""

    name = "secretstore"
    verbose_name = "Secret store"

    def ready(self) -> None:
        from pipelines.signals import namespace_deleting, pipeline_deleting
        from secretstore import checks  # noqa: F401 - registers the configuration check
        from secretstore.receivers import release_namespace_secrets, release_pipeline_secrets

        namespace_deleting.connect(release_namespace_secrets, dispatch_uid="secretstore.release_namespace_secrets")
        pipeline_deleting.connect(release_pipeline_secrets, dispatch_uid="secretstore.release_pipeline_secrets")
