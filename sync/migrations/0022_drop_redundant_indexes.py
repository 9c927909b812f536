# Drops the single-column indexes Django made for four foreign keys, each the leading column of
# a wider index that serves the same lookups and cascades:
#   sync_contactsyncstate.contact_id      by sync_state_unique (contact_id, destination_id)
#   sync_contactsyncstate.destination_id  by sync_state_dest_status (destination_id, status)
#   sync_syncattempt.contact_id           by attempt_contact_recent (contact_id, started_at)
#   sync_syncattempt.destination_id       by attempt_dest_recent (destination_id, started_at)
# A push's claim and outcome UPDATEs change the indexed status, so neither is a HOT update and
# every index of the state gets a new entry twice a push; each attempt row is an entry in
# every index of the log. Two indexes fewer on each table is that much less to write.
#
# The indexes are dropped by name, found by introspection, not by AlterField: Django alters a
# SQLite table by re-creating it, which would also drop the status-count triggers of 0021.

import django.db.models.deletion
from django.db import migrations, models

REDUNDANT = [
    ("sync_contactsyncstate", "contact_id"),
    ("sync_contactsyncstate", "destination_id"),
    ("sync_syncattempt", "contact_id"),
    ("sync_syncattempt", "destination_id"),
]


def _single_column_indexes(schema_editor, table, column):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and info["columns"] == [column]
        and not info["unique"]
        and not info["primary_key"]
    ]


def drop(apps, schema_editor):
    for table, column in REDUNDANT:
        for name in _single_column_indexes(schema_editor, table, column):
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def create(apps, schema_editor):
    for table, column in REDUNDANT:
        if not _single_column_indexes(schema_editor, table, column):
            name = schema_editor.quote_name(f"{table}_{column}_idx")
            quoted = f"{schema_editor.quote_name(table)} ({schema_editor.quote_name(column)})"
            schema_editor.execute(f"CREATE INDEX {name} ON {quoted}")


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0021_status_counts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop, create)],
            state_operations=[
                migrations.AlterField(
                    model_name="contactsyncstate",
                    name="contact",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sync_states",
                        to="contacts.contact",
                    ),
                ),
                migrations.AlterField(
                    model_name="contactsyncstate",
                    name="destination",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sync_states",
                        to="sync.destination",
                    ),
                ),
                migrations.AlterField(
                    model_name="syncattempt",
                    name="contact",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="sync_attempts",
                        to="contacts.contact",
                    ),
                ),
                migrations.AlterField(
                    model_name="syncattempt",
                    name="destination",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempts",
                        to="sync.destination",
                    ),
                ),
            ],
        ),
    ]
