"""Loops' poll over real HTTP (shared/inbound.md part A "Polling"): no change feed, so per
sampled contact `GET /v1/contacts/find` (subscribed, or gone) and `GET
/v1/contacts/suppression` (isSuppressed), daily. The sandbox changes the contact as Loops
does (`/_sandbox/notify` with no endpoint in Settings → Webhooks: no delivery)."""

import datetime

import pytest

from contacts.models import Contact
from sync import polling
from sync.models import ContactSyncState, InboundEvent
from sync.selectors import destination_inbound_url
from tests.sync.conftest import sandbox_control
from tests.sync.polling_harness import (
    act,
    act_and_hold,
    applied_from_platform,
    cursor,
    deliver_all,
    poll,
)


@pytest.fixture
def loops(inbound_world):
    contact = Contact.objects.create(first_name="Po", last_name="L", email="pl@example.com")
    destination = inbound_world.make("loops")
    inbound_world.push(destination, contact)
    return destination, contact


@pytest.mark.parametrize(
    ("action", "status"),
    [("unsubscribe", "unsubscribed"), ("hard_bounce", "bounced"), ("spam", "bounced")],
)
def test_an_opt_out_is_found_by_the_poll(loops, sandbox, action, status):
    destination, contact = loops
    act(sandbox, "loops", contact, action)
    outcome = poll(destination)
    assert (outcome.stored, outcome.applied) == (1, 1)
    contact.refresh_from_db()
    assert contact.email_status == status  # a suppression does not say bounce or complaint


def test_a_contact_deleted_in_loops_is_found_by_the_poll(loops, sandbox):
    destination, contact = loops
    act(sandbox, "loops", contact, "delete")
    assert poll(destination).applied == 1
    state = ContactSyncState.objects.get(destination=destination, contact=contact)
    assert state.remote_id == "" and state.deleted_on_platform_at is not None


def test_loops_is_polled_daily_and_a_second_poll_applies_nothing_new(loops, sandbox):
    destination, contact = loops
    assert polling.poll_interval(destination) == datetime.timedelta(days=1)
    act(sandbox, "loops", contact, "unsubscribe")
    poll(destination)
    assert cursor(destination)["sample_after"] == contact.pk
    again = poll(destination)
    assert (again.reported, again.stored, again.applied) == (1, 0, 0)  # seen, not news
    assert applied_from_platform(contact) == ["unsubscribed"]


@pytest.mark.parametrize("order", ["webhook first", "poll first"])
def test_a_webhook_and_a_poll_of_the_same_unsubscribe_apply_it_once(loops, sandbox, order):
    destination, contact = loops
    sandbox_control(sandbox, "webhook", platform="loops", url=destination_inbound_url(destination))
    held = act_and_hold(sandbox, "loops", contact, "unsubscribe")
    if order == "webhook first":
        deliver_all(held)
        assert poll(destination).stored == 0
    else:
        assert poll(destination).applied == 1
        # Loops' event is older than the poll's own time: recorded, not applied again.
        deliver_all(held)
        assert InboundEvent.objects.get(raw_type="contact.unsubscribed").state == "not_applied"
    assert applied_from_platform(contact) == ["unsubscribed"]
