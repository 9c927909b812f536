"""Runs end truthfully: a run ends when its last contact settles, whatever path it took
(paused, resumed, confirmed after a bulk), and its flags survive a pause. The bulk case,
where a bulk awaits a read-back, is in that platform's own sandbox tests."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import SyncRun
from tests.conftest import platform_with

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
