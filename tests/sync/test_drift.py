"""Update-only destinations and read-back drift, against the sandbox over real HTTP, for every
registered platform: a value changed on the platform's side is reported as exactly that field,
a contact missing there is drift only where our state says the platform holds it, update-only
never creates a contact, and a platform's own call-class limit is kept."""

import time

import pytest
import requests
from django.core.management import call_command
from django.urls import reverse

from contacts.models import Contact
from sync import connectors, services
from sync.models import ContactDrift, ContactSyncState, Destination, SyncAttempt, SyncStatus
from sync.ratelimit import DatabaseRateLimiter
from tests.conftest import PLATFORMS, platform_with

pytestmark = pytest.mark.django_db
Outcome = SyncAttempt.Outcome


def new_contact(n=0, **fields):
    return Contact.objects.create(
        **{
            "first_name": f"Ada{n}",
            "last_name": "Lovelace",
            "email": f"ada{n}@example.com",
            **fields,
        }
    )


def push(contact, destination, **context):
    return services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action", **context),
    )


def push_all(contacts, destination):
    services.contacts_push(
        contact_ids=[c.pk for c in contacts],
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    awaiting = ContactSyncState.objects.filter(destination=destination, status=SyncStatus.AWAITING)
    if awaiting.exists():
        services.contacts_confirm(
            contact_ids=list(awaiting.values_list("contact_id", flat=True)),
            destination=destination,
            context=services.PushContext(trigger="retry"),
        )
    states = ContactSyncState.objects.filter(destination=destination)
    assert {s.status for s in states} == {SyncStatus.SYNCED}, [s.last_error for s in states]


def platform_side(sandbox, slug, contact, method="POST", **changes):
    response = requests.request(
        method,
        f"{sandbox.url}/_sandbox/contact/{slug}/{contact.external_id}",
        json=changes or None,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


def held(sandbox, slug, contact):
    response = requests.get(f"{sandbox.url}/_sandbox/contact/{slug}/{contact.external_id}")
    return response.json() if response.status_code == 200 else None


def sandbox_log(sandbox, slug):
    return requests.get(f"{sandbox.url}/_sandbox/log?platform={slug}", timeout=5).json()


def two_destinations_on_one_account(sandbox, slug):
    """Two destinations share the sandbox's one account, and each keeps only its own rate
    limit: lift the account's, so that a test's pushes are not refused 429 one second in."""
    requests.post(f"{sandbox.url}/_sandbox/rate-limit", json={"platform": slug, "limit": None})


def drift_of(contact, destination):
    return ContactDrift.objects.filter(contact=contact, destination=destination).first()


# ----------------------------------------------------------------------------- drift


@pytest.mark.parametrize("slug", PLATFORMS)
def test_a_platform_side_change_is_reported_as_that_field_and_re_pushed(
    slug, sandbox_destination, sandbox, immediate_tasks, admin_client_logged
):
    destination = sandbox_destination(slug)
    contacts = [new_contact(n) for n in range(3)]
    # in one batch (a bulk call where the platform has one; the re-push below is a single
    # call, so no platform takes it for a repeat of the first)
    push_all(contacts, destination)
    changed = contacts[1]
    platform_side(sandbox, slug, changed, first_name="Changed on the platform")

    report = services.destination_reconcile(
        destination=destination, contact_ids=[c.pk for c in contacts]
    )
    assert (report.checked, report.drifted, report.missing, report.failed) == (3, 1, 0, 0)
    assert dict(report.fields) == {"first_name": 1}
    assert report.requests >= 3
    drift = drift_of(changed, destination)
    assert drift.fields == ["first_name"] and drift.summary == "drifted: first name"
    assert ContactDrift.objects.filter(destination=destination).count() == 1

    panel = admin_client_logged.get(reverse("admin:contacts_contact_sync_panel", args=[changed.pk]))
    assert "drifted: first name" in panel.content.decode()
    dashboard = admin_client_logged.get(reverse("sync_dashboard")).content.decode()
    assert "drifted 1" in dashboard and "Re-push 1 drifted" in dashboard

    # re-push drifted: forced (the contact itself did not change here), and the drift is gone
    response = admin_client_logged.post(reverse("sync_repush_drifted", args=[destination.pk]))
    assert response.status_code == 302
    assert held(sandbox, slug, changed)["first_name"] == changed.first_name
    assert not ContactDrift.objects.filter(destination=destination).exists()
    again = services.destination_reconcile(destination=destination, contact_ids=[changed.pk])
    assert again.drifted == 0 and not ContactDrift.objects.exists()


@pytest.mark.parametrize("slug", PLATFORMS)
def test_missing_on_the_platform_is_drift_only_where_our_state_says_it_is_held(
    slug, sandbox_destination, sandbox
):
    two_destinations_on_one_account(sandbox, slug)
    destination = sandbox_destination(slug)
    pushed, never = new_contact(1), new_contact(2)
    assert push(pushed, destination).status == SyncStatus.SYNCED
    platform_side(sandbox, slug, pushed, method="DELETE")

    update_only = sandbox_destination(
        slug, name=f"{slug} update-only", sync_mode=Destination.SyncMode.UPDATE_ONLY
    )
    skipped = new_contact(3)
    assert push(skipped, update_only).status == SyncStatus.SKIPPED

    report = services.destination_reconcile(
        destination=destination, contact_ids=[pushed.pk, never.pk]
    )
    assert (report.checked, report.missing, report.drifted) == (2, 1, 0)
    assert drift_of(pushed, destination).summary == "missing on the platform"
    assert drift_of(never, destination) is None
    report = services.destination_reconcile(destination=update_only, contact_ids=[skipped.pk])
    assert (report.checked, report.missing) == (1, 0)
    assert not ContactDrift.objects.filter(destination=update_only).exists()


def test_the_command_reads_a_sample_and_prints_the_cost(sandbox_destination, sandbox, capsys):
    slug = platform_with()
    destination = sandbox_destination(slug)
    contacts = [new_contact(n) for n in range(4)]
    for contact in contacts:
        push(contact, destination)
    platform_side(sandbox, slug, contacts[0], last_name="Byron")
    call_command("sync_reconcile", destination=destination.name, all=True)
    out = capsys.readouterr().out
    assert "4 contacts read back in" in out and "drifted: 1 (last_name 1)" in out
    call_command("sync_reconcile", destination=destination.name, sample=2)
    assert "2 contacts read back" in capsys.readouterr().out
    call_command("sync_reconcile", destination=destination.name, ids=[contacts[0].pk])
    assert "1 contacts read back" in capsys.readouterr().out
    assert drift_of(contacts[0], destination).fields == ["last_name"]


def test_the_daily_pass_queues_one_sample_per_destination_once(
    sandbox_destination, sandbox, immediate_tasks, settings
):
    settings.SYNC_RECONCILE_SAMPLE = 2
    slug = platform_with()
    destination = sandbox_destination(slug)
    contacts = [new_contact(n) for n in range(3)]
    for contact in contacts:
        push(contact, destination)
    for contact in contacts:
        platform_side(sandbox, slug, contact, first_name="Elsewhere")
    assert services.reconcile_enqueue_daily() == 2  # run at once by the immediate backend
    assert ContactDrift.objects.filter(destination=destination).count() == 2
    assert services.reconcile_enqueue_daily() == 0  # claimed for a day (several schedulers)
    settings.SYNC_RECONCILE_SAMPLE = 0
    Destination.objects.update(reconciled_at=None)
    assert services.reconcile_enqueue_daily() == 0


def test_the_admin_action_reads_back_as_a_task(
    sandbox_destination, sandbox, immediate_tasks, admin_client_logged
):
    slug = platform_with()
    destination = sandbox_destination(slug)
    contact = new_contact()
    push(contact, destination)
    platform_side(sandbox, slug, contact, email="someone.else@example.com")
    response = admin_client_logged.post(
        reverse("admin:sync_destination_changelist"),
        {"action": "reconcile_sample", "_selected_action": [destination.pk], "index": "0"},
    )
    assert response.status_code == 302
    assert drift_of(contact, destination).fields == ["email"]


# ----------------------------------------------------------------------- update-only


@pytest.mark.parametrize("slug", PLATFORMS)
def test_update_only_skips_a_contact_the_platform_does_not_hold_and_updates_one_it_does(
    slug, sandbox_destination, sandbox
):
    two_destinations_on_one_account(sandbox, slug)
    destination = sandbox_destination(slug, sync_mode=Destination.SyncMode.UPDATE_ONLY)
    stranger = new_contact(1)
    state = push(stranger, destination)
    assert state.status == SyncStatus.SKIPPED, state.last_error
    assert state.skip_reason.startswith(f"not on {connectors.get_class(slug).label}")
    assert "update-only" in state.skip_reason and state.last_error == ""
    attempt = SyncAttempt.objects.filter(destination=destination).latest("pk")
    assert attempt.outcome == Outcome.SKIPPED and attempt.http_status == 200  # the lookup
    assert held(sandbox, slug, stranger) is None
    # one request: the platform's cheapest lookup, and nothing that could create a contact
    assert [e["status"] for e in sandbox_log(sandbox, slug)] == [200]

    # held on the platform (pushed by an upsert destination on the same account): updated
    upsert = sandbox_destination(slug, name=f"{slug} upsert")
    known = new_contact(2)
    assert push(known, upsert).status == SyncStatus.SYNCED
    known.first_name = "Updated"
    known.save()
    state = push(known, destination)
    # This destination never pushed the contact, so which fields the platform holds from us
    # is unknown and every empty one is cleared: where a clear is asynchronous, the push is
    # accepted and awaits its confirmation (issue #13, "cleared means cleared").
    assert state.status in (SyncStatus.SYNCED, SyncStatus.AWAITING), state.last_error
    assert state.remote_id
    assert held(sandbox, slug, known)["first_name"] == "Updated"

    # deleted there since: skipped again, and our state forgets it was held
    platform_side(sandbox, slug, known, method="DELETE")
    known.first_name = "Again"
    known.save()
    state = push(known, destination)
    assert state.status == SyncStatus.SKIPPED and state.payload_hash == "" and not state.remote_id
    assert held(sandbox, slug, known) is None


def test_update_only_in_bulk_sends_only_the_contacts_the_platform_holds(
    sandbox_destination, sandbox
):
    slug = platform_with(bulk=True)
    two_destinations_on_one_account(sandbox, slug)
    upsert = sandbox_destination(slug, name="upsert")
    known = [new_contact(n) for n in range(2)]
    for contact in known:
        assert push(contact, upsert).status == SyncStatus.SYNCED
    strangers = [new_contact(n) for n in range(2, 5)]
    destination = sandbox_destination(slug, sync_mode=Destination.SyncMode.UPDATE_ONLY)
    for contact in known:
        contact.last_name = "Changed"
        contact.save()
    services.contacts_push(
        contact_ids=[c.pk for c in known + strangers],
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    states = {s.contact_id: s for s in ContactSyncState.objects.filter(destination=destination)}
    assert {states[c.pk].status for c in strangers} == {SyncStatus.SKIPPED}
    assert {states[c.pk].status for c in known} <= {SyncStatus.SYNCED, SyncStatus.AWAITING}
    for contact in strangers:
        assert held(sandbox, slug, contact) is None
    for contact in known:
        assert held(sandbox, slug, contact)["last_name"] == "Changed"


def test_the_sync_mode_is_set_on_the_destination_page(admin_client_logged, sandbox_destination):
    from tests.sync.conftest import destination_form_data

    destination = sandbox_destination(platform_with())
    data = destination_form_data(destination, sync_mode="update_only")
    response = admin_client_logged.post(
        reverse("admin:sync_destination_change", args=[destination.pk]), data
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    destination.refresh_from_db()
    assert destination.sync_mode == Destination.SyncMode.UPDATE_ONLY


# ------------------------------------------------------------------ call-class limits


def test_a_call_class_is_held_to_its_own_limit_beside_the_destinations(
    sandbox_destination, sandbox
):
    """A platform with a call class of its own (Yespo's search: 50/s beside 200/s): looking
    up more contacts than one second of that class allows takes more than a second, and the
    sandbox, which enforces the vendor's class limit, answers none of them 429."""
    cls = next((c for c in connectors.get_class_list() if c.call_classes), None)
    if cls is None:
        pytest.skip("no registered platform declares a call class")
    name, rate = next(iter(cls.call_classes.items()))
    assert rate < cls.default_rate_limit
    destination = sandbox_destination(cls.slug)
    connector = services.destination_connector(destination=destination)
    calls = int(rate) + 10
    started = time.monotonic()
    for n in range(calls):
        assert connector.find_remote_id(external_id=f"nobody-{n}") is None
    elapsed = time.monotonic() - started
    statuses = {e["status"] for e in sandbox_log(sandbox, cls.slug)}
    assert statuses == {200}
    assert elapsed >= (calls - 1) / rate * 0.95, elapsed


def test_the_limiter_spaces_a_class_by_its_rate_and_the_rest_by_the_destinations(
    sandbox_destination,
):
    destination = sandbox_destination(platform_with())
    limiter = DatabaseRateLimiter(destination.pk, 100.0, {"slow": 20.0})
    started = time.monotonic()
    for _ in range(11):
        limiter.acquire("slow")
    slow = time.monotonic() - started
    started = time.monotonic()
    for _ in range(11):
        limiter.acquire()
    fast = time.monotonic() - started
    assert slow >= 10 / 20 and fast < slow / 2, (slow, fast)


# ------------------------------------------------------------- what is compared


def test_only_readable_sent_always_written_fields_are_compared():
    from sync.connectors.readback import compared_fields
    from sync.connectors.records import MappingRecord

    readable = frozenset({"first_name", "city", "birth_date", "custom_values", "group_ids"})
    mapping = MappingRecord(
        fields={"custom:note": "n", "custom:tier": "t", "birth_date": "b"},
        groups={1: "g"},
        write_rules={"custom:tier": "create", "city": "never"},
    )
    # birth_date: mappable, and mapped; gender: mappable, not mapped; tier: "on create only"
    assert compared_fields(readable, mapping, ("birth_date", "gender")) == (
        "first_name",
        "birth_date",
        "custom:note",
        "group_ids",
    )
    # lists only when the destination maps lists; unreadable fields never
    bare = MappingRecord(fields={})
    assert compared_fields(readable, bare, ("birth_date",)) == ("first_name", "city")
