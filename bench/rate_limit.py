"""Benchmark 2: two db_worker processes against a platform's rate limit.

    bin/with-postgres .venv/bin/python bench/rate_limit.py [--contacts 200]

The platform: one pushed one contact per request (bench/common.py `platform_with`). The
sandbox answers with 50 ms latency and enforces the platform's limit; the destination's limit
is the connector's `default_rate_limit`, the same figure, shared by both workers through the
database. Prints the achieved request rate over the limit (target >= 0.9) and the number of
429 answers (target 0)."""

import argparse
import os
import subprocess
import sys
import time

from common import (
    ROOT,
    SandboxProcess,
    connector_class,
    make_destination,
    platform_with,
    sandbox_credentials_env,
    setup_django,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    setup_django(SYNC_CHUNK_SIZE=20)
    env = {**os.environ, **sandbox_credentials_env()}
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import services
    from sync.models import ContactSyncState, SyncStatus

    platform = platform_with(bulk=False)
    cls = connector_class(platform)
    limit = cls.default_rate_limit
    sandbox = SandboxProcess(rate_limits=True)
    try:
        sandbox.control("faults", {"platform": platform, "latency_ms": 50})
        destination = make_destination(platform, sandbox.url, rate_limit=limit)
        seed_demo_contacts(args.contacts)
        services.contacts_push_selected(
            contacts=Contact.objects.all(), destination=destination, trigger="command", user_id=None
        )
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "db_worker",
                    "--no-reload",
                    "--no-startup-delay",
                    "--interval",
                    "0.1",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        deadline = time.monotonic() + args.contacts / (limit / 2) + 60
        while ContactSyncState.objects.exclude(status=SyncStatus.SYNCED).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not finish in time")
            time.sleep(0.5)
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
        log = [entry for entry in sandbox.control(f"log?platform={platform}")]
        stamps = sorted(entry["t"] for entry in log)
        achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        busiest = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
        too_many = sum(1 for entry in log if entry["status"] == 429)
        print(
            f"{args.workers} workers, {args.contacts} contacts, {cls.label} limit {limit:g}/s, "
            f"50 ms latency: {len(stamps)} requests"
        )
        print(
            f"achieved {achieved:.2f} requests/s = {achieved / limit:.2f} of the limit "
            f"(busiest second: {busiest}); 429 answers: {too_many}"
        )
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
