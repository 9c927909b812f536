"""The sync dashboard at scale: 100,000 contacts with a state on four destinations and
1,000,000 attempt-log rows spread over 30 days, against a small baseline in the same run.

    bin/with-postgres .venv/bin/python bench/dashboard.py [--contacts 100000 --attempts 1000000]

Prints the dashboard's query count and median render time at both sizes. PostgreSQL only
(the rows are generated in SQL).
"""

import argparse
import time

from common import median, setup_django


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from contacts.demo import seed_demo_contacts
    from sync import connectors
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    for slug in connectors.CONNECTORS:
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "bench-123456"))

    def measure():
        client.get("/admin/sync/dashboard/")
        executed = []

        def count(execute, sql, params, many, context):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            client.get("/admin/sync/dashboard/")
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            assert client.get("/admin/sync/dashboard/").status_code == 200
            times.append(time.perf_counter() - started)
        return len(executed), median(times)

    seed_demo_contacts(1000)
    _fill(connection, attempts=10_000)
    small = measure()
    seed_demo_contacts(args.contacts - 1000)
    _fill(connection, attempts=args.attempts - 10_000)
    big = measure()
    print(
        f"dashboard at 1,000 contacts / 10,000 attempts: {small[0]} queries, "
        f"median {small[1] * 1000:.0f} ms"
    )
    print(
        f"dashboard at {args.contacts:,} contacts x 4 destinations / {args.attempts:,} "
        f"attempts: {big[0]} queries, median {big[1] * 1000:.0f} ms"
    )


def _fill(connection, *, attempts):
    """A state per contact and destination where none exists; `attempts` log rows over the
    last 30 days, mostly successes, some failures with a handful of messages."""
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO sync_contactsyncstate (contact_id, destination_id, remote_id, status,
                skip_reason, last_error, attempts, payload_hash, accepted_email_status,
                claimed_by, updated_at)
            SELECT c.id, d.id, 'R' || c.id,
                CASE WHEN mod(c.id, 20) = 0 THEN 'failed' ELSE 'synced' END,
                '', CASE WHEN mod(c.id, 20) = 0 THEN 'HTTP 400: error ' || mod(c.id, 7) ELSE '' END,
                0, '', '', '', now()
            FROM contacts_contact c CROSS JOIN sync_destination d
            WHERE NOT EXISTS (SELECT 1 FROM sync_contactsyncstate s
                              WHERE s.contact_id = c.id AND s.destination_id = d.id)
        """)
        cursor.execute(
            """
            INSERT INTO sync_syncattempt (destination_id, contact_id, external_id, trigger,
                started_at, duration_ms, http_status, request_body, response_excerpt, outcome,
                error)
            SELECT (SELECT min(id) FROM sync_destination) + mod(g, 4), NULL, 'ct-' || g, 'action',
                now() - mod(g, 30 * 24 * 60) * interval '1 minute', 12, 200, '{}', '{}',
                CASE WHEN mod(g, 25) = 0 THEN 'failed' ELSE 'updated' END,
                CASE WHEN mod(g, 25) = 0 THEN 'HTTP 400: error ' || mod(g, 7) ELSE '' END
            FROM generate_series(1, %s) AS g
        """,
            [attempts],
        )
        cursor.execute("ANALYZE")


if __name__ == "__main__":
    main()
