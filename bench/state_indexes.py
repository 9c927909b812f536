"""What the indexes of the sync states and the attempt log cost a push's writes, per 1,000
contacts on one destination: making the states (as a first push does), the claim UPDATE and
the outcome UPDATE (both change the indexed status, so neither is a HOT update), and the
1,000 attempt-log rows. Each step is timed under the indexes as they were before migration
sync 0022 (its four single-column foreign-key indexes put back), before sync 0024 (its
partial indexes made full again) and after it, the layouts alternating in one run; then after
it with the states made already claimed (sync.engine._claim since 0024: no claim UPDATE on a
first push).

    bin/with-postgres .venv/bin/python bench/state_indexes.py [--contacts 200000] [--each]
        [--explain] [--triggers]

`--each` also times each of 0024's indexes made partial alone; `--triggers` the last layout
with the status-count triggers of 0021 off (what they cost); `--explain` prints the plan of
every query that reads the indexes 0024 changed, at this scale. PostgreSQL only (the rows are
generated in SQL, bench/seed_sql.py).
"""

import argparse
import importlib
import time

from common import median, setup_django
from seed_sql import seed_contacts, vacuum

CHUNK = 1_000
# The indexes 0022 dropped: each is the leading column of a wider index that stays.
DROPPED_0022 = [
    ("sync_contactsyncstate", "contact_id"),
    ("sync_contactsyncstate", "destination_id"),
    ("sync_syncattempt", "contact_id"),
    ("sync_syncattempt", "destination_id"),
]
RANGE = "destination_id = %(destination)s AND contact_id BETWEEN %(low)s AND %(high)s"
# untimed: the chunk's states go, so that the next step makes them as a first push does
FORGET = f"DELETE FROM sync_contactsyncstate WHERE {RANGE}"
STEPS = {
    "make": """INSERT INTO sync_contactsyncstate (contact_id, destination_id, remote_id, status,
        skip_reason, last_error, attempts, payload_hash, accepted_email_status,
        confirmation_ref, claimed_by, updated_at)
        SELECT g, %(destination)s, '', 'never', '', '', 0, '', '', '', '', now()
        FROM generate_series(%(low)s, %(high)s) AS g ON CONFLICT DO NOTHING""",
    "make claimed": """INSERT INTO sync_contactsyncstate (contact_id, destination_id,
        remote_id, status, skip_reason, last_error, attempts, payload_hash,
        accepted_email_status, confirmation_ref, claimed_by, claimed_at, updated_at)
        SELECT g, %(destination)s, '', 'in_progress', '', '', 0, '', '', '', 'bench:1:1', now(),
            now()
        FROM generate_series(%(low)s, %(high)s) AS g ON CONFLICT DO NOTHING""",
    "claim": f"""UPDATE sync_contactsyncstate SET status = 'in_progress',
        claimed_by = 'bench:1:1', claimed_at = now(), next_attempt_at = NULL WHERE {RANGE}""",
    "outcome": f"""UPDATE sync_contactsyncstate SET status = 'synced', claimed_by = '',
        claimed_at = NULL, last_attempt_at = now(), last_success_at = now(),
        remote_id = 'R' || contact_id, payload_hash = md5(contact_id::text),
        run_id = %(run)s, updated_at = now() WHERE {RANGE}""",
    "attempts": """INSERT INTO sync_syncattempt (destination_id, contact_id, external_id,
        run_id, trigger, started_at, duration_ms, http_status, request_body, response_excerpt,
        outcome, error)
        SELECT %(destination)s, g, 'bench-' || g, %(run)s, 'action', now(), 1, 200,
            '{"contacts": [{"email": "bench' || g || '@example.com"}]}', '{}', 'updated', ''
        FROM generate_series(%(low)s, %(high)s) AS g""",
}
# The queries that read the indexes 0024 made partial (sync.services, sync.engine), as they
# run; printed with --explain.
EXPLAINED = {
    "retries due (_claim_due pending)": """SELECT s.id FROM sync_contactsyncstate s
        JOIN sync_destination d ON d.id = s.destination_id WHERE s.status = 'pending'
        AND s.next_attempt_at <= now() AND d.enabled AND d.paused_at IS NULL LIMIT 5000""",
    "confirmations due (_claim_due awaiting)": """SELECT s.id FROM sync_contactsyncstate s
        JOIN sync_destination d ON d.id = s.destination_id WHERE s.status = 'awaiting'
        AND s.next_attempt_at <= now() AND d.enabled AND d.paused_at IS NULL LIMIT 5000""",
    "stale claims (retries_enqueue_due)": """SELECT id FROM sync_contactsyncstate
        WHERE destination_id = ANY(%(destinations)s) AND status = 'in_progress'
        AND claimed_at < now() - interval '10 minutes'""",
    "failed to retry (contacts_retry_failed)": """SELECT s.contact_id FROM
        sync_contactsyncstate s JOIN sync_destination d ON d.id = s.destination_id
        WHERE s.status = 'failed' AND d.enabled""",
    "run_finish": """SELECT 1 FROM sync_contactsyncstate WHERE run_id = %(run)s
        AND status IN ('awaiting', 'waiting') LIMIT 1""",
    "run_cancel": """SELECT id FROM sync_contactsyncstate WHERE run_id = %(run)s
        AND status = 'pending' AND next_attempt_at IS NULL""",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chunks", type=int, default=10, help="chunks timed per round")
    parser.add_argument("--each", action="store_true", help="each partial index alone too")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--triggers", action="store_true", help="also without 0021's triggers")
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from sync import connectors
    from sync.models import Destination, SyncRun
    from sync.sandbox import sandbox_destination_fields

    partial = importlib.import_module("sync.migrations.0024_partial_push_indexes")
    destination = None
    for slug in connectors.CONNECTORS:
        made = Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
        destination = destination or made
    run = SyncRun.objects.create(trigger="action", destination=destination)
    with connection.cursor() as cursor:
        seed_contacts(cursor, args.contacts)
    vacuum(connection)

    def layout(with_0022=False, made_partial=(), counted=True):
        def prepare(cursor):
            # the status-count triggers of migration 0021, off only to time what they cost
            switch = "ENABLE" if counted else "DISABLE"
            cursor.execute(f"ALTER TABLE sync_contactsyncstate {switch} TRIGGER USER")
            for table, column in DROPPED_0022:
                name = f"bench_{table}_{column}"
                if with_0022:
                    cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
                else:
                    cursor.execute(f"DROP INDEX IF EXISTS {name}")
            for table, name, columns, where in partial.PARTIAL:
                for old in partial.full_indexes(connection, table, columns):
                    cursor.execute(f'DROP INDEX "{old}"')
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                if name in made_partial:
                    sqls = partial.partial_sql(table, name, columns, where)
                else:
                    sqls = partial.full_sql(table, columns)
                for sql in sqls:
                    cursor.execute(sql)

        return prepare

    first_push = [step for step in STEPS if step != "make claimed"]  # as before sync.engine
    made_claimed = [step for step in STEPS if step not in ("make", "claim")]  # made claimed
    every = [entry[1] for entry in partial.PARTIAL]
    layouts = {  # name: (the indexes, the steps of a first push)
        "before 0022": (layout(with_0022=True), first_push),
        "before 0024": (layout(), first_push),
        "after 0024": (layout(made_partial=every), first_push),
        "after 0024, states made claimed": (layout(made_partial=every), made_claimed),
    }
    if args.triggers:
        layouts["the same without the count triggers"] = (
            layout(made_partial=every, counted=False),
            made_claimed,
        )
    if args.each:
        for name in every:
            layouts[f"only {name} partial"] = (layout(made_partial=[name]), first_push)

    low = 1
    times = {name: {step: [] for step in STEPS} for name in layouts}
    for _ in range(args.rounds):
        for name, (prepare, steps) in layouts.items():
            with connection.cursor() as cursor:
                prepare(cursor)
                cursor.execute("VACUUM sync_contactsyncstate")
            chunk_times = {step: [] for step in steps}
            for _ in range(args.chunks):
                high = low + CHUNK - 1
                params = {"destination": destination.pk, "run": run.pk, "low": low, "high": high}
                with connection.cursor() as cursor:
                    cursor.execute(FORGET, params)
                    for step in steps:
                        sql = STEPS[step]
                        started = time.perf_counter()
                        cursor.execute(sql, params)
                        chunk_times[step].append(time.perf_counter() - started)
                low = high + 1 if high + CHUNK < args.contacts else 1
            for step in STEPS:  # a step this flow leaves out takes no time
                times[name][step].append(median(chunk_times.get(step) or [0.0]))

    print(
        f"a push's writes per {CHUNK:,} contacts ({args.contacts:,} contacts x 4 destinations, "
        f"{args.rounds} rounds of {args.chunks} chunks), median ms:"
    )
    print(f"{'indexes':<38}" + "".join(f"{step:>13}" for step in STEPS) + f"{'total':>10}")
    base = None
    for name, steps in times.items():
        medians = [median(values) * 1000 for values in steps.values()]
        total = sum(medians)
        base = total if name == "before 0024" else base
        row = f"{name:<38}" + "".join(f"{m:>13.1f}" for m in medians) + f"{total:>10.1f}"
        print(row + (f"   {total / base:.2f} of before 0024" if base else ""))
    if args.explain:
        with connection.cursor() as cursor:
            layouts["after 0024"][0](cursor)
        destinations = list(Destination.objects.values_list("pk", flat=True))
        explain(connection, {"run": run.pk, "destinations": destinations})


def explain(connection, params):
    """Each query's plan at this scale, its time and the indexes it reads (after 0024)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        for label, sql in EXPLAINED.items():
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
            print(f"\n{label}:")
            for line in plan:
                print(f"    {line}")


if __name__ == "__main__":
    main()
