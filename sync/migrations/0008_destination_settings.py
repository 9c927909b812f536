"""Platform settings move from columns to one JSON object the connector declares
(sync/connectors/declarations.py): Cendyn's account ID and region, iVvy's region and
updateIfExists. Existing rows and their history keep their values."""

from django.db import migrations, models

# Which platform kept which column (what each connector declared when this was written).
MOVED = {
    "cendyn": ("account_id", "region"),
    "ivvy": ("region", "update_if_exists"),
}


def columns_to_settings(apps, schema_editor):
    for model_name in ("Destination", "HistoricalDestination"):
        model = apps.get_model("sync", model_name)
        for row in model.objects.all():
            names = MOVED.get(row.platform, ())
            row.settings = {name: getattr(row, name) for name in names}
            row.save(update_fields=["settings"])


def settings_to_columns(apps, schema_editor):
    for model_name in ("Destination", "HistoricalDestination"):
        model = apps.get_model("sync", model_name)
        for row in model.objects.all():
            for name in MOVED.get(row.platform, ()):
                if name in (row.settings or {}):
                    setattr(row, name, row.settings[name])
            row.save()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0007_credential_variable_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="destination",
            name="settings",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The platform's own settings, as its connector declares them.",
            ),
        ),
        migrations.AddField(
            model_name="historicaldestination",
            name="settings",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The platform's own settings, as its connector declares them.",
            ),
        ),
        migrations.AlterField(
            model_name="destination",
            name="key_env",
            field=models.CharField(
                blank=True,
                help_text="Name of the environment variable holding the platform's key or secret.",
                max_length=100,
                verbose_name="credential variable",
            ),
        ),
        migrations.AlterField(
            model_name="destination",
            name="secret_env",
            field=models.CharField(
                blank=True,
                help_text="Name of the environment variable holding a second secret, where the platform needs one.",
                max_length=100,
                verbose_name="second credential variable",
            ),
        ),
        migrations.AlterField(
            model_name="historicaldestination",
            name="key_env",
            field=models.CharField(
                blank=True,
                help_text="Name of the environment variable holding the platform's key or secret.",
                max_length=100,
                verbose_name="credential variable",
            ),
        ),
        migrations.AlterField(
            model_name="historicaldestination",
            name="secret_env",
            field=models.CharField(
                blank=True,
                help_text="Name of the environment variable holding a second secret, where the platform needs one.",
                max_length=100,
                verbose_name="second credential variable",
            ),
        ),
        migrations.RunPython(columns_to_settings, settings_to_columns),
        migrations.RemoveField(
            model_name="destination",
            name="account_id",
        ),
        migrations.RemoveField(
            model_name="destination",
            name="region",
        ),
        migrations.RemoveField(
            model_name="destination",
            name="update_if_exists",
        ),
        migrations.RemoveField(
            model_name="historicaldestination",
            name="account_id",
        ),
        migrations.RemoveField(
            model_name="historicaldestination",
            name="region",
        ),
        migrations.RemoveField(
            model_name="historicaldestination",
            name="update_if_exists",
        ),
    ]
