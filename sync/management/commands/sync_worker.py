"""`manage.py sync_worker`: django-tasks-db's `db_worker`, taking work fairly.

django-tasks-db's worker already takes the ready task of highest priority first (its table's
ordering: priority, then run_after, then enqueued_at), so interactive pushes (a save, "Push
now", a single "Retry": sync.selectors.PRIORITY_INTERACTIVE) go ahead of bulk chunks with
`db_worker` too. What it cannot know is that a bulk chunk for a destination whose rate limit
is spent would only wait: with 10,000 chunks of a slow push ahead of them in the queue, other
destinations' chunks wait behind them. This worker takes, of the ready tasks, the first that
is not a bulk push to a busy destination (sync.selectors.ready_tasks_fair), and falls back to
the first ready task when there is no other, so a lone slow push still uses every worker.
Together with chunks giving their place back (sync.engine), a worker does not wait on one
destination's limit while another's work is ready.

`--interactive-only` serves interactive pushes alone: one such worker beside the others keeps
a person's push moving even when every other worker is in the middle of a chunk.

Every option of `db_worker` is accepted; the loop is django-tasks-db 0.13's own, with the
task choice replaced.
"""

import logging
import random
import time

from django.db import close_old_connections
from django.db.utils import OperationalError
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from sync import selectors

logger = logging.getLogger("django_tasks_db")


class FairWorker(db_worker.Worker):
    def __init__(self, *, interactive_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.interactive_only = interactive_only

    def ready_tasks(self):
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        if self.interactive_only:
            tasks = tasks.filter(priority__gte=selectors.PRIORITY_INTERACTIVE)
        return tasks

    def take(self, tasks) -> DBTaskResult | None:
        """Lock and return the next task: skipping bulk pushes to busy destinations while
        anything else is ready."""
        busy = selectors.destinations_busy()
        if busy:
            task_result = selectors.ready_tasks_fair(tasks, busy=busy).get_locked()
            if task_result is not None:
                return task_result
        return tasks.get_locked()

    def run(self) -> None:
        logger.info(
            "Starting worker worker_id=%s queues=%s (fair)", self.worker_id, self.queue_names
        )
        if self.startup_delay and self.interval:
            time.sleep(random.random())  # spread workers started together, as db_worker does
        while self.running:
            close_old_connections()
            tasks = self.ready_tasks()
            with exclusive_transaction(tasks.db):
                try:
                    task_result = self.take(tasks)
                    retrieved = True
                    if task_result is not None:
                        task_result.claim(self.worker_id)
                except OperationalError as err:
                    retrieved = False
                    if not is_locked_database_exception(err):
                        raise
                    task_result = None  # a locked database unlocks: try again
            if task_result is not None:
                self.run_task(task_result)
            if self.batch and retrieved and task_result is None:
                logger.info("No more tasks to run for worker_id=%s - exiting.", self.worker_id)
                return
            if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                logger.info("Ran %d tasks on worker=%s - exiting.", self._run_tasks, self.worker_id)
                return
            close_old_connections()
            if self.running and not task_result:
                time.sleep(self.interval)


class Command(db_worker.Command):
    help = "A db_worker that takes interactive work first and skips busy destinations."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--interactive-only",
            action="store_true",
            help="Take only interactive pushes (a save, Push now, a single Retry).",
        )

    def handle(self, *args, interactive_only: bool = False, **options):
        # db_worker's handle builds its Worker by name from its module: hand it ours
        original = db_worker.Worker

        def worker(**kwargs):
            return FairWorker(interactive_only=interactive_only, **kwargs)

        db_worker.Worker = worker
        try:
            super().handle(*args, **options)
        finally:
            db_worker.Worker = original
