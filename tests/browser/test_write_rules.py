"""A sync admin lets the platform own the first name: a write rule set on the destination's
page, by clicking, as a person would."""

import pytest

from sync.models import NativeFieldRule
from tests.browser.conftest import save_screenshot
from tests.sync.conftest import PLATFORMS

pytestmark = pytest.mark.browser


def test_sync_admin_sets_a_native_write_rule_and_reads_what_cleared_values_do(
    page, login, role_user, sandbox_destination
):
    platform = PLATFORMS[0]
    destination = sandbox_destination(platform)
    cls = destination.connector_class
    login(role_user("Sync admins", "sam"))
    page.goto(f"/admin/sync/destination/{destination.pk}/change/")

    page.click("#native_field_rules-group .add-row")
    row = page.locator("#native_field_rules-group .form-group:not(.empty-form)").last
    row.locator("select[name$='-field']").select_option("first_name")
    row.locator("select[name$='-write_rule']").select_option("create")
    page.click("button[name=_continue]")
    page.get_by_text("was changed successfully").wait_for()

    rule = NativeFieldRule.objects.get(destination=destination)
    assert (rule.field, rule.write_rule) == ("first_name", "create")
    notice = (
        f"Cleared values stay on {cls.label} for:"
        if cls.uncleared_fields
        else f"A value cleared here is cleared on {cls.label}."
    )
    page.get_by_text(notice).first.wait_for()
    save_screenshot(page, "destination-write-rules")
