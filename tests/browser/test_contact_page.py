"""Marketing staff add a contact with its inline rows and see where the platforms hold it."""

import pytest

from contacts.models import Contact, CustomFieldDefinition, Group
from tests.browser.conftest import save_screenshot
from tests.sync.conftest import PLATFORMS, sandbox_store

pytestmark = pytest.mark.browser


def _add_inline_row(page, prefix):
    page.click(f"#{prefix}-group .add-row")
    # unfold's inline: each row a .form-group, the template row .empty-form
    return page.locator(f"#{prefix}-group .form-group:not(.empty-form)").last


def _stored_ids(sandbox, platform):
    """Every id the platform's store holds for its contacts, as text."""
    return {str(contact["id"]) for contact in sandbox_store(sandbox, platform)["contacts"]}


def test_marketing_staff_adds_a_contact_and_sees_its_remote_ids(
    page, login, role_user, destinations, sandbox, settings
):
    settings.SYNC_ON_SAVE_MODE = "immediate"
    CustomFieldDefinition.objects.create(name="loyaltyLevel", type="string")
    Group.objects.create(name="VIP")
    login(role_user("Marketing staff", "marta"))

    page.click("#nav-sidebar-apps a[href$='/contacts/contact/']")
    page.click("a.addlink[href$='/contacts/contact/add/']")
    page.fill("#id_first_name", "Ada")
    page.fill("#id_last_name", "Lovelace")
    page.fill("#id_email", "ada.lovelace@example.com")
    page.select_option("#id_country", "GB")
    page.fill("#id_phone", "07400 123456")
    channel = _add_inline_row(page, "channels")
    channel.locator("select[name$='-type']").select_option("webpush")
    channel.locator("input[name$='-value']").fill("subscription-ada-1")
    custom = _add_inline_row(page, "custom_values")
    custom.locator("select[name$='-definition']").select_option(label="loyaltyLevel")
    custom.locator("input[name$='-value']").fill("Gold")
    membership = _add_inline_row(page, "memberships")
    membership.locator("select[name$='-group']").select_option(label="VIP")
    url = _add_inline_row(page, "external_urls")
    url.locator("input[name$='-ref']").fill("crm")
    url.locator("input[name$='-url']").fill("https://crm.example.com/c/ada")
    url.locator("input[name$='-label']").fill("CRM")
    page.click("button[name=_continue]")

    page.get_by_text("was added successfully").wait_for()
    contact = Contact.objects.get(email="ada.lovelace@example.com")
    assert contact.phone == "+447400123456"
    assert [c.value for c in contact.channels.all()] == ["subscription-ada-1"]
    assert contact.custom_values.get().value == "Gold"
    assert [g.name for g in contact.groups.all()] == ["VIP"]
    assert contact.external_urls.get().url == "https://crm.example.com/c/ada"

    rows = page.locator("#sync-panel tbody tr")
    assert rows.count() == len(PLATFORMS)
    for platform, destination in destinations.items():
        row = rows.filter(has_text=destination.name)
        status = row.locator(".sync-badge").first.inner_text()
        assert status == "Synced", row.locator(".sync-error").inner_text()
        remote_id = row.locator(".sync-remote-id").inner_text().strip()
        assert remote_id in _stored_ids(sandbox, platform), platform
    save_screenshot(page, "contact")

    page.fill("#id_phone", "12345")
    page.click("button[name=_continue]")
    error = page.locator(".field-phone .text-red-600")
    assert "not a valid phone number" in error.inner_text()
    contact.refresh_from_db()
    assert contact.phone == "+447400123456"
