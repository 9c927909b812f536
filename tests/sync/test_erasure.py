"""Erasing a person (GDPR art. 17) over the real sandbox: deleted where a platform can delete,
blanked and handed to a person where it cannot, confirmed by read-back, a receipt per platform
holding none of the person's data, nothing of them left in any table, a tombstone that shows
on re-import, and a failed platform that can be retried.

Shared: no platform is named; what each platform without a delete call blanks is checked in
its own module (tests/sync/connectors/test_<platform>_sandbox.py)."""

import io

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse

from contacts.models import Contact, Tombstone
from contacts.resources import ERASED_PERSON
from contacts.selectors import contact_is_erased
from sync import connectors, selectors
from sync.models import EraseReceipt, Erasure, SyncAttempt, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import save_contact_in_admin

pytestmark = pytest.mark.django_db
Outcome = EraseReceipt.Outcome
CHANGELIST = reverse("admin:contacts_contact_changelist")

# The person: every value distinctive, so that finding one anywhere means it was kept.
PERSON = {
    "first_name": "Zenobia",
    "last_name": "Quarrington",
    "email": "zenobia.quarrington@example.org",
    "phone": "+14155550163",
    "external_id": "erase-me-7781",
    "address_line": "77 Wexcombe Lane",
    "postal_code": "94110",
    "external_urls": [{"ref": "crm", "url": "https://crm.example.com/c/zenobia", "label": "CRM"}],
}
PERSONAL_VALUES = [
    "Zenobia",
    "Quarrington",
    "zenobia.quarrington@example.org",
    "4155550163",
    "erase-me-7781",
    "Wexcombe",
    "crm.example.com/c/zenobia",
]


@pytest.fixture
def sync_admin(client, django_user_model):
    user = django_user_model.objects.create_user("sam", "sam@example.com", "pw-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Sync admins"))
    client.force_login(user)
    return client


def pushed_person(client, capture, settings, **changes):
    """The person, added in the admin and pushed at once to every destination, then edited
    (a second history row), with every push confirmed synced."""
    settings.SYNC_ON_SAVE_MODE = "immediate"
    response = save_contact_in_admin(client, capture, **{**PERSON, **changes})
    assert response.status_code == 302, response.context["adminform"].form.errors
    contact = Contact.objects.get(external_id=PERSON["external_id"])
    with capture(execute=True):
        contact.city = "Oakland"
        contact.save()
    states = {s.destination.platform: s for s in contact.sync_states.select_related("destination")}
    held = {SyncStatus.SYNCED, SyncStatus.UNCHANGED}  # unchanged: the city is not mapped
    assert all(s.status in held and s.remote_id for s in states.values()), {
        p: (s.status, s.last_error) for p, s in states.items()
    }
    assert contact.history.count() >= 2 and SyncAttempt.objects.filter(contact=contact).exists()
    return contact, states


def erase(client, capture, contact):
    """Press "Erase" in the contact list, then "Yes, erase" on its confirmation page."""
    selection = {"action": "erase_selected", "_selected_action": [contact.pk], "index": "0"}
    page = client.post(CHANGELIST, selection)
    assert page.status_code == 200
    with capture(execute=True):
        done = client.post(CHANGELIST, {**selection, "post": "yes"})
    assert done.status_code == 302
    return page, Erasure.objects.get()


def every_row_text() -> str:
    """Every row of every table, as one text (the person must be in none of it)."""
    quote = connection.ops.quote_name
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {quote(table)}")
            chunks += [f"{table}: {row!r}" for row in cursor.fetchall()]
    return "\n".join(chunks)


def test_erase_deletes_everywhere_keeps_receipts_and_leaves_no_personal_data(
    sync_admin,
    django_capture_on_commit_callbacks,
    all_destinations,
    sandbox,
    settings,
    immediate_tasks,
):
    capture = django_capture_on_commit_callbacks
    contact, states = pushed_person(sync_admin, capture, settings)

    page, erasure = erase(sync_admin, capture, contact)

    html = page.content.decode()
    assert "Yes, erase" in html
    for destination in all_destinations:
        assert destination.name in html  # the confirmation lists what goes where
    assert not Contact.objects.exists()
    erasure.refresh_from_db()
    receipts = {r.platform: r for r in erasure.receipts.all()}
    assert set(receipts) == {d.platform for d in all_destinations}
    for platform, receipt in receipts.items():
        cls = connectors.get_class(platform)
        if cls.supports_delete:
            assert receipt.outcome == Outcome.DELETED, (platform, receipt.message, receipt.calls)
            assert "read back: not found" in receipt.message
            assert sandbox.sandbox.contact_view(platform, PERSON["external_id"]) is None
        else:
            assert receipt.outcome == Outcome.BY_HAND, (platform, receipt.message)
            assert states[platform].remote_id in receipt.instruction
            assert "by hand" in receipt.instruction
            assert receipt.remote_id == states[platform].remote_id
        assert receipt.at is not None and receipt.calls and receipt.http_status == 200
    assert erasure.state == Erasure.State.DONE
    assert erasure.pending_external_id == "" and erasure.contact_pk is None
    summary = erasure.local_summary
    assert summary["history rows"] >= 2 and summary["attempt-log rows emptied"] >= 4

    # Nothing of the person in any table: receipts, attempts, history, tasks, admin log...
    text = every_row_text()
    found = [value for value in PERSONAL_VALUES if value.lower() in text.lower()]
    assert not found, [line for line in text.splitlines() if any(v in line for v in found)][:5]
    # ...but a tombstone that recognises them.
    assert Tombstone.objects.count() == 1
    assert contact_is_erased(email=PERSON["email"].upper())
    assert selectors.contact_is_erased(external_id=PERSON["external_id"])
    assert not contact_is_erased(email="someone.else@example.org", external_id="other-1")
    # the receipts are shown to who may read them
    receipt_page = sync_admin.get(reverse("admin:sync_erasure_change", args=[erasure.pk]))
    assert receipt_page.status_code == 200
    assert "Deleted, confirmed gone" in receipt_page.content.decode()


def test_erasure_of_a_person_never_pushed_asks_every_platform(
    sync_admin, django_capture_on_commit_callbacks, all_destinations, sandbox, immediate_tasks
):
    contact = Contact.objects.create(first_name="Nobody", email="nobody.ever@example.org")
    _, erasure = erase(sync_admin, django_capture_on_commit_callbacks, contact)
    erasure.refresh_from_db()
    for receipt in erasure.receipts.all():
        expected = (
            Outcome.DELETED
            if connectors.get_class(receipt.platform).supports_delete
            else (Outcome.ABSENT)
        )
        assert receipt.outcome == expected, (receipt.platform, receipt.message)
    assert erasure.state == Erasure.State.DONE


def test_a_platform_failure_leaves_a_receipt_saying_so_and_can_be_retried(
    sync_admin,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    settings,
    immediate_tasks,
):
    platform = platform_with(delete=True)
    sandbox_destination(platform)
    capture = django_capture_on_commit_callbacks
    contact, _ = pushed_person(sync_admin, capture, settings)
    sandbox.sandbox.set_faults(platform, {"outage": "503"})

    _, erasure = erase(sync_admin, capture, contact)

    erasure.refresh_from_db()
    receipt = erasure.receipts.get()
    assert receipt.outcome == Outcome.FAILED
    assert receipt.http_status == 503 and "503" in receipt.message
    assert erasure.state == Erasure.State.ATTENTION
    assert erasure.pending_external_id == PERSON["external_id"]  # kept for the retry
    assert not Contact.objects.exists()  # erased here all the same
    assert sandbox.sandbox.contact_view(platform, PERSON["external_id"]) is not None

    sandbox.sandbox.set_faults(platform, {"outage": ""})
    retry = reverse("admin:sync_erasure_retry_button", args=[erasure.pk])
    with capture(execute=True):
        assert sync_admin.post(retry).status_code == 302

    erasure.refresh_from_db()
    receipt.refresh_from_db()
    assert receipt.outcome == Outcome.DELETED and receipt.attempts == 2, receipt.message
    assert sandbox.sandbox.contact_view(platform, PERSON["external_id"]) is None
    assert erasure.state == Erasure.State.DONE and erasure.pending_external_id == ""
    text = every_row_text()
    assert not [v for v in PERSONAL_VALUES if v.lower() in text.lower()]


def test_the_tombstone_shows_on_reimport_and_nothing_is_created(
    sync_admin, django_capture_on_commit_callbacks, immediate_tasks, tmp_path, monkeypatch
):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the preview's stored file
    contact = Contact.objects.create(
        first_name="Zenobia", email=PERSON["email"], external_id=PERSON["external_id"]
    )
    erase(sync_admin, django_capture_on_commit_callbacks, contact)
    assert not Contact.objects.exists()

    rows = [
        "first_name,last_name,email,external_id",
        f"Zenobia,Q,{PERSON['email'].upper()},",  # the email, in another case
        "Zed,Q,zed.new@example.org,erase-me-7781",  # the external ID
        "Ana,New,ana.new@example.org,",  # someone else
    ]
    upload = io.BytesIO("\n".join(rows).encode())
    upload.name = "people.csv"
    response = sync_admin.post(
        reverse("admin:contacts_contact_import"),
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert response.status_code == 200
    result = response.context["result"]
    errors = {
        row.number: [str(e) for messages in row.error_dict.values() for e in messages]
        for row in result.invalid_rows
    }
    assert set(errors) == {1, 2}, errors
    assert all(ERASED_PERSON in " ".join(found) for found in errors.values())
    assert ERASED_PERSON in response.content.decode()
    assert not Contact.objects.exists()


def test_a_stored_import_file_holding_the_person_is_removed(
    sync_admin, django_capture_on_commit_callbacks, immediate_tasks, tmp_path, monkeypatch
):
    """A preview stores the file until it is confirmed; an erasure in between removes it
    (and leaves a file holding someone else)."""
    import tempfile

    other = tmp_path / "tmp-other-import"
    other.write_text("first_name,email\nAna,ana.other@example.org\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    contact = Contact.objects.create(first_name="Zenobia", email=PERSON["email"])
    upload = io.BytesIO(f"first_name,email\nZenobia,{PERSON['email']}\n".encode())
    upload.name = "people.csv"
    preview = sync_admin.post(
        reverse("admin:contacts_contact_import"),
        {"resource": "0", "format": "0", "import_file": upload},
    )
    assert preview.status_code == 200
    stored = [p for p in tmp_path.iterdir() if p != other]
    assert len(stored) == 1

    _, erasure = erase(sync_admin, django_capture_on_commit_callbacks, contact)

    assert not stored[0].exists()
    assert other.exists()
    erasure.refresh_from_db()
    assert erasure.local_summary["stored import files"] == 1


def test_the_scrubber_removes_whole_values_in_any_case_and_every_email():
    from sync.erasure import ERASED, Scrubber

    scrub = Scrubber(["Zenobia", "+14155550163", "erase-me-7781", "customer", "GB"])
    text = scrub(
        "ZENOBIA at 14155550163 (erase-me-7781, Customer); externalCustomerId=erase-me-7781 "
        "GB; other.person@example.net"
    )
    assert text == (
        f"{ERASED} at {ERASED} ({ERASED}, {ERASED}); externalCustomerId={ERASED} GB; {ERASED}"
    )


def test_a_tombstone_is_recognised_under_a_fallback_key_only(
    sync_admin, django_capture_on_commit_callbacks, immediate_tasks, settings
):
    contact = Contact.objects.create(first_name="Zenobia", email=PERSON["email"])
    erase(sync_admin, django_capture_on_commit_callbacks, contact)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-rotated-key-for-this-test-only"
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert contact_is_erased(email=PERSON["email"])
    settings.SECRET_KEY_FALLBACKS = []
    assert not contact_is_erased(email=PERSON["email"])


def test_the_person_is_scrubbed_from_other_contacts_log_rows(
    sync_admin, django_capture_on_commit_callbacks, sandbox_destination, immediate_tasks
):
    """A bulk call's answer is shared by every contact of the chunk (engine `_own_part`): a
    platform naming the person in it leaves them in other contacts' rows."""
    from django.utils import timezone

    destination = sandbox_destination(platform_with(bulk=True))
    person = Contact.objects.create(
        first_name="Zenobia", email=PERSON["email"], external_id=PERSON["external_id"]
    )
    other = Contact.objects.create(first_name="Ottoline", email="ottoline@example.org")
    row = SyncAttempt.objects.create(
        destination=destination,
        contact=other,
        external_id=other.external_id,
        trigger="action",
        outcome="accepted",
        started_at=timezone.now(),
        request_body='{"email": "ottoline@example.org"}',
        response_excerpt=f'{{"failedContacts": [{{"email": "{PERSON["email"].upper()}", '
        f'"externalCustomerId": "{PERSON["external_id"]}", "error": "invalid"}}]}}',
    )

    _, erasure = erase(sync_admin, django_capture_on_commit_callbacks, person)

    row.refresh_from_db()
    assert "[erased]" in row.response_excerpt and "ottoline@example.org" in row.request_body
    text = every_row_text()
    assert not [v for v in PERSONAL_VALUES if v.lower() in text.lower()]
    erasure.refresh_from_db()
    assert erasure.local_summary["other attempt-log rows scrubbed"] == 1


def test_every_connector_can_erase():
    """A platform with a delete call erases by it; one without says how it erases instead."""
    from sync.connectors.base import BaseConnector

    for cls in connectors.get_class_list():
        assert cls.supports_delete or cls.erase is not BaseConnector.erase, cls.slug


def test_a_contact_deleted_before_the_task_ran_still_loses_its_history(db, sandbox):
    """An ordinary delete keeps the contact's history rows; the erasure removes them by id."""
    from sync import erasure as worker
    from sync import services

    contact = Contact.objects.create(first_name="Zenobia", email=PERSON["email"])
    contact.last_name = "Quarrington"
    contact.save()
    pk = contact.pk
    erasure = services.contact_erase(contact=contact, user_id=None)  # queued after commit
    Contact.objects.get(pk=pk).delete()
    assert Contact.history.filter(id=pk).exists()

    worker.erasure_run(erasure_id=erasure.pk)

    assert not Contact.history.filter(id=pk).exists()
    erasure.refresh_from_db()
    assert erasure.local_erased_at is not None and erasure.state == Erasure.State.DONE
    text = every_row_text()
    assert not [v for v in PERSONAL_VALUES if v.lower() in text.lower()]


def test_inbound_events_of_the_person_go_and_a_later_one_is_shown_as_erased(
    sync_admin, django_capture_on_commit_callbacks, immediate_tasks
):
    """The erasure removes what the platforms sent about the person; an event arriving after
    it finds their tombstone: recorded as about an erased person, without their data."""
    from django.utils import timezone

    from sync.inbound import ERASED_PERSON_EVENT, inbound_event_process
    from sync.models import Destination, InboundEvent

    destination = Destination.objects.create(
        name="Events", platform=connectors.get_class_list()[0].slug
    )
    contact = Contact.objects.create(
        first_name="Zenobia", email=PERSON["email"], external_id=PERSON["external_id"]
    )

    def event(key):
        return InboundEvent.objects.create(
            destination=destination,
            platform=destination.platform,
            key=key,
            kind="unsubscribed",
            channel="email",
            email=PERSON["email"].upper(),
            external_id=PERSON["external_id"],
            received_at=timezone.now(),
            body={"email": PERSON["email"]},
        )

    event("before")
    _, erasure = erase(sync_admin, django_capture_on_commit_callbacks, contact)
    assert not InboundEvent.objects.exists()
    erasure.refresh_from_db()
    assert erasure.local_summary["inbound events"] == 1

    later = event("after")
    assert inbound_event_process(event=later) == InboundEvent.State.UNKNOWN_CONTACT
    later.refresh_from_db()
    assert later.error == ERASED_PERSON_EVENT
    assert PERSON["email"] not in repr(later.body) and not later.email and not later.external_id
