"""A sync admin edits a destination and presses "Test connection" before saving: the page says
the test uses the saved settings instead of silently testing the old ones."""

import pytest

from tests.conftest import platform_with
from tests.sync.conftest import sandbox_requests

pytestmark = pytest.mark.browser


def test_test_connection_with_unsaved_edits_says_it_uses_the_saved_settings(
    page, login, role_user, destinations, sandbox
):
    target = destinations[platform_with()]
    login(role_user("Sync admins", "sam"))
    page.goto(f"/admin/sync/destination/{target.pk}/change/")
    notice = page.locator("#unsaved-edits-notice")
    assert not notice.is_visible()

    page.fill("#id_name", f"{target.name} (renamed)")
    before = sandbox_requests(sandbox)
    page.get_by_role("button", name="Test connection").click()
    notice.wait_for(state="visible")
    assert "uses the saved settings" in notice.inner_text()
    assert "Test connection" in notice.inner_text()
    assert sandbox_requests(sandbox) == before  # nothing was tested yet

    page.get_by_role("button", name="Test connection").click()  # again: the saved settings
    page.wait_for_load_state("load")
    page.locator(f"text={target.name}: ").first.wait_for()
    assert sandbox_requests(sandbox) > before
    assert page.locator("#id_name").input_value() == target.name  # the edit was not saved


def test_test_connection_without_edits_tests_at_once(page, login, role_user, destinations, sandbox):
    target = destinations[platform_with()]
    login(role_user("Sync admins", "sam"))
    page.goto(f"/admin/sync/destination/{target.pk}/change/")
    before = sandbox_requests(sandbox)
    page.get_by_role("button", name="Test connection").click()
    page.locator(f"text={target.name}: ").first.wait_for()
    assert sandbox_requests(sandbox) > before
    assert not page.locator("#unsaved-edits-notice").is_visible()
