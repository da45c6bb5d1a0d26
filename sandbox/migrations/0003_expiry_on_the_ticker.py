"""The expiry of sandbox visitors moves from django-q2's scheduler to the triggers ticker's periodic work
(sandbox.services.expire_periodically): a queued message a minute cost about seven SQL statements, idle."""

from django.db import migrations


def forwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="gofer-sandbox-expiry").delete()


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="gofer-sandbox-expiry",
        defaults={"func": "sandbox.tasks.expire_visitors", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("sandbox", "0002_expiry_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
