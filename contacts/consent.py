"""The consent ledger's one writer (issue 14, item 5's core).

Every consent change of a contact, from a person in the admin, an import, a platform event or
a poll, goes through `consent_record`: it writes a `ConsentEntry` and, when the change is the
latest known for that channel, sets the contact's status. Ordering is by the change's own
time, not by when it reached us; on a tie an opt-out wins (shared/inbound.md part A). This
module knows nothing of `sync`: a platform is named by the caller, as a source label.
"""

import datetime

from django.db import transaction
from django.db.models import Max

from contacts import bulk
from contacts.models import (
    OPT_IN_STATUSES,
    ConsentEntry,
    Contact,
    EmailStatus,
    MailingListSubscription,
    SmsStatus,
)

LIST_PREFIX = "list:"
# A channel's ledger status -> the contact's own field value. A bounce on SMS is SMS "failed".
STATUS_FIELDS = {
    "email": ("email_status", {s.value for s in EmailStatus}, {}),
    "sms": ("sms_status", {s.value for s in SmsStatus}, {"bounced": SmsStatus.FAILED}),
}


def list_channel(mailing_list_id: int) -> str:
    return f"{LIST_PREFIX}{mailing_list_id}"


def _supersedes(new_status: str, new_time, latest: ConsentEntry | None) -> bool:
    """Whether a change at `new_time` is the latest: later than the latest applied entry, or
    equal to it and an opt-out (an opt-out wins a tie), or equal and both opt-ins."""
    if latest is None or new_time > latest.occurred_at:
        return True
    if new_time < latest.occurred_at:
        return False
    return new_status not in OPT_IN_STATUSES or latest.is_opt_in


def consent_record(
    *,
    contact: Contact,
    channel: str,
    status: str,
    source: str,
    occurred_at: datetime.datetime,
    source_label: str = "",
    detail: str = "",
    previous_status: str | None = None,
) -> bool:
    """Record one consent change and apply it when it is the latest for the channel.

    `channel` is "email", "sms", "push" or `list_channel(id)`; `status` is the channel's
    status word ("subscribed", "unsubscribed", "bounced", "no_marketing", ...). Returns True
    when applied (the contact's status now says so; "push" has no field of its own, so its
    latest entry is its status), False when a later change was already known (the entry is
    kept, marked not applied). The contact row is locked while deciding, so two changes of
    one contact never both win.

    `previous_status`: the channel's status before the change, for the timeline; by default
    the contact's status as it stands (callers that saved the new value already, the admin
    and imports, pass the value they replaced)."""
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        latest = (
            ConsentEntry.objects.filter(contact=locked, channel=channel, applied=True)
            .order_by("-occurred_at", "-id")
            .first()
        )
        if previous_status is None:
            previous_status = _current_status(locked, channel, latest)
        applied = _supersedes(status, occurred_at, latest)
        ConsentEntry.objects.create(
            contact=locked,
            channel=channel,
            status=status,
            previous_status=previous_status[:20],
            source=source,
            source_label=source_label[:150],
            occurred_at=occurred_at,
            applied=applied,
            detail=detail[:300],
        )
        if applied:
            _apply(locked, channel, status, f"{source_label or source}: {channel} {status}")
    if applied:
        contact.refresh_from_db()
    return applied


def _current_status(contact: Contact, channel: str, latest: ConsentEntry | None) -> str:
    """The channel's status now: the contact's field, its list subscription, or (push, which
    has no field) the latest applied entry; "" when unknown."""
    if channel in STATUS_FIELDS:
        return getattr(contact, STATUS_FIELDS[channel][0])
    if channel.startswith(LIST_PREFIX):
        subscribed = (
            MailingListSubscription.objects.filter(
                contact=contact, mailing_list_id=int(channel.removeprefix(LIST_PREFIX))
            )
            .values_list("subscribed", flat=True)
            .first()
        )
        if subscribed is not None:
            return "subscribed" if subscribed else "unsubscribed"
    return latest.status if latest is not None else ""


def _apply(contact: Contact, channel: str, status: str, reason: str) -> None:
    if channel in STATUS_FIELDS:
        field, allowed, translated = STATUS_FIELDS[channel]
        value = translated.get(status, status)
        if value in allowed and getattr(contact, field) != value:
            setattr(contact, field, value)
            contact._change_reason = reason  # shown on the contact's history page
            contact.save(update_fields=[field])
    elif channel.startswith(LIST_PREFIX):
        subscribed = status in OPT_IN_STATUSES
        row = MailingListSubscription.objects.filter(
            contact=contact, mailing_list_id=int(channel.removeprefix(LIST_PREFIX))
        ).first()
        if row is not None and row.subscribed != subscribed:
            row.subscribed = subscribed
            row._change_reason = reason
            row.save()


def consent_record_changes(
    *,
    contact: Contact,
    before: dict[str, str],
    source: str,
    source_label: str,
    now: datetime.datetime,
) -> None:
    """`contact` was saved by a person (the admin) or an import: record its email and SMS
    statuses that changed (or all, on an add: `before` empty) as consent changes of that
    source, each with the value it replaced."""
    for channel, (field, _, _) in STATUS_FIELDS.items():
        value = getattr(contact, field)
        if before.get(field) != value:
            consent_record(
                contact=contact,
                channel=channel,
                status=value,
                source=source,
                occurred_at=now,
                source_label=source_label,
                previous_status=before.get(field, ""),
            )


def consent_record_bulk_changes(
    *,
    changes: list[tuple[Contact, dict[str, str]]],
    source: str,
    source_label: str,
    now: datetime.datetime,
) -> int:
    """What `consent_record_changes` records for each (contact, before) pair, for many
    contacts written at once (a background import's chunk), in two statements: the latest
    applied change of each channel, then one insert. The contacts' fields hold the new values
    already, as after a save; an entry is applied unless a later change of its channel is
    known (a platform's clock ahead of ours), and then, as on the per-row path, the field
    keeps the written value. Returns how many entries were written."""
    pending = [
        (contact, channel, getattr(contact, field), before.get(field, ""))
        for contact, before in changes
        for channel, (field, _, _) in STATUS_FIELDS.items()
        if before.get(field) != getattr(contact, field)
    ]
    if not pending:
        return 0
    latest = {
        (row["contact_id"], row["channel"]): row["last"]
        for row in ConsentEntry.objects.filter(
            contact_id__in={contact.pk for contact, *_ in pending},
            channel__in=list(STATUS_FIELDS),
            applied=True,
        )
        .values("contact_id", "channel")
        .annotate(last=Max("occurred_at"))
    }
    # contacts.bulk's insert of plain values, not bulk_create: its per-value compilation, and
    # then building a ConsentEntry per entry, were the larger part of the ledger's write
    source_label = source_label[:150]
    bulk.values_insert(
        model=ConsentEntry,
        rows=[
            {
                "contact_id": contact.pk,
                "channel": channel,
                "status": status,
                "previous_status": previous[:20],
                "source": source,
                "source_label": source_label,
                "occurred_at": now,
                "applied": latest.get((contact.pk, channel), now) <= now,
            }
            for contact, channel, status, previous in pending
        ],
    )
    return len(pending)


def consent_record_admin_change(
    *, contact: Contact, before: dict[str, str], user_label: str, now: datetime.datetime
) -> None:
    """The admin saved `contact`: its changed statuses are a person's consent changes."""
    consent_record_changes(
        contact=contact, before=before, source="admin", source_label=user_label, now=now
    )
