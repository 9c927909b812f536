"""The dashboard's store of sync-state counts (SyncStatusCount, kept by triggers: migration
0021) at scale, and what its triggers cost the engine's set-based statements.

    bin/with-postgres .venv/bin/python bench/status_counts.py [--contacts 1000000]

Seeds N contacts with a state on four destinations, then prints, each against its baseline
in the same run:
- the dashboard's counts and top errors read from the store (totals plus deltas) against
  the two GROUP BYs of the states it replaces;
- the statements the engine's bulk path runs on states, 500 rows each as a chunk's are: an
  UPDATE changing their status (a claim, an outcome), an UPDATE leaving it (a lease renewed),
  an INSERT … SELECT of new states and a DELETE of them; medians with the triggers on and
  with them disabled (ALTER TABLE … DISABLE TRIGGER);
- the compaction of the deltas those statements appended (the scheduler's pass).
PostgreSQL only (the rows are generated in SQL, bench/seed_sql.py).
"""

import argparse
import importlib
import time

from common import median, setup_django
from seed_sql import seed_contacts, vacuum

CHUNK = 500
STATES = "sync_contactsyncstate"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    from sync import connectors, selectors, services
    from sync.models import Destination, SyncStatusCountDelta
    from sync.sandbox import sandbox_destination_fields

    for slug in connectors.CONNECTORS:
        Destination.objects.create(**sandbox_destination_fields(slug, "http://127.0.0.1:1"))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        seed_contacts(cursor, args.contacts)
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    folded = services.status_counts_compact()
    print(
        f"seeded {args.contacts:,} contacts x 4 states in {seeded:.0f} s (triggers on); "
        f"folding its {folded} delta rows took {(time.perf_counter() - started) * 1000:.0f} ms"
    )
    vacuum(connection)

    def timed(read):
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            read()
            times.append(time.perf_counter() - started)
        return median(times) * 1000

    assert selectors.state_counts() == _group_by(), "the store differs from the states"
    slow = timed(_group_by)
    fast = timed(selectors.state_counts)
    print(
        f"counts per destination and status, and the top errors: store {fast:.1f} ms; "
        f"counting the {args.contacts * 4:,} states {slow:.0f} ms (the dashboard's two "
        "queries before)"
    )

    extra = Destination.objects.create(
        **{**sandbox_destination_fields("loops", "http://127.0.0.1:1"), "name": "bench extra"}
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id) FROM {STATES}")
        low, high = cursor.fetchone()
    step = max(CHUNK, (high - low) // (2 * args.repeat))

    def statements(cursor, i):
        """Turn i's statements on states, as a chunk's: 500 rows each, a different range each
        turn, the status changed each turn."""
        first = low + (i * step) % (high - low - CHUNK)
        ids = list(range(first, first + CHUNK))
        status = ("in_progress", "synced")[i % 2]
        took = {}

        def run(name, sql, params):
            started = time.perf_counter()
            cursor.execute(sql, params)
            took[name] = time.perf_counter() - started

        run(
            "UPDATE changing the status",
            f"UPDATE {STATES} SET status = %s, claimed_at = now() WHERE id = ANY(%s)",
            [status, ids],
        )
        run(
            "UPDATE leaving the status",
            f"UPDATE {STATES} SET claimed_at = now() WHERE id = ANY(%s)",
            [ids],
        )
        run(
            "INSERT … SELECT of new states",
            f"INSERT INTO {STATES} (contact_id, destination_id, remote_id, status, skip_reason,"
            " last_error, attempts, payload_hash, accepted_email_status, confirmation_ref,"
            " claimed_by, updated_at)"
            " SELECT c.id, %s, '', 'pending', '', '', 0, '', '', '', '', now()"
            " FROM contacts_contact c WHERE c.id >= %s ORDER BY c.id LIMIT %s",
            [extra.pk, 1 + (i * CHUNK) % max(1, args.contacts - CHUNK), CHUNK],
        )
        run("DELETE of those states", f"DELETE FROM {STATES} WHERE destination_id = %s", [extra.pk])
        return took

    on: dict[str, list] = {}
    off: dict[str, list] = {}
    with connection.cursor() as cursor:
        for i in range(args.repeat):
            # turns alternate, so neither side has the warmer cache
            for turn, triggers in enumerate((True, False) if i % 2 else (False, True)):
                cursor.execute(
                    f"ALTER TABLE {STATES} {'ENABLE' if triggers else 'DISABLE'} TRIGGER USER"
                )
                for name, took in statements(cursor, 2 * i + turn).items():
                    (on if triggers else off).setdefault(name, []).append(took)
        cursor.execute(f"ALTER TABLE {STATES} ENABLE TRIGGER USER")
    on = {name: median(times) * 1000 for name, times in on.items()}
    off = {name: median(times) * 1000 for name, times in off.items()}
    for name in on:
        print(
            f"{name} ({CHUNK} states): {on[name]:.2f} ms with the triggers, "
            f"{off[name]:.2f} ms without ({on[name] / off[name]:.2f} x)"
        )
    deltas = SyncStatusCountDelta.objects.count()
    started = time.perf_counter()
    services.status_counts_compact()
    print(
        f"compaction of the {deltas} delta rows {args.repeat} chunks appended: "
        f"{(time.perf_counter() - started) * 1000:.1f} ms"
    )
    with connection.cursor() as cursor:
        # the turns without triggers went uncounted: count the states again from scratch
        cursor.execute("DELETE FROM sync_syncstatuscount")
        cursor.execute(importlib.import_module("sync.migrations.0021_status_counts").FILL)
    assert selectors.state_counts() == _group_by(), "the store differs from the states"
    print("the store equals a GROUP BY of the states")


def _group_by() -> tuple[dict, dict]:
    """The counts and top errors the slow way, as the dashboard read them before the store:
    a GROUP BY of every state, and one of the failed ones by error."""
    from django.db.models import Count

    from sync.models import ContactSyncState, SyncStatus

    counts, errors = {}, {}
    for row in ContactSyncState.objects.values("destination_id", "status").annotate(n=Count("id")):
        counts.setdefault(row["destination_id"], {})[row["status"]] = row["n"]
    for row in (
        ContactSyncState.objects.filter(status=SyncStatus.FAILED)
        .values("destination_id", "last_error")
        .annotate(n=Count("id"))
        .order_by("-n", "last_error")
    ):
        top = errors.setdefault(row["destination_id"], [])
        if len(top) < 5:
            top.append({"message": row["last_error"], "count": row["n"]})
    return counts, errors


if __name__ == "__main__":
    main()
