"""Imports in the background (contacts.services.import_job_*): a file of more than
IMPORT_BACKGROUND_ROWS lines is stored in the database, checked and imported by a worker
(here Django Tasks' immediate backend, in this process; tests/sync/test_background_import_worker.py
runs a real db_worker), with a progress page, the choice at confirm and the skipped rows' CSV."""

import csv
import io
import re
from unittest.mock import patch

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import ConsentEntry, Contact, ImportJob
from contacts.resources import ContactResource
from contacts.services import import_files_erase, import_job_confirm, import_job_start

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("admin:contacts_contact_import")
HEADER = "external_id,first_name,last_name,email,phone,country"


def _file(rows: int, bad: dict[int, str] | None = None) -> str:
    """`rows` valid rows, where row n in `bad` has that phone instead (an invalid one)."""
    lines = [HEADER]
    for n in range(1, rows + 1):
        phone = (bad or {}).get(n, "")
        lines.append(f"E{n},First{n},Last{n},p{n}@example.com,{phone},GB")
    return "\n".join(lines) + "\n"


def _upload(client, content, name="people.csv"):
    upload = SimpleUploadedFile(name, content.encode(), content_type="text/csv")
    return client.post(IMPORT_URL, {"resource": "0", "format": "0", "import_file": upload})


def _job_url(job, name="import_job"):
    return reverse(f"admin:contacts_contact_{name}", args=[job.pk])


@pytest.fixture
def background(settings, immediate_tasks):
    settings.IMPORT_BACKGROUND_ROWS = 3
    settings.IMPORT_CHUNK_ROWS = 4
    settings.IMPORT_BACKGROUND_CHUNK_ROWS = 4


def test_a_large_file_is_stored_checked_in_the_background_and_previewed(
    admin_client_logged, background
):
    response = _upload(admin_client_logged, _file(6, bad={4: "12345"}))
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == _job_url(job)
    assert job.status == ImportJob.Status.PREVIEWED
    assert (job.total_rows, job.validated_rows, job.invalid_rows) == (6, 6, 1)
    assert job.totals == {"new": 5}
    assert job.content.startswith(HEADER)  # stored until the import ends
    assert not Contact.objects.exists()

    page = admin_client_logged.get(_job_url(job)).content.decode()
    assert 'http-equiv="refresh"' not in page  # waiting for the person, not a worker
    listed = re.findall(r'<a href="#import-cell-4-phone">(.*?)</a>', page)
    assert len(listed) == 1 and "Row 4, phone:" in listed[0]
    assert 'id="import-confirm"' in page
    assert 'value="skip" checked' in page  # with invalid rows, skipping is offered first


def test_the_page_refreshes_itself_while_a_worker_is_at_it(admin_client_logged, settings):
    settings.IMPORT_BACKGROUND_ROWS = 3  # the database backend: queued, no worker here
    _upload(admin_client_logged, _file(5))
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.PREVIEWING
    page = admin_client_logged.get(_job_url(job)).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "Rows checked" in page and 'id="import-confirm"' not in page


def test_all_or_nothing_writes_nothing_on_one_bad_row(admin_client_logged, background):
    _upload(admin_client_logged, _file(9, bad={7: "12345"}))
    job = ImportJob.objects.get()
    response = admin_client_logged.post(_job_url(job, "import_job_confirm"), {"mode": "all"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.REFUSED and job.written_rows == 0
    assert not Contact.objects.exists()
    assert job.content  # nothing lost: the person may still skip the bad row
    page = admin_client_logged.get(_job_url(job)).content.decode()
    assert 'id="import-refused"' in page and 'id="import-confirm"' in page


def test_skipping_writes_the_valid_rows_and_the_csv_holds_exactly_the_bad_ones(
    admin_client_logged, background
):
    Contact.objects.create(external_id="E2", first_name="Old", email="p2@example.com")
    _upload(admin_client_logged, _file(10, bad={3: "12345", 8: "not a phone"}))
    job = ImportJob.objects.get()
    admin_client_logged.post(_job_url(job, "import_job_confirm"), {"mode": "skip"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.failure
    assert job.totals == {"new": 7, "update": 1}
    assert (job.written_rows, job.invalid_rows, job.content) == (8, 2, "")
    stored = set(Contact.objects.values_list("external_id", flat=True))
    assert stored == {f"E{n}" for n in range(1, 11)} - {"E3", "E8"}
    assert Contact.objects.get(external_id="E2").first_name == "First2"

    page = admin_client_logged.get(_job_url(job)).content.decode()
    assert "Import finished: 7 new, 1 updated, 0 unchanged, 2 invalid rows skipped." in page
    response = admin_client_logged.get(_job_url(job, "import_job_skipped"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["row", *HEADER.split(","), "errors"]
    assert [row[:2] for row in rows[1:]] == [["3", "E3"], ["8", "E8"]]
    assert all(row[-1].startswith("phone: ") for row in rows[1:]), rows
    assert rows[2][5] == "not a phone"


def test_a_failure_while_writing_keeps_the_file_says_why_and_resumes(
    admin_client_logged, background
):
    _upload(admin_client_logged, _file(10))
    job = ImportJob.objects.get()
    original = ContactResource.check_rows

    def check_rows(self, dataset, **kwargs):
        # Someone takes row 6's email between the check and the write (the write checks
        # each chunk again inside its transaction).
        if "p6@example.com" in dataset["email"] and not self._keep_file_state:
            Contact.objects.get_or_create(email="P6@example.com", external_id="OTHER")
        return original(self, dataset, **kwargs)

    with patch.object(ContactResource, "check_rows", check_rows):
        import_job_confirm(job=job, mode="all")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.failure.startswith("Row 6 could not be saved: external_id: The email")
    assert (job.start_row, job.written_rows) == (5, 4)
    assert job.content  # nothing lost
    assert Contact.objects.count() == 4
    page = admin_client_logged.get(_job_url(job)).content.decode()
    assert "Resume from row 5" in page

    Contact.objects.create(email="someone@example.com", external_id="OTHER")  # the cause fixed
    assert import_job_confirm(job=job, mode="all")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.written_rows == 10
    assert job.totals == {"new": 10}
    assert Contact.objects.count() == 11


def test_skipping_checks_each_chunk_as_it_writes_and_skips_a_row_that_became_invalid(
    admin_client_logged, background
):
    """Skipping makes one pass at import time: each chunk's check in its write transaction
    is the one that counts, so a row that became invalid after the preview is skipped and
    listed with the others, and the contact that made it invalid is left as it is."""
    job = import_job_start(content=_file(10, bad={3: "12345"}), file_name="people.csv")
    job.refresh_from_db()
    assert (job.status, job.invalid_rows) == (ImportJob.Status.PREVIEWED, 1)
    # after the preview, someone adds a contact with row 6's email
    other = Contact.objects.create(email="P6@example.com", external_id="OTHER", first_name="O")
    assert import_job_confirm(job=job, mode="skip")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.failure
    assert (job.written_rows, job.invalid_rows, job.totals) == (8, 2, {"new": 8})
    stored = set(Contact.objects.values_list("external_id", flat=True))
    assert stored == {f"E{n}" for n in range(1, 11)} - {"E3", "E6"} | {"OTHER"}
    other.refresh_from_db()
    assert (other.first_name, other.email, other.content_version) == ("O", "P6@example.com", 1)
    response = admin_client_logged.get(_job_url(job, "import_job_skipped"))
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [row[:2] for row in rows[1:]] == [["3", "E3"], ["6", "E6"]]
    assert rows[1][-1].startswith("phone: ") and rows[2][-1].startswith("external_id: The email")


def test_the_preview_of_a_large_file_renders_a_page_of_rows(admin_client_logged, background):
    bad = {n: "12345" for n in range(10, 2000, 10)}  # 199 invalid rows
    _upload(admin_client_logged, _file(3000, bad=bad))
    job = ImportJob.objects.get()
    assert (job.total_rows, job.invalid_rows) == (3000, 199)
    page = admin_client_logged.get(_job_url(job)).content.decode()
    body = page.split('class="import-job-page')[1].split("</table>")[0]
    assert body.count("<tr data-row=") == 50
    invalid = page.split('class="import-job-invalid')[1].split("</table>")[0]
    assert invalid.count("<tr data-row=") == 100
    assert "… and 99 more invalid rows" in page
    assert len(page) < 400_000, len(page)


def test_a_second_confirm_queues_nothing(admin_client_logged, background):
    _upload(admin_client_logged, _file(5))
    job = ImportJob.objects.get()
    assert import_job_confirm(job=job, mode="skip")
    assert not import_job_confirm(job=job, mode="skip")  # done: its file is gone
    assert not import_job_confirm(job=job, mode="nonsense")
    assert Contact.objects.count() == 5


def test_a_bad_header_is_refused_on_the_upload_form(admin_client_logged, background):
    response = _upload(admin_client_logged, "nickname,email\n" + "x,a@example.com\n" * 5)
    assert response.status_code == 200
    assert "Unknown column 'nickname'" in " ".join(response.context["form"].errors["import_file"])
    assert not ImportJob.objects.exists()


def test_a_row_problem_of_the_file_fails_the_check_and_says_why(admin_client_logged, background):
    _upload(admin_client_logged, _file(5) + "E9,too,many,cells,here,GB,extra\n")
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    assert job.failure.startswith("Row 6 has 7 cells")
    assert not import_job_confirm(job=job, mode="all")  # a failed check is not confirmable


def test_erasure_removes_the_jobs_that_name_the_person(background):
    kept = import_job_start(content=_file(4), file_name="a.csv")
    import_job_start(content=_file(5), file_name="b.csv")  # names p5@
    assert import_files_erase(needles=["P5@EXAMPLE.COM"]) == 1
    assert list(ImportJob.objects.all()) == [kept]
    assert import_files_erase(needles=["nobody@example.com"]) == 0
    import_job_confirm(job=kept, mode="all")  # done: the file is emptied...
    kept.refresh_from_db()
    assert kept.status == ImportJob.Status.DONE and kept.content == ""
    assert import_files_erase(needles=["p4@example.com"]) == 1  # ...its preview names them
    assert not ImportJob.objects.exists()


def test_people_who_may_not_import_see_no_job(client, django_user_model, background):
    from django.contrib.auth.models import Group

    job = import_job_start(content=_file(4), file_name="a.csv")
    manager = django_user_model.objects.create_user("m", password="pw-m-123456", is_staff=True)
    manager.groups.add(Group.objects.get(name="Managers"))
    client.force_login(manager)
    for name in ("import_job", "import_job_skipped"):
        assert client.get(_job_url(job, name)).status_code == 403
    assert client.post(_job_url(job, "import_job_confirm"), {"mode": "all"}).status_code == 403
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED


BULK_FILE = (
    "external_id,first_name,email,city,tags,groups,email_status\n"
    'E1,Ann,ann@example.com,Leeds,"a, b",VIP,unsubscribed\n'
    # bob's stored email is BOB@Example.com; city cleared; he opts out here (a ledger entry)
    "E2,Bob,bob@example.com,,,VIP,unsubscribed\n"
    "E3,Cy,cy@example.com,Hull,,,subscribed\n"  # as stored: unchanged
    ",Dee,dee@example.com,Bath,,VIP,subscribed\n"  # no external ID: one is generated
)


def _seed_for_bulk():
    from contacts.models import Group

    Group.objects.get_or_create(name="VIP")
    Contact.objects.create(external_id="E2", first_name="Old", email="BOB@Example.com", city="York")
    Contact.objects.create(
        external_id="E3",
        first_name="Cy",
        email="cy@example.com",
        city="Hull",
        email_status="subscribed",
    )


def _recorded():
    """What an import leaves: the contacts, their history records and their groups' (the
    generated external ID and the timestamps aside)."""
    from contacts.models import GroupMembership

    def key(contact_id):
        contact = Contact.objects.get(pk=contact_id)
        return contact.external_id if contact.external_id.startswith("E") else contact.email

    skip = {"id", "external_id", "created_at", "updated_at"}
    contacts = {
        key(c.pk): {f.attname: getattr(c, f.attname) for f in Contact._meta.concrete_fields}
        for c in Contact.objects.all()
    }
    for values in contacts.values():
        for name in skip:
            values.pop(name)
    history = sorted(
        (key(h.id), h.history_type, h.first_name, h.email, h.city, tuple(h.tags))
        for h in Contact.history.all()
    )
    groups = sorted((key(m.contact_id), m.group.name) for m in GroupMembership.objects.all())
    consent = sorted(  # the consent ledger's entries (issue 14 item 5: imports write them)
        (key(e.contact_id), e.channel, e.status, e.previous_status, e.source, e.source_label)
        for e in ConsentEntry.objects.all()
    )
    group_history = sorted(
        (key(h.contact_id), h.history_type) for h in GroupMembership.history.all()
    )
    return contacts, history, groups, group_history, consent


def test_the_bulk_write_records_what_a_save_per_row_records(admin_user, background):
    """The background import writes in bulk; the in-request import saves row by row through
    django-import-export. Both leave the same contacts, history records and groups."""
    from contacts.models import Group, GroupMembership
    from contacts.services import contacts_import, contacts_import_dataset

    _seed_for_bulk()
    outcome = contacts_import(dataset=contacts_import_dataset(text=BULK_FILE), user=admin_user)
    assert outcome.validation is None and outcome.failed_row is None
    per_row = _recorded()
    assert ("E2", "email", "unsubscribed", "subscribed", "import", "import by admin") in per_row[4]
    for model in (GroupMembership, Contact, Group):
        model.objects.all().delete()
    GroupMembership.history.all().delete()
    Contact.history.all().delete()

    _seed_for_bulk()
    job = import_job_start(content=BULK_FILE, file_name="b.csv", user=admin_user)
    job.refresh_from_db()
    assert job.clearings == 1
    shown = ImportJob.objects.get().preview_json
    assert '"clearings":[{"row":2,"column":"city","was":"York"}]' in shown
    assert '"cleared":{"city":"York"}' in shown  # marked on its row of the page
    assert import_job_confirm(job=job, mode="all")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.failure
    assert job.totals == {"new": 2, "update": 1, "skip": 1}
    assert _recorded() == per_row
    bob = Contact.objects.get(external_id="E2")
    assert (bob.email, bob.city, bob.content_version) == ("BOB@Example.com", "", 2)
    assert Contact.objects.get(external_id="E3").content_version == 1  # unchanged: not written
    assert Contact.objects.get(email="dee@example.com").external_id  # generated
    written = Contact.history.exclude(external_id="E3").exclude(history_type="+", first_name="Old")
    assert {h.history_user for h in written} == {admin_user}
