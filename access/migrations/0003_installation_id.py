import uuid

from django.db import migrations, models


def give_each_installation_its_own_id(apps, schema_editor):
    # AddField gives every existing row the same default; there is one row, but make sure it is a fresh value.
    SystemPreferences = apps.get_model("access", "SystemPreferences")
    for prefs in SystemPreferences.objects.all():
        prefs.installation_id = uuid.uuid4()
        prefs.save(update_fields=["installation_id"])


class Migration(migrations.Migration):
    dependencies = [("access", "0002_system_roles")]

    operations = [
        migrations.AddField(
            model_name="systempreferences",
            name="installation_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False),
        ),
        migrations.RunPython(give_each_installation_its_own_id, migrations.RunPython.noop),
    ]
