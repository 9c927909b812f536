"""Fault drills: a bulk push under a sandbox fault, with real db_worker processes, ending with
the platform's store compared to our database. Shared by tests/sync/test_faults.py (200
contacts) and bench/faults.py (2,000 contacts).
"""

import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, Destination, SyncAttempt, SyncStatus
from tests.sync.conftest import payload_keys
from tests.sync.processes import manage, process_env

SETTLED = {SyncStatus.SYNCED, SyncStatus.UNCHANGED, SyncStatus.FAILED, SyncStatus.SKIPPED}
# Workers retry soon, so drills end in seconds. The lease stays longer than a bulk call under
# a fault (quick retries, import polling): only a dead worker's claims may go stale.
WORKER_SETTINGS = {
    "SYNC_RETRY_BASE_SECONDS": 0.3,
    "SYNC_RETRY_MAX_SECONDS": 2,
    "SYNC_LEASE_SECONDS": 20,
    "SYNC_CHUNK_SIZE": 20,
    "SYNC_BULK_CHUNK_SIZE": 20,
}


@dataclass
class DrillReport:
    contacts: int
    synced: int
    failed: int
    on_platform: int
    duplicates: int
    stale: int  # records on the platform without our latest first name
    requests: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.contacts} contacts, {self.synced} synced, {self.failed} failed, "
            f"{self.on_platform} on the platform, {self.duplicates} duplicates, "
            f"{self.stale} stale; requests by status {dict(sorted(self.requests.items()))}; "
            f"{self.seconds:.1f} s"
        )


class Drill:
    """One platform, its sandbox, N contacts and two worker processes."""

    def __init__(self, sandbox_url: str, destination: Destination, env: dict, workers: int = 2):
        self.url, self.destination = sandbox_url, destination
        self.platform = destination.platform
        self.env = process_env(**env, **WORKER_SETTINGS)
        self.worker_count = workers
        self.contact_count = Contact.objects.count()
        self.workers: list[subprocess.Popen] = []
        self.started = time.monotonic()

    def fault(self, **switches):
        response = requests.post(
            f"{self.url}/_sandbox/faults", json={"platform": self.platform, **switches}, timeout=10
        )
        response.raise_for_status()

    def clear_faults(self):
        self.fault(
            latency_ms=0, error_rate=0, outage="", storm_seconds=0, malformed="", revoked=False
        )

    def push_all(self):
        from django.test import override_settings

        # small chunks, as the workers use: faults land in the middle of the push
        chunks = {k: WORKER_SETTINGS[k] for k in ("SYNC_CHUNK_SIZE", "SYNC_BULK_CHUNK_SIZE")}
        with override_settings(**chunks):
            return services.contacts_push_selected(
                contacts=Contact.objects.all(),
                destination=self.destination,
                trigger="action",
                user_id=None,
            )

    def answered(self, status) -> int:
        stats = requests.get(f"{self.url}/_sandbox/stats", timeout=10).json()["requests"]
        return stats.get(self.platform, {}).get(str(status), 0)

    def fault_until(self, status, count=2, **switches):
        """Switch a fault on and keep it until the platform has answered `count` times with
        `status` ("refused" for dropped connections)."""
        before = self.answered(status)
        self.fault(**switches)
        self.wait_until(lambda: self.answered(status) >= before + count, timeout=30)

    def start_workers(self):
        self.workers = [
            manage(
                "db_worker",
                "--no-startup-delay",
                "--no-reload",
                "--interval",
                "0.1",
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(self.worker_count)
        ]

    def stop_workers(self):
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.wait(timeout=30)
        self.workers = []

    def synced_count(self) -> int:
        return ContactSyncState.objects.filter(
            destination=self.destination, status=SyncStatus.SYNCED
        ).count()

    def accepted_count(self) -> int:
        """Synced, or taken by a bulk call and awaiting the platform's confirmation."""
        return ContactSyncState.objects.filter(
            destination=self.destination, status__in=[SyncStatus.SYNCED, SyncStatus.AWAITING]
        ).count()

    def wait_until(self, predicate, timeout=90, scheduler=True):
        """Poll until `predicate()` holds, running scheduler passes meanwhile."""
        from django.test import override_settings

        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"drill on {self.platform} did not settle: {self.statuses()}")
            if scheduler:
                with override_settings(SYNC_LEASE_SECONDS=WORKER_SETTINGS["SYNC_LEASE_SECONDS"]):
                    services.retries_enqueue_due()
            time.sleep(0.2)

    def settled(self) -> bool:
        return (
            not ContactSyncState.objects.filter(destination=self.destination)
            .exclude(status__in=SETTLED)
            .exists()
        )

    def statuses(self) -> dict:
        return dict(
            Counter(
                ContactSyncState.objects.filter(destination=self.destination).values_list(
                    "status", flat=True
                )
            )
        )

    def records(self) -> list[dict]:
        store = requests.get(f"{self.url}/_sandbox/store/{self.platform}", timeout=30).json()
        return store[self.platform]["contacts"]

    def report(self) -> DrillReport:
        records = self.records()
        key, name_key = payload_keys(self.destination)
        per_id = Counter(r.get(key) for r in records)
        latest = dict(Contact.objects.values_list("external_id", "first_name"))
        stats = requests.get(f"{self.url}/_sandbox/stats", timeout=10).json()["requests"]
        statuses = self.statuses()
        return DrillReport(
            contacts=len(latest),
            synced=statuses.get(SyncStatus.SYNCED, 0) + statuses.get(SyncStatus.UNCHANGED, 0),
            failed=statuses.get(SyncStatus.FAILED, 0),
            on_platform=len(per_id),
            duplicates=sum(n - 1 for n in per_id.values() if n > 1),
            stale=sum(
                1 for r in records if r.get(key) in latest and r.get(name_key) != latest[r.get(key)]
            ),
            requests=stats.get(self.platform, {}),
            seconds=time.monotonic() - self.started,
        )


# ------------------------------------------------------------------------------ scenarios
# Each takes a fresh Drill (contacts seeded, no push yet) and returns its report.


def outage_mid_push(d: Drill) -> DrillReport:
    # A bulk platform sends a few calls per chunk: slower answers keep the push running long
    # enough for the outage to land in its middle.
    d.fault(latency_ms=150 if d.destination.connector_class.batch_size else 30)
    d.push_all()
    d.start_workers()
    d.wait_until(lambda: d.synced_count() >= d.contact_count // 10, scheduler=False)
    d.fault_until(503, outage="503")
    d.fault_until("refused", outage="refuse")
    d.clear_faults()
    d.wait_until(d.settled)
    return d.report()


def storm_429(d: Drill) -> DrillReport:
    d.fault(latency_ms=5)
    d.push_all()
    d.start_workers()
    d.wait_until(lambda: d.synced_count() >= d.contact_count // 6, scheduler=False)
    d.fault(storm_seconds=3, retry_after=1)
    d.wait_until(d.settled)
    return d.report()


def requests_before_retry_after(d: Drill, in_flight: float = 0.15) -> tuple[int, int]:
    """(429 answers, requests that arrived before the Retry-After of a 429 had passed).
    Requests already on the wire when a 429 came back may arrive just after it."""
    log = requests.get(f"{d.url}/_sandbox/log?platform={d.platform}", timeout=10).json()
    refusals = [(e["t"], 1.0) for e in log if e["status"] == 429]
    early = {
        i
        for i, e in enumerate(log)
        for t, wait in refusals
        if t + in_flight < e["t"] < t + wait - 0.05
    }
    return len(refusals), len(early)


def bursts_timeouts_refusals(d: Drill) -> DrillReport:
    d.fault(latency_ms=30)
    d.push_all()
    d.start_workers()
    d.wait_until(lambda: d.synced_count() >= d.contact_count // 20, scheduler=False)
    d.fault_until(500, count=3, error_rate=0.3, error_status=500)
    d.fault_until(503, count=3, error_status=503)
    d.fault(error_rate=0, latency_ms=800)  # the destination's timeout is shorter: read timeouts
    d.wait_until(
        lambda: SyncAttempt.objects.filter(error__contains="timed out").exists(),
        timeout=30,
        scheduler=False,
    )
    d.fault(latency_ms=30)
    d.fault_until("refused", outage="refuse")
    d.clear_faults()
    d.wait_until(d.settled)
    return d.report()


def permanent_400(d: Drill, bad: int) -> DrillReport:
    for pk in Contact.objects.order_by("pk").values_list("pk", flat=True)[:bad]:
        # invalid for the platform; written past our form, as an old import might have
        Contact.objects.filter(pk=pk).update(email=f"not-an-email-{pk}")
    d.push_all()
    d.start_workers()
    d.wait_until(d.settled)
    return d.report()


def revoked_401(d: Drill) -> DrillReport:
    d.fault(latency_ms=30)
    d.push_all()
    d.start_workers()
    d.wait_until(lambda: d.accepted_count() >= d.contact_count // 10, scheduler=False)
    d.fault(revoked=True)
    d.wait_until(lambda: Destination.objects.get(pk=d.destination.pk).paused_at, scheduler=False)
    d.wait_until(
        lambda: (
            not ContactSyncState.objects.filter(
                destination=d.destination, status__in=[SyncStatus.PENDING, SyncStatus.IN_PROGRESS]
            ).exists()
        )
    )
    d.paused_report = d.report()
    d.fault(revoked=False)
    ok, message = services.destination_test_connection(destination=d.destination)
    assert ok, message
    d.wait_until(d.settled)
    return d.report()


def malformed_200(d: Drill, kind: str) -> DrillReport:
    d.fault(malformed=kind)
    d.push_all()
    d.start_workers()
    d.wait_until(d.settled)
    d.failed_under_fault = list(
        ContactSyncState.objects.filter(
            destination=d.destination, status=SyncStatus.FAILED
        ).values_list("last_error", flat=True)
    )
    d.clear_faults()
    ids = list(
        ContactSyncState.objects.filter(
            destination=d.destination, status=SyncStatus.FAILED
        ).values_list("contact_id", flat=True)
    )
    services.contacts_enqueue_push(contact_ids=ids, destinations=[d.destination], trigger="retry")
    d.wait_until(d.settled)
    return d.report()


def saves_during_push(d: Drill, people=("Alice", "Beatriz"), edited=20) -> DrillReport:
    """Two people save the same contacts while the bulk push runs (queued mode)."""
    import threading

    from django.db import connection
    from django.db.models import F
    from django.test import override_settings

    d.fault(latency_ms=20)
    d.push_all()
    d.start_workers()
    targets = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:edited])

    def person(name):
        with override_settings(SYNC_ON_SAVE_MODE="queued"):
            for pk in targets:
                contact = Contact.objects.get(pk=pk)
                contact.first_name = name
                contact.save()
                time.sleep(0.01)
        connection.close()

    threads = [threading.Thread(target=person, args=(name,)) for name in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def caught_up():
        return (
            d.settled()
            and not ContactSyncState.objects.filter(destination=d.destination)
            .exclude(accepted_content_version=F("contact__content_version"))
            .exists()
        )

    d.wait_until(caught_up)
    return d.report()
