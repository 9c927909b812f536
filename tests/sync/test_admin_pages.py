"""Sync in the admin: destinations, badges, actions, the contact's sync panel, the dashboard."""

import re

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.demo import seed_demo_contacts
from contacts.models import Contact, CustomFieldDefinition
from sync import services
from sync.models import (
    ContactSyncState,
    Destination,
    FieldMapping,
    RemoteOption,
    SyncAttempt,
    SyncRun,
    SyncStatus,
)
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.django_db


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def _destination_post(destination, **changes):
    data = {
        "name": destination.name,
        "platform": destination.platform,
        "base_url": destination.base_url,
        **{f"setting_{name}": value for name, value in destination.settings.items()},
        "key_env": destination.key_env,
        "secret_env": destination.secret_env,
        "enabled": "on",
        "push_on_save": "on",
        "rate_limit": "",
        "timeout": "10",
    }
    for prefix in ("field_mappings", "list_mappings"):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update(changes)
    return data


@pytest.mark.parametrize("platform", ["yespo", "ivvy", "cendyn", "loops"])
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
    destination = sandbox_destination("loops")
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


def test_mapping_to_a_reserved_loops_property_is_refused_in_the_form(
    admin_client_logged, sandbox_destination
):
    destination = sandbox_destination("loops")
    definition = CustomFieldDefinition.objects.create(name="plan")
    url = reverse("admin:sync_destination_change", args=[destination.pk])
    for reserved in ("id", "listId", "softDeleteAt", "teamId", "updatedAt"):
        response = admin_client_logged.post(
            url,
            _destination_post(
                destination,
                **{
                    "field_mappings-TOTAL_FORMS": "1",
                    "field_mappings-0-custom_field": definition.pk,
                    "field_mappings-0-standard_field": "",
                    "field_mappings-0-remote_field": reserved,
                },
            ),
        )
        assert response.status_code == 200
        assert "reserved Loops property name" in response.content.decode()
    assert not FieldMapping.objects.exists()


@pytest.mark.parametrize(
    "url, allowed, message",
    [
        ("http://api.example.com/", True, "https://"),
        ("http://127.0.0.1:8765/loops/", False, "Loopback"),
    ],
)
def test_destination_url_rules(
    admin_client_logged, sandbox_destination, settings, url, allowed, message
):
    settings.SYNC_ALLOW_LOOPBACK = allowed
    destination = sandbox_destination("loops")
    response = admin_client_logged.post(
        reverse("admin:sync_destination_change", args=[destination.pk]),
        _destination_post(destination, base_url=url),
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


def test_push_action_queues_and_answers_at_once(admin_client_logged, sandbox_destination, sandbox):
    loops = sandbox_destination("loops")
    seed_demo_contacts(25)
    ids = list(Contact.objects.values_list("pk", flat=True))
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_changelist"),
        {
            "action": "push_selected",
            "_selected_action": ids,
            "destination": loops.pk,
        },
        follow=True,
    )
    assert "25 pushes queued for loops sandbox" in " ".join(_messages(response))
    assert sandbox_requests(sandbox) == 0  # nothing sent inside the admin's request
    assert ContactSyncState.objects.filter(status=SyncStatus.PENDING).count() == 25
    run = SyncRun.objects.get()
    assert run.total == 25 and run.user is not None


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
    assert page.count("sync-payload") == 3 * 4
    assert "externalCustomerId" in page and "userId" in page and "user_id" in page
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
    loops = sandbox_destination("loops")
    seed_demo_contacts(4)
    failed, synced = list(Contact.objects.order_by("pk"))[:2]
    ContactSyncState.objects.create(
        contact=failed,
        destination=loops,
        status=SyncStatus.FAILED,
        last_error="Loops HTTP 500: boom",
    )
    ContactSyncState.objects.create(
        contact=synced,
        destination=loops,
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

    loops = sandbox_destination("loops")
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    ContactSyncState.objects.create(
        contact=contact,
        destination=loops,
        status=SyncStatus.FAILED,
        remote_id="cl-123",
        last_error="Loops HTTP 400: bad email",
    )
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=loops,
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
    assert "cl-123" in page and "Loops HTTP 400: bad email" in page
    assert len(re.findall(r"/admin/sync/syncattempt/\d+/change/", page)) == 5


def test_dashboard_shows_counts_chart_errors_and_runs(admin_client_logged, sandbox_destination):
    from django.utils import timezone

    loops = sandbox_destination("loops")
    cendyn = sandbox_destination("cendyn")
    seed_demo_contacts(10)
    contacts = list(Contact.objects.order_by("pk"))
    for c in contacts[:3]:
        ContactSyncState.objects.create(
            contact=c,
            destination=loops,
            status=SyncStatus.FAILED,
            last_error="Loops HTTP 400: <b>bad</b> email",
        )
    for c in contacts[3:8]:
        ContactSyncState.objects.create(contact=c, destination=loops, status=SyncStatus.SYNCED)
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(destination=loops, trigger="action", outcome=o, started_at=timezone.now())
            for o in ["created"] * 6 + ["failed"] * 2
        ]
    )
    Destination.objects.filter(pk=cendyn.pk).update(
        paused_at=timezone.now(), pause_error="Cendyn CRM HTTP 401: no"
    )
    run = SyncRun.objects.create(trigger="action", destination=loops, total=40, created=10)

    url = reverse("sync_dashboard")
    admin_client_logged.get(url)
    with CaptureQueriesContext(connection) as ctx:
        page = admin_client_logged.get(url).content.decode()
    assert "<svg" not in page and page.count('<canvas class="chart"') == 4  # unfold's charts
    assert "3 × Loops HTTP 400: &lt;b&gt;bad&lt;/b&gt; email" in page
    assert "sync_error=Loops%20HTTP%20400" in page
    assert "Cendyn CRM HTTP 401: no" in page  # the paused banner
    assert f'data-run="{run.pk}"' in page and "width: 25%" in page
    assert "75.0 %" in page  # 6 of 8 pushes in 24 h
    queries = len(ctx.captured_queries)

    seed_demo_contacts(40)
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=cendyn, trigger="retry", outcome="updated", started_at=timezone.now()
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
            "sync_dest": loops.pk,
            "sync_status": "failed",
            "sync_error": "Loops HTTP 400: <b>bad</b> email",
        },
    )
    assert sorted(link.context["cl"].result_list, key=lambda c: c.pk) == contacts[:3]


def test_dashboard_retry_and_cancel_buttons(
    admin_client_logged, sandbox_destination, immediate_tasks, sandbox
):
    loops = sandbox_destination("loops")
    seed_demo_contacts(2)
    contact = Contact.objects.first()
    ContactSyncState.objects.create(
        contact=contact, destination=loops, status=SyncStatus.FAILED, last_error="x"
    )
    admin_client_logged.post(reverse("sync_retry_failed", args=[loops.pk]))
    assert ContactSyncState.objects.get(contact=contact).status == SyncStatus.SYNCED

    run = SyncRun.objects.create(trigger="action", destination=loops, total=5)
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
    loops = sandbox_destination("loops")
    services.destination_pause(destination=loops, error="Loops HTTP 401: Invalid API key")
    services.destination_pause(destination=loops, error="Loops HTTP 401: Invalid API key")
    assert len(mailoutbox) == 1 and "paused" in mailoutbox[0].subject
    assert mailoutbox[0].to == ["ops@example.com"]

    settings.SYNC_ALERT_MIN_ATTEMPTS = 10
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(destination=loops, trigger="action", outcome=o, started_at=timezone.now())
            for o in ["failed"] * 6 + ["created"] * 4
        ]
    )
    alerts.failure_rates_check()
    alerts.failure_rates_check()
    assert len(mailoutbox) == 2 and "60%" in mailoutbox[1].subject
    SyncAttempt.objects.filter(outcome="failed").update(outcome="created")
    alerts.failure_rates_check()  # recovered: re-armed, no mail
    assert len(mailoutbox) == 2


def test_the_ivvy_destination_page_says_ivvy_holds_no_sms_status(
    admin_client_logged, sandbox_destination
):
    destination = sandbox_destination("ivvy")
    page = admin_client_logged.get(
        reverse("admin:sync_destination_change", args=[destination.pk])
    ).content.decode()
    assert "iVvy holds no SMS status since 30 June 2026" in page


def test_the_form_shows_and_checks_what_the_platform_declares(admin_client_logged, sandbox_env):
    add = reverse("admin:sync_destination_add")
    page = admin_client_logged.get(f"{add}?platform=cendyn&name=Live").content.decode()
    assert 'name="setting_account_id"' in page and 'name="setting_region"' in page
    assert "Account secret variable" in page and 'name="secret_env"' not in page
    assert 'value="Live"' in page
    assert (
        'name="setting_account_id"'
        not in admin_client_logged.get(f"{add}?platform=loops").content.decode()
    )

    form = {
        "name": "Cendyn live",
        "platform": "cendyn",
        "base_url": "",
        "key_env": "SYNC_CREDENTIAL_CENDYN_SECRET",
        "setting_account_id": "",
        "setting_region": "mars",
        "enabled": "on",
        "rate_limit": "",
        "timeout": "10",
        **{
            f"{prefix}-{key}": value
            for prefix in ("field_mappings", "list_mappings")
            for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
        },
    }
    response = admin_client_logged.post(add, form)
    errors = response.context["adminform"].form.errors
    assert "setting_account_id" in errors and "setting_region" in errors
    assert not Destination.objects.exists()

    response = admin_client_logged.post(
        add, {**form, "setting_account_id": " acct-7 ", "setting_region": "us"}
    )
    assert response.status_code == 302
    destination = Destination.objects.get()
    assert destination.settings == {"account_id": "acct-7", "region": "us"}
    assert destination.effective_base_url == "https://api.us.cendyncrm.com/"
