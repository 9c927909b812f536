"""The sync dashboard at scale: contacts with a state on four destinations and an attempt log
spread over 30 days, against a small baseline (1,000 contacts, 10,000 attempts) in the same run.

    bin/with-postgres .venv/bin/python bench/dashboard.py [--contacts 100000 --attempts 10000000]

Prints the dashboard's query count and median render time at both sizes, the render before
the scheduler stored the week's settled hours (PushesPerHour) and the time it took to.
Targets: the same number of queries at both sizes; at most 300 ms with 10,000,000 attempts,
500 ms with 1,000,000 contacts. PostgreSQL only (rows are generated in SQL, bench/seed_sql.py).
"""

import argparse
import time

from common import median, setup_django
from seed_sql import seed_attempts, seed_contacts, vacuum


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from sync import connectors, services
    from sync.models import Destination, PushesPerHour
    from sync.sandbox import sandbox_destination_fields

    for slug in connectors.CONNECTORS:
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "bench-123456"))

    def render():
        started = time.perf_counter()
        assert client.get("/admin/sync/dashboard/").status_code == 200
        return time.perf_counter() - started

    def measure():
        PushesPerHour.objects.all().delete()
        first = render()
        started = time.perf_counter()
        services.pushes_per_hour_store()  # the scheduler's pass
        store = time.perf_counter() - started
        executed = []

        def count(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                executed.append((time.perf_counter() - started, sql))

        with connection.execute_wrapper(count):
            render()
        for took, sql in sorted(executed, reverse=True)[:3]:  # where the time goes
            print(f"  {took * 1000:6.0f} ms  {sql[:160]}")
        return len(executed), median([render() for _ in range(args.repeat)]), first, store

    small_contacts, small_attempts = 1_000, 10_000
    with connection.cursor() as cursor:
        seed_contacts(cursor, small_contacts)
        seed_attempts(cursor, small_attempts)
    vacuum(connection)
    small = measure()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        seed_contacts(cursor, args.contacts - small_contacts)
        seed_attempts(cursor, args.attempts - small_attempts)
    vacuum(connection)
    seeded = time.perf_counter() - started
    big = measure()
    print(
        f"seeded {args.contacts:,} contacts x 4 states, {args.attempts:,} attempts "
        f"in {seeded:.0f} s"
    )
    for (contacts, attempts), (queries, typical, first, store) in (
        ((small_contacts, small_attempts), small),
        ((args.contacts, args.attempts), big),
    ):
        print(
            f"dashboard at {contacts:,} contacts x 4 destinations / {attempts:,} attempts: "
            f"{queries} queries, median {typical * 1000:.0f} ms "
            f"(before the scheduler stored the settled hours: {first * 1000:.0f} ms; "
            f"storing them: {store * 1000:.0f} ms)"
        )


if __name__ == "__main__":
    main()
