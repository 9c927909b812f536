"""Benchmark 4: the contact list with sync badges for four destinations.

    bin/with-postgres .venv/bin/python bench/changelist.py [--contacts 100000]

Renders the admin's contact list (a page of 100) at 100 and at N contacts, each with a sync
state on four destinations, with the badges (the registered admin) and without them (the
plain contact admin), and prints the query counts and the median render times.
Targets: the same number of queries at N as at 100; badges at most 1.3 x the plain list.
"""

import argparse
import random
import time

from common import median, setup_django


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from contacts.admin import ContactAdmin
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync.admin import SyncedContactAdmin

    destinations = _destinations()
    user = User.objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
    client = Client()
    client.force_login(user)

    def render(admin_class):
        admin.site.unregister(Contact)
        admin.site.register(Contact, admin_class)
        client.get("/admin/contacts/contact/")  # warm
        executed = []

        def count(execute, sql, params, many, context):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            client.get("/admin/contacts/contact/")
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get("/admin/contacts/contact/")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        return len(executed), median(times)

    seed_demo_contacts(100)
    _states(destinations)
    small_queries, _ = render(SyncedContactAdmin)
    seed_demo_contacts(args.contacts - 100)
    _states(destinations)
    big_queries, with_badges = render(SyncedContactAdmin)
    plain_queries, plain = render(ContactAdmin)
    print(f"contact list, page of 100, {Contact.objects.count():,} contacts x 4 destinations")
    print(
        f"queries with badges: {small_queries} at 100 contacts, {big_queries} at "
        f"{args.contacts:,} (plain list: {plain_queries})"
    )
    print(
        f"median render: {with_badges * 1000:.0f} ms with badges, {plain * 1000:.0f} ms "
        f"without = {with_badges / plain:.2f} x"
    )


def _destinations():
    from sync import connectors
    from sync.models import Destination
    from sync.sandbox import sandbox_destination_fields

    return [
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
        for slug in connectors.CONNECTORS
    ]


def _states(destinations):
    """A sync state on every destination for every contact that has none, in bulk."""
    from contacts.models import Contact
    from sync.models import ContactSyncState

    rng = random.Random(1)
    statuses = ["synced"] * 8 + ["failed", "pending"]
    for destination in destinations:
        missing = Contact.objects.exclude(sync_states__destination=destination).values_list(
            "pk", flat=True
        )
        ContactSyncState.objects.bulk_create(
            [
                ContactSyncState(
                    contact_id=pk,
                    destination=destination,
                    status=rng.choice(statuses),
                    remote_id=str(100000 + pk),
                    last_error="",
                )
                for pk in missing.iterator()
            ],
            batch_size=5000,
        )


if __name__ == "__main__":
    main()
