"""The list and contact pages run a constant number of queries, whatever the data size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.demo import seed_demo_contacts
from contacts.models import Channel, Contact, ExternalUrl
from tests.contacts.admin_post import contact_post

pytestmark = pytest.mark.django_db


def _count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_changelist_queries_do_not_grow_with_page_size(admin_client_logged):
    url = reverse("admin:contacts_contact_changelist")
    seed_demo_contacts(5)
    small = _count_queries(admin_client_logged, url)  # a page of 5 rows
    seed_demo_contacts(120)
    full = _count_queries(admin_client_logged, url)  # a full page of 100 rows
    assert small == full, (small, full)
    print(f"contact list page: {full} queries")


def test_change_page_queries_do_not_grow_with_inline_rows(admin_client_logged):
    seed_demo_contacts(2)
    few, many = Contact.objects.order_by("pk")
    few.external_urls.all().delete()
    few.channels.all().delete()
    for i in range(2):
        Channel.objects.create(contact=many, type="webpush", value=f"token-{i}")
    for i in range(3):
        ExternalUrl.objects.create(contact=many, ref=f"r{i}", url=f"https://example.com/{i}")
    change = "admin:contacts_contact_change"
    _count_queries(
        admin_client_logged, reverse(change, args=[few.pk])
    )  # warms the content-type cache
    q_few = _count_queries(admin_client_logged, reverse(change, args=[few.pk]))
    q_many = _count_queries(admin_client_logged, reverse(change, args=[many.pk]))
    assert q_few == q_many, (q_few, q_many)
    print(f"contact page: {q_many} queries")


def test_country_and_language_filters_walk_the_index_not_the_table(admin_client_logged):
    """The filters' values are the table's distinct values, blank included, in order; read
    one index probe per value, never by a DISTINCT over every row (a million-contact list
    spent 160 to 180 ms there on every view)."""
    seed_demo_contacts(6)
    values = [("DE", "de"), ("AU", "en"), ("", ""), ("AU", "fr"), ("NZ", "en"), ("DE", "")]
    for contact, (country, language) in zip(Contact.objects.order_by("pk"), values, strict=True):
        Contact.objects.filter(pk=contact.pk).update(country=country, language=language)
    url = reverse("admin:contacts_contact_changelist")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client_logged.get(url)
    specs = {
        spec.field_path: spec
        for spec in response.context["cl"].filter_specs
        if hasattr(spec, "field_path")
    }
    for field in ("country", "language"):
        expected = list(Contact.objects.order_by(field).values_list(field, flat=True).distinct())
        assert list(specs[field].lookup_choices) == expected, field
    assert list(specs["country"].lookup_choices) == ["", "AU", "DE", "NZ"]
    distincts = [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]
    assert distincts == [], distincts
    page = response.content.decode()
    assert "New Zealand" in page and "French" in page


def test_a_list_action_post_reads_no_filter_values(admin_client_logged):
    """A list action's POST builds the list's filters but renders none of them: the filters'
    values are read only when they are shown."""
    seed_demo_contacts(3)
    url = reverse("admin:contacts_contact_changelist")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client_logged.post(url, {"action": "delete_selected", "index": 0})
    assert response.status_code == 302  # "Items must be selected", back to the list
    walks = [q["sql"] for q in ctx.captured_queries if "RECURSIVE" in q["sql"].upper()]
    assert walks == []


def _save_queries(client, contact, **changes):
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    data = contact_post(
        contact,
        email=contact.email,
        external_id=contact.external_id,
        phone=contact.phone,
        country=contact.country,
        **changes,
    )
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(url, data)
    return response, [q["sql"] for q in ctx.captured_queries]


def test_a_save_reads_no_inline_row_or_catalogue_entry_one_by_one(admin_client_logged):
    """The rows posted back unchanged and the catalogue entries they name are taken from
    what the formsets already read: before, each inline row cost two more SELECTs (its own
    row by id, its catalogue entry by id) beside the model's check that the entry exists."""
    seed_demo_contacts(1)
    contact = Contact.objects.get()
    assert contact.custom_values.count() and contact.memberships.count()
    response, queries = _save_queries(admin_client_logged, contact, first_name="Saved")
    assert response.status_code == 302, response.content.decode()[:1000]
    tables = [
        "contacts_channel",
        "contacts_customfieldvalue",
        "contacts_groupmembership",
        "contacts_mailinglistsubscription",
        "contacts_externalurl",
        "contacts_customfielddefinition",
        "contacts_group",
        "contacts_mailinglist",
    ]
    one_by_one = [
        sql
        for sql in queries
        if sql.startswith("SELECT ")
        and not sql.startswith("SELECT 1 AS")  # the model's existence check stays
        and any(f'WHERE "{table}"."id" = ' in sql for table in tables)
    ]
    assert one_by_one == [], one_by_one
    assert Contact.objects.get().first_name == "Saved"


def test_ids_the_formsets_did_not_read_are_still_looked_up_and_refused(admin_client_logged):
    """What the formsets did not read goes to Django's own lookup, with its outcome."""
    seed_demo_contacts(2)
    contact, other = Contact.objects.order_by("pk")
    for rows in (
        # a catalogue entry that does not exist
        {"custom_values": [{"definition": "999999", "value": "x"}]},
        # a group id that is not a number
        {"memberships": [{"group": "abc"}]},
    ):
        response, _ = _save_queries(admin_client_logged, contact, **rows)
        assert response.status_code == 200, rows  # the form again, with its error
        assert "Select a valid choice" in response.content.decode(), rows
    other_value = other.custom_values.first()
    data = contact_post(
        contact,
        email=contact.email,
        external_id=contact.external_id,
        phone=contact.phone,
        country=contact.country,
    )
    data["custom_values-0-id"] = str(other_value.pk)  # another contact's row
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    mine = list(contact.custom_values.order_by("pk").values_list("pk", "value"))
    theirs = list(other.custom_values.order_by("pk").values_list("pk", "value"))
    response = admin_client_logged.post(url, data)
    assert response.status_code == 302  # as Django does: that row is left alone
    assert list(contact.custom_values.order_by("pk").values_list("pk", "value")) == mine
    assert list(other.custom_values.order_by("pk").values_list("pk", "value")) == theirs
