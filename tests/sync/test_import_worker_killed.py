"""A background import whose worker is killed (SIGKILL, as an OOM kill or a lost machine)
part-way through writing: the scheduler's pass marks its task abandoned and the job failed,
with the rows written so far saved and their pushes queued; the page offers "Resume import"
from the row after the last chunk written, and resuming imports the rest, each contact once.
Real `db_worker` processes on the test database (PostgreSQL: the workers share it); the
scheduler's side alone on either database."""

import io
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from contacts import services as contacts_services
from contacts.models import Contact, ImportJob
from sync import services
from sync.models import ContactSyncState, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import sandbox_store
from tests.sync.processes import manage, process_env, run_worker_until_idle

pytestmark = pytest.mark.django_db(transaction=True)
ROWS = 600
CHUNK = 20


def _file(rows: int) -> str:
    lines = ["external_id,first_name,last_name,email,country"]
    lines += [f"K{n},First{n},Last{n},k{n}@example.com,GB" for n in range(1, rows + 1)]
    return "\n".join(lines)


def _wait(predicate, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def _after_the_lease(settings):
    return timezone.now() + timedelta(seconds=settings.SYNC_LEASE_SECONDS + 1)


@pytest.mark.postgres  # the worker processes share the test database
def test_an_import_whose_worker_is_killed_is_failed_then_resumed_from_its_last_chunk(
    admin_client_logged, settings, sandbox_destination, sandbox, sandbox_env
):
    destination = sandbox_destination(platform_with(bulk=False), rate_limit=500)
    sandbox.sandbox.set_rate_limit(destination.platform, None)
    env = process_env(**sandbox_env, IMPORT_CHUNK_ROWS=CHUNK, IMPORT_BACKGROUND_CHUNK_ROWS=CHUNK)
    job = contacts_services.import_job_start(content=_file(ROWS), file_name="people.csv")
    run_worker_until_idle(env)  # the check
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED, job.failure
    assert contacts_services.import_job_confirm(job=job, mode=ImportJob.Mode.SKIP)

    worker = manage(
        "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1", env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(lambda: ImportJob.objects.get(pk=job.pk).written_rows >= 3 * CHUNK)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.IMPORTING and CHUNK * 3 <= job.written_rows < ROWS
    written = Contact.objects.count()
    assert written == job.written_rows  # each chunk committed with the job's progress
    assert job.start_row == written + 1
    (task,) = DBTaskResult.objects.filter(task_path="contacts.tasks.run_import")
    assert task.status == TaskResultStatus.RUNNING  # for ever: nobody finishes it

    # Within the lease, nothing is touched (a live worker's long import looks the same).
    assert services.tasks_fail_abandoned() == 0
    assert contacts_services.import_jobs_recover() == 0
    # The scheduler's pass after the lease: the task abandoned, then the job failed.
    later = _after_the_lease(settings)
    assert services.tasks_fail_abandoned(now=later) == 1
    assert contacts_services.import_jobs_recover(now=later) == 1
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert f"The rows before row {written + 1} are saved" in job.failure
    page_url = reverse("admin:contacts_contact_import_job", args=[job.pk])
    page = admin_client_logged.get(page_url).content.decode()
    assert "Resume import" in page and f"Resume from row {written + 1}" in page
    assert job.failure in page

    run_worker_until_idle(env)  # the pushes of the rows written before the kill
    states = ContactSyncState.objects.filter(destination=destination)
    assert states.count() == written
    assert set(states.values_list("status", flat=True)) == {SyncStatus.SYNCED}

    confirm = reverse("admin:contacts_contact_import_job_confirm", args=[job.pk])
    assert admin_client_logged.post(confirm, {"mode": "skip"}).status_code == 302
    run_worker_until_idle(env)  # the rest, then its pushes
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.failure
    assert (job.written_rows, job.totals) == (ROWS, {"new": ROWS})
    assert Contact.objects.count() == ROWS
    assert set(states.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert states.count() == ROWS
    assert len(sandbox_store(sandbox, destination.platform)["contacts"]) == ROWS


def test_a_check_whose_worker_stopped_is_failed_with_a_word_to_upload_again(settings):
    job = contacts_services.import_job_start(content=_file(5), file_name="people.csv")
    (task,) = DBTaskResult.objects.filter(task_path="contacts.tasks.preview_import")
    started = timezone.now() - timedelta(seconds=settings.SYNC_LEASE_SECONDS + 60)
    # what a worker killed at the start of the check leaves: its task running, no progress
    DBTaskResult.objects.filter(pk=task.pk).update(
        status=TaskResultStatus.RUNNING, started_at=started
    )
    ImportJob.objects.filter(pk=job.pk).update(updated_at=started)
    assert contacts_services.import_jobs_recover() == 0  # its task still counts as running
    out = io.StringIO()
    call_command("sync_retry", stdout=out)  # one scheduler pass: the task, then the job
    assert "1 abandoned tasks marked failed, 1 stopped imports marked failed." in out.getvalue()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "Upload the file again" in job.failure
    assert not contacts_services.import_job_confirm(job=job, mode=ImportJob.Mode.SKIP)


def test_a_long_import_that_progresses_is_not_taken_for_abandoned(settings):
    job = contacts_services.import_job_start(content=_file(5), file_name="people.csv")
    (task,) = DBTaskResult.objects.filter(task_path="contacts.tasks.preview_import")
    started = timezone.now() - timedelta(seconds=settings.SYNC_LEASE_SECONDS * 10)
    DBTaskResult.objects.filter(pk=task.pk).update(
        status=TaskResultStatus.RUNNING, started_at=started
    )
    ImportJob.objects.filter(pk=job.pk).update(updated_at=timezone.now())  # progress just now
    assert services.tasks_fail_abandoned() == 0
    assert contacts_services.import_jobs_recover() == 0
    assert DBTaskResult.objects.get(pk=task.pk).status == TaskResultStatus.RUNNING
