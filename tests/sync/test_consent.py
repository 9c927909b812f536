"""The consent ledger on the way out (issue 14, item 5), over real HTTP with the sandbox: an
opt-out that one platform reports is carried to the others through their own opt-out calls
and is never undone by a later push; only a person's or an import's opt-in here re-subscribes.
What each platform holds is read through the sandbox's neutral consent view."""

import datetime
import time

import pytest
import requests
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from contacts.consent import consent_record
from contacts.models import ConsentEntry, Contact
from contacts.services import contacts_import, contacts_import_dataset
from sync.consent import LedgerRow, channel_status
from sync.engine import PushContext, contact_push
from sync.models import Destination
from tests.conftest import PLATFORMS
from tests.contacts.admin_post import contact_post
from tests.sync.conftest import sandbox_control

pytestmark = pytest.mark.django_db

OTHERS = [p for p in PLATFORMS if p != "loops"]


def subscribed_on(sandbox, platform, contact) -> bool:
    """Whether the platform would send the contact bulk email (GET /_sandbox/consent/...)."""
    response = requests.get(
        f"{sandbox.url}/_sandbox/consent/{platform}/{contact.external_id}", timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["email_subscribed"]


def push_everywhere(destinations, contact):
    """An ordinary push (not forced) of the contact to every destination; all must settle."""
    for destination in destinations.values():
        state = contact_push(
            contact_id=contact.pk, destination=destination, context=PushContext(trigger="action")
        )
        assert state.status in ("synced", "unchanged"), (destination.platform, state.last_error)


@pytest.fixture
def world(inbound_world, sandbox):
    """A contact pushed to all four platforms (none pushes on save: what reaches them after
    an opt-out is the propagation's doing), and Loops' webhook registered to our URL."""
    from sync.selectors import destination_inbound_url

    contact = Contact.objects.create(
        first_name="Ada", last_name="Lovelace", email="ada@example.com"
    )
    destinations = {p: inbound_world.make(p, push_on_save=False) for p in PLATFORMS}
    for destination in destinations.values():
        inbound_world.push(destination, contact)
    url = destination_inbound_url(destinations["loops"])
    sandbox_control(sandbox, "webhook", platform="loops", url=url)
    assert all(subscribed_on(sandbox, p, contact) for p in PLATFORMS)
    return destinations, contact


def unsubscribe_on_loops(sandbox, contact):
    """A minute ago (a later change in the same second would lose the tie to it)."""
    answers = sandbox_control(
        sandbox,
        "notify",
        platform="loops",
        action="unsubscribe",
        external_id=contact.external_id,
        event_time=int(time.time()) - 60,
    )
    assert [a["status"] for a in answers] == [200]
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"


def test_an_opt_out_on_loops_reaches_the_other_three_and_the_next_push_keeps_it(world, sandbox):
    destinations, contact = world
    unsubscribe_on_loops(sandbox, contact)
    for platform in OTHERS:
        assert not subscribed_on(sandbox, platform, contact), platform
    yespo = sandbox.sandbox.store("yespo")["yespo"]
    assert yespo["unsubscribed_emails"] == ["ada@example.com"]  # Yespo's own opt-out list

    # An ordinary edit, then an ordinary push everywhere: the opt-out stands on all four.
    contact.first_name = "Augusta"
    contact.save()
    push_everywhere(destinations, contact)
    for platform in PLATFORMS:
        assert not subscribed_on(sandbox, platform, contact), platform
        assert sandbox.sandbox.contact_view(platform, contact.external_id)["first_name"] == (
            "Augusta"
        )


def test_a_subscribe_written_outside_the_ledger_never_undoes_the_opt_out(world, sandbox):
    destinations, contact = world
    unsubscribe_on_loops(sandbox, contact)
    # Our field says "subscribed" again, but no person or import opted the contact in.
    Contact.objects.filter(pk=contact.pk).update(
        email_status="subscribed", first_name="Changed", content_version=F("content_version") + 1
    )
    push_everywhere(destinations, contact)
    for platform in PLATFORMS:
        assert not subscribed_on(sandbox, platform, contact), platform
        assert sandbox.sandbox.contact_view(platform, contact.external_id)["first_name"] == (
            "Changed"
        )


def test_with_the_setting_off_a_platform_keeps_its_own_consent(world, sandbox):
    destinations, contact = world
    kept = ["yespo", "ivvy"]
    Destination.objects.filter(platform__in=kept).update(apply_opt_outs_from_others=False)
    unsubscribe_on_loops(sandbox, contact)
    contact.last_name = "King"
    contact.save()
    destinations = {p: Destination.objects.get(pk=d.pk) for p, d in destinations.items()}
    push_everywhere(destinations, contact)
    for platform in kept:
        assert subscribed_on(sandbox, platform, contact), platform
        assert sandbox.sandbox.contact_view(platform, contact.external_id)["last_name"] == "King"
    assert not subscribed_on(sandbox, "cendyn", contact)
    assert not subscribed_on(sandbox, "loops", contact)
    assert sandbox.sandbox.store("yespo")["yespo"]["unsubscribed_emails"] == []


def test_a_person_opting_in_again_re_subscribes_everywhere(world, sandbox, admin_client_logged):
    destinations, contact = world
    unsubscribe_on_loops(sandbox, contact)
    assert not any(subscribed_on(sandbox, p, contact) for p in PLATFORMS)
    response = admin_client_logged.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        contact_post(
            first_name="Ada",
            last_name="Lovelace",
            email="ada@example.com",
            external_id=contact.external_id,
            email_status="subscribed",
        ),
    )
    assert response.status_code == 302, response.content[:2000]
    push_everywhere(destinations, contact)
    for platform in PLATFORMS:
        assert subscribed_on(sandbox, platform, contact), platform
    entries = list(
        ConsentEntry.objects.filter(contact=contact, channel="email")
        .order_by("occurred_at", "id")
        .values_list("source", "previous_status", "status")
    )
    assert entries[-2:] == [
        ("platform", "subscribed", "unsubscribed"),
        ("admin", "unsubscribed", "subscribed"),
    ]


def test_a_resubscribe_on_loops_re_subscribes_nobody_else(world, sandbox):
    destinations, contact = world
    unsubscribe_on_loops(sandbox, contact)
    sandbox_control(
        sandbox, "notify", platform="loops", action="resubscribe", external_id=contact.external_id
    )
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"  # Loops' own word, applied here
    contact.first_name = "Ada B."
    contact.save()
    push_everywhere(destinations, contact)
    assert subscribed_on(sandbox, "loops", contact)
    for platform in OTHERS:
        assert not subscribed_on(sandbox, platform, contact), platform


def test_an_import_writes_ledger_entries_through_the_admins_writer(db, django_user_model):
    user = django_user_model.objects.create_superuser("importer", "i@example.com", "pw-1234567")
    header = "external_id,email,first_name,email_status"
    contacts_import(
        dataset=contacts_import_dataset(text=f"{header}\nIM-1,im@example.com,Im,unsubscribed\n"),
        user=user,
    )
    contact = Contact.objects.get(external_id="IM-1")
    first = ConsentEntry.objects.get(contact=contact, channel="email")
    assert (first.source, first.status, first.previous_status, first.source_label) == (
        "import",
        "unsubscribed",
        "",
        "import by importer",
    )
    contacts_import(
        dataset=contacts_import_dataset(text=f"{header}\nIM-1,im@example.com,Im,subscribed\n"),
        user=user,
    )
    latest = ConsentEntry.objects.filter(contact=contact, channel="email").order_by("-id").first()
    assert (latest.source, latest.previous_status, latest.status) == (
        "import",
        "unsubscribed",
        "subscribed",
    )
    contacts_import(  # a row that changes no status writes no entry
        dataset=contacts_import_dataset(text=f"{header}\nIM-1,im@example.com,Other,\n"), user=user
    )
    assert ConsentEntry.objects.filter(contact=contact, channel="email").count() == 2


def test_a_platform_event_records_the_status_it_replaced(db):
    contact = Contact.objects.create(email="p@example.com", email_status="subscribed")
    consent_record(
        contact=contact,
        channel="email",
        status="bounced",
        source="platform",
        occurred_at=timezone.now(),
        source_label="Loops",
    )
    assert ConsentEntry.objects.get().previous_status == "subscribed"


# ------------------------------------------------------------ the rule, entry by entry


def row(status, source, minutes, label="", applied=True, previous=""):
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(minutes=minutes)
    return LedgerRow("email", status, previous, source, label, when, applied, minutes)


LOOPS, YESPO = Destination(name="Loops"), Destination(name="Yespo")


def test_an_admin_opt_in_after_the_opt_out_is_sent_and_one_before_it_is_not():
    out = row("unsubscribed", "platform", 10, "Loops")
    assert channel_status([row("subscribed", "admin", 5), out], YESPO, "unsubscribed") == (
        "unsubscribed"
    )
    later = [out, row("subscribed", "admin", 20)]
    assert channel_status(later, YESPO, "subscribed") == "subscribed"


def test_another_platforms_opt_in_counts_only_there():
    entries = [
        row("unsubscribed", "platform", 10, "Yespo"),
        row("subscribed", "platform", 20, "Loops"),
    ]
    assert channel_status(entries, LOOPS, "subscribed") == "subscribed"
    assert channel_status(entries, YESPO, "subscribed") == "unsubscribed"


def test_on_a_tie_the_opt_out_wins_and_an_unapplied_opt_out_still_counts():
    from sync.consent import ledger_rows  # noqa: F401  (the sort order is ledger_rows')

    tie = sorted(
        [row("unsubscribed", "platform", 10, "Loops"), row("subscribed", "admin", 10)],
        key=lambda r: (r.occurred_at, not r.is_opt_in, r.id),
    )
    assert channel_status(tie, YESPO, "subscribed") == "unsubscribed"
    late = [
        row("unsubscribed", "platform", 10, "Yespo", applied=False),
        row("subscribed", "platform", 20, "Loops"),
    ]
    assert channel_status(late, YESPO, "subscribed") == "unsubscribed"


def test_an_opt_out_made_outside_the_ledger_is_sent_as_it_is():
    entries = [row("subscribed", "admin", 10)]
    assert channel_status(entries, YESPO, "no_marketing") == "no_marketing"
    assert channel_status([], YESPO, "bounced") == "bounced"


def test_with_the_setting_off_other_platforms_opt_outs_are_left_out():
    off = Destination(name="Yespo", apply_opt_outs_from_others=False)
    entries = [row("unsubscribed", "platform", 10, "Loops", previous="subscribed")]
    assert channel_status(entries, off, "unsubscribed") == "subscribed"
    assert channel_status(entries, YESPO, "unsubscribed") == "unsubscribed"


def test_mailing_lists_and_sms_are_guarded_like_email():
    from sync.connectors.records import ContactRecord
    from sync.consent import record_guard

    record = ContactRecord(
        id=1,
        external_id="x",
        email_status="subscribed",
        sms_status="subscribed",
        subscriptions={7: True, 8: True},
    )
    channels = {
        "list:7": [row("unsubscribed", "platform", 10, "Loops")],
        "sms": [row("bounced", "platform", 10, "Loops")],
    }
    guarded = record_guard(record, channels, YESPO)
    assert guarded.subscriptions == {7: False, 8: True}
    assert guarded.sms_status == "failed"  # an SMS bounce is our "failed"
    assert guarded.email_status == "subscribed"
    assert record_guard(record, channels, LOOPS).subscriptions == {7: False, 8: True}
    off = Destination(name="Yespo", apply_opt_outs_from_others=False)
    assert record_guard(record, channels, off) == record


def test_a_page_opened_before_a_platform_opt_out_does_not_undo_it(admin_client_logged):
    contact = Contact.objects.create(first_name="Ada", email="ada@example.com")
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    page = admin_client_logged.get(url).content.decode()
    assert 'name="initial-email_status" value="subscribed"' in page
    consent_record(  # arrives while the page is open
        contact=contact,
        channel="email",
        status="unsubscribed",
        source="platform",
        source_label="Loops",
        occurred_at=timezone.now(),
    )
    seen = {"initial-email_status": "subscribed", "initial-sms_status": "no_marketing"}
    fields = {"email": "ada@example.com", "external_id": contact.external_id}
    response = admin_client_logged.post(
        url, contact_post(first_name="Augusta", email_status="subscribed", **fields, **seen)
    )
    assert response.status_code == 302, response.content[:2000]
    contact.refresh_from_db()
    assert (contact.first_name, contact.email_status) == ("Augusta", "unsubscribed")
    assert not ConsentEntry.objects.filter(contact=contact, source="admin").exists()
    # the person changing it on a page that showed the opt-out does re-subscribe
    seen["initial-email_status"] = "unsubscribed"
    admin_client_logged.post(
        url, contact_post(first_name="Augusta", email_status="subscribed", **fields, **seen)
    )
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    assert ConsentEntry.objects.get(contact=contact, source="admin").previous_status == (
        "unsubscribed"
    )


def _loops_paths(sandbox) -> list[str]:
    """The paths of every request Loops received, oldest first (the sandbox's log)."""
    log = requests.get(f"{sandbox.url}/_sandbox/log?platform=loops", timeout=5).json()
    return [entry["path"] for entry in log]


def _opt_in_here(contact):
    """A person opts the contact in here, now (a ledger entry from the admin)."""
    consent_record(
        contact=contact,
        channel="email",
        status="subscribed",
        source="admin",
        occurred_at=timezone.now(),
        source_label="a person",
    )


def _push_to_loops(sandbox, destinations, contact):
    """One push of the contact to Loops; its state and the paths Loops received for it."""
    since = len(_loops_paths(sandbox))
    state = contact_push(
        contact_id=contact.pk, destination=destinations["loops"], context=PushContext("action")
    )
    return state, _loops_paths(sandbox)[since:]


def test_a_re_subscribe_asks_loops_first_and_goes_out_when_not_suppressed(world, sandbox):
    destinations, contact = world
    unsubscribe_on_loops(sandbox, contact)
    _opt_in_here(contact)
    state, paths = _push_to_loops(sandbox, destinations, contact)
    assert state.status == "synced", state.last_error
    assert paths == ["/v1/contacts/find", "/v1/contacts/suppression", "/v1/contacts/update"]
    assert subscribed_on(sandbox, "loops", contact)


def test_a_person_suppressed_on_loops_is_not_re_subscribed_by_an_opt_in_here(world, sandbox):
    destinations, contact = world
    sandbox_control(
        sandbox,
        "notify",
        platform="loops",
        action="hard_bounce",
        external_id=contact.external_id,
        event_time=int(time.time()) - 60,
    )
    contact.refresh_from_db()
    assert contact.email_status != "subscribed"  # Loops' hard bounce (and its unsubscribe)
    _opt_in_here(contact)  # afterwards
    state, paths = _push_to_loops(sandbox, destinations, contact)
    assert state.status == "failed"
    assert "suppression list" in state.last_error
    assert paths == ["/v1/contacts/find", "/v1/contacts/suppression"]
    assert not subscribed_on(sandbox, "loops", contact)


def test_a_push_that_does_not_re_subscribe_asks_loops_nothing_first(world, sandbox):
    destinations, contact = world
    contact.first_name = "Ada B."
    contact.save()
    state, paths = _push_to_loops(sandbox, destinations, contact)
    assert state.status == "synced", state.last_error
    assert paths == ["/v1/contacts/update"]
