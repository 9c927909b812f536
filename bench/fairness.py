"""Benchmark: fairness, nothing waits behind a slow bulk push (issue #15, item 8).

    bin/with-postgres .venv/bin/python bench/fairness.py [--slow-contacts 100000]
        [--fast-contacts 10000] [--workers 2] [--worker sync_worker|db_worker]

The slow platform: the first of `platforms_with(bulk=False)`, pushed contact by contact
(Loops, 10 requests/s);
the fast one: the first bulk platform (Yespo). The sandbox enforces every platform's limit.

Baseline (idle system, same run, same workers): a push of `--fast-contacts` to the fast
platform, and a contact saved in queued mode until it is synced on every destination. Then,
while a push of `--slow-contacts` to the slow platform runs on the same workers: the same two
measures again. Targets: the saved contact everywhere within 5 s; the fast push within 20 % of
its idle time. `--worker db_worker` runs django-tasks-db's plain worker instead of ours (the
chunks still give their place back, but the worker may take a busy destination's chunk).
"""

import argparse
import os
import subprocess
import sys
import time

from common import (
    ROOT,
    SandboxProcess,
    make_destination,
    median,
    platforms_with,
    sandbox_credentials_env,
    setup_django,
)


def wait_until(condition, timeout: float, poll: float = 0.05) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(poll)
    return time.monotonic() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow-contacts", type=int, default=100_000)
    parser.add_argument("--fast-contacts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker", default="sync_worker", choices=["sync_worker", "db_worker"])
    parser.add_argument("--saves", type=int, default=3, help="saved contacts timed per phase")
    args = parser.parse_args()
    setup_django(SYNC_ON_SAVE_MODE="queued")
    env = {**os.environ, **sandbox_credentials_env(), "SYNC_ON_SAVE_MODE": "queued"}
    os.environ.update(sandbox_credentials_env())
    from django.utils import timezone
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from contacts.demo import seed_demo_contacts
    from contacts.models import Contact
    from sync import services
    from sync.models import ContactSyncState, SyncRun, SyncStatus

    slow_platform = platforms_with(bulk=False)[0]
    fast_platform = platforms_with(bulk=True)[0]
    sandbox = SandboxProcess(rate_limits=True)
    workers = []
    try:
        destinations = {
            p: make_destination(p, sandbox.url, name=p)
            for p in {*platforms_with(), slow_platform, fast_platform}
        }
        slow, fast = destinations[slow_platform], destinations[fast_platform]
        t0 = time.monotonic()
        spare = 2 * args.saves
        seed_demo_contacts(args.slow_contacts + 3 * args.fast_contacts + spare)
        ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
        print(f"seeded {len(ids)} contacts in {time.monotonic() - t0:.0f} s")
        fast_idle = ids[: args.fast_contacts]
        fast_busy = ids[args.fast_contacts : 2 * args.fast_contacts]
        fast_again = ids[2 * args.fast_contacts : 3 * args.fast_contacts]
        slow_ids = ids[3 * args.fast_contacts : 3 * args.fast_contacts + args.slow_contacts]
        saves = ids[-spare:]

        workers = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), args.worker, "--no-reload"]
                + ["--no-startup-delay", "--interval", "0.1"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]

        def push_time(contact_ids) -> tuple[float, str]:
            """Seconds until every contact is synced, and where the chunks' time went: waiting
            in the queue (enqueued to started) or running (started to finished)."""
            start, since = time.monotonic(), timezone.now()
            services.contacts_push_selected(
                contacts=Contact.objects.filter(pk__in=contact_ids),
                destination=fast,
                trigger="command",
                user_id=None,
            )
            states = ContactSyncState.objects.filter(destination=fast, contact_id__in=contact_ids)
            wait_until(
                lambda: states.filter(status=SyncStatus.SYNCED).count() == len(contact_ids),
                timeout=900,
                poll=0.1,
            )
            elapsed = time.monotonic() - start
            chunks = DBTaskResult.objects.filter(
                enqueued_at__gte=since, args_kwargs__kwargs__destination_id=fast.pk
            ).values_list("enqueued_at", "started_at", "finished_at")
            waits = [(s - e).total_seconds() for e, s, _ in chunks if s]
            runs = [(f - s).total_seconds() for _, s, f in chunks if s and f]
            detail = (
                f"{len(runs)} chunks, queued {median(waits):.2f} s, ran {median(runs):.2f} s "
                "(medians)"
            )
            return elapsed, detail

        def save_times(contact_ids) -> list[float]:
            times = []
            for contact_id in contact_ids:
                contact = Contact.objects.get(pk=contact_id)
                contact.first_name = f"{contact.first_name}x"
                start = time.monotonic()
                contact.save()  # queued mode: the save's on-commit hook queues its pushes
                states = ContactSyncState.objects.filter(
                    contact_id=contact_id, status=SyncStatus.SYNCED
                )
                wait_until(lambda s=states: s.count() == len(destinations), timeout=120)
                times.append(time.monotonic() - start)
            return times

        idle_saves = save_times(saves[: args.saves])
        idle, idle_detail = push_time(fast_idle)
        print(
            f"idle: {fast_platform} push of {len(fast_idle)} contacts {idle:.2f} s "
            f"({idle_detail}); saved "
            f"contact on all {len(destinations)} destinations "
            + ", ".join(f"{t:.2f}" for t in idle_saves)
            + " s"
        )

        t0 = time.monotonic()
        run = services.contacts_push_selected(
            contacts=Contact.objects.filter(pk__in=slow_ids),
            destination=slow,
            trigger="command",
            user_id=None,
        )
        print(
            f"queued the {slow_platform} push of {len(slow_ids)} contacts "
            f"in {time.monotonic() - t0:.1f} s"
        )
        time.sleep(3)  # let the workers settle into the slow push
        slow_synced = ContactSyncState.objects.filter(destination=slow, status=SyncStatus.SYNCED)
        before, t_before = slow_synced.count(), time.monotonic()
        busy_saves = save_times(saves[args.saves :])
        busy, busy_detail = push_time(fast_busy)
        slow_rate = (slow_synced.count() - before) / (time.monotonic() - t_before)
        print(
            f"during the {slow_platform} push ({args.workers} {args.worker}s): {fast_platform} "
            f"push of {len(fast_busy)} contacts {busy:.2f} s = {busy / idle:.2f} of idle "
            f"(target <= 1.20; {busy_detail}); saved contact on all {len(destinations)} "
            "destinations "
            + ", ".join(f"{t:.2f}" for t in busy_saves)
            + f" s (target <= 5); {slow_platform} went on at {slow_rate:.1f} contacts/s "
            f"(limit {slow.effective_rate_limit:g}/s)"
        )
        services.run_cancel(run=SyncRun.objects.get(pk=run.pk))
        # the machine is shared: idle again, after the slow push is cancelled and its
        # chunks have drained, tells the load of the moment from the slow push's own effect
        left = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
        drained = wait_until(lambda: not left.exists(), timeout=900, poll=0.5)
        again, again_detail = push_time(fast_again)
        print(
            f"idle again ({drained:.0f} s to drain the cancelled push's chunks): {fast_platform} "
            f"push of {len(fast_again)} contacts {again:.2f} s ({again_detail}); during/idle "
            f"with the mean idle: {busy / ((idle + again) / 2):.2f}"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        sandbox.stop()


if __name__ == "__main__":
    main()
