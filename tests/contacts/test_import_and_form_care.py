"""An import that keeps what it does not mean to change (the stored email's spelling), says
before confirming which blank cells would clear a value, and reads a time zone in any case;
the contact form's time zone is a searchable picker that accepts any case."""

import re

import pytest
from django.urls import reverse

from contacts.models import Contact
from tests.contacts.admin_post import contact_post
from tests.contacts.test_import_export import _confirm, _csv, _upload

pytestmark = pytest.mark.django_db

HEADER = ["external_id", "first_name", "last_name", "email", "city", "time_zone"]


def test_matching_by_email_keeps_the_stored_spelling(admin_client_logged):
    Contact.objects.create(
        external_id="c-1", first_name="Jane", last_name="Doe", email="Jane.Doe@example.com"
    )
    content = _csv(HEADER, ["", "Jane", "Doe", "JANE.DOE@EXAMPLE.COM", "Leeds", ""])
    preview = _upload(admin_client_logged, content)
    (row,) = preview.context["result"].valid_rows()
    assert row.import_type == "update"
    _confirm(admin_client_logged, preview)
    contact = Contact.objects.get()
    assert contact.email == "Jane.Doe@example.com" and contact.city == "Leeds"


def test_a_row_differing_only_in_the_emails_case_is_unchanged(admin_client_logged):
    Contact.objects.create(external_id="c-1", first_name="Jane", email="jane@example.com")
    content = _csv(["external_id", "first_name", "email"], ["c-1", "Jane", "JANE@example.com"])
    (row,) = _upload(admin_client_logged, content).context["result"].valid_rows()
    assert row.import_type == "skip"


def test_blank_cells_that_would_clear_values_are_listed_before_confirming(admin_client_logged):
    Contact.objects.create(
        external_id="c-1",
        first_name="Jane",
        last_name="Doe",
        email="jane@example.com",
        city="Leeds",
    )
    content = _csv(HEADER, ["c-1", "Jane", "", "jane@example.com", "", ""])
    page = _upload(admin_client_logged, content).content.decode()
    notice = page.split('id="import-clearings"')[1].split("</div>")[0]
    assert "2 blank cells would clear a stored value" in notice
    assert "Row 1, last_name: “Doe” would be cleared" in notice
    assert "Row 1, city: “Leeds” would be cleared" in notice
    assert "first_name" not in notice and "time_zone" not in notice  # unchanged, or was blank


def test_no_notice_when_nothing_is_cleared(admin_client_logged):
    content = _csv(HEADER, ["", "New", "Person", "new@example.com", "", ""])
    page = _upload(admin_client_logged, content).content.decode()
    assert 'id="import-clearings"' not in page


def test_an_import_reads_a_time_zone_in_any_case(admin_client_logged):
    content = _csv(HEADER, ["", "Ann", "Lee", "ann@example.com", "", "europe/london"])
    _confirm(admin_client_logged, _upload(admin_client_logged, content))
    assert Contact.objects.get().time_zone == "Europe/London"


def test_the_forms_time_zone_is_a_searchable_picker_that_ignores_case(admin_client_logged):
    add = reverse("admin:contacts_contact_add")
    page = admin_client_logged.get(add).content.decode()
    select = re.search(r'<select[^>]*name="time_zone"[^>]*>', page).group(0)
    assert "unfold-admin-autocomplete" in select  # unfold's select2: type to search
    assert '<option value="Europe/London">' in page.split('name="time_zone"')[1]

    response = admin_client_logged.post(add, contact_post(time_zone="europe/london"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Contact.objects.get().time_zone == "Europe/London"
