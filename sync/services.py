"""The sync engine's public face: what admin actions, receivers, tasks and commands call.

The push itself (claim, compare, send, record) is in sync.engine; this module queues work,
keeps runs, pauses and resumes destinations, and schedules retries. Together they are the
only code that calls connectors and writes sync state.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Subquery, When
from django.dispatch import receiver
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from contacts.models import Contact
from sync import connectors, consent, drift, engine, guard, inbound, polling, selectors, tasks
from sync.bulk_enqueue import enqueue_many
from sync.connectors.base import (
    ConnectorConfigurationError,
    ConnectorError,
    PartialOptionsError,
    PermanentError,
    PlannedRequest,
)
from sync.connectors.records import ContactRecord, RemoteState
from sync.drift import ReconcileReport
from sync.engine import (  # noqa: F401  (re-exported for adapters)
    PushContext,
    contact_delete_remote,
    contact_push,
    contacts_confirm,
    contacts_push,
    contacts_push_chunk,
    destination_connector,
    destination_pause,
    finish_run_if_done,
    states_ensure,
    states_mark_pending,
    status_before_push,
)
from sync.models import (
    ContactDrift,
    ContactSyncState,
    Destination,
    DestinationPoll,
    EraseReceipt,
    Erasure,
    InboundEvent,
    InboundPerHour,
    PushesPerHour,
    RemoteOption,
    SyncAttempt,
    SyncRun,
    SyncRunSelection,
    SyncStatus,
    SyncStatusCount,
    SyncStatusCountDelta,
    Trigger,
)
from sync.sqlids import IdIn

logger = logging.getLogger(__name__)
Outcome = SyncAttempt.Outcome


# ------------------------------------------------------------ many contacts, runs


def destinations_for_save() -> list[Destination]:
    return list(Destination.objects.filter(enabled=True, push_on_save=True))


def chunk_size_for(destination: Destination) -> int:
    """Contacts per task: a platform's batch call where it has one (capped, so progress and
    cancelling stay fine-grained), else a chunk of single pushes sharing one session."""
    batch = destination.connector_class.batch_size
    if batch:
        return min(batch, settings.SYNC_BULK_CHUNK_SIZE)
    return settings.SYNC_CHUNK_SIZE


def _chunks(ids: Iterable[int], size: int):
    chunk = []
    for contact_id in ids:
        chunk.append(contact_id)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def contacts_enqueue_push(
    *,
    contact_ids: list[int],
    destinations: list[Destination],
    trigger: str,
    user_id: int | None = None,
    run: SyncRun | None = None,
    force: bool = False,
    interactive: bool = False,
) -> int:
    """Mark the contacts pending on each destination and queue their push, in chunks.
    `interactive`: a person is waiting (a save, "Push now"): the chunks go ahead of bulk work,
    and all of them are queued in one transaction (a few contacts: one commit, one wait for
    SQLite's write lock, instead of one per destination while the person's save waits).
    Returns the number of (contact, destination) pushes queued."""
    chunks = [
        (destination, chunk)
        for destination in destinations
        for chunk in _chunks(contact_ids, chunk_size_for(destination))
    ]
    options = dict(trigger=trigger, user_id=user_id, force=force, interactive=interactive)
    if interactive:
        with transaction.atomic():
            for destination, chunk in chunks:
                _queue_chunk_in_transaction(chunk, destination, run, **options)
    else:
        for destination, chunk in chunks:
            _queue_chunk(chunk, destination, run, **options)
    return sum(len(chunk) for _, chunk in chunks)


def _queue_chunk(
    contact_ids, destination, run, *, trigger, user_id, force, interactive=False
) -> None:
    """Mark a chunk pending and queue its task in one transaction: a pending state with no
    task would wait for ever, and a failed enqueue leaves the states as they were (for the
    scheduler, due again after one lease)."""
    with transaction.atomic():
        _queue_chunk_in_transaction(
            contact_ids,
            destination,
            run,
            trigger=trigger,
            user_id=user_id,
            force=force,
            interactive=interactive,
        )


def _queue_chunk_in_transaction(
    contact_ids, destination, run, *, trigger, user_id, force, interactive
) -> None:
    _mark_pending(contact_ids, destination, run)
    _push_task(interactive=interactive).enqueue(
        destination_id=destination.pk,
        contact_ids=contact_ids,
        trigger=trigger,
        user_id=user_id,
        run_id=run.pk if run else None,
        force=force,
        interactive=interactive,
    )


def _push_task(*, interactive: bool):
    """The push task at its priority: interactive work first (sync.selectors)."""
    priority = selectors.PRIORITY_INTERACTIVE if interactive else selectors.PRIORITY_BULK
    return tasks.push_contacts.using(priority=priority)


@receiver(tasks.chunk_gave_way, dispatch_uid="sync.services.contacts_requeue")
def _chunk_gave_way(sender, *, destination_id, contact_ids, context, **kwargs) -> None:
    contacts_requeue(destination_id=destination_id, contact_ids=contact_ids, context=context)


def contacts_requeue(*, destination_id: int, contact_ids: list[int], context: PushContext) -> None:
    """A bulk chunk gave its place back (sync.engine): the contacts it claimed but did not
    reach become pending again and go back in the queue as one chunk, at bulk priority, in
    the same transaction (a pending state with no task would wait for ever). Their run is
    untouched: they count when they are pushed. A worker that dies before this leaves them
    claimed, for the scheduler to take back at lease expiry."""
    with transaction.atomic():
        ContactSyncState.objects.filter(
            destination_id=destination_id,
            contact_id__in=contact_ids,
            status=SyncStatus.IN_PROGRESS,
            claimed_by=context.worker,
        ).update(status=SyncStatus.PENDING, claimed_at=None, claimed_by="")
        _push_task(interactive=False).enqueue(
            destination_id=destination_id,
            contact_ids=contact_ids,
            trigger=context.trigger,
            user_id=context.user_id,
            run_id=context.run_id,
            force=context.force,
        )


def _mark_pending(contact_ids, destination, run):
    """Pending, under `run`. Without a run, a contact still owed to its run (pending, waiting,
    awaiting confirmation) stays in it, so that the run ends when it settles; one that had
    settled leaves its old run, which must not count it twice."""
    states_ensure(contact_ids=contact_ids, destination=destination)
    states = ContactSyncState.objects.filter(
        IdIn(F("contact_id"), contact_ids), destination=destination
    ).exclude(status=SyncStatus.IN_PROGRESS)
    if run is None:  # one UPDATE: the run kept where owed, cleared elsewhere
        states.update(
            status=SyncStatus.PENDING,
            next_attempt_at=None,
            run=Case(When(status__in=engine.OWED, then=F("run")), default=None),
        )
    else:
        states.update(status=SyncStatus.PENDING, next_attempt_at=None, run=run)


def run_start(
    *,
    trigger: str,
    user_id: int | None,
    destination: Destination | None,
    total: int,
    force: bool = False,
) -> SyncRun:
    return SyncRun.objects.create(
        trigger=trigger, user_id=user_id, destination=destination, total=total, force=force
    )


@dataclass
class PushPlan:
    """A run and, per destination, the contacts it still has to push."""

    run: SyncRun
    targets: list[tuple[Destination, QuerySet]]

    def chunks(self):
        """(destination, contact ids) in task-sized chunks, streamed from the database."""
        for destination, ids in self.targets:
            for chunk in _chunks(ids.iterator(chunk_size=2000), chunk_size_for(destination)):
                yield destination, chunk


def push_plan(
    *,
    contacts: QuerySet[Contact],
    destination: Destination | None,
    trigger: str,
    user_id: int | None,
    force: bool = False,
) -> PushPlan:
    """Start a run over the chosen destinations (all enabled ones when None).

    Contacts whose content and destination configuration are what the platform last accepted
    are settled in SQL as unchanged (no payload built, no request, no task), unless `force`."""
    destinations = [destination] if destination else list(Destination.objects.filter(enabled=True))
    run = run_start(
        trigger=trigger,
        user_id=user_id,
        destination=destination,
        total=contacts.count() * len(destinations),
        force=force,
    )
    targets = []
    for target in destinations:
        to_push = contacts
        if not force:
            _settle_unchanged(contacts, target, run)
            to_push = contacts.exclude(
                Exists(_accepted_states(target).filter(contact_id=OuterRef("pk")))
            )
        targets.append((target, to_push.order_by("pk").values_list("pk", flat=True)))
    finish_run_if_done(run.pk)
    run.refresh_from_db()
    return PushPlan(run, targets)


def contacts_push_selected(
    *,
    contacts: QuerySet[Contact],
    destination: Destination | None,
    trigger: str,
    user_id: int | None,
    force: bool = False,
) -> SyncRun:
    """Plan a run over the chosen destinations (all enabled ones when None) here, in the
    caller, and queue it for the workers: `contacts_push_in_background` without the
    background (scripts, tests and the scheduler's callers that want the states pending on
    return)."""
    run = _run_begin(
        contacts=contacts, destination=destination, trigger=trigger, user_id=user_id, force=force
    )
    run_prepare(run_id=run.pk)
    run.refresh_from_db()
    return run


def contacts_push_in_background(
    *,
    contacts: QuerySet[Contact],
    destination: Destination | None,
    trigger: str,
    user_id: int | None,
    force: bool = False,
) -> SyncRun:
    """The admin action (and `push_contacts --queue`): start the run and hand its planning
    to a worker (`run_prepare`), so that the request returns at once whatever the
    selection's size (a million contacts took 243 s to plan in the request, past gunicorn's
    timeout). The run's page shows it being prepared, and how far it got."""
    with transaction.atomic():  # the run, its selection and its task, or none of them
        run = _run_begin(
            contacts=contacts,
            destination=destination,
            trigger=trigger,
            user_id=user_id,
            force=force,
        )
        tasks.prepare_run.enqueue(run_id=run.pk)
    run.refresh_from_db()
    return run


def _run_begin(*, contacts, destination, trigger, user_id, force) -> SyncRun:
    """A run being prepared, its selection taken (the contacts chosen now, one `INSERT …
    SELECT`: no contact id passes through Python) and its total known: the selected
    contacts times the destinations (the one given, or those enabled now)."""
    targets = [destination] if destination else destinations_enabled()
    with transaction.atomic():
        run = SyncRun.objects.create(
            trigger=trigger,
            user_id=user_id,
            destination=destination,
            force=force,
            preparing=True,
            planned_at=timezone.now(),
            target_ids=[target.pk for target in targets],
        )
        selected = _selection_store(run, contacts)
        SyncRun.objects.filter(pk=run.pk).update(selected=selected, total=selected * len(targets))
    return run


def _selection_store(run: SyncRun, contacts: QuerySet[Contact]) -> int:
    """Copy the selection's contact ids into the run's SyncRunSelection rows, in the
    database; returns how many (a contact the query names twice is taken once)."""
    if not contacts.query.is_sliced:  # a slice keeps its order: it says which rows
        contacts = contacts.order_by()
    try:
        sql, params = contacts.values("pk").query.sql_with_params()
    except EmptyResultSet:  # a selection that cannot match (`none()`)
        return 0
    table = connection.ops.quote_name(SyncRunSelection._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            # WHERE true: SQLite's parser needs it before an upsert's ON CONFLICT
            f"INSERT INTO {table} (run_id, contact_id) SELECT %s, selected.* FROM ({sql}) "
            "AS selected WHERE true ON CONFLICT DO NOTHING",
            [run.pk, *params],
        )
        return cursor.rowcount


@receiver(tasks.run_planning_due, dispatch_uid="sync.services.run_prepare")
def _run_planning_due(sender, *, run_id, **kwargs) -> None:
    run_prepare(run_id=run_id)


def run_prepare(*, run_id: int) -> None:
    """Plan a run being prepared, batch after batch (`_prepare_batch`), until its selection
    is empty: the worker's side of `contacts_push_in_background`. Safe to run again after a
    worker died part-way, and by two workers at once: each batch is taken under the run's
    lock and leaves the selection in the transaction that queues it."""
    while _prepare_batch(run_id):
        pass


def _prepare_batch(run_id: int) -> bool:
    """Plan the next SYNC_PLAN_BATCH selected contacts (lowest ids first) in one
    transaction: on each destination, those the platform holds as they are are counted
    unchanged (`_settle_batch`, unless the run is forced or the destination paused), the
    rest marked pending in the run and queued in chunks; the batch leaves the selection and
    the run's progress moves on. A worker that dies mid-batch leaves none of it. Returns
    False when there was nothing left to plan (the planning is then over), or the run was
    cancelled (what was left of its selection is dropped)."""
    with transaction.atomic():
        # locked: one batch at a time per run, and a cancel waits for the batch being queued
        run = SyncRun.objects.select_for_update().filter(pk=run_id, preparing=True).first()
        if run is None:
            return False
        selection = SyncRunSelection.objects.filter(run_id=run_id)
        batch = []
        if run.state == SyncRun.State.RUNNING:
            # each with whether it is still there (deleted since the click: not owed)
            found = Exists(Contact.objects.filter(pk=OuterRef("contact_id")))
            rows = selection.order_by("contact_id").values_list("contact_id", found)
            batch = list(rows[: settings.SYNC_PLAN_BATCH])
        if batch:
            _jit_off()
            _plan_batch(run, batch)
            selection.filter(contact_id__lte=batch[-1][0]).delete()
        else:
            selection.delete()
            SyncRun.objects.filter(pk=run_id).update(preparing=False, planned_at=timezone.now())
    finish_run_if_done(run_id)
    return bool(batch)


def _plan_batch(run: SyncRun, batch: list[tuple[int, bool]]) -> None:
    """`_prepare_batch`'s work on one batch of (contact id, still there), ascending ids, in
    its transaction."""
    now = timezone.now()
    contact_ids = [contact_id for contact_id, found in batch if found]
    # The destinations fixed at the start, those still there and enabled: one deleted or
    # disabled since is not pushed (its worker would drop the chunk), and not owed either.
    targets = list(Destination.objects.filter(pk__in=run.target_ids, enabled=True))
    unchanged = 0
    for target in targets if contact_ids else []:
        to_push = contact_ids
        if not run.force and not target.is_paused:
            held = set(_settle_batch(contact_ids, target, run, now))
            unchanged += len(held)
            to_push = [pk for pk in contact_ids if pk not in held]
        _queue_batch(to_push, target, run)
    # contacts deleted since the selection was taken are no longer owed, nor pushes to
    # destinations gone or disabled since
    missing = len(batch) * len(run.target_ids) - len(contact_ids) * len(targets)
    SyncRun.objects.filter(pk=run.pk).update(
        planned=F("planned") + len(batch),
        unchanged=F("unchanged") + unchanged,
        total=F("total") - missing,
        planned_at=now,
    )


def _queue_batch(contact_ids: list[int], destination, run: SyncRun) -> None:
    """Mark a planning batch's contacts pending in `run` and queue them in task-sized chunks,
    in the caller's transaction, in a few statements whatever the number of chunks: the
    states in one upsert (engine.states_mark_pending), the chunks' task rows in one INSERT
    (sync.bulk_enqueue). Chunk by chunk, each chunk's states and task row took three or four
    statements of their own: a million contacts in chunks of 100 are 10,000 chunks."""
    if not contact_ids:
        return
    states_mark_pending(contact_ids=contact_ids, destination=destination, run=run)
    calls = [
        dict(
            destination_id=destination.pk,
            contact_ids=chunk,
            trigger=run.trigger,
            user_id=run.user_id,
            run_id=run.pk,
            force=run.force,
            interactive=False,
        )
        for chunk in _chunks(contact_ids, chunk_size_for(destination))
    ]
    enqueue_many(_push_task(interactive=False), calls)


def destinations_enabled() -> list[Destination]:
    return list(Destination.objects.filter(enabled=True))


def runs_prepare_recover(*, now=None) -> int:
    """Scheduler side: queue again the planning of runs still being prepared whose planning
    made no progress for the lease (SYNC_LEASE_SECONDS) and has no task queued or running
    (its worker was killed, its machine gone; a cancelled run's planning only drops what
    is left). It goes on from where the dead one stopped: the selection holds what is still
    to plan. Returns how many were queued."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    alive = DBTaskResult.objects.filter(
        task_path=tasks.prepare_run.module_path,
        status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING],
    ).values_list("args_kwargs__kwargs__run_id", flat=True)
    stalled = SyncRun.objects.filter(preparing=True, planned_at__lt=stale).exclude(
        pk__in=[run_id for run_id in alive if run_id is not None]
    )
    queued = 0
    for run_id in stalled.values_list("pk", flat=True):
        tasks.prepare_run.enqueue(run_id=run_id)
        logger.warning("run %s: its planning had stopped; queued again", run_id)
        queued += 1
    return queued


def plan_run_here(plan: PushPlan, *, on_chunk=None) -> None:
    """Push a plan's chunks in this process (the `push_contacts` command), then close the
    run. `on_chunk(run)` is called after each chunk, for progress."""
    run = plan.run
    context = PushContext(trigger=run.trigger, user_id=run.user_id, run_id=run.pk, force=run.force)
    for target, chunk in plan.chunks():
        _mark_pending(chunk, target, run)
        contacts_push_chunk(destination_id=target.pk, contact_ids=chunk, context=context)
        if on_chunk:
            run.refresh_from_db()
            on_chunk(run)
    run_finish(run=run)


def count_unchanged(contacts: QuerySet[Contact], destination: Destination) -> int:
    return _accepted_states(destination).filter(contact__in=contacts.values("pk")).count()


def run_finish(*, run: SyncRun) -> None:
    """Close a run pushed in-process (contacts held by another worker are not counted), unless
    some of its contacts still await a platform's confirmation or a paused destination: the
    run then ends when the last of them settles (engine.finish_run_if_done)."""
    unsettled = ContactSyncState.objects.filter(
        run=run, status__in=[SyncStatus.AWAITING, SyncStatus.WAITING]
    )
    if unsettled.exists():
        return
    SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.RUNNING).update(
        state=SyncRun.State.FINISHED, finished_at=timezone.now()
    )


def _accepted_states(destination: Destination):
    """States whose contact is exactly as the platform last accepted it."""
    # unordered: the contacts' default ordering would sort each state's one-row subquery
    content_version = (
        Contact.objects.filter(pk=OuterRef("contact_id")).order_by().values("content_version")
    )
    return ContactSyncState.objects.filter(
        destination=destination,
        accepted_config_version=destination.config_version,
        accepted_content_version=Subquery(content_version[:1]),
    ).exclude(
        status__in=[
            SyncStatus.IN_PROGRESS,
            SyncStatus.WAITING,
            SyncStatus.SKIPPED,
            SyncStatus.AWAITING,  # taken in bulk, not yet confirmed
        ]
    )


# States that already say the platform holds the contact as it is: an unchanged re-push
# leaves them as they are (`_settle_batch`).
HELD_AS_IS = (SyncStatus.SYNCED, SyncStatus.UNCHANGED)


def _settle_unchanged(contacts, destination, run) -> int:
    """Settle as unchanged, in `run`, the contacts the platform holds as they are, in batches
    of SYNC_PLAN_BATCH contacts by id, each batch and the run's count in one short
    transaction (no lock on a million states at once; SQLite's one writer waits for one
    batch at most). Returns how many were settled."""
    if destination.is_paused:
        return 0
    ids = contacts.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=2000)
    settled = 0
    for batch in _chunks(ids, settings.SYNC_PLAN_BATCH):
        with transaction.atomic():
            count = len(_settle_batch(batch, destination, run, timezone.now()))
            if count:
                SyncRun.objects.filter(pk=run.pk).update(unchanged=F("unchanged") + count)
        settled += count
    return settled


def _settle_batch(contact_ids: list[int], destination, run, now) -> list[int]:
    """The contacts among these (ascending ids) that the platform holds exactly as they are:
    the run counts them as unchanged (the caller adds them). Returns their ids. Call inside
    a transaction.

    Only states that said something else (failed, or pending with an earlier try's error)
    are written: unchanged, in `run`, attempted now, error cleared. A state that already says
    the platform holds the contact (synced or unchanged, no error) is left as it is: its
    status, run and last attempt stay those of the push that sent it, since nothing was sent
    now. Writing them would say nothing new and costs the most: each such UPDATE rewrites the
    row and an entry in each of the states' indexes (50 s for a million states), and
    the counts' trigger then moves them from synced to unchanged on the dashboard. So after
    an unchanged re-push the dashboard counts these contacts where they were (synced stays
    synced), and the run counts them as unchanged."""
    accepted = (
        _accepted_states(destination)
        # the range lets the planner read a batch's states by index
        .filter(contact__gte=contact_ids[0], contact__lte=contact_ids[-1])
        .filter(IdIn(F("contact_id"), contact_ids))
    )
    _jit_off()
    held, stale = [], []
    for contact_id, status, error in accepted.values_list("contact_id", "status", "last_error"):
        held.append(contact_id)
        if status not in HELD_AS_IS or error:
            stale.append(contact_id)
    if stale:
        # checked again in the same statement (a claim or an edit since the read)
        accepted.filter(IdIn(F("contact_id"), stale)).update(
            status=SyncStatus.UNCHANGED, run=run, last_attempt_at=now, last_error=""
        )
    return held


def _jit_off() -> None:
    """For the rest of this transaction: PostgreSQL's JIT compiler takes longer than a
    planning batch's statements at their size (about 1 s each), and saves nothing."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def run_cancel(*, run: SyncRun) -> None:
    """Stop a running push: what was not sent stays as it was before the run."""
    SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.RUNNING).update(
        state=SyncRun.State.CANCELLED, finished_at=timezone.now()
    )
    ContactSyncState.objects.filter(
        run=run, status=SyncStatus.PENDING, next_attempt_at__isnull=True
    ).update(status=status_before_push())


# ----------------------------------------------------------------------- on save

# A save of this many contacts or fewer is someone at a page (a contact's form, a small
# change list edit): its pushes go ahead of bulk work. More is a bulk change, queued as bulk.
INTERACTIVE_CONTACTS = 10


def contacts_changed(*, contact_ids: set[int], user_id: int | None) -> None:
    """After a commit that changed these contacts: push them to every destination that pushes
    on save. One contact in immediate mode is pushed here and now, one try per destination;
    anything else is queued."""
    destinations = destinations_for_save()
    if not destinations or not contact_ids:
        return
    if settings.SYNC_ON_SAVE_MODE == "immediate" and len(contact_ids) == 1:
        (contact_id,) = contact_ids
        context = PushContext(trigger=Trigger.SAVE, user_id=user_id)
        for destination in destinations:
            try:
                contact_push(contact_id=contact_id, destination=destination, context=context)
            except Exception:  # never fail the user's save: log, and let a retry pick it up
                logger.exception("push of contact %s to %s failed", contact_id, destination)
        return
    contacts_enqueue_push(
        contact_ids=sorted(contact_ids),
        destinations=destinations,
        trigger=Trigger.SAVE,
        user_id=user_id,
        interactive=len(contact_ids) <= INTERACTIVE_CONTACTS,
    )


def contact_opt_out_propagate(*, contact_id: int, destination_id: int | None) -> int:
    """A platform's opt-out was applied to the contact (sync.inbound): queue its push to the
    other destinations that apply other platforms' opt-outs (`sync.consent.opt_out_targets`),
    as interactive work, after the current transaction commits; each sends the opt-out
    through its own platform's call. Returns how many destinations it is queued for."""
    targets = consent.opt_out_targets(destination_id=destination_id)
    if not targets:
        return 0

    def queue():
        try:
            contacts_enqueue_push(
                contact_ids=[contact_id],
                destinations=targets,
                trigger=Trigger.SAVE,
                interactive=True,
            )
        except Exception:  # the opt-out stands here; the next push of the contact carries it
            logger.exception("queueing the opt-out of contact %s failed", contact_id)

    transaction.on_commit(queue)
    return len(targets)


def contact_push_now(
    *, contact_id: int, destination: Destination, user_id: int | None, retry: bool = False
) -> str:
    """A person's "Push now" (forced: sent even when unchanged) or "Retry" (a failed push
    again) of one contact to one destination, from the contact's sync panel. Pushed here in
    immediate mode, like a save; queued for the workers otherwise. Returns what happened,
    for the page: "pushed", "queued", or why nothing was done ("paused", "disabled",
    "not failed")."""
    destination.refresh_from_db(fields=["enabled", "paused_at"])
    if not destination.enabled:
        return "disabled"
    if destination.is_paused:
        return "paused"
    state = ContactSyncState.objects.filter(contact_id=contact_id, destination=destination).first()
    if retry and (state is None or state.status != SyncStatus.FAILED):
        return "not failed"
    trigger = Trigger.RETRY if retry else Trigger.ACTION
    if settings.SYNC_ON_SAVE_MODE == "immediate":
        context = PushContext(trigger=trigger, user_id=user_id, force=not retry)
        contact_push(contact_id=contact_id, destination=destination, context=context)
        return "pushed"
    contacts_enqueue_push(
        contact_ids=[contact_id],
        destinations=[destination],
        trigger=trigger,
        user_id=user_id,
        force=not retry,
        interactive=True,
    )
    return "queued"


def contact_deleted(*, external_id: str, remote_ids: dict[int, str], user_id: int | None) -> None:
    """Queue the remote delete on each destination that enables it. The values it needs are
    passed along: the local rows are gone by the time it runs."""
    for destination in Destination.objects.filter(enabled=True, delete_on_platform=True):
        tasks.delete_contact.enqueue(
            destination_id=destination.pk,
            external_id=external_id,
            remote_id=remote_ids.get(destination.pk, ""),
            user_id=user_id,
        )


# ------------------------------------------------------------------------------ erasure


ERASURE_SETTLED = (
    EraseReceipt.Outcome.DELETED,
    EraseReceipt.Outcome.ABSENT,
    EraseReceipt.Outcome.BY_HAND,
)


def contact_erase(*, contact: Contact, user_id: int | None) -> Erasure:
    """Erase a person here and on every destination (sync.erasure does the work, queued).

    Written now, in one short transaction: the tombstone (keyed hashes of the email and
    external ID: `contacts.selectors`), the erasure keeping the external ID the platform
    calls need, and a pending receipt per destination with the remote id we hold there.
    Erasing a contact twice (a double click) queues nothing more."""
    from contacts.models import Tombstone
    from contacts.selectors import tombstone_hashes

    email_hash, external_id_hash = tombstone_hashes(
        email=contact.email, external_id=contact.external_id
    )
    remote_ids = dict(contact.sync_states.values_list("destination_id", "remote_id"))
    with transaction.atomic():
        running = Erasure.objects.filter(
            tombstone__external_id_hash=external_id_hash, state=Erasure.State.RUNNING
        ).first()
        if running is not None:
            return running
        tombstone = Tombstone.objects.create(
            email_hash=email_hash, external_id_hash=external_id_hash
        )
        erasure = Erasure.objects.create(
            tombstone=tombstone,
            pending_external_id=contact.external_id,
            contact_pk=contact.pk,
            requested_by_id=user_id,
        )
        EraseReceipt.objects.bulk_create(
            EraseReceipt(
                erasure=erasure,
                destination=destination,
                destination_name=destination.name,
                platform=destination.platform,
                remote_id=remote_ids.get(destination.pk, ""),
            )
            for destination in Destination.objects.order_by("name")
        )
        transaction.on_commit(lambda: tasks.erase_contact.enqueue(erasure_id=erasure.pk))
    return erasure


def erasure_retry(*, erasure: Erasure) -> int:
    """Ask again the platforms whose erasure failed, was not confirmed or never ran (a task
    lost with the database); returns how many. What is left to erase here is erased too."""
    retried = erasure.receipts.exclude(outcome__in=ERASURE_SETTLED).count()
    if not retried and erasure.local_erased_at is not None:
        return 0
    Erasure.objects.filter(pk=erasure.pk).update(state=Erasure.State.RUNNING)
    transaction.on_commit(lambda: tasks.erase_contact.enqueue(erasure_id=erasure.pk))
    return retried


# ---------------------------------------------------------------- destination-wide


def destination_test_connection(*, destination: Destination) -> tuple[bool, str]:
    """Call the platform's harmless authenticated endpoint. On success a paused destination
    resumes and its waiting contacts are queued again. Returns (ok, message)."""
    try:
        connector = destination_connector(destination=destination)
        message = connector.test_connection()
    except ConnectorError as err:
        return False, err.describe()
    except ConnectorConfigurationError as err:
        return False, str(err)
    if message and not message.endswith((".", "!", "?")):
        message += "."  # a platform's own words, as a sentence
    if destination_resume(destination=destination) is not None:
        message += " The destination is resumed; waiting contacts are queued."
    return True, message


def destination_probe(*, destination: Destination) -> tuple[bool, str]:
    """Run the vendor-change probe now (after "Test connection"): (every call answered in
    its shape, one sentence saying so or naming what changed or failed). A failed call (a
    403 included) is reported, never a pause."""
    try:
        outcomes = guard.destination_probe(destination=destination)
    except ConnectorConfigurationError as err:
        return False, str(err)
    return all(o.outcome == "ok" for o in outcomes), guard.probe_summary(outcomes)


def probes_enqueue_due(*, now=None) -> int:
    """Queue the daily probe of each enabled destination whose probe is due; how many. A
    destination the scheduler has not seen yet gets its first one a day on (the one made by
    "Test connection" when it is set up comes first). Each is claimed by moving its due time
    a day on, so several schedulers queue it once."""
    now = now or timezone.now()
    next_day = now + timedelta(hours=guard.PROBE_EVERY_HOURS)
    enabled = Destination.objects.filter(enabled=True)
    enabled.filter(probe_due_at__isnull=True).update(probe_due_at=next_day)
    queued = 0
    for destination_id in enabled.filter(probe_due_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            claimed = Destination.objects.filter(pk=destination_id, probe_due_at__lte=now).update(
                probe_due_at=next_day
            )
            if claimed:
                tasks.probe_destination.enqueue(destination_id=destination_id)
                queued += 1
    return queued


def polls_enqueue_due(*, now=None) -> int:
    """Queue the poll of each enabled, unpaused destination whose connector polls and whose
    poll is due (sync/polling.py); how many. Each is claimed by moving its due time one
    interval on in one UPDATE, so several schedulers queue it once. Due: one interval after
    the scheduler first saw the destination, then one interval after the last queued."""
    now = now or timezone.now()
    queued = 0
    for destination in Destination.objects.filter(enabled=True, paused_at__isnull=True):
        if destination.platform not in connectors.CONNECTORS:
            continue
        if not destination.connector_class.polls:
            continue
        # A destination first seen now gets its first poll one interval on (as its first
        # probe: a day on), so a scheduler started beside a fresh setup sends nothing at once.
        row, created = DestinationPoll.objects.get_or_create(
            destination=destination,
            defaults={"due_at": now + polling.poll_interval(destination)},
        )
        if created or (row.due_at is not None and row.due_at > now):
            continue
        with transaction.atomic():
            claimed = DestinationPoll.objects.filter(pk=row.pk, due_at=row.due_at).update(
                due_at=now + polling.poll_interval(destination)
            )
            if claimed:
                tasks.poll_destination.enqueue(destination_id=destination.pk)
                queued += 1
    return queued


def destination_resume(*, destination: Destination) -> int | None:
    """Lift a pause and queue the contacts that waited; how many, or None when it was not
    paused."""
    waiting = engine.destination_resume(destination=destination)
    if waiting:
        _enqueue_owed(
            [(cid, destination.pk, run_id) for cid, run_id in waiting], trigger=Trigger.RETRY
        )
    return None if waiting is None else len(waiting)


def destination_refresh_options(*, destination: Destination) -> int:
    """Fetch the platform's fields and lists for the mapping choices; returns how many.

    When one of the platform's lists fails, the others are stored all the same, the stored
    options of the failed kind are kept, and the PartialOptionsError naming the failed part is
    raised afterwards. Other ConnectorErrors leave every stored option as it was."""
    connector = destination_connector(destination=destination)
    partial = None
    try:
        options = connector.fetch_options()
    except PartialOptionsError as err:
        partial, options = err, err.options
    failed_kinds = {failure.kind for failure in partial.failures} if partial else set()
    with transaction.atomic():
        RemoteOption.objects.filter(destination=destination).exclude(kind__in=failed_kinds).delete()
        RemoteOption.objects.bulk_create(
            [
                RemoteOption(
                    destination=destination,
                    kind=o.kind,
                    remote_id=o.remote_id,
                    label=o.label,
                    type=o.type,
                )
                for o in options
            ],
            update_conflicts=True,  # an option of a failed kind may still be stored
            unique_fields=["destination", "kind", "remote_id"],
            update_fields=["label", "type"],
        )
        Destination.objects.filter(pk=destination.pk).update(options_refreshed_at=timezone.now())
    if partial is not None:
        raise partial
    return len(options)


@dataclass
class DryRun:
    """What pushing a selection to one destination would do; nothing is sent.

    For the whole selection: `selected`, `to_send`, `unchanged`, the `requests` that makes
    (bulk chunks counted, as the connector counts them) and, with what is already queued for
    the destination (`queued` contacts, `queued_requests`), `seconds` at its rate limit.
    `planned`: the exact requests for the first `shown` contacts to send."""

    destination: Destination
    selected: int = 0
    to_send: int = 0
    unchanged: int = 0
    requests: int = 0
    queued: int = 0
    queued_requests: int = 0
    rate: float = 0.0
    seconds: float = 0.0
    shown: int = 0
    planned: list[PlannedRequest] = field(default_factory=list)
    error: str = ""

    @property
    def duration(self) -> str:
        return duration_text(self.seconds)


def duration_text(seconds: float) -> str:
    """ "12 s", "4.5 min", "27.8 hours", "3.2 days"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def push_dry_run(
    *,
    contacts: QuerySet[Contact],
    destination: Destination | None = None,
    force: bool = False,
    show: int = 20,
) -> list[DryRun]:
    """Per destination (all enabled ones when None), what a push of `contacts` would cost
    and the exact requests for the first `show` contacts it would send. The counts are
    queries; bodies are built only for the contacts shown (by the connector's own builders,
    `planned_requests`). Sends nothing."""
    destinations = [destination] if destination else list(Destination.objects.filter(enabled=True))
    return [_dry_run(contacts, target, force, show) for target in destinations]


def _dry_run(contacts, destination, force, show) -> DryRun:
    selected = contacts.count()
    to_push = contacts
    if not force:
        accepted = _accepted_states(destination).filter(contact_id=OuterRef("pk"))
        to_push = contacts.exclude(Exists(accepted))
    to_send = to_push.count()
    states = ContactSyncState.objects.filter(destination=destination)
    with_id = states.filter(contact__in=to_push.values("pk")).exclude(remote_id="").count()
    queue = states.filter(status__in=[SyncStatus.PENDING, SyncStatus.IN_PROGRESS])
    queued = queue.count()
    result = DryRun(
        destination=destination,
        selected=selected,
        to_send=to_send,
        unchanged=selected - to_send,
        queued=queued,
        rate=destination.effective_rate_limit,
    )
    try:
        connector = destination_connector(destination=destination, throttle=False)
    except ConnectorConfigurationError as err:
        result.error = str(err)
        return result
    chunk = chunk_size_for(destination)
    result.requests = connector.request_count(
        contacts=to_send, without_remote_id=to_send - with_id, chunk_size=chunk
    )
    result.queued_requests = connector.request_count(
        contacts=queued, without_remote_id=queue.filter(remote_id="").count(), chunk_size=chunk
    )
    result.seconds = (result.requests + result.queued_requests) / result.rate
    ids = list(to_push.order_by("pk").values_list("pk", flat=True)[:show])
    remote = {
        s.contact_id: RemoteState(s.remote_id or None, s.accepted_email_status or None)
        for s in states.filter(contact_id__in=ids)
    }
    records = consent.records_guard(records=selectors.contact_records(ids), destination=destination)
    result.shown = len(records)
    try:
        result.planned = connector.planned_requests(
            [(record, remote.get(record.id, RemoteState())) for record in records]
        )
    except ConnectorError as err:
        result.error = f"Cannot build the requests: {err}"
    return result


def contact_preview_payloads(*, contact_ids: list[int]) -> list[dict]:
    """What each enabled destination would receive for each contact; sends nothing."""
    connectors = {}
    for destination in Destination.objects.filter(enabled=True):
        try:
            connectors[destination] = destination_connector(destination=destination, throttle=False)
        except ConnectorConfigurationError as err:
            connectors[destination] = err
    states = {
        (s.contact_id, s.destination_id): s
        for s in ContactSyncState.objects.filter(contact_id__in=contact_ids)
    }
    previews = []
    ledger = consent.ledger_rows(contact_ids)  # what each may be sent (sync.consent)
    for unguarded in selectors.contact_records(contact_ids):
        for destination, connector in connectors.items():
            record = consent.record_guard(unguarded, ledger.get(unguarded.id, {}), destination)
            state = states.get((record.id, destination.pk))
            remote = (
                RemoteState(state.remote_id or None, state.accepted_email_status or None)
                if state
                else RemoteState()
            )
            previews.append(
                {
                    "record": record,
                    "destination": destination,
                    "payload": _preview(connector, record, remote),
                }
            )
    return previews


def contact_sync_check(*, record: ContactRecord, contact_id: int | None) -> list[dict]:
    """Before a save: per enabled destination, whether its platform will refuse the contact
    as typed (the connector's own checks in `build_payload`, which raise PermanentError
    before any request) and which of its values it will not receive because they are not
    mapped there. Sends nothing, writes nothing.

    [{"destination", "refusal" (the platform's reason, "" if none), "unmapped" (labels)}]"""
    from contacts.models import Group, MailingList
    from sync.connectors.records import STANDARD_FIELDS

    states = (
        {s.destination_id: s for s in ContactSyncState.objects.filter(contact_id=contact_id)}
        if contact_id
        else {}
    )
    group_names = dict(Group.objects.filter(pk__in=record.group_ids).values_list("pk", "name"))
    list_names = dict(
        MailingList.objects.filter(pk__in=record.subscriptions).values_list("pk", "name")
    )
    checks = []
    for destination in Destination.objects.filter(enabled=True).order_by("name"):
        mapping = selectors.destination_mapping(destination)
        unmapped = [
            f"custom field “{value.name}”"
            for value in record.custom_values
            if value.value != "" and f"custom:{value.name}" not in mapping.fields
        ]
        unmapped += [
            str(STANDARD_FIELDS[name])
            for name in destination.connector_class.mappable_standard_fields
            if name in STANDARD_FIELDS
            and getattr(record, name, None) not in (None, "", (), False)
            and name not in mapping.fields
        ]
        unmapped += [
            f"group “{group_names[pk]}”"
            for pk in sorted(record.group_ids)
            if pk in group_names and pk not in mapping.groups
        ]
        unmapped += [
            f"mailing list “{list_names[pk]}”"
            for pk in sorted(record.subscriptions)
            if pk in list_names and pk not in mapping.mailing_lists
        ]
        state = states.get(destination.pk)
        remote = (
            RemoteState(state.remote_id or None, state.accepted_email_status or None)
            if state
            else RemoteState()
        )
        refusal = ""
        try:
            connector = destination_connector(destination=destination, throttle=False)
            connector.build_payload(record, remote)
        except PermanentError as err:
            refusal = str(err)
        except ConnectorConfigurationError:
            pass  # not the contact's fault: the destination's page and dashboard say so
        checks.append({"destination": destination, "refusal": refusal, "unmapped": unmapped})
    return checks


def _preview(connector, record, remote) -> str:
    if isinstance(connector, ConnectorConfigurationError):
        return f"Cannot build: {connector}"
    try:
        payload = connector.build_payload(record, remote)
    except PermanentError as err:
        return f"Cannot build: {err}"
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str)


# ----------------------------------------------------------------------- retries


def retries_enqueue_due(*, now=None, limit: int = 5000) -> int:
    """One pass of the scheduler: take back work held by dead workers, queue the retries
    that are due (each in the run it is owed to, with that run's flags) and the confirmations
    that are due (`confirmations_enqueue_due`). Safe to run on several machines at once (rows
    are claimed under lock), and to run again after a failed pass: a due state is held for
    one lease until its task is queued, so one that a failed pass never queued comes due
    again. Returns the number of pushes and confirmations queued."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    # By destination: claimed states are in the (destination, status) index only, not in the
    # due one (sync/migrations/0024_partial_push_indexes).
    ContactSyncState.objects.filter(
        destination_id__in=list(Destination.objects.values_list("pk", flat=True)),
        status=SyncStatus.IN_PROGRESS,
        claimed_at__lt=stale,
    ).update(status=SyncStatus.PENDING, next_attempt_at=now, claimed_at=None, claimed_by="")
    due = _claim_due(SyncStatus.PENDING, now=now, limit=limit)
    _enqueue_owed([row[1:] for row in due], trigger=Trigger.RETRY)
    return len(due) + confirmations_enqueue_due(now=now, limit=limit)


def _claim_due(status: str, *, now, limit: int) -> list[tuple[int, int, int, int | None]]:
    """The states in `status` whose next attempt is due, on enabled destinations that are not
    paused, claimed under lock by this pass and held for one lease (so that one a failed pass
    never queued comes due again): (state id, contact id, destination id, run id) each."""
    with transaction.atomic():
        due = list(
            ContactSyncState.objects.select_for_update(skip_locked=True)
            .filter(
                status=status,
                next_attempt_at__lte=now,
                destination__enabled=True,
                destination__paused_at__isnull=True,
            )
            .values_list("pk", "contact_id", "destination_id", "run_id")[:limit]
        )
        ContactSyncState.objects.filter(pk__in=[row[0] for row in due]).update(
            next_attempt_at=now + timedelta(seconds=settings.SYNC_LEASE_SECONDS)
        )
    return due


def confirmations_enqueue_due(*, now=None, limit: int = 5000) -> int:
    """Queue a check of the contacts a platform accepted in bulk whose next check is due
    (destinations enabled and not paused), held for one lease as retries are. Returns how
    many contacts are to be checked."""
    due = _claim_due(SyncStatus.AWAITING, now=now or timezone.now(), limit=limit)
    by_destination: dict[int, list[int]] = {}
    for _, contact_id, destination_id, _ in due:
        by_destination.setdefault(destination_id, []).append(contact_id)
    for destination_id, ids in by_destination.items():
        # one check per contact at most (a read-back): chunks as small as single pushes'
        for chunk in _chunks(ids, settings.SYNC_CHUNK_SIZE):
            tasks.confirm_contacts.enqueue(
                destination_id=destination_id, contact_ids=chunk, trigger=Trigger.RETRY
            )
    return len(due)


def _enqueue_owed(triples: Iterable[tuple[int, int, int | None]], *, trigger: str) -> int:
    """Queue (contact id, destination id, run id) again, each in the run it is owed to while
    that run is running, with the run's `force` and user (a retry or a resume must not drop
    them); without a running run, as plain pushes. Returns how many were queued."""
    groups: dict[tuple[int, int | None], list[int]] = {}
    for contact_id, destination_id, run_id in triples:
        groups.setdefault((destination_id, run_id), []).append(contact_id)
    runs = SyncRun.objects.in_bulk({run_id for _, run_id in groups if run_id}, field_name="pk")
    destinations = Destination.objects.in_bulk({did for did, _ in groups})
    queued = 0
    for (destination_id, run_id), ids in groups.items():
        run = runs.get(run_id)
        if run is not None and run.state != SyncRun.State.RUNNING:
            run = None
        if destination_id not in destinations:
            continue
        queued += contacts_enqueue_push(
            contact_ids=ids,
            destinations=[destinations[destination_id]],
            trigger=trigger,
            user_id=run.user_id if run else None,
            run=run,
            force=run.force if run else False,
        )
    return queued


def contacts_retry_failed(
    *,
    user_id: int | None,
    destination: Destination | None = None,
    contacts: QuerySet[Contact] | None = None,
) -> int:
    """Queue again every failed push: of these contacts (all when None), to this destination
    (every enabled one when None), under one run per destination. Returns how many."""
    states = ContactSyncState.objects.filter(status=SyncStatus.FAILED, destination__enabled=True)
    if destination is not None:
        states = states.filter(destination=destination)
    if contacts is not None:
        states = states.filter(contact__in=contacts)
    by_destination: dict[int, list[int]] = {}
    for contact_id, destination_id in states.values_list("contact_id", "destination_id"):
        by_destination.setdefault(destination_id, []).append(contact_id)
    queued = 0
    for target in Destination.objects.filter(pk__in=by_destination):
        ids = by_destination[target.pk]
        run = run_start(trigger=Trigger.RETRY, user_id=user_id, destination=target, total=len(ids))
        queued += contacts_enqueue_push(
            contact_ids=ids, destinations=[target], trigger=Trigger.RETRY, user_id=user_id, run=run
        )
    return queued


def attempts_prune(*, days: int, batch: int = 5000) -> int:
    """Delete attempt-log rows older than `days`, `batch` rows at a time, each batch its own
    short statement and transaction: the ids first (a range of the started_at index), then
    `DELETE … WHERE id IN (…)` by primary key, so no lock is held on the log for longer than
    one batch takes, whatever its size (bench/prune.py prints the longest). The dashboard's
    settled hours older than its week go with them. Returns how many attempts were deleted."""
    cutoff = timezone.now() - timedelta(days=days)
    old = SyncAttempt.objects.filter(started_at__lt=cutoff).order_by()
    deleted = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:batch])
        if not ids:
            break
        # Nothing refers to an attempt row and no signal watches it, so Django deletes without
        # fetching the rows: one DELETE statement in its own transaction.
        deleted += SyncAttempt.objects.filter(pk__in=ids).delete()[0]
    week = timezone.now() - timedelta(days=selectors.CHART_DAYS + 1)
    PushesPerHour.objects.filter(hour__lt=week).delete()
    return deleted


def pushes_per_hour_store(*, now=None) -> int:
    """Count the dashboard's settled hours of the week not yet stored into PushesPerHour
    (the scheduler, each pass: once an hour, one hour of the attempt log), so the dashboard
    does not recount a week of a ten-million-row log per view. Returns the rows stored."""
    now = now or timezone.now()
    ids = list(Destination.objects.values_list("pk", flat=True))
    since, settled, hours = selectors.week_hours(now)
    _, stored = selectors.stored_pushes(destination_ids=ids, since=since, until=settled)
    first = selectors.first_unstored_hour(hours, stored, ids)
    if first is None:
        return 0
    counted = selectors.count_pushes(start=first, end=settled)
    rows = [
        PushesPerHour(destination_id=pk, hour=h, pushes=counted.get((pk, h), 0))
        for h in hours
        if h >= first
        for pk in ids
        if (pk, h) not in stored
    ]
    # two schedulers storing the same hours at once: the same counts, kept once
    PushesPerHour.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# Any constant: the advisory lock that lets one compaction run at a time across schedulers.
STATUS_COUNTS_LOCK = 0x5C0DE021


def status_counts_compact() -> int:
    """Fold the sync-state count deltas the PostgreSQL triggers appended into the totals
    (the scheduler, each pass), so the dashboard's read (`selectors.status_counts`) stays a
    few hundred rows. Returns the delta rows folded. Deltas are deleted and added to the
    totals in one statement, so totals plus deltas are the same before and after; deltas
    committed meanwhile are not in the statement's snapshot and wait for the next pass. One
    scheduler folds at a time (a second finds the lock taken and returns 0). SQLite's triggers
    update the totals themselves: nothing to fold there, only a deleted destination's zeros
    to remove."""
    if connection.vendor != "postgresql":
        SyncStatusCount.objects.filter(n=0).delete()
        return 0
    totals = SyncStatusCount._meta.db_table
    deltas = SyncStatusCountDelta._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [STATUS_COUNTS_LOCK])
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute(
            f"""
            WITH folded AS (DELETE FROM {deltas} RETURNING destination_id, status, error, n),
            summed AS (
                SELECT destination_id, status, error, sum(n) AS n, count(*) AS rows
                FROM folded GROUP BY destination_id, status, error
            ),
            added AS (
                INSERT INTO {totals} AS t (destination_id, status, error, n)
                SELECT destination_id, status, error, n FROM summed
                ON CONFLICT (destination_id, status, md5(error))
                DO UPDATE SET n = t.n + EXCLUDED.n
            )
            SELECT coalesce(sum(rows), 0) FROM summed
            """
        )
        folded = cursor.fetchone()[0]
        # an error no state has any more, a deleted destination's counts: fallen to zero
        cursor.execute(f"DELETE FROM {totals} WHERE n = 0")
    return int(folded)


def inbound_per_hour_store(*, now=None) -> int:
    """Count the settled hours of the week not yet stored into InboundPerHour (the
    scheduler, each pass: once an hour, one hour of events), as `pushes_per_hour_store` does
    for pushes. Returns the rows stored."""
    now = now or timezone.now()
    ids = list(Destination.objects.values_list("pk", flat=True))
    since, settled, hours = selectors.week_hours(now)
    _, stored = selectors.stored_inbound(destination_ids=ids, since=since, until=settled)
    first = selectors.first_unstored_hour(hours, stored, ids)
    if first is None:
        return 0
    counted = selectors.count_inbound(start=first, end=settled)
    rows = [
        InboundPerHour(
            destination_id=pk,
            hour=h,
            **dict(
                zip(InboundPerHour.COUNTS, counted.get((pk, h), selectors.ZERO_COUNTS), strict=True)
            ),
        )
        for h in hours
        if h >= first
        for pk in ids
        if (pk, h) not in stored
    ]
    # two schedulers storing the same hours at once: the same counts, kept once
    InboundPerHour.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# -------------------------------------------------------- django-tasks-db's task rows


class TaskAbandoned(Exception):
    """Recorded on a task row left running by a worker that died (killed, or its machine)."""


TASK_ABANDONED_PATH = f"{TaskAbandoned.__module__}.{TaskAbandoned.__qualname__}"


def tasks_fail_abandoned(*, now=None, limit: int = 500) -> int:
    """Mark failed the task rows still RUNNING after the lease whose contacts nobody holds any
    more (a worker killed with SIGKILL never finishes its row; its contacts' claims went stale
    and were taken back by `retries_enqueue_due`). The reason goes in the row's traceback.
    Returns how many rows were marked."""
    now = now or timezone.now()
    lease = settings.SYNC_LEASE_SECONDS
    stale = now - timedelta(seconds=lease)
    running = DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING, started_at__lt=stale)
    marked = 0
    for row in running.order_by("started_at")[:limit]:
        if _task_contacts_held(row, stale):
            continue
        reason = (
            f"Abandoned: running since {row.started_at:%Y-%m-%d %H:%M:%S %Z}, longer than the "
            f"lease (SYNC_LEASE_SECONDS={lease:g}), and none of its contacts is claimed any "
            f"more. Its worker ({', '.join(row.worker_ids) or 'unknown'}) stopped without "
            "finishing it; the scheduler took its contacts back and queues them again."
        )
        marked += DBTaskResult.objects.filter(pk=row.pk, status=TaskResultStatus.RUNNING).update(
            status=TaskResultStatus.FAILED,
            finished_at=now,
            return_value=None,
            exception_class_path=TASK_ABANDONED_PATH,
            traceback=reason,
        )
        logger.warning("task %s (%s) marked failed. %s", row.pk, row.task_path, reason)
    return marked


def _task_contacts_held(row: DBTaskResult, stale) -> bool:
    """Whether a live claim (fresher than the lease) holds one of a push task's contacts, or
    (a background import's task, a run's planning) its job has progressed within the
    lease."""
    from contacts.services import import_task_progressing

    kwargs = (row.args_kwargs or {}).get("kwargs", {})
    if import_task_progressing(task_path=row.task_path, kwargs=kwargs, since=stale):
        return True
    if row.task_path == tasks.prepare_run.module_path:  # a run's planning, still moving on
        return SyncRun.objects.filter(pk=kwargs.get("run_id"), planned_at__gte=stale).exists()
    if not kwargs.get("contact_ids"):
        return False
    return ContactSyncState.objects.filter(
        destination_id=kwargs.get("destination_id"),
        contact_id__in=kwargs["contact_ids"],
        status=SyncStatus.IN_PROGRESS,
        claimed_at__gte=stale,
    ).exists()


def tasks_prune(*, days: int, batch: int = 5000) -> int:
    """Delete finished task rows (successful or failed) older than `days`, in batches (no long
    lock; django-tasks-db's table slows down past a few hundred thousand rows). Returns how
    many were deleted."""
    cutoff = timezone.now() - timedelta(days=days)
    finished = DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED],
        finished_at__lt=cutoff,
    ).order_by()
    deleted = 0
    while True:
        ids = list(finished.values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += DBTaskResult.objects.filter(pk__in=ids).delete()[0]


# ------------------------------------------------------------------ read-back and drift


def reconcile_candidates(
    *, destination: Destination, sample: int | None = None, ids: list[int] | None = None
) -> list[int]:
    """The contacts a reconcile reads back: `ids` as given (those that exist), else a random
    `sample` of the contacts the platform accepted a version of (our state says it holds
    them), else (`sample` None) every contact, in id order."""
    if ids is not None:
        return list(Contact.objects.filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
    if sample is None:
        return list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    held = ContactSyncState.objects.filter(destination=destination).exclude(payload_hash="")
    return sorted(held.order_by("?").values_list("contact_id", flat=True)[:sample])


def destination_reconcile(*, destination: Destination, contact_ids: list[int]) -> ReconcileReport:
    """Read these contacts back here, in this process (the command's way), and store their
    drift."""
    return drift.contacts_reconcile(destination=destination, contact_ids=contact_ids)


def reconcile_enqueue(*, destination: Destination, contact_ids: list[int]) -> int:
    """Queue read-backs of these contacts in chunks (the admin's and the scheduler's way).
    Returns how many contacts were queued."""
    for chunk in _chunks(contact_ids, settings.SYNC_CHUNK_SIZE):
        tasks.reconcile_contacts.enqueue(destination_id=destination.pk, contact_ids=chunk)
    return len(contact_ids)


def reconcile_enqueue_daily(*, now=None, sample: int | None = None) -> int:
    """Once a day per enabled, unpaused destination, queue the read-back of a random sample
    of its contacts (SYNC_RECONCILE_SAMPLE; 0 turns it off). A destination is claimed by
    moving its `reconciled_at` in one UPDATE, so that several schedulers queue it once."""
    sample = settings.SYNC_RECONCILE_SAMPLE if sample is None else sample
    if sample <= 0:
        return 0
    now = now or timezone.now()
    due = Destination.objects.filter(enabled=True, paused_at__isnull=True).filter(
        Q(reconciled_at__isnull=True) | Q(reconciled_at__lte=now - timedelta(days=1))
    )
    queued = 0
    for destination in due:
        claimed = Destination.objects.filter(
            pk=destination.pk, reconciled_at=destination.reconciled_at
        ).update(reconciled_at=now)
        if claimed:
            ids = reconcile_candidates(destination=destination, sample=sample)
            queued += reconcile_enqueue(destination=destination, contact_ids=ids)
    return queued


def drifted_repush(*, destinations: Iterable[Destination], user_id: int | None) -> int:
    """Push again, forced, every contact a read-back found drifted (or missing) on these
    destinations, under one run per destination. Returns how many pushes were queued."""
    queued = 0
    for destination in destinations:
        ids = list(
            ContactDrift.objects.filter(destination=destination)
            .order_by("contact_id")
            .values_list("contact_id", flat=True)
        )
        if not ids:
            continue
        run = run_start(
            trigger=Trigger.ACTION,
            user_id=user_id,
            destination=destination,
            total=len(ids),
            force=True,
        )
        queued += contacts_enqueue_push(
            contact_ids=ids,
            destinations=[destination],
            trigger=Trigger.ACTION,
            user_id=user_id,
            run=run,
            force=True,
        )
    return queued


def inbound_delivery_receive(
    *, token: str, method: str, headers: dict[str, str], body: bytes, query: dict[str, str]
) -> inbound.Answer:
    """A platform's delivery to an inbound URL (sync.inbound): verified and stored, then its
    events queued for processing after the commit. Returns the answer to give at once."""
    answer, stored = inbound.delivery_receive(
        token=token, method=method, headers=headers, body=body, query=query
    )
    if stored:
        transaction.on_commit(lambda: tasks.process_inbound_events.enqueue(event_ids=stored))
    return answer


def inbound_events_reprocess(*, event_ids: list[int]) -> int:
    """Run failed inbound events again (their processing is idempotent); returns how many
    were queued. Only failed ones: an applied event is never applied twice."""
    failed = InboundEvent.objects.filter(pk__in=event_ids, state=InboundEvent.State.FAILED)
    ids = list(failed.values_list("pk", flat=True))
    if ids:
        InboundEvent.objects.filter(pk__in=ids).update(state=InboundEvent.State.PENDING, error="")
        transaction.on_commit(lambda: tasks.process_inbound_events.enqueue(event_ids=ids))
    return len(ids)
