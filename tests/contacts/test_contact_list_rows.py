"""The contact list's rows are built without unfold's per-row work but show what unfold's
own code shows: the same cells, the same row checkbox, and the sync cell's text escaped."""

import pytest
from django.contrib import admin
from django.contrib.admin import helpers
from django.urls import reverse
from unfold import admin as unfold_admin
from unfold.templatetags import unfold_list

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from contacts.templatetags import contact_list
from sync.models import ContactSyncState, Destination, SyncStatus
from sync.sandbox import sandbox_destination_fields

pytestmark = pytest.mark.django_db

LIST = "admin:contacts_contact_changelist"


@pytest.mark.parametrize("query", ["", "?o=3.-5", "?_popup=1&_to_field=id", "?q=a"])
def test_each_rows_cells_are_the_ones_unfold_builds(admin_client_logged, query):
    seed_demo_contacts(12)
    destination = Destination.objects.create(**sandbox_destination_fields("loops", "http://x"))
    first = Contact.objects.order_by("pk").first()
    ContactSyncState.objects.create(
        contact=first, destination=destination, status=SyncStatus.FAILED, last_error="<b>no</b>"
    )
    response = admin_client_logged.get(reverse(LIST) + query)
    cl = response.context["cl"]
    assert cl.result_list
    columns = contact_list.page_columns(cl, list(unfold_list.result_headers(cl)))
    for result in cl.result_list:
        ours = list(contact_list.items_for_result(cl, result, None, columns))
        assert ours == list(unfold_list.items_for_result(cl, result, None))
    assert response.content.decode().count('data-label="Select record"') == len(cl.result_list)


def test_the_row_checkbox_is_the_html_of_unfolds_widget():
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    model_admin = admin.site._registry[Contact]
    expected = unfold_admin.checkbox.render(helpers.ACTION_CHECKBOX_NAME, str(contact.pk))
    assert model_admin.action_checkbox(contact) == expected


def test_the_sync_cell_escapes_names_and_cuts_long_errors(admin_client_logged):
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    destination = Destination.objects.create(
        **{**sandbox_destination_fields("yespo", "http://x"), "name": 'Yespo <"EU">'}
    )
    ContactSyncState.objects.create(
        contact=contact,
        destination=destination,
        status=SyncStatus.FAILED,
        remote_id="r&1",
        last_error="<i>" + "x" * 400,
    )
    page = admin_client_logged.get(reverse(LIST)).content.decode()

    assert 'aria-label="Sync: Yespo &lt;&quot;EU&quot;&gt; failed"' in page
    tip = page.split(f'id="sync-tip-{contact.pk}-{destination.pk}"')[1].split("</span></span>")[0]
    assert tip.startswith("><strong>Yespo &lt;&quot;EU&quot;&gt;</strong>: failed")
    assert "<br>Remote ID r&amp;1" in tip
    assert '<span class="sync-tip-error">&lt;i&gt;' + "x" * 296 + "…" in tip
    assert "<i>" not in page
