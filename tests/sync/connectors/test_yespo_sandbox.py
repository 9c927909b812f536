"""Yespo against the sandbox over real HTTP: the connector's round trips (matching, faults,
segments, bulk, delete) and the emulator's strictness, checked with raw requests."""

import base64
import datetime
import json
import time
from pathlib import Path

import pytest
import requests

from contacts.demo import seed_demo_contacts
from contacts.models import Contact, CustomFieldDefinition, Group, MailingList
from sync import services
from sync.connectors.base import AuthenticationError, PermanentError, RetryableError
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    RemoteState,
)
from sync.models import ContactSyncState, FieldMapping, ListMapping, SyncStatus
from sync.sandbox.core import SandboxRequest
from sync.sandbox.yespo import YespoEmulator

pytestmark = pytest.mark.django_db
FILES = Path(__file__).resolve().parents[2] / "files" / "yespo"
NEWSLETTER, VIP, DYNAMIC = 200400, 200401, 200402


def record(external_id="EM12790", **fields):
    values = {
        "first_name": "John",
        "last_name": "Smith",
        "email": "john.smith@example.com",
        "phone": "+12015550123",
        "city": "New York",
        "language": "en",
        "channels": (ChannelRecord("webpush", "subscription-id-12345"),),
    }
    return ContactRecord(id=1, external_id=external_id, **{**values, **fields})


@pytest.fixture
def yespo(sandbox_destination):
    destination = sandbox_destination("yespo")
    return services.destination_connector(destination=destination)


def stored(sandbox):
    return sandbox.sandbox.store("yespo")["yespo"]


def faults(sandbox, **changes):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "yespo", **changes}, timeout=5
    )
    assert response.status_code == 200


def raw(
    sandbox, method, path, body=None, *, key=YespoEmulator.account_credentials["api_key"], **kwargs
):
    token = base64.b64encode(f"anyone:{key}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", **kwargs.pop("headers", {})}
    return requests.request(
        method, f"{sandbox.url}/yespo{path}", json=body, headers=headers, timeout=5, **kwargs
    )


def push_change_push(connector, sandbox):
    first = connector.push(record(), RemoteState())
    second = connector.push(record(last_name="Smythe", city="Boston"), RemoteState(first.remote_id))
    (contact,) = stored(sandbox)["contacts"]
    assert second.remote_id == first.remote_id == str(contact["id"])
    assert (first.created, second.created) == (None, None)  # an upsert says neither
    assert contact["lastName"] == "Smythe"
    assert contact["address"] == {"town": "Boston"}
    assert contact["externalCustomerId"] == "EM12790"
    return contact


# ------------------------------------------------------------------------ connector round trips


def test_push_change_push_keeps_one_record_and_its_id(yespo, sandbox):
    contact = push_change_push(yespo, sandbox)
    assert [c["type"] for c in contact["channels"]] == ["email", "sms", "webpush"]


def test_push_change_push_with_latency(yespo, sandbox):
    faults(sandbox, latency_ms=50)
    push_change_push(yespo, sandbox)


def test_a_429_storm_is_retryable_then_the_push_goes_through_once(yespo, sandbox):
    faults(sandbox, storm_seconds=0.5, retry_after=1)
    with pytest.raises(RetryableError) as caught:
        yespo.push(record(), RemoteState())
    assert (caught.value.status, caught.value.retry_after) == (429, 1.0)
    time.sleep(0.6)
    push_change_push(yespo, sandbox)


def test_the_same_push_twice_within_a_minute_is_a_409_that_counts_as_done(yespo, sandbox):
    first = yespo.push(record(), RemoteState())
    again = yespo.push(record(), RemoteState())
    assert (again.status_code, again.remote_id, again.created) == (409, first.remote_id, None)
    assert len(stored(sandbox)["contacts"]) == 1


def test_test_connection_and_revoked_key(yespo, sandbox):
    assert "Yespo" in yespo.test_connection()
    faults(sandbox, revoked=True)
    with pytest.raises(AuthenticationError) as caught:
        yespo.test_connection()
    assert caught.value.status == 401


def test_fetch_options_lists_the_sample_fields_and_static_segments(yespo, sandbox):
    options = {(o.kind, o.remote_id): (o.label, o.type) for o in yespo.fetch_options()}
    assert options[("field", "79815")] == ("birthDate", "date")
    assert options[("field", "79816")] == ("loyaltyLevel", "textfield")
    assert options[("list", str(NEWSLETTER))] == ("Newsletter Subscribers", "static")
    assert ("list", str(DYNAMIC)) not in options


def test_segments_follow_membership(sandbox_destination, sandbox):
    destination = sandbox_destination("yespo")
    group, mailing_list = Group.objects.create(name="News"), MailingList.objects.create(name="V")
    ListMapping.objects.create(destination=destination, group=group, remote_list=str(NEWSLETTER))
    ListMapping.objects.create(
        destination=destination, mailing_list=mailing_list, remote_list=str(VIP)
    )
    connector = services.destination_connector(destination=destination)
    connector.push(
        record(group_ids=frozenset({group.pk}), subscriptions={mailing_list.pk: True}),
        RemoteState(),
    )
    assert [g["id"] for g in stored(sandbox)["contacts"][0]["groups"]] == [NEWSLETTER, VIP]
    connector.push(record(subscriptions={mailing_list.pk: False}), RemoteState())
    assert stored(sandbox)["contacts"][0]["groups"] == []


def test_delete_keeps_the_profile_and_a_push_restores_it(yespo, sandbox):
    pushed = yespo.push(record(), RemoteState())
    yespo.delete(external_id="EM12790", remote_id=pushed.remote_id)
    assert stored(sandbox)["contacts"] == []
    assert [c["id"] for c in stored(sandbox)["deleted"]] == [int(pushed.remote_id)]
    yespo.delete(external_id="EM12790", remote_id=pushed.remote_id)  # already gone: done
    restored = yespo.push(record(first_name="Johnny"), RemoteState())
    assert restored.remote_id == pushed.remote_id
    assert stored(sandbox)["deleted"] == []


def test_erase_deletes_for_good_and_nothing_is_left_to_restore(yespo, sandbox):
    """An erasure deletes with erase=true ("permanent, unrecoverable"), not erase=false."""
    pushed = yespo.push(record(), RemoteState())
    assert yespo.erase(external_id="EM12790", remote_id=pushed.remote_id).deleted
    assert stored(sandbox)["contacts"] == [] and stored(sandbox)["deleted"] == []
    assert yespo.read_contact(external_id="EM12790", remote_id=pushed.remote_id) is None
    assert yespo.erase(external_id="EM12790", remote_id=None).deleted  # already gone: done


def test_mapped_fields_reach_the_address_book_fields(sandbox_destination, sandbox):
    destination = sandbox_destination("yespo")
    loyalty = CustomFieldDefinition.objects.create(name="loyaltyLevel")
    FieldMapping.objects.create(destination=destination, custom_field=loyalty, remote_field="79816")
    FieldMapping.objects.create(
        destination=destination, standard_field="birth_date", remote_field="79815"
    )
    connector = services.destination_connector(destination=destination)
    connector.push(
        record(
            birth_date=datetime.date(1990, 1, 1),
            custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),),
        ),
        RemoteState(),
    )
    assert stored(sandbox)["contacts"][0]["fields"] == [
        {"id": 79815, "value": "1990-01-01"},
        {"id": 79816, "value": "Gold"},
    ]


def test_a_field_the_platform_refuses_comes_back_with_its_message(yespo, sandbox):
    yespo.mapping.fields["custom:score"] = "79819"  # a NUMBER field
    with pytest.raises(PermanentError, match="Invalid value for NUMBER field") as caught:
        yespo.push(
            record(custom_values=(CustomValueRecord("score", "number", "12.5"),)), RemoteState()
        )
    assert caught.value.status == 400


def test_push_many_upserts_by_external_id_without_nulling_what_it_does_not_carry(yespo, sandbox):
    yespo.mapping.fields["custom:loyaltyLevel"] = "79816"
    yespo.push(
        record("a-1", custom_values=(CustomValueRecord("loyaltyLevel", "string", "Gold"),)),
        RemoteState(),
    )
    results = yespo.push_many(
        [
            record("a-1", first_name="Jon", last_name="", city="", email="", channels=()),
            record("a-2", email="second@example.com", phone=""),
        ]
    )
    assert [r.error for r in results] == [None, None]
    first, second = stored(sandbox)["contacts"]
    assert first["firstName"] == "Jon"
    assert first["lastName"] == "Smith"  # not carried, so not listed, so kept
    assert first["fields"] == [{"id": 79816, "value": "Gold"}]
    assert {c["type"] for c in first["channels"]} == {"email", "sms", "webpush"}
    assert second["externalCustomerId"] == "a-2"


def test_push_many_reports_the_contact_the_platform_refused(yespo, sandbox):
    yespo.mapping.fields["custom:score"] = "79819"
    results = yespo.push_many(
        [
            record("ok-1", email="ok@example.com"),
            record(
                "bad-1",
                email="bad@example.com",
                phone="+12015550124",
                custom_values=(CustomValueRecord("score", "number", "12.5"),),
            ),
        ]
    )
    assert results[0].error is None
    assert "Invalid value for NUMBER field" in results[1].error.message
    assert [c["externalCustomerId"] for c in stored(sandbox)["contacts"]] == ["ok-1"]


def test_the_engine_pushes_contacts_in_bulk(sandbox_destination, sandbox):
    destination = sandbox_destination("yespo")
    seed_demo_contacts(12)
    ids = list(Contact.objects.values_list("pk", flat=True))
    services.contacts_push(
        contact_ids=ids, destination=destination, context=services.PushContext(trigger="command")
    )
    statuses = set(ContactSyncState.objects.values_list("status", flat=True))
    assert statuses == {SyncStatus.SYNCED}
    contacts = stored(sandbox)["contacts"]
    assert len(contacts) == 12
    assert {c["externalCustomerId"] for c in contacts} == set(
        Contact.objects.values_list("external_id", flat=True)
    )
    paths = [e["path"] for e in sandbox.sandbox.request_log("yespo")]
    assert "/api/v1/contacts" in paths and "/api/v1/contact" not in paths


# ---------------------------------------------------------------------- the sandbox is strict

VALID = {"channels": [{"type": "email", "value": "raw@example.com"}], "externalCustomerId": "raw-1"}


def test_bad_or_missing_credentials_are_401(sandbox):
    wrong = raw(sandbox, "POST", "/api/v1/contact", VALID, key="not-the-key")
    missing = requests.post(f"{sandbox.url}/yespo/api/v1/contact", json=VALID, timeout=5)
    for response in (wrong, missing):
        assert response.status_code == 401
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text == "Unauthorized"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"externalCustomerId": "x"}, "channels is required"),
        ({**VALID, "fristName": "John"}, "Unrecognized field(s): fristName"),
        ({**VALID, "groups": [{"id": NEWSLETTER}]}, "groups is read-only"),
        ({**VALID, "channels": [{"type": "webPush", "value": "s-1"}]}, "Unknown channel type"),
        (
            {**VALID, "channels": [{"type": "email", "value": f"{i}@x.com"} for i in range(3)]},
            "At most two channels of type email",
        ),
        ({**VALID, "address": {"town": "Paris", "city": "Paris"}}, "Unrecognized address field"),
        ({**VALID, "fields": [{"id": 424242, "value": "x"}]}, "Unknown additional field id"),
        ({**VALID, "fields": [{"id": "79816", "value": "Gold"}]}, "Unknown additional field id"),
        ({**VALID, "fields": [{"id": 79816, "value": 5}]}, "must be a string"),
        ({**VALID, "fields": [{"name": "loyaltyLevel", "value": "Gold"}]}, "exactly {id, value}"),
        ({**VALID, "fields": [{"id": 79815, "value": "1990-13-45"}]}, "Invalid value for DATE"),
        ({**VALID, "firstName": "J" * 41}, "longer than 40"),
        ({**VALID, "lastName": 7}, "lastName must be a string"),
        ([VALID], "must be a JSON object"),
    ],
)
def test_the_contact_body_is_checked(sandbox, body, message):
    response = raw(sandbox, "POST", "/api/v1/contact", body)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert message in response.text
    assert stored(sandbox)["contacts"] == []


def test_the_seed_hidden_example_body_is_refused(sandbox):
    body = json.loads((FILES / "seed_hidden_example.json").read_text())
    response = raw(sandbox, "POST", "/api/v1/contact", body)
    assert response.status_code == 400
    assert "groups is read-only" in response.text
    body.pop("groups")
    response = raw(sandbox, "POST", "/api/v1/contact", body)
    assert response.status_code == 400
    assert "Unknown channel type 'webPush'" in response.text
    body["channels"] = [c for c in body["channels"] if c["type"] != "webPush"]
    assert (
        "Unrecognized address field(s): addressLine, city, country, postalCode"
        in raw(sandbox, "POST", "/api/v1/contact", body).text
    )
    body["address"] = {"region": "NY"}
    assert "exactly {id, value}" in raw(sandbox, "POST", "/api/v1/contact", body).text


def test_a_valid_body_answers_an_id_then_409_when_repeated(sandbox):
    first = raw(sandbox, "POST", "/api/v1/contact", VALID)
    assert first.status_code == 200 and isinstance(first.json()["id"], int)
    again = raw(sandbox, "POST", "/api/v1/contact", VALID)
    assert again.status_code == 409 and "Repeated" in again.text.title()
    changed = raw(sandbox, "POST", "/api/v1/contact", {**VALID, "firstName": "Ann"})
    assert changed.json() == first.json()


def test_without_external_id_the_same_email_updates(sandbox):
    body = {"channels": [{"type": "email", "value": "same@example.com"}]}
    first = raw(sandbox, "POST", "/api/v1/contact", body).json()
    second = raw(sandbox, "POST", "/api/v1/contact", {**body, "lastName": "Doe"}).json()
    assert first == second and len(stored(sandbox)["contacts"]) == 1


def test_a_body_that_is_not_json_is_415(sandbox):
    response = raw(
        sandbox,
        "POST",
        "/api/v1/contact",
        None,
        data="channels=email",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


def test_search_pages_and_counts(sandbox):
    for i in range(3):
        body = {
            "channels": [{"type": "email", "value": f"s{i}@x.com"}],
            "externalCustomerId": f"s{i}",
        }
        raw(sandbox, "POST", "/api/v1/contact", body)
    response = raw(sandbox, "GET", "/api/v1/contacts", params={"startindex": 2, "maxrows": 1})
    assert response.headers["TotalCount"] == "3"
    assert [c["channels"][0]["value"] for c in response.json()] == ["s1@x.com"]
    found = raw(sandbox, "GET", "/api/v1/contacts", params={"externalCustomerId": "s2"}).json()
    assert [c["channels"][0]["value"] for c in found] == ["s2@x.com"]
    # the spec's BaseContact: no external ID, address, language or segments in a search hit
    assert set(found[0]) == {"channels", "fields", "addressBookId", "id"}
    assert raw(sandbox, "GET", "/api/v1/contacts", params={"maxrows": 501}).status_code == 400


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/api/v1/group/999/contacts/attach", {"externalCustomerIds": ["a"]}, 404, "not found"),
        (f"/api/v1/group/{DYNAMIC}/contacts/attach", {"externalCustomerIds": ["a"]}, 400, "static"),
        (
            f"/api/v1/group/{NEWSLETTER}/contacts/attach",
            {"externalCustomerIds": [str(i) for i in range(501)]},
            400,
            "At most 500",
        ),
        (
            f"/api/v1/group/{NEWSLETTER}/contacts/attach",
            {"externalCustomerId": ["a"]},
            400,
            "contactIds and externalCustomerIds only",
        ),
        (f"/api/v1/group/{NEWSLETTER}/contacts/detach", {}, 400, "is required"),
    ],
)
def test_segment_calls_are_checked(sandbox, path, body, status, message):
    response = raw(sandbox, "POST", path, body)
    assert response.status_code == status
    assert message.lower() in response.text.lower()


def test_addressbooks_have_the_object_when_one_shape(sandbox):
    books = raw(sandbox, "GET", "/api/v1/addressbooks").json()
    assert isinstance(books["addressBook"], dict)
    groups = {g["name"]: g["fields"] for g in books["addressBook"]["fieldGroups"]}
    assert isinstance(groups["Personal"], list)
    assert groups["Loyalty"] == {
        "id": 79816,
        "name": "loyaltyLevel",
        "fieldKey": "loyaltyLevel",
        "description": {"type": "TEXTFIELD", "required": False, "readonly": False},
    }


@pytest.mark.parametrize(
    "body, message",
    [
        ({"contacts": [VALID]}, "dedupeOn must be one of"),
        ({"contacts": [VALID], "dedupeOn": "phone"}, "dedupeOn must be one of"),
        ({"dedupeOn": "email"}, "contacts is required"),
        ({"contacts": [VALID] * 3001, "dedupeOn": "email"}, "At most 3000"),
        ({"contacts": [VALID], "dedupeOn": "email", "contactField": ["email"]}, "Unrecognized"),
        ({"contacts": [VALID], "dedupeOn": "email", "contactFields": ["city"]}, "contactFields"),
        ({"contacts": [VALID], "dedupeOn": "email", "customFieldsIDs": ["79816"]}, "integers"),
    ],
)
def test_the_bulk_body_is_checked(sandbox, body, message):
    response = raw(sandbox, "POST", "/api/v1/contacts", body)
    assert response.status_code == 400
    assert message in response.text


def test_bulk_invalid_contacts_fail_alone_one_as_an_object_several_as_a_list(sandbox):
    bad = {"channels": [{"type": "fax", "value": "1"}], "externalCustomerId": "bad-1"}
    body = {"contacts": [VALID, bad], "dedupeOn": "externalCustomerId"}
    answer = raw(sandbox, "POST", "/api/v1/contacts", body).json()
    assert answer["failedContacts"] == {**bad, "error": "Unknown channel type 'fax'"}
    status = raw(sandbox, "GET", f"/api/v1/importstatus/{answer['asyncSessionId']}").json()
    assert status["status"] == "FINISHED"
    assert status["mapping"][0]["dedupeValue"] == "raw-1"
    body["contacts"] = [bad, {**bad, "externalCustomerId": "bad-2"}]
    answer = raw(sandbox, "POST", "/api/v1/contacts", body).json()
    assert [f["externalCustomerId"] for f in answer["failedContacts"]] == ["bad-1", "bad-2"]
    assert [c["externalCustomerId"] for c in stored(sandbox)["contacts"]] == ["raw-1"]


def test_bulk_contact_fields_null_what_is_listed_but_not_carried(sandbox):
    raw(sandbox, "POST", "/api/v1/contact", {**VALID, "firstName": "Ann", "lastName": "Lee"})
    body = {
        "contacts": [{**VALID, "firstName": "Anna"}],
        "dedupeOn": "externalCustomerId",
        "contactFields": ["firstName", "lastName"],
    }
    assert raw(sandbox, "POST", "/api/v1/contacts", body).status_code == 200
    (contact,) = stored(sandbox)["contacts"]
    assert contact["firstName"] == "Anna" and "lastName" not in contact


def test_unknown_import_session_is_404(sandbox):
    assert raw(sandbox, "GET", "/api/v1/importstatus/nope").status_code == 404


def test_over_200_requests_a_second_answer_429_with_retry_after(sandbox):
    sandbox.sandbox.set_rate_limit("yespo", 2)
    statuses = [raw(sandbox, "GET", "/api/v1/groups") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[-1].headers["Retry-After"] == "1"
    assert statuses[-1].text.startswith("Too many requests")
    assert YespoEmulator.default_rate_limit == 200


def test_search_has_its_own_limit_of_50_a_second():
    emulator = YespoEmulator()
    search = SandboxRequest("GET", "/api/v1/contacts", {}, {}, b"")
    statuses = [emulator.route(search).status for _ in range(51)]
    assert statuses == [200] * 50 + [429]


# ------------------------------------------------------------ import status under a fault


def test_a_failed_import_status_check_leaves_stored_contacts_awaiting_then_confirms_them(
    sandbox, sandbox_destination, immediate_tasks
):
    """The batch is accepted and stored; the status check fails: nobody is marked failed,
    and the scheduler's later check confirms them."""
    from datetime import timedelta

    from django.utils import timezone

    destination = sandbox_destination("yespo")
    seed_demo_contacts(20)
    ids = list(Contact.objects.values_list("pk", flat=True))
    faults(sandbox, error_rate=1.0, error_status=500, error_path="importstatus")
    context = services.PushContext(trigger="action")
    services.contacts_push(contact_ids=ids, destination=destination, context=context)
    states = ContactSyncState.objects.filter(destination=destination)
    assert {s.status for s in states} == {SyncStatus.AWAITING}, [s.last_error for s in states]
    assert len(stored(sandbox)["contacts"]) == 20  # what Yespo holds meanwhile

    faults(sandbox, error_rate=0.0, error_path="")
    services.retries_enqueue_due(now=timezone.now() + timedelta(hours=2))
    states = states.all()
    assert {s.status for s in states} == {SyncStatus.SYNCED}, [s.last_error for s in states]
    held = {c["externalCustomerId"]: str(c["id"]) for c in stored(sandbox)["contacts"]}
    assert {s.contact.external_id: s.remote_id for s in states} == held


def test_a_town_and_phone_changed_in_yespo_are_reported_as_drifted(sandbox, sandbox_destination):
    from contacts.models import Contact
    from sync import services

    destination = sandbox_destination("yespo")
    contact = Contact.objects.create(
        first_name="John", email="john@example.com", phone="+380501234567", city="Kyiv"
    )
    state = services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    assert state.status in ("synced", "unchanged"), state.last_error
    assert (
        services.destination_reconcile(destination=destination, contact_ids=[contact.pk]).drifted
        == 0
    )
    changed = requests.post(
        f"{sandbox.url}/_sandbox/contact/yespo/{contact.external_id}",
        json={
            "raw": {
                "address": {"town": "Lviv"},
                "channels": [
                    {"type": "email", "value": "john@example.com"},
                    {"type": "sms", "value": "+380671234567"},
                ],
            }
        },
    )
    assert changed.status_code == 200, changed.text
    report = services.destination_reconcile(destination=destination, contact_ids=[contact.pk])
    assert dict(report.fields) == {"phone": 1, "city": 1}
    # by the stored id: one GET /api/v1/contact/{id}, no search
    assert report.requests == 1


# ------------------------------------------------- clears and write rules (issue #13, items 1-2)


def _yespo_contact(sandbox, external_id="clear-1"):
    contacts = sandbox.sandbox.store("yespo")["yespo"]["contacts"]
    (held,) = [c for c in contacts if c.get("externalCustomerId") == external_id]
    return held


@pytest.fixture
def clearing(sandbox_destination):
    """A Yespo destination: custom field "profession" -> 79814, a group -> segment 200401."""
    from contacts.models import CustomFieldDefinition, Group

    destination = sandbox_destination("yespo")
    profession = CustomFieldDefinition.objects.create(name="profession")
    FieldMapping.objects.create(
        destination=destination, custom_field=profession, remote_field="79814"
    )
    vip = Group.objects.create(name="VIP")
    ListMapping.objects.create(destination=destination, group=vip, remote_list="200401")
    destination.refresh_from_db()
    return destination, vip


def test_clearing_fields_goes_through_bulk_contact_fields_and_awaits_confirmation(
    sandbox, clearing
):
    from sync.engine import PushContext, contacts_confirm
    from sync.models import SyncStatus
    from tests.sync.clearing import (
        change,
        clear_custom,
        contact_with,
        last_attempt,
        push,
        set_custom,
    )

    destination, _ = clearing
    person = contact_with(
        phone="+380501234567", city="Kyiv", region="Kyiv", postal_code="01001", language="uk"
    )
    set_custom(person, "profession", "writer")
    assert push(person, destination).status == SyncStatus.SYNCED
    held = _yespo_contact(sandbox)
    assert {c["type"] for c in held["channels"]} == {"email", "sms"}
    assert held["address"] == {"town": "Kyiv", "region": "Kyiv", "postcode": "01001"}
    assert held["fields"] == [{"id": 79814, "value": "writer"}]

    change(person, phone="", city="", postal_code="", language="", last_name="")
    clear_custom(person, "profession")
    state = push(person, destination)
    # a clear is asynchronous on Yespo, even for one contact: accepted, awaiting confirmation
    assert state.status == SyncStatus.AWAITING and state.confirmation_ref
    attempt = last_attempt(person, destination)
    assert attempt.outcome == "awaiting"
    body = attempt.request_body
    assert "POST" in body and "api/v1/contacts" in body
    bulk = json.loads(body.split("\n", 1)[1].split("\n\nPOST")[0])
    assert set(bulk["contactFields"]) >= {"sms", "town", "postcode", "languageCode", "lastName"}
    assert "region" in bulk["contactFields"]  # still carried: listed with its value
    assert bulk["customFieldsIDs"] == [79814]
    (sent,) = bulk["contacts"]
    assert "lastName" not in sent and [c["type"] for c in sent["channels"]] == ["email"]

    held = _yespo_contact(sandbox)
    assert [c["type"] for c in held["channels"]] == ["email"]  # the phone channel is gone
    assert held.get("address") == {"region": "Kyiv"}
    assert held["fields"] == [] and held.get("lastName") is None
    assert held.get("languageCode") is None and held["firstName"] == "Ada"

    (confirmed,) = contacts_confirm(
        contact_ids=[person.pk], destination=destination, context=PushContext(trigger="retry")
    )
    assert confirmed.status == SyncStatus.SYNCED
    # cleared and confirmed: the next change goes through the single call again
    change(person, first_name="Augusta")
    assert push(person, destination).status == SyncStatus.SYNCED
    assert "api/v1/contact\n" in last_attempt(person, destination).request_body


def test_leaving_a_group_detaches_and_never_sends_an_empty_detach(sandbox, clearing):
    from contacts.models import GroupMembership
    from sync.engine import destination_connector
    from tests.sync.clearing import contact_with, push

    destination, vip = clearing
    person = contact_with()
    GroupMembership.objects.create(contact=person, group=vip)
    push(person, destination)
    assert [g["id"] for g in _yespo_contact(sandbox)["groups"]] == [200401]
    GroupMembership.objects.filter(contact=person).delete()
    person.bump_content_version()
    push(person, destination)
    assert _yespo_contact(sandbox)["groups"] == []
    # with nobody to move, no membership call at all (an empty detach empties the segment)
    connector = destination_connector(destination=destination)
    connector._sync_memberships([])
    assert connector.drain_exchanges() == []


def test_yespo_write_rules_create_only_and_never(sandbox, clearing):
    from sync.models import NativeFieldRule
    from tests.sync.clearing import change, contact_with, last_attempt, push, set_custom

    destination, _ = clearing
    FieldMapping.objects.filter(destination=destination).update(write_rule="never")
    NativeFieldRule.objects.create(destination=destination, field="city", write_rule="create")
    destination.refresh_from_db()
    person = contact_with(city="Kyiv")
    set_custom(person, "profession", "writer")
    push(person, destination)
    held = _yespo_contact(sandbox)
    assert held["address"] == {"town": "Kyiv"} and held["fields"] == []
    change(person, city="Lviv")
    push(person, destination)
    assert _yespo_contact(sandbox)["address"] == {"town": "Kyiv"}
    assert "Lviv" not in last_attempt(person, destination).request_body
    change(person, city="")  # the platform's own now: not cleared either
    push(person, destination)
    assert _yespo_contact(sandbox)["address"] == {"town": "Kyiv"}


def test_a_bulk_push_clears_by_shape_and_touches_nothing_else(sandbox, clearing):
    from sync.engine import PushContext, contacts_push
    from sync.models import SyncStatus
    from tests.sync.clearing import change, contact_with

    destination, _ = clearing
    cleared = contact_with(phone="+380501234567", city="Kyiv")
    kept = contact_with(
        external_id="clear-2", email="b@example.com", phone="+380501234568", city="Lviv"
    )
    context = PushContext(trigger="action")
    contacts_push(contact_ids=[cleared.pk, kept.pk], destination=destination, context=context)
    change(cleared, phone="", city="")
    change(kept, first_name="Bea")
    states = contacts_push(
        contact_ids=[cleared.pk, kept.pk], destination=destination, context=context
    )
    assert {s.status for s in states} == {SyncStatus.SYNCED}, [s.last_error for s in states]
    one, two = _yespo_contact(sandbox), _yespo_contact(sandbox, "clear-2")
    assert [c["type"] for c in one["channels"]] == ["email"] and not one.get("address")
    assert {c["type"] for c in two["channels"]} == {"email", "sms"}
    assert two["address"] == {"town": "Lviv"} and two["firstName"] == "Bea"


# ------------------------------------------------------------- the unsubscribed-emails list


def test_the_unsubscribed_list_takes_emails_only_and_adds_and_removes_addresses(sandbox):
    for body in ({}, {"emails": "a@example.com"}, {"emails": ["a@example.com"], "ids": [1]}):
        response = raw(sandbox, "POST", "/api/v1/emails/unsubscribed/add", body)
        assert response.status_code == 400, body
    added = raw(sandbox, "POST", "/api/v1/emails/unsubscribed/add", {"emails": ["A@example.com"]})
    assert (added.status_code, added.content) == (200, b"")
    assert stored(sandbox)["unsubscribed_emails"] == ["a@example.com"]
    removed = raw(
        sandbox, "POST", "/api/v1/emails/unsubscribed/delete", {"emails": ["a@example.com"]}
    )
    assert removed.status_code == 200
    assert stored(sandbox)["unsubscribed_emails"] == []


def test_an_opt_out_goes_on_the_list_once_and_comes_off_only_for_a_re_subscribe(yespo, sandbox):
    pushed = yespo.push(record(email_status="unsubscribed"), RemoteState(None, "subscribed"))
    assert stored(sandbox)["unsubscribed_emails"] == ["john.smith@example.com"]
    calls = [e.url for e in yespo.drain_exchanges()]
    assert sum("emails/unsubscribed/add" in url for url in calls) == 1
    # pushed again while still opted out: no list call at all
    yespo.push(
        record(email_status="unsubscribed", city="Kyiv"),
        RemoteState(pushed.remote_id, "unsubscribed"),
    )
    assert not [e for e in yespo.drain_exchanges() if "unsubscribed" in e.url]
    # a plain subscribed contact Yespo already holds subscribed: nothing either
    yespo.push(record(city="Lviv"), RemoteState(pushed.remote_id, "subscribed"))
    assert not [e for e in yespo.drain_exchanges() if "unsubscribed" in e.url]
    assert stored(sandbox)["unsubscribed_emails"] == ["john.smith@example.com"]
    # a re-subscribe here (Yespo last held the opt-out): the address comes off the list
    yespo.push(record(city="Odesa"), RemoteState(pushed.remote_id, "unsubscribed"))
    assert stored(sandbox)["unsubscribed_emails"] == []


def test_the_dry_run_lists_the_unsubscribed_list_call(yespo):
    planned = yespo.planned_requests(
        [(record(email_status="bounced"), RemoteState(None, "subscribed"))]
    )
    calls = [(p.method, p.url.split("/yespo/", 1)[-1], p.body) for p in planned]
    assert (
        "POST",
        "api/v1/emails/unsubscribed/add",
        '{"emails": ["john.smith@example.com"]}',
    ) in calls, calls
