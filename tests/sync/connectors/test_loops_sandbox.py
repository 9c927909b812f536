"""Loops over real HTTP against the sandbox: the connector's upserts, faults, options, and the
sandbox refusing what Loops refuses (raw requests)."""

import datetime
import time

import pytest
import requests

from contacts.models import CustomFieldDefinition, Group, MailingList
from sync.connectors.base import AuthenticationError, PermanentError, RetryableError
from sync.connectors.records import ContactRecord, CustomValueRecord, RemoteState
from sync.models import FieldMapping, ListMapping
from sync.sandbox.loops import LoopsEmulator
from sync.services import destination_connector

pytestmark = pytest.mark.django_db

PRODUCT_UPDATES = "cm06f5v0e45nf0ml5754o9cix"
NEWSLETTER = "cm16k73gq014h0mmj5b6jdi9r"
SAMPLE_PROPERTIES = [
    ("plan", "Plan", "string"),
    ("signupDate", "Signup date", "date"),
    ("lifetimeValue", "Lifetime value", "number"),
    ("isVip", "Is VIP", "boolean"),
    ("loyaltyLevel", "Loyalty level", "string"),
    ("birthDate", "Birth date", "date"),
]


def store(sandbox):
    return sandbox.sandbox.store("loops")["loops"]


def faults(sandbox, **changes):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "loops", **changes}
    )
    assert response.status_code == 200, response.text


def call(
    sandbox, method, path, body=None, *, key=LoopsEmulator.account_credentials["api_key"], **kwargs
):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.request(
        method, f"{sandbox.url}/loops/{path}", json=body, headers=headers, timeout=5, **kwargs
    )


@pytest.fixture
def mapped(sandbox_destination):
    """A Loops destination mapping birth date, a custom field, a group and a mailing list, and
    a contact using them all: (connector, record)."""
    destination = sandbox_destination("loops")
    loyalty = CustomFieldDefinition.objects.create(name="loyaltyLevel", type="string")
    value = CustomFieldDefinition.objects.create(name="lifetimeValue", type="number")
    group = Group.objects.create(name="Newsletter Subscribers")
    digest = MailingList.objects.create(name="Weekly digest")
    FieldMapping.objects.create(
        destination=destination, standard_field="birth_date", remote_field="birthDate"
    )
    FieldMapping.objects.create(
        destination=destination, custom_field=loyalty, remote_field="loyaltyLevel"
    )
    FieldMapping.objects.create(
        destination=destination, custom_field=value, remote_field="lifetimeValue"
    )
    ListMapping.objects.create(destination=destination, group=group, remote_list=PRODUCT_UPDATES)
    ListMapping.objects.create(destination=destination, mailing_list=digest, remote_list=NEWSLETTER)
    record = ContactRecord(
        id=1,
        external_id="EM12790",
        first_name="John",
        last_name="Smith",
        email="john.smith@example.com",
        birth_date=datetime.date(1990, 1, 1),
        custom_values=(
            CustomValueRecord("loyaltyLevel", "string", "Gold"),
            CustomValueRecord("lifetimeValue", "number", "120.5"),
        ),
        group_ids=frozenset({group.pk}),
        subscriptions={digest.pk: True},
    )
    return destination_connector(destination=destination), record


def changed(record):
    """The same person, renamed, with a new email and loyalty level, out of the group."""
    return ContactRecord(
        id=record.id,
        external_id=record.external_id,
        first_name="Johnny",
        last_name=record.last_name,
        email="johnny@example.com",
        birth_date=record.birth_date,
        custom_values=(CustomValueRecord("loyaltyLevel", "string", "Platinum"),),
        group_ids=frozenset(),
        subscriptions=record.subscriptions,
    )


def push_change_push(connector, record):
    first = connector.push(record, RemoteState())
    # no stored id: Loops' update answers a create and an update alike
    assert first.created is None and first.status_code == 200
    second = connector.push(changed(record), RemoteState(first.remote_id, "subscribed"))
    assert (second.remote_id, second.created) == (first.remote_id, False)
    return first.remote_id


def assert_one_updated_contact(sandbox, remote_id):
    (contact,) = store(sandbox)["contacts"]
    assert contact == {
        "id": remote_id,
        "email": "johnny@example.com",
        "firstName": "Johnny",
        "lastName": "Smith",
        "source": "API",
        "subscribed": True,
        "userGroup": "",
        "userId": "EM12790",
        "mailingLists": {NEWSLETTER: True},
        "optInStatus": None,
        "birthDate": "1990-01-01",
        "loyaltyLevel": "Platinum",  # lifetimeValue reset by null
    }


# ---------------------------------------------------------------------- the connector


def test_push_change_push_keeps_one_contact(sandbox, mapped):
    connector, record = mapped
    remote_id = push_change_push(connector, record)
    assert_one_updated_contact(sandbox, remote_id)


def test_push_change_push_with_latency(sandbox, mapped):
    connector, record = mapped
    faults(sandbox, latency_ms=50)
    started = time.monotonic()
    remote_id = push_change_push(connector, record)
    assert time.monotonic() - started >= 0.1
    assert_one_updated_contact(sandbox, remote_id)


def test_429_storm_then_push_succeeds_without_duplicate(sandbox, mapped):
    connector, record = mapped
    faults(sandbox, storm_seconds=0.6, retry_after=1)
    with pytest.raises(RetryableError) as caught:
        connector.push(record, RemoteState())
    assert (caught.value.status, caught.value.retry_after) == (429, 1.0)
    assert store(sandbox)["contacts"] == []
    time.sleep(0.7)
    remote_id = push_change_push(connector, record)
    assert_one_updated_contact(sandbox, remote_id)


def test_unsubscribe_here_then_resubscribe(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("loops"))
    record = ContactRecord(
        id=1, external_id="ext-1", email="a@example.com", email_status="unsubscribed"
    )
    first = connector.push(record, RemoteState())
    assert store(sandbox)["contacts"][0]["subscribed"] is False
    again = ContactRecord(id=1, external_id="ext-1", email="a@example.com")
    connector.push(again, RemoteState(first.remote_id, "unsubscribed"))
    assert store(sandbox)["contacts"][0]["subscribed"] is True


def test_delete_removes_the_contact_and_a_second_delete_is_fine(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("loops"))
    pushed = connector.push(
        ContactRecord(id=1, external_id="ext-1", email="a@example.com"), RemoteState()
    )
    connector.delete(external_id="ext-1", remote_id=pushed.remote_id)
    assert store(sandbox)["contacts"] == []
    connector.delete(external_id="ext-1", remote_id=pushed.remote_id)


def test_test_connection_and_revoked_key(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("loops"))
    assert connector.test_connection() == "Connected to team Sandbox team"
    faults(sandbox, revoked=True)
    with pytest.raises(AuthenticationError) as caught:
        connector.test_connection()
    assert caught.value.status == 401 and "Invalid API key" in caught.value.message


def test_fetch_options_lists_sample_properties_and_lists(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("loops"))
    options = connector.fetch_options()
    fields = [(o.remote_id, o.label, o.type) for o in options if o.kind == "field"]
    lists = {o.remote_id: (o.label, o.type) for o in options if o.kind == "list"}
    assert [(k, t) for k, _, t in fields] == [(k, t) for k, _, t in SAMPLE_PROPERTIES]
    assert lists == {
        PRODUCT_UPDATES: ("Product updates", "public"),
        NEWSLETTER: ("Newsletter", "public"),
        "clm2k8j4h6g0f8d6s4a2b0z8": ("Beta testers", "private"),
    }


def test_a_contact_without_email_and_unknown_to_loops_is_refused(sandbox, sandbox_destination):
    connector = destination_connector(destination=sandbox_destination("loops"))
    with pytest.raises(PermanentError, match="email") as caught:
        connector.push(ContactRecord(id=1, external_id="ext-1"), RemoteState())
    assert caught.value.status == 400


# ------------------------------------------------------------ raw requests: refusals


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_bad_or_missing_key_is_401_in_loops_shape(sandbox, key):
    response = call(sandbox, "PUT", "v1/contacts/update", {"email": "a@example.com"}, key=key)
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "message": "Invalid API key",
        "error": "Invalid API key",
    }
    assert response.headers["x-ratelimit-limit"] == "10"
    assert store(sandbox)["contacts"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"firstName": "Jo"}, "`email` or `userId` are missing"),
        ({"email": "", "userId": ""}, "`email` or `userId` are missing"),
        ({"email": "not-an-email"}, "Invalid email address."),
        ({"email": "a@example.com", "listId": "x"}, "`listId` is a reserved name"),
        ({"email": "a@example.com", "updatedAt": "2026-01-01"}, "`updatedAt` is a reserved name"),
        (
            {"email": "a@example.com", "favoriteColor": "blue"},
            "Contact property `favoriteColor` does not exist",
        ),
        ({"email": "a@example.com", "firstname": "Jo"}, "Contact property `firstname` does not"),
        (
            {"email": "a@example.com", "plan": "p" * 501},
            "Some body key or value is longer than allowable",
        ),
        ({"email": "a@example.com", "lifetimeValue": "120"}, "`lifetimeValue` (a number property)"),
        ({"email": "a@example.com", "isVip": "true"}, "`isVip` (a boolean property)"),
        ({"email": "a@example.com", "signupDate": "15/01/2026"}, "`signupDate` (a date property)"),
        ({"email": "a@example.com", "subscribed": "yes"}, "Invalid value for `subscribed`"),
        (
            {"email": "a@example.com", "mailingLists": {"nope": True}},
            "Mailing list `nope` does not exist",
        ),
        (
            {"email": "a@example.com", "mailingLists": {PRODUCT_UPDATES: 1}},
            f"Invalid value for mailing list `{PRODUCT_UPDATES}`",
        ),
        ({"userId": "unknown-user"}, "Provide an `email` to create a contact"),
    ],
)
def test_update_refuses_what_loops_refuses(sandbox, body, message):
    response = call(sandbox, "PUT", "v1/contacts/update", body)
    assert response.status_code == 400
    data = response.json()
    assert set(data) == {"success", "message"} and data["success"] is False
    assert message in data["message"]
    assert store(sandbox)["contacts"] == []


def test_update_accepts_every_type_and_500_characters(sandbox):
    body = {
        "email": "a@example.com",
        "userId": "u1",
        "plan": "p" * 500,
        "lifetimeValue": 1.5,
        "isVip": True,
        "signupDate": "2026-01-15T10:30:00+02:00",
        "birthDate": 631152000000,
        "mailingLists": {PRODUCT_UPDATES: True},
        "firstName": None,
    }
    response = call(sandbox, "PUT", "v1/contacts/update", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "id": store(sandbox)["contacts"][0]["id"]}


def test_update_matches_on_either_value_and_null_resets(sandbox):
    first = call(
        sandbox, "PUT", "v1/contacts/update", {"email": "a@example.com", "plan": "pro"}
    ).json()["id"]
    # found by email: the userId is set on that contact (part B)
    assert (
        call(
            sandbox, "PUT", "v1/contacts/update", {"email": "A@example.com", "userId": "u1"}
        ).json()["id"]
        == first
    )
    # found by userId: the email changes
    assert (
        call(
            sandbox,
            "PUT",
            "v1/contacts/update",
            {"email": "b@example.com", "userId": "u1", "plan": None},
        ).json()["id"]
        == first
    )
    (contact,) = store(sandbox)["contacts"]
    assert (contact["email"], contact["userId"], "plan" in contact) == (
        "b@example.com",
        "u1",
        False,
    )
    # the two values on two different contacts
    call(sandbox, "PUT", "v1/contacts/update", {"email": "c@example.com", "userId": "u2"})
    clash = call(sandbox, "PUT", "v1/contacts/update", {"email": "c@example.com", "userId": "u1"})
    assert clash.status_code == 400 and "two different contacts" in clash.json()["message"]


def test_create_find_and_delete(sandbox):
    created = call(
        sandbox, "POST", "v1/contacts/create", {"email": "a@example.com", "userId": "u1"}
    )
    assert created.status_code == 200
    duplicate = call(
        sandbox, "POST", "v1/contacts/create", {"email": "x@example.com", "userId": "u1"}
    )
    assert duplicate.status_code == 409
    assert duplicate.json() == {"success": False, "message": "Email or `userId` already exists."}
    found = call(sandbox, "GET", "v1/contacts/find", params={"email": "a@example.com"}).json()
    assert [c["id"] for c in found] == [created.json()["id"]]
    both = call(
        sandbox, "GET", "v1/contacts/find", params={"email": "a@example.com", "userId": "u1"}
    )
    assert both.status_code == 400
    assert (
        call(
            sandbox, "POST", "v1/contacts/delete", {"email": "a@example.com", "userId": "u1"}
        ).status_code
        == 400
    )
    deleted = call(sandbox, "POST", "v1/contacts/delete", {"userId": "u1"})
    assert deleted.json() == {"success": True, "message": "Contact deleted."}
    missing = call(sandbox, "POST", "v1/contacts/delete", {"userId": "u1"})
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Contact not found."}


def test_properties_can_be_created_once_and_then_used(sandbox):
    assert call(
        sandbox, "POST", "v1/contacts/properties", {"name": "favoriteColor", "type": "string"}
    ).json() == {"success": True}
    again = call(
        sandbox, "POST", "v1/contacts/properties", {"name": "favoriteColor", "type": "string"}
    )
    assert again.status_code == 400 and again.json()["message"] == "Property already exists."
    reserved = call(sandbox, "POST", "v1/contacts/properties", {"name": "teamId", "type": "string"})
    assert reserved.status_code == 400
    used = call(
        sandbox, "PUT", "v1/contacts/update", {"email": "a@example.com", "favoriteColor": "blue"}
    )
    assert used.status_code == 200
    listed = call(sandbox, "GET", "v1/contacts/properties", params={"list": "custom"}).json()
    assert {"key": "favoriteColor", "label": "Favorite color", "type": "string"} in listed
    everything = call(sandbox, "GET", "v1/contacts/properties").json()
    assert {"key": "email", "label": "Email", "type": "string"} in everything


def test_wrong_method_and_unknown_path(sandbox):
    wrong = call(sandbox, "POST", "v1/contacts/update", {"email": "a@example.com"})
    assert wrong.status_code == 405
    assert wrong.json() == {"success": False, "message": "Wrong HTTP request method."}
    assert call(sandbox, "GET", "v1/nothing-here").status_code == 404


def test_rate_limit_headers_and_429(sandbox):
    responses = [call(sandbox, "GET", "v1/api-key") for _ in range(11)]
    assert all(r.headers["x-ratelimit-limit"] == "10" for r in responses)
    assert [r.status_code for r in responses] == [200] * 10 + [429]
    remaining = [r.headers["x-ratelimit-remaining"] for r in responses[:10]]
    assert remaining == [str(n) for n in range(9, -1, -1)]
    limited = responses[-1]
    assert limited.json() == {"success": False, "message": "Rate limit exceeded."}
    assert limited.headers["x-ratelimit-remaining"] == "0"


def test_storm_429_carries_the_loops_headers(sandbox):
    faults(sandbox, storm_seconds=5, retry_after=2)
    response = call(sandbox, "GET", "v1/api-key")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_mapping_to_a_reserved_loops_property_is_refused_in_the_form(
    admin_client_logged, sandbox_destination
):
    from django.urls import reverse

    from tests.sync.conftest import destination_form_data

    destination = sandbox_destination("loops")
    definition = CustomFieldDefinition.objects.create(name="plan")
    url = reverse("admin:sync_destination_change", args=[destination.pk])
    for reserved in ("id", "listId", "softDeleteAt", "teamId", "updatedAt"):
        response = admin_client_logged.post(
            url,
            destination_form_data(
                destination,
                **{
                    "field_mappings-TOTAL_FORMS": "1",
                    "field_mappings-0-custom_field": definition.pk,
                    "field_mappings-0-standard_field": "",
                    "field_mappings-0-remote_field": reserved,
                },
            ),
        )
        assert response.status_code == 200
        assert "reserved Loops property name" in response.content.decode()
    assert not FieldMapping.objects.exists()


def test_a_saved_contact_shows_loops_400_for_an_unknown_property(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox, settings
):
    from django.urls import reverse

    from sync.models import SyncStatus
    from tests.contacts.admin_post import contact_post

    settings.SYNC_ON_SAVE_MODE = "immediate"
    loops = sandbox_destination("loops")
    definition = CustomFieldDefinition.objects.create(name="nickname", type="string")
    FieldMapping.objects.create(
        destination=loops, custom_field=definition, remote_field="propertyThatDoesNotExist"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged.post(
            reverse("admin:contacts_contact_add"),
            contact_post(custom_values=[{"definition": definition.pk, "value": "Johnny"}]),
        )
    assert response.status_code == 302
    contact = loops.sync_states.get().contact
    state = contact.sync_states.get()
    assert state.status == SyncStatus.FAILED
    assert "propertyThatDoesNotExist" in state.last_error
    page = admin_client_logged.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    assert "propertyThatDoesNotExist" in page.content.decode()


# ------------------------------------------------- clears and write rules (issue #13, items 1-2)


def _loops_contact(sandbox, external_id="clear-1"):
    (held,) = [c for c in store(sandbox)["contacts"] if c["userId"] == external_id]
    return held


@pytest.fixture
def clearing(sandbox_destination):
    """A Loops destination mapping the custom field "plan" and a mailing list."""
    from contacts.models import CustomFieldDefinition

    destination = sandbox_destination("loops")
    definition = CustomFieldDefinition.objects.create(name="plan")
    FieldMapping.objects.create(
        destination=destination, custom_field=definition, remote_field="plan"
    )
    newsletter = MailingList.objects.create(name="Newsletter")
    ListMapping.objects.create(
        destination=destination, mailing_list=newsletter, remote_list="cm06f5v0e45nf0ml5754o9cix"
    )
    destination.refresh_from_db()
    return destination, newsletter


def test_clearing_each_field_nulls_it_on_loops_and_leaving_a_list_removes_it(sandbox, clearing):
    from contacts.models import MailingListSubscription
    from sync.models import SyncStatus
    from tests.sync.clearing import (
        change,
        clear_custom,
        contact_with,
        last_attempt,
        push,
        set_custom,
    )

    destination, newsletter = clearing
    person = contact_with()
    set_custom(person, "plan", "pro")
    MailingListSubscription.objects.create(contact=person, mailing_list=newsletter)
    assert push(person, destination).status == SyncStatus.SYNCED
    held = _loops_contact(sandbox)
    assert (held["firstName"], held["lastName"], held["plan"]) == ("Ada", "Lovelace", "pro")
    assert held["mailingLists"] == {"cm06f5v0e45nf0ml5754o9cix": True}

    change(person, first_name="", last_name="")
    clear_custom(person, "plan")
    MailingListSubscription.objects.filter(contact=person).update(subscribed=False)
    person.bump_content_version()
    state = push(person, destination)
    assert state.status == SyncStatus.SYNCED
    held = _loops_contact(sandbox)
    assert (held["firstName"], held["lastName"], "plan" in held) == (None, None, False)
    assert held["mailingLists"] == {}
    body = last_attempt(person, destination).request_body
    assert '"firstName": null' in body and '"plan": null' in body
    assert last_attempt(person, destination).error == ""  # nothing stays on Loops
    assert "plan" not in state.accepted_keys and "first_name" not in state.accepted_keys

    # cleared once: the next change does not send the nulls again
    change(person, first_name="Ada")
    push(person, destination)
    assert "null" not in last_attempt(person, destination).request_body


def test_a_cleared_user_group_stays_on_loops_and_the_attempt_log_says_so(sandbox, clearing):
    from sync.models import SyncStatus
    from tests.sync.clearing import change, contact_with, last_attempt, push

    destination, _ = clearing
    person = contact_with(user_group="Customers")
    push(person, destination)
    change(person, user_group="")
    assert push(person, destination).status == SyncStatus.SYNCED
    assert _loops_contact(sandbox)["userGroup"] == "Customers"  # a string, never null
    error = last_attempt(person, destination).error
    assert "kept on Loops" in error and "user_group" in error and "not in sync" in error


def test_a_state_from_before_clears_every_mapped_empty_field(sandbox, clearing):
    """accepted_keys unknown (a state written before they were kept): all possibly held."""
    from sync.models import ContactSyncState
    from tests.sync.clearing import (
        change,
        clear_custom,
        contact_with,
        last_attempt,
        push,
        set_custom,
    )

    destination, _ = clearing
    person = contact_with()
    set_custom(person, "plan", "pro")
    push(person, destination)
    ContactSyncState.objects.filter(contact=person).update(accepted_keys=None)
    clear_custom(person, "plan")
    change(person, last_name="")
    push(person, destination)
    body = last_attempt(person, destination).request_body
    assert '"plan": null' in body and '"lastName": null' in body
    assert "plan" not in _loops_contact(sandbox)


def test_write_rules_create_only_is_not_resent_and_never_is_not_sent(sandbox, clearing):
    from sync.models import NativeFieldRule
    from tests.sync.clearing import change, contact_with, last_attempt, push, set_custom

    destination, _ = clearing
    FieldMapping.objects.filter(destination=destination).update(write_rule="never")
    NativeFieldRule.objects.create(destination=destination, field="first_name", write_rule="create")
    destination.refresh_from_db()
    person = contact_with()
    set_custom(person, "plan", "pro")
    push(person, destination)
    held = _loops_contact(sandbox)
    assert held["firstName"] == "Ada"  # on create
    assert "plan" not in held  # never

    change(person, first_name="Augusta", last_name="King")
    push(person, destination)
    held = _loops_contact(sandbox)
    assert (held["firstName"], held["lastName"]) == ("Ada", "King")  # Loops owns the name now
    body = last_attempt(person, destination).request_body
    assert "Augusta" not in body and '"plan"' not in body
    # a cleared create-only field is the platform's own: never cleared either
    change(person, first_name="")
    push(person, destination)
    assert _loops_contact(sandbox)["firstName"] == "Ada"
