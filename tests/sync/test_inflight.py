"""Several requests in flight per destination (sync/inflight.py), against the sandbox over
HTTP with latency: the sends overlap, the shared limit holds, one contact is never in flight
twice, a 401 stops the sends still waiting and pauses the destination, and the outcomes are
those of the one-at-a-time path."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.db.models import F
from django_tasks_db.models import DBTaskResult

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import engine, services
from sync.engine import PushContext, contacts_push, destination_connector
from sync.inflight import InFlight
from sync.models import ContactSyncState, SyncAttempt, SyncStatus
from tests.conftest import platforms_with
from tests.sync.processes import manage, process_env

PER_CONTACT = platforms_with(bulk=False)  # one request (or lookup and request) per contact
LIMIT = 20  # requests per second: the destination's limit and the sandbox's


def _world(sandbox, sandbox_destination, platform, *, latency_ms=100, limit=LIMIT):
    sandbox.sandbox.set_rate_limit(platform, limit)
    sandbox.sandbox.set_faults(platform, {"latency_ms": latency_ms})
    return sandbox_destination(platform, rate_limit=limit)


def _push(destination, contact_ids):
    return contacts_push(
        contact_ids=contact_ids, destination=destination, context=PushContext(trigger="action")
    )


def _change(pk, first_name):
    Contact.objects.filter(pk=pk).update(
        first_name=first_name, content_version=F("content_version") + 1
    )


def _outcomes(destination):
    return dict(
        ContactSyncState.objects.filter(destination=destination).values_list(
            "contact__external_id", "status"
        )
    )


@pytest.mark.django_db
@pytest.mark.parametrize("platform", PER_CONTACT)
def test_sends_overlap_and_the_limit_holds(sandbox, sandbox_destination, settings, platform):
    settings.SYNC_REQUESTS_IN_FLIGHT = 8
    destination = _world(sandbox, sandbox_destination, platform)
    seed_demo_contacts(40)
    ids = list(Contact.objects.values_list("pk", flat=True))
    states = _push(destination, ids)
    assert {s.status for s in states} == {SyncStatus.SYNCED}, {s.last_error for s in states}
    traffic = sandbox.sandbox.traffic_report(platform)[platform]
    assert traffic["max_in_flight"] > 1, traffic  # 100 ms each, 20 per second: they overlap
    assert traffic["max_per_second"] <= LIMIT, traffic
    assert traffic["rate_limited"] == 0, traffic
    # each contact was pushed once, so never twice at a time
    assert SyncAttempt.objects.filter(destination=destination).count() == len(ids)
    assert sorted(s.contact_id for s in states) == sorted(ids)  # in the chunk's order


@pytest.mark.django_db
def test_a_contact_is_never_submitted_twice_while_in_flight(sandbox, sandbox_destination):
    destination = _world(sandbox, sandbox_destination, PER_CONTACT[0], latency_ms=0)
    connector = destination_connector(destination=destination)
    release = threading.Event()
    with InFlight(connector, lanes=2) as flight:
        flight.submit(7, lambda lane: release.wait(5))
        with pytest.raises(ValueError, match="in flight already"):
            flight.submit(7, lambda lane: None)
        release.set()
        assert flight.wait(timeout=5) == [(7, True)]
        flight.submit(7, lambda lane: "again")  # done, so it may go again
        assert flight.wait(timeout=5) == [(7, "again")]


@pytest.mark.django_db
@pytest.mark.parametrize("platform", PER_CONTACT)
def test_a_401_stops_pending_sends_and_pauses(sandbox, sandbox_destination, settings, platform):
    settings.SYNC_REQUESTS_IN_FLIGHT = 4
    destination = _world(sandbox, sandbox_destination, platform)
    seed_demo_contacts(60)
    ids = list(Contact.objects.values_list("pk", flat=True))
    revoke = threading.Timer(0.8, sandbox.sandbox.set_faults, (platform, {"revoked": True}))
    revoke.start()
    try:
        _push(destination, ids)
    finally:
        revoke.cancel()
    destination.refresh_from_db()
    assert destination.is_paused, "the 401 paused the destination"
    statuses = _outcomes(destination)
    synced = sum(1 for s in statuses.values() if s == SyncStatus.SYNCED)
    waiting = sum(1 for s in statuses.values() if s == SyncStatus.WAITING)
    assert synced >= 1 and synced + waiting == len(ids), statuses
    refused = sandbox.sandbox.stats()["requests"][platform].get("401", 0)
    # only what was on the wire (at most one per lane) met the 401; the rest was never sent
    assert 1 <= refused <= settings.SYNC_REQUESTS_IN_FLIGHT, refused
    sent = SyncAttempt.objects.filter(destination=destination).count()
    assert sent == synced + refused, (sent, synced, refused)


@pytest.mark.django_db
@pytest.mark.parametrize("platform", PER_CONTACT)
def test_outcomes_are_those_of_one_at_a_time(sandbox, sandbox_destination, settings, platform):
    seed_demo_contacts(30)
    contacts = list(Contact.objects.order_by("pk"))
    ids = [c.pk for c in contacts]
    Contact.objects.filter(pk=ids[3]).update(email="not-an-email")  # refused before sending
    names = {c.pk: c.first_name for c in contacts}
    runs = []
    for lanes in (1, 8):
        settings.SYNC_REQUESTS_IN_FLIGHT = lanes
        sandbox.sandbox.reset()
        for pk in ids[:5]:  # as they were before the first run
            _change(pk, names[pk])
        destination = _world(sandbox, sandbox_destination, platform, latency_ms=20, limit=100)
        started = time.monotonic()
        _push(destination, ids)
        _push(destination, ids[:10])  # unchanged: no request
        for pk in ids[:5]:
            _change(pk, "Changed")
        _push(destination, ids[:10])  # five updated, five unchanged
        held = {
            c.external_id: sandbox.sandbox.contact_view(platform, c.external_id) for c in contacts
        }
        attempts = sorted(
            SyncAttempt.objects.filter(destination=destination).values_list(
                "external_id", "outcome", "error"
            )
        )
        runs.append((_outcomes(destination), attempts, held, time.monotonic() - started))
        destination.delete()
    (serial, *_), (parallel, *_) = runs
    assert serial == parallel
    assert runs[0][1] == runs[1][1], "the same attempt log"
    assert runs[0][2] == runs[1][2], "the platform holds the same"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_in_flight_hold_the_shared_limit(
    sandbox, sandbox_destination, sandbox_env, settings
):
    """Two `sync_worker` processes, each with requests in flight, on one destination: the
    platform never sees more than the limit in any second, and answers no 429."""
    settings.SYNC_CHUNK_SIZE = 20
    platform = PER_CONTACT[0]
    destination = _world(sandbox, sandbox_destination, platform)
    seed_demo_contacts(120)
    services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=destination, trigger="action", user_id=None
    )
    env = process_env(**sandbox_env, SYNC_REQUESTS_IN_FLIGHT=8, SYNC_CHUNK_SIZE=20)
    workers = [
        manage("sync_worker", "--no-startup-delay", "--no-reload", "--interval", "0.1", env=env)
        for _ in range(2)
    ]
    try:
        states = ContactSyncState.objects.filter(destination=destination)
        deadline = time.monotonic() + 120
        while states.exclude(status=SyncStatus.SYNCED).exists():
            assert time.monotonic() < deadline, Counter(states.values_list("status", flat=True))
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    traffic = sandbox.sandbox.traffic_report(platform)[platform]
    assert traffic["max_per_second"] <= LIMIT, traffic
    assert traffic["rate_limited"] == 0, traffic
    assert traffic["max_in_flight"] > 1, traffic
    assert SyncAttempt.objects.filter(destination=destination).count() == 120


@pytest.mark.django_db
def test_a_chunk_with_nothing_else_ready_asks_the_queue_at_most_every_recheck(
    sandbox, sandbox_destination, settings
):
    """Each contact's first request asks whether to give way; once the queue held nothing
    better, the queue is asked again only after GIVE_WAY_RECHECK seconds (the thread asking
    is the one handing out the lanes' slots)."""
    settings.SYNC_REQUESTS_IN_FLIGHT = 4
    platform = PER_CONTACT[0]
    destination = _world(sandbox, sandbox_destination, platform, latency_ms=0)
    seed_demo_contacts(20)
    ids = list(Contact.objects.values_list("pk", flat=True))
    context = PushContext(trigger="action", may_give_way=True)
    table = DBTaskResult._meta.db_table
    asked = []  # the worker's thread's reads of the task table (lanes touch no database)

    def count(execute, sql, params, many, call):
        asked.extend([sql] if table in sql else [])
        return execute(sql, params, many, call)

    with connection.execute_wrapper(count):
        started = time.monotonic()
        states = contacts_push(contact_ids=ids, destination=destination, context=context)
        seconds = time.monotonic() - started
    assert {s.status for s in states} == {SyncStatus.SYNCED} and not context.handed_back
    # each ask reads the task table twice (ready elsewhere, running interactive here)
    assert 0 < len(asked) <= 2 * (1 + seconds / engine.GIVE_WAY_RECHECK), (len(asked), seconds)
