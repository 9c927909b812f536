"""A contact's page shows its consent ledger as a timeline: a platform's opt-out, an import's
and a person's changes, newest first, with who made each; a change a person makes on the page
appears at the top after saving."""

import datetime

import pytest
from django.utils import timezone

from contacts.consent import consent_record
from contacts.models import Contact
from tests.browser.conftest import save_screenshot

pytestmark = pytest.mark.browser


def test_marketing_staff_see_the_consent_timeline_and_their_change_joins_it(
    page, login, role_user, settings
):
    settings.SYNC_ON_SAVE_MODE = "queued"  # no destination here: nothing to push
    contact = Contact.objects.create(
        first_name="Grace", last_name="Hopper", email="grace@example.com"
    )
    now = timezone.now()
    consent_record(
        contact=contact,
        channel="email",
        status="subscribed",
        source="import",
        source_label="import by ops",
        occurred_at=now - datetime.timedelta(days=2),
        previous_status="",
    )
    consent_record(
        contact=contact,
        channel="email",
        status="unsubscribed",
        source="platform",
        source_label="Loops live",
        occurred_at=now - datetime.timedelta(days=1),
        detail="contact.unsubscribed",
    )
    consent_record(  # older than the opt-out: kept, not applied
        contact=contact,
        channel="email",
        status="subscribed",
        source="platform",
        source_label="Cendyn live",
        occurred_at=now - datetime.timedelta(days=1, hours=1),
    )
    login(role_user("Marketing staff", "marta"))
    page.goto(f"/admin/contacts/contact/{contact.pk}/change/")

    entries = page.locator("#consent-timeline li")
    assert entries.count() == 3
    newest = entries.nth(0)
    assert "A platform event: Loops live" in newest.inner_text()
    assert "subscribed" in newest.locator(".consent-previous").inner_text()
    assert newest.locator(".sync-failed").inner_text() == "unsubscribed"
    stale = entries.nth(1)
    assert "not applied" in stale.inner_text() and "Cendyn live" in stale.inner_text()
    assert "An import: import by ops" in entries.nth(2).inner_text()

    page.select_option("#id_email_status", "subscribed")
    page.click("button[name=_continue]")
    page.get_by_text("was changed successfully").wait_for()
    entries = page.locator("#consent-timeline li")
    assert entries.count() == 4
    top = entries.nth(0)
    assert "A person in the admin: marta" in top.inner_text()
    assert top.locator(".consent-previous").inner_text() == "unsubscribed"
    assert top.locator(".sync-synced").inner_text() == "subscribed"
    contact.refresh_from_db()
    assert contact.email_status == "subscribed"
    page.locator("#consent-timeline-card").scroll_into_view_if_needed()
    save_screenshot(page, "consent-timeline", full_page=False)
