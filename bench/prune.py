"""Tables stay small: the attempt log's and the task table's pruning at scale.

    bin/with-postgres .venv/bin/python bench/prune.py [--attempts 2000000 --pushes 3]

Seeds `--attempts` attempt-log rows, half older than the retention (90 days) and half within
it, and the task rows of `--pushes` million-contact pushes finished 8 to 10 days ago (a push
in chunks of 100 makes 10,000 task rows) plus one finished today; then runs the daily prune
(`services.attempts_prune`, `services.tasks_prune`, as the scheduler does) and prints, for
each, the rows deleted and kept, the time, and the longest single DELETE (each batch is its
own statement and transaction: the longest is the longest any lock on the table is held).
PostgreSQL only (the rows are generated in SQL).
"""

import argparse
import time

from common import setup_django
from seed_sql import seed_attempts, vacuum

TASK_SQL = """
    INSERT INTO django_tasks_database_dbtaskresult (id, status, enqueued_at, started_at,
        finished_at, args_kwargs, priority, task_path, worker_ids, queue_name, backend_name,
        run_after, return_value, exception_class_path, traceback)
    SELECT gen_random_uuid(), 'SUCCESSFUL', t, t, t + interval '2 seconds',
        jsonb_build_object('args', '[]'::jsonb, 'kwargs', jsonb_build_object(
            'destination_id', 1, 'trigger', 'action', 'contact_ids',
            (SELECT jsonb_agg(c) FROM generate_series(g * 100, g * 100 + 99) AS c))),
        0, 'sync.tasks.push_contacts', '["worker:1:1"]'::jsonb, 'default', 'default', t,
        'null'::jsonb, '', ''
    FROM (SELECT g, now() - %s * interval '1 day' - g * interval '10 milliseconds' AS t
          FROM generate_series(1, 10000) AS g) AS rows
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=2_000_000)
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from sync import connectors, services
    from sync.models import Destination, SyncAttempt
    from sync.sandbox import sandbox_destination_fields

    for slug in connectors.CONNECTORS:
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
    retention = settings.SYNC_ATTEMPT_RETENTION_DAYS
    started = time.perf_counter()
    with connection.cursor() as cursor:
        seed_attempts(cursor, args.attempts // 2, days=60, older_than_days=retention + 1)
        seed_attempts(cursor, args.attempts - args.attempts // 2, days=retention - 1)
        for push in range(args.pushes):
            cursor.execute(TASK_SQL, [8 + push % 3])
        cursor.execute(TASK_SQL, [0])
    vacuum(connection)
    print(f"seeded in {time.perf_counter() - started:.0f} s")

    def measure(label, prune, model):
        before = model.objects.count()
        deletes = []

        def timed(execute, sql, params, many, context):
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                if sql.lstrip().upper().startswith("DELETE"):
                    deletes.append(time.perf_counter() - began)

        began = time.perf_counter()
        with connection.execute_wrapper(timed):
            deleted = prune()
        took = time.perf_counter() - began
        kept = model.objects.count()
        assert before - deleted == kept, (before, deleted, kept)
        print(
            f"{label}: {deleted:,} deleted, {kept:,} kept, in {took:.1f} s "
            f"({deleted / took:,.0f} rows/s); {len(deletes)} batches of {args.batch:,}, "
            f"longest DELETE {max(deletes, default=0) * 1000:.0f} ms"
        )

    measure(
        f"attempt log, {args.attempts:,} rows, retention {retention} days",
        lambda: services.attempts_prune(days=retention, batch=args.batch),
        SyncAttempt,
    )
    measure(
        f"task rows, {args.pushes + 1} pushes of 10,000 chunks, retention "
        f"{settings.SYNC_TASK_RETENTION_DAYS} days",
        lambda: services.tasks_prune(days=settings.SYNC_TASK_RETENTION_DAYS, batch=args.batch),
        DBTaskResult,
    )


if __name__ == "__main__":
    main()
