"""Batch endpoints through the engine: every platform with a bulk endpoint, with partial
failures mapped back to their contacts."""

import pytest
from django.db import connection

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, SyncAttempt, SyncStatus
from tests.conftest import platforms_with
from tests.sync.conftest import payload_keys, sandbox_store

pytestmark = pytest.mark.django_db


def confirm_until_settled(destination, settings):
    """Run the confirmation checks the scheduler would (a bulk whose answer names no contact
    awaits them; a contact never found fails once SYNC_MAX_ATTEMPTS checks went unanswered)."""
    settings.SYNC_MAX_ATTEMPTS = 3
    for _ in range(settings.SYNC_MAX_ATTEMPTS):
        awaiting = ContactSyncState.objects.filter(
            destination=destination, status=SyncStatus.AWAITING
        ).values_list("contact_id", flat=True)
        if awaiting:
            services.contacts_confirm(
                contact_ids=list(awaiting),
                destination=destination,
                context=services.PushContext(trigger="retry"),
            )


@pytest.mark.parametrize("platform", platforms_with(bulk=True))
def test_bulk_push_with_partial_failures(sandbox_destination, sandbox, platform, settings):
    settings.SYNC_BULK_CHUNK_SIZE = 40
    destination = sandbox_destination(platform)
    seed_demo_contacts(100)
    bad = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:3])
    for pk in bad:  # past our form, as an old import might have written them
        Contact.objects.filter(pk=pk).update(email=f"broken-{pk}@")
    plan = services.push_plan(
        contacts=Contact.objects.all(), destination=destination, trigger="command", user_id=None
    )
    services.plan_run_here(plan)
    pushed = sum(sandbox.sandbox.stats()["requests"][platform].values())
    confirm_until_settled(destination, settings)

    failed = ContactSyncState.objects.filter(status=SyncStatus.FAILED)
    assert sorted(failed.values_list("contact_id", flat=True)) == bad
    assert all(s.last_error for s in failed)
    assert ContactSyncState.objects.filter(status=SyncStatus.SYNCED).count() == 97
    key = payload_keys(destination)[0]
    stored = {r[key] for r in sandbox_store(sandbox, platform)["contacts"]}
    good = set(Contact.objects.exclude(pk__in=bad).values_list("external_id", flat=True))
    assert good <= stored
    assert pushed < 30, f"{pushed} requests for 100 contacts: not in bulk"
    requests = sum(sandbox.sandbox.stats()["requests"][platform].values())
    plan.run.refresh_from_db()
    # both platforms upsert: neither says created or updated
    assert (plan.run.accepted, plan.run.failed, plan.run.state) == (97, 3, "finished")
    assert SyncAttempt.objects.filter(outcome="accepted").count() == 97

    # pushed again: nothing changed, nothing sent
    before = requests
    services.plan_run_here(
        services.push_plan(
            contacts=Contact.objects.exclude(pk__in=bad),
            destination=destination,
            trigger="command",
            user_id=None,
        )
    )
    assert sum(sandbox.sandbox.stats()["requests"][platform].values()) == before


class ClaimUpdates:
    """Counts the UPDATEs of the states that mark them claimed (in progress), as executed
    (the push resets Django's query log when it ends)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        head = sql.split("WHERE")[0]
        if head.upper().startswith("UPDATE") and "sync_contactsyncstate" in head:
            values = [] if many else list(params or [])
            if "in_progress" in head or SyncStatus.IN_PROGRESS in values:
                self.count += 1
        return execute(sql, params, many, context)


@pytest.mark.parametrize("platform", platforms_with(bulk=True))
def test_a_first_push_makes_its_states_claimed(sandbox_destination, platform):
    """A push that makes a contact's state makes it claimed: the state is written once before
    its outcome, not twice (sync.engine._claim); a re-push claims the states it finds."""
    destination = sandbox_destination(platform)
    seed_demo_contacts(30)
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))

    def push(force):
        context = services.PushContext(trigger="command", force=force)
        claims = ClaimUpdates()
        with connection.execute_wrapper(claims):
            services.contacts_push(contact_ids=ids, destination=destination, context=context)
        return claims.count

    assert push(force=False) == 0
    states = ContactSyncState.objects.filter(destination=destination)
    assert states.count() == 30
    assert not states.exclude(status=SyncStatus.SYNCED).exclude(status=SyncStatus.AWAITING)
    assert SyncAttempt.objects.count() == 30
    assert push(force=True) == 1
    assert not states.filter(status=SyncStatus.IN_PROGRESS).exists()
