"""Create (or reset) the system roles bootstrap, admin, user and anonymous, and the system preferences row."""

from django.db import migrations

from access.system_roles import SYSTEM_ROLE_PERMISSIONS


def create_system_roles(apps, schema_editor):
    Role = apps.get_model("access", "Role")
    for role_id, (description, permissions) in SYSTEM_ROLE_PERMISSIONS.items():
        Role.objects.update_or_create(
            id=str(role_id),
            defaults={"description": description, "permissions": permissions, "system_role": True},
        )
    SystemPreferences = apps.get_model("access", "SystemPreferences")
    SystemPreferences.objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("access", "0001_initial")]

    operations = [migrations.RunPython(create_system_roles, migrations.RunPython.noop)]
