"""Helpers the platforms' poll tests share (tests/sync/connectors/test_<platform>_poll.py):
a sandbox-side change made with no delivery (the platform acts, nobody listens), the same
change with its notification held back and delivered later over HTTP (a platform's retry
after our outage), and the consent entries a change left on our contact."""

from contacts.models import ConsentEntry
from sync import polling
from sync.models import DestinationPoll
from sync.sandbox.core import deliver
from tests.sync.conftest import sandbox_control


def act(sandbox, platform, contact, action, **options):
    """The platform unsubscribes, bounces or deletes the contact (no webhook registered:
    no delivery is made); asserts none was."""
    answers = sandbox_control(
        sandbox,
        "notify",
        platform=platform,
        action=action,
        external_id=contact.external_id,
        **options,
    )
    assert answers == []


def act_and_hold(sandbox, platform, contact, action, **options):
    """The platform acts and builds its notifications to the registered URL; they are
    returned undelivered (`deliver_all` sends them later)."""
    emulator = sandbox.sandbox.emulators[platform]
    data = {"action": action, "external_id": contact.external_id, **options}
    with emulator.lock:
        return emulator.notify(data, sandbox.url)


def deliver_all(notifications):
    answers = [deliver(n) for n in notifications]
    assert [a["status"] for a in answers] == [200] * len(answers), answers
    return answers


def poll(destination):
    outcome = polling.destination_poll(destination=destination)
    assert not outcome.error, outcome.error
    return outcome


def cursor(destination) -> dict:
    return DestinationPoll.objects.get(destination=destination).cursor


def applied_from_platform(contact, channel="email"):
    """The consent entries from a platform that set the contact's status on `channel`."""
    return list(
        ConsentEntry.objects.filter(
            contact=contact, channel=channel, source="platform", applied=True
        ).values_list("status", flat=True)
    )
