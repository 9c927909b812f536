"""Benchmark 6: a 100,000-row CSV previewed and imported in the background by a real worker.

    .venv/bin/python bench/import.py [--rows 100000 --invalid 100 --existing 10000]
    bin/with-postgres .venv/bin/python bench/import.py

The file goes the way a person's does (contacts.services.import_job_start: stored in the
database, its check queued), and one `manage.py db_worker` process, started here, checks it
(the preview) and then imports it, skipping the invalid rows. `--existing` contacts are in the
database first and are updated by the first rows of the file; `--invalid` rows have a bad
phone. Prints the seconds of the preview and of the import, and the worker's resident set
size: its baseline (after a 10-row warm-up import, so that the code is loaded) and its peak
during the large import, sampled from /proc every 50 ms. Targets: preview + import <= 60 s,
peak <= baseline + 200 MB.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

from common import ROOT, setup_django

HEADER = "external_id,first_name,last_name,email,phone,city,country,groups,tags"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--invalid", type=int, default=100)
    parser.add_argument("--existing", type=int, default=10_000)
    args = parser.parse_args()
    setup_django(IMPORT_BACKGROUND_ROWS=0)
    from contacts.models import Contact, Group

    Group.objects.get_or_create(name="VIP")
    Contact.objects.bulk_create(
        [
            Contact(external_id=f"B{n}", first_name=f"Old{n}", email=f"b{n}@example.com")
            for n in range(1, args.existing + 1)
        ],
        batch_size=2000,
    )
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-startup-delay"]
        + ["--no-reload", "--interval", "0.2"],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
    )
    try:
        _run(_file(10, 0, 0), "warm-up")  # the worker's code loaded, its caches warm
        baseline = _rss_kb(worker.pid)
        sampler = Sampler(worker.pid)
        sampler.start()
        timings = _run(_file(args.rows, args.invalid, args.existing), "large")
        sampler.stop()
        preview, imported, job = timings
        grown = (sampler.peak - baseline) / 1024
        print(
            f"import of {args.rows:,} rows ({args.existing:,} updates, {args.invalid} invalid, "
            f"{job.total_rows - job.invalid_rows:,} written: {job.totals}), "
            f"{os.environ['DATABASE_URL'].split(':')[0]}"
        )
        print(
            f"preview (check of every row) {preview:.1f} s, import {imported:.1f} s, "
            f"total {preview + imported:.1f} s (target <= 60 s)"
        )
        print(
            f"worker RSS: baseline {baseline / 1024:.1f} MB, peak {sampler.peak / 1024:.1f} MB, "
            f"increase {grown:.1f} MB (target <= +200 MB)"
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _file(rows: int, invalid: int, existing: int) -> str:
    """`rows` rows: the first `existing` update the seeded contacts, every (rows // invalid)th
    row has a phone that is not one; the others create contacts."""
    every = rows // invalid if invalid else 0
    lines = [HEADER]
    for n in range(1, rows + 1):
        if n <= existing:
            ident, email = f"B{n}", f"b{n}@example.com"
        else:
            ident, email = f"N{n}", f"n{n}@example.com"
        phone = "12345" if every and n % every == 0 else f"+4479{n:08d}"
        lines.append(f'{ident},First{n},Last{n},{email},{phone},Leeds,GB,VIP,"a, b"')
    return "\n".join(lines) + "\n"


def _run(content: str, label: str):
    from contacts.models import ImportJob
    from contacts.services import import_job_confirm, import_job_start

    started = time.monotonic()
    job = import_job_start(content=content, file_name=f"{label}.csv")
    job = _wait(job, {ImportJob.Status.PREVIEWED, ImportJob.Status.FAILED})
    assert job.status == ImportJob.Status.PREVIEWED, job.failure
    previewed = time.monotonic()
    assert import_job_confirm(job=job, mode=ImportJob.Mode.SKIP)
    job = _wait(job, {ImportJob.Status.DONE, ImportJob.Status.FAILED})
    assert job.status == ImportJob.Status.DONE, job.failure
    return previewed - started, time.monotonic() - previewed, job


def _wait(job, statuses, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in statuses:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"import {job.pk} still {job.status} after {timeout} s")


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """The highest resident set size of a process, read every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, 0, threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, _rss_kb(self.pid))
            self._done.wait(0.05)

    def stop(self):
        self._done.set()
        self.join()
        self.peak = max(self.peak, _rss_kb(self.pid))


if __name__ == "__main__":
    main()
