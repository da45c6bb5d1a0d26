"""The shared cache's table (kernel/cache.py), created whatever CACHES says now, so that an installation can switch
from Redis to the database cache (or back) without a manual ``createcachetable``."""

from django.core.management import call_command
from django.db import migrations

TABLE = "gofer_cache"


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", TABLE, database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(TABLE)}")


class Migration(migrations.Migration):
    dependencies = []

    operations = [migrations.RunPython(create_cache_table, drop_cache_table, elidable=False)]
