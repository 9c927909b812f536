"""Benchmark 2: workers filling a destination's rate limit, with requests in flight.

    bin/with-postgres .venv/bin/python bench/rate_limit.py [--contacts 2000]
    .venv/bin/python bench/rate_limit.py          # SQLite

For each platform pushed one contact per request (iVvy and Loops), against the sandbox in its
own process answering after `--latency-ms` (100: a real platform's round trip), with the
sandbox's limit and the destination's both set to `--limit` (50 requests/s) for the run:
1. baseline: ONE `sync_worker` sending one request at a time (SYNC_REQUESTS_IN_FLIGHT=1), on
   `--baseline-contacts` contacts (at 100 ms it cannot pass 10 requests/s: 2,000 iVvy
   contacts, two requests each, would take 400 s);
2. ONE `sync_worker` with SYNC_REQUESTS_IN_FLIGHT=`--in-flight` (8), `--contacts` contacts:
   target >= 0.9 of the limit, 0 answers of 429;
3. TWO `sync_worker`s in separate processes, the same: the shared limiter still holds
   (busiest second <= the limit, 0 answers of 429).
Each phase pushes contacts of its own (new to the platform) through the ordinary queue. The
sandbox counts what reaches it (GET /_sandbox/traffic): requests, the most in any one-second
window, 429s, the most answered at once. The rate is requests over the time from the first
answer to the last.
"""

import argparse
import os
import subprocess
import sys
import time
from collections import Counter

from common import (
    ROOT,
    SandboxProcess,
    connector_class,
    make_destination,
    platforms_with,
    sandbox_credentials_env,
    setup_django,
)


def start_workers(count: int, env: dict) -> list[subprocess.Popen]:
    command = [sys.executable, str(ROOT / "manage.py"), "sync_worker", "--no-reload"]
    command += ["--no-startup-delay", "--interval", "0.1"]
    return [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(count)
    ]


def run_phase(sandbox, platform, *, contacts, workers, in_flight, args, env) -> dict:
    """Push `contacts` new contacts to a fresh destination with `workers` workers; what the
    sandbox counted."""
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import services
    from sync.models import ContactSyncState, SyncStatus

    sandbox.control("reset", {})
    sandbox.control("rate-limit", {"platform": platform, "limit": args.limit})
    sandbox.control("faults", {"platform": platform, "latency_ms": args.latency_ms})
    name = f"{platform} {workers}x{in_flight} {time.monotonic()}"
    destination = make_destination(platform, sandbox.url, name=name, rate_limit=args.limit)
    before = Contact.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    seed_demo_contacts(contacts)
    mine = Contact.objects.filter(pk__gt=before)
    services.contacts_push_selected(
        contacts=mine, destination=destination, trigger="command", user_id=None
    )
    procs = start_workers(workers, {**env, "SYNC_REQUESTS_IN_FLIGHT": str(in_flight)})
    try:
        states = ContactSyncState.objects.filter(destination=destination)
        deadline = time.monotonic() + 4 * contacts / min(args.limit, 10 * in_flight) + 120
        while states.exclude(status=SyncStatus.SYNCED).exists():
            if time.monotonic() > deadline:
                counts = Counter(states.values_list("status", flat=True))
                raise SystemExit(f"{platform}: the workers did not finish in time ({counts})")
            time.sleep(0.5)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    traffic = sandbox.control(f"traffic?platform={platform}")[platform]
    log = sandbox.control(f"log?platform={platform}")
    stamps = sorted(entry["t"] for entry in log)
    # when the 429s came, in seconds from the first answer: at the start, the end, anywhere
    traffic["refused_at"] = [round(e["t"] - stamps[0], 2) for e in log if e["status"] == 429]
    traffic["rate"] = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    traffic["seconds"] = stamps[-1] - stamps[0]
    return traffic


def describe(label, traffic, limit) -> str:
    return (
        f"  {label}: {traffic['requests']} requests in {traffic['seconds']:.1f} s = "
        f"{traffic['rate']:.1f}/s = {traffic['rate'] / limit:.2f} of the limit; busiest second "
        f"{traffic['max_per_second']}, 429 answers {traffic['rate_limited']}, at most "
        f"{traffic['max_in_flight']} in flight"
        + (f" (429s at {traffic['refused_at']} s)" if traffic["refused_at"] else "")
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--baseline-contacts", type=int, default=200)
    parser.add_argument("--limit", type=float, default=50.0)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--chunk-size", type=int, default=100, help="SYNC_CHUNK_SIZE")
    parser.add_argument("--platforms", nargs="*")
    args = parser.parse_args()
    setup_django(SYNC_CHUNK_SIZE=args.chunk_size)
    env = {**os.environ, **sandbox_credentials_env()}
    from django.db import connection

    platforms = args.platforms or platforms_with(bulk=False)
    print(
        f"database {connection.vendor}; sandbox latency {args.latency_ms} ms; sandbox and "
        f"destination limit {args.limit:g} requests/s; {args.chunk_size} contacts per task"
    )
    sandbox = SandboxProcess(rate_limits=True)
    try:
        for platform in platforms:
            label = connector_class(platform).label
            print(f"{label}:")
            phases = [
                ("1 worker, 1 in flight (baseline)", args.baseline_contacts, 1, 1),
                (f"1 worker, {args.in_flight} in flight", args.contacts, 1, args.in_flight),
                (f"2 workers, {args.in_flight} in flight", args.contacts, 2, args.in_flight),
            ]
            results = {}
            for name, contacts, workers, in_flight in phases:
                traffic = run_phase(
                    sandbox,
                    platform,
                    contacts=contacts,
                    workers=workers,
                    in_flight=in_flight,
                    args=args,
                    env=env,
                )
                results[name] = traffic
                print(describe(f"{name}, {contacts} contacts", traffic, args.limit), flush=True)
            baseline = results[phases[0][0]]["rate"]
            one = results[phases[1][0]]["rate"]
            print(f"  one worker in flight over the baseline: {one / baseline:.1f} x")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
