"""The admin pages people open most, timed: the contact list (a page of 100 rows), a contact's
page, and the sync dashboard.

    .venv/bin/python bench/pages.py [--contacts 2000] [--repeat 15]
    bin/with-postgres .venv/bin/python bench/pages.py

Seeds a fresh database (a temporary SQLite file, or DATABASE_URL) with demo contacts and
their inline rows, four destinations (one per platform, pointing nowhere: nothing is pushed),
a sync state per contact and destination (one contact in ten failed on one destination, with
the platform's error) and two attempt-log rows per state. Then renders each page with Django's
test client as a superuser, once to warm up and `--repeat` times timed, and prints the median,
the database queries of one render and its Python function calls (cProfile: a cost the
machine's load does not move). Written to run unchanged on older commits (only the models and
the demo seeder it uses), so a page's figure before and after a change can be taken the same
way: run it in a worktree of each commit, one after the other.
"""

import argparse
import time

from common import median, setup_django


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.contrib.auth.models import User
    from django.test import Client

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact

    started = time.perf_counter()
    seed_demo_contacts(args.contacts)
    _sync_history()
    print(
        f"seeded {Contact.objects.count():,} contacts x 4 destinations "
        f"in {time.perf_counter() - started:.0f} s"
    )
    user = User.objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
    client = Client()
    client.force_login(user)
    contact = Contact.objects.order_by("pk").first()
    pages = {
        "contact list, 100 rows": "/admin/contacts/contact/",
        "contact page": f"/admin/contacts/contact/{contact.pk}/change/",
        "dashboard": "/admin/sync/dashboard/",
    }
    for name, url in pages.items():
        queries, rows, calls, ms = _measure(client, url, args.repeat)
        shown = f", {rows} rows" if rows is not None else ""
        print(f"{name}: median {ms:.0f} ms, {queries} queries, {calls:,} calls{shown}  ({url})")


def _measure(client, url, repeat):
    """(queries of one render, list rows shown or None, Python function calls of one
    render, median ms of `repeat` renders)."""
    from django.db import connection

    response = client.get(url)  # warm: templates compiled, caches filled
    assert response.status_code == 200, (url, response.status_code)
    executed = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url)
    html = response.content.decode()
    rows = (
        html.count('<input type="checkbox" name="_selected_action"')
        if "result_list" in html
        else None
    )
    calls = _function_calls(client, url)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200
    return len(executed), rows, calls, median(times) * 1000


def _function_calls(client, url) -> int:
    """Python function calls of one render: the page's cost in a figure the machine's load
    does not move (the timings on a shared machine do, by tens of percent)."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    client.get(url)
    profile.disable()
    return pstats.Stats(profile).total_calls


def _sync_history():
    """Four destinations, a state per contact on each, two attempts per state."""
    from datetime import timedelta

    from django.utils import timezone

    from contacts.models import Contact
    from sync import connectors
    from sync.models import ContactSyncState, Destination, SyncAttempt
    from sync.sandbox import sandbox_destination_fields

    destinations = [
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
        for slug in connectors.CONNECTORS
    ]
    now = timezone.now()
    contacts = list(Contact.objects.values_list("pk", "external_id"))
    for destination in destinations:
        states, attempts = [], []
        for n, (pk, external_id) in enumerate(contacts):
            failed = destination == destinations[0] and n % 10 == 0
            states.append(
                ContactSyncState(
                    contact_id=pk,
                    destination=destination,
                    status="failed" if failed else "synced",
                    remote_id="" if failed else f"r-{destination.pk}-{pk}",
                    last_error='HTTP 400: "email" is not a valid email address' if failed else "",
                    last_attempt_at=now,
                )
            )
            for hours in (30, 2):
                attempts.append(
                    SyncAttempt(
                        destination=destination,
                        contact_id=pk,
                        external_id=external_id,
                        trigger="action",
                        started_at=now - timedelta(hours=hours),
                        outcome="failed" if failed and hours == 2 else "updated",
                        http_status=400 if failed and hours == 2 else 200,
                    )
                )
        ContactSyncState.objects.bulk_create(states, batch_size=2000)
        SyncAttempt.objects.bulk_create(attempts, batch_size=2000)


if __name__ == "__main__":
    main()
