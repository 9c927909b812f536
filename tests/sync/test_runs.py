"""Runs end truthfully: a run ends when its last contact settles, whatever path it took
(paused, resumed, confirmed after a bulk), and its flags survive a pause. The bulk case,
where a bulk awaits a read-back, is in that platform's own sandbox tests."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, SyncRun, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import run_queued_chunks

pytestmark = pytest.mark.django_db


def test_a_retried_contact_counts_in_its_run_once(sandbox, sandbox_destination, immediate_tasks):
    """A 5xx schedules a retry outside the run's task; the retry still ends the run."""
    slug = platform_with(bulk=False)
    destination = sandbox_destination(slug)
    seed_demo_contacts(3)
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"platform": slug, "error_rate": 1.0, "error_status": 503},
        timeout=5,
    ).raise_for_status()
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=destination, trigger="action", user_id=None
    )
    run.refresh_from_db()
    assert (run.state, run.done) == (SyncRun.State.RUNNING, 0)
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": slug, "error_rate": 0}, timeout=5
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


def test_a_chunk_queued_for_a_destination_disabled_since_lets_its_run_finish(
    sandbox_destination,
):
    """A chunk whose destination is disabled after it was queued pushes nothing. Its
    contacts are no longer owed by the run, so the run still finishes, and they go to the
    platform once the destination is enabled again."""
    slug = platform_with(bulk=False)
    kept = sandbox_destination(slug)
    disabled = sandbox_destination(slug, name="second")
    seed_demo_contacts(3)
    ids = sorted(Contact.objects.values_list("pk", flat=True))
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=None, trigger="action", user_id=None
    )
    assert run.total == 6
    disabled.enabled = False
    disabled.save()
    chunks = DBTaskResult.objects.filter(task_path="sync.tasks.push_contacts")
    assert {c.args_kwargs["kwargs"]["destination_id"] for c in chunks} == {kept.pk, disabled.pk}
    run_queued_chunks(chunks, run)  # as a worker runs them
    run.refresh_from_db()
    assert (run.state, run.total, run.done) == (SyncRun.State.FINISHED, 3, 3)
    waiting = ContactSyncState.objects.filter(destination=disabled)
    assert set(waiting.values_list("status", "run_id")) == {(SyncStatus.PENDING, None)}

    disabled.enabled = True
    disabled.save()
    chunks.delete()
    assert services.retries_enqueue_due(now=timezone.now() + timedelta(seconds=1)) == 3
    queued = [c.args_kwargs["kwargs"] for c in chunks.all()]
    assert [(q["destination_id"], sorted(q["contact_ids"])) for q in queued] == [(disabled.pk, ids)]
