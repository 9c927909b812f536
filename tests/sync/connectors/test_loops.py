"""Loops connector: mapping (golden payloads, the vendor's schema), status rules, refusals,
error classification and the call sequence, over the mocked transport (no network)."""

import datetime
import decimal
from functools import partial

import pytest
from openapi_schema_validator import OAS31Validator

from sync.connectors.base import (
    AuthenticationError,
    PermanentError,
    RetryableError,
)
from sync.connectors.loops import LoopsConnector
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    MappingRecord,
    RemoteState,
)
from tests.sync.connectors import harness
from tests.sync.connectors.harness import make_connector, resolve_refs, vendor_spec

PRODUCT_UPDATES = "cm06f5v0e45nf0ml5754o9cix"
NEWSLETTER = "cm16k73gq014h0mmj5b6jdi9r"
OK = {"success": True, "id": "cll6b3i8901a9jx0oyktl2m4u"}

# The contact of the Yespo seed example (seeds 000/002), a valid US number for +1234567890.
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
    channels=(ChannelRecord("webpush", "subscription-id-12345"),),
    custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),),
    group_ids=frozenset({1001}),
)
SEED_MAPPING = MappingRecord(
    fields={"birth_date": "birthDate", "custom:loyaltyLevel": "loyaltyLevel"},
    groups={1001: PRODUCT_UPDATES},
)
# The request of part B's "Contract — Loops".
CONTRACT_CONTACT = ContactRecord(
    id=42,
    external_id="django-42",
    first_name="Jane",
    last_name="Doe",
    email="jane@example.com",
    user_group="Customers",
    group_ids=frozenset({7}),
    custom_values=(
        CustomValueRecord("plan", "string", "pro"),
        CustomValueRecord("signup_date", "date", "2026-01-15"),
        CustomValueRecord("lifetime_value", "number", "120.5"),
        CustomValueRecord("vip", "boolean", "false"),
    ),
)
CONTRACT_MAPPING = MappingRecord(
    fields={
        "custom:plan": "plan",
        "custom:signup_date": "signupDate",
        "custom:lifetime_value": "lifetimeValue",
        "custom:vip": "isVip",
        "custom:old_field": "oldField",
    },
    groups={7: PRODUCT_UPDATES},
)


connector = partial(make_connector, LoopsConnector)


def golden(name):
    return harness.golden("loops", name)


def custom(*values, mapping=None):
    """A contact holding these custom values, with a connector mapping each by its name."""
    record = ContactRecord(
        id=1,
        external_id="ext-1",
        email="a@example.com",
        custom_values=tuple(CustomValueRecord(*v) for v in values),
    )
    mapping = mapping or MappingRecord(fields={f"custom:{v[0]}": v[0] for v in values})
    return connector(mapping=mapping), record


# ------------------------------------------------------------------------ golden payloads


def test_seed_contact_golden_payload():
    loops = connector(mapping=SEED_MAPPING)
    assert loops.build_payload(SEED_CONTACT, RemoteState()) == golden("seed_contact.json")


def test_seed_contact_with_every_address_field_mapped_golden_payload():
    mapping = MappingRecord(
        fields={
            **SEED_MAPPING.fields,
            "phone": "phone",
            "language": "language",
            "time_zone": "timeZone",
            "address_line": "addressLine",
            "city": "city",
            "region": "region",
            "country": "country",
            "postal_code": "postalCode",
            "gender": "gender",
            "tags": "tags",
        },
        groups={1001: PRODUCT_UPDATES, 1002: NEWSLETTER},
    )
    loops = connector(mapping=mapping)
    payload = loops.build_payload(SEED_CONTACT, RemoteState())
    assert payload == golden("seed_contact_all_mapped.json")


def test_contract_example_golden_payload():
    """The contract's example clears `oldField`: Loops holds it from an earlier push."""
    loops = connector(mapping=CONTRACT_MAPPING)
    held = RemoteState(accepted=True, held_keys=frozenset({"custom:old_field"}))
    payload = loops.build_payload(CONTRACT_CONTACT, held)
    assert payload == golden("contract_example.json")
    # never pushed: nothing to clear, so no null
    assert "oldField" not in loops.build_payload(CONTRACT_CONTACT, RemoteState())


def test_unmapped_fields_lists_and_empty_values_are_not_sent():
    loops = connector()
    record = ContactRecord(
        id=1,
        external_id="ext-1",
        first_name="",
        last_name="Solo",
        custom_values=(CustomValueRecord("plan", "string", "pro"),),
        group_ids=frozenset({3}),
        city="Paris",
    )
    assert loops.build_payload(record, RemoteState()) == {"userId": "ext-1", "lastName": "Solo"}


def test_standard_fields_go_out_typed():
    mapping = MappingRecord(
        fields={
            "consent_date": "consentDate",
            "last_latitude": "lat",
            "gdpr_marketing_consent": "gdpr",
            "tags": "tags",
            "sms_status": "smsStatus",
            "consent_ip": "consentIp",
        }
    )
    record = ContactRecord(
        id=1,
        external_id="ext-1",
        consent_date=datetime.datetime(
            2026, 1, 15, 10, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
        ),
        last_latitude=decimal.Decimal("48.856600"),
        gdpr_marketing_consent=False,
        tags=("vip", "newsletter"),
    )
    # Loops holds a consent IP from us: now empty here, it goes out as null (a clear)
    held = RemoteState(accepted=True, held_keys=frozenset({"consent_ip"}))
    payload = connector(mapping=mapping).build_payload(record, held)
    assert payload == {
        "userId": "ext-1",
        "consentDate": "2026-01-15T08:30:00Z",
        "lat": 48.8566,
        "gdpr": False,
        "tags": "vip, newsletter",
        "smsStatus": "no_marketing",
        "consentIp": None,
    }


@pytest.mark.parametrize(
    ("kind", "text", "sent"),
    [
        ("number", "12", 12),
        ("number", "-0.25", -0.25),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("date", "2026-02-28", "2026-02-28"),
        ("string", "Gold", "Gold"),
        ("string", "", None),
    ],
)
def test_custom_values_are_sent_as_json_types(kind, text, sent):
    loops, record = custom(("prop", kind, text))
    # held from an earlier push: an empty value is a clear (null)
    payload = loops.build_payload(record, RemoteState("cid", held_keys=frozenset({"custom:prop"})))
    assert payload["prop"] == sent and type(payload["prop"]) is type(sent)


def test_mailing_lists_carry_membership_and_subscription_flags():
    mapping = MappingRecord(
        groups={1: "listA", 2: "listB"},
        mailing_lists={10: "listC", 11: "listD", 12: "listE", 13: "listB"},
    )
    record = ContactRecord(
        id=1,
        external_id="ext-1",
        group_ids=frozenset({1}),
        subscriptions={10: True, 11: False, 13: True},
    )
    payload = connector(mapping=mapping).build_payload(record, RemoteState())
    assert payload["mailingLists"] == {
        "listA": True,
        "listB": True,
        "listC": True,
        "listD": False,
        "listE": False,
    }


# ------------------------------------------------------------------- subscribed (part A)


@pytest.mark.parametrize(
    ("status", "accepted", "expected"),
    [
        ("subscribed", None, "absent"),
        ("subscribed", "subscribed", "absent"),
        ("subscribed", "unsubscribed", True),
        ("subscribed", "bounced", True),
        ("subscribed", "no_marketing", True),
        ("unsubscribed", None, False),
        ("unsubscribed", "subscribed", False),
        ("bounced", "subscribed", False),
        ("no_marketing", None, False),
    ],
)
def test_subscribed_follows_part_a(status, accepted, expected):
    record = ContactRecord(id=1, external_id="ext-1", email="a@example.com", email_status=status)
    payload = connector().build_payload(record, RemoteState("cid", accepted))
    assert payload.get("subscribed", "absent") == expected


# ------------------------------------------------------------- refused before any request


@pytest.mark.parametrize("name", ["id", "listId", "softDeleteAt", "teamId", "updatedAt"])
def test_reserved_property_names_are_refused_before_any_request(name):
    loops = connector(mapping=MappingRecord(fields={"custom:plan": name}))
    transport = loops.transport
    record = ContactRecord(
        id=1, external_id="ext-1", custom_values=(CustomValueRecord("plan", "string", "pro"),)
    )
    with pytest.raises(PermanentError, match=f"'{name}', a reserved Loops property name"):
        loops.push(record, RemoteState())
    assert transport.calls == []


@pytest.mark.parametrize("name", ["email", "userId", "subscribed", "mailingLists"])
def test_mapping_to_a_native_field_is_refused(name):
    loops = connector(mapping=MappingRecord(fields={"city": name}))
    transport = loops.transport
    with pytest.raises(PermanentError, match="is a Loops contact field, not a custom property"):
        loops.push(ContactRecord(id=1, external_id="ext-1", city="Paris"), RemoteState())
    assert transport.calls == []


def test_values_over_500_characters_are_refused_never_truncated():
    loops, record = custom(("bio", "string", "x" * 500))
    assert loops.build_payload(record, RemoteState())["bio"] == "x" * 500
    loops, record = custom(("bio", "string", "x" * 501))
    with pytest.raises(PermanentError, match="501 characters long; Loops takes at most 500"):
        loops.push(record, RemoteState())
    long_name = ContactRecord(id=1, external_id="ext-1", first_name="J" * 501)
    with pytest.raises(PermanentError, match="'firstName' is 501 characters"):
        connector().build_payload(long_name, RemoteState())


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("number", "twelve", "is not a number"),
        ("number", "0.1000000000000000055511151231257827", "more digits than Loops keeps"),
        ("number", "9007199254740993", "too large"),
        ("boolean", "yes", "is not true or false"),
        ("date", "2026-02-30", "is not a date"),
    ],
)
def test_values_loops_cannot_hold_exactly_are_refused(kind, text, message):
    loops, record = custom(("prop", kind, text))
    with pytest.raises(PermanentError, match=message):
        loops.build_payload(record, RemoteState())


def test_two_fields_mapped_to_one_property_are_refused():
    mapping = MappingRecord(fields={"birth_date": "birthday", "custom:birthday": "birthday"})
    with pytest.raises(PermanentError, match="two fields are mapped to the Loops property"):
        connector(mapping=mapping).build_payload(SEED_CONTACT, RemoteState())


def test_unknown_mapping_source_is_refused():
    loops = connector(mapping=MappingRecord(fields={"shoe_size": "shoeSize"}))
    with pytest.raises(PermanentError, match="unknown field 'shoe_size'"):
        loops.build_payload(ContactRecord(id=1, external_id="ext-1"), RemoteState())


# -------------------------------------------------------------------------- the calls


def test_push_is_one_upsert_and_a_second_push_updates_the_same_contact():
    loops = connector(mapping=SEED_MAPPING)
    transport = loops.transport
    transport.add(200, OK).add(200, OK)
    first = loops.push(SEED_CONTACT, RemoteState())
    second = loops.push(SEED_CONTACT, RemoteState(first.remote_id, "subscribed"))
    assert [(c.method, c.path) for c in transport.calls] == [
        ("PUT", "/v1/contacts/update"),
        ("PUT", "/v1/contacts/update"),
    ]
    call = transport.calls[0]
    assert call.headers["Authorization"] == "Bearer test-api_key-value"
    assert call.headers["Content-Type"] == "application/json"
    assert call.json == golden("seed_contact.json")
    assert (first.remote_id, first.created, first.status_code) == (OK["id"], None, 200)
    assert (second.remote_id, second.created) == (OK["id"], False)
    assert first.payload == call.json


def test_a_new_id_for_a_stored_contact_counts_as_created():
    loops = connector()
    transport = loops.transport
    transport.add(200, {"success": True, "id": "cnew"})
    result = loops.push(ContactRecord(id=1, external_id="e"), RemoteState("cold", "subscribed"))
    assert (result.remote_id, result.created) == ("cnew", True)


def test_delete_by_user_id_only_and_already_gone_is_fine():
    loops = connector()
    transport = loops.transport
    transport.add(200, {"success": True, "message": "Contact deleted."})
    transport.add(404, {"success": False, "message": "Contact not found."})
    loops.delete(external_id="ext-1", remote_id="cid")
    loops.delete(external_id="ext-1", remote_id=None)
    assert [(c.method, c.path, c.json) for c in transport.calls] == [
        ("POST", "/v1/contacts/delete", {"userId": "ext-1"}),
    ] * 2


def test_delete_refused_is_permanent():
    loops = connector()
    transport = loops.transport
    transport.add(400, {"success": False, "message": "Include only one of `email` or `userId`."})
    with pytest.raises(PermanentError, match="Include only one"):
        loops.delete(external_id="ext-1", remote_id=None)


def test_test_connection_names_the_team():
    loops = connector()
    transport = loops.transport
    transport.add(200, {"success": True, "teamName": "Acme"})
    assert loops.test_connection() == "Connected to team Acme"
    assert (transport.calls[0].method, transport.calls[0].path) == ("GET", "/v1/api-key")


def test_fetch_options_reads_custom_properties_and_mailing_lists():
    loops = connector()
    transport = loops.transport
    transport.add(200, [{"key": "plan", "label": "Plan", "type": "string"}])
    transport.add(
        200,
        [{"id": PRODUCT_UPDATES, "name": "Product updates", "description": None, "isPublic": True}],
    )
    options = loops.fetch_options()
    assert [c.url for c in transport.calls] == [
        "https://platform.test/v1/contacts/properties?list=custom",
        "https://platform.test/v1/lists",
    ]
    assert [(o.kind, o.remote_id, o.label, o.type) for o in options] == [
        ("field", "plan", "Plan", "string"),
        ("list", PRODUCT_UPDATES, "Product updates", "public"),
    ]


def test_fetch_options_refuses_an_answer_that_is_not_a_list():
    loops = connector()
    transport = loops.transport
    transport.add(200, {"success": True})
    with pytest.raises(PermanentError, match="not a list"):
        loops.fetch_options()


# ------------------------------------------------------------------ error classification

RECORD = ContactRecord(id=1, external_id="ext-1", email="a@example.com")


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            400,
            {"success": False, "message": "Invalid email address."},
            PermanentError,
            "Invalid email address.",
        ),
        (401, {"error": "Invalid API key"}, AuthenticationError, "Invalid API key"),
        (
            401,
            {"success": False, "message": "Invalid API key"},
            AuthenticationError,
            "Invalid API key",
        ),
        (403, {"success": False, "message": "Forbidden"}, AuthenticationError, "Forbidden"),
        (404, {"success": False, "message": "Not found"}, PermanentError, "Not found"),
        (405, None, PermanentError, "METHOD_NOT_ALLOWED"),
        (
            409,
            {"success": False, "message": "Email or `userId` already exists."},
            PermanentError,
            "already exists",
        ),
        (500, {"success": False, "message": "Internal error"}, RetryableError, "Internal error"),
        (503, None, RetryableError, "SERVICE_UNAVAILABLE"),
    ],
)
def test_error_statuses_are_classified(status, body, error, message):
    loops = connector()
    transport = loops.transport
    transport.add(status, body)
    with pytest.raises(error) as caught:
        loops.push(RECORD, RemoteState())
    assert type(caught.value) is error
    assert caught.value.status == status and message in caught.value.message


def test_a_short_429_is_retried_in_a_worker_without_a_duplicate():
    loops = connector(quick_retries=1)
    transport = loops.transport
    transport.add(429, {"success": False, "message": "slow down"}, headers={"Retry-After": "0"})
    transport.add(200, OK)
    assert loops.push(RECORD, RemoteState()).remote_id == OK["id"]
    assert [c.method for c in transport.calls] == ["PUT", "PUT"]  # an upsert: safe to repeat


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"body": {"success": True}}, "no 'id'"),
        (
            {"body": {"success": False, "message": "Contact is suppressed."}},
            "Contact is suppressed.",
        ),
    ],
)
def test_unusable_success_answers_are_permanent(answer, message):
    loops = connector()
    transport = loops.transport
    transport.add(200, **answer)
    with pytest.raises(PermanentError, match=message) as caught:
        loops.push(RECORD, RemoteState())
    assert caught.value.status == 200


# ------------------------------------------------------------------ the vendor's schema


def vendor_excerpt():
    return vendor_spec("loops", "loops-openapi-1.21.7.json")


def update_schema(custom_properties=(), *, patched=True):
    """`ContactUpdateRequest` from Loops' OpenAPI 1.21.7, patched and closed.

    Patches: (1) SOURCES.md: the top-level `additionalProperties` (string|number|boolean) has
    no sibling `properties`, so it applies to every key and refuses `mailingLists`: replaced
    by the closed list below. (2) `null` added to the custom property types: Loops documents it
    as the reset value (update-contact page), the spec's oneOf forgets it. (3) mailing list
    values are booleans, as MailingListSubscriptions' description says. (4) `null` added to
    `firstName` and `lastName`: the same page's reset rule covers "a contact property", and
    Loops' own `Contact` schema types both string|null (`userGroup` stays a string: the
    connector never nulls it).
    Closed: the contact fields plus the given custom property names, nothing else."""
    root = vendor_excerpt()
    schema = resolve_refs(root["components"]["schemas"]["ContactUpdateRequest"], root)
    if not patched:
        return schema
    fields = schema["allOf"][0]
    fields["additionalProperties"]["oneOf"].append({"type": "null"})
    fields["properties"]["mailingLists"]["additionalProperties"] = {"type": "boolean"}
    for name in ("firstName", "lastName"):
        fields["properties"][name] = {"type": ["string", "null"]}
    schema["properties"] = {
        **{name: True for name in fields["properties"]},
        **{name: fields["additionalProperties"] for name in custom_properties},
    }
    schema["additionalProperties"] = False
    return schema


def schema_errors(payload, custom_properties=()):
    validator = OAS31Validator(update_schema(custom_properties))
    return [error.message for error in validator.iter_errors(payload)]


def test_the_unpatched_schema_refuses_mailing_lists_as_sources_md_says():
    validator = OAS31Validator(update_schema(patched=False))
    assert not validator.is_valid({"userId": "u1", "mailingLists": {PRODUCT_UPDATES: True}})
    assert validator.is_valid({"userId": "u1", "firstName": "Jo"})


@pytest.mark.parametrize(
    ("record", "mapping", "state"),
    [
        (SEED_CONTACT, SEED_MAPPING, RemoteState()),
        (CONTRACT_CONTACT, CONTRACT_MAPPING, RemoteState()),
        (
            ContactRecord(id=3, external_id="ext-3", email_status="bounced"),
            MappingRecord(),
            RemoteState(),
        ),
        (
            ContactRecord(id=4, external_id="ext-4", email="b@example.com", user_group="Trial"),
            MappingRecord(mailing_lists={5: NEWSLETTER}),
            RemoteState("cid", "unsubscribed"),
        ),
    ],
)
def test_payloads_match_the_vendor_schema(record, mapping, state):
    payload = connector(mapping=mapping).build_payload(record, state)
    assert schema_errors(payload, mapping.fields.values()) == []


def test_the_closed_schema_catches_a_stray_key():
    payload = connector(mapping=SEED_MAPPING).build_payload(SEED_CONTACT, RemoteState())
    assert schema_errors(payload, SEED_MAPPING.fields.values()) == []
    assert schema_errors({**payload, "firstname": "John"}, SEED_MAPPING.fields.values())
    assert schema_errors(
        {**payload, "mailingLists": {PRODUCT_UPDATES: "yes"}}, SEED_MAPPING.fields.values()
    )
    assert schema_errors({"firstName": "John"})  # neither email nor userId


def test_read_contact_and_the_subscribed_flag_as_drift():
    """Loops holds one `subscribed` flag: drift only where it mails a person our status says
    not to mail; an unsubscribe made in Loops is not undone (we would not send `true`)."""
    conn = connector()
    found = {
        "id": "c1",
        "email": "a@x.com",
        "firstName": "A",
        "lastName": None,
        "userId": "u1",
        "subscribed": True,
        "userGroup": "",
        "mailingLists": {},
        "optInStatus": None,
    }
    conn.transport.add(200, [found])
    conn.transport.add(200, [])
    theirs = conn.read_contact(external_id="u1", remote_id=None)
    assert conn.transport.calls[0].url.endswith("/v1/contacts/find?userId=u1")
    assert theirs.email_status == "subscribed" and theirs.last_name == ""
    assert conn.read_contact(external_id="u2", remote_id=None) is None
    ours = ContactRecord(id=1, external_id="u1", email_status="bounced")
    assert conn.field_differs("email_status", ours, theirs)
    unsubscribed_there = ContactRecord(id=None, external_id="u1", email_status="unsubscribed")
    subscribed_here = ContactRecord(id=1, external_id="u1", email_status="subscribed")
    assert not conn.field_differs("email_status", subscribed_here, unsubscribed_there)
