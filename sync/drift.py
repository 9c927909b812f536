"""Read-back and drift, worker side: read contacts back from one destination's platform and
compare them field by field with what we would send now (sync.connectors.readback).

Each contact is read with its connector's `read_contact`, through the destination's shared rate
limit (and its call classes), outside any transaction; the differences are written per contact
and destination (`ContactDrift`) in short transactions. Only fields the connector can read and
this destination sends, with the write rule "always", are compared: the others are unknown,
never drift. A contact the platform does not hold is drift ("missing") only where our state
says the platform holds it: the platform accepted a version of it (not a never-pushed contact,
not an update-only skip, which forgets what was held). An accepted push removes the contact's
drift row (sync.engine). `sync.services` queues this work; this module queues nothing.
"""

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from sync import consent, selectors
from sync.connectors.base import ConnectorConfigurationError, ConnectorError
from sync.dbretry import with_database_retry
from sync.engine import destination_connector, destination_pause
from sync.models import ContactDrift, ContactSyncState, Destination

logger = logging.getLogger(__name__)
WRITE_EVERY = 50  # contacts whose drift is written per transaction
QUICK_RETRIES = 2


@dataclass
class ReconcileReport:
    """What one reconcile of one destination found, and what it cost."""

    destination: str
    checked: int = 0
    drifted: int = 0
    missing: int = 0
    failed: int = 0
    requests: int = 0
    seconds: float = 0.0
    fields: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stopped: str = ""  # why it stopped early (the destination paused)

    def lines(self) -> list[str]:
        found = ", ".join(f"{name} {count}" for name, count in self.fields.most_common())
        lines = [
            f"{self.destination}: {self.checked} contacts read back in {self.requests} requests, "
            f"{self.seconds:.2f} s",
            f"drifted: {self.drifted}" + (f" ({found})" if found else ""),
            f"missing on the platform: {self.missing}",
            f"could not be read: {self.failed}",
        ]
        lines += [f"  {error}" for error in self.errors[:5]]
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return lines


@dataclass
class _Found:
    contact_id: int
    fields: list[str]
    missing: bool = False


def contacts_reconcile(*, destination: Destination, contact_ids: list[int]) -> ReconcileReport:
    """Read back these contacts from the destination's platform and store their drift. A
    401/403 pauses the destination and stops the pass; any other failed read counts as "could
    not be read" and leaves that contact's drift as it was."""
    report = ReconcileReport(str(destination))
    started = time.monotonic()
    try:
        # a worker or a command, never a person's request: short waits the platform asks for
        # (429 with Retry-After) are taken here rather than counted as unread contacts
        connector = destination_connector(destination=destination, quick_retries=QUICK_RETRIES)
    except ConnectorConfigurationError as err:
        report.stopped = str(err)
        return report
    compared = connector.compared_fields()
    states = {
        s.contact_id: s
        for s in ContactSyncState.objects.filter(
            destination=destination, contact_id__in=contact_ids
        )
    }
    found: list[_Found] = []
    # compared with what we would send there: the statuses the consent guard allows
    records = consent.records_guard(
        records=selectors.contact_records(contact_ids), destination=destination
    )
    for record in records:
        if destination.marketing_consent_only and not record.gdpr_marketing_consent:
            continue  # we would send nothing: nothing to compare
        state = states.get(record.id)
        try:
            theirs = connector.read_contact(
                external_id=record.external_id,
                remote_id=(state.remote_id or None) if state else None,
            )
        except ConnectorError as err:
            if err.destination_wide:
                destination_pause(destination=destination, error=str(err))
                report.stopped = str(err)
                break
            report.failed += 1
            report.errors.append(f"{record.external_id}: {err}")
            continue
        finally:
            report.requests += len(connector.drain_exchanges())
        report.checked += 1
        if theirs is None:
            held = state is not None and bool(state.payload_hash)
            found.append(_Found(record.id, [], missing=held))
            report.missing += held
            continue
        differ = [name for name in compared if connector.field_differs(name, record, theirs)]
        found.append(_Found(record.id, differ))
        if differ:
            report.drifted += 1
            report.fields.update(differ)
        if len(found) >= WRITE_EVERY:
            with_database_retry(_write, destination, found)
            found = []
    with_database_retry(_write, destination, found)
    report.seconds = time.monotonic() - started
    return report


def _write(destination: Destination, found: list[_Found]) -> None:
    """Replace these contacts' drift rows in one short transaction (no row: no drift)."""
    if not found:
        return
    now = timezone.now()
    rows = [
        ContactDrift(
            contact_id=f.contact_id,
            destination=destination,
            fields=f.fields,
            missing=f.missing,
            checked_at=now,
        )
        for f in found
        if f.fields or f.missing
    ]
    with transaction.atomic():
        ContactDrift.objects.filter(
            destination=destination, contact_id__in=[f.contact_id for f in found]
        ).delete()
        ContactDrift.objects.bulk_create(rows)
