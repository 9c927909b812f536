"""Cendyn CRM over real HTTP against the sandbox: the connector's find-then-update-or-create,
bulk, faults, options, and the sandbox refusing what Cendyn refuses (raw requests)."""

import datetime
import time

import pytest
import requests

from contacts.demo import seed_demo_contacts
from contacts.models import Contact, CustomFieldDefinition, Group, MailingList
from sync import services
from sync.connectors.base import AuthenticationError, RetryableError, Unconfirmed
from sync.connectors.records import ContactRecord, CustomValueRecord, RemoteState
from sync.models import ContactSyncState, FieldMapping, ListMapping, SyncStatus
from sync.sandbox.cendyn import INVENTED_BULK_STATUS, CendynEmulator
from sync.services import destination_connector

pytestmark = pytest.mark.django_db
SECRET = CendynEmulator.account_credentials["secret"]
ACCOUNT_ID = CendynEmulator.account_settings["account_id"]

NEWSLETTER = "661f9a2be4b0a1c2d3e40001"
VIP = "661f9a2be4b0a1c2d3e40002"
SPA = "661f9a2be4b0a1c2d3e40003"
SAMPLE_FIELDS = [
    "loyalty_tier",
    "lifetime_value",
    "is_vip",
    "anniversary_date",
    "time_zone",
    "gender_identity",
    "room_preference",
]
ROUTE_NOT_FOUND = "Route not found, please visit https://developers.cendyncrm.com/api/reference"
GOOD_AUTH = f"Token token={SECRET}"


def store(sandbox):
    return sandbox.sandbox.store("cendyn")["cendyn"]


def faults(sandbox, **changes):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "cendyn", **changes}, timeout=5
    )
    assert response.status_code == 200, response.text


def call(
    sandbox,
    method,
    path,
    body=None,
    *,
    auth=GOOD_AUTH,
    account=ACCOUNT_ID,
    **kwargs,
):
    headers = {"Accept": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    url = f"{sandbox.url}/cendyn/v2/account/{account}/{path}"
    return requests.request(method, url, json=body, headers=headers, timeout=5, **kwargs)


@pytest.fixture
def mapped(sandbox_destination):
    """A Cendyn destination mapping time zone, two custom fields, a group and a mailing list,
    and a contact using them all: (connector, record, group, mailing list)."""
    destination = sandbox_destination("cendyn")
    loyalty = CustomFieldDefinition.objects.create(name="loyaltyLevel", type="string")
    value = CustomFieldDefinition.objects.create(name="lifetimeValue", type="number")
    group = Group.objects.create(name="VIP")
    digest = MailingList.objects.create(name="Weekly digest")
    FieldMapping.objects.create(
        destination=destination, standard_field="time_zone", remote_field="time_zone"
    )
    FieldMapping.objects.create(
        destination=destination, custom_field=loyalty, remote_field="loyalty_tier"
    )
    FieldMapping.objects.create(
        destination=destination, custom_field=value, remote_field="lifetime_value"
    )
    ListMapping.objects.create(destination=destination, group=group, remote_list=VIP)
    ListMapping.objects.create(destination=destination, mailing_list=digest, remote_list=NEWSLETTER)
    record = ContactRecord(
        id=1,
        external_id="JD-1001",
        first_name="John",
        last_name="Doe",
        email="johndoe@example.com",
        phone="+447712345678",
        language="en",
        gender="male",
        time_zone="Europe/London",
        birth_date=datetime.date(1990, 1, 1),
        tags=("tag1", "tag2"),
        custom_values=(
            CustomValueRecord("loyaltyLevel", "string", "Gold"),
            CustomValueRecord("lifetimeValue", "number", "120.5"),
        ),
        group_ids=frozenset({group.pk}),
        subscriptions={digest.pk: True},
        gdpr_marketing_consent=True,
        terms_accepted=True,
        consent_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        consent_ip="203.0.113.7",
    )
    return destination_connector(destination=destination), record, group, digest


def changed(record, group):
    """The same person, renamed, with a new email and loyalty tier, out of the group,
    unsubscribed from email."""
    return ContactRecord(
        id=record.id,
        external_id=record.external_id,
        first_name="Johnny",
        last_name=record.last_name,
        email="johnny@example.com",
        phone=record.phone,
        language="es",
        gender="male",
        time_zone=record.time_zone,
        birth_date=record.birth_date,
        tags=("tag3",),
        email_status="unsubscribed",
        custom_values=(
            CustomValueRecord("loyaltyLevel", "string", "Platinum"),
            CustomValueRecord("lifetimeValue", "number", "130"),
        ),
        group_ids=frozenset(),
        subscriptions=record.subscriptions,
    )


def assert_one_changed_record(sandbox, remote_id):
    (stored,) = store(sandbox)["contacts"]
    assert stored["id"] == remote_id
    assert stored["user_id"] == "JD-1001"
    assert stored["name_first"] == "Johnny" and stored["email"] == "johnny@example.com"
    assert stored["language"] == "ES" and stored["tags"] == ["tag3"]
    assert stored["loyalty_tier"] == "Platinum" and stored["lifetime_value"] == 130
    assert {s["list_id"]: s["subscribed"] for s in stored["list_subscriptions"]} == {
        VIP: False,
        NEWSLETTER: True,
    }
    assert {s["channel"]: s["blacklisted"] for s in stored["channel_subscriptions"]} == {
        "email": True,
        "sms": True,
    }
    return stored


# ----------------------------------------------------------------------- matching


def test_push_then_change_updates_the_same_record(sandbox, mapped):
    cendyn, record, group, _ = mapped
    first = cendyn.push(record, RemoteState())
    assert first.created and first.status_code == 201 and len(first.remote_id) == 24
    (stored,) = store(sandbox)["contacts"]
    assert stored["born_date"] == "1990-01-01T00:00:00Z" and stored["gender"] == "MALE"
    assert (stored["phone_countrycode"], stored["phone_number"]) == ("44", "7712345678")
    assert stored["time_zone"] == "Europe/London" and stored["lifetime_value"] == 120.5
    assert stored["gdpr_date"] == "2026-01-01T00:00:00Z"

    second = cendyn.push(changed(record, group), RemoteState(first.remote_id))
    assert (second.remote_id, second.created, second.status_code) == (first.remote_id, False, 200)
    assert_one_changed_record(sandbox, first.remote_id)


def test_push_without_stored_id_finds_the_record_by_user_id(sandbox, mapped):
    cendyn, record, group, _ = mapped
    first = cendyn.push(record, RemoteState())
    second = cendyn.push(changed(record, group), RemoteState())  # the id was never stored
    assert (second.remote_id, second.created) == (first.remote_id, False)
    assert_one_changed_record(sandbox, first.remote_id)


def test_record_deleted_on_the_platform_is_created_again(sandbox, mapped):
    cendyn, record, group, _ = mapped
    first = cendyn.push(record, RemoteState())
    assert call(sandbox, "DELETE", f"contact/{first.remote_id}").status_code == 200
    again = cendyn.push(changed(record, group), RemoteState(first.remote_id))
    assert again.created and again.remote_id != first.remote_id
    (stored,) = store(sandbox)["contacts"]
    assert stored["id"] == again.remote_id and stored["name_first"] == "Johnny"


def test_push_under_latency(sandbox, mapped):
    cendyn, record, group, _ = mapped
    faults(sandbox, latency_ms=50)
    first = cendyn.push(record, RemoteState())
    second = cendyn.push(changed(record, group), RemoteState(first.remote_id))
    assert second.remote_id == first.remote_id
    assert_one_changed_record(sandbox, first.remote_id)


def test_push_through_a_429_storm(sandbox, mapped):
    cendyn, record, group, _ = mapped
    faults(sandbox, storm_seconds=0.6, retry_after=1)
    with pytest.raises(RetryableError) as err:
        cendyn.push(record, RemoteState())
    assert err.value.status == 429 and err.value.retry_after == 1
    assert err.value.message == "Too many requests, slow down"
    assert store(sandbox)["contacts"] == []
    time.sleep(0.7)
    first = cendyn.push(record, RemoteState())
    faults(sandbox, storm_seconds=0.6, retry_after=1)
    with pytest.raises(RetryableError):
        cendyn.push(changed(record, group), RemoteState(first.remote_id))
    time.sleep(0.7)
    second = cendyn.push(changed(record, group), RemoteState(first.remote_id))
    assert second.remote_id == first.remote_id
    assert_one_changed_record(sandbox, first.remote_id)


def test_delete(sandbox, mapped):
    cendyn, record, _, _ = mapped
    first = cendyn.push(record, RemoteState())
    cendyn.delete(external_id=record.external_id, remote_id=first.remote_id)
    assert store(sandbox)["contacts"] == []
    cendyn.push(record, RemoteState())
    cendyn.delete(external_id=record.external_id, remote_id=None)  # found by user_id
    assert store(sandbox)["contacts"] == []
    cendyn.delete(external_id=record.external_id, remote_id=first.remote_id)  # nothing left


# -------------------------------------------------------------------------- bulk


def test_bulk_upserts_by_user_id_and_is_confirmed_by_read_back(sandbox, mapped):
    cendyn, record, group, _ = mapped
    nobody = ContactRecord(id=2, external_id="no-channel", first_name="Nobody")
    other = ContactRecord(id=3, external_id="JD-1003", email="jane@example.com")
    results = cendyn.push_many([record, nobody, other])
    assert all(r.error is None and r.awaiting and r.reference for r in results)
    first_ids = {c["user_id"]: c["id"] for c in store(sandbox)["contacts"]}
    assert set(first_ids) == {"JD-1001", "JD-1003"}  # Cendyn refused "no-channel"
    pending = [Unconfirmed(r, results[0].reference) for r in (record, nobody, other)]
    confirmed, refused, jane = cendyn.confirm(pending)
    assert (confirmed.error, confirmed.remote_id) == (None, first_ids["JD-1001"])
    assert (jane.error, jane.remote_id) == (None, first_ids["JD-1003"])
    assert refused is None  # not on the platform: unknown until the checks run out

    renamed = changed(record, group)
    results = cendyn.push_many([renamed, other])
    assert all(r.error is None and r.awaiting for r in results)
    contacts = store(sandbox)["contacts"]
    assert {c["user_id"]: c["id"] for c in contacts} == first_ids  # updated, not duplicated
    johnny = next(c for c in contacts if c["user_id"] == "JD-1001")
    assert johnny["name_first"] == "Johnny" and johnny["loyalty_tier"] == "Platinum"
    (confirmed,) = cendyn.confirm([Unconfirmed(renamed, results[0].reference)])
    assert confirmed.remote_id == first_ids["JD-1001"]


def test_engine_pushes_demo_contacts_in_bulk_then_singly(sandbox, sandbox_destination):
    """Demo data (every gender, language, country and status) passes the strict sandbox."""
    destination = sandbox_destination("cendyn", rate_limit=1000)
    sandbox.sandbox.set_rate_limit("cendyn", None)
    seed_demo_contacts(30)
    ids = list(Contact.objects.values_list("pk", flat=True))
    context = services.PushContext(trigger="action")
    services.contacts_push(contact_ids=ids, destination=destination, context=context)
    states = ContactSyncState.objects.filter(destination=destination)
    assert {s.status for s in states} == {SyncStatus.AWAITING}, [s.last_error for s in states]
    services.contacts_confirm(contact_ids=ids, destination=destination, context=context)
    states = states.all()  # read again
    assert {s.status for s in states} == {SyncStatus.SYNCED}, [s.last_error for s in states]
    assert len(store(sandbox)["contacts"]) == 30
    contact = Contact.objects.get(pk=ids[0])
    contact.first_name = "Renamed"
    contact.save()
    services.contacts_push(contact_ids=[contact.pk], destination=destination, context=context)
    state = states.get(contact=contact)
    assert state.status == SyncStatus.SYNCED and state.remote_id
    contacts = store(sandbox)["contacts"]
    assert len(contacts) == 30
    (renamed,) = [c for c in contacts if c["user_id"] == contact.external_id]
    assert renamed["name_first"] == "Renamed" and renamed["id"] == state.remote_id


# ------------------------------------------------------------ connection and options


def test_test_connection_and_revoked_credentials(sandbox, sandbox_destination):
    cendyn = destination_connector(destination=sandbox_destination("cendyn"))
    assert cendyn.test_connection() == (f"Connected to account {ACCOUNT_ID} (7 custom fields)")
    faults(sandbox, revoked=True)
    with pytest.raises(AuthenticationError) as err:
        cendyn.test_connection()
    assert err.value.message == (f"authorization failure for account: {ACCOUNT_ID}")


def test_fetch_options_returns_the_sample_fields_and_lists(sandbox, sandbox_destination):
    cendyn = destination_connector(destination=sandbox_destination("cendyn"))
    options = cendyn.fetch_options()
    fields = [(o.remote_id, o.type) for o in options if o.kind == "field"]
    assert [name for name, _ in fields] == SAMPLE_FIELDS
    assert ("is_vip", "boolean") in fields and ("room_preference", "selectable_options") in fields
    lists = [(o.remote_id, o.label, o.type) for o in options if o.kind == "list"]
    assert lists == [
        (NEWSLETTER, "Newsletter", "public"),
        (VIP, "VIP guests", "private"),
        (SPA, "Spa offers", "public"),
    ]


# ------------------------------------------------------------ the sandbox refuses


def test_wrong_token_is_refused(sandbox):
    response = call(sandbox, "GET", "custom_fields", auth="Token token=wrong")
    assert response.status_code == 401
    assert response.json() == {"error": f"authorization failure for account: {ACCOUNT_ID}"}
    assert response.headers["x-request-id"]
    assert call(sandbox, "GET", "custom_fields", auth=None).status_code == 401
    bearer = call(sandbox, "GET", "custom_fields", auth=f"Bearer {SECRET}")
    assert bearer.status_code == 401


def test_wrong_account_is_refused(sandbox):
    response = call(sandbox, "GET", "contact", account="550aac3da096734ce5000999")
    assert response.status_code == 401
    assert response.json() == {
        "error": "authorization failure for account: 550aac3da096734ce5000999"
    }


def test_unknown_route_is_404(sandbox):
    for method, path in (("GET", "contacts"), ("PATCH", "contact/abc"), ("POST", "lists")):
        response = call(sandbox, method, path, {})
        assert response.status_code == 404
        assert response.json() == {"error": ROUTE_NOT_FOUND}
    response = requests.get(f"{sandbox.url}/cendyn/api/v1/contact", timeout=5)
    assert response.status_code == 404 and response.json() == {"error": ROUTE_NOT_FOUND}


def test_create_needs_an_email_or_a_phone(sandbox):
    response = call(sandbox, "POST", "contact", {"name_first": "John", "user_id": "x"})
    assert response.status_code == 400
    assert response.json() == {"error": "email or phone_countrycode and phone_number are required"}
    phone_only = call(
        sandbox, "POST", "contact", {"phone_countrycode": "44", "phone_number": "7712345678"}
    )
    assert phone_only.status_code == 201
    assert len(phone_only.json()["id"]) == 24 and phone_only.headers["x-request-id"]
    half = call(sandbox, "POST", "contact", {"phone_number": "7712345678"})
    assert half.status_code == 400 and "go together" in half.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"emial": "john@example.com"}, "unknown parameter 'emial'"),
        ({"first_name": "John"}, "unknown parameter 'first_name'"),
        ({"gender": "male"}, "gender must be MALE or FEMALE"),
        ({"gender": "OTHER"}, "gender must be MALE or FEMALE"),
        ({"language": "es"}, "language must be an ISO-2 language code"),
        ({"born_date": "01/01/1990"}, "born_date must be a date in ISO 8601"),
        ({"gdpr_date": "2026-02-30T00:00:00Z"}, "gdpr_date must be a date in ISO 8601"),
        (
            {"list_subscriptions": [{"list_id": "list-that-does-not-exist", "subscribed": True}]},
            "list 'list-that-does-not-exist' not found",
        ),
        (
            {"list_subscriptions": {"list_id": NEWSLETTER, "subscribed": True}},
            "list_subscriptions must be an array of objects",
        ),
        (
            {"channel_subscriptions": [{"channel": "fax", "blacklisted": True}]},
            "channel_subscriptions[channel] must be one of email, sms, push",
        ),
        (
            {"channel_subscriptions": [{"channel": "email", "blacklisted": "yes"}]},
            "channel_subscriptions[blacklisted] must be true or false",
        ),
        ({"tags": "vip"}, "tags must be an array of strings"),
        ({"last_latitude": "27.99"}, "last_latitude must be a number"),
        ({"gdpr_marketing_consent": "true"}, "gdpr_marketing_consent must be true or false"),
        ({"lifetime_value": "120.5"}, "lifetime_value must be a number"),
        ({"is_vip": 1}, "is_vip must be true or false"),
        ({"room_preference": "double"}, "room_preference must be one of king, twin, suite"),
    ],
)
def test_create_refuses_what_cendyn_refuses(sandbox, body, message):
    response = call(sandbox, "POST", "contact", {"email": "john@example.com", **body})
    assert response.status_code == 400
    assert set(response.json()) == {"error"} and message in response.json()["error"]


def test_update_checks_the_body_and_the_id(sandbox):
    created = call(
        sandbox,
        "POST",
        "contact",
        {"email": "john@example.com", "user_id": "u1", "loyalty_tier": "Gold", "is_vip": True},
    )
    contact_id = created.json()["id"]
    bad_gender = call(sandbox, "PUT", f"contact/{contact_id}", {"gender": "Male"})
    assert bad_gender.status_code == 400 and "MALE or FEMALE" in bad_gender.json()["error"]
    paid_check = call(
        sandbox, "PUT", f"contact/{contact_id}", {"email_validation": {"validate": True}}
    )
    assert paid_check.status_code == 400  # create only (contact/create)
    missing = call(sandbox, "PUT", "contact/550aac3da096734ce5000999", {"name_first": "X"})
    assert missing.status_code == 404 and missing.json() == {"error": "Contact not found"}
    ok = call(sandbox, "PUT", f"contact/{contact_id}", {"name_first": "John"})
    assert ok.status_code == 200
    assert ok.json()["id"] == contact_id and ok.json()["loyalty_tier"] == "Gold"
    found = call(sandbox, "GET", "contact", params={"user_id": "u1"}).json()
    assert [c["id"] for c in found["contacts"]] == [contact_id]
    by_email = call(sandbox, "GET", "contact", params={"email": "JOHN@example.com"}).json()
    assert [c["id"] for c in by_email["contacts"]] == [contact_id]
    assert call(sandbox, "GET", "contact", params={"user_id": "u2"}).json() == {"contacts": []}


def test_post_is_not_an_upsert(sandbox):
    body = {"email": "john@example.com", "user_id": "u1"}
    assert call(sandbox, "POST", "contact", body).status_code == 201
    assert call(sandbox, "POST", "contact", body).status_code == 201
    found = call(sandbox, "GET", "contact", params={"user_id": "u1"}).json()["contacts"]
    assert len(found) == 2  # why the connector never POSTs blind


def test_bulk_status_and_failed_contacts(sandbox):
    body = {
        "match_contact_user_id": True,
        "contacts": [
            {"user_id": "a", "email": "a@example.com"},
            {"user_id": "b", "gender": "male", "email": "b@example.com"},
        ],
    }
    created = call(sandbox, "POST", "contact/bulk", body)
    assert created.status_code == 201
    bulk = created.json()["bulk"]
    assert bulk["status"] == "queue" and bulk["number_of_contacts"] == 2
    assert len(bulk["_id"]) == 24
    statuses = []
    for _ in range(2):
        polled = call(sandbox, "GET", f"contact/bulk/{bulk['_id']}").json()["bulk"]
        statuses.append(polled["status"])
    # "queue" (the vendor's only documented word), then one invented here and marked so
    assert statuses == ["queue", INVENTED_BULK_STATUS]
    assert "failed_contacts" not in polled  # the outcome is the webhook's, not this GET's
    assert [c["user_id"] for c in store(sandbox)["contacts"]] == ["a"]
    unknown = call(sandbox, "POST", "contact/bulk", {**body, "match_on": "email"})
    assert unknown.status_code == 400 and unknown.json() == {
        "error": "unknown parameter 'match_on'"
    }
    assert call(sandbox, "GET", "contact/bulk/550aac3da096734ce5000999").status_code == 404


def test_bulk_without_matching_creates(sandbox):
    body = {"contacts": [{"user_id": "a", "email": "a@example.com"}]}
    for _ in range(2):
        assert call(sandbox, "POST", "contact/bulk", body).status_code == 201
    assert len(store(sandbox)["contacts"]) == 2  # "else create a new one. By default: false"


def test_rate_limit_answers_429_in_the_platform_shape(sandbox):
    sandbox.sandbox.set_rate_limit("cendyn", 2)
    answers = [call(sandbox, "GET", "lists") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {"error": "Too many requests, slow down"}
    assert answers[2].headers["Retry-After"] == "1"


def test_the_form_shows_and_checks_what_cendyn_declares(admin_client_logged, sandbox_env):
    from django.urls import reverse

    from sync.connectors import get_class_list
    from sync.models import Destination

    without_settings = next(cls.slug for cls in get_class_list() if not cls.destination_settings)
    add = reverse("admin:sync_destination_add")
    page = admin_client_logged.get(f"{add}?platform=cendyn&name=Live").content.decode()
    assert 'name="setting_account_id"' in page and 'name="setting_region"' in page
    assert "Account secret variable" in page and 'name="secret_env"' not in page
    assert 'value="Live"' in page
    assert (
        'name="setting_account_id"'
        not in admin_client_logged.get(f"{add}?platform={without_settings}").content.decode()
    )

    form = {
        "name": "Cendyn live",
        "platform": "cendyn",
        "base_url": "",
        "key_env": "SYNC_CREDENTIAL_CENDYN_SECRET",
        "setting_account_id": "",
        "setting_region": "mars",
        "enabled": "on",
        "rate_limit": "",
        "timeout": "10",
        **{
            f"{prefix}-{key}": value
            for prefix in ("field_mappings", "native_field_rules", "list_mappings")
            for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
        },
    }
    response = admin_client_logged.post(add, form)
    errors = response.context["adminform"].form.errors
    assert "setting_account_id" in errors and "setting_region" in errors
    assert not Destination.objects.exists()

    response = admin_client_logged.post(
        add, {**form, "setting_account_id": " acct-7 ", "setting_region": "us"}
    )
    assert response.status_code == 302
    destination = Destination.objects.get()
    assert destination.settings == {"account_id": "acct-7", "region": "us"}
    assert destination.effective_base_url == "https://api.us.cendyncrm.com/"


def test_a_contact_saved_in_the_admin_reaches_cendyn_with_its_tags(
    admin_client_logged, django_capture_on_commit_callbacks, sandbox_destination, sandbox, settings
):
    from tests.sync.conftest import save_contact_in_admin

    settings.SYNC_ON_SAVE_MODE = "immediate"
    sandbox_destination("cendyn")
    response = save_contact_in_admin(
        admin_client_logged,
        django_capture_on_commit_callbacks,
        tags="vip, newsletter",
        external_urls=[{"ref": "crm", "url": "https://crm.example.com/c/1", "label": "CRM"}],
    )
    assert response.status_code == 302
    (record,) = sandbox.sandbox.store("cendyn")["cendyn"]["contacts"]
    assert sorted(record["tags"]) == ["newsletter", "vip"]


# ------------------------------------------------------------ confirmation by read-back


def test_a_bulk_whose_callback_never_comes_is_confirmed_by_read_back(
    sandbox, sandbox_destination, immediate_tasks
):
    """No webhook reaches us: the scheduler reads each contact back after a delay; while
    Cendyn's queue has not run, a check finds nothing and the contact keeps waiting."""
    from datetime import timedelta

    from django.utils import timezone

    destination = sandbox_destination("cendyn", rate_limit=1000)
    sandbox.sandbox.set_rate_limit("cendyn", None)
    seed_demo_contacts(5)
    ids = list(Contact.objects.values_list("pk", flat=True))
    faults(sandbox, bulk_deferred=True)
    services.contacts_push(
        contact_ids=ids, destination=destination, context=services.PushContext(trigger="action")
    )
    states = ContactSyncState.objects.filter(destination=destination)
    assert {s.status for s in states.all()} == {SyncStatus.AWAITING}
    assert all(s.next_attempt_at > timezone.now() for s in states.all())  # after a delay
    assert services.confirmations_enqueue_due() == 0  # not due yet

    later = timezone.now() + timedelta(hours=2)
    assert services.confirmations_enqueue_due(now=later) == 5
    assert {(s.status, s.attempts) for s in states.all()} == {(SyncStatus.AWAITING, 1)}

    faults(sandbox, bulk_deferred=False)  # Cendyn's queue runs
    assert services.confirmations_enqueue_due(now=later + timedelta(hours=2)) == 5
    held = {c["user_id"]: c["id"] for c in store(sandbox)["contacts"]}
    assert {s.status for s in states.all()} == {SyncStatus.SYNCED}
    assert {s.contact.external_id: s.remote_id for s in states.all()} == held
    reads = [e for e in sandbox.sandbox.log if e["platform"] == "cendyn" and e["method"] == "GET"]
    assert not [e for e in reads if "/contact/bulk/" in e["path"]]  # no status word asked


def _revoke(sandbox, platform, revoked):
    answer = requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"platform": platform, "revoked": revoked},
        timeout=5,
    )
    answer.raise_for_status()


def _bulk_posts(sandbox):
    return [
        e
        for e in list(sandbox.sandbox.log)
        if e["platform"] == "cendyn"
        and e["method"] == "POST"
        and e["path"].endswith("bulk")
        and e["status"] == 201
    ]


def test_a_forced_run_paused_by_401_then_resumed_ends_when_its_contacts_settle(
    sandbox, sandbox_destination, immediate_tasks, settings
):
    """Runs end truthfully: a forced bulk run paused by 401, resumed by a connection test,
    re-sends (its force survives), waits while Cendyn's read-back is due, then finishes."""
    from datetime import timedelta

    from django.utils import timezone

    from sync.models import SyncRun

    settings.SYNC_BULK_CHUNK_SIZE = 40
    sandbox.sandbox.set_rate_limit("cendyn", None)
    destination = sandbox_destination("cendyn", rate_limit=1000)
    seed_demo_contacts(100)
    contacts = Contact.objects.all()
    # held by the platform already: without `force` nothing would be sent again
    services.contacts_push_selected(
        contacts=contacts, destination=destination, trigger="action", user_id=None
    )
    services.confirmations_enqueue_due(now=timezone.now() + timedelta(hours=2))
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}

    _revoke(sandbox, "cendyn", True)
    run = services.contacts_push_selected(
        contacts=contacts, destination=destination, trigger="action", user_id=None, force=True
    )
    destination.refresh_from_db()
    assert destination.is_paused
    run.refresh_from_db()
    assert (run.state, run.done) == (SyncRun.State.RUNNING, 0)
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.WAITING}

    _revoke(sandbox, "cendyn", False)
    sent_before = len(_bulk_posts(sandbox))
    ok, message = services.destination_test_connection(destination=destination)
    assert ok, message
    assert len(_bulk_posts(sandbox)) > sent_before, "the run's force was dropped on resume"
    run.refresh_from_db()
    assert run.state == SyncRun.State.RUNNING  # accepted in bulk, not yet confirmed
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.AWAITING}
    assert set(ContactSyncState.objects.values_list("run", flat=True)) == {run.pk}

    services.retries_enqueue_due(now=timezone.now() + timedelta(hours=2))
    run.refresh_from_db()
    assert set(ContactSyncState.objects.values_list("status", flat=True)) == {SyncStatus.SYNCED}
    assert (run.state, run.done, run.total, run.accepted) == (
        SyncRun.State.FINISHED,
        100,
        100,
        100,
    )


def test_a_city_and_phone_changed_in_cendyn_are_reported_as_drifted(
    sandbox, sandbox_destination, client, admin_client_logged
):
    from django.urls import reverse

    destination = sandbox_destination("cendyn")
    contact = Contact.objects.create(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        phone="+447712345678",
        city="London",
        country="GB",
        language="en",
    )
    state = services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    assert state.status == SyncStatus.SYNCED, state.last_error
    report = services.destination_reconcile(destination=destination, contact_ids=[contact.pk])
    assert report.drifted == 0, report.fields  # language "EN" there, phone split in two
    changed = requests.post(
        f"{sandbox.url}/_sandbox/contact/cendyn/{contact.external_id}",
        json={"raw": {"city": "Paris", "phone_countrycode": "33", "phone_number": "612345678"}},
    )
    assert changed.status_code == 200, changed.text
    report = services.destination_reconcile(destination=destination, contact_ids=[contact.pk])
    assert dict(report.fields) == {"phone": 1, "city": 1}
    panel = admin_client_logged.get(reverse("admin:contacts_contact_sync_panel", args=[contact.pk]))
    assert "drifted: phone, city" in panel.content.decode()


# ------------------------------------------------- clears and write rules (issue #13, items 1-2)

NEWSLETTER_LIST = "661f9a2be4b0a1c2d3e40001"


def _cendyn_contact(sandbox, external_id="clear-1"):
    (held,) = [c for c in store(sandbox)["contacts"] if c.get("user_id") == external_id]
    return held


@pytest.fixture
def clearing(sandbox_destination):
    from contacts.models import MailingList

    destination = sandbox_destination("cendyn")
    newsletter = MailingList.objects.create(name="Newsletter")
    ListMapping.objects.create(
        destination=destination, mailing_list=newsletter, remote_list=NEWSLETTER_LIST
    )
    destination.refresh_from_db()
    return destination, newsletter


def test_a_list_left_and_a_cleared_phone_turn_list_and_channel_off_on_cendyn(sandbox, clearing):
    from contacts.models import MailingListSubscription
    from tests.sync.clearing import change, contact_with, last_attempt, push

    destination, newsletter = clearing
    person = contact_with(phone="+447712345678", sms_status="subscribed", city="London")
    MailingListSubscription.objects.create(contact=person, mailing_list=newsletter)
    push(person, destination)
    held = _cendyn_contact(sandbox)
    assert {c["channel"]: c["blacklisted"] for c in held["channel_subscriptions"]} == {
        "email": False,
        "sms": False,
    }
    assert held["list_subscriptions"] == [{"list_id": NEWSLETTER_LIST, "subscribed": True}]

    MailingListSubscription.objects.filter(contact=person).update(subscribed=False)
    change(person, phone="", city="")
    push(person, destination)
    held = _cendyn_contact(sandbox)
    assert held["list_subscriptions"] == [{"list_id": NEWSLETTER_LIST, "subscribed": False}]
    channels = {c["channel"]: c["blacklisted"] for c in held["channel_subscriptions"]}
    assert channels == {"email": False, "sms": True}  # the documented way to turn it off
    assert held["city"] == "London"  # nothing documented clears a value
    error = last_attempt(person, destination).error
    assert "kept on Cendyn CRM" in error and "city" in error and "phone" in error
    # a later push keeps the channel off: no phone here, whatever the SMS status says
    change(person, first_name="Augusta")
    push(person, destination)
    channels = {
        c["channel"]: c["blacklisted"] for c in _cendyn_contact(sandbox)["channel_subscriptions"]
    }
    assert channels["sms"] is True
    # the old city is still there: every push says so until a city is set here again
    assert "city" in last_attempt(person, destination).error


def test_cendyn_destination_page_lists_what_stays(sandbox, clearing, admin_client_logged):
    from django.urls import reverse

    destination, _ = clearing
    page = admin_client_logged.get(reverse("admin:sync_destination_change", args=[destination.pk]))
    assert "Cleared values stay on Cendyn CRM for: every field but the email and SMS" in (
        page.content.decode()
    )


def test_cendyn_write_rule_never_for_a_native_field(sandbox, clearing):
    from sync.models import NativeFieldRule
    from tests.sync.clearing import change, contact_with, push

    destination, _ = clearing
    NativeFieldRule.objects.create(destination=destination, field="city", write_rule="never")
    NativeFieldRule.objects.create(destination=destination, field="last_name", write_rule="create")
    destination.refresh_from_db()
    person = contact_with(city="London")
    push(person, destination)
    held = _cendyn_contact(sandbox)
    assert "city" not in held and held["name_last"] == "Lovelace"
    change(person, last_name="King")
    push(person, destination)
    assert _cendyn_contact(sandbox)["name_last"] == "Lovelace"
