"""Cendyn CRM's webhooks over real HTTP: the sandbox plays Cendyn (channel subscriptions,
delivery statuses, destroys and bulk completions), signs with the account secret and posts
to our inbound URL on the live server."""

import time

import pytest

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, InboundEvent, InboundRefusal, SyncStatus
from sync.selectors import destination_inbound_url
from tests.sync.conftest import applied_once_then_redelivered, sandbox_control


@pytest.fixture
def cendyn(inbound_world, sandbox):
    contact = Contact.objects.create(first_name="Bo", last_name="C", email="bo@example.com")
    destination = inbound_world.make("cendyn")
    state = inbound_world.push(destination, contact)
    sandbox_control(sandbox, "webhook", platform="cendyn", url=destination_inbound_url(destination))
    return destination, contact, state


def notify(sandbox, contact, action, **options):
    return sandbox_control(
        sandbox,
        "notify",
        platform="cendyn",
        action=action,
        external_id=contact.external_id,
        **options,
    )


@pytest.mark.parametrize(
    ("action", "channel", "field", "status"),
    [
        ("unsubscribe", "email", "email_status", "unsubscribed"),
        ("unsubscribe", "sms", "sms_status", "unsubscribed"),
        ("bounce", "email", "email_status", "bounced"),
        ("complaint", "email", "email_status", "unsubscribed"),
        ("unsubscribe_link", "email", "email_status", "unsubscribed"),
    ],
)
def test_opt_outs_are_applied(cendyn, sandbox, action, channel, field, status):
    _, contact, _ = cendyn
    if channel == "sms":
        Contact.objects.filter(pk=contact.pk).update(sms_status="subscribed")
    answers = notify(sandbox, contact, action, channel=channel)
    assert [a["status"] for a in answers] == [200]
    contact.refresh_from_db()
    assert getattr(contact, field) == status
    assert InboundEvent.objects.get().state == "applied"


def test_resubscribe_is_confirmed_by_reading_the_contact_back(cendyn, sandbox):
    _, contact, _ = cendyn
    notify(sandbox, contact, "unsubscribe", event_time=int(time.time()) - 60)
    notify(sandbox, contact, "resubscribe")
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert InboundEvent.objects.get(kind="resubscribed").state == "applied"


def test_delete_clears_the_remote_id(cendyn, sandbox):
    _, contact, state = cendyn
    notify(sandbox, contact, "delete")
    state.refresh_from_db()
    assert (state.remote_id, state.status) == ("", SyncStatus.NEVER)
    assert state.deleted_on_platform_at is not None


def test_replay_bad_signature_and_another_account(cendyn, sandbox):
    destination, contact, _ = cendyn
    notify(sandbox, contact, "bounce", token="t" * 50, sent_at=1_800_000_000)
    again = notify(sandbox, contact, "bounce", token="t" * 50, sent_at=1_800_000_000)
    assert [a["status"] for a in again] == [200]
    assert InboundEvent.objects.count() == 1
    bad = notify(sandbox, contact, "unsubscribe", tamper=True)
    assert [a["status"] for a in bad] == [401]
    other = notify(sandbox, contact, "unsubscribe", account_id="another-account")
    assert [a["status"] for a in other] == [406]  # verified, never applicable: not retried
    assert InboundEvent.objects.count() == 1
    refusals = dict(
        InboundRefusal.objects.filter(destination=destination).values_list("reason", "count")
    )
    assert refusals == {"replay": 1, "signature": 1, "unknown_account": 1}


def test_out_of_order_channel_change_is_not_applied(cendyn, sandbox):
    _, contact, _ = cendyn
    now = int(time.time())
    notify(sandbox, contact, "resubscribe", event_time=now)
    notify(sandbox, contact, "unsubscribe", event_time=now - 300)
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert InboundEvent.objects.get(kind="unsubscribed").state == "not_applied"


def test_bulk_completion_webhook_confirms_and_fails_contacts(inbound_world, sandbox, settings):
    """A bulk push names our URL with its chunk; Cendyn's completion webhook settles it."""
    destination = inbound_world.make("cendyn", push_on_save=False)
    seed_demo_contacts(20)
    bad = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:2])
    for pk in bad:
        Contact.objects.filter(pk=pk).update(email=f"broken-{pk}@")
    plan = services.push_plan(
        contacts=Contact.objects.all(), destination=destination, trigger="command", user_id=None
    )
    services.plan_run_here(plan)
    awaiting = ContactSyncState.objects.filter(destination=destination, status="awaiting")
    assert awaiting.count() == 20
    assert all("#" in ref for ref in awaiting.values_list("confirmation_ref", flat=True))
    answers = sandbox_control(sandbox, "notify", platform="cendyn", action="bulk_complete")
    assert [a["status"] for a in answers] == [200]
    states = ContactSyncState.objects.filter(destination=destination)
    assert sorted(states.filter(status="failed").values_list("contact_id", flat=True)) == bad
    synced = states.filter(status="synced")
    assert synced.count() == 18 and all(s.remote_id for s in synced)
    assert InboundEvent.objects.get(kind="bulk_completed").state == "applied"


def test_the_documented_vector_verifies():
    """shared/inbound.md part B 5.3's vector: hex HMAC-SHA256(secret, timestamp + token)."""
    import datetime
    import json

    from sync.connectors.cendyn import CendynWebhooks
    from sync.connectors.inbound import InboundRequest, Refused

    body = {
        "action": "destroy",
        "origin": "platform_individual",
        "contact": {"id": "5b6d96991a7e4e8ac8000128", "user_id": "6712"},
        "timestamp": 1533909631,
        "token": "a" * 25 + "b" * 25,
        "account_id": "acct",
    }
    signature = "69bb6c219078cdeff30272223f9657f8c6d14e12ecaccf67b168d5e8577fe5e6"
    verifier = CendynWebhooks(
        secrets={"secret": "test-account-secret"},
        settings={"account_id": "acct"},
        state={},
        now=lambda: datetime.datetime.now(datetime.UTC),
    )
    raw = json.dumps(body).encode()
    [event] = verifier.verify(
        InboundRequest("POST", {"authorization": signature.upper()}, raw)
    ).events
    assert (event.kind, event.remote_id, event.external_id) == (
        "deleted",
        "5b6d96991a7e4e8ac8000128",
        "6712",
    )
    other = json.dumps({**body, "account_id": "other"}).encode()
    with pytest.raises(Refused) as refused:
        verifier.verify(InboundRequest("POST", {"authorization": signature}, other))
    assert refused.value.status == 406


@pytest.mark.parametrize(
    ("action", "channel"),
    [
        ("unsubscribe", "email"),
        ("unsubscribe", "sms"),
        ("resubscribe", "email"),
        ("bounce", "email"),
        ("complaint", "email"),
        ("unsubscribe_link", "email"),
        ("delete", "email"),
    ],
)
def test_every_event_is_applied_once_and_a_redelivery_changes_nothing(
    cendyn, sandbox, action, channel
):
    """Each of Cendyn's contact events, on both databases, over HTTP."""
    _, contact, _ = cendyn
    Contact.objects.filter(pk=contact.pk).update(sms_status="subscribed")
    if action == "resubscribe":  # an opt-in needs something to undo
        notify(sandbox, contact, "unsubscribe", event_time=int(time.time()) - 60)
    before = InboundEvent.objects.count()
    answers = notify(sandbox, contact, action, channel=channel)
    applied_once_then_redelivered(sandbox, "cendyn", answers, contact, events_before=before)
