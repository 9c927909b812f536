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
    errors.evaluate("row => window.scrollTo(0, row.getBoundingClientRect().top + scrollY - 450)")
    save_screenshot(page, "import-preview", full_page=False)  # the table runs far to the right
    assert Contact.objects.count() == 0
