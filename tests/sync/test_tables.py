"""Tables stay small and pages stay constant: the contact list's and the dashboard's query
counts do not grow with contacts or attempts, the dashboard's settled hours are counted once
and agree with the attempt log, and pruning in batches deletes exactly the old rows.
(Times are the benchmarks' business: bench/changelist.py, bench/dashboard.py, bench/prune.py.)"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.admin import EstimatedCountPaginator
from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import selectors, services
from sync.models import ContactSyncState, PushesPerHour, SyncAttempt
from tests.conftest import PLATFORMS

LIST = "/admin/contacts/contact/"
DASHBOARD = "/admin/sync/dashboard/"


@pytest.fixture
def destinations(sandbox_destination):
    return [sandbox_destination(platform) for platform in PLATFORMS]


def _grow(destinations, contacts, attempts):
    """`contacts` more contacts with a state on every destination (some failed), and
    `attempts` more attempt rows over the last two hours and the week before."""
    seed_demo_contacts(contacts, seed=len(destinations) + Contact.objects.count())
    have = set(ContactSyncState.objects.values_list("contact_id", "destination_id"))
    ContactSyncState.objects.bulk_create(
        ContactSyncState(
            contact_id=pk,
            destination=d,
            status="failed" if pk % 3 == 0 else "synced",
            last_error="HTTP 400: bad" if pk % 3 == 0 else "",
        )
        for pk in Contact.objects.values_list("pk", flat=True)
        for d in destinations
        if (pk, d.pk) not in have
    )
    now = timezone.now()
    SyncAttempt.objects.bulk_create(
        SyncAttempt(
            destination=destinations[i % len(destinations)],
            trigger="action",
            outcome="updated",
            started_at=now - timedelta(minutes=7 * i),
        )
        for i in range(attempts)
    )


def _queries(client, url):
    assert client.get(url).status_code == 200  # warm
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.django_db
@pytest.mark.parametrize("url", [LIST, f"{LIST}?sync_status=failed", f"{LIST}?q=%40", DASHBOARD])
def test_list_and_dashboard_queries_do_not_grow_with_contacts_or_attempts(
    admin_client_logged, destinations, url
):
    _grow(destinations, contacts=5, attempts=10)
    small = _queries(admin_client_logged, url)
    _grow(destinations, contacts=60, attempts=400)
    assert _queries(admin_client_logged, url) == small
    services.pushes_per_hour_store()  # the scheduler stored the week's settled hours
    assert _queries(admin_client_logged, url) == small


@pytest.mark.django_db
def test_settled_hours_are_counted_once_and_agree_with_the_attempt_log(destinations):
    now = timezone.now()
    outcomes = ["updated", "created", "failed", "unchanged", "skipped"]
    SyncAttempt.objects.bulk_create(
        SyncAttempt(
            destination=destinations[i % 2],
            trigger="action",
            outcome=outcomes[i % len(outcomes)],
            started_at=now - timedelta(minutes=37 * i),
        )
        for i in range(300)  # about a week back, the last hours live
    )
    ids = [d.pk for d in destinations]
    first = selectors.pushes_per_hour(destination_ids=ids, now=now)  # nothing stored: live
    assert services.pushes_per_hour_store(now=now) > 0  # as the scheduler's pass does
    assert services.pushes_per_hour_store(now=now) == 0  # stored once
    settled = selectors._utc_hour(now - selectors.SETTLED_AFTER)
    since = selectors._utc_hour(now) - timedelta(days=selectors.CHART_DAYS)
    for d in destinations:
        pushes = SyncAttempt.objects.filter(
            destination=d, started_at__gte=since, outcome__in=["updated", "created", "failed"]
        )
        assert sum(first[d.pk].values()) == pushes.count()
    # every settled hour of the week is stored, zeros too, for every destination
    assert PushesPerHour.objects.filter(hour__lt=settled).count() == len(ids) * int(
        (settled - since) / timedelta(hours=1)
    )
    with CaptureQueriesContext(connection) as captured:
        again = selectors.pushes_per_hour(destination_ids=ids, now=now)
    assert again == first
    assert len(captured) == 2  # the stored hours, and the live ones


@pytest.mark.django_db
def test_attempts_prune_in_batches_deletes_exactly_the_old_rows(destinations):
    now = timezone.now()
    ages = [0, 1, 30, 89, 91, 95, 120, 400, 91, 92, 93]
    SyncAttempt.objects.bulk_create(
        SyncAttempt(
            destination=destinations[i % len(destinations)],
            trigger="save",
            outcome="updated",
            started_at=now - timedelta(days=age, hours=1),
        )
        for i, age in enumerate(ages)
    )
    kept = set(
        SyncAttempt.objects.filter(started_at__gte=now - timedelta(days=90)).values_list(
            "pk", flat=True
        )
    )
    services.pushes_per_hour_store(now=now - timedelta(days=30))
    with CaptureQueriesContext(connection) as captured:
        assert services.attempts_prune(days=90, batch=2) == 7
    deletes = [q["sql"] for q in captured if q["sql"].upper().startswith("DELETE")]
    attempt_deletes = [sql for sql in deletes if "syncattempt" in sql]
    assert len(attempt_deletes) == 4  # 7 rows in batches of 2
    assert set(SyncAttempt.objects.values_list("pk", flat=True)) == kept
    # the settled hours of a month ago are older than the dashboard's week: gone too
    assert not PushesPerHour.objects.exists()


@pytest.mark.django_db
def test_tasks_prune_in_batches_deletes_exactly_the_old_finished_rows():
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    rows = [
        (TaskResultStatus.SUCCESSFUL, 10),
        (TaskResultStatus.FAILED, 8),
        (TaskResultStatus.SUCCESSFUL, 9),
        (TaskResultStatus.SUCCESSFUL, 1),
        (TaskResultStatus.READY, None),
        (TaskResultStatus.RUNNING, None),
    ]
    DBTaskResult.objects.bulk_create(
        DBTaskResult(
            status=status,
            finished_at=None if age is None else now - timedelta(days=age),
            args_kwargs={"args": [], "kwargs": {}},
            task_path="sync.tasks.push_contacts",
            backend_name="default",
            run_after=now,
        )
        for status, age in rows
    )
    with CaptureQueriesContext(connection) as captured:
        assert services.tasks_prune(days=7, batch=2) == 3
    assert sum(q["sql"].upper().startswith("DELETE") for q in captured) == 2
    assert sorted(DBTaskResult.objects.values_list("status", flat=True)) == sorted(
        [TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY, TaskResultStatus.RUNNING]
    )


@pytest.mark.django_db
def test_unfiltered_contact_list_pages_by_the_estimate_on_postgresql(monkeypatch):
    seed_demo_contacts(30)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE contacts_contact")
    monkeypatch.setattr(EstimatedCountPaginator, "ESTIMATE_FROM", 10)
    everyone = EstimatedCountPaginator(Contact.objects.order_by("pk"), 10)
    with CaptureQueriesContext(connection) as captured:
        assert everyone.count == 30  # ANALYZE on 30 rows is exact
    counted = any("COUNT(" in q["sql"].upper() for q in captured)
    assert counted == (connection.vendor != "postgresql")
    monkeypatch.setattr(EstimatedCountPaginator, "ESTIMATE_FROM", 10_000)
    assert EstimatedCountPaginator(Contact.objects.order_by("pk"), 10).count == 30  # small
    some = EstimatedCountPaginator(
        Contact.objects.filter(pk__lte=Contact.objects.order_by("pk")[4].pk), 10
    )
    assert some.count == 5  # below the threshold: counted exactly


@pytest.mark.django_db
def test_the_push_indexes_are_partial_on_postgresql_and_serve_their_queries(destinations):
    """Migration sync 0024: the due and the run indexes of the states hold only the states
    their queries look for, and each of those queries still reads by an index
    (sequential scans priced out: a query no index serves shows a Seq Scan)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite keeps the full indexes (0024)")
    from sync.models import SyncRun, SyncStatus

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
            [["sync_state_due", "sync_state_run_owed"]],
        )
        definitions = dict(cursor.fetchall())
    assert "WHERE" in definitions["sync_state_due"]
    assert "WHERE" in definitions["sync_state_run_owed"]
    run = SyncRun.objects.create(trigger="action")
    now = timezone.now()
    states = ContactSyncState.objects
    queries = [
        *(
            states.filter(
                status=status,
                next_attempt_at__lte=now,
                destination__enabled=True,
                destination__paused_at__isnull=True,
            )
            for status in (SyncStatus.PENDING, SyncStatus.AWAITING)  # services._claim_due
        ),
        states.filter(run=run, status__in=[SyncStatus.AWAITING, SyncStatus.WAITING]),
        states.filter(run=run, status=SyncStatus.PENDING, next_attempt_at__isnull=True),
        SyncAttempt.objects.filter(run=run, outcome="failed"),  # the run page's inline
        states.filter(  # services.retries_enqueue_due's stale claims
            destination_id__in=[d.pk for d in destinations],
            status=SyncStatus.IN_PROGRESS,
            claimed_at__lt=now,
        ),
        states.filter(status=SyncStatus.FAILED, destination__enabled=True),  # retry failed
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for queryset in queries:
            plan = queryset.explain()
            table = queryset.model._meta.db_table
            assert f"Seq Scan on {table}" not in plan, plan
