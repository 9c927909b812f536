"""Benchmark: fairness, nothing waits behind a slow bulk push (issue #15, item 8).

    bin/with-postgres .venv/bin/python bench/fairness.py [--slow-contacts 100000]
        [--fast-contacts 10000] [--workers 2] [--worker sync_worker|db_worker] [--rounds 3]

The slow platform: the first of `platforms_with(bulk=False)`, pushed contact by contact
(Loops, 10 requests/s);
the fast one: the first bulk platform (Yespo). The sandbox enforces every platform's limit.

Measured on the same workers, idle and busy phases alternating (idle, busy, idle, busy, ...,
idle: the machine is shared and its load swings more than the effect measured): idle, a push
of `--fast-contacts` to the fast platform (the same contacts each time, changed before each
push, after a first push that creates them) and a contact saved in queued mode until it is
synced on every destination; busy, the same two while a push of `--slow-contacts` to the slow
platform runs (cancelled and drained after). Each busy push is compared with the mean of the
idle pushes just before and after it; the median of those ratios is the figure. Targets: the
saved contact everywhere within 5 s; the fast push within 20 % of its idle time.
`--worker db_worker` runs django-tasks-db's plain worker instead of ours (the chunks still give
their place back, but the worker may take a busy destination's chunk).
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
    parser.add_argument("--rounds", type=int, default=3, help="busy phases, each between idle ones")
    args = parser.parse_args()
    setup_django(SYNC_ON_SAVE_MODE="queued")
    env = {**os.environ, **sandbox_credentials_env(), "SYNC_ON_SAVE_MODE": "queued"}
    os.environ.update(sandbox_credentials_env())
    from django.db.models import F, Value
    from django.db.models.functions import Concat
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
        seed_demo_contacts(args.slow_contacts + args.fast_contacts + args.saves)
        ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
        print(f"seeded {len(ids)} contacts in {time.monotonic() - t0:.0f} s")
        fast_ids = ids[: args.fast_contacts]
        slow_ids = ids[args.fast_contacts : args.fast_contacts + args.slow_contacts]
        saves = ids[-args.saves :]

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
            in the queue (enqueued to started) or running (started to finished). Each time
            the contacts are changed first, so each push sends all of them."""
            Contact.objects.filter(pk__in=contact_ids).update(
                first_name=Concat("first_name", Value("x")),
                content_version=F("content_version") + 1,
            )
            start, since = time.monotonic(), timezone.now()
            services.contacts_push_selected(
                contacts=Contact.objects.filter(pk__in=contact_ids),
                destination=fast,
                trigger="command",
                user_id=None,
            )
            states = ContactSyncState.objects.filter(
                destination=fast, contact_id__in=contact_ids, status=SyncStatus.SYNCED
            )
            wait_until(
                lambda: states.filter(last_success_at__gte=since).count() == len(contact_ids),
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
                f"{len(runs)} chunks, queued {median(waits or [0]):.2f} s, ran "
                f"{median(runs or [0]):.2f} s (medians)"
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

        def idle_phase(label) -> float:
            took, detail = push_time(fast_ids)
            saved = save_times(saves)
            print(
                f"{label}: {fast_platform} push of {len(fast_ids)} contacts {took:.2f} s "
                f"({detail}); saved contact on all {len(destinations)} destinations "
                + ", ".join(f"{t:.2f}" for t in saved)
                + " s",
                flush=True,
            )
            return took

        def busy_phase(label) -> tuple[float, list[float]]:
            """The same measures while the slow push runs; it is cancelled after, and its
            chunks drained, so that the next idle phase is idle."""
            t0 = time.monotonic()
            run = services.contacts_push_selected(
                contacts=Contact.objects.filter(pk__in=slow_ids),
                destination=slow,
                trigger="command",
                user_id=None,
            )
            queued = time.monotonic() - t0
            time.sleep(3)  # let the workers settle into the slow push
            slow_synced = ContactSyncState.objects.filter(
                destination=slow, status=SyncStatus.SYNCED
            )
            before, t_before = slow_synced.count(), time.monotonic()
            saved = save_times(saves)
            took, detail = push_time(fast_ids)
            slow_rate = (slow_synced.count() - before) / (time.monotonic() - t_before)
            services.run_cancel(run=SyncRun.objects.get(pk=run.pk))
            left = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
            drained = wait_until(lambda: not left.exists(), timeout=900, poll=0.5)
            print(
                f"{label}, during the {slow_platform} push of {len(slow_ids)} contacts (queued "
                f"in {queued:.1f} s; {args.workers} {args.worker}s): {fast_platform} push "
                f"{took:.2f} s ({detail}); saved contact on all {len(destinations)} "
                "destinations "
                + ", ".join(f"{t:.2f}" for t in saved)
                + f" s; {slow_platform} went on at {slow_rate:.1f} contacts/s (limit "
                f"{slow.effective_rate_limit:g}/s); cancelled, drained in {drained:.0f} s",
                flush=True,
            )
            return took, saved

        # The first push creates the contacts on the fast platform; the measured ones update
        # them, each the same work. The machine is shared and its load swings: idle and busy
        # phases alternate, each busy one compared with the idle ones just before and after.
        warm, _ = push_time(fast_ids)
        print(f"warm-up (creates them): {fast_platform} push of {len(fast_ids)} {warm:.2f} s")
        idles, busies, busy_saves = [idle_phase("idle 1")], [], []
        for round_ in range(1, args.rounds + 1):
            took, saved = busy_phase(f"busy {round_}")
            busies.append(took)
            busy_saves += saved
            idles.append(idle_phase(f"idle {round_ + 1}"))
        ratios = [busy / ((idles[k] + idles[k + 1]) / 2) for k, busy in enumerate(busies)]
        print(
            f"{fast_platform} push during the {slow_platform} push over the idle ones around "
            "it: " + ", ".join(f"{r:.2f}" for r in ratios) + f"; median {median(ratios):.2f} "
            f"(target <= 1.20); medians {median(busies):.2f} s busy, {median(idles):.2f} s "
            f"idle. Saved contact during the slow push: median {median(busy_saves):.2f} s, "
            f"most {max(busy_saves):.2f} s (target <= 5)"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        sandbox.stop()


if __name__ == "__main__":
    main()
