"""A run started from the admin is planned and queued by a worker (sync.services.run_prepare):
in batches, resumable after the worker died, cancellable while it is being prepared."""

import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services, tasks
from sync.models import ContactSyncState, SyncRun, SyncRunSelection, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import (
    payload_keys,
    run_queued_chunks,
    sandbox_requests,
    sandbox_store,
)
from tests.sync.processes import manage, process_env, run_worker_until_idle
from tests.sync.test_status_counts import assert_store_exact

# A platform pushed one contact per request: one request per pushed contact.
PLATFORM = platform_with(bulk=False)


def _start(destination, **options):
    return services.contacts_push_in_background(
        contacts=Contact.objects.all(),
        destination=destination,
        trigger="action",
        user_id=None,
        **options,
    )


@pytest.mark.django_db
def test_the_planning_goes_in_batches_and_counts_the_unchanged_once(
    sandbox_destination, sandbox, settings
):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(25)
    ids = sorted(Contact.objects.values_list("pk", flat=True))
    first = services.contacts_push_selected(
        contacts=Contact.objects.filter(pk__in=ids[:3]),
        destination=destination,
        trigger="action",
        user_id=None,
    )
    services.contacts_push_chunk(
        destination_id=destination.pk,
        contact_ids=ids[:3],
        context=services.PushContext(trigger="action", run_id=first.pk),
    )
    assert ContactSyncState.objects.filter(status=SyncStatus.SYNCED).count() == 3
    requests_before = sandbox_requests(sandbox)
    Contact.objects.filter(pk=ids[-1]).delete()  # before the click: not selected
    settings.SYNC_PLAN_BATCH = 7
    run = _start(destination)
    assert (run.selected, run.total) == (24, 24)
    Contact.objects.filter(pk=ids[-2]).delete()  # after the click, before the planning

    tasks.prepare_run.call(run_id=run.pk)
    run.refresh_from_db()
    # 24 selected, in 4 batches of at most 7; the one deleted meanwhile is no longer owed
    assert (run.planned, run.total, run.unchanged, run.preparing) == (24, 23, 3, False)
    pending = ContactSyncState.objects.filter(run=run, status=SyncStatus.PENDING)
    assert sorted(pending.values_list("contact_id", flat=True)) == ids[3:-2]
    # the 3 the platform holds as they are: counted by the run, their states left as they were
    held = ContactSyncState.objects.filter(contact_id__in=ids[:3])
    assert set(held.values_list("status", "run_id")) == {(SyncStatus.SYNCED, first.pk)}
    chunks = DBTaskResult.objects.filter(
        task_path="sync.tasks.push_contacts", args_kwargs__kwargs__run_id=run.pk
    )
    queued = sorted(i for c in chunks for i in c.args_kwargs["kwargs"]["contact_ids"])
    assert queued == ids[3:-2]
    assert sandbox_requests(sandbox) == requests_before  # planning sends nothing


@pytest.mark.django_db
def test_a_batch_takes_as_many_statements_whatever_its_number_of_chunks(
    sandbox_destination, settings
):
    """The states of a whole batch are written in one statement and its chunks' task rows in
    another (sync.services._queue_batch), not three or four statements a chunk."""
    seed_demo_contacts(40)
    settings.SYNC_PLAN_BATCH = 1000
    queries = {}
    for chunk_size in (20, 2):
        settings.SYNC_CHUNK_SIZE = chunk_size
        destination = sandbox_destination(PLATFORM, name=f"chunks of {chunk_size}")
        run = _start(destination)
        with CaptureQueriesContext(connection) as planning:
            tasks.prepare_run.call(run_id=run.pk)
        chunks = DBTaskResult.objects.filter(
            task_path="sync.tasks.push_contacts", args_kwargs__kwargs__run_id=run.pk
        )
        assert chunks.count() == 40 // chunk_size
        assert ContactSyncState.objects.filter(run=run, status=SyncStatus.PENDING).count() == 40
        queries[chunk_size] = len(planning.captured_queries)
    assert queries[2] == queries[20], queries


@pytest.mark.django_db
def test_the_batch_s_states_become_pending_in_the_run_except_one_held_by_a_worker(
    sandbox_destination,
):
    """One upsert for the batch: the states there already (synced, failed with a retry
    time, pending in another run) become pending in this run with no retry time, their
    other columns kept; one in progress is left to its worker; the missing ones are made
    pending in the run; the dashboard's counts follow (the triggers see the upsert)."""
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(6)
    ids = sorted(Contact.objects.values_list("pk", flat=True))
    earlier = services.run_start(trigger="action", user_id=None, destination=destination, total=1)
    later = timezone.now() + timedelta(hours=1)
    given = {
        ids[0]: dict(status=SyncStatus.SYNCED, remote_id="R0", payload_hash="h0", attempts=0),
        ids[1]: dict(status=SyncStatus.FAILED, last_error="HTTP 500", next_attempt_at=later),
        ids[2]: dict(status=SyncStatus.PENDING, run=earlier),
        ids[3]: dict(status=SyncStatus.IN_PROGRESS, claimed_by="w1", run=earlier),
    }
    for contact_id, fields in given.items():
        ContactSyncState.objects.create(contact_id=contact_id, destination=destination, **fields)
    assert_store_exact("before")
    run = _start(destination, force=True)  # forced: every contact is queued
    tasks.prepare_run.call(run_id=run.pk)

    states = {s.contact_id: s for s in ContactSyncState.objects.filter(destination=destination)}
    assert sorted(states) == ids
    for contact_id in [ids[0], ids[1], ids[2], ids[4], ids[5]]:
        state = states[contact_id]
        assert (state.status, state.run_id, state.next_attempt_at) == (
            SyncStatus.PENDING,
            run.pk,
            None,
        )
    assert (states[ids[0]].remote_id, states[ids[0]].payload_hash) == ("R0", "h0")
    assert states[ids[1]].last_error == "HTTP 500"
    held = states[ids[3]]
    assert (held.status, held.claimed_by, held.run_id) == (
        SyncStatus.IN_PROGRESS,
        "w1",
        earlier.pk,
    )
    new = states[ids[4]]
    assert (new.remote_id, new.attempts, new.last_error, new.claimed_by) == ("", 0, "", "")
    assert new.updated_at is not None
    chunks = DBTaskResult.objects.filter(
        task_path="sync.tasks.push_contacts", args_kwargs__kwargs__run_id=run.pk
    )
    assert sorted(i for c in chunks for i in c.args_kwargs["kwargs"]["contact_ids"]) == ids
    assert_store_exact("planned")


@pytest.mark.django_db
def test_destinations_disabled_or_added_while_it_is_prepared_change_nothing_it_owes(
    sandbox_destination, sandbox
):
    """The run owes what it counted at the click: a destination disabled before its planning
    is neither pushed nor owed (its chunks would be dropped and the run never finish), and
    one enabled since is not pushed by it."""
    kept = sandbox_destination(PLATFORM)
    dropped = sandbox_destination(PLATFORM, name="second")
    seed_demo_contacts(4)
    run = _start(None)
    assert (run.selected, run.total) == (4, 8)
    dropped.enabled = False
    dropped.save()
    sandbox_destination(PLATFORM, name="third")  # enabled after the click
    tasks.prepare_run.call(run_id=run.pk)
    run.refresh_from_db()
    assert (run.planned, run.total, run.preparing) == (4, 4, False)
    chunks = DBTaskResult.objects.filter(task_path="sync.tasks.push_contacts")
    assert {c.args_kwargs["kwargs"]["destination_id"] for c in chunks} == {kept.pk}
    run_queued_chunks(chunks, run)  # as a worker runs them
    run.refresh_from_db()
    assert (run.state, run.created + run.updated + run.accepted) == (SyncRun.State.FINISHED, 4)


@pytest.mark.django_db
def test_a_run_cancelled_while_being_prepared_queues_nothing(sandbox_destination):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(10)
    run = _start(destination)
    services.run_cancel(run=run)
    tasks.prepare_run.call(run_id=run.pk)
    run.refresh_from_db()
    assert (run.state, run.preparing) == (SyncRun.State.CANCELLED, False)
    assert not SyncRunSelection.objects.exists()
    assert not ContactSyncState.objects.exists()
    assert not DBTaskResult.objects.filter(task_path="sync.tasks.push_contacts").exists()


@pytest.mark.django_db
def test_a_planning_still_queued_is_not_queued_again(sandbox_destination, settings):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(5)
    run = _start(destination)
    settings.SYNC_LEASE_SECONDS = 0
    assert services.runs_prepare_recover() == 0  # its task waits for a worker
    DBTaskResult.objects.update(status="FAILED")  # as the scheduler marks an abandoned one
    assert services.runs_prepare_recover() == 1
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    run.refresh_from_db()
    assert run.preparing


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_planning_loses_nothing_and_duplicates_nothing(
    sandbox_destination, sandbox, sandbox_env, settings
):
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    destination = sandbox_destination(PLATFORM, rate_limit=1000)
    seed_demo_contacts(600)
    run = _start(destination)
    env = process_env(**sandbox_env, SYNC_PLAN_BATCH="2")  # 300 batches: time to kill it
    worker = manage(
        "db_worker",
        "--no-startup-delay",
        "--no-reload",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while SyncRun.objects.get(pk=run.pk).planned < 20:
        assert time.monotonic() < deadline, "the worker planned nothing"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    run.refresh_from_db()
    assert run.preparing and 20 <= run.planned < 600, run.planned
    assert SyncRunSelection.objects.filter(run=run).count() == 600 - run.planned
    planned_at_kill = run.planned

    settings.SYNC_LEASE_SECONDS = 0.5
    time.sleep(1.0)
    assert services.tasks_fail_abandoned() == 1  # the dead worker's planning task
    assert services.runs_prepare_recover() == 1  # queued again, from where it stopped
    run_worker_until_idle(env)

    run.refresh_from_db()
    assert (run.state, run.preparing, run.planned) == (SyncRun.State.FINISHED, False, 600)
    assert run.created + run.updated + run.accepted == 600 and run.failed == 0
    assert planned_at_kill < 600
    statuses = ContactSyncState.objects.values_list("status", flat=True)
    assert list(statuses.distinct()) == [SyncStatus.SYNCED]
    stored = sandbox_store(sandbox, PLATFORM)["contacts"]
    assert len(stored) == 600 == len({c[payload_keys(destination)[0]] for c in stored})
    assert sandbox_requests(sandbox) == 600
