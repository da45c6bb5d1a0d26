from django.apps import AppConfig


class ObjectstoreConfig(AppConfig):
    """Pipeline, run and extension objects: blobs on a pluggable backend with key records in the database."""

    name = "objectstore"
    verbose_name = "Object store"

    def ready(self) -> None:
        # lazy: these modules import models, which exist only once the app registry is ready.
        from kernel import references
        from objectstore import resolvers, services
        from pipelines import quotas
        from pipelines.signals import namespace_deleting, pipeline_deleting
        from runs.signals import run_admitted

        quotas.register_usage("object_bytes", services.namespace_object_bytes)
        references.register(references.ReferenceKind.PIPELINE_OBJECT, resolvers.pipeline_object)
        references.register(references.ReferenceKind.RUN_OBJECT, resolvers.run_object)
        run_admitted.connect(services.on_run_admitted, dispatch_uid="objectstore.run_admitted")

        namespace_deleting.connect(services.on_namespace_deleting, dispatch_uid="objectstore.namespace_deleting")
        pipeline_deleting.connect(services.on_pipeline_deleting, dispatch_uid="objectstore.pipeline_deleting")
