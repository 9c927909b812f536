"""Inbound events seen by people (issue 14 item 7): the dashboard's events per hour and
opt-outs by platform counted against real rows, the destination page's counts, and the
alerts for a destination gone silent or refusals that spike (one email per episode)."""

import datetime

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from sync import alerts, selectors
from sync.models import Destination, InboundAlert, InboundEvent, InboundRefusalHour

HOUR = datetime.timedelta(hours=1)


def event(destination, kind, *, received, key=None, occurred=None, who="c1", **fields):
    """A stored event as the endpoint writes one (the same person: `who` as all three ids)."""
    return InboundEvent.objects.create(
        destination=destination,
        platform=destination.platform,
        key=key or f"{kind}-{who}-{received.timestamp()}-{InboundEvent.objects.count()}",
        kind=kind,
        raw_type=fields.pop("raw_type", kind),
        remote_id=who,
        external_id=who,
        email=f"{who}@example.com",
        occurred_at=occurred or received,
        received_at=received,
        body={},
        **fields,
    )


@pytest.fixture
def two(sandbox_destination):
    return sandbox_destination("loops"), sandbox_destination("yespo")


def test_opt_outs_count_a_fan_out_once(two):
    loops, yespo = two
    now = timezone.now()
    at = now - 2 * HOUR
    # a hard bounce told as two events, a delete told as two, one plain unsubscribe
    event(loops, "hard_bounce", received=at, who="a")
    event(loops, "unsubscribed", received=at, who="a", channel="email")
    event(loops, "deleted", received=at, who="b")
    event(loops, "unsubscribed", received=at, who="b", channel="email")
    event(loops, "unsubscribed", received=at, who="c", channel="email")
    # the same person unsubscribing at another moment is another opt-out
    event(loops, "unsubscribed", received=at + HOUR, who="a", channel="email")
    event(loops, "complaint", received=at, who="d")
    event(loops, "recorded", received=at, who="e")  # not an opt-out
    event(loops, "unsubscribed", received=now - datetime.timedelta(days=8), who="f")  # too old
    event(yespo, "unsubscribed", received=at, who="a", channel="sms")
    event(yespo, "hard_bounce", received=now - datetime.timedelta(days=6), who="g")
    rows = {
        row["destination"].pk: row
        for row in selectors.inbound_opt_outs(destinations=[loops, yespo], now=now)
    }
    # columns: unsubscribes, hard bounces, complaints, deletes
    assert rows[loops.pk]["counts"] == [2, 1, 1, 1] and rows[loops.pk]["total"] == 5
    assert rows[yespo.pk]["counts"] == [1, 1, 0, 0]

    # The scheduler stores the settled hours; the dashboard then reads them, not the events.
    from sync import services

    assert services.inbound_per_hour_store(now=now) > 0
    assert services.inbound_per_hour_store(now=now) == 0  # stored once
    event(loops, "complaint", received=at, who="late")  # into a stored hour: not recounted
    stored = {
        row["destination"].pk: row["counts"]
        for row in selectors.inbound_opt_outs(destinations=[loops, yespo], now=now)
    }
    assert stored == {loops.pk: [2, 1, 1, 1], yespo.pk: [1, 1, 0, 0]}
    chart = selectors.inbound_events_per_hour(destinations=[loops, yespo], now=now)
    assert {s["platform"]: s["total"] for s in chart["series"]} == {"loops": 8, "yespo": 1}


def test_events_per_hour_per_platform(two):
    loops, yespo = two
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    for minutes in (1, 2, 3):
        event(loops, "recorded", received=this_hour + datetime.timedelta(seconds=minutes))
    event(loops, "unsubscribed", received=this_hour - 5 * HOUR)
    event(yespo, "recorded", received=this_hour - 47 * HOUR)
    event(yespo, "recorded", received=this_hour - 48 * HOUR)  # outside the 48 hours
    chart = selectors.inbound_events_per_hour(destinations=[loops, yespo], now=now)
    assert len(chart["labels"]) == 48
    series = {s["platform"]: s["values"] for s in chart["series"]}
    assert series["loops"][-1] == 3 and series["loops"][-6] == 1 and sum(series["loops"]) == 4
    assert series["yespo"][0] == 1 and sum(series["yespo"]) == 1
    assert chart["total"] == 5


def test_the_dashboards_inbound_part_takes_the_same_queries_at_any_size(admin_client_logged, two):
    loops, yespo = two
    now = timezone.now()
    event(loops, "unsubscribed", received=now - HOUR)
    url = reverse("sync_dashboard")
    admin_client_logged.get(url)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client_logged.get(url).content.decode()
    queries = len(ctx.captured_queries)
    assert 'id="sync-opt-outs"' in page and 'data-chart="inbound"' in page
    for n in range(30):
        for destination in two:
            event(destination, "hard_bounce", received=now - n * HOUR, who=f"p{n}")
            event(destination, "unsubscribed", received=now - n * HOUR, who=f"p{n}")
    InboundAlert.objects.create(
        destination=loops, kind="silent", active=True, message="quiet", raised_at=now
    )
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client_logged.get(url).content.decode()
    assert len(ctx.captured_queries) == queries
    assert "quiet" in page and 'data-alert="silent"' in page


def test_the_destination_page_shows_states_and_the_last_event_per_type(admin_client_logged, two):
    loops, _ = two
    now = timezone.now()
    event(loops, "unsubscribed", received=now - 3 * HOUR, raw_type="contact.unsubscribed")
    event(loops, "unsubscribed", received=now - 2 * HOUR, raw_type="contact.unsubscribed")
    event(loops, "hard_bounce", received=now - HOUR, raw_type="email.hardBounced", state="applied")
    old = now - 30 * HOUR
    event(loops, "complaint", received=old, raw_type="email.spamReported", state="failed")
    event(loops, "recorded", received=old, raw_type="email.opened", state="ignored")
    url = reverse("admin:sync_destination_change", args=[loops.pk])
    admin_client_logged.get(url)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client_logged.get(url).content.decode()
    assert "Events by state, last 24 hours:</strong> Applied: 1, Pending: 2" in page
    assert "Waiting or failed, all time:</strong> Failed: 1, Pending: 2" in page
    table = page.split('id="inbound-by-type"')[1].split("</table>")[0]
    names = ["email.hardBounced", "contact.unsubscribed", "email.spamReported", "email.opened"]
    assert [table.index(n) for n in names] == sorted(table.index(n) for n in names)
    last = timezone.localtime(now - 2 * HOUR).strftime("%Y-%m-%d %H:%M")
    assert f"<td>Unsubscribed</td><td><code>contact.unsubscribed</code></td><td>{last}" in table
    queries = len(ctx.captured_queries)
    for n in range(20):
        event(loops, "unsubscribed", received=now - n * HOUR, raw_type="contact.unsubscribed")
    with CaptureQueriesContext(connection) as ctx:
        admin_client_logged.get(url)
    assert len(ctx.captured_queries) == queries


@pytest.fixture
def ops(django_user_model):
    user = django_user_model.objects.create_user("ops", "ops@example.com", "pw-ops-123456")
    user.groups.add(Group.objects.get(name="Sync admins"))
    return user


def test_silence_alerts_once_per_episode(two, ops, mailoutbox, settings, admin_client_logged):
    loops, yespo = two
    settings.SYNC_ALERT_INBOUND_SILENT_HOURS = 24
    now = timezone.now()
    event(loops, "recorded", received=now - 25 * HOUR)
    event(yespo, "recorded", received=now - 2 * HOUR)  # still talking: quiet
    alerts.inbound_alerts_check(now=now)
    alerts.inbound_alerts_check(now=now + HOUR)
    assert len(mailoutbox) == 1
    assert (
        mailoutbox[0].subject == "[Contact sync] loops sandbox: no events from Loops for 24 hours"
    )
    assert InboundAlert.objects.get(active=True).destination == loops
    page = admin_client_logged.get(reverse("sync_dashboard")).content.decode()
    assert "no events from Loops for over 24 hours" in page

    event(loops, "recorded", received=now + 2 * HOUR)  # it talks again: cleared
    alerts.inbound_alerts_check(now=now + 2 * HOUR)
    assert not InboundAlert.objects.filter(active=True).exists()
    alerts.inbound_alerts_check(now=now + 27 * HOUR)  # a new episode, a new email
    # (and Yespo, quiet since 29 hours by then, gets its first)
    assert sorted(m.subject.split(":")[0] for m in mailoutbox[1:]) == [
        "[Contact sync] loops sandbox",
        "[Contact sync] yespo sandbox",
    ]


def test_a_destination_that_never_had_events_is_not_silent(two, ops, mailoutbox):
    alerts.inbound_alerts_check(now=timezone.now() + 100 * HOUR)
    assert mailoutbox == [] and not InboundAlert.objects.exists()


def post_unsigned(client, destination, n):
    url = reverse("sync_inbound", kwargs={"token": destination.inbound_token})
    for _ in range(n):
        answer = client.post(url, data=b"{}", content_type="application/json")
        assert answer.status_code == 401


def test_a_refusal_spike_alerts_once_and_a_usual_rate_does_not(
    client, two, ops, mailoutbox, settings
):
    loops, yespo = two
    settings.SYNC_ALERT_REFUSALS_MIN = 10
    settings.SYNC_ALERT_REFUSALS_FACTOR = 5
    post_unsigned(client, loops, 12)  # over the threshold, against no usual refusals
    post_unsigned(client, yespo, 3)  # under it
    assert InboundRefusalHour.objects.get(destination=loops).count == 12
    alerts.inbound_alerts_check()
    alerts.inbound_alerts_check()
    assert len(mailoutbox) == 1
    assert "loops sandbox: 12 inbound deliveries refused" in mailoutbox[0].subject
    alert = InboundAlert.objects.get(active=True)
    assert alert.destination == loops and "Bad or missing signature: 12" in alert.message

    # Yespo refuses as many, but it always does: 12 an hour over the last week is its usual.
    post_unsigned(client, yespo, 9)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    InboundRefusalHour.objects.bulk_create(
        InboundRefusalHour(destination=yespo, hour=hour - h * HOUR, reason="signature", count=6)
        for h in range(2, 2 + 7 * 24)
    )
    alerts.inbound_alerts_check()
    assert len(mailoutbox) == 1

    # Replays are a platform's retries of what we hold: never a spike.
    InboundRefusalHour.objects.create(destination=yespo, hour=hour, reason="replay", count=500)
    alerts.inbound_alerts_check()
    assert len(mailoutbox) == 1


def test_the_scheduler_pass_runs_the_inbound_checks(two, ops, mailoutbox):
    from sync.management.commands.sync_scheduler import Command

    loops, _ = two
    event(loops, "recorded", received=timezone.now() - 48 * HOUR)
    Destination.objects.filter(pk=loops.pk).update(reconciled_at=timezone.now())
    command = Command()
    command.next_prune = float("inf")  # not today's prune
    command._pass()
    assert InboundAlert.objects.filter(destination=loops, kind="silent", active=True).exists()
