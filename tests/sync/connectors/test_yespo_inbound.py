"""Yespo's activity webhooks over real HTTP: the sandbox plays Yespo's "Data export →
Webhook" (basic auth, a JSON array per activity, zoneless activityDateTime) and posts to our
inbound URL on the live server."""

import datetime
import time

import pytest

from contacts.models import ConsentEntry, Contact
from sync.models import InboundEvent, InboundRefusal
from sync.sandbox.yespo import YespoEmulator
from sync.selectors import destination_inbound_url
from tests.sync.conftest import applied_once_then_redelivered, sandbox_control

LOGIN = YespoEmulator.account_settings["webhook_login"]
PASSWORD = YespoEmulator.account_credentials["webhook_password"]


@pytest.fixture
def yespo(inbound_world, sandbox):
    contact = Contact.objects.create(
        first_name="Cy", last_name="Y", email="cy@example.com", phone="+447911123456"
    )
    destination = inbound_world.make("yespo")
    state = inbound_world.push(destination, contact)
    register(sandbox, destination)
    return destination, contact, state


def register(sandbox, destination, **changes):
    fields = {"url": destination_inbound_url(destination), "login": LOGIN, "password": PASSWORD}
    sandbox_control(sandbox, "webhook", platform="yespo", **{**fields, **changes})


def notify(sandbox, contact, action, **options):
    return sandbox_control(
        sandbox,
        "notify",
        platform="yespo",
        action=action,
        external_id=contact.external_id,
        **options,
    )


def test_the_availability_check_is_answered(yespo, sandbox):
    answers = sandbox_control(sandbox, "notify", platform="yespo", action="check")
    assert [a["status"] for a in answers] == [200]


@pytest.mark.parametrize(
    ("action", "media", "field", "status"),
    [
        ("unsubscribe", "email", "email_status", "unsubscribed"),
        ("unsubscribe", "sms", "sms_status", "unsubscribed"),
        ("spam", "email", "email_status", "unsubscribed"),
        ("hard_bounce", "email", "email_status", "bounced"),
    ],
)
def test_opt_outs_are_applied(yespo, sandbox, action, media, field, status):
    _, contact, _ = yespo
    Contact.objects.filter(pk=contact.pk).update(sms_status="subscribed")
    answers = notify(sandbox, contact, action, media=media)
    assert [a["status"] for a in answers] == [200]
    contact.refresh_from_db()
    assert getattr(contact, field) == status
    assert InboundEvent.objects.get().state == "applied"


def test_subscription_changed_and_deliveries_are_recorded_only(yespo, sandbox):
    _, contact, _ = yespo
    notify(sandbox, contact, "subscription_changed")
    notify(sandbox, contact, "delivered")
    assert set(InboundEvent.objects.values_list("state", flat=True)) == {"ignored"}
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"


def test_activity_time_is_read_in_the_accounts_time_zone(yespo, sandbox):
    destination, contact, _ = yespo
    destination.settings = {**destination.settings, "account_time_zone": "Asia/Tokyo"}
    destination.save()
    moment = int(time.time()) - 120
    notify(sandbox, contact, "unsubscribe", event_time=moment, time_zone="Asia/Tokyo")
    event = InboundEvent.objects.get()
    assert event.occurred_at == datetime.datetime.fromtimestamp(moment, datetime.UTC)
    entry = ConsentEntry.objects.get(source="platform")
    assert entry.occurred_at == event.occurred_at


def test_wrong_password_is_refused_and_replays_ignored(yespo, sandbox):
    destination, contact, _ = yespo
    bad = notify(sandbox, contact, "unsubscribe", tamper=True)
    assert [a["status"] for a in bad] == [401]
    notify(sandbox, contact, "spam", iid="same-iid", event_time=1_800_000_000)
    again = notify(sandbox, contact, "spam", iid="same-iid", event_time=1_800_000_000)
    assert [a["status"] for a in again] == [200]
    assert InboundEvent.objects.count() == 1
    refusals = dict(InboundRefusal.objects.values_list("reason", "count"))
    assert refusals == {"signature": 1, "replay": 1}


def test_an_older_activity_is_recorded_not_applied(yespo, sandbox, client):
    _, contact, _ = yespo
    # a person opted the contact back in here after the platform's unsubscribe happened
    notify(sandbox, contact, "unsubscribe", event_time=int(time.time()) - 3600, iid="late")
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    notify(sandbox, contact, "spam", event_time=int(time.time()) - 7200, iid="older")
    assert InboundEvent.objects.get(raw_type="SPAM email").state == "not_applied"


@pytest.mark.parametrize(
    ("action", "media"),
    [
        ("unsubscribe", "email"),
        ("unsubscribe", "sms"),
        ("spam", "email"),
        ("hard_bounce", "email"),
        ("delivered", "email"),
        ("subscription_changed", "email"),
    ],
)
def test_every_event_is_applied_once_and_a_redelivery_changes_nothing(
    yespo, sandbox, action, media
):
    """Each of Yespo's activity statuses we take, on both databases, over HTTP."""
    _, contact, _ = yespo
    Contact.objects.filter(pk=contact.pk).update(sms_status="subscribed")
    answers = notify(sandbox, contact, action, media=media)
    applied_once_then_redelivered(sandbox, "yespo", answers, contact)
