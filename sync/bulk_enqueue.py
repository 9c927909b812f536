"""`enqueue_many`: one task queued many times in one INSERT.

A run's planning queues a batch's chunks together (sync.services): 10,000 contacts in chunks
of 100 are 100 tasks, and `Task.enqueue` writes each task row with its own INSERT. With
django-tasks-db's backend, `enqueue_many` builds the same rows that backend's `enqueue` does
(`DatabaseBackend._task_to_db_task`, django-tasks-db 0.13) and writes them with one
`bulk_create`, so a worker takes them exactly as it would have taken the enqueued ones. The
rows are written in the caller's transaction, as `enqueue`'s are: a worker sees them when it
commits, and a rollback leaves none.
"""

from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.compat import Task, normalize_json, task_enqueued
from django_tasks_db.models import DBTaskResult, get_date_max


def enqueue_many(task: Task, calls: list[dict]) -> None:
    """Queue `task` once for each dict of keyword arguments in `calls`, in that order, as
    `task.enqueue(**kwargs)` would. Other backends (the tests' immediate one runs each task
    at once) get exactly those `enqueue` calls."""
    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        for kwargs in calls:
            task.enqueue(**kwargs)
        return
    backend.validate_task(task)
    rows = [
        DBTaskResult(
            id=backend._get_id(),  # the backend's own id function, when one is configured
            args_kwargs=normalize_json({"args": (), "kwargs": kwargs}),
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            # what the model's pre_save receiver sets (bulk_create sends no pre_save)
            run_after=task.run_after or get_date_max(),
            backend_name=backend.alias,
        )
        for kwargs in calls
    ]
    DBTaskResult.objects.bulk_create(rows)
    for row in rows:  # as `enqueue` announces each (django-tasks logs it)
        task_enqueued.send(type(backend), task_result=row.task_result)
