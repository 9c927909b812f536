"""The contact list with sync badges for four destinations, and the dashboard, at scale.

    bin/with-postgres .venv/bin/python bench/changelist.py [--contacts 1000000]

Renders the admin's contact list (a page of 100) at 1,000 and at N contacts, each with a sync
state on four destinations: with the badges (the registered admin), without them (the plain
contact admin), filtered by a destination's failed contacts, and the sync dashboard; prints
the query counts at both sizes and the median render times. Targets: the same number of
queries at N as at 1,000; at 1,000,000 contacts each page at most 500 ms; badges at most
1.3 x the plain list. PostgreSQL only (the rows are generated in SQL, bench/seed_sql.py).
"""

import argparse
import time

from common import median, setup_django
from seed_sql import seed_contacts, vacuum


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from contacts.models import Contact

    destinations = _destinations()
    client = admin_client()
    pages = admin_pages(destinations[0])

    def render(admin_class, url):
        return page_figures(client, admin_class, url, repeat=args.repeat)

    small = 1_000
    with connection.cursor() as cursor:
        seed_contacts(cursor, small)
    vacuum(connection)
    before = {name: render(*page) for name, page in pages.items()}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        seed_contacts(cursor, args.contacts - small)
    vacuum(connection)
    print(
        f"seeded {Contact.objects.count():,} contacts x 4 sync states "
        f"in {time.perf_counter() - started:.0f} s"
    )
    after = {name: render(*page) for name, page in pages.items()}
    for name in pages:
        print(
            f"{name}: {before[name][0]} queries at {small:,} contacts, {after[name][0]} at "
            f"{args.contacts:,}; median {before[name][1] * 1000:.0f} ms at {small:,}, "
            f"{after[name][1] * 1000:.0f} ms at {args.contacts:,}"
        )
    ratio = after["list with badges"][1] / after["plain list"][1]
    print(f"badges: {ratio:.2f} x the plain list at {args.contacts:,}")
    walked, scanned = filter_values_figures(repeat=args.repeat)
    print(
        f"country and language filters' values at {args.contacts:,}: median "
        f"{walked * 1000:.1f} ms walking the indexes, {scanned * 1000:.1f} ms by SELECT "
        f"DISTINCT (Django's own, the baseline): {scanned / walked:.0f} x"
    )


def filter_values_figures(*, repeat: int) -> tuple[float, float]:
    """Median seconds to read both filters' values as the list now does, and as Django's
    AllValuesFieldListFilter does (a DISTINCT over the table)."""
    from contacts.models import Contact
    from contacts.selectors import distinct_values

    def walk():
        return [distinct_values(Contact, field) for field in ("country", "language")]

    def scan():
        return [
            list(Contact.objects.order_by(field).values_list(field, flat=True).distinct())
            for field in ("country", "language")
        ]

    assert walk() == scan()

    def timed(read):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            read()
            times.append(time.perf_counter() - started)
        return median(times)

    return timed(walk), timed(scan)


def admin_client():
    """A test client logged in as a new superuser (call after setup_django with
    ALLOWED_HOSTS="testserver")."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(
        User.objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
    )
    return client


def admin_pages(destination) -> dict:
    """The pages measured, by name: (the contact admin class to register, URL)."""
    from contacts.admin import ContactAdmin
    from sync.admin import SyncedContactAdmin

    failed = f"/admin/contacts/contact/?sync_dest={destination.pk}&sync_status=failed"
    return {
        "list with badges": (SyncedContactAdmin, "/admin/contacts/contact/"),
        "plain list": (ContactAdmin, "/admin/contacts/contact/"),
        "failed on one destination": (SyncedContactAdmin, failed),
        "dashboard": (SyncedContactAdmin, "/admin/sync/dashboard/"),
    }


def page_figures(client, admin_class, url, *, repeat: int) -> tuple[int, float]:
    """The queries of one render of `url` (after a warming one) with `admin_class` as the
    contact admin, and the median seconds of `repeat` renders."""
    from django.contrib import admin
    from django.db import connection

    from contacts.models import Contact

    admin.site.unregister(Contact)
    admin.site.register(Contact, admin_class)
    client.get(url)  # warm
    executed = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return len(executed), median(times)


def _destinations():
    from sync import connectors
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    return [
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
        for slug in connectors.CONNECTORS
    ]


if __name__ == "__main__":
    main()
