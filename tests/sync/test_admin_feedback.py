"""What people see and press on the contact list, the contact's sync panel, the dashboard and
the error pages: the compact sync cell, filters by name, push controls only for those who may
push, "Push now" and "Retry", contacts counted rather than attempts, workers by process."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync.models import (
    ContactSyncState,
    Destination,
    SyncAttempt,
    SyncStatus,
    WorkerHeartbeat,
)
from tests.conftest import PLATFORMS, platform_with
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.django_db

PLATFORM = platform_with(bulk=False)
LIST = "admin:contacts_contact_changelist"


@pytest.fixture
def as_role(client, django_user_model):
    """as_role(role) -> the test client, logged in as a fresh staff user in that role."""

    def login(role):
        user = django_user_model.objects.create_user(
            re.sub(r"\W+", "-", role.lower()), "someone@example.com", "pw-1", is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return login


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_the_list_shows_one_mark_per_destination_with_status_remote_id_and_error(
    admin_client_logged, all_destinations
):
    seed_demo_contacts(3)
    first, second, _ = Contact.objects.order_by("pk")
    synced_on, failed_on = all_destinations[:2]
    ContactSyncState.objects.create(
        contact=first, destination=synced_on, status=SyncStatus.SYNCED, remote_id="R-123"
    )
    ContactSyncState.objects.create(
        contact=first,
        destination=failed_on,
        status=SyncStatus.FAILED,
        last_error="HTTP 400: <b>lastName</b> is required",
    )
    page = admin_client_logged.get(reverse(LIST)).content.decode()

    assert page.count('class="sync-mark ') == 3 * len(all_destinations)
    assert "sync-badge" not in page.split('id="result_list"')[1]  # no stacked badges
    tip = page.split(f'id="sync-tip-{first.pk}-{synced_on.pk}"')[1].split("</span></span>")[0]
    assert synced_on.name in tip and "synced" in tip and "Remote ID R-123" in tip
    tip = page.split(f'id="sync-tip-{first.pk}-{failed_on.pk}"')[1].split("</span></span>")[0]
    assert "failed" in tip and "HTTP 400: &lt;b&gt;lastName&lt;/b&gt; is required" in tip
    tip = page.split(f'id="sync-tip-{second.pk}-{synced_on.pk}"')[1].split("</span></span>")[0]
    assert "never pushed" in tip


def test_country_and_language_filters_show_names_not_codes(admin_client_logged, db):
    seed_demo_contacts(1)
    Contact.objects.update(country="AU", language="en")
    page = admin_client_logged.get(reverse(LIST)).content.decode()
    assert "Australia" in page and "English" in page
    assert "?country=AU" in page  # the query string keeps the code
    filtered = admin_client_logged.get(reverse(LIST), {"country": "AU"})
    assert filtered.context["cl"].result_count == 1


@pytest.mark.parametrize(
    "role, sees_push",
    [("Marketing staff", False), ("Managers", False), ("Sync admins", True)],
)
def test_push_controls_only_for_those_who_may_push(as_role, sandbox_destination, role, sees_push):
    sandbox_destination(PLATFORM)
    seed_demo_contacts(1)
    page = as_role(role).get(reverse(LIST)).content.decode()
    assert ('name="destination"' in page) is sees_push
    assert ('name="force"' in page) is sees_push


def test_push_now_and_retry_from_the_contacts_sync_panel(
    as_role, sandbox_destination, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    http = as_role("Sync admins")
    change = reverse("admin:contacts_contact_change", args=[contact.pk])
    push = reverse("admin:contacts_contact_push_now", args=[contact.pk, destination.pk])
    retry = reverse("admin:contacts_contact_retry", args=[contact.pk, destination.pk])

    page = http.get(change).content.decode()
    assert f'action="{push}"' in page and f'action="{retry}"' not in page  # nothing failed
    assert page.index('id="sync-panel"') < page.index('name="first_name"')  # at the top

    response = http.post(push, follow=True)
    assert response.redirect_chain[-1][0] == change
    assert _messages(response) == [f"Pushed to {destination.name}: synced."]
    state = ContactSyncState.objects.get(contact=contact, destination=destination)
    assert state.status == SyncStatus.SYNCED and state.remote_id

    requests_before = sandbox_requests(sandbox)
    http.post(push, follow=True)  # unchanged, but "Push now" sends it anyway
    assert sandbox_requests(sandbox) > requests_before

    response = http.post(retry, follow=True)
    assert "has no failed push of this contact to retry" in _messages(response)[0]

    ContactSyncState.objects.filter(pk=state.pk).update(
        status=SyncStatus.FAILED, last_error="HTTP 500: boom"
    )
    assert f'action="{retry}"' in http.get(change).content.decode()
    response = http.post(retry, follow=True)
    assert _messages(response) == [f"Pushed to {destination.name}: synced."]
    state.refresh_from_db()  # the platform holds it as it is (unchanged since its last push)
    assert state.status in (SyncStatus.SYNCED, SyncStatus.UNCHANGED) and state.last_error == ""

    Destination.objects.filter(pk=destination.pk).update(paused_at=timezone.now())
    requests_before = sandbox_requests(sandbox)
    response = http.post(push, follow=True)
    assert "Nothing sent" in _messages(response)[0] and "paused" in _messages(response)[0]
    assert sandbox_requests(sandbox) == requests_before
    assert f'action="{push}"' not in response.content.decode()


def test_push_now_in_queued_mode_queues_and_the_panel_says_so(
    as_role, sandbox_destination, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "queued"
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    push = reverse("admin:contacts_contact_push_now", args=[contact.pk, destination.pk])
    response = as_role("Sync admins").post(push, follow=True)
    assert _messages(response) == [f"Queued for {destination.name}; the Sync panel updates itself."]
    assert sandbox_requests(sandbox) == 0
    state = ContactSyncState.objects.get(contact=contact, destination=destination)
    assert state.status == SyncStatus.PENDING
    assert 'data-active="1"' in response.content.decode()  # the panel polls until it settles


@pytest.mark.parametrize("role, links", [("Marketing staff", False), ("Sync admins", True)])
def test_the_panel_links_attempts_only_for_those_who_may_open_them(
    as_role, sandbox_destination, role, links
):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    attempt = SyncAttempt.objects.create(
        destination=destination,
        contact=contact,
        trigger="save",
        outcome="failed",
        started_at=timezone.now(),
    )
    http = as_role(role)
    page = http.get(reverse("admin:contacts_contact_change", args=[contact.pk])).content.decode()
    link = reverse("admin:sync_syncattempt_change", args=[attempt.pk])
    assert (f'href="{link}"' in page) is links
    assert attempt.started_at.strftime("%Y-%m-%d") in page  # the attempt is listed either way
    assert ("Push now" in page) is links  # sync admins push; marketing staff do not


def test_403_and_404_are_pages_of_the_admin_for_its_staff(as_role, client, sandbox_destination):
    destination = sandbox_destination(PLATFORM)
    seed_demo_contacts(1)
    attempt = SyncAttempt.objects.create(
        destination=destination, trigger="save", outcome="failed", started_at=timezone.now()
    )
    http = as_role("Marketing staff")
    refused = http.get(reverse("admin:sync_syncattempt_change", args=[attempt.pk]))
    assert refused.status_code == 403
    page = refused.content.decode()
    assert 'data-status="403"' in page and "You may not open this page" in page
    assert "/static/sync/sync.css" in page and 'id="nav-sidebar-apps"' in page  # unfold's page
    assert reverse("admin:sync_syncattempt_changelist") not in page  # not in their sidebar

    missing = http.get("/admin/contacts/contact/999999/change/")
    assert missing.status_code in (302, 404)  # Django's admin redirects a missing object
    missing = http.get("/admin/no-such-page/")
    assert missing.status_code == 404 and 'data-status="404"' in missing.content.decode()

    client.logout()
    plain = client.get("/no-such-page/")
    assert plain.status_code == 404 and "nav-sidebar" not in plain.content.decode()


def test_the_overview_counts_contacts_not_attempts(admin_client_logged, all_destinations):
    seed_demo_contacts(4)
    contacts = list(Contact.objects.order_by("pk"))
    target = all_destinations[0]
    now = timezone.now()
    for contact in contacts:
        ContactSyncState.objects.create(
            contact=contact, destination=target, status=SyncStatus.SYNCED, remote_id="r"
        )
        # a contact failed once, then went through: attempts say 50 %, contacts 100 %
        for outcome in ("failed", "created"):
            SyncAttempt.objects.create(
                destination=target,
                contact=contact,
                trigger="save",
                outcome=outcome,
                started_at=now - timedelta(hours=1),
            )
    ContactSyncState.objects.create(
        contact=contacts[0], destination=all_destinations[1], status=SyncStatus.FAILED
    )
    page = admin_client_logged.get(reverse("sync_dashboard")).content.decode()
    overview = page.split('id="sync-overview"')[1].split("</table>")[0]
    row = overview.split(f'data-destination="{target.pk}"')[1].split("</tr>")[0]
    cells = dict(re.findall(r'data-count="([\w-]+)">(.*?)</td>', row, re.S))
    assert cells["synced"] == "4" and cells["failed"] == "0" and cells["never"] == "0"
    assert cells["success-rate"] == "100.0 %"
    assert page.index('id="sync-overview"') < page.index(f'id="destination-{target.pk}"')
    other = overview.split(f'data-destination="{all_destinations[1].pk}"')[1].split("</tr>")[0]
    other_cells = dict(re.findall(r'data-count="([\w-]+)">(.*?)</td>', other, re.S))
    assert ">1</a>" in other_cells["failed"] and other_cells["success-rate"] == "0.0 %"
    assert other_cells["never"] == "3"
    assert len(PLATFORMS) == len(re.findall(r"<tr data-destination=", overview))


def test_the_live_part_refreshes_and_opened_directly_is_the_whole_dashboard(
    admin_client_logged, sandbox_destination
):
    sandbox_destination(PLATFORM)
    url = reverse("sync_dashboard_runs")
    polled = admin_client_logged.get(url, headers={"X-Sync-Fragment": "1"}).content.decode()
    assert 'id="sync-overview"' in polled and "<html" not in polled
    direct = admin_client_logged.get(url).content.decode()
    assert "<html" in direct and 'id="sync-live"' in direct and "/static/sync/sync.css" in direct


def test_workers_are_shown_by_host_and_process_with_their_last_beat(admin_client_logged, db):
    now = timezone.now()
    WorkerHeartbeat.objects.create(name="web-1:4242:139963000001", last_seen=now)
    WorkerHeartbeat.objects.create(
        name="web-1:4242:139963000002", last_seen=now - timedelta(minutes=5)
    )
    WorkerHeartbeat.objects.create(
        name="worker-2:77:139963000003", last_seen=now - timedelta(hours=2)
    )
    page = admin_client_logged.get(reverse("sync_dashboard")).content.decode()
    workers = page.split('id="sync-workers"')[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", workers)
    assert rows == [("web-1", "4242"), ("worker-2", "77")]  # one row per process
    assert "139963" not in workers
    assert "2\xa0hours ago" in workers


# ------------------------------------------------------------------ smaller defects


def test_pages_name_their_favicon_and_it_exists(admin_client_logged):
    from django.contrib.staticfiles import finders

    page = admin_client_logged.get(reverse("admin:index")).content.decode()
    href = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml"', page)
    assert href, "no favicon link"
    assert finders.find(href.group(1).removeprefix("/static/"))


def test_an_attempts_title_names_its_destination_and_its_body_reads_as_such(
    admin_client_logged, sandbox_destination
):
    destination = sandbox_destination(PLATFORM)
    attempt = SyncAttempt.objects.create(
        destination=destination,
        external_id="ct-1",
        trigger="save",
        outcome="failed",
        started_at=timezone.now(),
    )
    assert str(attempt).endswith(f"ct-1 on {destination.name}")
    page = admin_client_logged.get(
        reverse("admin:sync_syncattempt_change", args=[attempt.pk])
    ).content.decode()
    assert f"on {destination.name}" in page
    assert "No body was sent" in page and "Credentials removed." not in page


def test_the_history_says_no_change_reason_rather_than_none(admin_client_logged, db):
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    contact.first_name = "Edited"
    contact.save()
    page = admin_client_logged.get(
        reverse("admin:contacts_contact_history", args=[contact.pk])
    ).content.decode()
    assert "Edited" in page or "first name" in page.lower()
    reasons = re.findall(r'data-label="Change reason">\s*(.*?)\s*</td>', page, re.S)
    assert reasons and all(reason == "—" for reason in reasons), reasons


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_test_connection_message_is_made_of_sentences(sandbox_destination, platform):
    from sync import services

    destination = sandbox_destination(platform)
    Destination.objects.filter(pk=destination.pk).update(paused_at=timezone.now())
    destination.refresh_from_db()
    ok, message = services.destination_test_connection(destination=destination)
    assert ok, message
    first, _, rest = message.partition(" The destination is resumed")
    assert first.endswith("."), message
    assert rest, message


def test_saving_a_destination_whose_credential_variable_is_unset_warns(
    admin_client_logged, sandbox_destination, monkeypatch
):
    from tests.sync.conftest import destination_form_data

    destination = sandbox_destination(PLATFORM)
    field = next(iter(destination.connector_class.credentials.values())).field
    monkeypatch.delenv("SYNC_CREDENTIAL_NOT_SET_ANYWHERE", raising=False)
    url = reverse("admin:sync_destination_change", args=[destination.pk])
    response = admin_client_logged.post(
        url,
        destination_form_data(destination, **{field: "SYNC_CREDENTIAL_NOT_SET_ANYWHERE"}),
        follow=True,
    )
    label = next(
        c.label for c in destination.connector_class.credentials.values() if c.field == field
    )
    warnings = [m for m in _messages(response) if "is not set on this server" in m]
    assert warnings == [
        f"{destination.name}: {label} SYNC_CREDENTIAL_NOT_SET_ANYWHERE is not set on this "
        "server; pushes and tests will fail until the operator sets it."
    ]

    monkeypatch.setenv("SYNC_CREDENTIAL_NOT_SET_ANYWHERE", "a-value")
    response = admin_client_logged.post(
        url,
        destination_form_data(destination, **{field: "SYNC_CREDENTIAL_NOT_SET_ANYWHERE"}),
        follow=True,
    )
    assert not [m for m in _messages(response) if "is not set" in m]


def test_a_name_outside_the_allow_list_gets_the_forms_refusal_and_no_warning(
    admin_client_logged, sandbox_destination
):
    from tests.sync.conftest import destination_form_data

    destination = sandbox_destination(PLATFORM)
    field = next(iter(destination.connector_class.credentials.values())).field
    for name in ("HOME", "NO_SUCH_VARIABLE_ANYWHERE"):  # one set, one not: the same answer
        response = admin_client_logged.post(
            reverse("admin:sync_destination_change", args=[destination.pk]),
            destination_form_data(destination, **{field: name}),
        )
        assert response.status_code == 200  # refused on the form
        assert "is not set on this server" not in response.content.decode()


# ---------------------------------------------------- before a save: refusals and unmapped


def _check(http, data, contact=None):
    body = {**data, "_sync_check_contact": str(contact.pk) if contact else ""}
    response = http.post(reverse("admin:contacts_contact_sync_check"), body)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_before_a_save_the_page_hears_which_platform_will_refuse_the_contact(
    admin_client_logged, all_destinations
):
    from sync.connectors.base import PermanentError
    from sync.connectors.records import ContactRecord, RemoteState
    from sync.engine import destination_connector
    from tests.contacts.admin_post import contact_post

    data = contact_post(last_name="")
    page = _check(admin_client_logged, data)
    probe = ContactRecord(
        id=None,
        external_id="ct-probe",
        first_name="John",
        last_name="",
        email="john.smith@example.com",
    )
    refusing = []
    for destination in all_destinations:
        try:
            destination_connector(destination=destination, throttle=False).build_payload(
                probe, RemoteState()
            )
        except PermanentError as err:
            refusing.append((destination, str(err)))
    if not refusing:
        pytest.skip("no platform refuses a contact without a last name")
    for destination, reason in refusing:
        assert f"{destination.name} will refuse it:</strong> {reason}" in page
    assert page.count("will refuse it") == len(refusing)
    assert "will refuse it" not in _check(admin_client_logged, contact_post())
    assert Contact.objects.count() == 0  # nothing saved to ask


def test_before_a_save_the_page_hears_what_each_destination_does_not_receive(
    admin_client_logged, sandbox_destination
):
    from contacts.models import CustomFieldDefinition, Group
    from sync.models import FieldMapping, ListMapping
    from tests.contacts.admin_post import contact_post

    destination = sandbox_destination(PLATFORM)
    loyalty = CustomFieldDefinition.objects.create(name="loyalty", type="string")
    vip = Group.objects.create(name="VIP")
    data = contact_post(
        custom_values=[{"definition": str(loyalty.pk), "value": "Gold"}],
        memberships=[{"group": str(vip.pk)}],
    )
    page = _check(admin_client_logged, data)
    line = page.split(f"Not sent to {destination.name}")[1].split("</li>")[0]
    assert "custom field “loyalty”" in line and "group “VIP”" in line

    FieldMapping.objects.create(destination=destination, custom_field=loyalty, remote_field="x")
    ListMapping.objects.create(destination=destination, group=vip, remote_list="1")
    page = _check(admin_client_logged, data)
    assert "loyalty" not in page and "VIP" not in page
