"""Benchmark: the cost of a sampled reconcile (read-back and drift), per platform.

    .venv/bin/python bench/reconcile.py [--contacts 300] [--sample 100]
    bin/with-postgres .venv/bin/python bench/reconcile.py

Per registered platform: seeds the demo contacts (contacts/demo.py), pushes them to a sandbox
destination (rate limits lifted for this set-up only), changes a few on the platform's side
through the sandbox's control (first names, emails; one contact removed there), then runs a
sampled reconcile under the vendor's rate limits (the sandbox's and the destination's
defaults, call classes included) and prints what it found, the requests it made and the time
it took, with both scaled to 1,000 contacts. The sample always includes the changed contacts,
so that what the pass finds can be checked against what was changed.
"""

import argparse
import random

import requests
from common import SandboxProcess, make_destination, sandbox_credentials_env, setup_django


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--sample", type=int, default=100)
    args = parser.parse_args()
    setup_django()
    sandbox_credentials_env()
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import connectors, services
    from sync.models import ContactSyncState

    sandbox = SandboxProcess(rate_limits=True)
    seed_demo_contacts(args.contacts)
    rng = random.Random(7)
    rows = []
    try:
        for cls in connectors.get_class_list():
            slug = cls.slug
            destination = make_destination(slug, sandbox.url, name=f"{cls.label} bench")
            # set-up: push everything fast (no limits), then restore the vendor's limits
            requests.post(
                f"{sandbox.url}/_sandbox/rate-limit", json={"platform": slug, "limit": None}
            )
            destination.rate_limit = 1_000_000
            destination.save()
            plan = services.push_plan(
                contacts=Contact.objects.all(),
                destination=destination,
                trigger="command",
                user_id=None,
            )
            services.plan_run_here(plan)
            awaiting = list(
                ContactSyncState.objects.filter(
                    destination=destination, status="awaiting"
                ).values_list("contact_id", flat=True)
            )
            if awaiting:
                services.contacts_confirm(
                    contact_ids=awaiting,
                    destination=destination,
                    context=services.PushContext(trigger="command"),
                )
            held = list(
                ContactSyncState.objects.filter(destination=destination)
                .exclude(payload_hash="")
                .values_list("contact_id", flat=True)
            )
            changed = rng.sample(held, min(6, len(held)))
            by_id = {c.pk: c for c in Contact.objects.filter(pk__in=changed)}
            expected = {"first_name": 0, "email": 0, "missing": 0}
            for n, contact_id in enumerate(changed):
                external_id = by_id[contact_id].external_id
                url = f"{sandbox.url}/_sandbox/contact/{slug}/{external_id}"
                if n == 0:
                    requests.delete(url, timeout=5)
                    expected["missing"] += 1
                elif n % 2:
                    requests.post(url, json={"first_name": "Changed there"}, timeout=5)
                    expected["first_name"] += 1
                else:
                    requests.post(url, json={"email": f"moved{n}@example.net"}, timeout=5)
                    expected["email"] += 1
            requests.post(
                f"{sandbox.url}/_sandbox/rate-limit",
                json={"platform": slug, "limit": cls.default_rate_limit},
            )
            destination.rate_limit = None
            destination.save()

            others = [i for i in held if i not in changed]
            sample = sorted(
                changed + rng.sample(others, max(0, min(len(others), args.sample - len(changed))))
            )
            report = services.destination_reconcile(destination=destination, contact_ids=sample)
            per_thousand = 1000 / max(report.checked + report.failed, 1)
            rows.append(
                (
                    cls.label,
                    len(held),
                    len(sample),
                    report,
                    report.requests * per_thousand,
                    report.seconds * per_thousand,
                    expected,
                )
            )
            for line in report.lines():
                print(line)
            print(f"  changed on the platform: {expected}")
    finally:
        sandbox.stop()
    print()
    print(
        f"{'platform':<12} {'held':>5} {'sample':>6} {'drifted':>7} {'missing':>7} "
        f"{'req':>5} {'s':>7} {'req/1000':>9} {'s/1000':>8}"
    )
    for label, held, sample, report, requests_k, seconds_k, _ in rows:
        print(
            f"{label:<12} {held:>5} {sample:>6} {report.drifted:>7} {report.missing:>7} "
            f"{report.requests:>5} {report.seconds:>7.2f} {requests_k:>9.0f} {seconds_k:>8.1f}"
        )


if __name__ == "__main__":
    main()
