"""Polling, whatever the platform (sync/polling.py): the scheduler queues each destination's
poll once per interval, every poll request waits its turn in the shared rate limit, a failed
poll keeps its cursor, `manage.py sync_poll` runs one, and the destination page says what is
polled and what the platform gives no poll for. Each platform's own poll (what it finds, its
cursor, webhook and poll applied once) is tested in tests/sync/connectors/test_<p>_poll.py."""

import datetime
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from contacts.models import Contact
from sync import connectors, polling, ratelimit, services
from sync.models import DestinationPoll, RateLimitSlot
from tests.conftest import PLATFORMS
from tests.sync.conftest import sandbox_control

POLLING = [slug for slug in PLATFORMS if connectors.CONNECTORS[slug].polls]


@pytest.fixture
def held(inbound_world):
    """make(platform) -> a destination holding one contact pushed to it."""

    def make(platform):
        contact = Contact.objects.create(
            first_name="Ra", last_name="Te", email=f"ra-{platform}@example.com"
        )
        destination = inbound_world.make(platform)
        inbound_world.push(destination, contact)
        return destination

    return make


def test_every_platform_declares_its_poll():
    assert POLLING == PLATFORMS
    for slug in POLLING:
        cls = connectors.CONNECTORS[slug]
        assert cls.polled and cls.not_polled, slug


@pytest.mark.parametrize("platform", POLLING)
def test_every_poll_request_takes_a_slot_of_the_shared_rate_limit(held, platform):
    destination = held(platform)
    before = time.time()
    outcome = polling.destination_poll(destination=destination)
    assert not outcome.error and outcome.requests >= 1
    interval = ratelimit.spacing(destination.effective_rate_limit)
    next_at = RateLimitSlot.objects.get(destination=destination).next_at
    assert next_at >= before + (outcome.requests - 1) * interval


def test_the_scheduler_queues_each_poll_once_per_interval(held, settings):
    assert settings.SYNC_PUBLIC_URL  # webhooks can reach us: the polls are queued all the same
    destinations = [held(platform) for platform in POLLING]
    seen = timezone.now()
    assert services.polls_enqueue_due(now=seen) == 0  # first seen: due one interval on
    assert not DestinationPoll.objects.exclude(last_run_at=None).exists()
    now = seen + datetime.timedelta(days=1)
    assert services.polls_enqueue_due(now=now) == len(destinations)  # run at once (immediate)
    assert services.polls_enqueue_due(now=now) == 0  # claimed: a second scheduler queues none
    for destination in destinations:
        row = DestinationPoll.objects.get(destination=destination)
        assert row.last_run_at is not None and not row.last_error, (destination, row.last_error)
        assert row.due_at == now + polling.poll_interval(destination)
    later = now + datetime.timedelta(minutes=settings.SYNC_POLL_INTERVAL_MINUTES)
    daily = [d for d in destinations if connectors.CONNECTORS[d.platform].poll_every]
    assert services.polls_enqueue_due(now=later) == len(destinations) - len(daily)


def test_a_failed_poll_keeps_its_cursor_and_says_why(held, sandbox):
    destination = held(POLLING[0])
    polling.destination_poll(destination=destination)
    kept = DestinationPoll.objects.get(destination=destination).cursor
    sandbox_control(sandbox, "faults", platform=destination.platform, outage="503")
    outcome = polling.destination_poll(destination=destination)
    assert outcome.error
    row = DestinationPoll.objects.get(destination=destination)
    assert row.cursor == kept and row.last_error


def test_sync_poll_runs_one_poll(held):
    destination = held(POLLING[0])
    out = StringIO()
    call_command("sync_poll", destination=destination.name, stdout=out)
    assert "events reported" in out.getvalue()
    assert DestinationPoll.objects.get(destination=destination).last_run_at is not None
    with pytest.raises(CommandError):
        call_command("sync_poll", destination="nothing of that name")


@pytest.mark.parametrize("platform", POLLING)
def test_the_destination_page_says_what_is_not_polled(
    admin_client_logged, sandbox_destination, platform
):
    destination = sandbox_destination(platform)
    page = admin_client_logged.get(reverse("admin:sync_destination_change", args=[destination.pk]))
    html = page.content.decode()
    assert "Not polled" in html
    for line in connectors.CONNECTORS[platform].not_polled:
        assert escape(line) in html
