"""Schedule the expiry of sandbox visitors (sandbox.tasks.expire_visitors) every minute in django-q2's scheduler."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="gofer-sandbox-expiry",
        defaults={"func": "sandbox.tasks.expire_visitors", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="gofer-sandbox-expiry").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sandbox", "0001_visitors"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
