"""A background import end to end with a real `db_worker` process (PostgreSQL: the worker
shares the test database): upload through the admin, the worker checks the file, the person
confirms skipping the invalid rows, the worker writes the rest and queues each contact's
push once, at the end."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ImportJob
from sync.models import ContactSyncState, SyncAttempt, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import sandbox_store
from tests.sync.processes import process_env, run_worker_until_idle

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_worker_checks_then_imports_the_valid_rows_and_pushes_each_once(
    admin_client_logged, settings, sandbox_destination, sandbox, sandbox_env
):
    settings.IMPORT_BACKGROUND_ROWS = 10
    destination = sandbox_destination(platform_with(bulk=False), rate_limit=500)
    sandbox.sandbox.set_rate_limit(destination.platform, None)
    lines = ["external_id,first_name,last_name,email,phone,country"]
    for n in range(1, 61):
        phone = "12345" if n in (7, 33) else ""
        lines.append(f"E{n},First{n},Last{n},p{n}@example.com,{phone},GB")
    upload = SimpleUploadedFile("people.csv", "\n".join(lines).encode(), "text/csv")
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_import"),
        {"resource": "0", "format": "0", "import_file": upload},
    )
    job = ImportJob.objects.get()
    page_url = reverse("admin:contacts_contact_import_job", args=[job.pk])
    assert response.status_code == 302 and response["Location"] == page_url
    assert job.status == ImportJob.Status.PREVIEWING

    run_worker_until_idle(process_env(**sandbox_env))
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED, job.failure
    assert (job.validated_rows, job.invalid_rows) == (60, 2)
    assert not Contact.objects.exists()

    confirm = reverse("admin:contacts_contact_import_job_confirm", args=[job.pk])
    assert admin_client_logged.post(confirm, {"mode": "skip"}).status_code == 302
    run_worker_until_idle(process_env(**sandbox_env))  # the import, then the pushes it queued

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.failure
    assert (job.written_rows, job.totals, job.content) == (58, {"new": 58}, "")
    assert Contact.objects.count() == 58
    states = ContactSyncState.objects.filter(destination=destination)
    assert states.count() == 58
    assert set(states.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    # pushed once each, at the end: one attempt per contact, 58 contacts on the platform
    assert SyncAttempt.objects.filter(destination=destination).count() == 58
    assert len(sandbox_store(sandbox, destination.platform)["contacts"]) == 58

    page = admin_client_logged.get(page_url).content.decode()
    assert "Import finished: 58 new, 0 updated, 0 unchanged, 2 invalid rows skipped." in page
    skipped = admin_client_logged.get(
        reverse("admin:contacts_contact_import_job_skipped", args=[job.pk])
    )
    rows = list(csv.reader(io.StringIO(skipped.content.decode())))
    assert [row[:2] for row in rows[1:]] == [["7", "E7"], ["33", "E33"]]
