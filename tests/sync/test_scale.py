"""Scale: the shared rate limiter across processes, SIGKILL recovery, cancel, the command."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from django.core.management import call_command

from contacts.demo import seed_demo_contacts
from contacts.models import Contact
from sync import services
from sync.models import ContactSyncState, SyncAttempt, SyncRun, SyncStatus
from tests.conftest import platform_with
from tests.sync.conftest import payload_keys, sandbox_store
from tests.sync.processes import ROOT, manage, process_env, run_worker_until_idle

# A platform pushed one contact per request: one request per pushed contact.
PLATFORM = platform_with(bulk=False)

LIMITER_SCRIPT = """
import json, sys, time, django
django.setup()
from sync.ratelimit import DatabaseRateLimiter
limiter = DatabaseRateLimiter(int(sys.argv[1]), float(sys.argv[2]))
stamps = []
for _ in range(int(sys.argv[3])):
    limiter.acquire()
    stamps.append(time.time())
print(json.dumps(stamps))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_shared_limiter_keeps_two_processes_under_the_rate(sandbox_destination):
    destination = sandbox_destination(PLATFORM, rate_limit=20)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LIMITER_SCRIPT, str(destination.pk), "20", "30"],
            cwd=ROOT,
            env=process_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    stamps = sorted(t for p in procs for t in json.loads(p.communicate(timeout=60)[0]))
    assert len(stamps) == 60
    busiest = max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps)
    assert busiest <= 20, busiest
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert achieved >= 0.9 * 20 * 0.95, achieved


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
    admin_client_logged, sandbox_destination, sandbox, sandbox_env, settings
):
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": PLATFORM, "latency_ms": 20})
    per_contact = sandbox_destination(PLATFORM, rate_limit=500)
    seed_demo_contacts(200)
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=per_contact, trigger="action", user_id=None
    )
    worker = manage(
        "db_worker",
        "--no-startup-delay",
        "--no-reload",
        env=process_env(**sandbox_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while ContactSyncState.objects.filter(status=SyncStatus.SYNCED).count() < 30:
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    synced_at_kill = ContactSyncState.objects.filter(status=SyncStatus.SYNCED).count()
    assert synced_at_kill < 200
    held_by_the_dead = ContactSyncState.objects.filter(status=SyncStatus.IN_PROGRESS).count()

    settings.SYNC_LEASE_SECONDS = 0.5
    time.sleep(1.0)
    # the dead worker's claims are taken back and queued again, exactly those
    assert services.retries_enqueue_due() == held_by_the_dead
    assert not ContactSyncState.objects.filter(status=SyncStatus.IN_PROGRESS).exists()
    run_worker_until_idle(process_env(**sandbox_env))

    assert list(ContactSyncState.objects.values_list("status", flat=True).distinct()) in (
        [SyncStatus.SYNCED],
        [SyncStatus.SYNCED, SyncStatus.UNCHANGED],
        [SyncStatus.UNCHANGED, SyncStatus.SYNCED],
    )
    stored = sandbox_store(sandbox, PLATFORM)["contacts"]
    assert len(stored) == 200 == len({c[payload_keys(per_contact)[0]] for c in stored})
    run.refresh_from_db()
    assert run.failed == 0


@pytest.mark.django_db
def test_cancelled_run_leaves_unsent_contacts_as_they_were(sandbox_destination, sandbox):
    per_contact = sandbox_destination(PLATFORM)
    seed_demo_contacts(30)
    run = services.contacts_push_selected(
        contacts=Contact.objects.all(), destination=per_contact, trigger="action", user_id=None
    )
    assert ContactSyncState.objects.filter(status=SyncStatus.PENDING).count() == 30
    services.run_cancel(run=run)
    run.refresh_from_db()
    assert run.state == SyncRun.State.CANCELLED
    assert ContactSyncState.objects.filter(status=SyncStatus.NEVER).count() == 30
    # the queued chunk finds its run cancelled and sends nothing
    context = services.PushContext(trigger="action", run_id=run.pk)
    services.contacts_push_chunk(
        destination_id=per_contact.pk,
        contact_ids=list(Contact.objects.values_list("pk", flat=True)),
        context=context,
    )
    assert sandbox.sandbox.stats()["requests"] == {}


@pytest.mark.django_db
def test_push_contacts_command_reports_and_fails_on_failure(sandbox_destination, sandbox, capsys):
    sandbox.sandbox.set_rate_limit(PLATFORM, None)
    sandbox_destination(PLATFORM, rate_limit=500)
    seed_demo_contacts(12)
    call_command("push_contacts", "--destination", f"{PLATFORM} sandbox", "--all")
    out = capsys.readouterr()
    written = re.findall(r"(\d+) (created|accepted)", out.out)  # accepted: an upsert's answer
    assert sum(int(n) for n, _ in written) == 12 and "0 failed" in out.out, out.out
    assert "12/12 done" in out.err

    call_command("push_contacts", "--destination", f"{PLATFORM} sandbox", "--all", "--dry-run")
    assert "0 would be pushed, 12 unchanged" in capsys.readouterr().out

    Contact.objects.filter(pk=Contact.objects.first().pk).update(email="not-an-email")
    Contact.objects.update(content_version=99)
    with pytest.raises(SystemExit) as exit_info:
        call_command("push_contacts", "--destination", f"{PLATFORM} sandbox", "--changed")
    assert exit_info.value.code == 1
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.django_db
def test_prune_attempts_removes_old_rows_only(sandbox_destination):
    from datetime import timedelta

    from django.utils import timezone

    destination = sandbox_destination(PLATFORM)
    now = timezone.now()
    SyncAttempt.objects.bulk_create(
        [
            SyncAttempt(
                destination=destination,
                trigger="save",
                outcome="updated",
                started_at=now - timedelta(days=age),
            )
            for age in (1, 89, 91, 400)
        ]
    )
    call_command("prune_attempts")
    assert sorted((now - a.started_at).days for a in SyncAttempt.objects.all()) == [1, 89]
