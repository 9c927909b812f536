"""Yespo connector: mapping (golden payloads, the vendor's schema), refusals, error
classification, the call sequence of a push, bulk pushes and the other calls, over the mocked
transport (no network)."""

import base64
import datetime
import decimal
import re
from functools import partial

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from sync.connectors import yespo
from sync.connectors.base import (
    AuthenticationError,
    PermanentError,
    RetryableError,
    Unconfirmed,
)
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    MappingRecord,
    RemoteState,
)
from sync.connectors.yespo import YespoConnector
from tests.sync.connectors import harness
from tests.sync.connectors.harness import MockTransport, make_connector, resolve_refs, vendor_spec

BASE = "https://platform.test/"
NEWSLETTER, VIP = "200400", "200401"

# The contact of the Yespo seed example (seeds 000 and 002 carry the same one; 000's email is
# only obfuscated by the page it was saved from). +1234567890 is not a valid number: a valid
# US one stands in.
SEED_CONTACT = ContactRecord(
    id=1,
    external_id="EM12790",
    first_name="John",
    last_name="Smith",
    email="john.smith@example.com",
    phone="+12015550123",
    language="en",
    time_zone="America/New_York",
    address_line="123 Main Street",
    city="New York",
    region="NY",
    country="US",
    postal_code="10001",
    birth_date=datetime.date(1990, 1, 1),
    channels=(ChannelRecord("webPush", "subscription-id-12345"),),
    custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),),
    group_ids=frozenset({1001}),
)
SEED_MAPPING = MappingRecord(
    fields={"birth_date": "79815", "custom:loyaltyLevel": "79816", "country": "79817"},
    groups={1001: NEWSLETTER},
)
# The request of part B's "Contract — Yespo".
CONTRACT_CONTACT = ContactRecord(
    id=2,
    external_id="TV12790",
    first_name="John",
    last_name="Smith",
    email="john@example.com",
    phone="+380501234567",
    language="en",
    time_zone="Europe/London",
    address_line="Rue Imaginaire, 456",
    city="Toulouse",
    region="Occitanie",
    postal_code="31000",
    custom_values=(CustomValueRecord("profession", "string", "writer"),),
)
CONTRACT_MAPPING = MappingRecord(fields={"custom:profession": "79814"})


connector = partial(make_connector, YespoConnector)


def contact(external_id="ext-1", **fields):
    return ContactRecord(id=1, external_id=external_id, **{"email": "a@example.com", **fields})


def golden(name):
    return harness.golden("yespo", name)


# ---------------------------------------------------------------------------- golden payloads


def test_seed_contact_maps_to_the_published_api_shape():
    payload = connector(mapping=SEED_MAPPING).build_payload(SEED_CONTACT, RemoteState())
    assert payload == golden("seed_contact.json")


def test_contract_example_maps_to_its_golden_file():
    # The contract writes the phone without "+"; we keep E.164 as stored, as the seed does.
    payload = connector(mapping=CONTRACT_MAPPING).build_payload(CONTRACT_CONTACT, RemoteState())
    assert payload == golden("contract_example.json")


def test_seed_contact_bulk_body_matches_its_golden_file():
    yespo_connector = connector(mapping=SEED_MAPPING)
    payload = yespo_connector.build_payload(SEED_CONTACT, RemoteState())
    assert yespo.bulk_body([(SEED_CONTACT, payload)]) == golden("seed_bulk.json")


def test_the_seed_keys_the_api_does_not_have_never_go_out():
    payload = connector(mapping=SEED_MAPPING).build_payload(SEED_CONTACT, RemoteState())
    assert "groups" not in payload
    assert set(payload["address"]) <= {"town", "region", "address", "postcode"}
    assert all(set(field) == {"id", "value"} for field in payload["fields"])
    assert all(c["type"] == c["type"].lower() for c in payload["channels"])


def test_a_minimal_contact_sends_no_empty_keys():
    payload = connector().build_payload(contact(), RemoteState())
    assert payload == {
        "channels": [{"type": "email", "value": "a@example.com"}],
        "externalCustomerId": "ext-1",
    }


# ------------------------------------------------------------------------- the vendor schema


def vendor_excerpt():
    return vendor_spec("yespo", "yespo-openapi.json")


def close(schema):
    """additionalProperties: false on every object schema, so a stray key fails."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            close(value)
    elif isinstance(schema, list):
        for item in schema:
            close(item)
    return schema


def schema(name, *, closed=True):
    excerpt = vendor_excerpt()
    resolved = resolve_refs(excerpt["components"]["schemas"][name], excerpt)
    if name == "ContactsBulkUpdate":
        # SOURCES.md: `contactFields` carries its item enum a second time at the array level,
        # which rejects every list; the item-level enum stays.
        del resolved["properties"]["contactFields"]["enum"]
    return close(resolved) if closed else resolved


@pytest.mark.parametrize(
    "record, mapping",
    [
        (SEED_CONTACT, SEED_MAPPING),
        (CONTRACT_CONTACT, CONTRACT_MAPPING),
        (contact(), None),
    ],
)
def test_payloads_validate_against_the_closed_contact_schema(record, mapping):
    payload = connector(mapping=mapping).build_payload(record, RemoteState())
    OAS30Validator(schema("Contact")).validate(payload)


def test_bulk_body_validates_against_the_closed_bulk_schema():
    yespo_connector = connector(mapping=SEED_MAPPING)
    items = [
        (r, yespo_connector.build_payload(r, RemoteState()))
        for r in (SEED_CONTACT, contact("ext-2", email="b@example.com"))
    ]
    OAS30Validator(schema("ContactsBulkUpdate")).validate(yespo.bulk_body(items[:1]))
    OAS30Validator(schema("ContactsBulkUpdate")).validate(yespo.bulk_body(items[1:]))


def test_the_unpatched_bulk_schema_refuses_every_contact_fields_list_as_sources_md_says():
    excerpt = vendor_excerpt()
    raw = resolve_refs(excerpt["components"]["schemas"]["ContactsBulkUpdate"], excerpt)
    assert not OAS30Validator(raw).is_valid(golden("seed_bulk.json"))


def test_closing_the_schema_is_what_catches_a_stray_key():
    body = {
        "channels": [{"type": "email", "value": "a@example.com"}],
        "address": {"city": "New York"},
    }
    assert OAS30Validator(schema("Contact", closed=False)).is_valid(body)
    errors = list(OAS30Validator(schema("Contact")).iter_errors(body))
    assert any("city" in error.message for error in errors)


def test_the_closed_schema_refuses_the_seed_hidden_example():
    messages = " ".join(
        e.message
        for e in OAS30Validator(schema("Contact")).iter_errors(golden("seed_hidden_example.json"))
    )
    for stray in ("city", "postalCode", "addressLine", "country", "'name'", "webPush"):
        assert stray in messages


# ------------------------------------------------------------------ channels, names, fields


def test_channels_primary_email_and_phone_first_then_extra_rows():
    record = contact(
        phone="+447700900123",
        channels=(
            ChannelRecord("viber", "+447700900123"),
            ChannelRecord("email", "b@example.com"),
            ChannelRecord("email", "a@example.com"),
        ),
    )
    payload = connector().build_payload(record, RemoteState())
    assert payload["channels"] == [
        {"type": "email", "value": "a@example.com"},
        {"type": "sms", "value": "+447700900123"},
        {"type": "viber", "value": "+447700900123"},
        {"type": "email", "value": "b@example.com"},
    ]


def test_a_third_channel_of_one_type_is_refused():
    record = contact(
        channels=(ChannelRecord("email", "b@example.com"), ChannelRecord("email", "c@example.com"))
    )
    with pytest.raises(PermanentError, match="3 email channels"):
        connector().build_payload(record, RemoteState())


def test_an_unknown_channel_type_is_refused():
    record = contact(channels=(ChannelRecord("telegram", "@john"),))
    with pytest.raises(PermanentError, match="no channel type 'telegram'"):
        connector().build_payload(record, RemoteState())


def test_a_contact_without_any_channel_is_refused():
    with pytest.raises(PermanentError, match="at least one channel"):
        connector().build_payload(contact(email=""), RemoteState())


def test_names_over_40_characters_are_refused_not_truncated():
    assert (
        connector().build_payload(contact(first_name="J" * 40), RemoteState())["firstName"]
        == "J" * 40
    )
    with pytest.raises(PermanentError, match="last name has 41 characters"):
        connector().build_payload(contact(last_name="S" * 41), RemoteState())


def test_standard_fields_without_a_native_slot_go_out_only_when_mapped():
    record = contact(
        birth_date=datetime.date(1990, 1, 1),
        gender="female",
        country="GB",
        email_status="unsubscribed",
        sms_status="failed",
        privacy_consent=True,
        gdpr_marketing_consent=False,
        terms_accepted=True,
        user_group="Customers",
        consent_date=datetime.datetime(
            2026, 1, 1, 11, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
        ),
        consent_ip="203.0.113.7",
        tags=("vip", "newsletter"),
        last_latitude=decimal.Decimal("51.500700"),
        last_longitude=decimal.Decimal("-0.124600"),
    )
    assert "fields" not in connector().build_payload(record, RemoteState())
    names = [
        "birth_date",
        "gender",
        "country",
        "email_status",
        "sms_status",
        "privacy_consent",
        "gdpr_marketing_consent",
        "terms_accepted",
        "user_group",
        "consent_date",
        "consent_ip",
        "tags",
        "last_latitude",
        "last_longitude",
    ]
    mapping = MappingRecord(fields={name: str(100 + i) for i, name in enumerate(names)})
    fields = connector(mapping=mapping).build_payload(record, RemoteState())["fields"]
    assert {names[f["id"] - 100]: f["value"] for f in fields} == {
        "birth_date": "1990-01-01",
        "gender": "female",
        "country": "GB",
        "email_status": "unsubscribed",
        "sms_status": "failed",
        "privacy_consent": "true",
        "gdpr_marketing_consent": "false",
        "terms_accepted": "true",
        "user_group": "Customers",
        "consent_date": "2026-01-01T10:00:00Z",
        "consent_ip": "203.0.113.7",
        "tags": "vip,newsletter",
        "last_latitude": "51.500700",
        "last_longitude": "-0.124600",
    }


def test_mappable_standard_fields_are_those_without_a_native_slot():
    mappable = set(YespoConnector.mappable_standard_fields)
    assert {
        "birth_date",
        "gender",
        "country",
        "email_status",
        "sms_status",
        "tags",
        "user_group",
        "gdpr_marketing_consent",
        "consent_date",
        "last_latitude",
    } <= mappable
    assert not mappable & {
        "language",
        "time_zone",
        "city",
        "region",
        "postal_code",
        "address_line",
        "phone",
    }


def test_empty_values_of_mapped_fields_are_not_sent():
    mapping = MappingRecord(fields={"birth_date": "1", "custom:nickname": "2", "tags": "3"})
    assert "fields" not in connector(mapping=mapping).build_payload(contact(), RemoteState())


@pytest.mark.parametrize(
    "mapping, message",
    [
        (MappingRecord(fields={"custom:loyaltyLevel": "loyaltyLevel"}), "not a Yespo id"),
        (MappingRecord(groups={1: "Newsletter"}), "not a Yespo id"),
    ],
)
def test_a_mapping_to_a_non_numeric_id_is_refused_before_any_request(mapping, message):
    transport = MockTransport()
    record = contact(custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),))
    with pytest.raises(PermanentError, match=message):
        connector(transport, mapping=mapping).push(record, RemoteState())
    assert transport.calls == []


def test_a_contact_without_external_id_is_refused():
    with pytest.raises(PermanentError, match="external ID"):
        connector().build_payload(contact(external_id=""), RemoteState())


# ------------------------------------------------------------------ credentials, auth header


def test_requests_use_basic_auth_with_the_key_as_password():
    transport = MockTransport().add(200, [])
    connector(transport, credentials={"api_key": "k-123"}).test_connection()
    scheme, token = transport.calls[0].headers["Authorization"].split()
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"{yespo.BASIC_AUTH_USERNAME}:k-123"


# ------------------------------------------------------------------------ the push sequence


def test_push_creates_then_sets_segments_in_mapping_order():
    mapping = MappingRecord(groups={1: NEWSLETTER, 2: VIP}, mailing_lists={7: "200405"})
    record = contact(group_ids=frozenset({2}), subscriptions={7: True})
    transport = MockTransport().add(200, {"id": 23456789}).add(200).add(200).add(200)
    result = connector(transport, mapping=mapping).push(record, RemoteState())
    # an upsert: Yespo's 200 says neither created nor updated
    assert (result.remote_id, result.created, result.status_code) == ("23456789", None, 200)
    assert [(c.method, c.path) for c in transport.calls] == [
        ("POST", "/api/v1/contact"),
        ("POST", f"/api/v1/group/{NEWSLETTER}/contacts/detach"),
        ("POST", f"/api/v1/group/{VIP}/contacts/attach"),
        ("POST", "/api/v1/group/200405/contacts/attach"),
    ]
    assert transport.calls[0].json == result.payload
    assert all(c.json == {"externalCustomerIds": ["ext-1"]} for c in transport.calls[1:])


def test_unsubscribed_or_absent_mailing_lists_detach():
    mapping = MappingRecord(mailing_lists={7: "200405", 8: "200406"})
    record = contact(subscriptions={7: False})
    transport = MockTransport().add(200, {"id": 5}).add(200).add(200)
    # what Yespo holds from us is known (nothing to clear): the single call
    connector(transport, mapping=mapping).push(record, RemoteState("5", held_keys=frozenset()))
    assert [c.path.rsplit("/", 1)[1] for c in transport.calls[1:]] == ["detach", "detach"]


def test_two_lists_on_one_segment_keep_a_member_attached():
    mapping = MappingRecord(groups={1: NEWSLETTER}, mailing_lists={7: NEWSLETTER})
    transport = MockTransport().add(200, {"id": 5}).add(200)
    connector(transport, mapping=mapping).push(contact(subscriptions={7: True}), RemoteState())
    assert [c.path for c in transport.calls[1:]] == [f"/api/v1/group/{NEWSLETTER}/contacts/attach"]


def test_a_contact_first_pushed_in_bulk_is_not_reported_as_created_when_pushed_singly():
    """No stored id (a bulk gives none) and Yespo's upsert answer: neither says created."""
    transport = MockTransport().add(200, {"id": 5})
    result = connector(transport).push(contact(), RemoteState())
    assert (result.remote_id, result.created) == ("5", None)


def test_409_keeps_the_stored_remote_id_without_a_lookup():
    transport = MockTransport().add(409, text="Conflict: repeated request")
    result = connector(transport).push(contact(), RemoteState("777", held_keys=frozenset()))
    assert (result.remote_id, result.created, result.status_code) == ("777", None, 409)
    assert len(transport.calls) == 1


def test_409_without_a_stored_id_looks_it_up_by_external_id():
    transport = MockTransport().add(409, text="Conflict").add(200, [{"id": 888}])
    result = connector(transport).push(contact(), RemoteState())
    assert result.remote_id == "888"
    lookup = transport.calls[1]
    assert lookup.method == "GET" and lookup.path == "/api/v1/contacts"
    assert (
        requests.utils.urlparse(lookup.url).query
        == "externalCustomerId=ext-1&startindex=1&maxrows=1"
    )


def test_409_with_nothing_found_still_counts_as_done():
    transport = MockTransport().add(409, text="Conflict").add(200, [])
    assert connector(transport).push(contact(), RemoteState()).remote_id is None


# ------------------------------------------------------------------- error classification


@pytest.mark.parametrize(
    "status, body, text, error, message",
    [
        (400, None, "Unrecognized field(s): city", PermanentError, "Unrecognized field(s): city"),
        (400, {"message": "Invalid channel"}, None, PermanentError, "Invalid channel"),
        (400, "Invalid channel type", None, PermanentError, "Invalid channel type"),
        (401, None, "Unauthorized", AuthenticationError, "Unauthorized"),
        (403, None, "Forbidden", AuthenticationError, "Forbidden"),
        (404, None, "Not found", PermanentError, "Not found"),
        (415, None, "Unsupported media type", PermanentError, "Unsupported"),
        (500, None, "Internal error", RetryableError, "Internal error"),
    ],
)
def test_error_statuses_are_classified(status, body, text, error, message):
    transport = MockTransport().add(status, body, text=text)
    with pytest.raises(error, match=re.escape(message)) as caught:
        connector(transport).push(contact(), RemoteState())
    assert caught.value.status == status
    assert type(caught.value) is error


def test_a_success_without_an_id_is_permanent():
    transport = MockTransport().add(200, {})
    with pytest.raises(PermanentError, match="no 'id'") as caught:
        connector(transport).push(contact(), RemoteState())
    assert caught.value.status == 200


def test_a_failed_segment_call_fails_the_push():
    mapping = MappingRecord(groups={1: NEWSLETTER})
    transport = MockTransport().add(200, {"id": 5}).add(404, text="Segment not found")
    with pytest.raises(PermanentError, match="Segment not found"):
        connector(transport, mapping=mapping).push(contact(), RemoteState())


# ------------------------------------------------------------------------------------ bulk


def bulk_ok(transport, session="s-1", failed=None, mapping=None):
    answer = {"asyncSessionId": session}
    if failed is not None:
        answer["failedContacts"] = failed
    transport.add(200, answer)
    transport.add(200, {"status": "FINISHED", "mapping": mapping or []})
    return transport


def test_push_many_sends_one_bulk_call_then_waits_for_the_import():
    records = [contact(f"e{i}", email=f"e{i}@example.com") for i in range(3)]
    transport = bulk_ok(MockTransport())
    results = connector(transport).push_many(records)
    assert [(r.external_id, r.error) for r in results] == [(f"e{i}", None) for i in range(3)]
    post, status = transport.calls
    assert (post.method, post.path) == ("POST", "/api/v1/contacts")
    assert post.json["dedupeOn"] == "externalCustomerId"
    assert post.json["contactFields"] == ["externalCustomerId", "email"]
    assert "customFieldsIDs" not in post.json
    assert [c["externalCustomerId"] for c in post.json["contacts"]] == ["e0", "e1", "e2"]
    assert (status.method, status.path) == ("GET", "/api/v1/importstatus/s-1")


def test_contacts_of_different_shapes_go_in_separate_calls_listing_only_what_they_carry():
    mapping = MappingRecord(fields={"custom:loyaltyLevel": "79816"})
    plain = contact("e1", email="e1@example.com")
    fuller = contact(
        "e2",
        email="e2@example.com",
        last_name="Doe",
        city="Kyiv",
        custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),),
    )
    transport = bulk_ok(bulk_ok(MockTransport(), "s-1"), "s-2")
    connector(transport, mapping=mapping).push_many([plain, fuller])
    first, second = transport.calls[0].json, transport.calls[2].json
    assert first["contactFields"] == ["externalCustomerId", "email"]
    assert "customFieldsIDs" not in first
    assert second["contactFields"] == ["lastName", "externalCustomerId", "email", "town"]
    assert second["customFieldsIDs"] == [79816]


def test_import_status_is_polled_until_finished():
    sleeps = []
    transport = MockTransport().add(200, {"asyncSessionId": "s-9"})
    transport.add(200, {"status": "STARTED"}).add(200, {"status": "IMPORTING"})
    transport.add(200, {"status": "FINISHED"})
    results = connector(transport, sleep=sleeps.append).push_many([contact()])
    assert results[0].error is None
    assert len(transport.calls) == 4
    assert sleeps == [0.05, 0.1]


def test_an_import_that_errors_is_retryable():
    transport = MockTransport().add(200, {"asyncSessionId": "s-9"})
    transport.add(200, {"status": "ERROR", "description": "storage failure"})
    with pytest.raises(RetryableError, match="storage failure"):
        connector(transport).push_many([contact()])


def test_an_import_that_never_finishes_leaves_its_contacts_awaiting_confirmation():
    sleeps = []
    transport = MockTransport().add(200, {"asyncSessionId": "s-9"})
    for _ in range(3):
        transport.add(200, {"status": "IMPORTING"})
    yespo_connector = connector(transport, sleep=sleeps.append, poll_timeout=0.12)
    (result,) = yespo_connector.push_many([contact()])
    assert (result.error, result.awaiting, result.reference) == (None, True, "s-9")
    # the recorded sleeps take no time: it gave up on the clock's deadline, not the sleeps'
    assert len(transport.calls) >= 2 and sleeps == [0.05, 0.1, 0.2][: len(sleeps)]


def test_one_failed_contact_comes_back_as_an_object():
    records = [contact("e1", email="e1@example.com"), contact("e2", email="e2@example.com")]
    failed = {
        "externalCustomerId": "e2",
        "channels": [{"type": "email", "value": "e2@x"}],
        "error": "Invalid email",
    }
    results = connector(bulk_ok(MockTransport(), failed=failed)).push_many(records)
    assert results[0].error is None
    assert isinstance(results[1].error, PermanentError)
    assert "Invalid email" in str(results[1].error)


def test_failed_contacts_without_external_id_are_matched_by_channel():
    records = [contact(f"e{i}", email=f"e{i}@example.com") for i in range(3)]
    failed = [
        {"channels": [{"type": "email", "value": "e0@example.com"}], "error": "bad 0"},
        {"channels": {"type": "email", "value": "e2@example.com"}, "error": "bad 2"},
    ]
    results = connector(bulk_ok(MockTransport(), failed=failed)).push_many(records)
    assert [r.error.message if r.error else None for r in results] == ["bad 0", None, "bad 2"]


def test_a_failure_naming_no_contact_fails_those_the_import_does_not_confirm():
    records = [contact(f"e{i}", email=f"e{i}@example.com") for i in range(3)]
    failed = {"error": "Something was wrong"}
    mapping = [{"dedupeValue": "e0", "contactId": 1}, {"dedupeValue": "e1", "contactId": 2}]
    results = connector(bulk_ok(MockTransport(), failed=failed, mapping=mapping)).push_many(records)
    assert [r.error is None for r in results] == [True, True, False]
    assert "without naming it: Something was wrong" in results[2].error.message


def test_a_refused_bulk_call_is_permanent_for_all():
    transport = MockTransport().add(200, {"errorMessage": "Invalid dedupe field"})
    with pytest.raises(PermanentError, match="Invalid dedupe field"):
        connector(transport).push_many([contact()])


def test_a_contact_refused_by_the_mapping_fails_alone():
    bad = contact("bad", email="", channels=())
    results = connector(bulk_ok(MockTransport())).push_many([contact(), bad])
    assert results[0].error is None
    assert "at least one channel" in results[1].error.message


def test_more_than_3000_contacts_are_split():
    records = [contact(f"e{i}", email=f"e{i}@example.com") for i in range(3001)]
    transport = bulk_ok(bulk_ok(MockTransport(), "s-1"), "s-2")
    connector(transport).push_many(records)
    assert [len(c.json["contacts"]) for c in transport.calls if c.method == "POST"] == [3000, 1]


def test_bulk_segments_go_in_calls_of_at_most_500_ids_per_list():
    mapping = MappingRecord(groups={1: NEWSLETTER})
    records = [
        contact(
            f"e{i}",
            email=f"e{i}@example.com",
            group_ids=frozenset({1}) if i < 1201 else frozenset(),
        )
        for i in range(1203)
    ]
    transport = bulk_ok(MockTransport())
    for _ in range(4):
        transport.add(200)
    connector(transport, mapping=mapping).push_many(records)
    calls = [
        (c.path.rsplit("/", 1)[1], len(c.json["externalCustomerIds"])) for c in transport.calls[2:]
    ]
    assert calls == [("attach", 500), ("attach", 500), ("attach", 201), ("detach", 2)]


def test_failed_contacts_get_no_segment_calls():
    mapping = MappingRecord(groups={1: NEWSLETTER})
    records = [
        contact("e1", email="e1@example.com", group_ids=frozenset({1})),
        contact("e2", email="e2@example.com", group_ids=frozenset({1})),
    ]
    transport = bulk_ok(MockTransport(), failed={"externalCustomerId": "e2", "error": "x"})
    transport.add(200)
    connector(transport, mapping=mapping).push_many(records)
    assert transport.calls[2].json == {"externalCustomerIds": ["e1"]}


def test_a_channel_bulk_cannot_name_goes_through_the_single_call():
    viber = contact("v1", channels=(ChannelRecord("viber", "+447700900123"),))
    transport = bulk_ok(MockTransport()).add(200, {"id": 9})
    results = connector(transport).push_many([contact("e1", email="e1@example.com"), viber])
    assert [r.error for r in results] == [None, None]
    assert [(c.method, c.path) for c in transport.calls] == [
        ("POST", "/api/v1/contacts"),
        ("GET", "/api/v1/importstatus/s-1"),
        ("POST", "/api/v1/contact"),
    ]
    assert [c["externalCustomerId"] for c in transport.calls[0].json["contacts"]] == ["e1"]


def test_bulk_401_is_destination_wide():
    transport = MockTransport().add(401, text="Unauthorized")
    with pytest.raises(AuthenticationError):
        connector(transport).push_many([contact()])


# ------------------------------------------------------------------------ the other calls


def test_delete_by_external_id_keeps_the_profile_recoverable():
    transport = MockTransport().add(200)
    connector(transport).delete(external_id="ext-1", remote_id="5")
    call = transport.calls[0]
    assert (call.method, call.path) == ("DELETE", "/api/v1/contact")
    assert requests.utils.urlparse(call.url).query == "externalCustomerId=ext-1&erase=false"


def test_delete_by_remote_id_when_there_is_no_external_id():
    transport = MockTransport().add(200)
    connector(transport).delete(external_id="", remote_id="5")
    assert transport.calls[0].url == BASE + "api/v1/contact/5?erase=false"


def test_deleting_a_contact_yespo_does_not_have_is_done():
    transport = MockTransport().add(404, text="Contact not found")
    connector(transport).delete(external_id="ext-1", remote_id=None)
    (call,) = transport.calls
    assert (call.method, call.path) == ("DELETE", "/api/v1/contact")
    assert requests.utils.urlparse(call.url).query == "externalCustomerId=ext-1&erase=false"


def test_delete_failures_other_than_404_raise():
    transport = MockTransport().add(500, text="oops")
    with pytest.raises(RetryableError):
        connector(transport).delete(external_id="ext-1", remote_id=None)


def test_test_connection_calls_the_search_with_one_row():
    transport = MockTransport().add(200, [])
    assert "Yespo" in connector(transport).test_connection()
    assert transport.calls[0].url == BASE + "api/v1/contacts?startindex=1&maxrows=1"


def test_test_connection_with_a_bad_key():
    transport = MockTransport().add(401, text="Unauthorized")
    with pytest.raises(AuthenticationError):
        connector(transport).test_connection()


def test_fetch_options_reads_fields_and_static_segments_in_every_shape():
    books = {
        "addressBook": {
            "addressBookId": 7200,
            "name": "Contacts",
            "fieldGroups": [
                {
                    "name": "Personal",
                    "fields": [
                        {"id": 79815, "name": "birthDate", "description": {"type": "DATE"}},
                        {"id": 79814, "name": "profession", "description": {"type": "TEXTFIELD"}},
                    ],
                },
                {
                    "name": "Loyalty",
                    "fields": {
                        "id": 79816,
                        "name": "loyaltyLevel",
                        "description": {"type": "TEXTFIELD"},
                    },
                },
            ],
        }
    }
    segments = [
        {"id": 200400, "name": "Newsletter Subscribers", "type": "Static"},
        {"id": 200402, "name": "Opened recently", "type": "Dynamic"},
    ]
    transport = MockTransport().add(200, books).add(200, segments)
    options = connector(transport).fetch_options()
    assert [(o.kind, o.remote_id, o.label, o.type) for o in options] == [
        ("field", "79815", "birthDate", "date"),
        ("field", "79814", "profession", "textfield"),
        ("field", "79816", "loyaltyLevel", "textfield"),
        ("list", "200400", "Newsletter Subscribers", "static"),
    ]
    assert [c.path for c in transport.calls] == ["/api/v1/addressbooks", "/api/v1/groups"]


def test_fetch_options_with_several_address_books_and_segment_pages():
    books = {
        "addressBook": [
            {"addressBookId": 1, "fieldGroups": {"name": "A", "fields": {"id": 1, "name": "one"}}},
            {
                "addressBookId": 2,
                "fieldGroups": {"name": "B", "fields": [{"id": 2, "name": "two"}]},
            },
        ]
    }
    page = [{"id": i, "name": f"s{i}", "type": "Static"} for i in range(500)]
    transport = MockTransport().add(200, books).add(200, page).add(200, [])
    options = connector(transport).fetch_options()
    assert [o.remote_id for o in options if o.kind == "field"] == ["1", "2"]
    assert len([o for o in options if o.kind == "list"]) == 500
    assert transport.calls[2].url.endswith("startindex=501&maxrows=500")


# ------------------------------------------------------------------ unreadable import status


def test_an_import_status_that_cannot_be_read_leaves_the_contacts_awaiting_not_failed():
    """The batch was accepted; a 5xx on the status check says nothing about the contacts."""
    transport = MockTransport().add(200, {"asyncSessionId": "s-7"})
    transport.add(500, text="Injected failure")
    first, second = connector(transport).push_many([contact("e1"), contact("e2", email="b@x.io")])
    assert [(r.error, r.awaiting, r.reference) for r in (first, second)] == [
        (None, True, "s-7"),
        (None, True, "s-7"),
    ]


def test_failed_contacts_still_fail_when_the_status_cannot_be_read():
    records = [contact("e1"), contact("e2", email="b@x.io")]
    transport = MockTransport().add(
        200,
        {"asyncSessionId": "s-7", "failedContacts": {"externalCustomerId": "e2", "error": "bad"}},
    )
    transport.add_error(requests.ConnectionError("refused"))
    first, second = connector(transport).push_many(records)
    assert first.awaiting and first.error is None
    assert isinstance(second.error, PermanentError) and not second.awaiting


def test_a_finished_import_names_the_remote_ids_from_its_mapping():
    transport = bulk_ok(MockTransport(), mapping=[{"dedupeValue": "e1", "contactId": 42}])
    (result,) = connector(transport).push_many([contact("e1")])
    assert (result.error, result.awaiting, result.remote_id, result.created) == (
        None,
        False,
        "42",
        None,
    )


def test_confirm_reads_each_session_once():
    transport = MockTransport()
    transport.add(200, {"status": "FINISHED", "mapping": [{"dedupeValue": "e1", "contactId": 9}]})
    transport.add(200, {"status": "IMPORTING"})
    transport.add(503, text="busy")
    transport.add(200, {"status": "ERROR", "description": "storage failure"})
    pending = [
        Unconfirmed(contact("e1"), "s-1"),
        Unconfirmed(contact("e2"), "s-1"),
        Unconfirmed(contact("e3"), "s-2"),
        Unconfirmed(contact("e4"), "s-3"),
        Unconfirmed(contact("e5"), "s-4"),
        Unconfirmed(contact("e6"), ""),
    ]
    answers = connector(transport).confirm(pending)
    assert [c.path for c in transport.calls] == [
        f"/api/v1/importstatus/s-{n}" for n in (1, 2, 3, 4)
    ]
    assert (answers[0].remote_id, answers[0].error) == ("9", None)
    assert (answers[1].remote_id, answers[1].error) == (None, None)
    assert answers[2] is None and answers[3] is None and answers[5] is None
    assert isinstance(answers[4].error, RetryableError)
    assert "storage failure" in str(answers[4].error)


def test_confirm_401_is_raised():
    transport = MockTransport().add(401, text="Unauthorized")
    with pytest.raises(AuthenticationError):
        connector(transport).confirm([Unconfirmed(contact("e1"), "s-1")])


def test_read_contact_searches_then_reads_the_full_contact():
    """The search answers `BaseContact` (no address, language or segments): the id it gives
    is read with GET /api/v1/contact/{id}. Channels and fields may be bare objects."""
    conn = connector(mapping=MappingRecord(fields={"custom:job": "79814"}, groups={3: "200401"}))
    conn.transport.add(200, [{"id": 42, "channels": [], "fields": []}])
    conn.transport.add(
        200,
        {
            "id": 42,
            "externalCustomerId": "TV1",
            "firstName": "John",
            "channels": [
                {"type": "email", "value": "j@x.com"},
                {"type": "sms", "value": "+380501234567"},
                {"type": "email", "value": "second@x.com"},
            ],
            "address": {"town": "Toulouse", "postcode": "31000"},
            "fields": {"id": 79814, "value": "writer"},
            "groups": {"id": 200401, "name": "VIP", "type": "Static"},
        },
    )
    theirs = conn.read_contact(external_id="TV1", remote_id=None)
    assert [c.url for c in conn.transport.calls] == [
        BASE + "api/v1/contacts?externalCustomerId=TV1&startindex=1&maxrows=1",
        BASE + "api/v1/contact/42",
    ]
    assert (theirs.email, theirs.phone, theirs.city, theirs.postal_code) == (
        "j@x.com",
        "+380501234567",
        "Toulouse",
        "31000",
    )
    assert theirs.channels == (ChannelRecord("email", "second@x.com"),)
    assert theirs.custom_values[0].value == "writer" and theirs.group_ids == frozenset({3})
    conn.transport.add(200, [])
    assert conn.read_contact(external_id="nobody", remote_id=None) is None


def test_a_state_from_before_clears_every_empty_field_through_the_bulk_call():
    """Yespo holds the contact (its id is stored) but not which fields it holds from us: every
    empty field is possibly held, so the push lists them in `contactFields` and awaits."""
    transport = MockTransport().add(200, {"asyncSessionId": "s-1"})
    result = connector(transport).push(contact(), RemoteState("777"))
    assert (result.awaiting, result.reference, result.remote_id) == (True, "s-1", "777")
    (call,) = transport.calls
    assert call.path == "/api/v1/contacts"
    assert call.json["dedupeOn"] == "externalCustomerId" and call.json["contactFields"]
    assert set(call.json["contactFields"]) >= set(yespo.payload_shape(result.payload)[0])
