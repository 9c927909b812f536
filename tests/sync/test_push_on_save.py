"""Push on save, in immediate and queued mode, against the sandbox over real HTTP."""

from datetime import timedelta

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, Destination, SyncAttempt, SyncStatus
from tests.conftest import platform_with
from tests.contacts.admin_post import contact_post
from tests.sync.conftest import PLATFORMS, sandbox_requests, sandbox_store

pytestmark = pytest.mark.django_db
# A platform pushed one contact per request: a saved contact is one request.
PLATFORM = platform_with(bulk=False)
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
        # one record on each platform (what each holds of the inline rows: its own module)
        assert len(sandbox_store(sandbox, platform)["contacts"]) == 1, platform


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


def test_outage_during_save_keeps_contact_and_retries(
    admin_client_logged,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    settings,
    immediate_tasks,
):
    destination = sandbox_destination(PLATFORM)
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": PLATFORM, "outage": "503"})
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    state = contact.sync_states.get(destination=destination)
    assert state.status == SyncStatus.PENDING
    assert state.next_attempt_at is not None
    assert "503" in state.last_error
    page = admin_client_logged.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    assert "Service unavailable" in page.content.decode()

    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": PLATFORM, "outage": ""})
    assert services.retries_enqueue_due(now=state.next_attempt_at) == 1
    state.refresh_from_db()
    assert state.status == SyncStatus.SYNCED and state.remote_id
    assert len(sandbox_store(sandbox, PLATFORM)["contacts"]) == 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_revoked_key_pauses_destination_until_test_connection(
    platform,
    admin_client_logged,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    settings,
    immediate_tasks,
):
    destination = sandbox_destination(platform)
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": platform, "revoked": True})
    first = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    second = _save_contact(
        admin_client_logged, django_capture_on_commit_callbacks, email="second@example.com"
    )
    destination.refresh_from_db()
    assert destination.paused_at is not None and "401" in destination.pause_error
    assert {first.sync_states.get().status, second.sync_states.get().status} == {SyncStatus.WAITING}
    # the second contact waited without a request of its own
    assert sandbox.sandbox.stats()["requests"][platform] == {"401": 1}

    ok, _ = services.destination_test_connection(destination=destination)
    assert not ok
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": platform, "revoked": False})
    ok, message = services.destination_test_connection(destination=destination)
    assert ok, message
    assert Destination.objects.get(pk=destination.pk).paused_at is None
    # resumed together: where the platform's bulk awaits a read-back, the scheduler's
    # confirmation pass settles it once due
    services.confirmations_enqueue_due(now=timezone.now() + timedelta(hours=2))
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert len(sandbox_store(sandbox, platform)["contacts"]) == 2


def test_external_id_read_only_once_a_platform_holds_the_contact(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox
):
    sandbox_destination(PLATFORM)
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_logged.post(url, contact_post(contact, external_id="CHANGED-1"))
    contact.refresh_from_db()
    assert contact.external_id != "CHANGED-1"


def test_marketing_consent_only_skips_with_reason(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox
):
    sandbox_destination(PLATFORM, marketing_consent_only=True)
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    state = contact.sync_states.get()
    assert state.status == SyncStatus.SKIPPED
    assert "consent" in state.skip_reason
    assert sandbox_requests(sandbox, PLATFORM) == 0


def test_deleting_a_contact_deletes_it_remotely_or_says_why(
    admin_client_logged,
    django_capture_on_commit_callbacks,
    sandbox_destination,
    sandbox,
    immediate_tasks,
):
    deleting = sandbox_destination(platform_with(delete=True), delete_on_platform=True)
    without_delete = sandbox_destination(platform_with(delete=False), delete_on_platform=True)
    contact = _save_contact(admin_client_logged, django_capture_on_commit_callbacks)
    assert len(sandbox_store(sandbox, deleting.platform)["contacts"]) == 1
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_logged.post(
            reverse("admin:contacts_contact_delete", args=[contact.pk]), {"post": "yes"}
        )
    assert not Contact.objects.exists()
    assert sandbox_store(sandbox, deleting.platform)["contacts"] == []
    deleted = SyncAttempt.objects.get(destination=deleting, trigger="delete")
    assert deleted.outcome == SyncAttempt.Outcome.DELETED
    skipped = SyncAttempt.objects.get(destination=without_delete, trigger="delete")
    assert "no delete call" in skipped.error


def _messages(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


@pytest.mark.django_db(transaction=True)
def test_the_page_after_a_save_says_what_each_platform_did(
    admin_client_logged, sandbox_destination, sandbox, settings
):
    """A refusal is a warning with the platform's reason, not a green "changed successfully"
    alone (immediate mode: the push ran before the next page)."""
    settings.SYNC_ON_SAVE_MODE = "immediate"
    refusing, accepting = PLATFORMS[0], PLATFORMS[1]
    refused = sandbox_destination(refusing)
    accepted = sandbox_destination(accepting)
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"platform": refusing, "error_rate": 1.0, "error_status": 400},
        timeout=5,
    )
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_add"), contact_post(), follow=True
    )
    shown = _messages(response)
    assert ("success", f"Synced to {accepted.name}.") in shown, shown
    (warning,) = [text for level, text in shown if level == "warning"]
    assert warning.startswith(f"{refused.name} refused it: ") and "400" in warning


@pytest.mark.django_db(transaction=True)
def test_in_queued_mode_the_page_says_the_push_is_queued(
    admin_client_logged, sandbox_destination, settings
):
    settings.SYNC_ON_SAVE_MODE = "queued"
    destination = sandbox_destination(PLATFORMS[0])
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_add"), contact_post(), follow=True
    )
    assert (
        "info",
        f"Queued for {destination.name}; the Sync panel updates itself.",
    ) in _messages(response)
