"""Django Tasks entry points: thin adapters over the worker side of sync.engine (which queues
nothing itself: sync.services alone enqueues, so no module here imports another in a circle).
Arguments are ids and plain values (they are stored as JSON by the database backend).

A database that stays locked or away beyond our retries (sync.dbretry) ends the task quietly,
with a log line, instead of raising. Raising would not help anyone: django-tasks-db's worker
would record the failure on the same sick database, retrying for only a fraction of a second
(and on SQLite's busy timeout, or PostgreSQL's dropped connection, that write fails too), and
a failure there escapes its loop and ends `db_worker`, leaving the task RUNNING and the queue
unserved. Nothing is lost by ending quietly: the contacts this chunk claimed are taken back by
the scheduler at lease expiry, and those it never reached are handed back to the scheduler
once the database answers again. The task waits for that before returning, so that the
worker's own bookkeeping finds the database back.
"""

import logging
import time

from django.db import InterfaceError, OperationalError
from django.dispatch import Signal
from django_tasks import task
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from sync import dbretry, drift, engine, guard, inbound, selectors
from sync.connectors.base import ConnectorConfigurationError
from sync.models import Destination

logger = logging.getLogger(__name__)

# Sent when a bulk chunk gave its place back (sync.engine): `destination_id`, `contact_ids`
# (still claimed by this chunk) and `context`; sync.services.contacts_requeue receives it. A
# chunk no one requeues leaves its contacts claimed, for the scheduler to take back.
chunk_gave_way = Signal()

# Sent by `prepare_run` with `run_id`: sync.services.run_prepare receives it and plans the run
# (services queues the chunks and imports this module, so this module does not import it).
run_planning_due = Signal()

# A bulk chunk goes on with the next chunk of its own push, when nothing else is ready, for
# this long after it started: a worker's graceful stop waits at most about this long.
TAKE_NEXT_FOR = 10.0


@task()
def push_contacts(
    *,
    destination_id: int,
    contact_ids: list[int],
    trigger: str,
    user_id: int | None = None,
    run_id: int | None = None,
    force: bool = False,
    interactive: bool = False,
):
    """One chunk of a push (sync.services queues it). A bulk chunk (not `interactive`) whose
    destination's limit would make it wait while other work is ready stops and is queued
    again with the contacts it did not reach, so the worker moves on (sync/ratelimit.py)."""
    context = engine.PushContext(
        trigger=trigger, user_id=user_id, run_id=run_id, force=force, may_give_way=not interactive
    )
    taken = []
    if not interactive and run_id is not None:
        context.next_chunk = _NextChunk(destination_id, context, taken)
    failure = None  # what the chunk ended on, for the task rows it took on
    try:
        engine.contacts_push_chunk(
            destination_id=destination_id, contact_ids=contact_ids, context=context
        )
        if context.handed_back:
            # sync.services queues them again (it alone enqueues, and it imports this module)
            dbretry.with_database_retry(
                chunk_gave_way.send,
                sender=push_contacts,
                destination_id=destination_id,
                contact_ids=context.handed_back,
                context=context,
            )
    except (OperationalError, InterfaceError) as err:
        if not dbretry.is_transient(err):
            failure = err
            raise
        logger.exception(
            "push of %d contacts to destination %s gave up on the database; the scheduler "
            "takes them back",
            len(contact_ids),
            destination_id,
        )
        for row in taken:  # the chunks taken on are handed back with this one
            contact_ids = contact_ids + row.args_kwargs["kwargs"]["contact_ids"]
        _after_database_loss(
            engine.contacts_hand_back, destination_id=destination_id, contact_ids=contact_ids
        )
    except Exception as err:
        failure = err
        raise
    finally:
        # the chunks taken on went with this one: their contacts were pushed, requeued, or
        # are left for the scheduler, as this chunk's are; they failed if it failed
        for row in taken:
            if failure is None:
                dbretry.with_database_retry(row.set_successful, None)
            else:
                dbretry.with_database_retry(row.set_failed, failure)


class _NextChunk:
    """The next chunk of the same push (destination, run, trigger, user, force) from the
    queue, taken as the worker would take it (its task row marked running by this worker),
    so that the chunk's lanes go on without a gap: between two tasks the worker sends nothing
    while the last answers come back and the next task is taken, claimed and loaded (about
    0.1 s a chunk, README "Requests in flight"). The engine asks only when nothing else is
    ready (sync.engine, so interactive pushes and other destinations still come first), and
    only for TAKE_NEXT_FOR seconds. Each call returns the contact ids, or None; the task rows
    taken end as the push_contacts task ends: successful, or failed with its error."""

    def __init__(self, destination_id: int, context: engine.PushContext, taken: list):
        self.destination_id, self.context, self.taken = destination_id, context, taken
        self.until = time.monotonic() + TAKE_NEXT_FOR

    def __call__(self) -> list[int] | None:
        if time.monotonic() > self.until:
            return None
        return dbretry.with_database_retry(self._take)

    def _take(self) -> list[int] | None:
        context = self.context
        same_push = DBTaskResult.objects.ready().filter(
            task_path=selectors.PUSH_TASK_PATH,
            priority__lt=selectors.PRIORITY_INTERACTIVE,
            args_kwargs__kwargs__destination_id=self.destination_id,
            args_kwargs__kwargs__run_id=context.run_id,
        )
        with exclusive_transaction(same_push.db):
            row = same_push.get_locked()
            if row is None:
                return None
            kwargs = row.args_kwargs["kwargs"]
            if (
                kwargs.get("trigger"),
                kwargs.get("user_id"),
                bool(kwargs.get("force")),
                bool(kwargs.get("interactive")),
            ) != (context.trigger, context.user_id, context.force, False):
                return None  # another push of the same run: the worker takes it on its own
            row.claim(context.worker)
        self.taken.append(row)
        return list(kwargs["contact_ids"])


@task()
def confirm_contacts(*, destination_id: int, contact_ids: list[int], trigger: str):
    """Ask the platform what became of contacts it accepted in bulk."""
    context = engine.PushContext(trigger=trigger)
    try:
        engine.contacts_confirm_chunk(
            destination_id=destination_id, contact_ids=contact_ids, context=context
        )
    except (OperationalError, InterfaceError) as err:
        if not dbretry.is_transient(err):
            raise
        # nothing to hand back: unclaimed states stay awaiting and come due again after the
        # scheduler's lease, claimed ones are taken back at lease expiry
        logger.exception(
            "confirmation of %d contacts on destination %s gave up on the database",
            len(contact_ids),
            destination_id,
        )
        _after_database_loss()


@task()
def delete_contact(
    *, destination_id: int, external_id: str, remote_id: str, user_id: int | None = None
):
    try:
        engine.contact_delete_remote(
            destination_id=destination_id,
            external_id=external_id,
            remote_id=remote_id,
            user_id=user_id,
        )
    except (OperationalError, InterfaceError) as err:
        if not dbretry.is_transient(err):
            raise
        # the local rows are gone: this log line is all that is left to tell of it
        logger.exception(
            "delete of %s on destination %s gave up on the database", external_id, destination_id
        )
        _after_database_loss()


@task()
def probe_destination(*, destination_id: int):
    """The daily vendor-change probe of one destination (sync/guard.py)."""
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None:
        return
    try:
        guard.destination_probe(destination=destination)
    except ConnectorConfigurationError:
        logger.warning("destination %s cannot be probed as configured", destination_id)


@task()
def poll_destination(*, destination_id: int):
    """One poll of a destination (sync/polling.py): what changed on the platform, applied
    through the inbound pipeline."""
    from sync import polling  # polling imports the engine; tasks stay importable without it

    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is not None:
        outcome = polling.destination_poll(destination=destination)
        logger.info("poll of %s: %s", destination, outcome)


@task()
def erase_contact(*, erasure_id: int):
    """Erase a person here (once) and on every platform not yet settled (sync.erasure). Only
    the erasure's id travels: the task row never holds the person."""
    from sync import erasure

    try:
        erasure.erasure_run(erasure_id=erasure_id)
    except (OperationalError, InterfaceError) as err:
        if not dbretry.is_transient(err):
            raise
        # receipts not written stay pending or failed: "Retry" on the erasure asks again
        logger.exception("erasure %s gave up on the database", erasure_id)
        _after_database_loss()


@task()
def reconcile_contacts(*, destination_id: int, contact_ids: list[int]):
    """Read these contacts back from the destination's platform and store their drift."""
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None or destination.is_paused:
        return  # removed, or waiting for its credentials: the next daily pass reads again
    try:
        report = drift.contacts_reconcile(destination=destination, contact_ids=contact_ids)
    except (OperationalError, InterfaceError) as err:
        if not dbretry.is_transient(err):
            raise
        # nothing was claimed: the next pass reads these contacts again
        logger.exception("reconcile on destination %s gave up on the database", destination_id)
        _after_database_loss()
        return
    logger.info("; ".join(report.lines()))


def _after_database_loss(hand_back=None, **kwargs) -> None:
    """Wait for the database to answer, then hand the work back (logged when it cannot)."""
    if not dbretry.wait_for_database():
        logger.error("the database is still away; the scheduler takes the work back later")
        return
    if hand_back is None:
        return
    try:
        dbretry.with_database_retry(hand_back, **kwargs)
    except (OperationalError, InterfaceError):
        logger.exception("handing back failed; the scheduler takes the work back later")


@task()
def process_inbound_events(*, event_ids: list[int]):
    """Apply events a platform sent (sync.inbound). A failure stays on each event."""
    inbound.inbound_events_process(event_ids=event_ids)


@task()
def prepare_run(*, run_id: int):
    """Plan and queue a run started from the admin (sync.services.run_prepare), so that its
    request returned at once. A worker that dies part-way loses nothing: each batch is
    committed with the run's progress, and the scheduler queues the rest again after the
    lease (services.runs_prepare_recover)."""
    try:
        run_planning_due.send(sender=prepare_run, run_id=run_id)
    except (OperationalError, InterfaceError) as err:
        if not dbretry.is_transient(err):
            raise
        # the batch under way was rolled back: the selection still holds it
        logger.exception("planning of run %s gave up on the database", run_id)
        _after_database_loss()
