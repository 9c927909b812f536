"""Issue #15 target 4: a million contacts with their children pushed to Yespo in bulk.

    bin/with-postgres .venv/bin/python bench/million.py [--contacts 1000000] [--small 10000]

PostgreSQL, two `db_worker` processes (as bench/production.py starts them) and the sandbox,
all over HTTP on loopback. The contacts and their children (channels, custom fields, groups,
mailing lists, external URLs) are made in SQL (bench/seed_sql.py). Baseline first, in the same
run: `--small` contacts seeded, pushed through the admin action's service
(`services.contacts_push_selected`) to a Yespo destination, re-pushed unchanged, and the
contact list and dashboard measured (bench/changelist.py's code); then the rest seeded up to
`--contacts`, all of them pushed to a second Yespo destination on the same sandbox account,
re-pushed unchanged, and the pages measured again. Each push gets fresh workers, so a
worker's peak RSS (VmHWM) is that push's. Targets: all synced within 5 minutes; the unchanged
re-push within 30 s with no request; the large push's peak RSS within 50 MB of the small
one's; the pages in as many queries as at the small size. `--profile DIR` runs the workers
under cProfile and prints where their time went (slower: for a reduced run).
"""

import argparse
import os
import pstats
import subprocess
import sys
import time

import requests
from changelist import admin_client, admin_pages, page_figures
from common import (
    ROOT,
    SandboxProcess,
    make_destination,
    median,
    platform_with,
    sandbox_credentials_env,
    setup_django,
)
from seed_sql import seed_contacts, vacuum

# What the Yespo sandbox account holds (sync/sandbox/yespo.py): the remote ids of the demo's
# custom fields and of its groups' static segments, so each push sends fields and segments.
FIELDS = {"loyaltyLevel": "79816", "lifetimeValue": "79819"}
SEGMENTS = {"Newsletter Subscribers": "200400", "VIP": "200401"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9, help="renders timed per page")
    parser.add_argument(
        "--profile",
        default="",
        help="a directory: run the workers under cProfile and print where their time went "
        "(slower, and their RSS is cProfile's too)",
    )
    parser.add_argument(
        "--repush-only",
        action="store_true",
        help="only the unchanged re-push of --contacts: their states written in SQL as a "
        "push leaves them (synced, the contact's content accepted), then re-pushed",
    )
    args = parser.parse_args()
    setup_django(ALLOWED_HOSTS="testserver")
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("run under bin/with-postgres")
    env = {**os.environ, **sandbox_credentials_env()}
    platform = platform_with(bulk=True)
    if platform != "yespo":
        raise SystemExit(f"this benchmark is Yespo's; the first bulk platform is {platform}")
    client = admin_client()
    sandbox = SandboxProcess()
    if args.repush_only:
        try:
            return _repush_only(args.contacts, sandbox, env)
        finally:
            sandbox.stop()
    try:
        with connection.cursor() as cursor:
            seed_contacts(cursor, args.small, states=False, children=True)
        vacuum(connection)
        small = _measure(args.small, "Yespo (baseline)", sandbox, env, client, args)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            seed_contacts(cursor, args.contacts - args.small, states=False, children=True)
        vacuum(connection)
        print(
            f"seeded {args.contacts - args.small:,} more contacts with children "
            f"({_children_count()}) in {time.perf_counter() - started:.0f} s"
        )
        large = _measure(args.contacts, "Yespo", sandbox, env, client, args)
        _report(small, large, sandbox)
    finally:
        sandbox.stop()


# The states a push of every contact leaves: synced, each contact's content accepted.
ACCEPTED_SQL = """
    INSERT INTO sync_contactsyncstate (contact_id, destination_id, remote_id, status,
        skip_reason, last_error, attempts, last_attempt_at, last_success_at, payload_hash,
        accepted_content_version, accepted_config_version, accepted_email_status,
        confirmation_ref, claimed_by, updated_at)
    SELECT id, %s, 'R' || id, 'synced', '', '', 0, now(), now(), '', content_version, %s,
        email_status, '', '', now()
    FROM contacts_contact
"""


def _repush_only(count, sandbox, env) -> None:
    """`--repush-only`: the unchanged re-push of `count` contacts whose states say synced."""
    from django.db import connection

    with connection.cursor() as cursor:
        seed_contacts(cursor, count, states=False, children=True)
    destination = make_destination("yespo", sandbox.url, name="Yespo")
    with connection.cursor() as cursor:
        cursor.execute(ACCEPTED_SQL, [destination.pk, destination.config_version])
    vacuum(connection)
    uptime = _load()
    workers = [_start_worker(env, "") for _ in range(2)]
    try:
        _wait_for_a_worker(destination)
        repush = _push(destination, sandbox, count)
    finally:
        _stop(workers)
    print(
        f"re-push of {count:,} unchanged (states seeded as synced): {repush['seconds']:.1f} s "
        f"(target <= 30 s at 1M; the admin request {repush['request_seconds']:.2f} s, "
        f"planning {repush['queued_seconds']:.1f} s), {repush['requests']} requests to the "
        f"sandbox (target 0), {repush['unchanged']:,} unchanged, states {repush['statuses']}; "
        f"load average before {uptime}, after {_load()}"
    )


def _wait_for_a_worker(destination) -> None:
    """Until a worker has started: a run of no contacts, ended by the worker planning it."""
    from contacts.models import Contact
    from sync import services
    from sync.models import SyncRun

    run = services.contacts_push_in_background(
        contacts=Contact.objects.none(), destination=destination, trigger="action", user_id=None
    )
    while SyncRun.objects.filter(pk=run.pk, preparing=True).exists():
        time.sleep(0.1)


def _measure(count, name, sandbox, env, client, args) -> dict:
    """Push every contact (`count`) to a new Yespo destination, re-push them unchanged and
    render the pages; the figures by name."""
    from contacts.models import CustomFieldDefinition, Group
    from sync.models import FieldMapping, ListMapping

    destination = make_destination("yespo", sandbox.url, name=name)
    for field, remote in FIELDS.items():
        FieldMapping.objects.create(
            destination=destination,
            custom_field=CustomFieldDefinition.objects.get(name=field),
            remote_field=remote,
        )
    for group, remote in SEGMENTS.items():
        ListMapping.objects.create(
            destination=destination, group=Group.objects.get(name=group), remote_list=remote
        )
    destination.refresh_from_db()
    figures = {"count": count, "uptime": _load()}
    profiles = [
        os.path.join(args.profile, f"worker-{count}-{i}.prof") if args.profile else ""
        for i in range(2)
    ]
    workers = [_start_worker(env, profile) for profile in profiles]
    try:
        figures["push"] = _push(destination, sandbox, count)
        figures["rss_mb"] = [_peak_rss_kb(w.pid) / 1024 for w in workers]
        figures["uptime_after"] = _load()
        # a worker plans the re-push too (the admin action only starts the run)
        figures["repush"] = _push(destination, sandbox, count)
    finally:
        _stop(workers)
    if args.profile:
        _print_profile(count, profiles)
    figures["sandbox_rss_mb"] = _peak_rss_kb(sandbox.proc.pid) / 1024
    store = requests.get(f"{sandbox.url}/_sandbox/store/yespo", timeout=900).json()
    figures["stored"] = len(store["yespo"]["contacts"])
    del store
    pages = admin_pages(destination)
    figures["pages"] = {
        page: page_figures(client, *where, repeat=args.repeat) for page, where in pages.items()
    }
    print(f"measured at {count:,} contacts (load average {figures['uptime']})", flush=True)
    return figures


def _push(destination, sandbox, count) -> dict:
    """The admin action's push of every contact to `destination` (its service: the request
    starts the run, a worker plans and queues it), timed until the planning is over and
    every contact is synced (or settled otherwise), with the request's own time, the
    planning's, the sandbox's requests and the chunks' times."""
    from django.db.models import Count
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from contacts.models import Contact
    from sync import services
    from sync.models import ContactSyncState, SyncRun, SyncStatus

    requests_before = sum(sandbox.requests_by_status("yespo").values())
    since = timezone.now()
    started = time.perf_counter()
    run = services.contacts_push_in_background(
        contacts=Contact.objects.all(), destination=destination, trigger="action", user_id=None
    )
    request = time.perf_counter() - started
    states = ContactSyncState.objects.filter(destination=destination)
    owed = [SyncStatus.PENDING, SyncStatus.IN_PROGRESS, SyncStatus.WAITING, SyncStatus.AWAITING]
    deadline = time.monotonic() + 3 * 3600
    while (
        SyncRun.objects.filter(pk=run.pk, preparing=True).exists()
        or states.count() < count
        or states.filter(status__in=owed).exists()
    ):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the push")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    chunks = DBTaskResult.objects.filter(
        enqueued_at__gte=since, args_kwargs__kwargs__destination_id=destination.pk
    ).values_list("enqueued_at", "started_at", "finished_at")
    runs = [(f - s).total_seconds() for _, s, f in chunks if s and f]
    waits = [(s - e).total_seconds() for e, s, _ in chunks if s]
    statuses = dict(states.values_list("status").annotate(n=Count("pk")).order_by())
    run.refresh_from_db()
    return {
        "seconds": seconds,
        "request_seconds": request,
        # from the click to the planning's last batch (its task waits for a free worker)
        "queued_seconds": (run.planned_at - run.started_at).total_seconds(),
        "requests": sum(sandbox.requests_by_status("yespo").values()) - requests_before,
        "statuses": statuses,
        "unchanged": run.unchanged,
        "chunks": len(runs),
        "chunk_run_total": sum(runs),
        "chunk_run_median": median(runs) if runs else 0.0,
        "chunk_wait_median": median(waits) if waits else 0.0,
    }


def _start_worker(env, profile: str):
    """A django-tasks-db worker, started as bench/production.py starts them (under cProfile,
    writing to `profile`, when given)."""
    python = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    return subprocess.Popen(
        [*python, str(ROOT / "manage.py"), "db_worker", "--no-reload", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _print_profile(count, paths) -> None:
    """Both workers' profiles together: the functions they spent most time in."""
    stats = pstats.Stats(*paths, stream=sys.stdout)
    print(f"workers' profile, push of {count:,} contacts (own time; cumulative, our code):")
    stats.sort_stats("tottime").print_stats(12)
    stats.sort_stats("cumulative").print_stats(f"{ROOT}/sync/", 20)


def _stop(processes) -> None:
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.wait(timeout=60)


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident set size so far (Linux: VmHWM in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _children_count() -> str:
    from contacts.models import Channel, CustomFieldValue, GroupMembership

    return (
        f"{Channel.objects.count():,} channels, {CustomFieldValue.objects.count():,} custom "
        f"values, {GroupMembership.objects.count():,} group memberships in all"
    )


def _report(small, large, sandbox) -> None:
    s, n = small["count"], large["count"]
    for figures in (small, large):
        push = figures["push"]
        print(
            f"push of {figures['count']:,} contacts to Yespo, 2 db_workers: "
            f"{push['seconds']:.1f} s to all settled = {figures['count'] / push['seconds']:,.0f} "
            f"contacts/s; states {push['statuses']}; {push['requests']:,} requests; "
            f"{figures['stored']:,} contacts in the sandbox store (sandbox peak RSS "
            f"{figures['sandbox_rss_mb']:.0f} MB); load average before {figures['uptime']}, after "
            f"{figures['uptime_after']}"
        )
        print(
            f"  where the time went: the admin request {push['request_seconds']:.2f} s; "
            f"planning and queueing (by a worker) {push['queued_seconds']:.1f} s; "
            f"{push['chunks']} chunks, each queued {push['chunk_wait_median']:.1f} s and ran "
            f"{push['chunk_run_median']:.2f} s (medians); workers busy "
            f"{push['chunk_run_total']:.0f} s of 2 x {push['seconds']:.0f} s"
        )
    print(
        f"push of {n:,}: {large['push']['seconds']:.1f} s (target <= 300 s at 1,000,000: "
        f"{large['push']['seconds'] - 300:+.1f} s); baseline {s:,} in "
        f"{small['push']['seconds']:.1f} s"
    )
    for figures in (small, large):
        repush = figures["repush"]
        print(
            f"re-push of {figures['count']:,} unchanged: {repush['seconds']:.1f} s "
            f"(target <= 30 s at 1M; the admin request {repush['request_seconds']:.2f} s, "
            f"planning {repush['queued_seconds']:.1f} s), {repush['requests']} requests to the "
            f"sandbox (target 0), {repush['unchanged']:,} unchanged"
        )
    small_peak, large_peak = max(small["rss_mb"]), max(large["rss_mb"])
    print(
        f"worker peak RSS: {s:,} push {_mb(small['rss_mb'])}, {n:,} push {_mb(large['rss_mb'])}: "
        f"{large_peak - small_peak:+.1f} MB (target <= +50 MB)"
    )
    for page in small["pages"]:
        (q_small, t_small), (q_large, t_large) = small["pages"][page], large["pages"][page]
        print(
            f"{page}: {q_small} queries at {s:,} contacts, {q_large} at {n:,}; median "
            f"{t_small * 1000:.0f} ms at {s:,}, {t_large * 1000:.0f} ms at {n:,}"
        )


def _mb(values) -> str:
    return " / ".join(f"{v:.1f}" for v in values) + " MB"


if __name__ == "__main__":
    main()
