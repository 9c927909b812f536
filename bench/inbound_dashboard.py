"""The dashboard's inbound part at scale: inbound events on four destinations received over
30 days (a tenth opt-outs and deletes, a twentieth the unsubscribes Loops fans out with a hard
bounce, the rest recorded only), at 10,000 and at --events in the same run.

    bin/with-postgres .venv/bin/python bench/inbound_dashboard.py [--events 2000000]

Prints, at both sizes: the whole dashboard's query count and median render time, the inbound
selector's own time, the render before the scheduler stored the week's settled hours
(InboundPerHour) and the time it took to, the destination page's (events by state, last event
per type) and the scheduler's inbound alert checks (run every pass). Target: the dashboard
within 300 ms, with the same number of queries at both sizes. PostgreSQL only (rows generated
in SQL, bench/seed_sql.py).
"""

import argparse
import time

from common import median, setup_django
from seed_sql import seed_inbound_events, vacuum


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from sync import alerts, connectors, selectors, services
    from sync.models import Destination, InboundPerHour
    from sync.sandbox import sandbox_destination_fields

    for slug in connectors.CONNECTORS:
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
    destinations = list(Destination.objects.order_by("name"))
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "bench-123456"))

    def timed(call):
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    def page(url):
        assert client.get(url).status_code == 200

    def measure():
        dashboard = "/admin/sync/dashboard/"
        executed = []

        def count(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                executed.append((time.perf_counter() - started, sql))

        busiest = destinations[0].pk
        destination_page = f"/admin/sync/destination/{busiest}/change/"
        page(dashboard)  # warm: templates compiled, connections open
        InboundPerHour.objects.all().delete()
        first = timed(lambda: page(dashboard))
        store = timed(services.inbound_per_hour_store)  # the scheduler's pass
        with connection.execute_wrapper(count):
            page(dashboard)
        queries = len(executed)
        with connection.execute_wrapper(count):
            page(destination_page)
        for took, sql in sorted(executed, reverse=True)[:4]:  # where the time goes
            print(f"  {took * 1000:6.0f} ms  {sql[:160]}")
        runs = range(args.repeat)
        return {
            "queries": queries,
            "first": first,
            "store": store,
            "dashboard": median([timed(lambda: page(dashboard)) for _ in runs]),
            "selector": median(
                [
                    timed(
                        lambda: selectors.inbound_dashboard(
                            destinations=destinations, now=timezone.now()
                        )
                    )
                    for _ in runs
                ]
            ),
            "destination": median([timed(lambda: page(destination_page)) for _ in runs]),
            "alerts": median([timed(alerts.inbound_alerts_check) for _ in runs]),
        }

    small = 10_000
    with connection.cursor() as cursor:
        seed_inbound_events(cursor, small)
    vacuum(connection)
    results = [(small, measure())]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        seed_inbound_events(cursor, args.events - small)
    vacuum(connection)
    print(f"seeded {args.events:,} inbound events in {time.perf_counter() - started:.0f} s")
    results.append((args.events, measure()))
    for events, r in results:
        print(
            f"{events:,} inbound events: dashboard {r['queries']} queries, median "
            f"{r['dashboard'] * 1000:.0f} ms (its inbound part {r['selector'] * 1000:.0f} ms; "
            f"before the scheduler stored the settled hours {r['first'] * 1000:.0f} ms, "
            f"storing them {r['store'] * 1000:.0f} ms); "
            f"destination page {r['destination'] * 1000:.0f} ms; "
            f"inbound alert checks {r['alerts'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
