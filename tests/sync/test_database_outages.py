"""The worker and the scheduler survive the database: a SQLite write lock held by someone else
during a push, a PostgreSQL restart mid-push, an outcome write that keeps failing, task rows
left RUNNING by a killed worker, and the pruning of finished task rows."""

import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, OperationalError, connection, transaction
from django.test import override_settings
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import dbretry, engine, services, tasks
from sync.management.commands import sync_scheduler
from sync.models import ContactSyncState, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import payload_keys, sandbox_store
from tests.sync.processes import ROOT, manage, postgres_restart, process_env

# A platform pushed one contact per request: one request per pushed contact.
PLATFORM = platform_with(bulk=False)


def locked_error():
    return OperationalError("database is locked")


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries without waiting (only this module's backoff, not time.sleep)."""
    monkeypatch.setattr(dbretry, "backoff", lambda attempt: 0.0)


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# ------------------------------------------------------------------ the retry itself


@pytest.mark.django_db(transaction=True)
def test_a_locked_write_is_retried_then_succeeds(no_backoff):
    calls = []

    def write():
        calls.append(1)
        if len(calls) < 3:
            raise locked_error()
        return "written"

    assert dbretry.with_database_retry(write) == "written"
    assert len(calls) == 3


@pytest.mark.django_db(transaction=True)
def test_no_retry_inside_an_outer_transaction_nor_for_other_errors(no_backoff):
    calls = []

    def locked():
        calls.append(1)
        raise locked_error()

    def no_such_table():  # a bug of ours; sqlite3 reports it as an OperationalError too
        calls.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM sync_no_such_table")

    with pytest.raises(OperationalError), transaction.atomic():
        dbretry.with_database_retry(locked)
    assert len(calls) == 1
    with pytest.raises(DatabaseError):
        dbretry.with_database_retry(no_such_table)
    assert len(calls) == 2


# --------------------------------------------- an outcome write that keeps failing


@pytest.mark.django_db(transaction=True)
def test_outcome_write_failing_after_the_retries_keeps_contacts_for_the_scheduler(
    sandbox_destination, sandbox, monkeypatch, no_backoff
):
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    per_contact = sandbox_destination(PLATFORM, rate_limit=1000)
    seed_demo_contacts(5)
    ids = list(Contact.objects.values_list("pk", flat=True))
    services.contacts_enqueue_push(contact_ids=ids, destinations=[per_contact], trigger="action")
    row = DBTaskResult.objects.get()
    tries = []

    def locked_for_ever(states):
        tries.append(1)
        raise locked_error()

    with monkeypatch.context() as patched:
        patched.setattr(engine, "_save_states", locked_for_ever)
        # the task's own function, as the worker calls it: it must end without raising
        tasks.push_contacts.call(**row.args_kwargs["kwargs"])

    assert len(tries) == dbretry.ATTEMPTS
    states = ContactSyncState.objects.filter(destination=per_contact)
    assert {s.status for s in states} == {SyncStatus.IN_PROGRESS}  # still claimed, not lost

    later = timezone.now() + timedelta(seconds=10)
    with override_settings(SYNC_LEASE_SECONDS=5):
        assert services.retries_enqueue_due(now=later) == 5  # taken back at lease expiry
    again = DBTaskResult.objects.exclude(pk=row.pk).get()
    assert sorted(again.args_kwargs["kwargs"]["contact_ids"]) == sorted(ids)
    tasks.push_contacts.call(**again.args_kwargs["kwargs"])
    assert {s.status for s in states.all()} == {SyncStatus.SYNCED}
    assert len(sandbox_store(sandbox, PLATFORM)["contacts"]) == 5


# ------------------------------------------------- SQLite: a write lock held elsewhere

SETUP_SCRIPT = """
import sys, django
django.setup()
from django.core.management import call_command
from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import Destination
call_command("migrate", verbosity=0)
seed_demo_contacts(int(sys.argv[2]))
call_command("sandbox_destinations", url=sys.argv[1], verbosity=0)
per_contact = Destination.objects.get(platform=sys.argv[3])
per_contact.rate_limit = 1000
per_contact.save()
services.contacts_push_selected(
    contacts=Contact.objects.all(), destination=per_contact, trigger="action", user_id=None
)
"""


def test_sqlite_locked_during_a_push_the_worker_retries_completes_and_lives_on(
    sandbox, sandbox_env, tmp_path
):
    """A real db_worker on a SQLite file while another connection holds the write lock for
    longer than the worker's busy timeout, in the middle of a push."""
    path = tmp_path / "db.sqlite3"
    contacts = 20
    env = process_env(
        **sandbox_env,
        DATABASE_URL=f"sqlite:///{path}",
        SQLITE_BUSY_TIMEOUT=0.5,
        SYNC_CHUNK_SIZE=contacts,
    )
    subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT, sandbox.url, str(contacts), PLATFORM],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    sandbox.sandbox.set_faults(PLATFORM, {"latency_ms": 150})  # the push lasts about 3 s
    log = tmp_path / "worker.log"
    worker = manage(
        "db_worker",
        "--no-startup-delay",
        "--no-reload",
        "--interval",
        "0.1",
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    state_table = ContactSyncState._meta.db_table
    task_table = DBTaskResult._meta.db_table

    def statuses():
        return dict(db.execute(f"SELECT status, count(*) FROM {state_table} GROUP BY status"))

    try:
        _wait_for(lambda: _requests(sandbox, PLATFORM) >= 2, 60, "the push to start")
        db.execute("BEGIN IMMEDIATE")  # the write lock, as a long import holds it
        time.sleep(2.5)
        db.execute("ROLLBACK")
        _wait_for(lambda: statuses() == {SyncStatus.SYNCED: contacts}, 60, "every contact synced")
        _wait_for(
            lambda: (
                db.execute(f"SELECT status FROM {task_table}").fetchall()
                == [(TaskResultStatus.SUCCESSFUL,)]
            ),
            30,
            "the task to end",
        )
        assert worker.poll() is None, log.read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        db.close()
    output = log.read_text()
    assert "database is locked" in output and "retrying" in output, output
    assert len(sandbox_store(sandbox, PLATFORM)["contacts"]) == contacts


def _requests(sandbox, platform):
    return sum(sandbox.sandbox.stats()["requests"].get(platform, {}).values())


# ----------------------------------------------------- PostgreSQL: a restart mid-push


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_restarted_mid_push_every_claimed_contact_ends_synced(
    sandbox_destination, sandbox, sandbox_env, tmp_path
):
    contacts = 200
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    sandbox.sandbox.set_faults(PLATFORM, {"latency_ms": 30})  # the push lasts about 6 s
    per_contact = sandbox_destination(PLATFORM, rate_limit=1000)
    seed_demo_contacts(contacts)
    with override_settings(SYNC_CHUNK_SIZE=contacts):  # one task: the restart lands inside it
        services.contacts_push_selected(
            contacts=Contact.objects.all(), destination=per_contact, trigger="action", user_id=None
        )
    lease = {"SYNC_LEASE_SECONDS": 5, "SYNC_RETRY_BASE_SECONDS": 0.3, "SYNC_RETRY_MAX_SECONDS": 2}
    log = tmp_path / "worker.log"
    worker = manage(
        "db_worker",
        "--no-startup-delay",
        "--no-reload",
        "--interval",
        "0.1",
        env=process_env(**sandbox_env, **lease),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    synced = ContactSyncState.objects.filter(destination=per_contact, status=SyncStatus.SYNCED)
    running = DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING)

    def tasks_ended():  # the last task may still be writing its own bookkeeping
        with override_settings(**lease):
            services.tasks_fail_abandoned()
        return not running.exists()

    try:
        _wait_for(lambda: synced.count() >= 40, 60, "the push to be under way")
        postgres_restart()
        connection.close()  # ours was dropped too

        def settled():
            with override_settings(**lease):
                services.retries_enqueue_due()
                services.tasks_fail_abandoned()
            return synced.count() == contacts

        _wait_for(settled, 90, f"every contact synced ({synced.count()} so far)")
        _wait_for(tasks_ended, 30, "no task row left RUNNING")
        assert worker.poll() is None, log.read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    # django-tasks-db's worker exits at once on SIGTERM between claiming a row and starting
    # it, leaving that row RUNNING: the scheduler's recovery (`tasks_fail_abandoned`, after the
    # lease) is what ends such a row, so the drill runs it once more after the worker is gone.
    _wait_for(tasks_ended, 30, "no task row left RUNNING after the worker stopped")
    output = log.read_text()
    assert "retrying" in output, output  # the restart did land in the push
    stored = sandbox_store(sandbox, PLATFORM)["contacts"]
    assert (
        len(stored) == contacts == len({c[payload_keys(per_contact)[0]] for c in stored})
    )  # no duplicate


# --------------------------------------------------------------------- task rows


def _task_row(destination, contact_ids, *, status, started_minutes_ago=None, **fields):
    result = tasks.push_contacts.enqueue(
        destination_id=destination.pk, contact_ids=contact_ids, trigger="action"
    )
    row = DBTaskResult.objects.get(pk=result.id)
    row.status = status
    if started_minutes_ago is not None:
        row.started_at = timezone.now() - timedelta(minutes=started_minutes_ago)
        row.worker_ids = ["killed-worker"]
    for name, value in fields.items():
        setattr(row, name, value)
    row.save()
    return row


def _claim(destination, contact_ids, *, minutes_ago):
    for contact_id in contact_ids:
        ContactSyncState.objects.update_or_create(
            destination=destination,
            contact_id=contact_id,
            defaults={
                "status": SyncStatus.IN_PROGRESS,
                "claimed_at": timezone.now() - timedelta(minutes=minutes_ago),
                "claimed_by": "some-worker",
            },
        )


@pytest.mark.django_db(transaction=True)
def test_scheduler_pass_marks_failed_a_task_row_left_running_by_a_killed_worker(
    sandbox_destination,
):
    per_contact = sandbox_destination(PLATFORM)
    seed_demo_contacts(6)
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    dead, alive, young = ids[:2], ids[2:4], ids[4:]
    _claim(per_contact, dead, minutes_ago=10)  # stale: its worker is gone
    _claim(per_contact, alive, minutes_ago=0)  # a live worker renews its claims
    abandoned = _task_row(
        per_contact, dead, status=TaskResultStatus.RUNNING, started_minutes_ago=10
    )
    busy = _task_row(per_contact, alive, status=TaskResultStatus.RUNNING, started_minutes_ago=10)
    recent = _task_row(per_contact, young, status=TaskResultStatus.RUNNING, started_minutes_ago=1)

    with override_settings(SYNC_LEASE_SECONDS=300):
        command = sync_scheduler.Command()
        command.next_prune = time.monotonic() + 3600
        command._pass()

    abandoned.refresh_from_db()
    assert abandoned.status == TaskResultStatus.FAILED
    assert abandoned.finished_at is not None
    assert abandoned.exception_class_path == services.TASK_ABANDONED_PATH
    assert "Abandoned" in abandoned.traceback and "killed-worker" in abandoned.traceback
    assert abandoned.task_result.errors[0].exception_class is services.TaskAbandoned
    for row in (busy, recent):
        row.refresh_from_db()
        assert row.status == TaskResultStatus.RUNNING
    # its contacts were taken back and queued again
    assert set(
        ContactSyncState.objects.filter(contact_id__in=dead).values_list("status", flat=True)
    ) == {SyncStatus.PENDING}
    requeued = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    assert [sorted(r.args_kwargs["kwargs"]["contact_ids"]) for r in requeued] == [sorted(dead)]


@pytest.mark.django_db(transaction=True)
def test_scheduler_prunes_finished_task_rows_after_the_retention_period(sandbox_destination):
    per_contact = sandbox_destination(PLATFORM)
    seed_demo_contacts(1)
    ids = list(Contact.objects.values_list("pk", flat=True))
    now = timezone.now()
    rows = {}
    for name, status, days in [
        ("successful old", TaskResultStatus.SUCCESSFUL, 8),
        ("failed old", TaskResultStatus.FAILED, 30),
        ("successful recent", TaskResultStatus.SUCCESSFUL, 6),
        ("failed recent", TaskResultStatus.FAILED, 1),
        ("ready old", TaskResultStatus.READY, None),
    ]:
        finished = now - timedelta(days=days) if days else None
        rows[name] = _task_row(per_contact, ids, status=status, finished_at=finished)
    DBTaskResult.objects.filter(pk=rows["ready old"].pk).update(
        enqueued_at=now - timedelta(days=30)
    )

    with override_settings(SYNC_TASK_RETENTION_DAYS=7):
        command = sync_scheduler.Command()
        command.next_prune = 0.0
        command._pass()

    kept = {name for name, row in rows.items() if DBTaskResult.objects.filter(pk=row.pk).exists()}
    assert kept == {"successful recent", "failed recent", "ready old"}
    assert services.tasks_prune(days=7) == 0
    assert services.tasks_prune(days=0, batch=1) == 2  # in batches, to the end
