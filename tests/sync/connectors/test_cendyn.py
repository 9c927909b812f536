"""Cendyn CRM connector: mapping (golden payloads), status and consent rules, refusals, error
classification, the matching and bulk call sequences, over the mocked transport (no network)."""

import datetime
import decimal
import json
from functools import partial

import pytest
import requests

from sync.connectors import get_class
from sync.connectors.base import (
    AuthenticationError,
    ConnectorConfigurationError,
    PermanentError,
    RetryableError,
    Unconfirmed,
)
from sync.connectors.cendyn import CendynConnector
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    MappingRecord,
    RemoteState,
)
from tests.sync.connectors import harness
from tests.sync.connectors.harness import make_connector

ACCOUNT = "5a1b2c3d4e5f6a7b8c9d0e1f"
BASE = f"/v2/account/{ACCOUNT}"
REMOTE_ID = "550aac3da096734ce5000001"
OTHER_ID = "550aac3da096734ce5000002"
NEWSLETTER = "661f9a2be4b0a1c2d3e40001"
VIP = "661f9a2be4b0a1c2d3e40002"
SPA = "661f9a2be4b0a1c2d3e40003"
CONTACT_BODY = {"id": REMOTE_ID, "name_first": "John", "name_last": "Doe"}

# Seed 003 (the vendor's contact/update example), with our external ID; +447712345678 is a
# valid UK mobile number, so the seed's own phone is kept.
SEED_CONTACT = ContactRecord(
    id=1,
    external_id="JD-1001",
    first_name="John",
    last_name="Doe",
    email="johndoe@example.com",
    phone="+447712345678",
    tags=("tag1", "tag2"),
)
# The request of part B's "Contract — Cendyn CRM (PUSHTech)".
CONTRACT_CONTACT = ContactRecord(
    id=42,
    external_id="django-42",
    first_name="John",
    last_name="Doe",
    email="john@example.com",
    phone="+447712345678",
    language="es",
    gender="male",
    birth_date=datetime.date(1990, 1, 1),
    tags=("tag1",),
    custom_values=(CustomValueRecord("loyalty", "string", "gold"),),
    group_ids=frozenset({3}),
    gdpr_marketing_consent=True,
    terms_accepted=True,
    consent_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    consent_ip="203.0.113.7",
)
CONTRACT_MAPPING = MappingRecord(fields={"custom:loyalty": "loyalty_tier"}, groups={3: NEWSLETTER})
# Every field of our schema: the mappable standard fields mapped, extra channels (dropped).
FULL_CONTACT = ContactRecord(
    id=7,
    external_id="guest-7",
    first_name="Jane",
    last_name="Roe",
    email="jane.roe@example.co.uk",
    phone="+447911123456",
    language="en",
    time_zone="Europe/London",
    address_line="10 Downing Street",
    city="London",
    region="England",
    country="GB",
    postal_code="SW1A 2AA",
    birth_date=datetime.date(1985, 6, 15),
    gender="other",
    email_status="unsubscribed",
    sms_status="subscribed",
    privacy_consent=True,
    gdpr_marketing_consent=True,
    terms_accepted=True,
    consent_date=datetime.datetime(
        2026, 1, 1, 10, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    ),
    consent_ip="203.0.113.7",
    tags=("vip", "spa"),
    last_latitude=decimal.Decimal("51.503396"),
    last_longitude=decimal.Decimal("-0.127640"),
    user_group="Corporate",
    channels=(
        ChannelRecord("email", "jane@work.example.com"),
        ChannelRecord("webpush", "subscription-id-12345"),
    ),
    custom_values=(
        CustomValueRecord("loyalty", "string", "Gold"),
        CustomValueRecord("value", "number", "1520.75"),
        CustomValueRecord("vip", "boolean", "true"),
        CustomValueRecord("anniversary", "date", "2020-09-12"),
        CustomValueRecord("unmapped", "string", "stays here"),
    ),
    group_ids=frozenset({1}),
    subscriptions={5: False},
)
FULL_MAPPING = MappingRecord(
    fields={
        "gender": "gender_identity",
        "time_zone": "time_zone",
        "user_group": "guest_segment",
        "custom:loyalty": "loyalty_tier",
        "custom:value": "lifetime_value",
        "custom:vip": "is_vip",
        "custom:anniversary": "anniversary_date",
    },
    groups={1: NEWSLETTER, 2: VIP},
    mailing_lists={5: SPA},
)


connector = partial(make_connector, CendynConnector, options={"account_id": ACCOUNT})


def golden(name):
    return harness.golden("cendyn", name)


def payload(record, mapping=None):
    return connector(mapping=mapping).build_payload(record, RemoteState())


def minimal(**fields):
    return ContactRecord(id=1, external_id="ext-1", **fields)


def calls(transport):
    return [(c.method, c.path.removeprefix(BASE)) for c in transport.calls]


# ------------------------------------------------------------------------ golden payloads


def test_seed_contact_golden_payload():
    assert payload(SEED_CONTACT) == golden("seed_contact.json")


def test_contract_example_golden_payload():
    assert payload(CONTRACT_CONTACT, CONTRACT_MAPPING) == golden("contract_example.json")


def test_full_contact_golden_payload():
    assert payload(FULL_CONTACT, FULL_MAPPING) == golden("full_contact.json")


def test_empty_values_and_unmapped_fields_are_not_sent():
    record = minimal(
        first_name="",
        last_name="Solo",
        time_zone="Europe/Paris",
        user_group="Leads",
        custom_values=(CustomValueRecord("x", "string", "y"),),
        group_ids=frozenset({3}),
    )
    assert payload(record) == {
        "user_id": "ext-1",
        "name_last": "Solo",
        "channel_subscriptions": [
            {"channel": "email", "blacklisted": False},
            {"channel": "sms", "blacklisted": True},
        ],
        "gdpr_marketing_consent": False,
        "gdpr_accept_terms": False,
    }


def test_mapped_field_without_a_value_is_not_sent():
    mapping = MappingRecord(fields={"custom:loyalty": "loyalty_tier", "time_zone": "time_zone"})
    record = minimal(custom_values=(CustomValueRecord("loyalty", "string", ""),))
    body = payload(record, mapping)
    assert "loyalty_tier" not in body and "time_zone" not in body


# ----------------------------------------------------------------- status and consent


@pytest.mark.parametrize(
    ("status", "blacklisted"),
    [
        ("subscribed", False),
        ("unsubscribed", True),
        ("bounced", True),
        ("no_marketing", True),
    ],
)
def test_email_blacklisted_unless_subscribed(status, blacklisted):
    channels = payload(minimal(email_status=status))["channel_subscriptions"]
    assert channels[0] == {"channel": "email", "blacklisted": blacklisted}


@pytest.mark.parametrize(
    ("status", "blacklisted"),
    [
        ("subscribed", False),
        ("unsubscribed", True),
        ("failed", True),
        ("no_marketing", True),
    ],
)
def test_sms_blacklisted_unless_subscribed(status, blacklisted):
    channels = payload(minimal(sms_status=status))["channel_subscriptions"]
    assert channels[1] == {"channel": "sms", "blacklisted": blacklisted}


def test_consent_fields():
    record = minimal(
        gdpr_marketing_consent=True,
        terms_accepted=False,
        privacy_consent=True,
        consent_date=datetime.datetime(2026, 3, 1, 12, 0, 5),  # naive: read as UTC
        consent_ip="2001:db8::1",
    )
    body = payload(record)
    assert body["gdpr_marketing_consent"] is True and body["gdpr_accept_terms"] is False
    assert body["gdpr_date"] == "2026-03-01T12:00:05Z"
    assert body["gdpr_remote_ip"] == "2001:db8::1"
    assert "privacy_consent" not in body  # no native slot: sent only when mapped


def test_privacy_consent_goes_to_its_mapped_custom_field():
    mapping = MappingRecord(fields={"privacy_consent": "privacy_ok"})
    assert payload(minimal(privacy_consent=False), mapping)["privacy_ok"] is False


# ------------------------------------------------------------------------ field rules


@pytest.mark.parametrize(("gender", "sent"), [("male", "MALE"), ("female", "FEMALE")])
def test_gender_upper_case(gender, sent):
    assert payload(minimal(gender=gender))["gender"] == sent


def test_gender_other_is_left_out_unless_mapped():
    assert "gender" not in payload(minimal(gender="other"))
    body = payload(minimal(gender="other"), MappingRecord(fields={"gender": "gender_identity"}))
    assert body["gender_identity"] == "other" and "gender" not in body


def test_unknown_gender_refused():
    with pytest.raises(PermanentError, match="gender"):
        payload(minimal(gender="x"))


def test_language_upper_case_and_refused_when_not_iso2():
    assert payload(minimal(language="es"))["language"] == "ES"
    with pytest.raises(PermanentError, match="ISO-2"):
        payload(minimal(language="spa"))


@pytest.mark.parametrize(
    ("phone", "country", "split"),
    [
        ("+447712345678", "", ("44", "7712345678")),
        ("+12015550123", "", ("1", "2015550123")),
        ("+61412345678", "", ("61", "412345678")),
        ("+390612345678", "", ("39", "0612345678")),  # the Italian leading zero is kept
        ("0612345678", "IT", ("39", "0612345678")),  # without +: read in the contact's country
    ],
)
def test_phone_split_into_country_code_and_number(phone, country, split):
    body = payload(minimal(phone=phone, country=country))
    assert (body["phone_countrycode"], body["phone_number"]) == split


def test_unreadable_phone_refused():
    with pytest.raises(PermanentError, match="phone number"):
        payload(minimal(phone="12345"))


def test_first_email_and_phone_channel_used_when_primary_is_empty_extra_ones_dropped():
    record = minimal(
        channels=(
            ChannelRecord("email", "a@example.com"),
            ChannelRecord("email", "b@example.com"),
            ChannelRecord("sms", "+12015550123"),
            ChannelRecord("webpush", "token"),
        )
    )
    body = payload(record)
    assert body["email"] == "a@example.com"
    assert (body["phone_countrycode"], body["phone_number"]) == ("1", "2015550123")
    assert "b@example.com" not in json.dumps(body) and "token" not in json.dumps(body)


def test_coordinates_are_numbers():
    body = payload(
        minimal(
            last_latitude=decimal.Decimal("27.994401"), last_longitude=decimal.Decimal("-81.726896")
        )
    )
    assert body["last_latitude"] == 27.994401 and body["last_longitude"] == -81.726896


def test_no_external_id_refused():
    with pytest.raises(PermanentError, match="external ID"):
        payload(ContactRecord(id=1, external_id="", email="a@example.com"))


@pytest.mark.parametrize(
    ("kind", "text", "sent"),
    [
        ("string", "Gold", "Gold"),
        ("number", "12.5", 12.5),
        ("number", "120", 120),
        ("number", "-3", -3),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("date", "2026-01-15", "2026-01-15T00:00:00Z"),
    ],
)
def test_custom_values_keep_their_type(kind, text, sent):
    mapping = MappingRecord(fields={"custom:f": "field"})
    body = payload(minimal(custom_values=(CustomValueRecord("f", kind, text),)), mapping)
    assert body["field"] == sent and type(body["field"]) is type(sent)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("number", "abc"),
        ("number", "NaN"),
        ("number", "0.12345678901234567890123"),
        ("boolean", "maybe"),
        ("date", "2026-13-01"),
    ],
)
def test_custom_value_that_does_not_fit_is_refused(kind, text):
    mapping = MappingRecord(fields={"custom:f": "field"})
    with pytest.raises(PermanentError, match="f: "):
        payload(minimal(custom_values=(CustomValueRecord("f", kind, text),)), mapping)


def test_mapping_onto_a_native_key_is_refused():
    mapping = MappingRecord(fields={"custom:f": "email"})
    with pytest.raises(PermanentError, match="'email', a Cendyn contact field"):
        payload(minimal(custom_values=(CustomValueRecord("f", "string", "x"),)), mapping)


def test_two_fields_mapped_to_one_custom_field_are_refused():
    mapping = MappingRecord(fields={"time_zone": "zone", "custom:tz": "zone"})
    with pytest.raises(PermanentError, match="both mapped"):
        payload(minimal(time_zone="Europe/Paris"), mapping)


def test_unknown_mapping_source_is_refused():
    with pytest.raises(PermanentError, match="unknown field"):
        payload(minimal(), MappingRecord(fields={"shoe_size": "shoe"}))


def test_list_subscriptions():
    mapping = MappingRecord(groups={1: NEWSLETTER, 2: VIP, 3: VIP}, mailing_lists={5: SPA, 6: VIP})
    record = minimal(group_ids=frozenset({1, 3}), subscriptions={5: True, 6: False})
    assert payload(record, mapping)["list_subscriptions"] == [
        {"list_id": NEWSLETTER, "subscribed": True},
        {"list_id": VIP, "subscribed": True},  # group 3 is a member; list 6 does not undo it
        {"list_id": SPA, "subscribed": True},
    ]


def test_unsubscribed_mailing_list_sends_false():
    mapping = MappingRecord(mailing_lists={5: SPA})
    body = payload(minimal(subscriptions={5: False}), mapping)
    assert body["list_subscriptions"] == [{"list_id": SPA, "subscribed": False}]


# ------------------------------------------------------------------ configuration


def test_class_attributes_and_registry():
    assert get_class("cendyn") is CendynConnector
    assert CendynConnector.default_base_url == "https://api.eu.cendyncrm.com/"
    assert CendynConnector.regions == {
        "eu": "https://api.eu.cendyncrm.com/",
        "us": "https://api.us.cendyncrm.com/",
    }
    assert CendynConnector.default_rate_limit == 10
    assert CendynConnector.batch_size == 5000 and CendynConnector.supports_delete
    assert {n: c.field for n, c in CendynConnector.credentials.items()} == {"secret": "key_env"}
    assert [s.name for s in CendynConnector.destination_settings if s.required] == ["account_id"]


def test_missing_account_id_is_a_configuration_error():
    with pytest.raises(ConnectorConfigurationError, match="account ID"):
        connector(options={"account_id": ""})


def test_headers_and_path():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, CONTACT_BODY)
    cendyn.push(SEED_CONTACT, RemoteState(REMOTE_ID))
    call = transport.calls[0]
    assert call.url == f"https://platform.test{BASE}/contact/{REMOTE_ID}"
    assert call.headers["Authorization"] == "Token token=test-secret-value"
    assert call.headers["Accept"] == "application/json"
    assert call.headers["Content-Type"] == "application/json"
    assert "test-secret-value" not in json.dumps([e.__dict__ for e in cendyn.exchanges])


# ----------------------------------------------------------------------- matching


def test_stored_id_updates_in_place():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, CONTACT_BODY)
    result = cendyn.push(SEED_CONTACT, RemoteState(REMOTE_ID))
    assert calls(transport) == [("PUT", f"/contact/{REMOTE_ID}")]
    assert transport.calls[0].json == golden("seed_contact.json")
    assert (result.remote_id, result.created, result.status_code) == (REMOTE_ID, False, 200)


def test_no_stored_id_finds_by_user_id_then_updates_the_match():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"contacts": [{"id": OTHER_ID, "user_id": "JD-1001"}]})
    transport.add(200, {**CONTACT_BODY, "id": OTHER_ID})
    result = cendyn.push(SEED_CONTACT, RemoteState())
    assert calls(transport) == [("GET", "/contact"), ("PUT", f"/contact/{OTHER_ID}")]
    assert transport.calls[0].url.endswith("/contact?user_id=JD-1001")
    assert (result.remote_id, result.created) == (OTHER_ID, False)


def test_no_stored_id_and_no_match_creates():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"contacts": []})
    transport.add(201, CONTACT_BODY)
    result = cendyn.push(SEED_CONTACT, RemoteState())
    assert calls(transport) == [("GET", "/contact"), ("POST", "/contact")]
    assert transport.calls[1].json == golden("seed_contact.json")
    assert (result.remote_id, result.created, result.status_code) == (REMOTE_ID, True, 201)


def test_stored_id_gone_falls_back_to_the_lookup():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(404, {"error": "Contact not found"})
    transport.add(200, {"contacts": [{"id": OTHER_ID}]})
    transport.add(200, {"id": OTHER_ID})
    result = cendyn.push(SEED_CONTACT, RemoteState(REMOTE_ID))
    assert calls(transport) == [
        ("PUT", f"/contact/{REMOTE_ID}"),
        ("GET", "/contact"),
        ("PUT", f"/contact/{OTHER_ID}"),
    ]
    assert (result.remote_id, result.created) == (OTHER_ID, False)


def test_stored_id_gone_and_no_match_creates():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(404, {"error": "Contact not found"})
    transport.add(200, {"contacts": []})
    transport.add(201, {"id": OTHER_ID})
    result = cendyn.push(SEED_CONTACT, RemoteState(REMOTE_ID))
    assert [m for m, _ in calls(transport)] == ["PUT", "GET", "POST"]
    assert (result.remote_id, result.created) == (OTHER_ID, True)


def test_update_refused_otherwise_is_not_retried_as_a_create():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(400, {"error": "gender must be MALE or FEMALE"})
    with pytest.raises(PermanentError, match="gender must be MALE or FEMALE"):
        cendyn.push(SEED_CONTACT, RemoteState(REMOTE_ID))
    assert len(transport.calls) == 1


def test_new_contact_without_email_or_phone_is_refused_before_the_create():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"contacts": []})
    with pytest.raises(PermanentError, match="email or a phone"):
        cendyn.push(minimal(first_name="Nobody"), RemoteState())
    assert calls(transport) == [("GET", "/contact")]


def test_create_is_sent_once_even_with_quick_retries():
    cendyn = connector(quick_retries=2)
    transport = cendyn.transport
    transport.add(200, {"contacts": []})
    transport.add_error(requests.ReadTimeout("read timed out"))
    with pytest.raises(RetryableError, match="timed out"):
        cendyn.push(SEED_CONTACT, RemoteState())
    assert calls(transport) == [("GET", "/contact"), ("POST", "/contact")]
    assert cendyn.quick_retries == 2


def test_lookup_and_update_use_quick_retries():
    cendyn = connector(quick_retries=2)
    transport = cendyn.transport
    transport.add(503, {"error": "Service unavailable"})
    transport.add(200, {"contacts": [{"id": OTHER_ID}]})
    transport.add(500, {"error": "Internal Server Error"})
    transport.add(200, {"id": OTHER_ID})
    assert cendyn.push(SEED_CONTACT, RemoteState()).remote_id == OTHER_ID
    assert [m for m, _ in calls(transport)] == ["GET", "GET", "PUT", "PUT"]


def test_lookup_answer_without_contacts_list():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"name_first": "John"})
    with pytest.raises(PermanentError, match="'contacts'") as err:
        cendyn.push(SEED_CONTACT, RemoteState())
    assert err.value.status == 200


# ----------------------------------------------------------------- error classification


def push_answered(*answers, state=None):
    cendyn = connector()
    transport = cendyn.transport
    state = state or RemoteState(REMOTE_ID)
    for answer in answers:
        if isinstance(answer, Exception):
            transport.add_error(answer)
        else:
            transport.add(*answer)
    return cendyn.push(SEED_CONTACT, state)


def test_400_is_permanent_with_the_platform_message():
    with pytest.raises(PermanentError) as err:
        push_answered((400, {"error": "unknown parameter 'emial'"}))
    assert err.value.status == 400 and err.value.message == "unknown parameter 'emial'"
    assert str(err.value) == "Cendyn CRM HTTP 400: unknown parameter 'emial'"


def test_404_on_the_lookup_is_permanent():
    route = "Route not found, please visit https://developers.cendyncrm.com/api/reference"
    with pytest.raises(PermanentError, match="Route not found") as err:
        push_answered((404, {"error": route}), state=RemoteState())
    assert err.value.status == 404


def test_409_is_permanent():
    with pytest.raises(PermanentError) as err:
        push_answered((409, {"error": "conflict"}))
    assert err.value.status == 409 and not err.value.retryable


def test_201_without_an_id_is_permanent():
    with pytest.raises(PermanentError, match="no 'id'") as err:
        push_answered((200, {"contacts": []}), (201, {"name_first": "John"}), state=RemoteState())
    assert err.value.status == 201


def test_error_message_reads_the_error_key():
    cendyn = connector()
    assert cendyn.error_message({"error": "bad"}) == "bad"
    assert cendyn.error_message({"message": "other"}) == "other"
    assert cendyn.error_message(None) == ""


# ------------------------------------------------------------------------ delete


def test_delete_by_stored_id():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, CONTACT_BODY)
    cendyn.delete(external_id="JD-1001", remote_id=REMOTE_ID)
    assert calls(transport) == [("DELETE", f"/contact/{REMOTE_ID}")]


def test_delete_without_stored_id_finds_by_user_id():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"contacts": [{"id": OTHER_ID}]})
    transport.add(200, {"id": OTHER_ID})
    cendyn.delete(external_id="JD-1001", remote_id=None)
    assert calls(transport) == [("GET", "/contact"), ("DELETE", f"/contact/{OTHER_ID}")]


def test_delete_not_found_is_nothing_to_do():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(404, {"error": "Contact not found"})
    transport.add(200, {"contacts": []})
    cendyn.delete(external_id="JD-1001", remote_id=REMOTE_ID)
    assert calls(transport) == [("DELETE", f"/contact/{REMOTE_ID}"), ("GET", "/contact")]


def test_delete_failure_is_raised():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(503, {"error": "Service unavailable"})
    with pytest.raises(RetryableError):
        cendyn.delete(external_id="JD-1001", remote_id=REMOTE_ID)


# -------------------------------------------------------------- connection and options


def test_test_connection_reads_custom_fields():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"custom_fields": [{"_id": "1", "name": "loyalty_tier"}]})
    assert cendyn.test_connection() == f"Connected to account {ACCOUNT} (1 custom fields)"
    assert calls(transport) == [("GET", "/custom_fields")]


def test_test_connection_refused():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(401, {"error": f"authorization failure for account: {ACCOUNT}"})
    with pytest.raises(AuthenticationError):
        cendyn.test_connection()


def test_fetch_options():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(
        200,
        {
            "custom_fields": [
                {
                    "_id": "5853d8c2edb7aacab9000045",
                    "name": "loyalty_tier",
                    "label": "Loyalty tier",
                    "type": "string",
                },
                {"_id": "5853d8c2edb7aacab9000046", "name": "is_vip", "type": "boolean"},
                {"_id": "broken"},
            ]
        },
    )
    transport.add(200, [{"_id": "list1_id", "name": "First List"}, {"id": VIP}])  # bare list
    options = cendyn.fetch_options()
    assert [(o.kind, o.remote_id, o.label, o.type) for o in options] == [
        ("field", "loyalty_tier", "Loyalty tier", "string"),
        ("field", "is_vip", "is_vip", "boolean"),
        ("list", "list1_id", "First List", ""),
        ("list", VIP, VIP, ""),
    ]
    assert calls(transport) == [("GET", "/custom_fields"), ("GET", "/lists")]


def test_fetch_options_refuses_an_unreadable_answer():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(200, {"fields": "?"})
    with pytest.raises(PermanentError, match="custom_fields"):
        cendyn.fetch_options()


# -------------------------------------------------------------------------- bulk


def bulk_answer(status, **extra):
    return {
        "bulk": {
            "_id": "b0000000000000000000000b",
            "number_of_contacts": 2,
            "match_contact_user_id": True,
            "status": status,
            **extra,
        }
    }


def two_records():
    return [SEED_CONTACT, ContactRecord(id=2, external_id="JD-1002", email="b@example.com")]


BULK_ID = "b0000000000000000000000b"


def test_bulk_posts_once_and_leaves_its_contacts_awaiting_confirmation():
    """The bulk GET documents only "queue": the connector never polls it for an outcome."""
    cendyn = connector()
    transport = cendyn.transport
    transport.add(201, bulk_answer("queue"))
    results = cendyn.push_many(two_records())
    assert calls(transport) == [("POST", "/contact/bulk")]
    body = transport.calls[0].json
    assert body["match_contact_user_id"] is True
    assert body["contacts"][0] == golden("seed_contact.json")
    assert [(r.external_id, r.error, r.awaiting, r.reference) for r in results] == [
        ("JD-1001", None, True, BULK_ID),
        ("JD-1002", None, True, BULK_ID),
    ]


def test_bulk_5xx_is_each_contacts_retryable_error():
    cendyn = connector()
    cendyn.transport.add(503, {"error": "busy"})
    results = cendyn.push_many(two_records())
    assert all(isinstance(r.error, RetryableError) and not r.awaiting for r in results)


def test_bulk_401_is_raised():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(401, {"error": f"authorization failure for account: {ACCOUNT}"})
    with pytest.raises(AuthenticationError):
        cendyn.push_many(two_records())


def test_bulk_answer_without_id_fails_every_contact():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(201, {"bulk": {"status": "queue"}})
    results = cendyn.push_many(two_records())
    assert all(isinstance(r.error, PermanentError) and "_id" in str(r.error) for r in results)


def test_bulk_contact_that_cannot_be_built_is_not_sent():
    cendyn = connector()
    transport = cendyn.transport
    transport.add(201, bulk_answer("queue"))
    bad = ContactRecord(id=3, external_id="JD-bad", email="c@example.com", language="xyz")
    results = cendyn.push_many([SEED_CONTACT, bad])
    assert [c["user_id"] for c in transport.calls[0].json["contacts"]] == ["JD-1001"]
    assert results[0].awaiting and results[0].error is None
    assert isinstance(results[1].error, PermanentError) and not results[1].awaiting


def test_bulk_splits_at_5000_contacts():
    cendyn = connector()
    transport = cendyn.transport
    records = [
        ContactRecord(id=i, external_id=f"c-{i}", email=f"c{i}@example.com") for i in range(5001)
    ]
    transport.add(201, bulk_answer("queue"))
    transport.add(201, {"bulk": {**bulk_answer("queue")["bulk"], "_id": "second"}})
    results = cendyn.push_many(records)
    posts = [c for c in transport.calls if c.method == "POST"]
    assert [len(c.json["contacts"]) for c in posts] == [5000, 1]
    assert len(results) == 5001 and all(r.error is None and r.awaiting for r in results)
    assert (results[0].reference, results[-1].reference) == (BULK_ID, "second")


# ------------------------------------------------------------------ confirmation


def pending(*records):
    return [Unconfirmed(record, BULK_ID) for record in records]


def held(record, **changes):
    """The contact as Cendyn's contact/list answer shows it (its example's keys)."""
    sent = connector().build_payload(record, RemoteState())
    keys = ("user_id", "email", "name_first", "name_last", "phone_countrycode", "phone_number")
    return {"id": "c-" + record.external_id, **{k: sent[k] for k in keys if k in sent}, **changes}


def test_confirm_reads_each_contact_back_by_user_id():
    cendyn = connector()
    transport = cendyn.transport
    first, second = two_records()
    transport.add(200, {"contacts": [held(first)]})
    transport.add(200, {"contacts": []})  # not applied yet
    answers = cendyn.confirm(pending(first, second))
    assert [
        (c.method, c.path.removeprefix(BASE), c.url.split("?")[1]) for c in transport.calls
    ] == [
        ("GET", "/contact", "user_id=JD-1001"),
        ("GET", "/contact", "user_id=JD-1002"),
    ]
    assert answers[0].error is None and not answers[0].awaiting
    assert answers[0].remote_id == "c-JD-1001" and answers[0].created is None
    assert answers[1] is None


def test_confirm_waits_while_the_platform_holds_an_older_version():
    cendyn = connector()
    first, _ = two_records()
    cendyn.transport.add(200, {"contacts": [held(first, name_first="Before the bulk")]})
    assert cendyn.confirm(pending(first)) == [None]


def test_confirm_compares_the_email_case_insensitively():
    cendyn = connector()
    first, _ = two_records()
    cendyn.transport.add(200, {"contacts": [held(first, email=first.email.upper())]})
    (answer,) = cendyn.confirm(pending(first))
    assert answer is not None and answer.remote_id == "c-JD-1001"


def test_confirm_that_cannot_be_made_is_unknown_not_failed():
    cendyn = connector()
    first, second = two_records()
    cendyn.transport.add(503, {"error": "busy"})
    cendyn.transport.add_error(requests.ConnectionError("refused"))
    assert cendyn.confirm(pending(first, second)) == [None, None]


def test_confirm_401_is_raised():
    cendyn = connector()
    cendyn.transport.add(401, {"error": f"authorization failure for account: {ACCOUNT}"})
    with pytest.raises(AuthenticationError):
        cendyn.confirm(pending(SEED_CONTACT))


def test_read_contact_joins_the_phone_and_reads_our_codes():
    conn = connector()
    conn.transport.add(
        200,
        {
            "contacts": [
                {
                    "id": "a1",
                    "user_id": "u1",
                    "email": "j@x.com",
                    "phone_countrycode": "44",
                    "phone_number": "7712345678",
                    "language": "ES",
                    "gender": "MALE",
                    "born_date": "1990-01-01T00:00:00Z",
                    "tags": ["t1"],
                }
            ]
        },
    )
    theirs = conn.read_contact(external_id="u1", remote_id=None)
    assert conn.transport.calls[0].url.endswith(f"{BASE}/contact?user_id=u1")
    assert (theirs.phone, theirs.language, theirs.gender) == ("+447712345678", "es", "male")
    assert theirs.birth_date == datetime.date(1990, 1, 1) and theirs.tags == ("t1",)
    ours = ContactRecord(id=1, external_id="u1", phone="+44 7712 345678", country="GB")
    assert not conn.field_differs("phone", ours, theirs)
    assert "list_subscriptions" not in CendynConnector.readable_fields
    assert not {"gdpr_marketing_consent", "email_status"} & CendynConnector.readable_fields
