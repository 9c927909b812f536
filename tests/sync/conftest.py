import pytest

from tests.conftest import PLATFORMS  # noqa: F401  (re-exported)


def sandbox_store(sandbox, platform):
    return sandbox.sandbox.store(platform)[platform]


def sandbox_requests(sandbox, platform=None):
    """How many requests the sandbox answered, for one platform or all."""
    counts = sandbox.sandbox.stats()["requests"]
    platforms = [platform] if platform else list(counts)
    return sum(sum(counts.get(p, {}).values()) for p in platforms)


def destination_form_data(destination, **changes):
    """The POST data of the destination's change form as it stands (no mapping rows), with
    `changes` applied."""
    data = {
        "name": destination.name,
        "platform": destination.platform,
        "base_url": destination.base_url,
        **{f"setting_{name}": value for name, value in destination.settings.items()},
        "key_env": destination.key_env,
        "secret_env": destination.secret_env,
        "enabled": "on",
        "push_on_save": "on",
        "sync_mode": destination.sync_mode,
        "rate_limit": "",
        "timeout": "10",
    }
    for prefix in ("field_mappings", "native_field_rules", "list_mappings"):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update(changes)
    return data


def payload_keys(destination) -> tuple[str, str]:
    """(external ID key, first name key): the keys of the destination's payload that hold a
    contact's external ID and first name, found by building one for a probe contact (the
    sandbox stores a contact under the keys it was sent)."""
    from sync.connectors.records import ContactRecord, RemoteState
    from sync.engine import destination_connector

    probe = ContactRecord(
        id=None,
        external_id="probe-external-id",
        first_name="Probe",
        last_name="Contact",
        email="probe@example.com",
    )
    connector = destination_connector(destination=destination, throttle=False)
    payload = connector.build_payload(probe, RemoteState())

    def key_of(value):
        keys = [key for key, sent in payload.items() if sent == value]
        assert len(keys) == 1, f"{destination.platform}: {value!r} under {keys} in {payload}"
        return keys[0]

    return key_of(probe.external_id), key_of(probe.first_name)


def save_contact_in_admin(client, capture_on_commit, **fields):
    """Add a contact through its admin page (inline rows as `contact_post` takes them) and run
    the push on save that follows the commit; returns the response."""
    from django.urls import reverse

    from tests.contacts.admin_post import contact_post

    with capture_on_commit(execute=True):
        return client.post(reverse("admin:contacts_contact_add"), contact_post(**fields))


def sandbox_control(sandbox, control, **body):
    """POST /_sandbox/<action> (webhook, notify); the parsed answer, asserting 200."""
    import requests

    response = requests.post(f"{sandbox.url}/_sandbox/{control}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def inbound_world(live_server, settings, sandbox_destination, immediate_tasks):
    """make(platform, **fields) -> a destination on the sandbox whose inbound URL is this test
    server's (SYNC_PUBLIC_URL = the live server), and `push(destination, contact)` to put a
    contact on the platform first. Deliveries are processed at once (immediate tasks)."""
    from sync.engine import PushContext, contact_push

    settings.SYNC_PUBLIC_URL = live_server.url

    class World:
        url = live_server.url

        @staticmethod
        def make(platform, **fields):
            return sandbox_destination(platform, **fields)

        @staticmethod
        def push(destination, contact):
            state = contact_push(
                contact_id=contact.pk,
                destination=destination,
                context=PushContext(trigger="action"),
            )
            assert state.status == "synced", state.last_error
            return state

    return World()


def applied_once_then_redelivered(sandbox, platform, answers, contact, *, events_before=0):
    """After a notification the platform sent (`answers`, each answered 200): its events are
    stored and processed (none pending or failed) with one ledger entry at most per event;
    then the platform sends the same bytes again (`/_sandbox/redeliver`, a retry after a
    lost answer): each is answered 200 and counted as a replay, and nothing changes.
    `events_before`: events stored before this notification (set-up ones)."""
    from contacts.models import ConsentEntry, Contact
    from sync.models import ContactSyncState, InboundEvent, InboundRefusal

    assert answers and {a["status"] for a in answers} == {200}, answers
    events = list(InboundEvent.objects.order_by("pk").values_list("pk", "state"))
    assert events and not {state for _, state in events} & {"pending", "failed"}, events
    entries = ConsentEntry.objects.filter(contact=contact, source="platform").count()
    assert entries <= len(events)  # a deletion writes none; an event at most one
    assert len(events) - events_before == len(answers)  # one event per delivery here

    def snapshot():
        return (
            list(InboundEvent.objects.order_by("pk").values_list("pk", "state", "processed_at")),
            list(ConsentEntry.objects.order_by("pk").values_list("pk", "status", "applied")),
            Contact.objects.filter(pk=contact.pk).values().first(),
            list(ContactSyncState.objects.order_by("pk").values_list("remote_id", "status")),
        )

    before = snapshot()
    replays = sum(InboundRefusal.objects.filter(reason="replay").values_list("count", flat=True))
    again = sandbox_control(sandbox, "redeliver", platform=platform)
    assert [a["status"] for a in again] == [200] * len(answers)
    assert snapshot() == before
    counted = sum(InboundRefusal.objects.filter(reason="replay").values_list("count", flat=True))
    assert counted - replays == len(answers)


def run_queued_chunks(chunks, run) -> None:
    """Run each queued push task row in `chunks` here, as a worker would run it for `run`."""
    from sync import services

    for chunk in chunks:
        kwargs = chunk.args_kwargs["kwargs"]
        services.contacts_push_chunk(
            destination_id=kwargs["destination_id"],
            contact_ids=kwargs["contact_ids"],
            context=services.PushContext(trigger="action", run_id=run.pk),
        )
