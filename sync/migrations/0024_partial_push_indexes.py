# PostgreSQL only: two indexes a bulk push writes on every contact become partial, holding
# only the states their queries look for. A claim and an outcome both change a state's
# indexed status, so neither UPDATE is HOT: the new row version gets an entry in every index
# whose condition it meets (a partial index skips rows outside its WHERE).
#
#   sync_state_due (status, next_attempt_at): read by status without a destination only for
#       pending and awaiting states whose next attempt is due (sync.services._claim_due);
#       claimed states are taken back per destination (retries_enqueue_due), failed ones
#       retried through the join on their destination (contacts_retry_failed): every other
#       lookup by status names the destination and uses sync_state_dest_status.
#   the states' run_id: read only for a run's pending states (run_cancel) and those awaiting
#       a platform or a paused destination (run_finish).
#
# So a claimed state (in progress), a synced, unchanged, skipped or failed one, and a new one
# (never pushed) enter neither. Left alone: the primary key, the unique (contact,
# destination), and (destination, status) that every destination's status filter reads. The
# attempt log's indexes were measured too (bench/state_indexes.py): its run index made
# partial (failed attempts only, what the run page reads) saved nothing measurable, since a
# chunk's rows share one run and go to one leaf page; its others each serve a page or a
# delete (by contact, by destination, by time, by user).
#
# The cost: deleting a run (a superuser can, in the admin) unlinks its states by reading the
# states' table whole.
#
# SQLite keeps the full indexes: its planner uses a partial index only where the query repeats
# the index's condition, which `status = 'pending'` against `status IN (…)` does not. Django's
# model state is left as it was (as for 0021's triggers): the index names it knows are kept
# (sync_state_due) or found by introspection (the foreign keys'), so a later migration that
# drops them still finds them.

from django.db import migrations

STATES = "sync_contactsyncstate"

# (table, index name, its columns, before this migration, after it: the WHERE of the partial
# index). The foreign keys' indexes were named by Django (found by introspection to drop);
# put back by `reverse`, they take the name given here.
PARTIAL = [
    (
        STATES,
        "sync_state_due",
        "status, next_attempt_at",
        "status IN ('pending', 'awaiting')",
    ),
    (STATES, "sync_state_run_owed", "run_id", "status IN ('pending', 'waiting', 'awaiting')"),
]
FULL_NAMES = {  # what a full index of these columns is called before this migration
    (STATES, "status, next_attempt_at"): "sync_state_due",
    (STATES, "run_id"): f"{STATES}_run_id_idx",
}


def full_indexes(connection, table, columns) -> list[str]:
    """The names of the full (not partial, not unique) indexes of exactly these columns."""
    wanted = [c.strip() for c in columns.split(",")]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass "
            "AND indpred IS NULL AND NOT indisunique",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
        constraints = connection.introspection.get_constraints(cursor, table)
    return [name for name in names if constraints.get(name, {}).get("columns") == wanted]


def partial_sql(table, name, columns, where) -> list[str]:
    return [f"CREATE INDEX {name} ON {table} ({columns}) WHERE {where}"]


def full_sql(table, columns) -> list[str]:
    name = FULL_NAMES[(table, columns)]
    return [f"CREATE INDEX {name} ON {table} ({columns})"]


def make_partial(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    for table, name, columns, where in PARTIAL:
        for old in full_indexes(connection, table, columns):
            schema_editor.execute(f'DROP INDEX "{old}"')
        for sql in partial_sql(table, name, columns, where):
            schema_editor.execute(sql)


def make_full(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    for table, name, columns, _ in PARTIAL:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        for sql in full_sql(table, columns):
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0023_run_planning"),
    ]

    operations = [migrations.RunPython(make_partial, make_full)]
