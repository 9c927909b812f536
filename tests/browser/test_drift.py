"""A sync admin sees on the dashboard what a read-back found changed on a platform, and
presses "Re-push drifted"; the contact's sync panel says which fields drifted."""

import pytest
import requests

from contacts.models import Contact
from sync import services
from sync.models import ContactDrift, SyncStatus
from tests.browser.conftest import save_screenshot
from tests.conftest import platform_with

pytestmark = pytest.mark.browser


def test_a_sync_admin_re_pushes_what_drifted_on_the_platform(
    page, login, role_user, sandbox_destination, sandbox, immediate_tasks
):
    # a platform without a bulk call: Yespo answers a repeat of the same body within a minute
    # as already applied (409), and this test re-pushes at once
    slug = platform_with(bulk=False)
    destination = sandbox_destination(slug)
    contact = Contact.objects.create(first_name="Ada", last_name="Lovelace", email="a@example.com")
    state = services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    # (pushed on save already where the destination pushes on save)
    assert state.status in (SyncStatus.SYNCED, SyncStatus.UNCHANGED), state.last_error
    view = f"{sandbox.url}/_sandbox/contact/{slug}/{contact.external_id}"
    assert requests.post(view, json={"last_name": "Byron"}, timeout=5).status_code == 200
    report = services.destination_reconcile(destination=destination, contact_ids=[contact.pk])
    assert dict(report.fields) == {"last_name": 1}

    login(role_user("Sync admins", "sam"))
    page.goto(f"/admin/contacts/contact/{contact.pk}/change/")
    row = page.locator("#sync-panel tr", has_text=destination.name)
    assert row.locator(".sync-drifted").inner_text() == "drifted: last name"

    page.goto("/admin/")
    page.click("#sync-dashboard-link a")
    page.wait_for_url("**/admin/sync/dashboard/")
    card = page.locator(f"#destination-{destination.pk}")
    assert card.locator(".sync-drifted").inner_text() == "drifted 1"
    save_screenshot(page, "dashboard-drift")
    card.get_by_role("button", name="Re-push 1 drifted").click()
    page.wait_for_url("**/admin/sync/dashboard/")
    assert "1 drifted contacts queued" in page.content()
    assert requests.get(view, timeout=5).json()["last_name"] == "Lovelace"
    assert not ContactDrift.objects.exists()
    assert page.locator(f"#destination-{destination.pk} .sync-drifted").count() == 0


def test_a_manager_sees_the_drift_and_no_re_push_button(
    page, login, role_user, sandbox_destination, sandbox
):
    slug = platform_with()
    destination = sandbox_destination(slug)
    contact = Contact.objects.create(first_name="Ada", last_name="Lovelace", email="a@example.com")
    services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    view = f"{sandbox.url}/_sandbox/contact/{slug}/{contact.external_id}"
    requests.post(view, json={"first_name": "Augusta"}, timeout=5)
    services.destination_reconcile(destination=destination, contact_ids=[contact.pk])

    login(role_user("Managers", "mia"))
    page.click("#sync-dashboard-link a")
    page.wait_for_url("**/admin/sync/dashboard/")
    card = page.locator(f"#destination-{destination.pk}")
    assert card.locator(".sync-drifted").inner_text() == "drifted 1"
    assert page.locator("form[action*='/repush-drifted/']").count() == 0
