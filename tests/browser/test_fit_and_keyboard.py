"""Pages that fit (no sideways scroll at 390 px, every list column at 1366 px), the contact
list's compact sync cell and its tooltip, "Push now" and "Retry" on the contact's page, the
keyboard (focus into a new inline row, a visible focus ring) and the styled 403 page."""

import pytest
from django.utils import timezone

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync.models import ContactSyncState, SyncAttempt, SyncStatus
from tests.browser.conftest import save_screenshot
from tests.conftest import platform_with

pytestmark = pytest.mark.browser

SCROLL_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture
def pushed(destinations, settings):
    """Twelve contacts pushed to every destination, one of them refused by one platform."""
    settings.SYNC_ON_SAVE_MODE = "immediate"
    seed_demo_contacts(12)
    contacts = list(Contact.objects.order_by("pk"))
    target = destinations[platform_with(bulk=False)]
    for contact in contacts:
        for destination in destinations.values():
            ContactSyncState.objects.create(
                contact=contact,
                destination=destination,
                status=SyncStatus.SYNCED,
                remote_id=f"remote-{contact.pk}-{destination.pk}",
            )
    ContactSyncState.objects.filter(contact=contacts[0], destination=target).update(
        status=SyncStatus.FAILED, remote_id="", last_error="HTTP 400: lastName is required"
    )
    SyncAttempt.objects.create(
        destination=target,
        contact=contacts[0],
        external_id=contacts[0].external_id,
        trigger="save",
        outcome="failed",
        http_status=400,
        error="HTTP 400: lastName is required",
        started_at=timezone.now(),
    )
    return contacts, target


def _pages(contact):
    return {
        "contact list": "/admin/contacts/contact/",
        "contact page": f"/admin/contacts/contact/{contact.pk}/change/",
        "dashboard": "/admin/sync/dashboard/",
    }


@pytest.mark.parametrize("role", ["Sync admins", "Managers"])
def test_no_sideways_scroll_at_390_px(page, login, role_user, pushed, role):
    contacts, _ = pushed
    login(role_user(role, "narrow"))
    page.set_viewport_size({"width": 390, "height": 844})
    for name, url in _pages(contacts[0]).items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        width, viewport = page.evaluate(SCROLL_WIDTH)
        assert width <= viewport, f"{name} at 390 px is {width} px wide"


def test_every_list_column_is_visible_at_1366_px(page, login, role_user, pushed):
    login(role_user("Sync admins", "wide"))
    page.goto("/admin/contacts/contact/")
    table = page.locator("#result_list")
    overflow = table.evaluate(
        "t => [t.scrollWidth, t.parentElement.clientWidth, t.parentElement.scrollWidth]"
    )
    assert overflow[0] <= overflow[1] and overflow[2] <= overflow[1], overflow
    right = page.evaluate("() => document.documentElement.clientWidth")
    for header in page.locator("#result_list thead th").all():
        box = header.bounding_box()
        assert box["x"] + box["width"] <= right, header.inner_text()
    height = page.locator("#result_list tbody tr").first.bounding_box()["height"]
    assert height < 70, f"a row is {height} px tall"  # one compact sync cell, no stacked badges
    save_screenshot(page, "contact-list", full_page=False)


def test_the_sync_cell_shows_each_destinations_status_in_its_tooltip(
    page, login, role_user, pushed
):
    contacts, target = pushed
    login(role_user("Marketing staff", "marta"))
    page.goto("/admin/contacts/contact/")
    row = page.locator("#result_list tbody tr", has_text=contacts[0].email)
    marks = row.locator(".sync-mark")
    assert marks.count() == len(ContactSyncState.objects.filter(contact=contacts[0]))
    failed = row.locator(f".sync-mark[data-destination='{target.pk}']")
    assert "sync-failed" in failed.get_attribute("class")
    tip = failed.locator(".sync-tip")
    assert not tip.is_visible()
    failed.hover()
    tip.wait_for(state="visible")
    assert target.name in tip.inner_text() and "lastName is required" in tip.inner_text()
    box, viewport = tip.bounding_box(), page.viewport_size
    assert 0 <= box["x"] and box["x"] + box["width"] <= viewport["width"]

    other = row.locator(".sync-mark.sync-synced").first
    other.focus()  # the keyboard reaches it too
    assert "Remote ID remote-" in other.locator(".sync-tip").inner_text()
    assert other.locator(".sync-tip").is_visible()


def test_sync_admin_pushes_now_and_retries_from_the_contact_page(
    page, login, role_user, pushed, sandbox
):
    contacts, target = pushed
    contact = contacts[0]
    login(role_user("Sync admins", "sam"))
    page.goto(f"/admin/contacts/contact/{contact.pk}/change/")
    panel = page.locator("#sync-panel")
    row = panel.locator(f"tr[data-destination='{target.pk}']")
    assert row.locator(".sync-badge").first.inner_text() == "Failed"
    assert panel.bounding_box()["y"] < page.locator("#id_first_name").bounding_box()["y"]

    row.get_by_role("button", name="Retry").click()
    page.get_by_text(f"Pushed to {target.name}: synced.").wait_for()
    row = page.locator(f"#sync-panel tr[data-destination='{target.pk}']")
    assert row.locator(".sync-badge").first.inner_text() == "Synced"
    assert row.get_by_role("button", name="Retry").count() == 0
    state = ContactSyncState.objects.get(contact=contact, destination=target)
    assert state.status == SyncStatus.SYNCED and state.remote_id

    row.get_by_role("button", name="Push now").click()
    page.get_by_text(f"Pushed to {target.name}: synced.").wait_for()
    assert SyncAttempt.objects.filter(contact=contact, destination=target).count() >= 3


def test_marketing_staff_see_no_push_buttons_and_no_links_they_cannot_open(
    page, login, role_user, pushed
):
    contacts, _ = pushed
    login(role_user("Marketing staff", "marta"))
    page.goto(f"/admin/contacts/contact/{contacts[0].pk}/change/")
    panel = page.locator("#sync-panel")
    assert panel.get_by_role("button").count() == 0
    assert panel.locator("a[href*='/syncattempt/']").count() == 0
    assert "Failed" in panel.inner_text()


def test_a_refused_page_is_the_admins_styled_403(page, login, role_user, pushed):
    login(role_user("Marketing staff", "marta"))
    attempt = SyncAttempt.objects.first()
    response = page.goto(f"/admin/sync/syncattempt/{attempt.pk}/change/")
    assert response.status == 403
    card = page.locator("#error-page")
    assert "You may not open this page" in card.inner_text()
    assert page.locator("#nav-sidebar-apps").is_visible()  # the admin's own page around it
    font = page.evaluate("() => getComputedStyle(document.body).fontFamily")
    assert "Inter" in font  # unfold's stylesheet applies
    card.get_by_role("link", name="Back to the start page").click()
    page.wait_for_url("**/admin/")


def test_focus_moves_into_a_new_inline_row_and_shows_a_ring(page, login, role_user, destinations):
    login(role_user("Marketing staff", "marta"))
    page.goto("/admin/contacts/contact/add/")
    page.click("#channels-group .add-row")
    new_row = page.locator("#channels-group .form-group:not(.empty-form)").last
    focused = page.evaluate("() => document.activeElement.name || ''")
    assert focused.startswith("channels-") and focused.endswith("-type"), focused
    assert new_row.locator("select[name$='-type']").evaluate("s => s === document.activeElement")

    page.click("#custom_values-group .add-row")
    focused = page.evaluate("() => document.activeElement.name || ''")
    assert focused.startswith("custom_values-") and focused.endswith("-definition"), focused

    # The keyboard's focus on a button shows a ring.
    page.locator("button[name=_continue]").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth, document.activeElement.name]; }"
    )
    assert outline[0] != "none" and outline[1] != "0px", outline


def test_the_contact_form_says_before_saving_which_platform_will_refuse_it(
    page, login, role_user, destinations
):
    from sync.connectors.base import PermanentError
    from sync.connectors.records import ContactRecord, RemoteState
    from sync.engine import destination_connector

    probe = ContactRecord(
        id=None, external_id="ct-probe", first_name="Ada", last_name="", email="ada@example.com"
    )
    refusing = []
    for destination in destinations.values():
        try:
            destination_connector(destination=destination, throttle=False).build_payload(
                probe, RemoteState()
            )
        except PermanentError:
            refusing.append(destination)
    if not refusing:
        pytest.skip("no platform refuses a contact without a last name")
    login(role_user("Marketing staff", "marta"))
    page.goto("/admin/contacts/contact/add/")
    page.fill("#id_first_name", "Ada")
    page.fill("#id_email", "ada@example.com")
    notice = page.locator("#sync-check")
    for destination in refusing:
        notice.locator(f".sync-check-refusal[data-destination='{destination.pk}']").wait_for()
    page.fill("#id_last_name", "Lovelace")
    page.wait_for_function(
        "() => !document.querySelector('#sync-check .sync-check-refusal')", timeout=5000
    )
    assert Contact.objects.count() == 0


def test_a_rows_sync_cell_is_one_tab_stop_and_the_arrows_walk_its_marks(
    page, login, role_user, pushed
):
    contacts, target = pushed
    login(role_user("Managers", "tab"))
    page.goto("/admin/contacts/contact/")
    row = page.locator("#result_list tbody tr", has_text=contacts[0].email)
    cell = row.locator(".sync-marks")
    label = cell.get_attribute("aria-label")
    for destination in ContactSyncState.objects.filter(contact=contacts[0]):
        assert destination.destination.name in label, label
    assert f"{target.name} failed" in label, label
    stops = page.evaluate(
        """() => [...document.querySelectorAll('#result_list .sync-marks')].map(
            cell => [...cell.querySelectorAll('*')].filter(e => e.tabIndex >= 0).length)"""
    )
    assert stops == [1] * len(contacts), stops

    marks = row.locator(".sync-mark")
    marks.first.focus()
    page.keyboard.press("Tab")  # out of the cell at once, however many destinations
    left = "() => !!document.activeElement.closest('.sync-mark')"
    assert not page.evaluate(left), "Tab stayed among the marks"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.dataset.destination") == (
        marks.first.get_attribute("data-destination")
    )

    failed_index = [m.get_attribute("data-destination") for m in marks.all()].index(str(target.pk))
    for _ in range(failed_index):
        page.keyboard.press("ArrowRight")
    focused = row.locator(f".sync-mark[data-destination='{target.pk}']")
    assert page.evaluate("() => document.activeElement.dataset.destination") == str(target.pk)
    tip = focused.locator(".sync-tip")
    tip.wait_for(state="visible")
    assert "lastName is required" in tip.inner_text()
    page.keyboard.press("End")
    assert page.evaluate("() => document.activeElement.dataset.destination") == (
        marks.last.get_attribute("data-destination")
    )
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")  # back to the mark left focused (a roving tab stop)
    assert page.evaluate("() => document.activeElement.dataset.destination") == (
        marks.last.get_attribute("data-destination")
    )
