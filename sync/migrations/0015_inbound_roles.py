from django.db import migrations


def update_roles(apps, schema_editor):
    """The roles that read the sync logs read the inbound events too (sync.roles)."""
    from sync.roles import sync_roles

    sync_roles(apps, missing_ok=True)  # a later model's permissions: its own migration


class Migration(migrations.Migration):
    dependencies = [("sync", "0014_inbound"), ("contacts", "0006_consent_ledger")]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
