"""Benchmark 1: the engine's throughput per platform against a bare HTTP loop.

    .venv/bin/python bench/throughput.py [--contacts 300]
    bin/with-postgres .venv/bin/python bench/throughput.py      # on PostgreSQL

For each platform, against the sandbox with no latency and no rate limit:
- engine: contacts/s of `push_contacts` run in this process (claim, build, send, record);
- floor: contacts/s of a bare loop replaying the very same HTTP requests (lookups included,
  payloads prebuilt, recorded from an engine run) through one requests.Session.
Prints engine/floor (target >= 0.7 for per-contact platforms) and the CPU time per contact of
each (the engine's barely moves with the load; the rates do), `--repeat` times per platform;
then, unless `--skip-bulk`, for each platform with a bulk endpoint
(bench/common.py `platforms_with(bulk=True)`), one line

    bulk <platform>: <n> contacts/s, floor <m> contacts/s, ratio <r>

- n: contacts the platform accepted (synced, or accepted awaiting confirmation) per second of
  `contacts_push` over the whole list in the engine's chunks (claim, load, build, send, record);
- m: contacts per second of a bare loop replaying the very same requests of that push (the
  bulk bodies prebuilt, recorded from an engine run: every request of that push that carries a
  body), no database work at all;
and a `confirm <platform>` line of its own: the check of what the platform took in bulk
(Cendyn's read-back of a sample of the awaiting contacts, `contacts_confirm`, at the
destination's own rate limit; Yespo's import status is read inside its push, so it is in n
and the floor leaves it out). The engine's own CPU time per contact is printed beside them:
unlike the rates, it hardly moves when other work shares the cores. `--repeat` runs each bulk
measure that many times and prints every ratio, so the spread is visible on a shared machine.
"""

import argparse
import time
from collections import Counter
from dataclasses import dataclass

from common import (
    SandboxProcess,
    connector_class,
    make_destination,
    platforms_with,
    sandbox_credentials_env,
    setup_django,
)

CONFIRM_SAMPLE = 100  # awaiting contacts confirmed after the last bulk run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--batch-contacts", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measure")
    parser.add_argument("--skip-per-contact", action="store_true")
    parser.add_argument("--skip-bulk", action="store_true")
    args = parser.parse_args()
    setup_django()
    sandbox_credentials_env()

    from contacts.demo import seed_demo_contacts
    from sync import connectors

    sandbox = SandboxProcess(rate_limits=False)
    try:
        seed_demo_contacts(max(args.contacts, args.batch_contacts))
        per_contact = {}
        if not args.skip_per_contact:
            print(
                f"{'platform':<12} {'engine/s':>9} {'floor/s':>9} {'ratio':>6}   "
                f"(n={args.contacts})"
            )
            for platform in connectors.CONNECTORS:
                for _ in range(args.repeat):
                    run = measure_platform(platform, sandbox, args.contacts)
                    per_contact[platform] = run.rate
                    print(
                        f"{connector_class(platform).label:<12} {run.rate:>9.1f} "
                        f"{run.floor:>9.1f} {run.rate / run.floor:>6.2f}   (CPU ms per "
                        f"contact: engine {run.cpu_ms:.3f}, floor {run.floor_cpu_ms:.3f})"
                    )
        for platform in [] if args.skip_bulk else platforms_with(bulk=True):
            for run in range(args.repeat):
                last = run == args.repeat - 1
                bulk = measure_bulk(platform, sandbox, args.batch_contacts, confirm=last)
                ratio = bulk["rate"] / bulk["floor"]
                print(
                    f"bulk {platform}: {bulk['rate']:.0f} contacts/s, "
                    f"floor {bulk['floor']:.0f} contacts/s, ratio {ratio:.2f}"
                    f"   (n={args.batch_contacts}, accepted {bulk['accepted']}, "
                    f"{bulk['requests']} requests, {bulk['replayed']} replayed; engine CPU "
                    f"{bulk['cpu_ms']:.3f} ms per contact)"
                )
                if platform in per_contact:
                    print(f"  = {bulk['rate'] / per_contact[platform]:.1f} x its per-contact path")
            confirmed, seconds, outcome = bulk["confirm"]
            if seconds is None:
                print(f"confirm {platform}: {outcome}")
            else:
                print(
                    f"confirm {platform}: {confirmed} contacts confirmed in {seconds:.2f} s = "
                    f"{confirmed / seconds:.0f} contacts/s ({outcome})"
                )
    finally:
        sandbox.stop()


def _fresh(platform, sandbox):
    from sync.models import ContactSyncState, Destination, SyncAttempt

    sandbox.reset()
    ContactSyncState.objects.all().delete()
    SyncAttempt.objects.all().delete()
    Destination.objects.filter(platform=platform).delete()
    return make_destination(platform, sandbox.url, rate_limit=1_000_000)


def _engine_run(destination, contact_ids, *, single=False, recorder=None):
    from sync import services
    from sync.engine import destination_connector

    connector = destination_connector(destination=destination, throttle=False)
    if single:
        connector.batch_size = 0  # the per-contact path of a platform that has a bulk one
    if recorder is not None:
        connector.session.mount("http://", recorder)
    context = services.PushContext(trigger="command")
    size = services.chunk_size_for(destination) if not single else 100
    started = time.perf_counter()
    for start in range(0, len(contact_ids), size):
        services.contacts_push(
            contact_ids=contact_ids[start : start + size],
            destination=destination,
            context=context,
            connector=connector,
        )
    return time.perf_counter() - started


def measure_platform(platform, sandbox, count):
    from contacts.models import Contact
    from sync.connectors.base import outbound_session

    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:count])
    recorder = RecordingAdapter()
    _engine_run(_fresh(platform, sandbox), ids, single=True, recorder=recorder)  # records
    destination = _fresh(platform, sandbox)
    cpu = time.process_time()
    engine_seconds = _engine_run(destination, ids, single=True)
    cpu = time.process_time() - cpu  # this process only (its lanes' threads included)
    engine_calls = _calls_received(sandbox, platform)
    sandbox.reset()
    session = outbound_session()  # configured as the engine's: no per-call environment scan
    floor_cpu = time.process_time()
    started = time.perf_counter()
    for prepared in recorder.requests:
        _ = session.send(prepared, timeout=10).content  # read the whole answer, as we do
    floor_seconds = time.perf_counter() - started
    floor_cpu = time.process_time() - floor_cpu
    _check_same_calls(platform, engine_calls, _calls_received(sandbox, platform))
    return PerContact(
        count / engine_seconds, count / floor_seconds, 1000 * cpu / count, 1000 * floor_cpu / count
    )


def _calls_received(sandbox, platform) -> Counter:
    """What the platform received since the last reset: (method, path, status) -> count."""
    log = sandbox.control(f"log?platform={platform}")
    return Counter((entry["method"], entry["path"], entry["status"]) for entry in log)


def _check_same_calls(platform, engine: Counter, replay: Counter) -> None:
    """The replay is a floor only if it makes the calls the timed engine run made, and the
    platform answers them alike: no fewer (a cheaper floor), no more (a dearer one)."""
    if engine != replay:
        raise RuntimeError(
            f"{platform}: the replay's calls differ from the engine's: engine only "
            f"{dict(engine - replay)}, replay only {dict(replay - engine)}"
        )


@dataclass
class PerContact:
    """Contacts/s of the engine and of the bare replay; CPU ms per contact of each (this
    process only: not PostgreSQL's, not the sandbox's)."""

    rate: float
    floor: float
    cpu_ms: float
    floor_cpu_ms: float


def measure_bulk(platform, sandbox, count, *, confirm=False) -> dict:
    """The bulk path over the whole list against a bare replay of its own requests; with
    `confirm`, then the confirmation of what it left awaiting (before the replay resets the
    sandbox)."""
    from contacts.models import Contact
    from sync.connectors.base import outbound_session
    from sync.models import SyncAttempt

    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:count])
    recorder = RecordingAdapter()
    _engine_run(_fresh(platform, sandbox), ids, recorder=recorder)  # records the requests
    cpu = time.process_time()
    seconds = _engine_run(_fresh(platform, sandbox), ids)
    cpu = time.process_time() - cpu  # this process only: not PostgreSQL's, not the sandbox's
    Outcome = SyncAttempt.Outcome
    took = (Outcome.CREATED, Outcome.UPDATED, Outcome.ACCEPTED, Outcome.AWAITING)
    accepted = SyncAttempt.objects.filter(outcome__in=took).count()
    confirmed = measure_confirm(platform) if confirm else None
    sandbox.reset()
    session = outbound_session()
    # The requests that carry the bulk bodies. Reads inside the push (Yespo's import status)
    # name sessions of the recorded run, which a replay cannot know: left out, so the floor
    # is if anything faster than the work the engine has to do.
    bodies = [r for r in recorder.requests if r.body]
    statuses = Counter()
    started = time.perf_counter()
    for prepared in bodies:
        answer = session.send(prepared, timeout=60)
        _ = answer.content
        statuses[answer.status_code] += 1
    floor_seconds = time.perf_counter() - started
    if any(status >= 300 for status in statuses):
        raise RuntimeError(f"the replay was refused: {dict(statuses)}")
    return {
        "rate": accepted / seconds,
        "floor": count / floor_seconds,
        "accepted": accepted,
        "requests": len(recorder.requests),
        "replayed": len(bodies),
        "cpu_ms": 1000 * cpu / count,
        "confirm": confirmed,
    }


def measure_confirm(platform, sample=CONFIRM_SAMPLE):
    """After a bulk run: confirm a sample of what the platform took awaiting confirmation,
    as a worker does (the destination's own rate limit, the platform's default: a read-back
    is one request per contact, and the sandbox refuses reads beyond the vendor's limit).
    (confirmed, seconds, how) or (0, None, why not)."""
    from sync import services
    from sync.engine import destination_connector
    from sync.models import ContactSyncState, Destination, SyncStatus

    destination = Destination.objects.get(platform=platform)
    awaiting = list(
        ContactSyncState.objects.filter(destination=destination, status=SyncStatus.AWAITING)
        .order_by("contact_id")
        .values_list("contact_id", flat=True)
    )
    if not awaiting:
        return 0, None, "none awaiting: the platform confirmed each contact inside the bulk push"
    Destination.objects.filter(pk=destination.pk).update(rate_limit=None)
    destination.refresh_from_db()
    connector = destination_connector(destination=destination, quick_retries=2)
    context = services.PushContext(trigger="command")
    started = time.perf_counter()
    services.contacts_confirm(
        contact_ids=awaiting[:sample], destination=destination, context=context, connector=connector
    )
    seconds = time.perf_counter() - started
    synced = ContactSyncState.objects.filter(
        destination=destination, contact_id__in=awaiting[:sample], status=SyncStatus.SYNCED
    ).count()
    return (
        synced,
        seconds,
        f"read-back of {min(sample, len(awaiting))} of the {len(awaiting)} awaiting contacts "
        f"at {destination.effective_rate_limit:g} requests/s",
    )


class RecordingAdapter:
    """Wraps the default adapter and keeps a copy of every prepared request."""

    def __new__(cls):
        from requests.adapters import HTTPAdapter

        class _Recording(HTTPAdapter):
            requests: list = []

            def send(self, request, **kwargs):
                self.requests.append(request.copy())
                return super().send(request, **kwargs)

        adapter = _Recording()
        adapter.requests = []
        return adapter


if __name__ == "__main__":
    main()
