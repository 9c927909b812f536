"""A run's planning alone (issue #15 target 4): what a worker does between the admin's click
and the last chunk queued, with no pushes beside it.

    bin/with-postgres .venv/bin/python bench/planning.py [--contacts 200000] [--small 10000]

PostgreSQL. `--small` contacts are seeded in SQL (bench/seed_sql.py; no children: the
planning reads none) and planned first, as the baseline of the same run; then the rest up to
`--contacts`. At each size, in this process and as `prepare_run` does it in a worker
(`services.contacts_push_selected`: the run and its selection, then `run_prepare`'s batches
of SYNC_PLAN_BATCH contacts), on three new destinations: a first push to a bulk platform
(chunks of SYNC_BULK_CHUNK_SIZE), a first push to a per-contact one (chunks of
SYNC_CHUNK_SIZE), and the per-contact one again forced (every state there already, pending:
updated, not made). Prints each planning's time, its contacts per second, and the
statements it ran per batch. Nothing is pushed: no worker, no sandbox.
"""

import argparse
import os
import time

from common import make_destination, platform_with, setup_django
from seed_sql import seed_contacts, vacuum


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=10_000)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    print(
        f"batches of {settings.SYNC_PLAN_BATCH:,} contacts; chunks of "
        f"{settings.SYNC_BULK_CHUNK_SIZE:,} (bulk) and {settings.SYNC_CHUNK_SIZE:,} (per contact)"
    )
    seeded = 0
    for count in (args.small, args.contacts):
        with connection.cursor() as cursor:
            seed_contacts(cursor, count - seeded, states=False)
        seeded = count
        vacuum(connection)
        _plan_all(count)


def _plan_all(count: int) -> None:
    bulk, per_contact = platform_with(bulk=True), platform_with(bulk=False)
    unreachable = "http://127.0.0.1:9"  # planning sends nothing
    first = make_destination(bulk, unreachable, name=f"{bulk} {count}")
    second = make_destination(per_contact, unreachable, name=f"{per_contact} {count}")
    for destination, what, force in (
        (first, f"first push to {bulk} (bulk)", False),
        (second, f"first push to {per_contact} (per contact)", False),
        (second, f"forced re-push to {per_contact} (states pending there)", True),
    ):
        _plan(count, destination, what, force)


def _plan(count: int, destination, what: str, force: bool) -> None:
    from django.conf import settings
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from contacts.models import Contact
    from sync import services

    statements = [0]

    def counting(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    load = _load()
    tasks_before = DBTaskResult.objects.count()
    started = time.perf_counter()
    with connection.execute_wrapper(counting):
        run = services.contacts_push_selected(
            contacts=Contact.objects.all(),
            destination=destination,
            trigger="action",
            user_id=None,
            force=force,
        )
    seconds = time.perf_counter() - started
    batches = -(-count // settings.SYNC_PLAN_BATCH)
    chunks = DBTaskResult.objects.count() - tasks_before
    print(
        f"{count:,} contacts, {what}: planned in {seconds:.1f} s = {count / seconds:,.0f} "
        f"contacts/s; {run.planned:,} planned, {chunks:,} chunks queued; "
        f"{statements[0] / batches:.1f} statements a batch ({statements[0]:,} in "
        f"{batches} batches); load average before {load}, after {_load()}",
        flush=True,
    )


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
