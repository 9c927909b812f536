"""The contact's history page: who changed what, on the contact and on its inline rows."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ExternalUrl, Group
from tests.contacts.admin_post import contact_post

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:contacts_contact_add")


def _change_url(contact):
    return reverse("admin:contacts_contact_change", args=[contact.pk])


def _history(client, contact) -> str:
    response = client.get(reverse("admin:contacts_contact_history", args=[contact.pk]))
    assert response.status_code == 200
    return " ".join(response.content.decode().split())  # whitespace as one space


def _saved(response):
    assert response.status_code == 302, response.context["adminform"].form.errors
    return Contact.objects.order_by("-pk").first()


def test_contact_change_shows_user_and_changed_field(admin_client_logged):
    contact = _saved(admin_client_logged.post(ADD_URL, contact_post()))
    _saved(
        admin_client_logged.post(
            _change_url(contact),
            contact_post(contact, external_id=contact.external_id, first_name="Johnny"),
        )
    )
    page = _history(admin_client_logged, contact)
    table = page.split('id="change-history"')[1].split("</table>")[0]
    assert "root" in table
    # unfold's list (its simple_history app): the field, the old value, an arrow icon, the new
    changes = " ".join(re.sub(r"<[^>]+>", " ", table).split())
    assert "First name: John arrow_right_alt Johnny" in changes
    assert "version" not in table.lower()  # bookkeeping, not a change a person made


def test_child_changes_show_on_the_contact_history(admin_client_logged):
    group = Group.objects.create(name="Newsletter Subscribers")
    contact = _saved(
        admin_client_logged.post(
            ADD_URL,
            contact_post(
                external_urls=[
                    {"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}
                ],
            ),
        )
    )
    url = ExternalUrl.objects.get()
    data = contact_post(contact, external_id=contact.external_id, memberships=[{"group": group.pk}])
    data["external_urls-0-url"] = "https://crm.example.com/c/2"
    _saved(admin_client_logged.post(_change_url(contact), data))
    assert ExternalUrl.objects.get(pk=url.pk).url == "https://crm.example.com/c/2"

    page = _history(admin_client_logged, contact)
    children = page.split('id="child-history"')[1]
    rows = children.split("<tr>")[2:]
    changed_url = next(r for r in rows if "External URL: crm" in r and "Changed" in r)
    assert "root" in changed_url
    assert (
        "<strong>URL:</strong> https://crm.example.com/c/1&nbsp;&rarr;&nbsp;"
        "https://crm.example.com/c/2"
    ) in changed_url
    assert "Label" not in changed_url  # unchanged fields are not listed
    added_group = next(r for r in rows if "Group membership: Newsletter Subscribers" in r)
    assert "Created" in added_group and "root" in added_group


def test_deleted_child_shows_as_deleted(admin_client_logged):
    contact = _saved(
        admin_client_logged.post(
            ADD_URL,
            contact_post(
                external_urls=[
                    {"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}
                ],
            ),
        )
    )
    data = contact_post(contact, external_id=contact.external_id)
    data["external_urls-0-DELETE"] = "on"
    _saved(admin_client_logged.post(_change_url(contact), data))
    assert not ExternalUrl.objects.exists()
    children = _history(admin_client_logged, contact).split('id="child-history"')[1]
    deleted = next(r for r in children.split("<tr>") if "Deleted" in r)
    assert "External URL: crm" in deleted and "root" in deleted


def test_imported_change_is_recorded_with_the_importing_user(admin_client_logged):
    contact = Contact.objects.create(external_id="EM-1", first_name="Ada")
    upload_url = reverse("admin:contacts_contact_import")
    upload = SimpleUploadedFile(
        "c.csv", b"external_id,first_name\nEM-1,Augusta\n", content_type="text/csv"
    )
    preview = admin_client_logged.post(
        upload_url, {"resource": "0", "format": "0", "import_file": upload}
    )
    admin_client_logged.post(
        reverse("admin:contacts_contact_process_import"),
        dict(preview.context["confirm_form"].initial),
    )
    latest = contact.history.first()
    assert latest.first_name == "Augusta" and latest.history_user.username == "root"


def test_an_old_version_can_be_viewed_but_not_saved_back(admin_client_logged):
    contact = _saved(admin_client_logged.post(ADD_URL, contact_post()))
    record = contact.history.get()
    url = reverse("admin:contacts_contact_simple_history", args=[contact.pk, record.pk])
    assert admin_client_logged.get(url).status_code == 200
    response = admin_client_logged.post(url, contact_post(first_name="Reverted"))
    assert response.status_code == 403
    contact.refresh_from_db()
    assert contact.first_name == "John"
