"""iVvy over real HTTP against the sandbox: matching, faults, and the sandbox refusing what
iVvy refuses (shared/platforms.md, "Contract — iVvy"; part A, "The sandbox")."""

import datetime
import hashlib
import json
import time

import pytest
import requests

from contacts.models import Group
from sync.connectors.base import (
    AuthenticationError,
    PartialOptionsError,
    PermanentError,
    RetryableError,
)
from sync.connectors.ivvy import signature, string_to_sign
from sync.connectors.records import ContactRecord, ExternalUrlRecord, RemoteState
from sync.models import FieldMapping, ListMapping, RemoteOption
from sync.sandbox.ivvy import IvvyEmulator
from sync.services import destination_connector, destination_refresh_options

pytestmark = pytest.mark.django_db

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def contact(group_id=None, **changes):
    fields = dict(
        id=1,
        external_id="ext-ivvy-1",
        first_name="Bobby",
        last_name="Smith",
        email="bobby@example.com",
        phone="+61412345678",
        birth_date=datetime.date(1990, 1, 1),
        email_status="subscribed",
        sms_status="no_marketing",
        privacy_consent=True,
        group_ids=frozenset({group_id} if group_id else ()),
        external_urls=(ExternalUrlRecord("crm", "https://crm.example.com/c/1", "CRM"),),
    )
    return ContactRecord(**{**fields, **changes})


@pytest.fixture
def mapped(sandbox_destination):
    """(connector, our group id): birth date -> the sandbox's date field, a group -> group 10."""
    destination = sandbox_destination("ivvy")
    group = Group.objects.create(name="Newsletter")
    FieldMapping.objects.create(
        destination=destination, standard_field="birth_date", remote_field="33444"
    )
    ListMapping.objects.create(destination=destination, group=group, remote_list="10")
    destination.refresh_from_db()
    return destination_connector(destination=destination), group.pk


def stored(sandbox):
    return sandbox.sandbox.store("ivvy")["ivvy"]["contacts"]


def faults(sandbox, **changes):
    response = requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "ivvy", **changes})
    assert response.status_code == 200, response.text


def push_change_push(connector, group_id):
    first = connector.push(contact(group_id), RemoteState())
    changed = contact(
        group_id,
        last_name="Smythe",
        email_status="unsubscribed",
        birth_date=datetime.date(1991, 2, 3),
    )
    second = connector.push(changed, RemoteState())  # no stored id: found by externalId
    third = connector.push(changed, RemoteState(first.remote_id))
    return first, second, third


def assert_one_updated_record(sandbox, first, *later):
    assert first.created and not any(result.created for result in later)
    assert {result.remote_id for result in (first, *later)} == {first.remote_id}
    (record,) = stored(sandbox)
    assert str(record["id"]) == first.remote_id
    assert (record["lastName"], record["status"], record["externalId"]) == (
        "Smythe",
        2,
        "ext-ivvy-1",
    )
    assert record["customFields"] == [
        {"fieldId": 33444, "displayName": "Birth date", "value": "1991-02-03"}
    ]
    assert record["groups"] == [{"groupId": 10}]
    assert record["externalUrls"] == [
        {"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}
    ]


# ---------------------------------------------------------------------- through the connector


def test_push_change_push_keeps_one_record(sandbox, mapped):
    connector, group_id = mapped
    assert_one_updated_record(sandbox, *push_change_push(connector, group_id))


def test_push_change_push_with_latency(sandbox, mapped):
    faults(sandbox, latency_ms=50)
    connector, group_id = mapped
    assert_one_updated_record(sandbox, *push_change_push(connector, group_id))


def test_429_storm_then_success_without_duplicate(sandbox, mapped):
    connector, group_id = mapped
    faults(sandbox, storm_seconds=1, retry_after=1)
    with pytest.raises(RetryableError) as caught:
        connector.push(contact(group_id), RemoteState())
    assert caught.value.status == 429 and caught.value.retry_after == 1
    assert json.loads(caught.value.body)["errorCode"] == 429
    time.sleep(1.1)
    first = connector.push(contact(group_id), RemoteState())
    changed = contact(
        group_id,
        last_name="Smythe",
        email_status="unsubscribed",
        birth_date=datetime.date(1991, 2, 3),
    )
    again = connector.push(changed, RemoteState())
    assert_one_updated_record(sandbox, first, again)


def test_test_connection_and_revoked_credentials(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("ivvy"))
    assert "ping" in connector.test_connection()
    faults(sandbox, revoked=True)
    with pytest.raises(AuthenticationError, match="Key revoked"):
        connector.test_connection()


def test_fetch_options_lists_the_sample_fields_and_groups(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("ivvy"))
    options = {(o.kind, o.remote_id): (o.label, o.type) for o in connector.fetch_options()}
    assert options == {
        ("field", "33443"): ("Newsletter opt-in", "small text"),
        ("field", "33444"): ("Birth date", "date"),
        ("field", "33445"): ("Loyalty level", "single select"),
        ("field", "33446"): ("Visits", "whole number"),
        ("list", "10"): ("Newsletter", "subscription group"),
        ("list", "11"): ("VIP guests", "subscription group"),
        ("list", "12"): ("Events", "subscription group"),
    }


@pytest.mark.parametrize("sms_status", ["subscribed", "unsubscribed", "failed", "no_marketing"])
def test_pushes_succeed_whatever_our_sms_status(sandbox, mapped, sms_status):
    """The default sandbox refuses smsStatus, as iVvy does since 30 June 2026."""
    connector, group_id = mapped
    first = connector.push(contact(group_id, sms_status=sms_status), RemoteState())
    again = connector.push(contact(group_id, sms_status=sms_status), RemoteState(first.remote_id))
    assert again.remote_id == first.remote_id
    (record,) = stored(sandbox)
    assert "smsStatus" not in record


def test_refresh_from_platform_sends_no_parameters_and_stores_everything(
    sandbox, sandbox_destination
):
    destination = sandbox_destination("ivvy")
    assert destination_refresh_options(destination=destination) == 7
    stored_options = set(destination.options.values_list("kind", "remote_id"))
    assert {("list", "10"), ("list", "11"), ("list", "12"), ("field", "33443")} <= stored_options
    connector = destination_connector(destination=destination)
    connector.fetch_options()
    assert [(e.url.rsplit("=", 1)[1], e.request_body) for e in connector.drain_exchanges()] == [
        ("getCustomFieldDefinition", ""),
        ("getSubscriptionGroupList", ""),
    ]


def test_refresh_with_the_group_list_failing_still_stores_the_custom_fields(
    sandbox, sandbox_destination
):
    destination = sandbox_destination("ivvy")
    destination_refresh_options(destination=destination)
    RemoteOption.objects.filter(destination=destination, kind="field").delete()
    faults(sandbox, error_rate=1.0, error_status=400, error_path="getSubscriptionGroupList")
    with pytest.raises(PartialOptionsError) as caught:
        destination_refresh_options(destination=destination)
    message = str(caught.value)
    assert "subscription groups (getSubscriptionGroupList) failed (HTTP 400: Injected failure" in (
        message
    )
    assert "fetched from the other parts: 4 fields and lists" in message
    assert "getCustomFieldDefinition" not in message
    options = set(destination.options.values_list("kind", "remote_id"))
    assert options == {
        ("field", "33443"),
        ("field", "33444"),
        ("field", "33445"),
        ("field", "33446"),
        ("list", "10"),  # the failed kind keeps what the last refresh stored
        ("list", "11"),
        ("list", "12"),
    }


def test_refresh_with_every_call_failing_keeps_what_was_stored(sandbox, sandbox_destination):
    destination = sandbox_destination("ivvy")
    destination_refresh_options(destination=destination)
    before = set(destination.options.values_list("kind", "remote_id", "label"))
    faults(sandbox, error_rate=1.0, error_status=400)
    with pytest.raises(PartialOptionsError, match="getCustomFieldDefinition.*getSubscription"):
        destination_refresh_options(destination=destination)
    assert set(destination.options.values_list("kind", "remote_id", "label")) == before


def test_update_if_exists_lets_ivvy_match_on_name_and_email(sandbox, sandbox_destination):
    connector = destination_connector(
        destination=sandbox_destination("ivvy", settings={"update_if_exists": True})
    )
    first = connector.push(contact(), RemoteState())
    other = connector.push(contact(external_id="ext-ivvy-2"), RemoteState())
    assert other.remote_id == first.remote_id
    (record,) = stored(sandbox)
    assert record["externalId"] == "ext-ivvy-2"


def test_a_deleted_remote_contact_is_a_permanent_error(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("ivvy"))
    with pytest.raises(PermanentError, match=r"Unable to find contact \[specificCode 24096\]"):
        connector.push(contact(), RemoteState("999999"))


def test_a_2xx_without_id_is_permanent(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("ivvy"))
    first = connector.push(contact(), RemoteState())
    faults(sandbox, malformed="noid")
    with pytest.raises(PermanentError, match="no 'id'"):
        connector.push(contact(), RemoteState(first.remote_id))


def test_a_refused_connection_is_retryable(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("ivvy"))
    faults(sandbox, outage="refuse")
    with pytest.raises(RetryableError):
        connector.test_connection()


# ----------------------------------------------------------------- raw requests: refusals


@pytest.fixture
def raw(sandbox):
    """post(call, body, **overrides) -> the sandbox's answer to a hand-signed request; the
    sandbox's rate limit is lifted so a test may send many."""
    requests.post(f"{sandbox.url}/_sandbox/rate-limit", json={"platform": "ivvy", "limit": None})

    def post(
        call,
        body=None,
        *,
        key=IvvyEmulator.account_credentials["api_key"],
        secret=IvvyEmulator.account_credentials["api_secret"],
        age=0,
        md5=None,
        headers=None,
        method="POST",
    ):
        path = f"/ivvy/api/1.0/{call}"
        data = b"" if body is None else json.dumps(body).encode()
        sent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age)
        date = sent.strftime(DATE_FORMAT)
        digest = md5 or hashlib.md5(data).hexdigest()
        text = string_to_sign(
            method=method,
            content_md5=digest,
            content_type="application/json",
            request_uri=path,
            ivvy_headers={"IVVY-Date": date},
        )
        sent_headers = {
            "Content-Type": "application/json",
            "Content-MD5": digest,
            "IVVY-Date": date,
            "X-Api-Version": "1.0",
            "X-Api-Authorization": f"IWS {key}:{signature(secret, text)}",
            **(headers or {}),
        }
        return requests.request(method, f"{sandbox.url}{path}", data=data, headers=sent_headers)

    return post


NEW = {"firstName": "Bobby", "lastName": "Smith", "email": "bobby@example.com"}


def refusal(response, status, specific):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"errorCode", "message", "specificCode", "additionalMessages"}
    assert (body["errorCode"], body["specificCode"]) == (status, specific)
    assert isinstance(body["additionalMessages"], list)
    return body


def test_a_correctly_signed_request_is_accepted(raw):
    response = raw("contact?action=addOrUpdateContact", NEW)
    assert response.status_code == 200 and response.json() == {"success": True, "id": 33884}


def test_wrong_signature_is_refused(raw):
    body = refusal(raw("test?action=ping", secret="not-the-secret"), 401, 23003)
    assert body["message"] == "Signature does not match"
    assert body["additionalMessages"] == []


def test_wrong_key_is_refused(raw):
    refusal(raw("test?action=ping", key="someone-else"), 401, 23002)


def test_missing_authorization_is_refused(raw):
    response = raw("test?action=ping", headers={"X-Api-Authorization": ""})
    refusal(response, 401, 23001)


def test_stale_date_is_refused(raw):
    body = refusal(raw("test?action=ping", age=6 * 60), 401, 23005)
    assert body["message"] == "Request is stale"
    assert raw("test?action=ping", age=4 * 60).status_code == 200


def test_body_not_matching_content_md5_is_refused(raw):
    refusal(raw("contact?action=addOrUpdateContact", NEW, md5="0" * 32), 401, 23004)


def test_missing_required_field_is_refused(raw):
    body = refusal(raw("contact?action=addOrUpdateContact", {**NEW, "lastName": ""}), 400, 23017)
    assert body["message"] == "'lastName' is required"


def test_fourth_external_url_is_refused(raw):
    four = [{"ref": f"r{i}", "url": f"https://x.example/{i}"} for i in range(4)]
    body = refusal(
        raw("contact?action=addOrUpdateContact", {**NEW, "externalUrls": four}), 400, 23016
    )
    assert body["message"] == "'externalUrls' does not validate"
    assert body["additionalMessages"] == ["A maximum of 3 objects allowed"]


@pytest.mark.parametrize("key", ["LastName", "firstname", "emailAddress"])
def test_unknown_or_misspelt_key_is_refused(raw, key):
    body = refusal(raw("contact?action=addOrUpdateContact", {**NEW, key: "x"}), 400, 23016)
    assert body["message"] == f"'{key}' does not validate"


@pytest.mark.parametrize(
    "extra",
    [
        {"status": 4},
        {"status": "1"},
        {"privacyConsent": "yes"},
        {"email": "not-an-email"},
        {"id": "33884"},
        {"externalUrls": [{"ref": "crm", "url": "http://crm.example.com"}]},
        {"customFields": [{"fieldId": 1, "value": "x"}]},
        {"customFields": [{"fieldId": 33444, "value": "31/01/1990"}]},
        {"groups": [{"groupId": 99}]},
    ],
)
def test_bad_values_are_refused(raw, extra):
    refusal(raw("contact?action=addOrUpdateContact", {**NEW, **extra}), 400, 23016)


def test_sms_status_is_refused_as_an_unknown_parameter(raw):
    """Removed from the API schema on 30 June 2026 (announcements/contact/contact-sms-marketing.md):
    refused the way iVvy refuses any parameter it does not take."""
    body = refusal(raw("contact?action=addOrUpdateContact", {**NEW, "smsStatus": 4}), 400, 23016)
    assert body["message"] == "'smsStatus' does not validate"
    assert body["additionalMessages"] == ["Unknown parameter"]


def test_contacts_are_answered_without_sms_status(raw, sandbox):
    new_id = raw("contact?action=addOrUpdateContact", {**NEW, "externalId": "e-1"}).json()["id"]
    assert "smsStatus" not in raw("contact?action=getContact", {"id": new_id}).json()
    listed = raw(
        "contact?action=getContactList", {"perPage": 1, "start": 0, "filter": {"externalId": "e-1"}}
    ).json()["results"]
    assert [c["id"] for c in listed] == [new_id] and "smsStatus" not in listed[0]
    assert "smsStatus" not in stored(sandbox)[0]


def test_the_legacy_switch_restores_sms_status(raw, sandbox):
    faults(sandbox, legacy_sms_status=True)
    created = raw("contact?action=addOrUpdateContact", {**NEW, "smsStatus": 1})
    assert created.status_code == 200, created.text
    contact_body = raw("contact?action=getContact", {"id": created.json()["id"]}).json()
    assert contact_body["smsStatus"] == 1
    refusal(raw("contact?action=addOrUpdateContact", {**NEW, "smsStatus": 5}), 400, 23016)
    faults(sandbox, legacy_sms_status=False)
    refusal(raw("contact?action=addOrUpdateContact", {**NEW, "smsStatus": 1}), 400, 23016)


def test_the_legacy_switch_takes_a_boolean_and_a_reset_clears_it(sandbox):
    answer = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "ivvy", "legacy_sms_status": "yes"}
    )
    assert answer.status_code == 400 and "legacy_sms_status" in answer.json()["error"]
    faults(sandbox, legacy_sms_status=True)
    everyone = requests.post(f"{sandbox.url}/_sandbox/faults", json={"legacy_sms_status": True})
    assert everyone.status_code == 200 and everyone.json()["ivvy"]["legacy_sms_status"] is True
    assert "legacy_sms_status" not in everyone.json()["loops"]
    requests.post(f"{sandbox.url}/_sandbox/reset")
    assert sandbox.sandbox.emulators["ivvy"].switches["legacy_sms_status"] is False


def test_subscription_group_list_takes_no_parameters_and_answers_an_array(raw):
    groups = raw("contact?action=getSubscriptionGroupList").json()
    assert [(g["id"], g["groupName"]) for g in groups] == [
        (10, "Newsletter"),
        (11, "VIP guests"),
        (12, "Events"),
    ]
    assert set(groups[0]) == {"id", "groupName", "memberCount", "tagColour"}
    assert raw("contact?action=getSubscriptionGroupList", {}).status_code == 200
    body = refusal(
        raw("contact?action=getSubscriptionGroupList", {"perPage": 100, "start": 0}), 400, 23016
    )
    assert body["message"] == "'perPage' does not validate"


def test_an_error_path_fails_only_that_call(raw, sandbox):
    faults(sandbox, error_rate=1.0, error_status=503, error_path="getSubscriptionGroupList")
    refusal(raw("contact?action=getSubscriptionGroupList"), 503, None)
    assert raw("contact?action=getCustomFieldDefinition").status_code == 200


def test_unknown_contact_id_is_404(raw):
    body = refusal(
        raw("contact?action=addOrUpdateContact", {"id": 1, "firstName": "B"}), 404, 24096
    )
    assert body["message"] == "Unable to find contact"


def test_unknown_action_is_404_and_get_is_405(raw):
    refusal(raw("contact?action=deleteContact", {"id": 1}), 404, 23006)
    refusal(raw("test?action=ping", method="GET"), 405, None)


def test_get_contact_and_list_by_external_id(raw):
    created = raw("contact?action=addOrUpdateContact", {**NEW, "externalId": "e-1"}).json()
    raw("contact?action=addOrUpdateContact", {**NEW, "email": "other@example.com"})
    found = raw(
        "contact?action=getContactList", {"perPage": 1, "start": 0, "filter": {"externalId": "e-1"}}
    ).json()
    assert found["meta"] == {"totalResults": 1, "start": 0, "perPage": 1, "count": 1}
    assert [c["id"] for c in found["results"]] == [created["id"]]
    contact_body = raw("contact?action=getContact", {"id": created["id"]}).json()
    assert contact_body["externalId"] == "e-1"
    refusal(raw("contact?action=getContactList", {"start": 0}), 400, 23017)


def test_external_urls_merge_by_ref_and_null_removes(raw, sandbox):
    first = [{"ref": "a", "url": "https://a.example"}, {"ref": "b", "url": "https://b.example"}]
    new_id = raw("contact?action=addOrUpdateContact", {**NEW, "externalUrls": first}).json()["id"]
    raw(
        "contact?action=addOrUpdateContact",
        {"id": new_id, "externalUrls": [{"ref": "a", "url": None}]},
    )
    assert [u["ref"] for u in stored(sandbox)[0]["externalUrls"]] == ["b"]
    raw("contact?action=addOrUpdateContact", {"id": new_id, "externalUrls": None})
    assert stored(sandbox)[0]["externalUrls"] == []


def test_rate_limit_answers_429_in_ivvys_shape(sandbox, raw):
    requests.post(f"{sandbox.url}/_sandbox/rate-limit", json={"platform": "ivvy", "limit": 5})
    answers = [raw("test?action=ping") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    refusal(answers[5], 429, None)
    assert answers[5].headers["Retry-After"] == "1"


def test_a_contact_saved_in_the_admin_reaches_ivvy_with_its_external_urls(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox, settings
):
    from tests.sync.conftest import save_contact_in_admin

    settings.SYNC_ON_SAVE_MODE = "immediate"
    sandbox_destination("ivvy")
    response = save_contact_in_admin(
        admin_client_logged,
        django_capture_on_commit_callbacks,
        tags="vip, newsletter",
        external_urls=[{"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}],
    )
    assert response.status_code == 302
    (record,) = sandbox.sandbox.store("ivvy")["ivvy"]["contacts"]
    assert [u["ref"] for u in record["externalUrls"]] == ["crm"]  # the inline row went out


# ----------------------------------------------------------------------------- erasure


def test_erase_blanks_what_ivvy_lets_us_blank_and_says_to_erase_by_hand(sandbox, mapped):
    """iVvy has no delete-contact call: `externalUrls: null` removes every external URL and
    `groups: []` leaves no subscription group (add-or-update-contact.md); the email status
    becomes No Marketing and the privacy consent is withdrawn. The rest stays, said so."""
    connector, group_id = mapped
    remote_id = connector.push(contact(group_id), RemoteState()).remote_id
    (before,) = stored(sandbox)
    assert before["externalUrls"] and before["groups"]

    result = connector.erase(external_id="ext-ivvy-1", remote_id=None)  # found by externalId

    assert (result.deleted, result.absent, result.remote_id) == (False, False, remote_id)
    assert f"Erase by hand in iVvy: contact id {remote_id}" in result.instruction
    (after,) = stored(sandbox)
    assert after["externalUrls"] == [] and after["groups"] == []
    assert after["status"] == 5 and after["privacyConsent"] is False
    assert after["email"] == "bobby@example.com"  # no documented way to blank it: it stays
    record = connector.read_contact(external_id="ext-ivvy-1", remote_id=remote_id)
    assert record is not None and record.external_urls == ()


def test_erase_of_a_contact_ivvy_does_not_hold(sandbox, mapped):
    connector, _ = mapped
    assert connector.erase(external_id="ext-ivvy-none", remote_id=None).absent
    assert connector.erase(external_id="ext-ivvy-none", remote_id="999999").absent


# ------------------------------------------------- clears and write rules (issue #13, items 1-2)


def _ivvy_contact(sandbox, external_id="clear-1"):
    (held,) = [c for c in stored(sandbox) if c["externalId"] == external_id]
    return held


@pytest.fixture
def clearing(sandbox_destination):
    """An iVvy destination: custom field "visits" -> 33446, groups -> 10 and 11."""
    from contacts.models import CustomFieldDefinition

    destination = sandbox_destination("ivvy")
    visits = CustomFieldDefinition.objects.create(name="visits", type="number")
    FieldMapping.objects.create(destination=destination, custom_field=visits, remote_field="33446")
    news, vip = Group.objects.create(name="Newsletter"), Group.objects.create(name="VIP")
    ListMapping.objects.create(destination=destination, group=news, remote_list="10")
    ListMapping.objects.create(destination=destination, group=vip, remote_list="11")
    destination.refresh_from_db()
    return destination, news, vip


def test_removed_external_urls_are_removed_on_ivvy_by_ref(sandbox, clearing):
    from contacts.models import ExternalUrl
    from tests.sync.clearing import contact_with, last_attempt, push

    destination, _, _ = clearing
    person = contact_with()
    ExternalUrl.objects.create(contact=person, ref="crm", url="https://crm.example.com/1")
    ExternalUrl.objects.create(contact=person, ref="web", url="https://example.com/ada")
    push(person, destination)
    assert {u["ref"] for u in _ivvy_contact(sandbox)["externalUrls"]} == {"crm", "web"}

    ExternalUrl.objects.get(contact=person, ref="crm").delete()
    push(person, destination)
    assert [u["ref"] for u in _ivvy_contact(sandbox)["externalUrls"]] == ["web"]
    assert '{"ref": "crm", "url": null}' in last_attempt(person, destination).request_body

    ExternalUrl.objects.get(contact=person, ref="web").delete()
    push(person, destination)
    assert _ivvy_contact(sandbox)["externalUrls"] == []
    assert last_attempt(person, destination).error == ""


def test_without_known_refs_the_last_url_gone_sends_external_urls_null(sandbox, clearing):
    from contacts.models import ExternalUrl
    from sync.models import ContactSyncState
    from tests.sync.clearing import contact_with, last_attempt, push

    destination, _, _ = clearing
    person = contact_with()
    ExternalUrl.objects.create(contact=person, ref="crm", url="https://crm.example.com/1")
    push(person, destination)
    ContactSyncState.objects.filter(contact=person).update(accepted_keys=None)  # from before
    ExternalUrl.objects.filter(contact=person).delete()
    person.bump_content_version()
    push(person, destination)
    assert '"externalUrls": null' in last_attempt(person, destination).request_body
    assert _ivvy_contact(sandbox)["externalUrls"] == []


def test_a_group_left_here_is_left_on_ivvy_through_the_groups_replace(sandbox, clearing):
    from contacts.models import GroupMembership
    from tests.sync.clearing import contact_with, push

    destination, news, vip = clearing
    person = contact_with()
    GroupMembership.objects.create(contact=person, group=news)
    GroupMembership.objects.create(contact=person, group=vip)
    push(person, destination)
    assert _ivvy_contact(sandbox)["groups"] == [{"groupId": 10}, {"groupId": 11}]
    GroupMembership.objects.get(contact=person, group=vip).delete()
    push(person, destination)
    assert _ivvy_contact(sandbox)["groups"] == [{"groupId": 10}]
    GroupMembership.objects.filter(contact=person).delete()
    person.bump_content_version()
    push(person, destination)
    assert _ivvy_contact(sandbox)["groups"] == []


def test_a_cleared_phone_or_custom_value_stays_on_ivvy_and_is_not_called_synced(
    sandbox, clearing, admin_client_logged
):
    from django.urls import reverse

    from tests.sync.clearing import (
        change,
        clear_custom,
        contact_with,
        last_attempt,
        push,
        set_custom,
    )

    destination, _, _ = clearing
    person = contact_with(phone="+61412345678")
    set_custom(person, "visits", "3", "number")
    push(person, destination)
    change(person, phone="")
    clear_custom(person, "visits")
    state = push(person, destination)
    held = _ivvy_contact(sandbox)
    assert held["phone"] == "+61412345678"  # no documented way to clear it
    assert [f["value"] for f in held["customFields"]] == ["3"]
    error = last_attempt(person, destination).error
    assert "kept on iVvy" in error and "custom:visits" in error and "phone" in error
    # still held from us: the next push says so again rather than forgetting it
    assert {"phone", "custom:visits"} <= set(state.accepted_keys)

    page = admin_client_logged.get(reverse("admin:sync_destination_change", args=[destination.pk]))
    assert (
        "Cleared values stay on iVvy for: first name; last name; phone; every mapped custom field"
        in page.content.decode()
    )


def test_a_name_ivvy_needs_to_create_cannot_be_never(sandbox_destination):
    from django.core.exceptions import ValidationError

    from sync.models import NativeFieldRule

    destination = sandbox_destination("ivvy")
    rule = NativeFieldRule(destination=destination, field="last_name", write_rule="never")
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    assert "iVvy needs the last name to create a contact" in str(caught.value)
    NativeFieldRule(destination=destination, field="last_name", write_rule="create").full_clean()
