"""The sandbox's demo credential variables get the names the outbound policy allows
(sync/policy.py: SYNC_CREDENTIAL_…). Other names are left as they are: a destination whose
variables the policy refuses is stopped at push time with a destination-wide error."""

from django.db import migrations

RENAMED = {
    "YESPO_API_KEY": "SYNC_CREDENTIAL_YESPO_API_KEY",
    "IVVY_API_KEY": "SYNC_CREDENTIAL_IVVY_API_KEY",
    "IVVY_API_SECRET": "SYNC_CREDENTIAL_IVVY_API_SECRET",
    "CENDYN_SECRET": "SYNC_CREDENTIAL_CENDYN_SECRET",
    "LOOPS_API_KEY": "SYNC_CREDENTIAL_LOOPS_API_KEY",
}


def rename(apps, schema_editor, names):
    Destination = apps.get_model("sync", "Destination")
    for field in ("key_env", "secret_env"):
        for old, new in names.items():
            Destination.objects.filter(**{field: old}).update(**{field: new})


class Migration(migrations.Migration):
    dependencies = [("sync", "0006_destination_history")]

    operations = [
        migrations.RunPython(
            lambda apps, editor: rename(apps, editor, RENAMED),
            lambda apps, editor: rename(apps, editor, {v: k for k, v in RENAMED.items()}),
        )
    ]
