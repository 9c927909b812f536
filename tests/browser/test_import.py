"""Marketing staff import a CSV file and see the bad row's error in the preview."""

import pytest

from contacts.models import Contact, Group
from tests.browser.conftest import save_screenshot

pytestmark = pytest.mark.browser

CSV = """external_id,first_name,last_name,email,phone,country,groups
,Ada,Lovelace,ada@example.com,07400 123456,GB,VIP
,Alan,Turing,alan@example.com,12345,US,VIP
,Grace,Hopper,grace@example.com,+1 201 555 0123,US,
"""


def test_import_preview_shows_the_bad_rows_error(page, login, role_user, tmp_path):
    Group.objects.create(name="VIP")
    upload = tmp_path / "contacts.csv"
    upload.write_text(CSV)
    login(role_user("Marketing staff", "marta"))

    page.click("#nav-sidebar-apps a[href$='/contacts/contact/']")
    page.click("a[href$='/contacts/contact/import/']:text-is('Import')")
    page.set_input_files("input[type=file][name=import_file]", str(upload))
    if page.locator("select[name=format]").count():
        page.select_option("select[name=format]", label="csv")
    page.click("form[enctype='multipart/form-data'] button[type=submit]")
    page.wait_for_selector("table.import-preview")

    # unfold's preview: per invalid row, its errors on a line above its values
    invalid = page.locator("table.import-preview tbody")
    assert invalid.count() == 1
    errors, values = invalid.first.locator("tr").all()
    assert values.locator("td").first.inner_text().strip() == "2"
    assert errors.is_visible()
    messages = errors.locator(".errornote").all_inner_texts()
    assert len(messages) == 1 and messages[0].startswith("phone:"), messages
    assert "not a valid phone number" in messages[0]
    assert page.locator("input[name=confirm]").count() == 0  # nothing to confirm yet

    # Listed above the table, each error linked to its cell, which shows it too.
    listed = page.locator(".import-error-list li").all_inner_texts()
    assert len(listed) == 1 and listed[0].startswith("Row 2, phone:"), listed
    cell = values.locator("td[data-column=phone]")
    assert "import-cell-error" in cell.get_attribute("class")
    assert "not a valid phone number" in cell.inner_text()
    page.locator(".import-error-list a").first.click()
    assert page.url.endswith("#import-cell-2-phone")

    # The wide table scrolls inside its own box; the page itself does not scroll sideways.
    box = page.locator(".import-scroll").first
    inner, outer = box.evaluate("b => [b.scrollWidth, b.clientWidth]")
    assert inner > outer, (inner, outer)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        document, viewport = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert document <= viewport, f"the preview page is {document} px wide at {width} px"
    page.set_viewport_size({"width": 1366, "height": 900})
    page.locator(".import-error-list").evaluate(
        "list => window.scrollTo(0, list.getBoundingClientRect().top + scrollY - 250)"
    )
    save_screenshot(page, "import-preview", full_page=False)
    assert Contact.objects.count() == 0
