"""iVvy's poll over real HTTP (shared/inbound.md part A "Polling"): getContactList by
fromModifiedDate, getContact for the status the list does not carry, and getContact of the
sampled contacts, whose 24096 means deleted. The sandbox changes the contact as a person in
iVvy would (`/_sandbox/notify` with nothing subscribed: no delivery)."""

from io import StringIO

import pytest
from django.core.management import call_command

from contacts.models import Contact
from sync.models import ContactSyncState, InboundEvent
from tests.sync.polling_harness import (
    act,
    act_and_hold,
    applied_from_platform,
    cursor,
    deliver_all,
    poll,
)


@pytest.fixture
def ivvy(inbound_world):
    contact = Contact.objects.create(first_name="Po", last_name="Ll", email="po@example.com")
    destination = inbound_world.make("ivvy")
    inbound_world.push(destination, contact)
    return destination, contact


@pytest.mark.parametrize(
    ("action", "status"),
    [("unsubscribe", "unsubscribed"), ("bounce", "bounced"), ("no_marketing", "no_marketing")],
)
def test_a_status_changed_in_ivvy_is_found_by_the_poll(ivvy, sandbox, action, status):
    destination, contact = ivvy
    act(sandbox, "ivvy", contact, action)
    outcome = poll(destination)
    assert (outcome.stored, outcome.applied) == (1, 1)
    contact.refresh_from_db()
    assert contact.email_status == status
    event = InboundEvent.objects.get(destination=destination)
    assert (event.raw_type, event.state) == ("getContact status", "applied")


def test_the_cursor_advances_and_a_second_poll_applies_nothing_new(ivvy, sandbox):
    destination, contact = ivvy
    act(sandbox, "ivvy", contact, "unsubscribe")
    poll(destination)
    first = cursor(destination)["platform"]["modified_since"]
    again = poll(destination)
    assert (again.stored, again.applied) == (0, 0)
    assert cursor(destination)["platform"]["modified_since"] >= first
    assert applied_from_platform(contact) == ["unsubscribed"]


def test_an_opt_in_is_never_taken_from_a_poll(ivvy, sandbox):
    destination, contact = ivvy
    Contact.objects.filter(pk=contact.pk).update(email_status="unsubscribed")
    act(sandbox, "ivvy", contact, "resubscribe")
    assert poll(destination).stored == 0
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"


def test_a_contact_deleted_in_ivvy_is_found_by_the_sample(ivvy, sandbox):
    destination, contact = ivvy
    act(sandbox, "ivvy", contact, "delete")
    outcome = poll(destination)
    assert outcome.applied == 1
    state = ContactSyncState.objects.get(destination=destination, contact=contact)
    assert state.remote_id == "" and state.deleted_on_platform_at is not None
    assert poll(destination).stored == 0  # not held any more: not sampled, not news


def register_and_confirm(sandbox, destination):
    from tests.sync.conftest import sandbox_control

    call_command(
        "destination_inbound", destination=destination.name, register=True, stdout=StringIO()
    )
    answers = sandbox_control(
        sandbox, "notify", platform="ivvy", action="subscription_confirmation"
    )
    assert [a["status"] for a in answers] == [200]


@pytest.mark.parametrize("order", ["webhook first", "poll first"])
def test_a_webhook_and_a_poll_of_the_same_change_apply_it_once(ivvy, sandbox, order):
    destination, contact = ivvy
    register_and_confirm(sandbox, destination)
    held = act_and_hold(sandbox, "ivvy", contact, "unsubscribe")
    if order == "webhook first":
        deliver_all(held)
        assert poll(destination).stored == 0
    else:
        assert poll(destination).applied == 1
        deliver_all(held)  # SNS's retry after our outage: the same change, by its change key
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    assert applied_from_platform(contact) == ["unsubscribed"]
    assert InboundEvent.objects.filter(destination=destination, kind="unsubscribed").count() == 1
