"""The push's dry run over the real sandbox, on every platform: nothing is sent; the requests
shown are the connector's own (redacted), one entry per request counted; unchanged contacts
and the destination's queue enter the counts and the time. Shared: names no platform."""

import json

import pytest
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse

from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, SyncStatus, Trigger
from sync.redaction import REDACTED
from tests.conftest import PLATFORMS, platform_with
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.django_db


def _contacts(count, start=0):
    """Contacts of one shape (the same fields set), without a push on save (bulk_create)."""
    Contact.objects.bulk_create(
        [
            Contact(
                first_name=f"Dry{i}",
                last_name="Run",
                email=f"dry{i}@example.com",
                external_id=f"dry-run-{i}",
            )
            for i in range(start, start + count)
        ]
    )
    return Contact.objects.filter(external_id__startswith="dry-run-")


def _secrets(sandbox_env):
    return [value for value in sandbox_env.values() if len(value) >= 4]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_dry_run_sends_nothing_and_shows_each_request_it_counts_redacted(
    sandbox_destination, sandbox, sandbox_env, platform
):
    destination = sandbox_destination(platform)
    contacts = _contacts(12)
    (run,) = services.push_dry_run(contacts=contacts, destination=destination)
    assert sandbox_requests(sandbox) == 0
    assert (run.selected, run.to_send, run.unchanged, run.shown) == (12, 12, 0, 12)
    assert not run.error and not [call for call in run.planned if call.refused]
    # one chunk of 12: every request it counts is shown
    assert run.requests == len(run.planned) > 0
    assert run.seconds == pytest.approx(run.requests / destination.effective_rate_limit)
    shown = {external_id for call in run.planned for external_id in call.external_ids}
    assert shown == set(contacts.values_list("external_id", flat=True))
    redacted_headers = 0
    for call in run.planned:
        assert call.url.startswith(destination.effective_base_url), call.url
        text = " ".join([call.url, call.body, *call.headers.values()])
        for secret in _secrets(sandbox_env):
            assert secret not in text, f"{platform}: a credential in {call.method} {call.url}"
        redacted_headers += any(REDACTED in value for value in call.headers.values())
        if call.body:
            json.loads(call.body)  # the JSON a push sends
    assert redacted_headers == len(run.planned)  # each carries its (redacted) credentials
    bodies = " ".join(call.body + call.url for call in run.planned)
    assert all(f"dry-run-{i}" in bodies for i in range(12))


def test_dry_run_counts_unchanged_contacts_and_the_queue(sandbox_destination, sandbox):
    destination = sandbox_destination(platform_with(bulk=False), rate_limit=2.0)
    contacts = _contacts(10)
    plan = services.push_plan(
        contacts=contacts, destination=destination, trigger=Trigger.COMMAND, user_id=None
    )
    services.plan_run_here(plan)
    assert ContactSyncState.objects.exclude(status=SyncStatus.FAILED).count() == 10
    sent = sandbox_requests(sandbox)

    (run,) = services.push_dry_run(contacts=contacts, destination=destination)
    assert (run.selected, run.to_send, run.unchanged, run.requests) == (10, 0, 10, 0)
    assert run.planned == [] and run.seconds == 0

    changed = list(contacts.order_by("pk").values_list("pk", flat=True)[:2])
    Contact.objects.filter(pk__in=changed).update(content_version=F("content_version") + 1)
    queued = list(contacts.order_by("pk").values_list("pk", flat=True)[5:10])
    ContactSyncState.objects.filter(contact_id__in=queued).update(status=SyncStatus.PENDING)
    (run,) = services.push_dry_run(contacts=contacts, destination=destination)
    assert (run.to_send, run.unchanged, run.queued, run.shown) == (2, 8, 5, 2)
    assert run.requests >= 2 and run.queued_requests >= 5
    assert run.seconds == pytest.approx((run.requests + run.queued_requests) / 2.0)

    (forced,) = services.push_dry_run(contacts=contacts, destination=destination, force=True)
    assert (forced.to_send, forced.unchanged, forced.shown) == (10, 0, 10)
    assert sandbox_requests(sandbox) == sent  # the dry runs sent nothing


@pytest.mark.parametrize("platform", PLATFORMS)
def test_dry_run_of_thousands_costs_the_queries_of_a_few(sandbox_destination, platform):
    """Counted with queries, bodies built only for the contacts shown: as many queries for
    3,000 contacts as for 30."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    destination = sandbox_destination(platform)
    queries = []
    for start, count in ((0, 30), (30, 3000)):
        contacts = _contacts(count - start, start=start)
        with CaptureQueriesContext(connection) as captured:
            (run,) = services.push_dry_run(contacts=contacts, destination=destination)
        assert run.to_send == count and run.shown == 20
        queries.append(len(captured))
    assert queries[0] == queries[1], queries


def test_durations_read_as_people_say_them():
    assert services.duration_text(12) == "12 s"
    assert services.duration_text(270) == "4.5 min"
    assert services.duration_text(1_000_000 / 10) == "27.8 hours"
    assert services.duration_text(5 * 86400) == "5.0 days"


def test_push_contacts_dry_run_prints_counts_cost_and_redacted_requests(
    sandbox_destination, sandbox, sandbox_env, capsys
):
    destination = sandbox_destination(platform_with(bulk=True))
    _contacts(25)
    call_command("push_contacts", "--destination", destination.name, "--all", "--dry-run")
    out = capsys.readouterr().out
    assert "25 selected, 25 would be pushed, 0 unchanged. Nothing was sent." in out
    assert " requests; with 0 contacts already queued" in out and "about " in out
    assert "The requests for the first 20 contacts to send:" in out
    assert f"POST {destination.effective_base_url}" in out and REDACTED in out
    assert not any(secret in out for secret in _secrets(sandbox_env))
    assert sandbox_requests(sandbox) == 0


def test_the_push_preview_action_shows_every_destination_and_sends_nothing(
    admin_client_logged, all_destinations, sandbox, sandbox_env
):
    ids = list(_contacts(25).values_list("pk", flat=True))
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "preview_push", "_selected_action": ids},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('class="sync-dry-run"') == len(all_destinations)
    assert page.count('<dd class="sync-to-send">25</dd>') == len(all_destinations)
    assert page.count("The requests for the first 20 contacts to send (of 25)") == len(
        all_destinations
    )
    assert REDACTED in page and "dry-run-19" in page and "dry-run-20" not in page
    assert not any(secret in page for secret in _secrets(sandbox_env))
    assert sandbox_requests(sandbox) == 0

    one = all_destinations[0]
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "preview_push", "_selected_action": ids, "destination": one.pk},
    )
    assert response.content.decode().count('class="sync-dry-run"') == 1
