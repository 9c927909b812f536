"""Fairness with a real worker (`sync_worker`, django-tasks-db's loop with a fair choice of
task): a person's push goes ahead of bulk chunks for a slow, rate-limited destination; a
chunk blocked by its destination's limit gives its place back to another destination's
chunk; a chunk with requests in flight goes on with the next chunk of its push only when
nothing else is ready; one contact is never pushed twice, and runs count each contact once.

The worker runs in this process on both databases (a transactional test: it commits like a
worker process); several worker processes share PostgreSQL in the last test."""

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Min
from django_tasks_db.models import DBTaskResult

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import selectors, services
from sync.models import ContactSyncState, SyncAttempt, SyncRun, SyncStatus
from tests.conftest import PLATFORMS, platforms_with
from tests.sync.conftest import sandbox_store
from tests.sync.processes import manage, process_env

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = platforms_with(bulk=False)[0]  # one request per contact: its limit paces the chunk
OTHER = next(p for p in PLATFORMS if p != SLOW)
BULK = platforms_with(bulk=True)[0]  # batch calls: the worker's own work paces its chunks


def run_worker(*args):
    call_command("sync_worker", "--batch", "--no-startup-delay", "--no-reload", *args)


def push_tasks(destination):
    return DBTaskResult.objects.filter(
        task_path=selectors.PUSH_TASK_PATH, args_kwargs__kwargs__destination_id=destination.pk
    )


def attempts_per_contact(destination) -> set[int]:
    counts = SyncAttempt.objects.filter(destination=destination).values("contact_id")
    return set(counts.annotate(n=Count("id")).values_list("n", flat=True))


def test_an_interactive_push_is_taken_before_queued_bulk_chunks(
    sandbox_destination, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "queued"
    settings.SYNC_CHUNK_SIZE = 2
    slow = sandbox_destination(SLOW, rate_limit=4)
    seed_demo_contacts(7)
    bulk_ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))[:6]
    services.contacts_push_selected(
        contacts=Contact.objects.filter(pk__in=bulk_ids),
        destination=slow,
        trigger="action",
        user_id=None,
    )
    person = Contact.objects.exclude(pk__in=bulk_ids).get()
    assert (
        services.contact_push_now(contact_id=person.pk, destination=slow, user_id=None) == "queued"
    )
    interactive = push_tasks(slow).get(priority=selectors.PRIORITY_INTERACTIVE)
    assert push_tasks(slow).filter(priority=selectors.PRIORITY_BULK).count() == 3

    run_worker()

    interactive.refresh_from_db()
    first_bulk = push_tasks(slow).filter(priority=selectors.PRIORITY_BULK)
    assert interactive.started_at < first_bulk.aggregate(first=Min("started_at"))["first"]
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert attempts_per_contact(slow) == {1}
    run = SyncRun.objects.get()
    assert (run.state, run.done, run.total) == (SyncRun.State.FINISHED, 6, 6)


def test_an_interactive_only_worker_leaves_bulk_chunks_queued(
    sandbox_destination, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "queued"
    slow = sandbox_destination(SLOW)
    seed_demo_contacts(3)
    first, *rest = Contact.objects.order_by("pk")
    services.contacts_push_selected(
        contacts=Contact.objects.filter(pk__in=[c.pk for c in rest]),
        destination=slow,
        trigger="action",
        user_id=None,
    )
    services.contact_push_now(contact_id=first.pk, destination=slow, user_id=None)

    run_worker("--interactive-only")

    statuses = dict(ContactSyncState.objects.values_list("contact_id", "status"))
    assert statuses == {
        first.pk: SyncStatus.SYNCED,
        **{c.pk: SyncStatus.PENDING for c in rest},
    }
    assert push_tasks(slow).get(priority=selectors.PRIORITY_BULK).status == "READY"


def test_a_chunk_waiting_on_its_limit_gives_way_to_another_destination(
    sandbox_destination, sandbox, settings
):
    settings.SYNC_CHUNK_SIZE = 100
    slow = sandbox_destination(SLOW, rate_limit=2)  # 6 contacts: about 3 s alone
    other = sandbox_destination(OTHER)
    seed_demo_contacts(6)
    contacts = Contact.objects.all()
    slow_run = services.contacts_push_selected(
        contacts=contacts, destination=slow, trigger="action", user_id=None
    )
    other_run = services.contacts_push_selected(
        contacts=contacts, destination=other, trigger="action", user_id=None
    )
    assert push_tasks(slow).count() == 1  # one chunk, queued ahead of the other destination's

    run_worker()

    other_done = SyncAttempt.objects.filter(destination=other).aggregate(t=Max("started_at"))["t"]
    slow_times = list(
        SyncAttempt.objects.filter(destination=slow)
        .order_by("started_at")
        .values_list("started_at", flat=True)
    )
    # the slow chunk sent its first contact, then gave its place back: the other destination
    # was done before the slow one's second contact went
    assert len(slow_times) == 6 and other_done < slow_times[1]
    assert push_tasks(slow).count() > 1  # queued again with the contacts it had not reached
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert attempts_per_contact(slow) == attempts_per_contact(other) == {1}
    for run in (slow_run, other_run):
        run.refresh_from_db()
        assert (run.state, run.done, run.total) == (SyncRun.State.FINISHED, 6, 6)


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_bulk_destination_s_chunks_go_on_while_a_slow_one_gave_way(
    sandbox_destination, sandbox, settings, lanes
):
    """A batch chunk's request takes a slot of its destination's limit, but that slot does
    not make the destination busy: the worker takes its next chunk at once, not a chunk of
    the slow destination that just gave its place back (its limit would make it wait). The
    slow chunk sent its first contact before giving way, one request at a time or several
    in flight."""
    settings.SYNC_CHUNK_SIZE = 3
    settings.SYNC_BULK_CHUNK_SIZE = 3
    settings.SYNC_REQUESTS_IN_FLIGHT = lanes
    slow = sandbox_destination(SLOW, rate_limit=2)  # half a second between two requests
    bulk = sandbox_destination(BULK)
    seed_demo_contacts(6)
    contacts = Contact.objects.all()
    runs = [
        services.contacts_push_selected(
            contacts=contacts, destination=destination, trigger="action", user_id=None
        )
        for destination in (slow, bulk)
    ]
    assert (push_tasks(slow).count(), push_tasks(bulk).count()) == (2, 2)  # slow ones first

    run_worker()

    slow_tasks = push_tasks(slow)
    requeued = slow_tasks.order_by("enqueued_at").last()
    assert slow_tasks.count() == 3 and len(requeued.args_kwargs["kwargs"]["contact_ids"]) == 2
    # the first slow chunk sent one contact and gave way; the worker then took both bulk
    # chunks, one after the other, before any other chunk of the slow destination
    slow_starts = sorted(slow_tasks.values_list("started_at", flat=True))
    assert max(push_tasks(bulk).values_list("started_at", flat=True)) < slow_starts[1]
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert attempts_per_contact(slow) == attempts_per_contact(bulk) == {1}
    for run in runs:
        run.refresh_from_db()
        assert (run.state, run.done, run.total) == (SyncRun.State.FINISHED, 6, 6)


def test_a_chunk_in_flight_goes_on_with_the_next_chunk_of_its_push(
    sandbox_destination, sandbox, settings
):
    settings.SYNC_CHUNK_SIZE = 5
    settings.SYNC_REQUESTS_IN_FLIGHT = 4
    slow = sandbox_destination(SLOW, rate_limit=50)
    seed_demo_contacts(15)
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=slow, trigger="action", user_id=None
    )
    first, *later = push_tasks(slow).order_by("enqueued_at")
    assert len(later) == 2

    run_worker()

    first.refresh_from_db()
    for task in later:
        task.refresh_from_db()
        # taken on by the first chunk's task, before it ended: no gap between the chunks
        assert task.status == "SUCCESSFUL" and task.started_at < first.finished_at
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert attempts_per_contact(slow) == {1}
    run.refresh_from_db()
    assert (run.state, run.done, run.total) == (SyncRun.State.FINISHED, 15, 15)


def test_a_chunk_takes_no_next_chunk_while_another_destination_waits(
    sandbox_destination, sandbox, settings
):
    settings.SYNC_CHUNK_SIZE = 5
    settings.SYNC_REQUESTS_IN_FLIGHT = 4
    slow = sandbox_destination(SLOW, rate_limit=1000)  # no wait: the chunk never gives way
    other = sandbox_destination(OTHER)
    seed_demo_contacts(10)
    contacts = Contact.objects.all()
    services.contacts_push_selected(
        contacts=contacts, destination=slow, trigger="action", user_id=None
    )
    services.contacts_push_selected(
        contacts=contacts, destination=other, trigger="action", user_id=None
    )
    _, second = push_tasks(slow).order_by("enqueued_at")

    run_worker()

    second.refresh_from_db()
    other_started = push_tasks(other).aggregate(t=Min("started_at"))["t"]
    assert other_started < second.started_at  # the other destination's chunk went first
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert attempts_per_contact(slow) == attempts_per_contact(other) == {1}


@pytest.mark.postgres
def test_two_worker_processes_keep_each_contact_in_one_push(
    sandbox_destination, sandbox, sandbox_env, settings
):
    """Two sync_worker processes, a slow destination's chunks giving their place back to a
    stream of interactive pushes of the same contacts: each contact reaches the platform once
    per change, none is ever claimed by two pushes at once (no duplicate on the platform)."""
    settings.SYNC_CHUNK_SIZE = 5
    settings.SYNC_ON_SAVE_MODE = "queued"
    slow = sandbox_destination(SLOW, rate_limit=5)
    seed_demo_contacts(20)
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=slow, trigger="action", user_id=None
    )
    for contact_id in ids[::4]:  # a person pushing some of the same contacts meanwhile
        services.contact_push_now(contact_id=contact_id, destination=slow, user_id=None)
    env = process_env(SYNC_CHUNK_SIZE=5, **sandbox_env)
    workers = [
        manage("sync_worker", "--batch", "--no-startup-delay", "--no-reload", env=env)
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    states = ContactSyncState.objects.filter(destination=slow)
    assert set(states.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert len(sandbox_store(sandbox, SLOW)["contacts"]) == 20  # no duplicate on the platform
    assert attempts_per_contact(slow) <= {1, 2}  # the bulk push, and a person's forced one
    interactive = push_tasks(slow).filter(priority=selectors.PRIORITY_INTERACTIVE)
    first_bulk_end = push_tasks(slow).filter(priority=selectors.PRIORITY_BULK)
    assert (
        interactive.aggregate(t=Max("started_at"))["t"]
        < first_bulk_end.aggregate(t=Max("finished_at"))["t"]
    )
    run.refresh_from_db()
    assert (run.state, run.total) == (SyncRun.State.FINISHED, 20)
