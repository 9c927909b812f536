"""iVvy's notifications over real HTTP: registration through subscribeToNotifications, the
SNS subscription confirmation, then signed SNS deliveries (versions 1 and 2) from the sandbox,
whose certificate is served on loopback (trusted in development only)."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from contacts.models import Contact
from sync import inbound
from sync.connectors.ivvy import sns_url_problem
from sync.models import ContactSyncState, Destination, InboundEvent, InboundRefusal
from tests.sync.conftest import applied_once_then_redelivered, sandbox_control


def register(destination):
    out = StringIO()
    call_command("destination_inbound", destination=destination.name, register=True, stdout=out)
    return out.getvalue()


@pytest.fixture
def ivvy(inbound_world, sandbox):
    contact = Contact.objects.create(first_name="Di", last_name="V", email="di@example.com")
    destination = inbound_world.make("ivvy")
    state = inbound_world.push(destination, contact)
    assert "Registered" in register(destination)
    answers = sandbox_control(
        sandbox, "notify", platform="ivvy", action="subscription_confirmation"
    )
    assert [a["status"] for a in answers] == [200]
    destination.refresh_from_db()
    assert destination.inbound_state["topic"].endswith("_NotifContacts")
    assert destination.inbound_state["confirmed_at"]
    return destination, contact, state


def notify(sandbox, contact, action, **options):
    return sandbox_control(
        sandbox,
        "notify",
        platform="ivvy",
        action=action,
        external_id=contact.external_id,
        **options,
    )


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(
    ("action", "status"),
    [("unsubscribe", "unsubscribed"), ("bounce", "bounced"), ("no_marketing", "no_marketing")],
)
def test_status_changes_are_applied(ivvy, sandbox, action, status, version):
    _, contact, _ = ivvy
    answers = notify(sandbox, contact, action, signature_version=version)
    assert [a["status"] for a in answers] == [200]
    contact.refresh_from_db()
    assert contact.email_status == status


def test_resubscribe_applies_when_fresh_and_is_refused_when_stale(ivvy, sandbox):
    destination, contact, _ = ivvy
    now = int(time.time())
    notify(sandbox, contact, "unsubscribe", event_time=now - 120)
    stale = now - 3600
    notify(sandbox, contact, "resubscribe", event_time=now - 60, sent_at=stale)
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    assert InboundEvent.objects.get(kind="resubscribed").state == "refused"
    assert InboundRefusal.objects.get(destination=destination, reason="stale_opt_in").count == 1
    notify(sandbox, contact, "unsubscribe", event_time=now - 50)  # iVvy's status is 1 again
    notify(sandbox, contact, "resubscribe")
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"


def test_registering_is_not_an_opt_in(ivvy, sandbox):
    _, contact, _ = ivvy
    notify(sandbox, contact, "registering")
    assert InboundEvent.objects.filter(kind="recorded").count() == 1


def test_delete_clears_our_state(ivvy, sandbox):
    _, contact, state = ivvy
    notify(sandbox, contact, "delete")
    state.refresh_from_db()
    assert state.remote_id == "" and state.deleted_on_platform_at is not None


def test_bad_signature_other_topic_and_replay_are_refused(ivvy, sandbox):
    destination, contact, _ = ivvy
    assert [a["status"] for a in notify(sandbox, contact, "unsubscribe", tamper=True)] == [401]
    other = "arn:aws:sns:ap-southeast-2:1:someone_elses_topic"
    assert [a["status"] for a in notify(sandbox, contact, "unsubscribe", topic=other)] == [401]
    notify(sandbox, contact, "bounce", message_id="m-1")
    assert [a["status"] for a in notify(sandbox, contact, "bounce", message_id="m-1")] == [200]
    refusals = dict(
        InboundRefusal.objects.filter(destination=destination).values_list("reason", "count")
    )
    assert refusals == {"signature": 2, "replay": 1}
    contact.refresh_from_db()
    assert contact.email_status == "bounced"


def test_out_of_order_status_is_not_applied(ivvy, sandbox):
    _, contact, _ = ivvy
    now = int(time.time())
    notify(sandbox, contact, "bounce", event_time=now)
    notify(sandbox, contact, "resubscribe", event_time=now - 30)
    contact.refresh_from_db()
    assert contact.email_status == "bounced"
    assert InboundEvent.objects.get(kind="resubscribed").state == "not_applied"


def test_a_403_fails_the_registration_only(inbound_world, sandbox):
    destination = inbound_world.make("ivvy")
    sandbox_control(sandbox, "faults", platform="ivvy", not_primary=True)
    with pytest.raises(CommandError, match="403"):
        register(destination)
    destination.refresh_from_db()
    assert destination.paused_at is None and not destination.inbound_state


def test_certificates_only_from_sns_hosts(settings):
    good = "https://sns.ap-southeast-2.amazonaws.com/SimpleNotificationService-abc.pem"
    assert sns_url_problem(good, allow_loopback=False, pem=True) == ""
    for url in (
        "http://sns.ap-southeast-2.amazonaws.com/x.pem",
        "https://sns.ap-southeast-2.amazonaws.com.evil.example/x.pem",
        "https://sns.ap-southeast-2.amazonaws.com/x.txt",
        "https://127.0.0.1:8000/x.pem",
    ):
        assert sns_url_problem(url, allow_loopback=False, pem=True), url
    assert sns_url_problem("http://127.0.0.1:8000/x.pem", allow_loopback=True, pem=True) == ""
    settings.IS_PRODUCTION = True
    assert not inbound._development_loopback()


def test_without_a_registered_topic_nothing_verifies(inbound_world, sandbox, ivvy):
    destination, contact, _ = ivvy
    Destination.objects.filter(pk=destination.pk).update(inbound_state={})
    assert [a["status"] for a in notify(sandbox, contact, "unsubscribe")] == [401]
    assert ContactSyncState.objects.get(contact=contact).remote_id


@pytest.mark.parametrize(
    "action", ["unsubscribe", "bounce", "no_marketing", "resubscribe", "registering", "delete"]
)
def test_every_event_is_applied_once_and_a_redelivery_changes_nothing(ivvy, sandbox, action):
    """Each of iVvy's contact notifications (after the subscription confirmation), on both
    databases, over HTTP."""
    _, contact, _ = ivvy
    if action == "resubscribe":  # an opt-in needs something to undo
        notify(sandbox, contact, "unsubscribe", event_time=int(time.time()) - 60)
    before = InboundEvent.objects.count()
    answers = notify(sandbox, contact, action)
    applied_once_then_redelivered(sandbox, "ivvy", answers, contact, events_before=before)
