"""Benchmark: the tables stay small (issue #15, item 5): pruning finished task rows and the
attempt log, in batches, with no long lock.

    bin/with-postgres .venv/bin/python bench/pruning.py [--tasks 100000] [--attempts 1000000]

A million-contact push in chunks of 100 leaves 10,000 finished task rows; `--tasks` is that
many pushes' worth (default: ten). The rows are inserted old enough to be pruned (set-based
INSERT … SELECT from generate_series on PostgreSQL, bulk_create elsewhere), then
`services.tasks_prune` and `services.attempts_prune` run as the scheduler runs them. Prints
the rows per second, the longest single DELETE (each batch is its own transaction: the
longest time any row lock is held) and, as the baseline from the same run, how long one
claim of a ready task takes before and during the prune (a worker must not wait on it).
"""

import argparse
import threading
import time
import uuid
from datetime import timedelta

from common import setup_django


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    setup_django()
    from django.db import connection
    from django.utils import timezone
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import connectors, services
    from sync.models import Destination, SyncAttempt
    from sync.sandbox import sandbox_destination_fields

    seed_demo_contacts(100)
    platform = next(iter(connectors.CONNECTORS))
    destination = Destination.objects.create(
        **sandbox_destination_fields(platform, "http://127.0.0.1:9")
    )
    contact_ids = list(Contact.objects.values_list("pk", flat=True))
    old = timezone.now() - timedelta(days=400)
    t0 = time.monotonic()
    _insert_tasks(connection, args.tasks, old, DBTaskResult, TaskResultStatus)
    _insert_attempts(connection, args.attempts, old, destination, contact_ids, SyncAttempt)
    print(
        f"inserted {args.tasks:,} finished task rows and {args.attempts:,} attempt rows "
        f"in {time.monotonic() - t0:.0f} s ({connection.vendor})"
    )

    deletes: list[float] = []

    def timed(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if sql.lstrip().upper().startswith("DELETE"):
                deletes.append(time.perf_counter() - start)

    claims_idle = _claim_times(DBTaskResult, seconds=2)
    claims_during: list[float] = []
    stop = threading.Event()

    def claimer():
        from django.db import connection as thread_connection

        claims_during.extend(_claim_times(DBTaskResult, stop=stop))
        thread_connection.close()

    for label, prune, kwargs in (
        ("task rows", services.tasks_prune, {"days": 30}),
        ("attempt rows", services.attempts_prune, {"days": 30}),
    ):
        deletes.clear()
        claims_during.clear()
        stop.clear()
        thread = threading.Thread(target=claimer)
        thread.start()
        start = time.monotonic()
        with connection.execute_wrapper(timed):
            deleted = prune(batch=args.batch, **kwargs)
        elapsed = time.monotonic() - start
        stop.set()
        thread.join()
        print(
            f"{label}: {deleted:,} pruned in {elapsed:.1f} s = {deleted / elapsed:,.0f}/s, "
            f"{len(deletes)} batches of {args.batch:,}, longest DELETE {max(deletes) * 1000:.0f} "
            f"ms; a worker's claim of a ready task: median "
            f"{_median(claims_idle) * 1000:.1f} ms idle, {_median(claims_during) * 1000:.1f} ms "
            f"(max {max(claims_during) * 1000:.0f} ms) during the prune"
        )


def _median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


def _claim_times(DBTaskResult, *, seconds=None, stop=None) -> list[float]:
    """Enqueue a task and claim it as db_worker does (the same query), again and again."""
    from django.db import transaction
    from django_tasks_db.utils import exclusive_transaction

    from sync import tasks

    times, end = [], time.monotonic() + (seconds or 1e9)
    while time.monotonic() < end and not (stop and stop.is_set()):
        result = tasks.probe_destination.enqueue(destination_id=0)
        start = time.perf_counter()
        ready = DBTaskResult.objects.ready()
        with exclusive_transaction(ready.db):
            row = ready.get_locked()
            if row is not None:
                row.claim("bench")
        times.append(time.perf_counter() - start)
        with transaction.atomic():
            DBTaskResult.objects.filter(pk=result.id).delete()
        time.sleep(0.02)
    return times


def _insert_tasks(connection, count, old, DBTaskResult, TaskResultStatus):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {DBTaskResult._meta.db_table}
                  (id, status, enqueued_at, started_at, finished_at, args_kwargs, priority,
                   task_path, worker_ids, queue_name, backend_name, run_after, return_value,
                   exception_class_path, traceback)
                SELECT md5(i::text)::uuid, %s, %s, %s, %s,
                       '{{"args": [], "kwargs": {{"contact_ids": [1, 2, 3]}}}}'::jsonb, 0,
                       'sync.tasks.push_contacts', '["bench"]'::jsonb, 'default', 'default',
                       %s, 'null'::jsonb, '', ''
                FROM generate_series(1, %s) AS i
                """,
                [TaskResultStatus.SUCCESSFUL, old, old, old, old, count],
            )
        return
    rows = [
        DBTaskResult(
            id=uuid.uuid4(),
            status=TaskResultStatus.SUCCESSFUL,
            started_at=old,
            finished_at=old,
            args_kwargs={"args": [], "kwargs": {"contact_ids": [1, 2, 3]}},
            task_path="sync.tasks.push_contacts",
            backend_name="default",
            run_after=old,
        )
        for _ in range(count)
    ]
    DBTaskResult.objects.bulk_create(rows, batch_size=2000)
    DBTaskResult.objects.update(enqueued_at=old)


def _insert_attempts(connection, count, old, destination, contact_ids, SyncAttempt):
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {SyncAttempt._meta.db_table}
                  (destination_id, contact_id, external_id, trigger, started_at, duration_ms,
                   request_body, response_excerpt, outcome, error, http_status)
                SELECT %s, (%s::int[])[1 + i %% %s], 'bench', 'action',
                       %s - (i || ' seconds')::interval, 5, '{{}}', '{{}}', 'created', '', 200
                FROM generate_series(1, %s) AS i
                """,
                [destination.pk, contact_ids, len(contact_ids), old, count],
            )
        return
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=destination,
                contact_id=contact_ids[i % len(contact_ids)],
                trigger="action",
                started_at=old,
                outcome="created",
            )
            for i in range(count)
        ],
        batch_size=5000,
    )


if __name__ == "__main__":
    main()
