"""A small file (imported in the request) with invalid rows: the preview confirms nothing,
all or nothing, and also offers "import the valid rows, skip the rest", which imports them
with a background import's rules and shows its page, with the skipped rows' CSV."""

import csv
import io

import pytest
from django.urls import reverse

from contacts.models import Contact, ImportJob
from tests.contacts.test_import_export import FILES, PROCESS_URL, _upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups():
    from contacts.models import Group

    return {name: Group.objects.create(name=name) for name in ["Newsletter Subscribers", "VIP"]}


def test_a_preview_with_invalid_rows_offers_to_skip_them_and_that_imports_the_rest(
    admin_client_logged, groups
):
    preview = _upload(admin_client_logged, (FILES / "contacts_with_errors.csv").read_text())
    assert "confirm_form" not in preview.context  # all or nothing: nothing to confirm as is
    assert preview.context["skip_counts"] == {"invalid": 5, "valid": 1}
    page = preview.content.decode()
    form = page.split('id="import-skip"')[1].split("</form>")[0]
    assert "Import the valid rows, skip the rest" in form
    assert "import the 1 valid row" in " ".join(form.split()) and "skip the 5 invalid ones" in form
    assert not Contact.objects.exists()

    response = admin_client_logged.post(
        PROCESS_URL, {**preview.context["skip_form"].initial, "mode": "skip"}
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:contacts_contact_import_job", args=[job.pk])
    assert job.status == ImportJob.Status.DONE, job.failure
    assert (job.mode, job.written_rows, job.invalid_rows, job.totals) == ("skip", 1, 5, {"new": 1})
    assert job.file_name == "contacts.csv" and job.content == ""
    assert Contact.objects.count() == 1

    page = admin_client_logged.get(response["Location"]).content.decode()
    assert "Import finished: 1 new, 0 updated, 0 unchanged, 5 invalid rows skipped." in page
    skipped = admin_client_logged.get(
        reverse("admin:contacts_contact_import_job_skipped", args=[job.pk])
    )
    rows = list(csv.reader(io.StringIO(skipped.content.decode())))
    assert [row[0] for row in rows[1:]] == ["1", "2", "3", "4", "5"]


def test_a_valid_preview_offers_no_skipping(admin_client_logged):
    content = "external_id,first_name,email\nv-1,Val,val@example.com\n"
    preview = _upload(admin_client_logged, content)
    assert preview.context["confirm_form"] and "skip_form" not in preview.context
    assert 'id="import-skip"' not in preview.content.decode()


def test_a_manager_cannot_skip_import(client, django_user_model, admin_client_logged, groups):
    from django.contrib.auth.models import Group as AuthGroup

    preview = _upload(admin_client_logged, (FILES / "contacts_with_errors.csv").read_text())
    manager = django_user_model.objects.create_user("mgr", password="pw-mgr-123", is_staff=True)
    manager.groups.add(AuthGroup.objects.get(name="Managers"))
    client.force_login(manager)
    response = client.post(PROCESS_URL, {**preview.context["skip_form"].initial, "mode": "skip"})
    assert response.status_code == 403
    assert not ImportJob.objects.exists() and not Contact.objects.exists()
