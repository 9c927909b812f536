"""A sync admin previews a push from the contact list: per destination what it would cost and
the exact requests, credentials redacted; nothing is sent."""

import pytest

from contacts.demo import seed_demo_contacts
from sync.redaction import REDACTED
from tests.conftest import platform_with
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.browser


def test_sync_admin_previews_a_push_and_nothing_is_sent(
    page, login, role_user, destinations, sandbox, sandbox_env
):
    seed_demo_contacts(30)
    target = destinations[platform_with(bulk=True)]
    login(role_user("Sync admins", "sam"))

    page.click("#nav-sidebar-apps a[href$='/contacts/contact/']")
    page.check("#action-toggle")
    assert page.locator("input.action-select:checked").count() == 30
    page.select_option("select[name=action]", "preview_push")
    page.select_option("select[name=destination]", label=target.name)
    page.click("button[name=index]")

    card = page.locator(".sync-dry-run")
    assert card.count() == 1 and card.get_attribute("data-destination") == target.name
    assert card.locator(".sync-selected").inner_text() == "30"
    assert card.locator(".sync-to-send").inner_text() == "30"
    assert card.locator(".sync-unchanged").inner_text() == "0"
    assert int(card.locator(".sync-requests").inner_text()) > 0
    assert "requests/s" in card.locator(".sync-estimate").inner_text()
    assert page.get_by_text("The requests for the first 20 contacts to send (of 30)").count() == 1
    lines = card.locator(".sync-request-line").all_inner_texts()
    assert lines and all(line.startswith(("POST ", "GET ", "PUT ")) for line in lines), lines
    headers = " ".join(card.locator(".sync-headers").all_inner_texts())
    assert REDACTED in headers
    assert not any(secret in page.content() for secret in sandbox_env.values() if len(secret) > 3)
    assert sandbox_requests(sandbox) == 0
