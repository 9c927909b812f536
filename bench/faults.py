"""The fault drills of tests/sync/test_faults.py with more contacts (default 2,000).

    bin/with-postgres .venv/bin/python bench/faults.py [--contacts 2000] [--only NAME]

Each drill: a fresh database and sandbox store, a bulk push by two db_worker processes under
a sandbox fault, then the platform's store compared to our database. Prints per drill the
contacts sent, synced, failed, duplicates, stale records and requests by status.
"""

import argparse

from common import (
    SandboxProcess,
    connector_class,
    make_destination,
    platform_with,
    platforms_with,
    sandbox_credentials_env,
    setup_django,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    setup_django()
    env = sandbox_credentials_env()
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync.models import Destination
    from tests.sync import drills

    per_contact = platform_with(bulk=False)  # one contact per request
    bulk = platform_with(bulk=True)
    bulk_other = platforms_with(bulk=True)[-1]  # the other bulk platform, if there are two
    plan = [
        ("outage mid-push", per_contact, {}, drills.outage_mid_push),
        ("outage mid-push", bulk, {}, drills.outage_mid_push),
        ("429 storm", per_contact, {}, drills.storm_429),
        (
            "500/503 bursts, timeouts, refused",
            per_contact,
            {"timeout": 0.5},
            drills.bursts_timeouts_refusals,
        ),
        (
            "permanent 400 for 1%",
            per_contact,
            {},
            lambda d: drills.permanent_400(d, bad=args.contacts // 100),
        ),
        ("401 then fixed credentials", bulk_other, {}, drills.revoked_401),
        ("200 with HTML body", per_contact, {}, lambda d: drills.malformed_200(d, "html")),
        ("200 with empty body", per_contact, {}, lambda d: drills.malformed_200(d, "empty")),
        ("200 without id", per_contact, {}, lambda d: drills.malformed_200(d, "noid")),
        ("two people saving during a push", per_contact, {}, drills.saves_during_push),
    ]
    sandbox = SandboxProcess(rate_limits=False)
    try:
        for drill_name, platform, fields, scenario in plan:
            cls = connector_class(platform)
            name = f"{drill_name} ({cls.label}{', bulk' if cls.batch_size else ''})"
            if args.only and args.only.lower() not in name.lower():
                continue
            Contact.objects.all().delete()
            Destination.objects.all().delete()
            sandbox.control("reset", {})
            sandbox.control("rate-limit", {"platform": platform, "limit": None})
            destination = make_destination(platform, sandbox.url, rate_limit=1000, **fields)
            seed_demo_contacts(args.contacts)
            drill = drills.Drill(sandbox.url, destination, env)
            try:
                report = scenario(drill)
            finally:
                drill.stop_workers()
            extra = ""
            if "429" in name:
                refusals, early = drills.requests_before_retry_after(drill)
                extra = f"; 429 answers {refusals}, requests before Retry-After {early}"
            print(report.line(name) + extra, flush=True)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
