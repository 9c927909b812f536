"""The contact admin: adding with inline children, and every validation rule on its field."""

import pytest
from django.urls import reverse

from contacts.models import (
    Contact,
    CustomFieldDefinition,
    ExternalUrl,
    Group,
    MailingList,
)
from tests.contacts.admin_post import contact_post

ADD_URL = reverse("admin:contacts_contact_add")
pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogues():
    return {
        "loyalty": CustomFieldDefinition.objects.create(name="loyaltyLevel", type="string"),
        "value": CustomFieldDefinition.objects.create(name="lifetimeValue", type="number"),
        "vip": CustomFieldDefinition.objects.create(name="isVip", type="boolean"),
        "signup": CustomFieldDefinition.objects.create(name="signupDate", type="date"),
        "group": Group.objects.create(name="Newsletter Subscribers"),
        "list": MailingList.objects.create(name="Weekly digest"),
    }


def test_add_contact_with_every_kind_of_child(admin_client_logged, catalogues):
    response = admin_client_logged.post(
        ADD_URL,
        contact_post(
            phone="(201) 555-0123",  # read in the contact's country (US)
            channels=[
                {"type": "webpush", "value": "subscription-id-12345"},
                {"type": "email", "value": "john.work@example.com"},
            ],
            custom_values=[{"definition": catalogues["loyalty"].pk, "value": "Gold"}],
            memberships=[{"group": catalogues["group"].pk}],
            subscriptions=[{"mailing_list": catalogues["list"].pk, "subscribed": True}],
            external_urls=[{"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}],
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    contact = Contact.objects.get()
    assert contact.phone == "+12015550123"
    assert contact.tags == ["newsletter", "customer"]
    assert contact.external_id.startswith("ct-")
    assert sorted(contact.channels.values_list("type", flat=True)) == ["email", "webpush"]
    assert contact.custom_values.get().value == "Gold"
    assert list(contact.groups.all()) == [catalogues["group"]]
    assert contact.subscriptions.get().subscribed is True
    assert contact.external_urls.get().ref == "crm"


def test_generated_external_id_is_stable(admin_client_logged):
    admin_client_logged.post(ADD_URL, contact_post())
    contact = Contact.objects.get()
    generated = contact.external_id
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    response = admin_client_logged.post(
        url, contact_post(contact, external_id=generated, first_name="Johnny")
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.external_id == generated and contact.first_name == "Johnny"


def test_content_version_rises_with_children(admin_client_logged, catalogues):
    admin_client_logged.post(ADD_URL, contact_post())
    contact = Contact.objects.get()
    before = contact.content_version
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    admin_client_logged.post(
        url,
        contact_post(
            contact,
            external_id=contact.external_id,
            memberships=[{"group": catalogues["group"].pk}],
        ),
    )
    contact.refresh_from_db()
    assert contact.content_version > before


def _field_errors(response):
    return response.context["adminform"].form.errors


def _inline_errors(response, prefix):
    for inline in response.context["inline_admin_formsets"]:
        if inline.formset.prefix == prefix:
            return inline.formset.errors, inline.formset.non_form_errors()
    raise AssertionError(f"no inline {prefix}")


def _assert_nothing_saved():
    assert Contact.objects.count() == 0
    assert ExternalUrl.objects.count() == 0


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("email", "not-an-email", "valid email"),
        ("phone", "+1 555", "phone number"),
        ("phone", "12345", "not a valid phone number"),
        ("language", "xx", "valid choice"),
        ("time_zone", "Mars/Olympus", "IANA"),
        ("country", "XX", "valid choice"),
        ("birth_date", "1990-02-30", "valid date"),
        ("birth_date", "2099-01-01", "cannot be in the future"),
        ("last_latitude", "90.5", "less than or equal to 90"),
        ("last_longitude", "-180.5", "greater than or equal to -180"),
        ("consent_ip", "300.1.1.1", "valid IPv4 or IPv6"),
        ("email_status", "maybe", "valid choice"),
        ("sms_status", "maybe", "valid choice"),
        ("gender", "unknown", "valid choice"),
    ],
)
def test_bad_contact_field_is_refused_on_that_field(admin_client_logged, field, value, message):
    response = admin_client_logged.post(ADD_URL, contact_post(**{field: value}))
    assert response.status_code == 200
    errors = _field_errors(response)
    assert field in errors, errors
    assert message in " ".join(errors[field])
    _assert_nothing_saved()


def test_phone_without_plus_needs_a_country(admin_client_logged):
    response = admin_client_logged.post(ADD_URL, contact_post(phone="2015550123", country=""))
    assert "country code" in " ".join(_field_errors(response)["phone"])
    _assert_nothing_saved()


def test_email_unique_ignoring_case(admin_client_logged):
    Contact.objects.create(email="John.Smith@Example.com")
    response = admin_client_logged.post(ADD_URL, contact_post(email="john.smith@example.COM"))
    assert "already exists" in " ".join(_field_errors(response)["email"])
    assert Contact.objects.count() == 1


def test_external_id_unique(admin_client_logged):
    Contact.objects.create(email="other@example.com", external_id="EM12790")
    response = admin_client_logged.post(ADD_URL, contact_post(external_id="EM12790"))
    assert "already exists" in " ".join(_field_errors(response)["external_id"])
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    "row, message",
    [
        ({"type": "email", "value": "nope@"}, "valid email"),
        ({"type": "sms", "value": "+1 555"}, "phone number"),
        ({"type": "viber", "value": "abc"}, "phone number"),
        ({"type": "webpush", "value": "has spaces in it"}, "spaces"),
        ({"type": "carrier-pigeon", "value": "x"}, "valid choice"),
    ],
)
def test_bad_channel_value_is_refused_on_its_row(admin_client_logged, row, message):
    response = admin_client_logged.post(ADD_URL, contact_post(channels=[row]))
    errors, _ = _inline_errors(response, "channels")
    assert message in str(errors[0]), errors
    _assert_nothing_saved()


def test_third_channel_of_a_type_counts_the_primary_email(admin_client_logged):
    rows = [
        {"type": "email", "value": "a@example.com"},
        {"type": "email", "value": "b@example.com"},
    ]
    response = admin_client_logged.post(ADD_URL, contact_post(channels=rows))
    _, non_form = _inline_errors(response, "channels")
    assert "At most 2 channels of one type" in str(non_form)
    _assert_nothing_saved()


@pytest.mark.parametrize(
    "definition, value, message",
    [
        ("value", "twelve", "not a number"),
        ("vip", "perhaps", "not a boolean"),
        ("signup", "31/12/2024", "not a date"),
    ],
)
def test_custom_value_checked_against_its_type(
    admin_client_logged, catalogues, definition, value, message
):
    row = {"definition": catalogues[definition].pk, "value": value}
    response = admin_client_logged.post(ADD_URL, contact_post(custom_values=[row]))
    errors, _ = _inline_errors(response, "custom_values")
    assert message in " ".join(errors[0]["value"])
    _assert_nothing_saved()


def test_custom_values_are_stored_canonically(admin_client_logged, catalogues):
    rows = [
        {"definition": catalogues["value"].pk, "value": "12.50"},
        {"definition": catalogues["vip"].pk, "value": "Yes"},
    ]
    admin_client_logged.post(ADD_URL, contact_post(custom_values=rows))
    values = dict(Contact.objects.get().custom_values.values_list("definition__name", "value"))
    assert values == {"lifetimeValue": "12.5", "isVip": "true"}


def test_external_url_must_be_https(admin_client_logged):
    row = {"ref": "crm", "url": "http://crm.example.com/c/1"}
    response = admin_client_logged.post(ADD_URL, contact_post(external_urls=[row]))
    errors, _ = _inline_errors(response, "external_urls")
    assert "https://" in " ".join(errors[0]["url"])
    _assert_nothing_saved()


def test_external_url_ref_unique_per_contact(admin_client_logged):
    rows = [
        {"ref": "crm", "url": "https://crm.example.com/1"},
        {"ref": "crm", "url": "https://crm.example.com/2"},
    ]
    response = admin_client_logged.post(ADD_URL, contact_post(external_urls=rows))
    _, non_form = _inline_errors(response, "external_urls")
    assert "duplicate" in str(non_form).lower()
    _assert_nothing_saved()


def test_fourth_external_url_is_refused(admin_client_logged):
    rows = [{"ref": f"r{i}", "url": f"https://example.com/{i}"} for i in range(4)]
    response = admin_client_logged.post(ADD_URL, contact_post(external_urls=rows))
    _, non_form = _inline_errors(response, "external_urls")
    assert "at most 3 external URLs" in str(non_form)
    _assert_nothing_saved()


def test_bad_inline_row_saves_nothing_even_with_a_valid_contact(admin_client_logged, catalogues):
    response = admin_client_logged.post(
        ADD_URL,
        contact_post(
            memberships=[{"group": catalogues["group"].pk}],
            custom_values=[{"definition": catalogues["value"].pk, "value": "NaN-ish"}],
        ),
    )
    assert response.status_code == 200
    assert Contact.objects.count() == 0
    assert Group.objects.get().memberships.count() == 0


def test_custom_value_over_500_characters_is_refused_on_its_row(admin_client_logged, catalogues):
    row = {"definition": catalogues["loyalty"].pk, "value": "x" * 501}
    response = admin_client_logged.post(ADD_URL, contact_post(custom_values=[row]))
    errors, _ = _inline_errors(response, "custom_values")
    assert "at most 500 characters" in " ".join(errors[0]["value"])
    _assert_nothing_saved()


@pytest.mark.parametrize("typed", ["07911 123456", "+44 7911-123456", "(07911) 123 456"])
def test_a_phone_typed_the_national_way_finds_the_contact(admin_client_logged, typed):
    Contact.objects.create(first_name="Ada", phone="+447911123456", email="ada@example.com")
    Contact.objects.create(first_name="Bob", phone="+14155550123", email="bob@example.com")
    response = admin_client_logged.get(reverse("admin:contacts_contact_changelist"), {"q": typed})
    assert [c.first_name for c in response.context["cl"].result_list] == ["Ada"]
