"""A sync admin erases a person: the action, its confirmation page listing what goes where,
"Yes, erase", and the receipts, as a person clicks through them."""

import pytest

from contacts.models import Contact
from sync import connectors
from sync.models import EraseReceipt, Erasure
from tests.browser.conftest import save_screenshot

pytestmark = pytest.mark.browser


def test_sync_admin_erases_a_person_through_the_confirmation_page(
    page, login, role_user, destinations, sandbox, settings, immediate_tasks
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    person = Contact.objects.create(
        first_name="Zenobia", last_name="Quarrington", email="zenobia.q@example.org"
    )  # pushed on save to every destination
    Contact.objects.create(first_name="Keep", last_name="Me", email="keep.me@example.org")
    held = dict(person.sync_states.values_list("destination__platform", "remote_id"))
    assert all(held.get(p) for p in destinations), held
    login(role_user("Sync admins", "sam"))

    page.click("#nav-sidebar-apps a[href$='/contacts/contact/']")
    page.locator(f"input.action-select[value='{person.pk}']").check()
    page.select_option("select[name=action]", "erase_selected")
    page.click("button[name=index]")

    confirmation = page.locator("#erase-confirmation")
    confirmation.get_by_text("Erasing cannot be undone").wait_for()
    for platform, destination in destinations.items():
        row = confirmation.locator("tr", has_text=destination.name)
        assert row.count() == 1, destination.name
        if connectors.get_class(platform).supports_delete:
            assert "then read it back" in row.inner_text()
        else:
            assert "by hand" in row.inner_text() and held[platform] in row.inner_text()
    save_screenshot(page, "erase-confirmation")
    assert Contact.objects.filter(pk=person.pk).exists()  # nothing happens before "Yes"
    page.get_by_role("button", name="Yes, erase").click()

    page.get_by_text("is under way").wait_for()
    assert list(Contact.objects.values_list("first_name", flat=True)) == ["Keep"]
    page.get_by_role("link", name="its page").click()
    page.get_by_text("Deleted, confirmed gone").first.wait_for()
    erasure = Erasure.objects.get()
    assert erasure.state == Erasure.State.DONE
    outcomes = {r.platform: r.outcome for r in erasure.receipts.all()}
    for platform in destinations:
        expected = (
            EraseReceipt.Outcome.DELETED
            if connectors.get_class(platform).supports_delete
            else EraseReceipt.Outcome.BY_HAND
        )
        assert outcomes[platform] == expected, platform
    assert "zenobia" not in page.content().lower()
