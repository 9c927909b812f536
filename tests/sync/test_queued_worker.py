"""Queued mode with a real db_worker process (PostgreSQL: the worker shares the database)."""

import pytest
from django.urls import reverse

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync.models import ContactSyncState, SyncRun, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import payload_keys, sandbox_store
from tests.sync.processes import process_env, run_worker_until_idle

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
# A platform pushed one contact per request: one request per pushed contact.
PLATFORM = platform_with(bulk=False)


def test_admin_action_queues_and_a_worker_pushes_each_contact_once(
    admin_client_logged, sandbox_destination, sandbox, sandbox_env
):
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    per_contact = sandbox_destination(PLATFORM, rate_limit=200)
    seed_demo_contacts(50)
    ids = list(Contact.objects.values_list("pk", flat=True))
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {
            "action": "push_selected",
            "_selected_action": ids,
            "destination": per_contact.pk,
        },
    )
    assert response.status_code == 302
    # the action only started the run: the worker plans it, then pushes its chunks
    assert not ContactSyncState.objects.exists()
    assert SyncRun.objects.get().preparing

    run_worker_until_idle(process_env(**sandbox_env))

    statuses = list(ContactSyncState.objects.values_list("status", flat=True))
    assert statuses == [SyncStatus.SYNCED] * 50
    stored = sandbox_store(sandbox, PLATFORM)["contacts"]
    assert len(stored) == 50
    key, _ = payload_keys(per_contact)
    assert len({c[key] for c in stored}) == 50  # no duplicate on the platform
    run = SyncRun.objects.get()
    # "created", or "accepted" where the platform answers a create and an update alike
    assert (run.state, run.created + run.accepted, run.failed) == (SyncRun.State.FINISHED, 50, 0)
