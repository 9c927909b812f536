"""iVvy connector, with the mocked transport: signing, golden payloads, status and consent
rules, matching and error classification (shared/platforms.md, "Contract — iVvy")."""

import datetime
import decimal
import hashlib
import json
from functools import partial

import pytest
import requests

from sync.connectors.base import (
    AuthenticationError,
    PartialOptionsError,
    PermanentError,
)
from sync.connectors.ivvy import IvvyConnector, signature, string_to_sign
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    ExternalUrlRecord,
    MappingRecord,
    RemoteState,
)
from tests.sync.connectors import harness
from tests.sync.connectors.harness import MockTransport, make_connector

FIXED_NOW = datetime.datetime(2026, 1, 1, 10, 0, 0, tzinfo=datetime.UTC)
CREDENTIALS = {"api_key": "key-123", "api_secret": "secret-456"}
ADD = "/api/1.0/contact?action=addOrUpdateContact"
LIST = "/api/1.0/contact?action=getContactList"


def golden(name):
    return harness.golden("ivvy", name)


def bobby(**changes):
    """The vendor's example contact (the contract's request example)."""
    fields = dict(
        id=1,
        external_id="12345",
        first_name="Bobby",
        last_name="Smith",
        email="bobby@example.com",
        email_status="subscribed",
        sms_status="no_marketing",
        privacy_consent=True,
        custom_values=(CustomValueRecord("newsletter_optin", "string", "No"),),
        group_ids=frozenset({1}),
        external_urls=(ExternalUrlRecord("crm", "https://crm.example.com/c/12345", "CRM"),),
    )
    return ContactRecord(**{**fields, **changes})


BOBBY_MAPPING = MappingRecord(fields={"custom:newsletter_optin": "33443"}, groups={1: "10"})


connector = partial(
    make_connector,
    IvvyConnector,
    mapping=BOBBY_MAPPING,
    credentials=CREDENTIALS,
    now=lambda: FIXED_NOW,
)


def urls(calls):
    return [requests.utils.urlparse(c.url).path + "?" + c.url.split("?", 1)[1] for c in calls]


# ---------------------------------------------------------------------------------- signing


def test_string_to_sign_matches_ivvys_documented_example():
    # getting-started/creating-the-request/signing-the-request.md, its example request
    body = b'{"example":"body"}'
    md5 = hashlib.md5(body).hexdigest()
    assert md5 == "a09f600c77a6dbd947db24c61e8935ca"
    text = string_to_sign(
        method="POST",
        content_md5=md5,
        content_type="application/json",
        request_uri="/api/1.0/test?action=ping",
        ivvy_headers={"IVVY-Date": "2012-04-03 22:23:24"},
    )
    assert text == (
        "posta09f600c77a6dbd947db24c61e8935caapplication/json/api/1.0/test"
        "?action=ping1.0ivvydate=2012-04-03 22:23:24"
    )
    assert signature("foo", text) == "8c7a8f2bcd32aa06d9c4097653bee4106b64fe81"


def test_string_to_sign_orders_ivvy_headers_and_lowercases_everything():
    text = string_to_sign(
        method="POST",
        content_md5="ABC",
        content_type="application/json",
        request_uri="/API/1.0/contact?action=getContactList",
        ivvy_headers={"IVVY_Zone": "X", "IVVY-Date": "2026-01-01 10:00:00", "X-Other": "ignored"},
    )
    assert text == (
        "postabcapplication/json/api/1.0/contact?action=getcontactlist1.0"
        "ivvydate=2026-01-01 10:00:00&ivvyzone=x"
    )


def test_every_request_is_signed_with_a_fixed_date():
    transport = MockTransport().add(200, {"success": True, "id": 7})
    conn = connector(transport)
    conn.push(bobby(), RemoteState(remote_id="7"))
    (call,) = transport.calls
    md5 = hashlib.md5(call.body).hexdigest()
    expected = signature(
        "secret-456",
        string_to_sign(
            method="POST",
            content_md5=md5,
            content_type="application/json",
            request_uri=ADD,
            ivvy_headers={"IVVY-Date": "2026-01-01 10:00:00"},
        ),
    )
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Content-MD5"] == md5
    assert call.headers["IVVY-Date"] == "2026-01-01 10:00:00"
    assert call.headers["X-Api-Version"] == "1.0"
    assert call.headers["X-Api-Authorization"] == f"IWS key-123:{expected}"
    assert "Date" not in call.headers


def test_ivvy_date_is_utc_whatever_the_clock_zone():
    transport = MockTransport().add(200, {"success": True})
    conn = connector(transport)
    sydney = datetime.timezone(datetime.timedelta(hours=11))
    conn.now = lambda: datetime.datetime(2026, 1, 1, 21, 0, 0, tzinfo=sydney)
    conn.test_connection()
    assert transport.calls[0].headers["IVVY-Date"] == "2026-01-01 10:00:00"


def test_empty_body_is_signed_with_the_md5_of_nothing():
    transport = MockTransport().add(200, {"success": True, "timestamp": "2026-01-01 10:00:00"})
    assert "ping" in connector(transport).test_connection()
    (call,) = transport.calls
    assert call.body == b""
    assert call.url == "https://platform.test/api/1.0/test?action=ping"
    assert call.method == "POST"
    assert call.headers["Content-MD5"] == "d41d8cd98f00b204e9800998ecf8427e"


def test_signature_covers_the_path_below_the_base_url():
    transport = MockTransport().add(200, {"success": True})
    conn = make_connector(
        IvvyConnector, transport, credentials=CREDENTIALS, base_url="http://127.0.0.1:9/ivvy/"
    )
    conn.now = lambda: FIXED_NOW
    conn.test_connection()
    expected = signature(
        "secret-456",
        string_to_sign(
            method="POST",
            content_md5=hashlib.md5(b"").hexdigest(),
            content_type="application/json",
            request_uri="/ivvy/api/1.0/test?action=ping",
            ivvy_headers={"IVVY-Date": "2026-01-01 10:00:00"},
        ),
    )
    assert transport.calls[0].headers["X-Api-Authorization"].endswith(f":{expected}")


# ---------------------------------------------------------------------------- golden payloads


def test_vendor_example_contact_maps_to_the_contract_request():
    conn = connector(options={"update_if_exists": True})
    assert conn.build_payload(bobby(), RemoteState()) == golden("bobby_smith_create.json")


def test_vendor_example_update_with_a_known_id():
    mapping = MappingRecord(
        fields={"custom:newsletter_optin": "33443"},
        groups={1: "10"},
        mailing_lists={5: "11", 6: "12"},
    )
    record = bobby(
        phone="+61412345678",
        email_status="unsubscribed",
        sms_status="subscribed",
        custom_values=(CustomValueRecord("newsletter_optin", "string", "Yes"),),
        subscriptions={5: True, 6: False},
    )
    conn = connector(mapping=mapping, options={"update_if_exists": True})
    assert conn.build_payload(record, RemoteState("33884")) == golden("bobby_smith_update.json")


def test_seed_contact_maps_only_what_ivvy_takes():
    """Seed 000's contact (the shared schema's example), US phone made valid."""
    record = ContactRecord(
        id=2,
        external_id="EM12790",
        first_name="John",
        last_name="Smith",
        email="john@example.com",
        phone="+12015550123",
        language="en",
        time_zone="America/New_York",
        address_line="123 Main Street",
        city="New York",
        region="NY",
        country="US",
        postal_code="10001",
        birth_date=datetime.date(1990, 1, 1),
        email_status="subscribed",
        sms_status="subscribed",
        channels=(ChannelRecord("webpush", "subscription-id-12345"),),
        custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),),
        group_ids=frozenset({1001}),
    )
    mapping = MappingRecord(
        fields={"birth_date": "33444", "custom:loyaltyLevel": "33445", "city": "33448"},
        groups={1001: "10"},
    )
    assert connector(mapping=mapping).build_payload(record, RemoteState()) == golden(
        "john_smith_seed.json"
    )


# ------------------------------------------------------------------------ status and consent


@pytest.mark.parametrize(
    "ours, code",
    [
        ("subscribed", 1),
        ("unsubscribed", 2),
        ("bounced", 3),
        ("no_marketing", 5),
    ],
)
def test_email_status_codes(ours, code):
    payload = connector().build_payload(bobby(email_status=ours), RemoteState())
    assert payload["status"] == code


@pytest.mark.parametrize("sms_status", ["subscribed", "unsubscribed", "failed", "no_marketing"])
@pytest.mark.parametrize("remote_id", [None, "33884"])
def test_sms_status_is_never_sent(sms_status, remote_id):
    """iVvy removed smsStatus on 30 June 2026 (announcements/contact/contact-sms-marketing.md)."""
    payload = connector().build_payload(bobby(sms_status=sms_status), RemoteState(remote_id))
    assert "smsStatus" not in payload
    assert payload["status"] == 1  # the email status still goes out


def test_the_destination_page_is_told_ivvy_holds_no_sms_status():
    (note,) = IvvyConnector.notes
    assert note == (
        "iVvy holds no SMS status since 30 June 2026: our SMS status is not sent to iVvy."
    )
    assert "sms_status" not in IvvyConnector.mappable_standard_fields


@pytest.mark.parametrize("consent", [True, False])
def test_privacy_consent_is_always_sent_as_a_boolean(consent):
    payload = connector().build_payload(bobby(privacy_consent=consent), RemoteState())
    assert payload["privacyConsent"] is consent


def test_status_ivvy_has_no_code_for_is_refused():
    with pytest.raises(PermanentError, match="no email status for 'pending'"):
        connector().build_payload(bobby(email_status="pending"), RemoteState())


# ----------------------------------------------------------------------------------- mapping


@pytest.mark.parametrize("missing", ["first_name", "last_name", "email"])
def test_creating_needs_first_name_last_name_and_email(missing):
    transport = MockTransport()
    with pytest.raises(PermanentError, match="missing: "):
        connector(transport).push(bobby(**{missing: ""}), RemoteState())
    assert transport.calls == []


def test_an_update_by_id_may_lack_names():
    payload = connector().build_payload(bobby(first_name="", last_name=""), RemoteState("9"))
    assert payload["id"] == 9 and "firstName" not in payload and "lastName" not in payload


def test_update_if_exists_only_when_enabled_and_without_id():
    assert "updateIfExists" not in connector().build_payload(bobby(), RemoteState())
    enabled = connector(options={"update_if_exists": True})
    assert enabled.build_payload(bobby(), RemoteState())["updateIfExists"] is True
    assert "updateIfExists" not in enabled.build_payload(bobby(), RemoteState("3"))


def test_groups_only_when_a_list_is_mapped():
    unmapped = connector(mapping=MappingRecord(fields={"custom:newsletter_optin": "33443"}))
    assert "groups" not in unmapped.build_payload(bobby(), RemoteState())


def test_groups_are_sent_in_full_even_when_empty():
    """They replace every group on iVvy: leaving all mapped lists must empty them there."""
    payload = connector().build_payload(bobby(group_ids=frozenset()), RemoteState())
    assert payload["groups"] == []


def test_groups_merge_groups_and_subscribed_lists_once_each():
    mapping = MappingRecord(groups={1: "10", 2: "11"}, mailing_lists={7: "10", 8: "12", 9: "13"})
    record = bobby(group_ids=frozenset({1, 3}), subscriptions={7: True, 8: True, 9: False})
    payload = connector(mapping=mapping).build_payload(record, RemoteState())
    assert payload["groups"] == [{"groupId": 10}, {"groupId": 12}]


def test_standard_fields_go_out_as_mapped_custom_fields():
    mapping = MappingRecord(
        fields={
            "birth_date": "1",
            "consent_date": "2",
            "tags": "3",
            "gdpr_marketing_consent": "4",
            "last_latitude": "5",
            "gender": "6",
            "consent_ip": "7",
            "country": "8",
        }
    )
    record = bobby(
        birth_date=datetime.date(1990, 1, 31),
        consent_date=datetime.datetime(
            2026, 1, 1, 21, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=11))
        ),
        tags=("vip", "newsletter"),
        gdpr_marketing_consent=False,
        last_latitude=decimal.Decimal("-33.868820"),
        gender="female",
        consent_ip=None,
    )
    payload = connector(mapping=mapping).build_payload(record, RemoteState())
    assert payload["customFields"] == [
        {"fieldId": 1, "value": "1990-01-31"},
        {"fieldId": 2, "value": "2026-01-01 10:00:00"},  # iVvy timestamps are UTC
        {"fieldId": 3, "value": "vip, newsletter"},
        {"fieldId": 4, "value": "false"},
        {"fieldId": 5, "value": "-33.868820"},
        {"fieldId": 6, "value": "female"},
    ]


def test_unmapped_fields_and_extra_channels_are_not_sent():
    record = bobby(
        language="en",
        city="Sydney",
        birth_date=datetime.date(1990, 1, 1),
        channels=(
            ChannelRecord("email", "second@example.com"),
            ChannelRecord("sms", "+61412345679"),
        ),
        custom_values=(
            CustomValueRecord("newsletter_optin", "string", "No"),
            CustomValueRecord("unmapped", "string", "x"),
        ),
    )
    payload = connector().build_payload(record, RemoteState())
    assert payload["customFields"] == [{"fieldId": 33443, "value": "No"}]
    assert payload["email"] == "bobby@example.com"
    assert payload["phone"] == "+61412345679"  # no primary phone: the first SMS channel
    assert "second@example.com" not in json.dumps(payload)


def test_empty_mapped_values_are_not_sent():
    mapping = MappingRecord(fields={"custom:newsletter_optin": "33443", "birth_date": "33444"})
    payload = connector(mapping=mapping).build_payload(bobby(custom_values=()), RemoteState())
    assert "customFields" not in payload


@pytest.mark.parametrize(
    "mapping, message",
    [
        (MappingRecord(fields={"custom:newsletter_optin": "optin"}), "not an iVvy id"),
        (MappingRecord(groups={1: "newsletter"}), "not an iVvy id"),
        (MappingRecord(fields={"nickname": "1"}), "unknown field 'nickname'"),
    ],
)
def test_mappings_ivvy_cannot_take_are_refused(mapping, message):
    with pytest.raises(PermanentError, match=message):
        connector(mapping=mapping).build_payload(bobby(), RemoteState())


def test_stored_remote_id_must_be_a_whole_number():
    with pytest.raises(PermanentError, match="stored contact id 'abc'"):
        connector().build_payload(bobby(), RemoteState("abc"))


def test_a_fourth_external_url_is_refused_not_dropped():
    four = tuple(ExternalUrlRecord(f"r{i}", f"https://x.example/{i}") for i in range(4))
    transport = MockTransport()
    with pytest.raises(PermanentError, match="4 external URLs; iVvy takes at most 3"):
        connector(transport).push(bobby(external_urls=four), RemoteState())
    assert transport.calls == []


def test_external_url_must_be_https_and_label_is_optional():
    with pytest.raises(PermanentError, match="not https"):
        connector().build_payload(
            bobby(external_urls=(ExternalUrlRecord("crm", "http://crm.example.com"),)),
            RemoteState(),
        )
    payload = connector().build_payload(
        bobby(external_urls=(ExternalUrlRecord("crm", "https://crm.example.com"),)), RemoteState()
    )
    assert payload["externalUrls"] == [{"ref": "crm", "url": "https://crm.example.com"}]
    assert "externalUrls" not in connector().build_payload(bobby(external_urls=()), RemoteState())


# ---------------------------------------------------------------------------------- matching


def test_first_push_looks_up_the_external_id_then_updates_the_match():
    transport = MockTransport()
    transport.add(
        200,
        {
            "meta": {"totalResults": 1, "start": 0, "perPage": 1, "count": 1},
            "results": [{"id": 33884, "externalId": "12345"}],
        },
    )
    transport.add(200, {"success": True, "id": 33884})
    result = connector(transport, options={"update_if_exists": True}).push(bobby(), RemoteState())
    assert urls(transport.calls) == [LIST, ADD]
    assert transport.calls[0].json == {"perPage": 1, "start": 0, "filter": {"externalId": "12345"}}
    sent = transport.calls[1].json
    assert sent["id"] == 33884 and "updateIfExists" not in sent
    assert (result.remote_id, result.created, result.status_code) == ("33884", False, 200)
    assert result.payload == sent


def test_first_push_creates_when_the_lookup_finds_nothing():
    transport = MockTransport()
    transport.add(
        200, {"meta": {"totalResults": 0, "start": 0, "perPage": 1, "count": 0}, "results": []}
    )
    transport.add(200, {"success": True, "id": 40001})
    result = connector(transport).push(bobby(), RemoteState())
    assert urls(transport.calls) == [LIST, ADD]
    assert "id" not in transport.calls[1].json
    assert (result.remote_id, result.created) == ("40001", True)


def test_later_pushes_send_the_stored_id_without_a_lookup():
    transport = MockTransport().add(200, {"success": True, "id": 33884})
    result = connector(transport).push(bobby(), RemoteState(remote_id="33884"))
    assert urls(transport.calls) == [ADD]
    assert transport.calls[0].json["id"] == 33884
    assert (result.remote_id, result.created) == ("33884", False)


def test_a_lookup_answering_another_contact_is_never_overwritten():
    transport = MockTransport()
    transport.add(200, {"meta": {"totalResults": 9}, "results": [{"id": 5, "externalId": "999"}]})
    with pytest.raises(PermanentError, match="externalId '999'"):
        connector(transport).push(bobby(), RemoteState())
    assert urls(transport.calls) == [LIST]


def test_a_lookup_without_a_collection_is_refused():
    transport = MockTransport().add(200, {"success": True})
    with pytest.raises(PermanentError, match="not a collection"):
        connector(transport).push(bobby(), RemoteState())


def test_success_false_is_a_permanent_error_with_ivvys_message():
    transport = MockTransport().add(200, {"success": False, "message": "Contact is archived"})
    with pytest.raises(PermanentError, match="Contact is archived") as caught:
        connector(transport).push(bobby(), RemoteState("3"))
    assert caught.value.status == 200


def test_200_without_an_id_is_a_permanent_error():
    transport = MockTransport().add(200, {"success": True})
    with pytest.raises(PermanentError, match="no 'id'"):
        connector(transport).push(bobby(), RemoteState("3"))


def test_delete_is_not_offered():
    assert IvvyConnector.supports_delete is False
    with pytest.raises(NotImplementedError, match="no delete-contact call"):
        connector().delete(external_id="12345", remote_id="3")


# ------------------------------------------------------------------------- error handling


def push_answering(*answer, error=None, **kwargs):
    transport = MockTransport()
    if error is not None:
        transport.add_error(error)
    else:
        transport.add(*answer, **kwargs)
    return connector(transport).push(bobby(), RemoteState("3"))


def test_400_keeps_ivvys_message_additional_messages_and_specific_code():
    body = {
        "errorCode": 400,
        "message": "'id' does not validate",
        "specificCode": 23016,
        "additionalMessages": ["Value must be a whole number"],
    }
    with pytest.raises(PermanentError) as caught:
        push_answering(400, body)
    assert caught.value.status == 400
    assert caught.value.message == (
        "'id' does not validate (Value must be a whole number) [specificCode 23016]"
    )


def test_401_is_destination_wide():
    body = {
        "errorCode": 401,
        "message": "Signature does not match",
        "specificCode": 23003,
        "additionalMessages": [],
    }
    with pytest.raises(AuthenticationError, match="Signature does not match") as caught:
        push_answering(401, body)
    assert caught.value.destination_wide


@pytest.mark.parametrize("status, message", [(462, "Session Expired"), (463, "Key Revoked")])
def test_ivvys_own_credential_statuses_are_destination_wide(status, message):
    body = {"errorCode": status, "message": message, "specificCode": None, "additionalMessages": []}
    with pytest.raises(AuthenticationError, match=message) as caught:
        push_answering(status, body)
    assert caught.value.status == status


def test_404_unknown_contact_is_permanent():
    body = {
        "errorCode": 404,
        "message": "Unable to find contact",
        "specificCode": 24096,
        "additionalMessages": [],
    }
    with pytest.raises(PermanentError, match=r"Unable to find contact \[specificCode 24096\]"):
        push_answering(404, body)


def test_409_is_permanent():
    with pytest.raises(PermanentError) as caught:
        push_answering(409, {"errorCode": 409, "message": "Conflict", "specificCode": 1})
    assert not caught.value.retryable


# ------------------------------------------------------------------------------- options


FIELD_DEFINITIONS = "/api/1.0/contact?action=getCustomFieldDefinition"
GROUP_LIST = "/api/1.0/contact?action=getSubscriptionGroupList"


def test_fetch_options_reads_field_definitions_and_subscription_groups():
    transport = MockTransport()
    transport.add(
        200,
        [
            {"fieldId": 33443, "fieldType": 0, "displayName": "Newsletter opt-in"},
            {"fieldId": 33444, "fieldType": 5, "displayName": "Birth date"},
            {"fieldId": 33447, "fieldType": 7, "displayName": "Terms (read only)"},
        ],
    )
    # get-subscription-group-list.md: "An array with the following properties"
    transport.add(
        200,
        [
            {"id": 10, "groupName": "Newsletter", "memberCount": 3, "tagColour": "#1e88e5"},
            {"id": 11, "groupName": "", "memberCount": 0, "tagColour": "#f4511e"},
        ],
    )
    options = connector(transport).fetch_options()
    assert [(o.kind, o.remote_id, o.label, o.type) for o in options] == [
        ("field", "33443", "Newsletter opt-in", "small text"),
        ("field", "33444", "Birth date", "date"),
        ("list", "10", "Newsletter", "subscription group"),
        ("list", "11", "11", "subscription group"),
    ]
    assert urls(transport.calls) == [FIELD_DEFINITIONS, GROUP_LIST]


def test_fetch_options_sends_no_parameters():
    """Both calls are documented without parameters: nothing goes in the body."""
    transport = MockTransport().add(200, []).add(200, [])
    connector(transport).fetch_options()
    assert [call.body for call in transport.calls] == [b"", b""]


def test_fetch_options_also_reads_groups_answered_as_a_collection():
    transport = MockTransport().add(200, [])
    transport.add(200, {"meta": {"totalResults": 1}, "results": [{"id": 12, "groupName": "x"}]})
    options = connector(transport).fetch_options()
    assert [(o.kind, o.remote_id) for o in options] == [("list", "12")]
    assert len(transport.calls) == 2


def test_a_failed_group_list_keeps_the_field_definitions():
    transport = MockTransport()
    transport.add(200, [{"fieldId": 33443, "fieldType": 0, "displayName": "Newsletter opt-in"}])
    transport.add(
        400,
        {
            "errorCode": 400,
            "message": "'perPage' does not validate",
            "specificCode": 23016,
            "additionalMessages": ["Unknown parameter"],
        },
    )
    with pytest.raises(PartialOptionsError) as caught:
        connector(transport).fetch_options()
    err = caught.value
    assert [(o.kind, o.remote_id) for o in err.options] == [("field", "33443")]
    ((part, kind, failure),) = [(f.part, f.kind, f.error) for f in err.failures]
    assert (part, kind) == ("subscription groups (getSubscriptionGroupList)", "list")
    assert isinstance(failure, PermanentError) and failure.status == 400
    assert str(err) == (
        "iVvy: subscription groups (getSubscriptionGroupList) failed (HTTP 400: 'perPage' does "
        "not validate (Unknown parameter) [specificCode 23016]); fetched from the other parts: "
        "1 field or list"
    )
    assert not err.retryable


def test_a_failed_field_list_keeps_the_groups_and_is_retryable_when_the_failure_is():
    transport = MockTransport()
    transport.add(500, {"errorCode": 500, "message": "Internal Server Error"})
    transport.add(200, [{"id": 10, "groupName": "Newsletter"}])
    with pytest.raises(PartialOptionsError) as caught:
        connector(transport).fetch_options()
    assert [(o.kind, o.remote_id) for o in caught.value.options] == [("list", "10")]
    assert [f.kind for f in caught.value.failures] == ["field"]
    assert "custom field definitions (getCustomFieldDefinition) failed" in str(caught.value)
    assert caught.value.retryable


def test_fetch_options_stops_at_refused_credentials():
    transport = MockTransport().add(401, {"errorCode": 401, "message": "Invalid API key"})
    with pytest.raises(AuthenticationError, match="Invalid API key"):
        connector(transport).fetch_options()
    assert urls(transport.calls) == [FIELD_DEFINITIONS]


def test_fetch_options_refuses_items_without_ids():
    transport = MockTransport().add(200, [{"displayName": "no id"}]).add(200, [])
    with pytest.raises(PartialOptionsError, match="without 'fieldId'"):
        connector(transport).fetch_options()


def test_class_attributes_follow_the_contract():
    assert IvvyConnector.default_base_url == "https://api.ap-southeast-2.ivvy.com/"
    assert IvvyConnector.regions == {
        "au": "https://api.ap-southeast-2.ivvy.com/",
        "us": "https://api.us-west-2.ivvy.com/",
        "uk": "https://api.eu-west-2.ivvy.com/",
    }
    assert {n: c.field for n, c in IvvyConnector.credentials.items()} == {
        "api_key": "key_env",
        "api_secret": "secret_env",
    }
    assert (IvvyConnector.default_rate_limit, IvvyConnector.batch_size) == (5.0, 0)
    assert "birth_date" in IvvyConnector.mappable_standard_fields
    assert not {"phone", "email_status", "sms_status", "privacy_consent"} & set(
        IvvyConnector.mappable_standard_fields
    )


def test_read_contact_reads_the_vendors_get_contact_example():
    """getContact as contact/get-contact.md shows it: ids as text, custom values as arrays,
    groups as `{contactId, groupId, joinDate}`; status 4 (Registering) is no opt-in."""
    conn = connector()
    conn.transport.add(
        200, {"meta": {"totalResults": 1}, "results": [{"id": 25146, "externalId": "e-9"}]}
    )
    conn.transport.add(
        200,
        {
            "id": "25146",
            "firstName": "Test",
            "lastName": "User",
            "email": "user@test.com",
            "phone": "0455550000",
            "status": 4,
            "customFields": [{"fieldId": "33443", "displayName": "Opt-in", "value": ["Yes"]}],
            "groups": [{"contactId": "25146", "groupId": "10", "joinDate": "2012-04-16 21:07:04"}],
            "companies": [4, 5, 6],
            "externalId": "e-9",
        },
    )
    record = conn.read_contact(external_id="e-9", remote_id=None)
    assert [c.json for c in conn.transport.calls] == [
        {"perPage": 1, "start": 0, "filter": {"externalId": "e-9"}},
        {"id": 25146},
    ]
    assert (record.first_name, record.phone, record.email_status) == (
        "Test",
        "0455550000",
        "registering",
    )
    assert record.custom_values == (CustomValueRecord("newsletter_optin", "", "Yes"),)
    assert record.group_ids == frozenset({1})
    assert "sms_status" not in IvvyConnector.readable_fields
    ours = ContactRecord(id=1, external_id="e-9", email_status="subscribed")
    assert conn.field_differs("email_status", ours, record)  # registering is not subscribed
    unknown = ContactRecord(id=None, external_id="e-9", email_status="")
    assert not conn.field_differs("email_status", ours, unknown)  # no `status` in the answer


def test_read_contact_by_a_stale_id_falls_back_to_the_external_id():
    conn = connector()
    conn.transport.add(
        404, {"errorCode": 404, "message": "Unable to find contact", "specificCode": 24096}
    )
    conn.transport.add(200, {"meta": {"totalResults": 0}, "results": []})
    assert conn.read_contact(external_id="e-9", remote_id="777") is None
    assert len(conn.transport.calls) == 2
