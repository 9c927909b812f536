"""Sync in the admin: destinations, badges, actions, the contact's sync panel, the dashboard."""

import re
from urllib.parse import quote

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape
from django_tasks_db.models import DBTaskResult

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services, tasks
from sync.connectors import get_class
from sync.models import (
    ContactSyncState,
    Destination,
    RemoteOption,
    SyncAttempt,
    SyncRun,
    SyncRunSelection,
    SyncStatus,
)
from tests.conftest import PLATFORMS, platform_with
from tests.sync.conftest import destination_form_data, payload_keys, sandbox_requests

pytestmark = pytest.mark.django_db
# A platform pushed one contact per request (each push is one request), and another one.
PLATFORM = platform_with(bulk=False)
OTHER_PLATFORM = next(p for p in PLATFORMS if p != PLATFORM)


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_test_connection_button_shows_success_then_the_platforms_error(
    admin_client_logged, sandbox_destination, sandbox, platform
):
    destination = sandbox_destination(platform)
    page = admin_client_logged.get(
        reverse("admin:sync_destination_change", args=[destination.pk])
    ).content.decode()
    url = reverse("admin:sync_destination_test_connection_button", args=[destination.pk])
    assert f'action="{url}"' in page  # the button posts to its own, checked URL
    response = admin_client_logged.post(url, follow=True)
    assert any(m.startswith(f"{destination}: ") for m in _messages(response)), _messages(response)
    assert "sync-banner" not in response.content.decode()

    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": platform, "revoked": True})
    response = admin_client_logged.post(url, follow=True)
    (message,) = _messages(response)
    assert "401" in message or "403" in message, message


def test_refresh_from_platform_offers_the_platforms_fields_and_lists(
    admin_client_logged, sandbox_destination, sandbox
):
    destination = sandbox_destination(PLATFORM)
    url = reverse("admin:sync_destination_change", args=[destination.pk])
    admin_client_logged.post(
        reverse("admin:sync_destination_refresh_options_button", args=[destination.pk])
    )
    fields = RemoteOption.objects.filter(destination=destination, kind="field")
    lists = RemoteOption.objects.filter(destination=destination, kind="list")
    assert fields.exists() and lists.exists()
    page = admin_client_logged.get(url).content.decode()
    some_field = fields.first()
    assert f'<option value="{some_field.remote_id}"' in page  # a select, not a text box
    assert "Not sent (unmapped)" in page


@pytest.mark.parametrize(
    "url, allowed, message",
    [
        ("http://api.example.com/", True, "https://"),
        (f"http://127.0.0.1:8765/{PLATFORM}/", False, "Loopback"),
    ],
)
def test_destination_url_rules(
    admin_client_logged, sandbox_destination, settings, url, allowed, message
):
    settings.SYNC_ALLOW_LOOPBACK = allowed
    destination = sandbox_destination(PLATFORM)
    response = admin_client_logged.post(
        reverse("admin:sync_destination_change", args=[destination.pk]),
        destination_form_data(destination, base_url=url),
    )
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors["base_url"])


def test_contact_list_badges_filters_and_constant_queries(admin_client_logged, all_destinations):
    seed_demo_contacts(5)
    url = reverse("admin:contacts_contact_changelist")

    def add_states():
        for destination in all_destinations:
            ContactSyncState.objects.bulk_create(
                [
                    ContactSyncState(
                        contact=c,
                        destination=destination,
                        status=SyncStatus.SYNCED,
                        remote_id=f"R{c.pk}-{destination.pk}",
                    )
                    for c in Contact.objects.exclude(sync_states__destination=destination)
                ]
            )

    add_states()
    admin_client_logged.get(url)
    with CaptureQueriesContext(connection) as small:
        page = admin_client_logged.get(url).content.decode()
    first = Contact.objects.order_by("pk").first()
    assert f"R{first.pk}-{all_destinations[0].pk}" in page
    seed_demo_contacts(60)
    add_states()
    with CaptureQueriesContext(connection) as big:
        admin_client_logged.get(url)
    assert len(small.captured_queries) == len(big.captured_queries)

    ContactSyncState.objects.filter(contact=first, destination=all_destinations[0]).update(
        status=SyncStatus.FAILED, last_error="nope"
    )
    filtered = admin_client_logged.get(
        url, {"sync_status": "failed", "sync_dest": all_destinations[0].pk}
    )
    assert list(filtered.context["cl"].result_list) == [first]


def test_push_action_answers_at_once_and_its_task_plans_the_run(
    admin_client_logged, sandbox_destination, sandbox
):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(25)
    ids = list(Contact.objects.values_list("pk", flat=True))
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {
            "action": "push_selected",
            "_selected_action": ids,
            "destination": destination.pk,
        },
        follow=True,
    )
    run = SyncRun.objects.get()
    (message,) = _messages(response)
    assert f"25 pushes queued for {destination.name}: run {run.pk} is being prepared" in message
    assert reverse("admin:sync_syncrun_change", args=[run.pk]) in message
    # the request only started the run: nothing planned, nothing queued, nothing sent
    assert sandbox_requests(sandbox) == 0
    assert not ContactSyncState.objects.exists()
    assert (run.total, run.selected, run.planned, run.preparing) == (25, 25, 0, True)
    assert run.user is not None
    (task,) = DBTaskResult.objects.all()
    assert (task.task_path, task.args_kwargs["kwargs"]) == (
        "sync.tasks.prepare_run",
        {"run_id": run.pk},
    )
    page = admin_client_logged.get(reverse("admin:sync_syncrun_change", args=[run.pk]))
    assert "being prepared: 0 of 25 selected contacts planned" in page.content.decode()

    tasks.prepare_run.call(run_id=run.pk)  # what the worker runs
    run.refresh_from_db()
    assert (run.state, run.preparing, run.planned, run.total) == ("running", False, 25, 25)
    assert ContactSyncState.objects.filter(status=SyncStatus.PENDING, run=run).count() == 25
    chunks = DBTaskResult.objects.filter(task_path="sync.tasks.push_contacts")
    assert sorted(i for c in chunks for i in c.args_kwargs["kwargs"]["contact_ids"]) == sorted(ids)
    assert not SyncRunSelection.objects.exists()
    assert sandbox_requests(sandbox) == 0
    page = admin_client_logged.get(reverse("admin:sync_syncrun_change", args=[run.pk]))
    assert "being prepared" not in page.content.decode()


def test_preview_shows_the_exact_json_and_sends_nothing(
    admin_client_logged, all_destinations, sandbox
):
    seed_demo_contacts(3)
    ids = list(Contact.objects.values_list("pk", flat=True))
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "preview_payloads", "_selected_action": ids},
    )
    page = response.content.decode()
    contact = Contact.objects.get(pk=ids[0])
    assert page.count("sync-payload") == 3 * len(all_destinations)
    for destination in all_destinations:  # each platform's own key for our external ID
        assert f"&quot;{payload_keys(destination)[0]}&quot;" in page, destination.platform
    assert contact.external_id in page
    assert sandbox_requests(sandbox) == 0


def test_preview_refuses_more_than_20(admin_client_logged, all_destinations):
    seed_demo_contacts(21)
    ids = list(Contact.objects.values_list("pk", flat=True))
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "preview_payloads", "_selected_action": ids},
        follow=True,
    )
    assert "at most 20" in " ".join(_messages(response))


def test_retry_failed_action_queues_only_failed(
    admin_client_logged, sandbox_destination, immediate_tasks, sandbox
):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(4)
    failed, synced = list(Contact.objects.order_by("pk"))[:2]
    ContactSyncState.objects.create(
        contact=failed,
        destination=destination,
        status=SyncStatus.FAILED,
        last_error=f"{destination.connector_class.label} HTTP 500: boom",
    )
    ContactSyncState.objects.create(
        contact=synced,
        destination=destination,
        status=SyncStatus.SYNCED,
        payload_hash="x",
        accepted_content_version=1,
    )
    admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "retry_failed", "_selected_action": [failed.pk, synced.pk]},
    )
    assert ContactSyncState.objects.get(contact=failed).status == SyncStatus.SYNCED
    assert SyncAttempt.objects.filter(contact=synced).count() == 0


def test_contact_page_panel_lists_last_five_attempts(admin_client_logged, sandbox_destination):
    from django.utils import timezone

    destination = sandbox_destination(PLATFORM)
    label = destination.connector_class.label
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    ContactSyncState.objects.create(
        contact=contact,
        destination=destination,
        status=SyncStatus.FAILED,
        remote_id="cl-123",
        last_error=f"{label} HTTP 400: bad email",
    )
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=destination,
                contact=contact,
                trigger="save",
                outcome="failed",
                started_at=timezone.now(),
                http_status=400 + i,
            )
            for i in range(7)
        ]
    )
    page = admin_client_logged.get(
        reverse("admin:contacts_contact_change", args=[contact.pk])
    ).content.decode()
    assert "cl-123" in page and f"{label} HTTP 400: bad email" in page
    assert len(re.findall(r"/admin/sync/syncattempt/\d+/change/", page)) == 5


def test_dashboard_shows_counts_chart_errors_and_runs(admin_client_logged, sandbox_destination):
    from django.utils import timezone

    destination = sandbox_destination(PLATFORM)
    other = sandbox_destination(OTHER_PLATFORM)
    label, other_label = destination.connector_class.label, other.connector_class.label
    seed_demo_contacts(10)
    contacts = list(Contact.objects.order_by("pk"))
    for c in contacts[:3]:
        ContactSyncState.objects.create(
            contact=c,
            destination=destination,
            status=SyncStatus.FAILED,
            last_error=f"{label} HTTP 400: <b>bad</b> email",
        )
    for c in contacts[3:8]:
        ContactSyncState.objects.create(
            contact=c, destination=destination, status=SyncStatus.SYNCED
        )
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=destination, trigger="action", outcome=o, started_at=timezone.now()
            )
            for o in ["created"] * 6 + ["failed"] * 2
        ]
    )
    Destination.objects.filter(pk=other.pk).update(
        paused_at=timezone.now(), pause_error=f"{other_label} HTTP 401: no"
    )
    run = SyncRun.objects.create(trigger="action", destination=destination, total=40, created=10)

    url = reverse("sync_dashboard")
    admin_client_logged.get(url)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client_logged.get(url).content.decode()
    assert "<svg" not in page and page.count('<canvas class="chart"') == 5  # unfold's charts
    assert 'data-chart="inbound"' in page  # 2 per destination, and the inbound events
    assert f"3 × {label} HTTP 400: &lt;b&gt;bad&lt;/b&gt; email" in page
    assert f"sync_error={quote(label)}%20HTTP%20400" in page
    assert f"{other_label} HTTP 401: no" in page  # the paused banner
    assert f'data-run="{run.pk}"' in page and "width: 25%" in page
    # Contacts, not attempts: 5 held of the 8 the platform answered for (8 attempts, 6 good,
    # would have said 75 %).
    assert "62.5 %" in page and "75.0 %" not in page
    queries = len(ctx.captured_queries)

    seed_demo_contacts(40)
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=other, trigger="retry", outcome="updated", started_at=timezone.now()
            )
            for _ in range(50)
        ]
    )
    with CaptureQueriesContext(connection) as ctx:
        admin_client_logged.get(url)
    assert len(ctx.captured_queries) == queries

    link = admin_client_logged.get(
        reverse("admin:contacts_contact_changelist"),
        {
            "sync_dest": destination.pk,
            "sync_status": "failed",
            "sync_error": f"{label} HTTP 400: <b>bad</b> email",
        },
    )
    assert sorted(link.context["cl"].result_list, key=lambda c: c.pk) == contacts[:3]


def test_dashboard_retry_and_cancel_buttons(
    admin_client_logged, sandbox_destination, immediate_tasks, sandbox
):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(2)
    contact = Contact.objects.first()
    ContactSyncState.objects.create(
        contact=contact, destination=destination, status=SyncStatus.FAILED, last_error="x"
    )
    admin_client_logged.post(reverse("sync_retry_failed", args=[destination.pk]))
    assert ContactSyncState.objects.get(contact=contact).status == SyncStatus.SYNCED

    run = SyncRun.objects.create(trigger="action", destination=destination, total=5)
    admin_client_logged.post(reverse("sync_cancel_run", args=[run.pk]))
    run.refresh_from_db()
    assert run.state == SyncRun.State.CANCELLED


def test_alerts_once_per_change_of_state(
    sandbox_destination, mailoutbox, settings, django_user_model
):
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from sync import alerts

    admin = django_user_model.objects.create_user("ops", "ops@example.com", "pw-ops-123456")
    admin.groups.add(Group.objects.get(name="Sync admins"))
    destination = sandbox_destination(PLATFORM)
    error = f"{destination.connector_class.label} HTTP 401: Invalid API key"
    services.destination_pause(destination=destination, error=error)
    services.destination_pause(destination=destination, error=error)
    assert len(mailoutbox) == 1 and "paused" in mailoutbox[0].subject
    assert mailoutbox[0].to == ["ops@example.com"]

    settings.SYNC_ALERT_MIN_ATTEMPTS = 10
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=destination, trigger="action", outcome=o, started_at=timezone.now()
            )
            for o in ["failed"] * 6 + ["created"] * 4
        ]
    )
    alerts.failure_rates_check()
    alerts.failure_rates_check()
    assert len(mailoutbox) == 2 and "60%" in mailoutbox[1].subject
    SyncAttempt.objects.filter(outcome="failed").update(outcome="created")
    alerts.failure_rates_check()  # recovered: re-armed, no mail
    assert len(mailoutbox) == 2


@pytest.mark.parametrize("platform", [p for p in PLATFORMS if get_class(p).notes])
def test_the_destination_page_shows_the_platforms_notes(
    admin_client_logged, sandbox_destination, platform
):
    destination = sandbox_destination(platform)
    page = admin_client_logged.get(
        reverse("admin:sync_destination_change", args=[destination.pk])
    ).content.decode()
    for note in get_class(platform).notes:
        assert f"<p>{escape(note)}</p>" in page
