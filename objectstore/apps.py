from django.apps import AppConfig


class ObjectstoreConfig(AppConfig):
    """Pipeline, run and extension objects: blobs on a pluggable backend with key records in the database."""

    name = "objectstore"
    verbose_name = "Object store"

    def ready(self) -> None:
        from objectstore import services
        from pipelines.signals import namespace_deleting, pipeline_deleting

        namespace_deleting.connect(services.on_namespace_deleting, dispatch_uid="objectstore.namespace_deleting")
        pipeline_deleting.connect(services.on_pipeline_deleting, dispatch_uid="objectstore.pipeline_deleting")
