"""What the consent guard (sync.consent.records_guard) adds to a push chunk's read.

    bin/with-postgres .venv/bin/python bench/consent_guard.py [--contacts 10000] [--entries 4]
        [--chunk 1000]

Seeds contacts, gives each `--entries` ledger entries (a person's opt-in, then platform
opt-outs and opt-ins, alternating), then per chunk of `--chunk` contacts times the engine's
read of the records (`sync.selectors.contact_records`, the baseline, measured in the same run)
and the same read followed by the guard. Prints both per chunk (median of the chunks) and the
guard's share of the read. The guard makes one query per chunk whatever the entries.
"""

import argparse
import datetime
import statistics
import time

from common import setup_django


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=1000)
    args = parser.parse_args()
    setup_django()
    from django.utils import timezone

    from contacts.demo import seed_demo_contacts
    from contacts.models import ConsentEntry, Contact
    from sync import selectors
    from sync.consent import records_guard
    from sync.models import Destination

    seed_demo_contacts(args.contacts)
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    start = timezone.now() - datetime.timedelta(days=30)
    rows = []
    for contact_id in ids:
        for n in range(args.entries):
            opt_in = n % 2 == 0
            rows.append(
                ConsentEntry(
                    contact_id=contact_id,
                    channel="email",
                    status="subscribed" if opt_in else "unsubscribed",
                    previous_status="unsubscribed" if opt_in else "subscribed",
                    source="admin" if n == 0 else "platform",
                    source_label="" if n == 0 else "Loops",
                    occurred_at=start + datetime.timedelta(hours=n),
                )
            )
    ConsentEntry.objects.bulk_create(rows, batch_size=5000)
    destination = Destination(name="Yespo bench", platform="yespo")
    chunks = [ids[i : i + args.chunk] for i in range(0, len(ids), args.chunk)]
    plain, guarded = [], []
    for chunk in chunks:
        began = time.perf_counter()
        selectors.contact_records(chunk)
        plain.append(time.perf_counter() - began)
        began = time.perf_counter()
        records_guard(records=selectors.contact_records(chunk), destination=destination)
        guarded.append(time.perf_counter() - began)
    base, with_guard = statistics.median(plain), statistics.median(guarded)
    print(
        f"{args.contacts} contacts, {len(rows)} ledger entries, {len(chunks)} chunks of "
        f"{args.chunk}"
    )
    print(f"records read per chunk (baseline): {base * 1000:.1f} ms")
    print(f"records read + consent guard:      {with_guard * 1000:.1f} ms")
    print(
        f"guard: +{(with_guard - base) * 1000:.1f} ms a chunk, "
        f"{(with_guard - base) / args.chunk * 1e6:.0f} us a contact, "
        f"ratio {with_guard / base:.2f}"
    )


if __name__ == "__main__":
    main()
