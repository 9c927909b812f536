"""Reads for the sync engine: contacts as records, a destination's mappings."""

from collections.abc import Iterable, Iterator

from django.db.models import Prefetch, QuerySet

from contacts.models import Contact, CustomFieldValue
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    ExternalUrlRecord,
    MappingRecord,
)
from sync.models import Destination

RECORD_FIELDS = [
    "id", "external_id", "first_name", "last_name", "email", "phone", "language", "time_zone",
    "address_line", "city", "region", "country", "postal_code", "birth_date", "gender",
    "email_status", "sms_status", "privacy_consent", "gdpr_marketing_consent", "terms_accepted",
    "consent_date", "consent_ip", "last_latitude", "last_longitude", "user_group",
    "content_version",
]


def contacts_for_records(queryset: QuerySet[Contact]) -> QuerySet[Contact]:
    """The queryset with every child prefetched: a constant number of queries per chunk."""
    return queryset.prefetch_related(
        "channels",
        Prefetch("custom_values", queryset=CustomFieldValue.objects.select_related("definition")),
        "memberships",
        "subscriptions",
        "external_urls",
    )


def contact_record(contact: Contact) -> ContactRecord:
    """A snapshot of a contact whose children are prefetched (or loaded on access)."""
    values = {name: getattr(contact, name) for name in RECORD_FIELDS}
    return ContactRecord(
        **values,
        tags=tuple(contact.tags or ()),
        channels=tuple(ChannelRecord(c.type, c.value) for c in contact.channels.all()),
        custom_values=tuple(
            CustomValueRecord(v.definition.name, v.definition.type, v.value)
            for v in contact.custom_values.all()
        ),
        group_ids=frozenset(m.group_id for m in contact.memberships.all()),
        subscriptions={s.mailing_list_id: s.subscribed for s in contact.subscriptions.all()},
        external_urls=tuple(
            ExternalUrlRecord(u.ref, u.url, u.label) for u in contact.external_urls.all()
        ),
    )


def contact_records(contact_ids: Iterable[int]) -> Iterator[ContactRecord]:
    queryset = contacts_for_records(Contact.objects.filter(pk__in=list(contact_ids)))
    for contact in queryset.order_by("pk"):
        yield contact_record(contact)


def destination_mapping(destination: Destination) -> MappingRecord:
    fields = {
        m.source_key: m.remote_field
        for m in destination.field_mappings.select_related("custom_field")
    }
    groups, lists = {}, {}
    for m in destination.list_mappings.all():
        if m.group_id:
            groups[m.group_id] = m.remote_list
        else:
            lists[m.mailing_list_id] = m.remote_list
    return MappingRecord(fields=fields, groups=groups, mailing_lists=lists)


def contact_sync_panel(contact: Contact) -> dict:
    """Per destination: the contact's sync state and its last five attempts (three queries)."""
    from django.db.models import F, Window
    from django.db.models.functions import RowNumber

    from sync.models import ContactSyncState, SyncAttempt

    destinations = list(Destination.objects.order_by("name"))
    states = {s.destination_id: s for s in ContactSyncState.objects.filter(contact=contact)}
    recent = (
        SyncAttempt.objects.filter(contact=contact)
        .annotate(rank=Window(RowNumber(), partition_by=[F("destination_id")],
                              order_by=[F("started_at").desc(), F("id").desc()]))
        .filter(rank__lte=5)
        .order_by("destination_id", "-started_at", "-id")
    )
    attempts: dict[int, list] = {}
    for attempt in recent:
        attempts.setdefault(attempt.destination_id, []).append(attempt)
    rows = [
        {"destination": d, "state": states.get(d.pk), "attempts": attempts.get(d.pk, [])}
        for d in destinations
    ]
    active = any(
        row["state"] and row["state"].status in ("pending", "in_progress") for row in rows
    )
    return {"contact": contact, "rows": rows, "active": active}
