"""The contract every registered connector keeps, against its platform's emulator over real
HTTP, through the services: missing credentials, 401/403, 429 with and without Retry-After,
5xx, timeouts, refused connections, a success that is not JSON, redirects, redaction,
unchanged pushes, create-update-delete and hostile values.

Parametrised over the registry: a new platform runs this suite with nothing added here.
Where platforms differ, the test branches on what the connector declares (`supports_delete`,
`batch_size`) and reads what the platform holds through its emulator's `contact_view`."""

import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from contacts.models import Contact, CustomFieldDefinition, CustomFieldValue
from sync import connectors, services
from sync.models import ContactSyncState, Destination, FieldMapping, SyncAttempt, SyncStatus
from sync.redaction import secret_forms
from sync.sandbox import emulator_class

pytestmark = pytest.mark.django_db
Outcome = SyncAttempt.Outcome

FIRST = "José-Émilie 😀"
LAST = "בן-דוד \"the 'quoted'\""  # right-to-left, with both quotes
LONG = ("ÅØ😀 é ש " * 100)[:500]
CITY = "Zürich'); DROP TABLE contacts;--"


@pytest.fixture(params=connectors.get_class_list(), ids=lambda cls: cls.slug)
def platform(request):
    return request.param


@pytest.fixture
def destination(platform, sandbox_destination):
    return sandbox_destination(platform.slug)


# ------------------------------------------------------------------------------ helpers


def faults(sandbox, platform, **changes):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": platform.slug, **changes}, timeout=5
    )
    assert response.status_code == 200, response.text


def held(sandbox, platform, contact):
    """What the platform holds under the contact's external ID, or None."""
    response = requests.get(
        f"{sandbox.url}/_sandbox/contact/{platform.slug}/{contact.external_id}", timeout=5
    )
    assert response.status_code in (200, 404), response.text
    return response.json() if response.status_code == 200 else None


def sandbox_log(sandbox, platform):
    response = requests.get(f"{sandbox.url}/_sandbox/log?platform={platform.slug}", timeout=5)
    return response.json()


def new_contact(**fields):
    return Contact.objects.create(
        **{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", **fields}
    )


def push(contact, destination):
    return services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )


def confirm_awaiting(destination):
    """What the scheduler does next for contacts a platform took in bulk without a
    per-contact answer: one confirmation check each (a no-op elsewhere)."""
    awaiting = ContactSyncState.objects.filter(
        destination=destination, status=SyncStatus.AWAITING
    ).values_list("contact_id", flat=True)
    if awaiting:
        services.contacts_confirm(
            contact_ids=list(awaiting),
            destination=destination,
            context=services.PushContext(trigger="retry"),
        )


def last_attempt(destination):
    return SyncAttempt.objects.filter(destination=destination).latest("pk")


def assert_retry_scheduled(state, *, text, at_least=0.0):
    assert state.status == SyncStatus.PENDING, state.last_error
    assert text in state.last_error
    assert state.next_attempt_at >= timezone.now() + timedelta(seconds=at_least)
    assert state.attempts == 1


# ----------------------------------------------------------------------- configuration


def test_missing_credentials_pause_the_destination_naming_the_variable(
    platform, destination, sandbox, monkeypatch
):
    # The last one: where a platform takes two, the first is set and the second is missing.
    variable = list(destination.credential_variables.values())[-1]
    monkeypatch.delenv(variable)
    state = push(new_contact(), destination)
    assert state.status == SyncStatus.WAITING
    destination.refresh_from_db()
    assert destination.is_paused and variable in destination.pause_error
    ok, message = services.destination_test_connection(destination=destination)
    assert not ok and variable in message
    assert sandbox_log(sandbox, platform) == []


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "fault, status",
    [({"revoked": True}, 401), ({"error_rate": 1.0, "error_status": 403}, 403)],
    ids=["401", "403"],
)
def test_refused_credentials_pause_until_a_connection_test_passes(
    platform, destination, sandbox, immediate_tasks, fault, status
):
    contact = new_contact()
    faults(sandbox, platform, **fault)
    state = push(contact, destination)
    assert state.status == SyncStatus.WAITING
    assert f"HTTP {status}" in state.last_error
    destination.refresh_from_db()
    assert destination.is_paused and f"HTTP {status}" in destination.pause_error
    assert push(new_contact(email="second@example.com"), destination).status == SyncStatus.WAITING
    assert len(sandbox_log(sandbox, platform)) == 1  # the paused destination sent nothing more

    assert not services.destination_test_connection(destination=destination)[0]
    faults(sandbox, platform, revoked=False, error_rate=0.0)
    ok, message = services.destination_test_connection(destination=destination)
    assert ok, message
    destination.refresh_from_db()
    assert not destination.is_paused
    confirm_awaiting(destination)  # the two waited together: one bulk where there is one
    state = ContactSyncState.objects.get(contact=contact, destination=destination)
    assert state.status == SyncStatus.SYNCED, state.last_error  # the waiting push resumed
    assert held(sandbox, platform, contact)["first_name"] == "Ada"


# ------------------------------------------------------------------- retryable failures


def test_429_with_retry_after_is_retried_no_sooner(platform, destination, sandbox):
    faults(sandbox, platform, storm_seconds=30, retry_after=5000)
    state = push(new_contact(), destination)
    assert_retry_scheduled(state, text="HTTP 429", at_least=4990)
    assert last_attempt(destination).outcome == Outcome.RETRY


def test_429_without_retry_after_backs_off(platform, destination, sandbox, settings):
    faults(sandbox, platform, error_rate=1.0, error_status=429)
    state = push(new_contact(), destination)
    assert_retry_scheduled(state, text="HTTP 429", at_least=settings.SYNC_RETRY_BASE_SECONDS / 2)
    assert state.next_attempt_at <= timezone.now() + timedelta(
        seconds=settings.SYNC_RETRY_BASE_SECONDS
    )


@pytest.mark.parametrize(
    "fault, status",
    [({"error_rate": 1.0, "error_status": 500}, 500), ({"outage": "503"}, 503)],
    ids=["500", "503-outage"],
)
def test_server_errors_are_retried(platform, destination, sandbox, fault, status):
    faults(sandbox, platform, **fault)
    state = push(new_contact(), destination)
    assert_retry_scheduled(state, text=f"HTTP {status}")
    assert last_attempt(destination).http_status == status


def test_timeout_is_retried(platform, sandbox_destination, sandbox):
    destination = sandbox_destination(platform.slug, timeout=0.2)
    faults(sandbox, platform, latency_ms=600)
    state = push(new_contact(), destination)
    assert_retry_scheduled(state, text="timed out after 0.2 s")
    # The platform still answers, late: wait for it, or its answer lands in the next test's log.
    deadline = time.monotonic() + 5
    while not sandbox_log(sandbox, platform) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox_log(sandbox, platform)) == 1  # sent once, not retried in the push


def test_refused_connection_is_retried(platform, destination, sandbox):
    faults(sandbox, platform, outage="refuse")
    state = push(new_contact(), destination)
    assert_retry_scheduled(state, text="connection failed")
    assert [entry["status"] for entry in sandbox_log(sandbox, platform)] == ["refused"]


# -------------------------------------------------------------------- unusable answers


def test_a_success_that_is_not_json_fails_at_once(platform, destination, sandbox):
    faults(sandbox, platform, malformed="html")
    state = push(new_contact(), destination)
    assert state.status == SyncStatus.FAILED
    assert "not JSON" in state.last_error
    assert len(sandbox_log(sandbox, platform)) == 1  # not retried


def test_a_redirect_is_not_followed(platform, destination, sandbox):
    faults(sandbox, platform, redirect=True)
    state = push(new_contact(), destination)
    assert state.status == SyncStatus.FAILED
    assert "HTTP 302" in state.last_error and "not followed" in state.last_error
    assert "moved.example.net" in state.last_error
    assert [entry["status"] for entry in sandbox_log(sandbox, platform)] == [302]
    ok, message = services.destination_test_connection(destination=destination)
    assert not ok and "not followed" in message


def test_echoed_credentials_are_redacted_everywhere(platform, destination, sandbox, sandbox_env):
    secrets = set().union(*(secret_forms(value) for value in sandbox_env.values()))
    faults(sandbox, platform, echo_credentials=True)
    state = push(new_contact(), destination)
    ok, message = services.destination_test_connection(destination=destination)
    faults(sandbox, platform, echo_credentials=False, revoked=True)
    revoked = push(new_contact(email="b@example.com"), destination)
    destination.refresh_from_db()

    assert state.status == SyncStatus.FAILED and not ok
    assert "[redacted]" in state.last_error  # the platform did echo a credential
    texts = [state.last_error, message, revoked.last_error, destination.pause_error]
    for attempt in SyncAttempt.objects.filter(destination=destination):
        texts += [attempt.error, attempt.request_body, attempt.response_excerpt]
    leaked = [(text, s) for text in texts for s in secrets if s in text]
    assert leaked == []


# ------------------------------------------------------------------------ the lifecycle


def test_an_unchanged_contact_makes_no_request(platform, destination, sandbox):
    contact = new_contact()
    assert push(contact, destination).status == SyncStatus.SYNCED
    sent = len(sandbox_log(sandbox, platform))
    state = push(contact, destination)
    assert state.status == SyncStatus.UNCHANGED
    assert len(sandbox_log(sandbox, platform)) == sent
    contact.save()  # a new content version with the same values: the same payload
    assert push(contact, destination).status == SyncStatus.UNCHANGED
    assert len(sandbox_log(sandbox, platform)) == sent


def test_create_then_update_then_delete(platform, sandbox_destination, sandbox):
    destination = sandbox_destination(platform.slug, delete_on_platform=True)
    contact = new_contact()
    created = push(contact, destination)
    assert created.status == SyncStatus.SYNCED, created.last_error
    # "created" where the platform or our lookup says so; an upsert answers "accepted"
    assert last_attempt(destination).outcome in (Outcome.CREATED, Outcome.ACCEPTED)
    assert held(sandbox, platform, contact)["first_name"] == "Ada"

    contact.first_name = "Augusta"
    contact.save()
    updated = push(contact, destination)
    assert updated.status == SyncStatus.SYNCED, updated.last_error
    assert last_attempt(destination).outcome in (Outcome.UPDATED, Outcome.ACCEPTED)
    assert updated.remote_id == created.remote_id
    assert held(sandbox, platform, contact) == {
        "first_name": "Augusta",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "text_field": None,
    }

    sent = len(sandbox_log(sandbox, platform))
    services.contact_delete_remote(
        destination_id=destination.pk,
        external_id=contact.external_id,
        remote_id=updated.remote_id,
        user_id=None,
    )
    attempt = last_attempt(destination)
    if platform.supports_delete:
        assert attempt.outcome == Outcome.DELETED, attempt.error
        assert held(sandbox, platform, contact) is None
        assert len(sandbox_log(sandbox, platform)) > sent
    else:
        assert attempt.outcome == Outcome.SKIPPED
        assert "has no delete call" in attempt.error
        assert held(sandbox, platform, contact) is not None
        assert len(sandbox_log(sandbox, platform)) == sent


def test_a_batch_push_creates_then_updates_each_contact(platform, destination, sandbox):
    contacts = [new_contact(email=f"c{i}@example.com", first_name=f"C{i}") for i in range(3)]

    def push_all():
        services.contacts_push(
            contact_ids=[c.pk for c in contacts],
            destination=destination,
            context=services.PushContext(trigger="action"),
        )
        confirm_awaiting(destination)
        return ContactSyncState.objects.filter(destination=destination)

    assert {s.status for s in push_all()} == {SyncStatus.SYNCED}
    for contact in contacts:
        contact.last_name = "Changed"
        contact.save()
    sent = len(sandbox_log(sandbox, platform))
    assert {s.status for s in push_all()} == {SyncStatus.SYNCED}
    # reads are status checks and read-backs
    writes = [e for e in sandbox_log(sandbox, platform)[sent:] if e["method"] != "GET"]
    for contact in contacts:
        assert held(sandbox, platform, contact)["last_name"] == "Changed"
    if platform.batch_size:  # one bulk call
        assert len(writes) == 1, writes
    else:
        assert len(writes) >= len(contacts), writes


def test_hostile_values_round_trip(platform, destination, sandbox):
    note = CustomFieldDefinition.objects.create(name="note", type="string")
    FieldMapping.objects.create(
        destination=destination,
        custom_field=note,
        remote_field=emulator_class(platform).account_text_field,
    )
    destination = Destination.objects.get(pk=destination.pk)
    contact = new_contact(
        first_name=FIRST, last_name=LAST, email="jose.emilie@example.com", city=CITY, country="CH"
    )
    CustomFieldValue.objects.create(contact=contact, definition=note, value=LONG)

    state = push(contact, destination)
    assert state.status == SyncStatus.SYNCED, state.last_error
    assert held(sandbox, platform, contact) == {
        "first_name": FIRST,
        "last_name": LAST,
        "email": "jose.emilie@example.com",
        "text_field": LONG,
    }
    assert Contact.objects.get(pk=contact.pk).city == CITY  # and our own table is intact


# --------------------------------------------------------------------------- read-back


def edit_on_platform(sandbox, platform, contact, **changes):
    """Change the contact on the platform's side (the sandbox's control), as a person would."""
    response = requests.post(
        f"{sandbox.url}/_sandbox/contact/{platform.slug}/{contact.external_id}",
        json=changes,
        timeout=5,
    )
    assert response.status_code == 200, response.text


def drifted(connector, ours, theirs):
    return [f for f in connector.compared_fields() if connector.field_differs(f, ours, theirs)]


def test_readable_fields_are_fields_of_our_record(platform):
    from sync.connectors.records import ContactRecord

    assert platform.readable_fields, f"{platform.slug} declares no readable field"
    assert platform.readable_fields <= set(ContactRecord.__dataclass_fields__)


def test_a_contact_reads_back_as_pushed_and_a_platform_side_change_is_exactly_the_drift(
    platform, destination, sandbox
):
    from sync import selectors

    note = CustomFieldDefinition.objects.create(name="note", type="string")
    FieldMapping.objects.create(
        destination=destination,
        custom_field=note,
        remote_field=emulator_class(platform).account_text_field,
    )
    destination = Destination.objects.get(pk=destination.pk)
    contact = new_contact(first_name=FIRST, last_name=LAST, email="Read.Back@example.com")
    CustomFieldValue.objects.create(contact=contact, definition=note, value="pushed")
    state = push(contact, destination)
    assert state.status == SyncStatus.SYNCED, state.last_error

    connector = services.destination_connector(destination=destination)
    ours = selectors.contact_records([contact.pk])[0]
    assert {"first_name", "last_name", "email", "custom:note"} <= set(connector.compared_fields())
    for remote_id in (state.remote_id, None):  # by the stored id, and found by external ID
        theirs = connector.read_contact(external_id=contact.external_id, remote_id=remote_id)
        assert theirs is not None and theirs.external_id == contact.external_id
        assert (theirs.first_name, theirs.last_name) == (FIRST, LAST)
        assert drifted(connector, ours, theirs) == []

    edit_on_platform(sandbox, platform, contact, first_name="Changed there", text_field="edited")
    theirs = connector.read_contact(external_id=contact.external_id, remote_id=state.remote_id)
    assert theirs.first_name == "Changed there"
    assert drifted(connector, ours, theirs) == ["first_name", "custom:note"]


def test_a_contact_the_platform_does_not_hold_reads_as_none(platform, destination, sandbox):
    connector = services.destination_connector(destination=destination)
    assert connector.read_contact(external_id="nobody-here", remote_id=None) is None
    contact = new_contact()
    state = push(contact, destination)
    assert state.status == SyncStatus.SYNCED, state.last_error
    response = requests.delete(
        f"{sandbox.url}/_sandbox/contact/{platform.slug}/{contact.external_id}", timeout=5
    )
    assert response.status_code == 200, response.text
    assert held(sandbox, platform, contact) is None
    # the stored id no longer answers, and the lookup by external ID finds nothing
    assert (
        connector.read_contact(external_id=contact.external_id, remote_id=state.remote_id) is None
    )
