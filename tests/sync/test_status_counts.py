"""The dashboard's counts of sync states per (destination, status), kept by database triggers
(migration 0021), equal a real GROUP BY of the states after every kind of write: pushes
through the sandbox, an inbound unsubscribe, admin actions, raw SQL, deletes of contacts and
of a destination, an import; folding the deltas into the totals keeps them equal; two
writers at once on PostgreSQL leave them exact."""

import random
import threading

import pytest
from django.db import close_old_connections, connection, transaction
from django.db.models import Case, Count, F, TextField, Value, When
from django.urls import reverse

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import selectors, services
from sync.models import (
    ContactSyncState,
    Destination,
    SyncStatus,
    SyncStatusCount,
    SyncStatusCountDelta,
)
from tests.contacts.test_import_export import _csv, _import
from tests.sync.conftest import sandbox_control

CHANGELIST = reverse("admin:contacts_contact_changelist")


def group_by() -> dict[tuple[int, str, str], int]:
    """The states counted the slow way, per destination, status and (failed ones) error:
    what the store must equal."""
    error = Case(
        When(status=SyncStatus.FAILED, then=F("last_error")),
        default=Value(""),
        output_field=TextField(),
    )
    rows = (
        ContactSyncState.objects.annotate(error=error)
        .values_list("destination_id", "status", "error")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(destination_id, status, error): n for destination_id, status, error, n in rows}


def stored() -> dict[tuple[int, str, str], int]:
    """The store: its totals plus the deltas not yet folded in, zeros left out."""
    store: dict[tuple[int, str, str], int] = {}
    for model in (SyncStatusCount, SyncStatusCountDelta):
        for destination_id, status, error, n in model.objects.values_list(
            "destination_id", "status", "error", "n"
        ):
            key = (destination_id, status, error)
            store[key] = store.get(key, 0) + n
    return {key: n for key, n in store.items() if n}


def assert_read_as_the_dashboard_does(expected, step) -> None:
    counts, errors = selectors.state_counts()
    by_status: dict[int, dict[str, int]] = {}
    failed: dict[int, list] = {}
    for (destination_id, status, error), n in expected.items():
        by_status.setdefault(destination_id, {}).setdefault(status, 0)
        by_status[destination_id][status] += n
        if status == SyncStatus.FAILED:
            failed.setdefault(destination_id, []).append({"message": error, "count": n})
    assert counts == by_status, step
    for destination_id, top in failed.items():
        top.sort(key=lambda e: (-e["count"], e["message"]))
        assert errors[destination_id] == top[: selectors.TOP_ERRORS], step


def assert_store_exact(step: str) -> None:
    expected = group_by()
    assert stored() == expected, step
    assert_read_as_the_dashboard_does(expected, step)
    services.status_counts_compact()  # as the scheduler's pass does
    assert not SyncStatusCountDelta.objects.exists(), step
    assert not SyncStatusCount.objects.filter(n=0).exists(), step
    assert stored() == expected, step
    assert_read_as_the_dashboard_does(expected, step)


@pytest.mark.django_db(transaction=True)  # the inbound URL is served by the live server
def test_the_store_equals_a_group_by_after_every_kind_of_write(
    inbound_world, sandbox, admin_client_logged
):
    loops = inbound_world.make("loops")
    yespo = inbound_world.make("yespo")  # a bulk platform
    ivvy = inbound_world.make("ivvy")
    seed_demo_contacts(12)
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))

    # pushed through the sandbox by the admin action (tasks run at once), one platform down
    sandbox.sandbox.set_faults("ivvy", {"outage": "503"})
    response = admin_client_logged.post(
        CHANGELIST, {"action": "push_selected", "_selected_action": ids, "destination": ""}
    )
    assert response.status_code == 302
    sandbox.sandbox.set_faults("ivvy", {"outage": ""})
    assert ContactSyncState.objects.filter(destination=yespo, status=SyncStatus.SYNCED).exists()
    assert_store_exact("pushed")

    # an unsubscribe sent by Loops to our inbound URL (and on to the other platforms)
    contact = Contact.objects.get(pk=ids[0])
    url = selectors.destination_inbound_url(loops)
    sandbox_control(sandbox, "webhook", platform="loops", url=url)
    answers = sandbox_control(
        sandbox, "notify", platform="loops", action="unsubscribe", external_id=contact.external_id
    )
    assert [a["status"] for a in answers] == [200]
    contact.refresh_from_db()
    assert contact.email_status == "unsubscribed"
    assert_store_exact("inbound unsubscribe")

    # raw SQL, as the engine's set-based statements write: some states failed
    chosen = ids[:6]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sync_contactsyncstate SET status = 'failed',"
            " last_error = CASE WHEN contact_id %% 2 = 0 THEN 'HTTP 500: boom' ELSE %s END"
            f" WHERE destination_id = %s AND contact_id IN ({', '.join(['%s'] * len(chosen))})",
            ["HTTP 400: " + "long " * 2000, ivvy.pk, *chosen],  # longer than a B-tree entry
        )
    assert ContactSyncState.objects.filter(status=SyncStatus.FAILED).count() >= 6
    assert_store_exact("raw SQL")

    # the admin's "retry failed" action pushes them again
    response = admin_client_logged.post(
        CHANGELIST, {"action": "retry_failed", "_selected_action": ids}
    )
    assert response.status_code == 302
    assert not ContactSyncState.objects.filter(destination=ivvy, status=SyncStatus.FAILED).exists()
    assert_store_exact("retried by admin action")

    # queryset updates (no save()), bulk inserts, one state saved
    ContactSyncState.objects.filter(destination=yespo, contact_id__in=ids[:4]).update(
        status=SyncStatus.PENDING
    )
    state = ContactSyncState.objects.filter(destination=loops).first()
    state.status = SyncStatus.SKIPPED
    state.save()
    assert_store_exact("ORM writes")

    # contacts deleted: their states go by cascade
    Contact.objects.filter(pk__in=ids[8:]).delete()
    assert_store_exact("contacts deleted")

    # an import: new contacts, their pushes on save
    rows = [[f"IMP-{i}", f"imported{i}@example.com"] for i in range(5)]
    _import(admin_client_logged, _csv(["external_id", "email"], *rows))
    assert ContactSyncState.objects.filter(contact__external_id__startswith="IMP-").exists()
    assert_store_exact("imported")

    # a destination deleted: its states go by cascade, and its counts with them
    Destination.objects.get(pk=yespo.pk).delete()
    assert_store_exact("destination deleted")
    assert not SyncStatusCount.objects.filter(destination_id=yespo.pk).exists()
    assert group_by()  # the other two destinations' states are left, and counted


@pytest.mark.django_db
def test_the_dashboard_shows_the_stored_counts(admin_client_logged, sandbox_destination):
    destination = sandbox_destination("yespo")
    seed_demo_contacts(5)
    contacts = list(Contact.objects.order_by("pk"))
    ContactSyncState.objects.bulk_create(
        ContactSyncState(
            contact=c,
            destination=destination,
            status=status,
            last_error="HTTP 400: bad" if status in ("failed", "pending") else "",
        )
        for c, status in zip(
            contacts, ["synced", "synced", "failed", "pending", "in_progress"], strict=True
        )
    )
    row = selectors.dashboard()["rows"][0]
    assert (row["synced"], row["failed"], row["pending"], row["never"]) == (2, 1, 2, 0)
    assert row["errors"] == [{"message": "HTTP 400: bad", "count": 1}]  # the failed one only
    services.status_counts_compact()
    assert selectors.dashboard()["rows"][0]["synced"] == 2
    assert admin_client_logged.get("/admin/sync/dashboard/").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # each thread commits on its own connection
def test_two_writers_and_a_compaction_at_once_leave_the_store_exact(sandbox_destination):
    destinations = [sandbox_destination("yespo"), sandbox_destination("loops")]
    seed_demo_contacts(200)
    ids = list(Contact.objects.values_list("pk", flat=True))
    ContactSyncState.objects.bulk_create(
        ContactSyncState(contact_id=pk, destination=d) for pk in ids for d in destinations
    )
    statuses = [SyncStatus.PENDING, SyncStatus.SYNCED, SyncStatus.FAILED, SyncStatus.WAITING]
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(half):
        """In transactions of several statements, as a worker's claim and outcome are: status
        changes on both destinations, states deleted and made again, over this writer's half
        of the contacts. A counter row updated in place would be written by both writers
        (hot rows, deadlocks between the two orders); the deltas are only appended."""
        rng = random.Random(half)
        mine = ids[half::2]
        try:
            for _ in range(40):
                with transaction.atomic():
                    for status in rng.sample(statuses, 3):
                        ContactSyncState.objects.filter(contact_id__in=rng.sample(mine, 30)).update(
                            status=status
                        )
                    gone = rng.sample(mine, 5)
                    ContactSyncState.objects.filter(contact_id__in=gone).delete()
                    ContactSyncState.objects.bulk_create(
                        ContactSyncState(contact_id=pk, destination=d, status=status)
                        for pk in gone
                        for d in destinations
                    )
        except BaseException as err:  # reported below: a deadlock would land here
            errors.append(err)
        finally:
            close_old_connections()

    def compactor():
        try:
            while not stop.is_set():
                services.status_counts_compact()
        except BaseException as err:
            errors.append(err)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=writer, args=(half,)) for half in (0, 1)]
    folding = threading.Thread(target=compactor)
    folding.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    folding.join()
    assert not errors, errors
    assert SyncStatusCountDelta.objects.exists() or SyncStatusCount.objects.exists()
    assert stored() == group_by()
    services.status_counts_compact()
    assert stored() == group_by()
    assert not SyncStatusCountDelta.objects.exists()
