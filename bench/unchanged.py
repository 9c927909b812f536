"""Benchmark 3: re-push of N unchanged contacts (default 100,000).

    bin/with-postgres .venv/bin/python bench/unchanged.py [--contacts 100000]

Pushes every contact once to a platform with a bulk endpoint (its batch path;
bench/common.py `platform_with`), then asks for the same push again:
prints the contacts checked per second on the second run (target >= 20,000/s) and the
requests it made (target 0). The baseline in the same run is the rate of counting the
selection (a bare `SELECT count(*)`), to show how close to the database's floor it is.
"""

import argparse
import time

from common import (
    SandboxProcess,
    connector_class,
    make_destination,
    platform_with,
    sandbox_credentials_env,
    setup_django,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    setup_django()
    sandbox_credentials_env()
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import services

    platform = platform_with(bulk=True)
    sandbox = SandboxProcess(rate_limits=False)
    try:
        destination = make_destination(platform, sandbox.url, rate_limit=1_000_000)
        seed_demo_contacts(args.contacts)
        first = services.push_plan(
            contacts=Contact.objects.all(), destination=destination, trigger="command", user_id=None
        )
        context = services.PushContext(trigger="command", run_id=first.run.pk)
        started = time.perf_counter()
        for target, chunk in first.chunks():
            services.contacts_push(contact_ids=chunk, destination=target, context=context)
        first_seconds = time.perf_counter() - started
        before = sum(sandbox.requests_by_status(platform).values())

        started = time.perf_counter()
        Contact.objects.count()
        count_seconds = time.perf_counter() - started
        started = time.perf_counter()
        plan = services.push_plan(
            contacts=Contact.objects.all(), destination=destination, trigger="command", user_id=None
        )
        queued = sum(len(chunk) for _, chunk in plan.chunks())
        seconds = time.perf_counter() - started
        made = sum(sandbox.requests_by_status(platform).values()) - before
        label = connector_class(platform).label
        print(
            f"first push of {args.contacts:,} contacts ({label} batch path): {first_seconds:.1f} s"
        )
        print(
            f"re-push of {args.contacts:,} unchanged contacts: {seconds:.2f} s = "
            f"{args.contacts / seconds:,.0f} contacts checked/s; requests made: {made}; "
            f"still to push: {queued}; run says {plan.run.unchanged:,} unchanged"
        )
        print(f"baseline SELECT count(*): {count_seconds * 1000:.1f} ms")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
