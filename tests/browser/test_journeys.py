"""Each role's journey, at 1366 px and at 390 px, without sideways scroll on any page it
opens (the document's scroll width is at most the viewport's; a wide table scrolls inside its
own box):
- marketing staff add a contact with inline rows, then edit it, and read per destination
  what became of each save (a platform refusing it included);
- a sync admin previews a push (dry run, nothing sent), bulk-pushes, cancels the run,
  retries a failed contact and configures a destination;
- a manager reads the dashboard and a contact, finds no change button, and a POST from the
  page is refused (403).
The background import's journey (about 5,000 rows, skipped rows downloaded) is in
test_background_import.py."""

import pytest
import requests

from contacts.demo import seed_demo_contacts
from contacts.models import Contact, Group
from sync.models import ContactSyncState, Destination, SyncRun, SyncStatus
from tests.browser.conftest import save_screenshot
from tests.browser.test_contact_page import _add_inline_row
from tests.conftest import platform_with
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.browser

WIDTHS = {"wide": 1366, "narrow": 390}
SCROLL_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture(params=list(WIDTHS))
def width(request, page):
    """The journey's screen width; the page is set to it."""
    page.set_viewport_size({"width": WIDTHS[request.param], "height": 900})
    return request.param


def _fits(page, what):
    page.wait_for_load_state("networkidle")
    document, viewport = page.evaluate(SCROLL_WIDTH)
    assert document <= viewport, f"{what} is {document} px wide in a {viewport} px window"


def _messages(page) -> str:
    return " ".join(
        page.locator("#main .messagelist, .messagelist, [role=alert]").all_inner_texts()
    )


def test_marketing_staff_add_and_edit_a_contact_and_read_each_destinations_outcome(
    page, login, role_user, destinations, sandbox, settings, width
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    Group.objects.create(name="VIP")
    login(role_user("Marketing staff", "marta"))

    page.goto("/admin/contacts/contact/add/")
    _fits(page, "the add page")
    page.fill("#id_first_name", "Grace")
    page.fill("#id_last_name", "Hopper")
    page.fill("#id_email", "grace.hopper@example.com")
    page.select_option("#id_country", "US")
    membership = _add_inline_row(page, "memberships")
    membership.locator("select[name$='-group']").select_option(label="VIP")
    url = _add_inline_row(page, "external_urls")
    url.locator("input[name$='-ref']").fill("crm")
    url.locator("input[name$='-url']").fill("https://crm.example.com/c/grace")
    _fits(page, "the add page with two new inline rows")
    page.click("button[name=_continue]")

    page.get_by_text("was added successfully").wait_for()
    names = ", ".join(d.name for d in Destination.objects.all())  # as the message lists them
    page.get_by_text(f"Synced to {names}.").wait_for()
    contact = Contact.objects.get(email="grace.hopper@example.com")
    assert [g.name for g in contact.groups.all()] == ["VIP"]
    assert contact.external_urls.get().ref == "crm"
    badges = page.locator("#sync-panel tbody tr .sync-badge").all_inner_texts()
    assert badges.count("Synced") == len(destinations), badges
    _fits(page, "the contact page after the save")
    save_screenshot(page, f"journey-marketing-{width}", full_page=False)

    # One platform refuses the next push: the page says which, and why, the rest synced.
    refusing = destinations[platform_with(bulk=False)]
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"platform": refusing.platform, "error_rate": 1.0, "error_status": 400},
        timeout=5,
    ).raise_for_status()
    page.fill("#id_first_name", "Gracie")  # a field every platform is sent
    page.click("button[name=_continue]")
    page.get_by_text("was changed successfully").wait_for()
    page.get_by_text(f"{refusing.name} refused it:").wait_for()
    others = [d.name for d in Destination.objects.all() if d.pk != refusing.pk]
    page.get_by_text(f"Synced to {', '.join(others)}.").wait_for()
    row = page.locator(f"#sync-panel tr[data-destination='{refusing.pk}']")
    assert row.locator(".sync-badge").first.inner_text() == "Failed"
    assert Contact.objects.get(pk=contact.pk).first_name == "Gracie"
    _fits(page, "the contact page after a refused push")


def test_sync_admin_previews_pushes_cancels_retries_and_configures(
    page, login, role_user, destinations, sandbox, settings, width
):
    settings.SYNC_ON_SAVE_MODE = "immediate"  # the contact page's Retry pushes at once
    seed_demo_contacts(6)
    target = destinations[platform_with(bulk=False)]
    login(role_user("Sync admins", "sam"))

    # Preview (a dry run): what a push would send; nothing is sent.
    page.goto("/admin/contacts/contact/")
    _fits(page, "the contact list")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "preview_push")
    page.select_option("select[name=destination]", label=target.name)
    page.click("button[name=index]")
    card = page.locator(".sync-dry-run")
    assert card.locator(".sync-to-send").inner_text() == "6"
    _fits(page, "the push preview")
    assert sandbox_requests(sandbox) == 0

    # Bulk push: queued for the workers (none runs here, so the run waits), then cancelled.
    page.goto("/admin/contacts/contact/")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "push_selected")
    page.select_option("select[name=destination]", label=target.name)
    page.click("button[name=index]")
    page.get_by_text(f"6 pushes queued for {target.name}").wait_for()
    page.goto("/admin/sync/dashboard/")
    run = SyncRun.objects.get()
    page.locator(f"form[action$='/cancel/{run.pk}/'] button").click()
    page.get_by_text(f"Run {run.pk} cancelled").wait_for()
    _fits(page, "the dashboard")
    save_screenshot(page, f"journey-sync-admin-{width}", full_page=False)
    assert sandbox_requests(sandbox) == 0

    # Retry one contact the platform had refused, from its page.
    contact = Contact.objects.order_by("pk").first()
    ContactSyncState.objects.update_or_create(
        contact=contact,
        destination=target,
        defaults={"status": SyncStatus.FAILED, "last_error": "HTTP 503: try later"},
    )
    page.goto(f"/admin/contacts/contact/{contact.pk}/change/")
    _fits(page, "the contact page")
    row = page.locator(f"#sync-panel tr[data-destination='{target.pk}']")
    row.get_by_role("button", name="Retry").click()
    page.get_by_text(f"Pushed to {target.name}: synced.").wait_for()
    state = ContactSyncState.objects.get(contact=contact, destination=target)
    assert state.status == SyncStatus.SYNCED and state.remote_id

    # Configure the destination: a longer timeout, saved.
    page.goto(f"/admin/sync/destination/{target.pk}/change/")
    _fits(page, "the destination page")
    page.fill("#id_timeout", "25")
    page.click("button[name=_continue]")
    page.get_by_text("was changed successfully").wait_for()
    assert Destination.objects.get(pk=target.pk).timeout == 25
    _fits(page, "the destination page after its save")


def test_manager_reads_the_dashboard_and_a_contact_and_can_change_nothing(
    page, login, role_user, destinations, width
):
    seed_demo_contacts(4)
    target = destinations[platform_with()]
    contacts = list(Contact.objects.order_by("pk"))
    for contact in contacts:
        ContactSyncState.objects.create(
            contact=contact,
            destination=target,
            status=SyncStatus.FAILED if contact == contacts[0] else SyncStatus.SYNCED,
            last_error="HTTP 400: refused" if contact == contacts[0] else "",
        )
    login(role_user("Managers", "mia"))

    page.goto("/admin/sync/dashboard/")
    page.locator("#sync-overview").wait_for()
    _fits(page, "the dashboard")
    assert page.locator(f"#sync-overview tr[data-destination='{target.pk}']").count() == 1
    change = "form[action*='/retry/'], form[action*='/cancel/'], form[action*='/repush-drifted/']"
    assert page.locator(change).count() == 0
    save_screenshot(page, f"journey-manager-{width}", full_page=False)

    # A POST made from the page anyway (a forged form, a stale tab) is refused.
    refused = page.evaluate(
        """async (url) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const answer = await fetch(url, {method: "POST", credentials: "same-origin",
                                             headers: {"X-CSRFToken": token}});
            return [answer.status, await answer.text()];
        }""",
        f"/admin/sync/dashboard/retry/{target.pk}/",
    )
    assert refused[0] == 403 and "CSRF" not in refused[1], refused
    assert ContactSyncState.objects.filter(status=SyncStatus.FAILED).count() == 1

    page.goto(f"/admin/contacts/contact/{contacts[0].pk}/change/")
    _fits(page, "the contact page")
    assert page.locator("#sync-panel").get_by_text("HTTP 400: refused").count() == 1
    assert page.locator("button[name=_save], button[name=_continue]").count() == 0
    assert page.locator("#sync-panel button").count() == 0  # no Push now, no Retry
    page.goto("/admin/contacts/contact/")
    _fits(page, "the contact list")
    assert page.locator("a[href$='/contacts/contact/add/']").count() == 0
