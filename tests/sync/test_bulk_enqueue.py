"""`sync.bulk_enqueue.enqueue_many` writes the task rows django-tasks-db's own `enqueue`
writes, in one INSERT, in order, and announces each as `enqueue` does."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.compat import task_enqueued
from django_tasks_db.models import DBTaskResult

from sync import selectors, tasks
from sync.bulk_enqueue import enqueue_many

# All a row holds but what differs between two rows of the same call: their id and time.
COMPARED = [
    f.attname for f in DBTaskResult._meta.concrete_fields if f.attname not in {"id", "enqueued_at"}
]


def _kwargs(first_id: int) -> dict:
    return dict(
        destination_id=7,
        contact_ids=[first_id, first_id + 1],
        trigger="action",
        user_id=None,
        run_id=3,
        force=False,
        interactive=False,
    )


def _row(pk) -> dict:
    return DBTaskResult.objects.filter(pk=pk).values(*COMPARED).get()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "task",
    [
        tasks.push_contacts.using(priority=selectors.PRIORITY_BULK),
        tasks.push_contacts.using(
            priority=selectors.PRIORITY_INTERACTIVE,
            run_after=timezone.now() + timedelta(hours=1),
        ),
    ],
    ids=["bulk", "interactive-deferred"],
)
def test_the_rows_are_those_enqueue_writes(task):
    enqueued = _row(task.enqueue(**_kwargs(1)).id)
    DBTaskResult.objects.all().delete()
    announced = []

    def listen(sender, task_result, **kwargs):
        announced.append(task_result.kwargs["contact_ids"])

    task_enqueued.connect(listen)
    try:
        with CaptureQueriesContext(connection) as queries:
            enqueue_many(task, [_kwargs(1), _kwargs(3), _kwargs(5)])
    finally:
        task_enqueued.disconnect(listen)
    assert len(queries.captured_queries) == 1
    rows = {r.args_kwargs["kwargs"]["contact_ids"][0]: r for r in DBTaskResult.objects.all()}
    assert sorted(rows) == [1, 3, 5]
    assert _row(rows[1].pk) == enqueued
    for first_id, row in rows.items():
        assert row.args_kwargs == {"args": [], "kwargs": _kwargs(first_id)}
        assert row.enqueued_at is not None
    # stamped in the order given: a worker takes them in that order
    assert rows[1].enqueued_at <= rows[3].enqueued_at <= rows[5].enqueued_at
    assert announced == [[1, 2], [3, 4], [5, 6]]
    ready = set(DBTaskResult.objects.ready().values_list("pk", flat=True))
    assert ready == (set() if task.run_after else {r.pk for r in rows.values()})
