"""Push on save, in immediate and queued mode, against the sandbox over real HTTP."""

from datetime import timedelta

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, CustomFieldDefinition
from sync import services
from sync.models import ContactSyncState, Destination, FieldMapping, SyncAttempt, SyncStatus
from tests.contacts.admin_post import contact_post
from tests.sync.conftest import PLATFORMS, sandbox_requests, sandbox_store

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:contacts_contact_add")


def _save_contact(client, capture, **fields):
    with capture(execute=True):
        response = client.post(ADD_URL, contact_post(**fields))
    assert response.status_code == 302, response.context["adminform"].form.errors
    return Contact.objects.order_by("-pk").first()


def test_immediate_save_shows_remote_ids_and_sends_inline_rows(
    admin_client_logged, django_capture_on_commit_callbacks, all_destinations, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    contact = _save_contact(
        admin_client_logged,
        django_capture_on_commit_callbacks,
        tags="vip, newsletter",
        external_urls=[{"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}],
    )
    states = {s.destination.platform: s for s in contact.sync_states.select_related("destination")}
    assert {p: states[p].status for p in PLATFORMS} == {p: SyncStatus.SYNCED for p in PLATFORMS}, {
        p: states[p].last_error for p in states
    }
    page = admin_client_logged.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    html = page.content.decode()
    for platform in PLATFORMS:
        assert states[platform].remote_id, platform
        assert states[platform].remote_id in html
    ivvy = sandbox_store(sandbox, "ivvy")
    (record,) = ivvy["contacts"]
    assert [u["ref"] for u in record["externalUrls"]] == ["crm"]  # the inline row went out
    (cendyn,) = sandbox_store(sandbox, "cendyn")["contacts"]
    assert sorted(cendyn["tags"]) == ["newsletter", "vip"]


def test_unchanged_contact_makes_no_request(
    admin_client_logged, django_capture_on_commit_callbacks, all_destinations, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    before = sandbox_requests(sandbox)
    context = services.PushContext(trigger="action")
    for destination in all_destinations:
        services.contact_push(contact_id=contact.pk, destination=destination, context=context)
    assert sandbox_requests(sandbox) == before
    assert set(contact.sync_states.values_list("status", flat=True)) == {SyncStatus.UNCHANGED}
    # force pushes anyway
    forced = services.PushContext(trigger="action", force=True)
    services.contact_push(contact_id=contact.pk, destination=all_destinations[-1], context=forced)
    assert sandbox_requests(sandbox) > before


def test_sync_state_writes_push_nothing(
    admin_client_logged, django_capture_on_commit_callbacks, all_destinations, sandbox, settings
):
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    before = sandbox_requests(sandbox)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        state = ContactSyncState.objects.filter(contact=contact).first()
        state.last_error = "touched"
        state.save()
        SyncAttempt.objects.filter(contact=contact).update(error="x")
    assert callbacks == []
    assert sandbox_requests(sandbox) == before


def test_platform_400_message_shows_on_contact_page(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox, settings
):
    loops = sandbox_destination("loops")
    definition = CustomFieldDefinition.objects.create(name="nickname", type="string")
    FieldMapping.objects.create(
        destination=loops, custom_field=definition, remote_field="propertyThatDoesNotExist"
    )
    contact = _save_contact(
        admin_client_logged,
        django_capture_on_commit_callbacks,
        custom_values=[{"definition": definition.pk, "value": "Johnny"}],
    )
    state = contact.sync_states.get()
    assert state.status == SyncStatus.FAILED
    assert "propertyThatDoesNotExist" in state.last_error
    page = admin_client_logged.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    assert "propertyThatDoesNotExist" in page.content.decode()


def test_outage_during_save_keeps_contact_and_retries(
    admin_client_logged,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    settings,
    immediate_tasks,
):
    loops = sandbox_destination("loops")
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "loops", "outage": "503"})
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    state = contact.sync_states.get(destination=loops)
    assert state.status == SyncStatus.PENDING
    assert state.next_attempt_at is not None
    assert "503" in state.last_error
    page = admin_client_logged.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    assert "Service unavailable" in page.content.decode()

    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "loops", "outage": ""})
    assert services.retries_enqueue_due(now=state.next_attempt_at) == 1
    state.refresh_from_db()
    assert state.status == SyncStatus.SYNCED and state.remote_id
    assert len(sandbox_store(sandbox, "loops")["contacts"]) == 1


def test_revoked_key_pauses_destination_until_test_connection(
    admin_client_logged,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    settings,
    immediate_tasks,
):
    cendyn = sandbox_destination("cendyn")
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "cendyn", "revoked": True})
    first = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    second = _save_contact(
        admin_client_logged, django_capture_on_commit_callbacks, email="second@example.com"
    )
    cendyn.refresh_from_db()
    assert cendyn.paused_at is not None and "401" in cendyn.pause_error
    assert {first.sync_states.get().status, second.sync_states.get().status} == {SyncStatus.WAITING}
    # the second contact waited without a request of its own
    assert sandbox.sandbox.stats()["requests"]["cendyn"] == {"401": 1}

    ok, _ = services.destination_test_connection(destination=cendyn)
    assert not ok
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "cendyn", "revoked": False})
    ok, message = services.destination_test_connection(destination=cendyn)
    assert ok, message
    assert Destination.objects.get(pk=cendyn.pk).paused_at is None
    # resumed together in one bulk: confirmed by the scheduler's read-back when it is due
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.AWAITING}
    services.confirmations_enqueue_due(now=timezone.now() + timedelta(hours=2))
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert len(sandbox_store(sandbox, "cendyn")["contacts"]) == 2


def test_external_id_read_only_once_a_platform_holds_the_contact(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox
):
    sandbox_destination("loops")
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_logged.post(url, contact_post(contact, external_id="CHANGED-1"))
    contact.refresh_from_db()
    assert contact.external_id != "CHANGED-1"


def test_marketing_consent_only_skips_with_reason(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox
):
    sandbox_destination("loops", marketing_consent_only=True)
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    state = contact.sync_states.get()
    assert state.status == SyncStatus.SKIPPED
    assert "consent" in state.skip_reason
    assert sandbox_requests(sandbox, "loops") == 0


def test_deleting_a_contact_deletes_it_remotely_or_says_why(
    admin_client_logged,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    immediate_tasks,
):
    loops = sandbox_destination("loops", delete_on_platform=True)
    ivvy = sandbox_destination("ivvy", delete_on_platform=True)
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    assert len(sandbox_store(sandbox, "loops")["contacts"]) == 1
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_logged.post(
            reverse("admin:contacts_contact_delete", args=[contact.pk]), {"post": "yes"}
        )
    assert not Contact.objects.exists()
    assert sandbox_store(sandbox, "loops")["contacts"] == []
    deleted = SyncAttempt.objects.get(destination=loops, trigger="delete")
    assert deleted.outcome == SyncAttempt.Outcome.DELETED
    skipped = SyncAttempt.objects.get(destination=ivvy, trigger="delete")
    assert "no delete call" in skipped.error
