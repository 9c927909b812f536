"""Loops' webhooks over real HTTP: the sandbox acts as Loops (unsubscribes, bounces, deletes a
contact), signs its real notification and posts it to our inbound URL on the live server."""

import time

import pytest

from contacts.models import ConsentEntry, Contact, MailingList, MailingListSubscription
from sync.models import ContactSyncState, InboundEvent, InboundRefusal, ListMapping
from tests.sync.conftest import applied_once_then_redelivered, sandbox_control

NEWSLETTER = "cm16k73gq014h0mmj5b6jdi9r"


@pytest.fixture
def loops(inbound_world, sandbox):
    """A Loops destination registered in (sandbox) Loops' settings and a contact pushed there."""
    contact = Contact.objects.create(first_name="Ada", last_name="L", email="ada@example.com")
    destination = inbound_world.make("loops")
    state = inbound_world.push(destination, contact)
    url = destination_url(inbound_world, destination)
    sandbox_control(sandbox, "webhook", platform="loops", url=url)
    return destination, contact, state


def destination_url(world, destination):
    from sync.selectors import destination_inbound_url

    url = destination_inbound_url(destination)
    assert url.startswith(world.url)
    return url


def notify(sandbox, contact, action, **options):
    return sandbox_control(
        sandbox,
        "notify",
        platform="loops",
        action=action,
        external_id=contact.external_id,
        **options,
    )


def test_unsubscribe_is_applied_with_loops_as_the_source(loops, sandbox):
    destination, contact, _ = loops
    answers = notify(sandbox, contact, "unsubscribe")
    assert [a["status"] for a in answers] == [200]
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    event = InboundEvent.objects.get(destination=destination)
    assert (event.kind, event.state, event.contact_id) == ("unsubscribed", "applied", contact.pk)
    entry = ConsentEntry.objects.get(contact=contact, source="platform")
    assert (entry.channel, entry.status, entry.source_label) == (
        "email",
        "unsubscribed",
        destination.name,
    )


def test_hard_bounce_fans_out_and_both_events_are_stored_once(loops, sandbox):
    destination, contact, _ = loops
    answers = notify(sandbox, contact, "hard_bounce")
    assert [a["status"] for a in answers] == [200, 200]
    kinds = set(InboundEvent.objects.values_list("kind", flat=True))
    assert kinds == {"hard_bounce", "unsubscribed"}
    contact.refresh_from_db()
    # Both carry the same eventTime: on a tie both opt-outs apply; the later-processed wins.
    assert contact.email_status in ("bounced", "unsubscribed")
    assert ConsentEntry.objects.filter(contact=contact, source="platform").count() == 2


def test_spam_complaint_unsubscribes_the_email(loops, sandbox):
    _, contact, _ = loops
    notify(sandbox, contact, "spam")
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    assert "spam complaint" in ConsentEntry.objects.get(source="platform").detail


def test_list_unsubscribe_turns_our_mapped_list_off(loops, sandbox):
    destination, contact, _ = loops
    digest = MailingList.objects.create(name="Digest")
    MailingListSubscription.objects.create(contact=contact, mailing_list=digest, subscribed=True)
    ListMapping.objects.create(destination=destination, mailing_list=digest, remote_list=NEWSLETTER)
    inbound_push = ContactSyncState.objects.get(contact=contact)
    assert inbound_push.remote_id
    notify(sandbox, contact, "unsubscribe_list", list_id=NEWSLETTER)
    assert not MailingListSubscription.objects.get(contact=contact).subscribed
    assert InboundEvent.objects.get().state == "applied"


def test_resubscribe_is_applied_after_a_read_back(loops, sandbox):
    _, contact, _ = loops
    notify(sandbox, contact, "unsubscribe", event_time=int(time.time()) - 60)
    notify(sandbox, contact, "resubscribe")
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert InboundEvent.objects.get(kind="resubscribed").state == "applied"


def test_a_stale_resubscribe_is_still_confirmed_by_read_back_and_stale_opt_outs_apply(
    loops, sandbox
):
    _, contact, _ = loops
    stale = int(time.time()) - 3600
    notify(sandbox, contact, "unsubscribe", sent_at=stale, event_time=stale)
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    assert InboundEvent.objects.get().stale


def test_delete_clears_our_remote_id_and_is_not_recreated_by_default(loops, sandbox):
    destination, contact, state = loops
    notify(sandbox, contact, "delete")
    state.refresh_from_db()
    assert state.remote_id == ""
    assert state.deleted_on_platform_at is not None
    # The fan-out's contact.unsubscribed changed our contact: its push skips Loops.
    assert state.status == "skipped" and state.skip_reason.startswith("deleted on Loops on ")
    assert InboundEvent.objects.get(kind="deleted").state == "applied"
    assert sandbox.sandbox.contact_view("loops", contact.external_id) is None


def test_replay_is_answered_200_and_ignored(loops, sandbox):
    destination, contact, _ = loops
    notify(sandbox, contact, "unsubscribe", webhook_id="msg_same")
    answers = notify(sandbox, contact, "unsubscribe", webhook_id="msg_same")
    assert [a["status"] for a in answers] == [200]
    assert InboundEvent.objects.count() == 1
    assert InboundRefusal.objects.get(destination=destination, reason="replay").count == 1


def test_bad_signature_is_refused_and_counted(loops, sandbox):
    destination, contact, _ = loops
    answers = notify(sandbox, contact, "unsubscribe", tamper=True)
    assert [a["status"] for a in answers] == [401]
    assert not InboundEvent.objects.exists()
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert InboundRefusal.objects.get(destination=destination, reason="signature").count == 1


def test_an_event_older_than_the_latest_change_is_recorded_not_applied(loops, sandbox):
    _, contact, _ = loops
    now = int(time.time())
    notify(sandbox, contact, "resubscribe", event_time=now)
    notify(sandbox, contact, "unsubscribe", event_time=now - 600)
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert InboundEvent.objects.get(kind="unsubscribed").state == "not_applied"


def test_the_documented_vector_verifies_and_a_changed_body_does_not():
    """shared/inbound.md part B 5.4's vector (computed from Loops' sample code)."""
    import datetime

    from sync.connectors.inbound import InboundRequest, Refused
    from sync.connectors.loops import LoopsWebhooks

    body = (
        b'{"eventName":"contact.unsubscribed","eventTime":1734425918,"webhookSchemaVersion":'
        b'"1.0.0","contactIdentity":{"id":"cm4ittmhq0011ow9h6fb460yw","email":'
        b'"test@example.com","userId":null}}'
    )
    headers = {
        "webhook-id": "msg_test_0001",
        "webhook-timestamp": "1734425918",
        "webhook-signature": "v1,RwIBJ13gdTulN1PwrMCBhHdZITY3y9yW/gCpUcFDbq4=",
    }
    verifier = LoopsWebhooks(
        secrets={"signing_secret": "whsec_dGVzdC1sb29wcy1zaWduaW5nLWtleS0zMi1ieXRlcyE="},
        settings={},
        state={},
        now=lambda: datetime.datetime.now(datetime.UTC),
    )
    verified = verifier.verify(InboundRequest("POST", headers, body))
    [event] = verified.events
    assert (event.kind, event.remote_id, event.email) == (
        "unsubscribed",
        "cm4ittmhq0011ow9h6fb460yw",
        "test@example.com",
    )
    assert verifier.is_stale(verified.sent_at)  # 2024: a late retry, still an opt-out
    with pytest.raises(Refused) as refused:
        verifier.verify(InboundRequest("POST", headers, body.replace(b"test@", b"evil@")))
    assert refused.value.status == 401


def test_delete_is_recreated_when_the_destination_says_so(loops, sandbox):
    destination, contact, state = loops
    type(destination).objects.filter(pk=destination.pk).update(recreate_deleted=True)
    notify(sandbox, contact, "delete")
    state.refresh_from_db()
    # contact.unsubscribed, which follows the delete, changed our contact: its push re-creates
    assert state.status == "synced" and state.remote_id and state.deleted_on_platform_at is None
    assert sandbox.sandbox.contact_view("loops", contact.external_id) is not None


@pytest.mark.parametrize(
    "action", ["unsubscribe", "unsubscribe_list", "hard_bounce", "spam", "resubscribe", "delete"]
)
def test_every_event_is_applied_once_and_a_redelivery_changes_nothing(loops, sandbox, action):
    """Each of Loops' events (the fan-outs too) on both databases, over HTTP."""
    destination, contact, _ = loops
    options = {}
    if action == "unsubscribe_list":
        digest = MailingList.objects.create(name="Digest")
        MailingListSubscription.objects.create(contact=contact, mailing_list=digest)
        ListMapping.objects.create(
            destination=destination, mailing_list=digest, remote_list=NEWSLETTER
        )
        options["list_id"] = NEWSLETTER
    if action == "resubscribe":  # an opt-in needs something to undo
        notify(sandbox, contact, "unsubscribe", event_time=int(time.time()) - 60)
    before = InboundEvent.objects.count()
    answers = notify(sandbox, contact, action, **options)
    applied_once_then_redelivered(sandbox, "loops", answers, contact, events_before=before)
