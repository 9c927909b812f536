"""The vendor-change guard over the real sandbox: each connector's probe calls answer in the
shape it reads; a sandbox switch that renames a key the connector reads raises one warning on
the dashboard and one email, which clear when the shape is back; a 403 on one probe call is
that call's failure and pauses nothing. Shared: names no platform (each connector declares its
probe, and the key renamed is taken from that declaration)."""

import pytest
import requests
from django.contrib.auth.models import Group
from django.urls import reverse

from sync import services
from sync.connectors.probe import Maybe, OneOrMany, shape_changes
from sync.engine import destination_connector
from sync.models import Destination
from tests.conftest import PLATFORMS
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync_admin(django_user_model):
    user = django_user_model.objects.create_user("ops", "ops@example.com", "pw-ops-123456")
    user.groups.add(Group.objects.get(name="Sync admins"))
    return user


def _faults(sandbox, platform, **faults):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": platform, **faults}, timeout=5
    )
    assert response.status_code == 200, response.text


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def _required_top_key(calls):
    """(call, key): the first probe call whose answer is an object, and the first key of it
    the connector requires; renaming it is a change the probe must see."""
    for call in calls:
        shape = call.shape.shape if isinstance(call.shape, OneOrMany) else call.shape
        if isinstance(shape, dict):
            for key, inner in shape.items():
                if not isinstance(inner, Maybe):
                    return call, key
    raise AssertionError("no probe call reads a required key of an object")


def test_shape_changes_name_the_place_and_the_type():
    shape = {"id": int, "name": Maybe(str), "items": [{"key": str}]}
    assert shape_changes({"id": 1, "items": [{"key": "a"}]}, shape) == []
    assert shape_changes({"id": True, "items": []}, shape) == [
        "answer.id: a whole number expected, got a boolean"
    ]
    assert shape_changes({"id": 1, "name": 3, "items": [{"k": "a"}]}, shape) == [
        "answer.name: a string expected, got a number",
        "answer.items[0].key: missing",
    ]
    assert shape_changes([], shape) == ["answer: an object expected, got a list"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_probe_finds_every_answer_in_the_shape_the_connector_reads(
    sandbox_destination, sandbox, platform, mailoutbox, sync_admin
):
    destination = sandbox_destination(platform)
    calls = destination_connector(destination=destination, throttle=False).probe_calls()
    assert calls, f"{platform} declares no probe"
    ok, summary = services.destination_probe(destination=destination)
    assert ok, summary
    assert sandbox_requests(sandbox, platform) == len(calls)  # real calls, one each
    destination.refresh_from_db()
    assert destination.probe_checked_at is not None and destination.probe_warning == ""
    assert [r["call"] for r in destination.probe_results] == [c.name for c in calls]
    assert {r["outcome"] for r in destination.probe_results} == {"ok"}
    assert mailoutbox == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_changed_answer_raises_one_warning_and_one_email_until_it_is_back(
    sandbox_destination, sandbox, platform, mailoutbox, sync_admin, admin_client_logged
):
    destination = sandbox_destination(platform)
    connector = destination_connector(destination=destination, throttle=False)
    call, key = _required_top_key(connector.probe_calls())
    _faults(sandbox, platform, reshape_key=key, reshape_to=f"{key}Renamed", reshape_path=call.path)

    ok, summary = services.destination_probe(destination=destination)
    assert not ok and f"{call.name} changed" in summary and key in summary, summary
    services.destination_probe(destination=destination)  # the same change: no second email
    destination.refresh_from_db()
    assert f"answer.{key}: missing" in destination.probe_warning
    changed = [r for r in destination.probe_results if r["outcome"] == "changed"]
    assert [r["call"] for r in changed] == [call.name]
    assert len(mailoutbox) == 1, [m.subject for m in mailoutbox]
    assert "ops@example.com" in mailoutbox[0].to
    assert destination.name in mailoutbox[0].subject and f"answer.{key}" in mailoutbox[0].body
    assert destination.paused_at is None  # pushes go on

    client = admin_client_logged
    page = client.get(reverse("sync_dashboard")).content.decode()
    assert page.count("sync-vendor-change") == 1 and key in page

    _faults(sandbox, platform, reshape_key="")
    ok, summary = services.destination_probe(destination=destination)
    assert ok, summary
    destination.refresh_from_db()
    assert destination.probe_warning == ""
    assert "sync-vendor-change" not in client.get(reverse("sync_dashboard")).content.decode()
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_403_on_a_probe_call_is_that_calls_failure_and_pauses_nothing(
    sandbox_destination, sandbox, platform, mailoutbox, sync_admin, admin_client_logged
):
    destination = sandbox_destination(platform)
    calls = destination_connector(destination=destination, throttle=False).probe_calls()
    forbidden = calls[-1]  # not the call "Test connection" makes
    _faults(sandbox, platform, error_rate=1.0, error_status=403, error_path=forbidden.path)

    client = admin_client_logged
    url = reverse("admin:sync_destination_test_connection_button", args=[destination.pk])
    response = client.post(url, follow=True)
    shown = " ".join(_messages(response))
    assert f"{forbidden.name} failed" in shown and "403" in shown, shown
    destination.refresh_from_db()
    assert destination.paused_at is None and destination.probe_warning == ""
    outcomes = {r["call"]: r for r in destination.probe_results}
    assert outcomes[forbidden.name]["outcome"] == "failed"
    assert "403" in outcomes[forbidden.name]["detail"]
    assert all(r["outcome"] == "ok" for name, r in outcomes.items() if name != forbidden.name)
    assert mailoutbox == []
    page = client.get(reverse("admin:sync_destination_change", args=[destination.pk]))
    assert "sync-probe-failed" in page.content.decode()


def test_the_scheduler_probes_each_destination_once_a_day(
    all_destinations, sandbox, immediate_tasks
):
    from datetime import timedelta

    from django.utils import timezone

    _one_pass()  # a destination first seen now: its first daily probe is due in a day
    assert sandbox_requests(sandbox) == 0
    assert Destination.objects.filter(probe_due_at=None).count() == 0
    tomorrow = timezone.now() + timedelta(hours=24)  # after the pass: its destinations are due
    assert services.probes_enqueue_due(now=tomorrow) == len(all_destinations)
    assert Destination.objects.exclude(probe_checked_at=None).count() == len(all_destinations)
    made = sandbox_requests(sandbox)
    assert made > 0
    # each probe made a day after itself: not due again at the same time
    assert services.probes_enqueue_due(now=tomorrow) == 0
    _one_pass()
    assert sandbox_requests(sandbox) == made
    the_day_after = tomorrow + timedelta(hours=25)
    assert services.probes_enqueue_due(now=the_day_after) == len(all_destinations)
    assert sandbox_requests(sandbox) > made


def _one_pass():
    """One pass of the scheduler, as its loop makes it (the daily prune left out)."""
    from sync.management.commands.sync_scheduler import Command

    command = Command()
    command.next_prune = float("inf")
    command._pass()
