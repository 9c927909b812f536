"""Runs end truthfully: a run ends when its last contact settles, whatever path it took
(paused, resumed, confirmed after a bulk), and its flags survive a pause."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, SyncRun, SyncStatus

pytestmark = pytest.mark.django_db


def revoke(sandbox, platform, revoked):
    answer = requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"platform": platform, "revoked": revoked},
        timeout=5,
    )
    answer.raise_for_status()


def bulk_posts(sandbox):
    return [
        e
        for e in list(sandbox.sandbox.log)
        if e["platform"] == "cendyn"
        and e["method"] == "POST"
        and e["path"].endswith("bulk")
        and e["status"] == 201
    ]


def test_a_forced_run_paused_by_401_then_resumed_ends_when_its_contacts_settle(
    sandbox, sandbox_destination, immediate_tasks, settings
):
    settings.SYNC_BULK_CHUNK_SIZE = 40
    sandbox.sandbox.set_rate_limit("cendyn", None)
    destination = sandbox_destination("cendyn", rate_limit=1000)
    seed_demo_contacts(100)
    contacts = Contact.objects.all()
    # held by the platform already: without `force` nothing would be sent again
    services.contacts_push_selected(
        contacts=contacts, destination=destination, trigger="action", user_id=None
    )
    services.confirmations_enqueue_due(now=timezone.now() + timedelta(hours=2))
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}

    revoke(sandbox, "cendyn", True)
    run = services.contacts_push_selected(
        contacts=contacts, destination=destination, trigger="action", user_id=None, force=True
    )
    destination.refresh_from_db()
    assert destination.is_paused
    run.refresh_from_db()
    assert (run.state, run.done) == (SyncRun.State.RUNNING, 0)
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.WAITING}

    revoke(sandbox, "cendyn", False)
    sent_before = len(bulk_posts(sandbox))
    ok, message = services.destination_test_connection(destination=destination)
    assert ok, message
    assert len(bulk_posts(sandbox)) > sent_before, "the run's force was dropped on resume"
    run.refresh_from_db()
    assert run.state == SyncRun.State.RUNNING  # accepted in bulk, not yet confirmed
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.AWAITING}
    assert set(ContactSyncState.objects.values_list("run", flat=True)) == {run.pk}

    services.retries_enqueue_due(now=timezone.now() + timedelta(hours=2))
    run.refresh_from_db()
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert (run.state, run.done, run.total, run.accepted) == (
        SyncRun.State.FINISHED,
        100,
        100,
        100,
    )


def test_a_retried_contact_counts_in_its_run_once(sandbox, sandbox_destination, immediate_tasks):
    """A 5xx schedules a retry outside the run's task; the retry still ends the run."""
    destination = sandbox_destination("loops")
    seed_demo_contacts(3)
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"platform": "loops", "error_rate": 1.0, "error_status": 503},
        timeout=5,
    ).raise_for_status()
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=destination, trigger="action", user_id=None
    )
    run.refresh_from_db()
    assert (run.state, run.done) == (SyncRun.State.RUNNING, 0)
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "loops", "error_rate": 0}, timeout=5
    ).raise_for_status()
    services.retries_enqueue_due(now=timezone.now() + timedelta(hours=2))
    run.refresh_from_db()
    assert (run.state, run.done, run.total) == (SyncRun.State.FINISHED, 3, 3)
    # a later save pushes a contact that settled in that run: the run does not count it again
    contact = Contact.objects.first()
    contact.first_name = "Later"
    contact.save()
    services.contacts_enqueue_push(
        contact_ids=[contact.pk], destinations=[destination], trigger="save"
    )
    run.refresh_from_db()
    assert run.done == 3
