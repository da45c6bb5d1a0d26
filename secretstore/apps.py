from django.apps import AppConfig


class SecretstoreConfig(AppConfig):
    """Pipeline and global secrets (encrypted at rest or in Vault) and the encryption of every stored credential."""

    name = "secretstore"
    verbose_name = "Secret store"
