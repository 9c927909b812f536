"""Write rules per mapping and the destination page's clear notices, on every platform, over
real HTTP against the sandbox (issue #13, items 1 and 2). Platform-neutral: what each
platform holds is read through the sandbox's neutral view (`GET /_sandbox/contact/...`); each
platform's own clears are tested in its module (tests/sync/connectors/test_<p>_sandbox.py)."""

import pytest
import requests
from django.core.exceptions import ValidationError
from django.urls import reverse

from sync import connectors
from sync.connectors.records import RULED_NATIVE_FIELDS, MappingRecord, RemoteState
from sync.models import FieldMapping, NativeFieldRule
from sync.selectors import destination_mapping
from tests.sync.clearing import change, contact_with, push
from tests.sync.conftest import PLATFORMS, destination_form_data

pytestmark = pytest.mark.django_db


def held_on(sandbox, platform, external_id="clear-1") -> dict:
    response = requests.get(f"{sandbox.url}/_sandbox/contact/{platform}/{external_id}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_name_on_create_only_is_the_platforms_once_it_holds_the_contact(
    platform, sandbox, sandbox_destination
):
    destination = sandbox_destination(platform)
    NativeFieldRule.objects.create(destination=destination, field="first_name", write_rule="create")
    destination.refresh_from_db()
    person = contact_with()
    push(person, destination)
    assert held_on(sandbox, platform)["first_name"] == "Ada"  # sent on create
    change(person, first_name="Augusta", last_name="King")
    state = push(person, destination)
    assert state.last_error == "", state.last_error
    held = held_on(sandbox, platform)
    assert (held["first_name"], held["last_name"]) == ("Ada", "King")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_never_is_not_sent_and_always_is(platform, sandbox_destination):
    """The rules as every connector builds its payload: a mapped field never sent, a native
    one sent on create and not after."""
    destination = sandbox_destination(platform)
    cls = destination.connector_class
    NativeFieldRule.objects.create(destination=destination, field="last_name", write_rule="never")
    destination.refresh_from_db()
    mapping = destination_mapping(destination)
    assert mapping.write_rules == {"last_name": "never"}
    connector = cls(
        base_url="https://example.invalid/",
        credentials={},
        mapping=mapping,
        options=destination.settings,
    )
    assert not connector.sends("last_name", RemoteState())
    assert connector.sends("first_name", RemoteState(accepted=True))
    create_only = cls(
        base_url="https://example.invalid/",
        credentials={},
        mapping=MappingRecord(write_rules={"first_name": "create"}),
        options=destination.settings,
    )
    assert create_only.sends("first_name", RemoteState())
    assert not create_only.sends("first_name", RemoteState(accepted=True))
    assert not create_only.sends("first_name", RemoteState(remote_id="42"))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_rule_for_a_field_without_a_native_slot_is_refused_clearly(platform, sandbox_destination):
    destination = sandbox_destination(platform)
    cls = destination.connector_class
    foreign = [name for name in RULED_NATIVE_FIELDS if name not in cls.native_fields]
    if not foreign:
        pytest.skip(f"{cls.label} holds every ruled field natively")
    rule = NativeFieldRule(destination=destination, field=foreign[0], write_rule="create")
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    message = " ".join(caught.value.message_dict["field"])
    assert cls.label in message
    if foreign[0] in cls.mappable_standard_fields:
        assert "set the rule on that mapping" in message


@pytest.mark.parametrize("platform", PLATFORMS)
def test_destination_page_edits_rules_keeps_history_and_says_what_cleared_values_do(
    platform, sandbox_destination, admin_client_logged
):
    destination = sandbox_destination(platform)
    cls = connectors.get_class(platform)
    url = reverse("admin:sync_destination_change", args=[destination.pk])
    page = admin_client_logged.get(url).content.decode()
    assert "Write rules of native fields" in page
    assert "On create only (the platform owns it afterwards)" in page
    if cls.uncleared_fields:
        assert f"Cleared values stay on {cls.label} for: " in page
    else:
        assert f"A value cleared here is cleared on {cls.label}." in page

    field = cls.native_fields[0]
    data = destination_form_data(
        destination,
        **{
            "native_field_rules-TOTAL_FORMS": "1",
            "native_field_rules-0-field": field,
            "native_field_rules-0-write_rule": "create",
        },
    )
    response = admin_client_logged.post(url, data)
    assert response.status_code == 302, response.context["inline_admin_formsets"]
    rule = NativeFieldRule.objects.get(destination=destination)
    assert (rule.field, rule.write_rule) == (field, "create")
    assert rule.history.count() == 1
    # an unknown choice is refused by the form, with the field named
    bad = {**data, "native_field_rules-0-field": "email"}
    NativeFieldRule.objects.all().delete()
    response = admin_client_logged.post(url, bad)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()

    history = admin_client_logged.get(
        reverse("admin:sync_destination_history", args=[destination.pk])
    )
    assert f"{field} (native) write: create" in history.content.decode()


def test_a_mapping_write_rule_is_in_the_mapping_and_its_history(sandbox_destination):
    from contacts.models import CustomFieldDefinition

    platform = next(p for p in PLATFORMS if connectors.get_class(p).mappable_standard_fields)
    destination = sandbox_destination(platform)
    definition = CustomFieldDefinition.objects.create(name="plan")
    mapping = FieldMapping.objects.create(
        destination=destination, custom_field=definition, remote_field="1"
    )
    before = destination.config_version
    mapping.write_rule = "never"
    mapping.save()
    destination.refresh_from_db()
    assert destination.config_version > before  # what is sent changed
    assert destination_mapping(destination).write_rules == {"custom:plan": "never"}
    assert [h.write_rule for h in mapping.history.order_by("history_date")] == ["always", "never"]
