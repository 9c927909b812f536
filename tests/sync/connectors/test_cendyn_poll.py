"""Cendyn's poll over real HTTP (shared/inbound.md part A "Polling"): per sampled contact,
`GET …/deliveries` with contact_id, updated_since and each opt-out status; the list names no
contact, so only the contact asked about can be meant. The sandbox records the delivery as
Cendyn does (`/_sandbox/notify` with no webhook URL registered: no delivery)."""

import pytest

from contacts.models import Contact
from sync.models import InboundEvent
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
def cendyn(inbound_world):
    contact = Contact.objects.create(first_name="Po", last_name="C", email="pc@example.com")
    destination = inbound_world.make("cendyn")
    inbound_world.push(destination, contact)
    return destination, contact


@pytest.mark.parametrize(
    ("action", "status"),
    [("bounce", "bounced"), ("complaint", "unsubscribed"), ("unsubscribe_link", "unsubscribed")],
)
def test_a_delivery_opt_out_is_found_by_the_poll(cendyn, sandbox, action, status):
    destination, contact = cendyn
    act(sandbox, "cendyn", contact, action)
    outcome = poll(destination)
    assert (outcome.stored, outcome.applied) == (1, 1)
    contact.refresh_from_db()
    assert contact.email_status == status


def test_the_sample_moves_round_and_a_second_poll_applies_nothing_new(cendyn, sandbox):
    destination, contact = cendyn
    act(sandbox, "cendyn", contact, "bounce")
    poll(destination)
    first = cursor(destination)
    assert first["sample_after"] == contact.pk and first["round_started"]
    again = poll(destination)
    assert (again.stored, again.applied) == (0, 0)
    assert cursor(destination)["previous_round_started"] == first["round_started"]
    assert applied_from_platform(contact) == ["bounced"]


@pytest.mark.parametrize("order", ["webhook first", "poll first"])
def test_a_webhook_and_a_poll_of_the_same_delivery_apply_it_once(cendyn, sandbox, order):
    destination, contact = cendyn
    sandbox_control(sandbox, "webhook", platform="cendyn", url=destination_inbound_url(destination))
    held = act_and_hold(sandbox, "cendyn", contact, "bounce")
    if order == "webhook first":
        deliver_all(held)
        assert poll(destination).stored == 0
    else:
        assert poll(destination).applied == 1
        deliver_all(held)  # the same delivery id: the same change
    assert applied_from_platform(contact) == ["bounced"]
    assert InboundEvent.objects.filter(destination=destination).count() == 1
