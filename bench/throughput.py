"""Benchmark 1: the engine's throughput per platform against a bare HTTP loop.

    .venv/bin/python bench/throughput.py [--contacts 300]
    bin/with-postgres .venv/bin/python bench/throughput.py      # on PostgreSQL

For each platform, against the sandbox with no latency and no rate limit:
- engine: contacts/s of `push_contacts` run in this process (claim, build, send, record);
- floor: contacts/s of a bare loop replaying the very same HTTP requests (lookups included,
  payloads prebuilt, recorded from an engine run) through one requests.Session.
Prints engine/floor (target >= 0.7 for per-contact platforms) and, for a platform with a bulk
endpoint (bench/common.py `platform_with`), its batch path over its per-contact path (target
>= 10).
"""

import argparse
import time

from common import (
    SandboxProcess,
    connector_class,
    make_destination,
    platform_with,
    sandbox_credentials_env,
    setup_django,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--batch-contacts", type=int, default=5000)
    args = parser.parse_args()
    setup_django()
    sandbox_credentials_env()
    from contacts.demo import seed_demo_contacts
    from sync import connectors

    sandbox = SandboxProcess(rate_limits=False)
    try:
        seed_demo_contacts(max(args.contacts, args.batch_contacts))
        print(f"{'platform':<12} {'engine/s':>9} {'floor/s':>9} {'ratio':>6}   (n={args.contacts})")
        per_contact = {}
        for platform in connectors.CONNECTORS:
            engine_rate, floor_rate = measure_platform(platform, sandbox, args.contacts)
            per_contact[platform] = engine_rate
            print(
                f"{connector_class(platform).label:<12} {engine_rate:>9.1f} {floor_rate:>9.1f} "
                f"{engine_rate / floor_rate:>6.2f}"
            )
        bulk = platform_with(bulk=True)
        batch_rate = measure_batch(bulk, sandbox, args.batch_contacts)
        print(
            f"{connector_class(bulk).label} batch path: {batch_rate:.0f} contacts/s "
            f"(n={args.batch_contacts}) = {batch_rate / per_contact[bulk]:.1f} x its per-contact "
            "path"
        )
    finally:
        sandbox.stop()


def _fresh(platform, sandbox):
    from sync.models import ContactSyncState, Destination, SyncAttempt

    sandbox.control("reset", {})
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
    engine_seconds = _engine_run(_fresh(platform, sandbox), ids, single=True)
    sandbox.control("reset", {})
    session = outbound_session()  # configured as the engine's: no per-call environment scan
    started = time.perf_counter()
    for prepared in recorder.requests:
        _ = session.send(prepared, timeout=10).content  # read the whole answer, as we do
    floor_seconds = time.perf_counter() - started
    return count / engine_seconds, count / floor_seconds


def measure_batch(platform, sandbox, count):
    from contacts.models import Contact

    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[:count])
    seconds = _engine_run(_fresh(platform, sandbox), ids)
    return count / seconds


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
