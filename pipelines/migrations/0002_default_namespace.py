"""Create the ``default`` namespace, which Gofer always has."""

from django.db import migrations


def create_default_namespace(apps, schema_editor):
    Namespace = apps.get_model("pipelines", "Namespace")
    Namespace.objects.get_or_create(id="default", defaults={"name": "Default", "description": "The default namespace."})


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0001_initial")]

    operations = [migrations.RunPython(create_default_namespace, migrations.RunPython.noop)]
