"""Yespo's poll over real HTTP (shared/inbound.md part A "Polling"): the activity feed
`GET /api/v2/contacts/activity` by dateFrom/dateTo and activityStatus, paged by offset. The
sandbox records the activity as Yespo does (`/_sandbox/notify` with no data export saved:
no delivery). Its rows carry the webhook's own dedupe key (iid, status, contact, time)."""

import pytest

from contacts.models import Contact
from sync.models import InboundEvent
from sync.sandbox.yespo import YespoEmulator
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
def yespo(inbound_world):
    contact = Contact.objects.create(
        first_name="Po", last_name="Y", email="py@example.com", phone="+447911123456"
    )
    destination = inbound_world.make("yespo")
    inbound_world.push(destination, contact)
    return destination, contact


@pytest.mark.parametrize(
    ("action", "media", "field", "status"),
    [
        ("unsubscribe", "email", "email_status", "unsubscribed"),
        ("unsubscribe", "sms", "sms_status", "unsubscribed"),
        ("spam", "email", "email_status", "unsubscribed"),
    ],
)
def test_an_opt_out_in_the_activity_feed_is_found_by_the_poll(
    yespo, sandbox, action, media, field, status
):
    destination, contact = yespo
    Contact.objects.filter(pk=contact.pk).update(sms_status="subscribed")
    act(sandbox, "yespo", contact, action, media=media)
    outcome = poll(destination)
    assert (outcome.stored, outcome.applied) == (1, 1)
    contact.refresh_from_db()
    assert getattr(contact, field) == status


def test_a_hard_bounce_is_not_in_the_feed(yespo, sandbox):
    destination, contact = yespo
    act(sandbox, "yespo", contact, "hard_bounce")
    assert poll(destination).reported == 0  # UNDELIVERED is not polled: no hardBounce there
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"


def test_the_cursor_advances_and_a_second_poll_applies_nothing_new(yespo, sandbox):
    destination, contact = yespo
    act(sandbox, "yespo", contact, "unsubscribe")
    poll(destination)
    assert cursor(destination)["platform"]["date_from"]
    again = poll(destination)
    assert (again.stored, again.applied) == (0, 0)
    assert applied_from_platform(contact) == ["unsubscribed"]


@pytest.mark.parametrize("order", ["webhook first", "poll first"])
def test_a_webhook_and_a_poll_of_the_same_activity_apply_it_once(yespo, sandbox, order):
    destination, contact = yespo
    sandbox_control(
        sandbox,
        "webhook",
        platform="yespo",
        url=destination_inbound_url(destination),
        login=YespoEmulator.account_settings["webhook_login"],
        password=YespoEmulator.account_credentials["webhook_password"],
    )
    held = act_and_hold(sandbox, "yespo", contact, "unsubscribe")
    if order == "webhook first":
        deliver_all(held)
        assert poll(destination).stored == 0
    else:
        assert poll(destination).applied == 1
        deliver_all(held)  # Yespo's retry: the same activity, the same key
    assert applied_from_platform(contact) == ["unsubscribed"]
    assert InboundEvent.objects.filter(destination=destination).count() == 1
