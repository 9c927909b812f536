"""What the single-column foreign-key indexes dropped by migration sync 0022 cost a push's
writes: per 1,000 states, the claim UPDATE and the outcome UPDATE (both change the indexed
status, so neither is a HOT update) and the 1,000 attempt-log rows, timed with those four
indexes put back (the baseline, as before 0022) and without them, alternating in one run.

    bin/with-postgres .venv/bin/python bench/state_indexes.py [--contacts 200000]

PostgreSQL only (the rows are generated in SQL, bench/seed_sql.py).
"""

import argparse
import time

from common import median, setup_django
from seed_sql import seed_contacts, vacuum

CHUNK = 1_000
# The indexes 0022 dropped: each is the leading column of a wider index that stays.
DROPPED = [
    ("sync_contactsyncstate", "contact_id"),
    ("sync_contactsyncstate", "destination_id"),
    ("sync_syncattempt", "contact_id"),
    ("sync_syncattempt", "destination_id"),
]
CLAIM = """UPDATE sync_contactsyncstate SET status = 'pending', claimed_by = 'bench',
    claimed_at = now() WHERE destination_id = %s AND contact_id BETWEEN %s AND %s"""
OUTCOME = """UPDATE sync_contactsyncstate SET status = 'synced', claimed_by = '',
    claimed_at = NULL, last_success_at = now(), payload_hash = md5(random()::text)
    WHERE destination_id = %s AND contact_id BETWEEN %s AND %s"""
ATTEMPTS = """INSERT INTO sync_syncattempt (destination_id, contact_id, external_id, trigger,
    started_at, duration_ms, http_status, request_body, response_excerpt, outcome, error)
    SELECT %s, g, 'bench-' || g, 'action', now(), 1, 200, '{}', '{}', 'updated', ''
    FROM generate_series(%s, %s) AS g"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chunks", type=int, default=10, help="chunks timed per round")
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from sync import connectors
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    destination = None
    for slug in connectors.CONNECTORS:
        made = Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
        destination = destination or made
    with connection.cursor() as cursor:
        seed_contacts(cursor, args.contacts)
    vacuum(connection)

    def put_back(cursor):
        for table, column in DROPPED:
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS bench_{table}_{column} ON {table} ({column})"
            )

    def leave_out(cursor):
        for table, column in DROPPED:
            cursor.execute(f"DROP INDEX IF EXISTS bench_{table}_{column}")

    low = 1
    medians = {put_back: [], leave_out: []}
    for _ in range(args.rounds):
        for prepare, times in medians.items():
            with connection.cursor() as cursor:
                prepare(cursor)
            chunk_times = []
            for _ in range(args.chunks):
                high = low + CHUNK - 1
                started = time.perf_counter()
                with connection.cursor() as cursor:
                    for sql in (CLAIM, OUTCOME, ATTEMPTS):
                        cursor.execute(sql, [destination.pk, low, high])
                chunk_times.append(time.perf_counter() - started)
                low = high + 1 if high + CHUNK < args.contacts else 1
            times.append(median(chunk_times))
    (before, after) = (median(times) for times in medians.values())
    print(
        f"a push's writes per {CHUNK:,} states ({args.contacts:,} contacts x 4 destinations, "
        f"{args.rounds} rounds): with the four FK indexes {before * 1000:.1f} ms, without "
        f"{after * 1000:.1f} ms: {after / before:.2f} of the baseline"
    )


if __name__ == "__main__":
    main()
