from django.apps import AppConfig


class ObjectstoreConfig(AppConfig):
    """Pipeline, run and extension objects: blobs on a pluggable backend with key records in the database."""

    name = "objectstore"
    verbose_name = "Object store"
