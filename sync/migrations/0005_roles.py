from django.db import migrations


def create_roles(apps, schema_editor):
    from sync.roles import sync_roles

    sync_roles(apps, missing_ok=True)  # later models' permissions: their migrations


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0004_dashboard"),
        ("contacts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
