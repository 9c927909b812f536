"""Benchmark 5: peak memory of a worker pushing 10,000 and then 100,000 contacts.

    bin/with-postgres .venv/bin/python bench/memory.py [--small 10000 --large 100000]

Each push runs `manage.py push_contacts` (in-process, the worker's code path) in a fresh
process against the sandbox's account of a platform with a bulk endpoint (its batch path;
bench/common.py `platform_with`), and reads that process's peak resident set size. Target:
the large push within 50 MB of the small one.
"""

import argparse
import os
import subprocess
import sys

from common import (
    ROOT,
    SandboxProcess,
    connector_class,
    make_destination,
    platform_with,
    sandbox_credentials_env,
    setup_django,
)

PEAK = "import resource; print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args()
    setup_django()
    env = {**os.environ, **sandbox_credentials_env()}
    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync.models import ContactSyncState, Destination

    platform = platform_with(bulk=True)
    label = connector_class(platform).label
    sandbox = SandboxProcess(rate_limits=False)
    try:
        peaks = {}
        for count in (args.small, args.large):
            ContactSyncState.objects.all().delete()
            Destination.objects.all().delete()
            sandbox.reset()  # the vendors' limits stay lifted
            destination = make_destination(platform, sandbox.url, rate_limit=1_000_000)
            seed_demo_contacts(count - Contact.objects.count())
            peaks[count] = _peak_kb(env, destination.name)
            print(f"push of {count:,} contacts to {label}: peak RSS {peaks[count] / 1024:.1f} MB")
        grown = (peaks[args.large] - peaks[args.small]) / 1024
        print(f"growth from {args.small:,} to {args.large:,}: {grown:.1f} MB (target <= 50 MB)")
    finally:
        sandbox.stop()


def _peak_kb(env, destination_name) -> int:
    code = (
        "import subprocess, sys, resource;"
        f"subprocess.run([sys.executable, {str(ROOT / 'manage.py')!r}, 'push_contacts', "
        f"'--destination', {destination_name!r}, '--all'], check=True, "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);" + PEAK
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    return int(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
