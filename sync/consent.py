"""Consent on the way out (issue 14, item 5): what a push may say about a contact's consent,
and opt-outs from one platform carried to the others.

The contact's own fields say its latest consent status; the ledger
(`contacts.ConsentEntry`, written only by `contacts.consent.consent_record`) says who changed
it, when, and where from. Before a push is built, the engine passes the chunk's records
through `records_guard`, which reads the chunk's ledger in one query and decides, per
destination, the status each channel (email, SMS, every mailing list) may be sent with:

- **Never a subscribe older than the latest opt-out.** An opt-in counts for a destination
  only when it was made here by a person (the admin) or an import, or came from that
  destination's own platform (its person resubscribed there: we may say back what it holds).
  An opt-in from another platform re-subscribes nobody elsewhere. The statuses are folded in
  the order the changes happened (on a tie the opt-out comes last, so it wins), entries not
  applied here included: a late opt-out from Yespo stays an opt-out for Yespo even when a
  later resubscribe on Loops won our contact's field.
- **Opt-outs from other platforms** count for a destination only while its setting "apply
  opt-outs from other platforms" is on (default). Off, that platform keeps its own consent:
  its view of the ledger leaves the other platforms' entries out.
- A status changed outside the ledger (the field no longer matches the latest applied entry)
  is the latest change: an opt-out there is sent as is, a subscribe still has to get past the
  ledger's opt-outs.

Each platform's own push turns the guarded status into its opt-out call: Loops
`subscribed: false` (and `true` only when a subscribe passed here and Loops last accepted
another status), Cendyn `channel_subscriptions` blacklisted, iVvy `status: 2`, Yespo its
unsubscribed-emails list (shared/inbound.md part A, "Opt-outs propagate"; part B x.5).

Propagation: `sync.inbound` sends `opt_out_applied` when a platform's opt-out changed our
contact; its receiver (sync.signals) records the platform it came from as holding that
opt-out (`origin_holds`) and has `sync.services.contact_opt_out_propagate` queue the contact's
push to every other enabled destination that applies other platforms' opt-outs
(`opt_out_targets`), as interactive work (ahead of bulk chunks).
"""

import dataclasses
from collections.abc import Iterable

import django.dispatch

from contacts.consent import LIST_PREFIX, STATUS_FIELDS
from contacts.models import OPT_IN_STATUSES, ConsentEntry, ConsentSource
from sync.connectors.records import ContactRecord
from sync.models import ContactSyncState, Destination

# Sources whose opt-in may re-subscribe every platform: a person here, or an import.
RESUBSCRIBING_SOURCES = frozenset({ConsentSource.ADMIN, ConsentSource.IMPORT})
PLATFORM_SOURCES = frozenset({ConsentSource.PLATFORM, ConsentSource.POLL})
SUBSCRIBED = "subscribed"

# Sent by sync.inbound when a platform's opt-out was applied to our contact; `destination`
# is where it came from.
opt_out_applied = django.dispatch.Signal()


@dataclasses.dataclass(frozen=True)
class LedgerRow:
    channel: str
    status: str
    previous_status: str
    source: str
    source_label: str
    occurred_at: object
    applied: bool
    id: int

    @property
    def is_opt_in(self) -> bool:
        return self.status in OPT_IN_STATUSES


LEDGER_COLUMNS = [f.name for f in dataclasses.fields(LedgerRow)]


# ---------------------------------------------------------------------------- the guard


def ledger_rows(contact_ids: Iterable[int]) -> dict[int, dict[str, list[LedgerRow]]]:
    """The ledger of these contacts in one query: contact id -> channel -> its entries in
    the order they happened (on equal times an opt-in before an opt-out, so the opt-out is
    the later one, as `consent_record` decides a tie)."""
    rows: dict[int, dict[str, list[LedgerRow]]] = {}
    values = ConsentEntry.objects.filter(contact_id__in=list(contact_ids)).values_list(
        "contact_id", *LEDGER_COLUMNS
    )
    for contact_id, *columns in values:
        row = LedgerRow(*columns)
        rows.setdefault(contact_id, {}).setdefault(row.channel, []).append(row)
    for channels in rows.values():
        for entries in channels.values():
            entries.sort(key=lambda r: (r.occurred_at, not r.is_opt_in, r.id))
    return rows


def _counts_for(row: LedgerRow, destination: Destination) -> bool:
    """Whether this change is part of the destination's view of the contact's consent."""
    if row.source in RESUBSCRIBING_SOURCES:
        return True
    own = row.source in PLATFORM_SOURCES and row.source_label == destination.name
    if own:  # the platform's own change (a platform names itself by its destination's name)
        return True
    if row.is_opt_in:
        return False  # another platform's opt-in re-subscribes nobody here
    return row.source not in PLATFORM_SOURCES or destination.apply_opt_outs_from_others


def channel_status(entries: list[LedgerRow], destination: Destination, current: str) -> str:
    """The status word a push to `destination` may send for one channel whose contact field
    says `current` (a ledger status: "subscribed", "unsubscribed", "bounced", ...)."""
    if not entries:
        return current
    applied = [row for row in entries if row.applied]
    latest = applied[-1] if applied else None
    if latest is not None and latest.status != current and current not in OPT_IN_STATUSES:
        return current  # an opt-out made outside the ledger, after it: always sent
    status = entries[0].previous_status or current
    for row in entries:
        if _counts_for(row, destination):
            status = row.status
    return status


def _field_value(channel: str, status: str) -> str:
    """A ledger status as the contact's field for the channel holds it (an SMS bounce is
    "failed"); an opt-out word the field has no choice for is "unsubscribed"."""
    _, allowed, translated = STATUS_FIELDS[channel]
    value = translated.get(status, status)
    if value in allowed:
        return value
    return SUBSCRIBED if status in OPT_IN_STATUSES else "unsubscribed"


def _ledger_status(channel: str, value: str) -> str:
    """The contact's field value as a ledger status (SMS "failed" is a bounce)."""
    _, _, translated = STATUS_FIELDS[channel]
    reverse = {str(v): k for k, v in translated.items()}
    return reverse.get(value, value)


def record_guard(
    record: ContactRecord, channels: dict[str, list[LedgerRow]], destination: Destination
) -> ContactRecord:
    """The record as a push to `destination` may send it: each status and list subscription
    replaced by what the ledger allows there (see the module docstring)."""
    if not channels:
        return record
    changes = {}
    for channel, (field, _, _) in STATUS_FIELDS.items():
        current = getattr(record, field)
        allowed = channel_status(
            channels.get(channel, []), destination, _ledger_status(channel, current)
        )
        value = _field_value(channel, allowed)
        if value != current:
            changes[field] = value
    subscriptions = dict(record.subscriptions)
    for list_id, subscribed in record.subscriptions.items():
        entries = channels.get(f"{LIST_PREFIX}{list_id}")
        if entries:
            current = SUBSCRIBED if subscribed else "unsubscribed"
            subscriptions[list_id] = channel_status(entries, destination, current) == SUBSCRIBED
    if subscriptions != record.subscriptions:
        changes["subscriptions"] = subscriptions
    return dataclasses.replace(record, **changes) if changes else record


def records_guard(*, records: list[ContactRecord], destination: Destination) -> list[ContactRecord]:
    """The chunk's records as a push to `destination` may send them (one query)."""
    ledger = ledger_rows(record.id for record in records if record.id is not None)
    if not ledger:
        return records
    return [record_guard(record, ledger.get(record.id, {}), destination) for record in records]


# ----------------------------------------------------------------------- propagation


def opt_out_targets(*, destination_id: int | None) -> list[Destination]:
    """The destinations an opt-out from `destination_id` is carried to: every other enabled
    one whose "apply opt-outs from other platforms" is on."""
    return list(
        Destination.objects.filter(enabled=True, apply_opt_outs_from_others=True).exclude(
            pk=destination_id
        )
    )


def origin_holds(*, contact_id: int, destination_id: int, channel: str, status: str) -> None:
    """The platform that reported an email opt-out holds it now, whatever we last pushed
    there: its sync state says so (`accepted_email_status`), so that a later re-subscribe here
    is sent to it as one (Loops' `subscribed: true`, Yespo's list removal) and nothing else
    is."""
    if channel != "email":
        return
    ContactSyncState.objects.filter(destination_id=destination_id, contact_id=contact_id).update(
        accepted_email_status=_field_value("email", status)
    )
