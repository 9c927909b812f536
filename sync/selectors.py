"""Reads for the sync engine: contacts as records, a destination's mappings; and for people:
the contact's sync panel, the dashboard, a destination's mapping history."""

import time
from collections.abc import Iterable
from datetime import UTC, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Window
from django.db.models.functions import RowNumber, TruncHour
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from contacts.models import (
    Channel,
    Contact,
    CustomFieldValue,
    ExternalUrl,
    GroupMembership,
    MailingListSubscription,
)
from sync import connectors
from sync.connectors.inbound import EventKind
from sync.connectors.records import (
    ChannelRecord,
    ContactRecord,
    CustomValueRecord,
    ExternalUrlRecord,
    MappingRecord,
)
from sync.models import (
    ContactDrift,
    ContactSyncState,
    Destination,
    FieldMapping,
    InboundAlert,
    InboundEvent,
    InboundPerHour,
    InboundRefusal,
    ListMapping,
    NativeFieldRule,
    PushesPerHour,
    RateLimitSlot,
    SyncAttempt,
    SyncRun,
    SyncStatus,
    SyncStatusCount,
    SyncStatusCountDelta,
    WorkerHeartbeat,
)
from sync.ratelimit import RESERVE_SECONDS
from sync.sqlids import IdIn

Outcome = SyncAttempt.Outcome

RECORD_FIELDS = [
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "language",
    "time_zone",
    "address_line",
    "city",
    "region",
    "country",
    "postal_code",
    "birth_date",
    "gender",
    "email_status",
    "sms_status",
    "privacy_consent",
    "gdpr_marketing_consent",
    "terms_accepted",
    "consent_date",
    "consent_ip",
    "last_latitude",
    "last_longitude",
    "user_group",
    "content_version",
]


def contact_records(contact_ids: Iterable[int]) -> list[ContactRecord]:
    """Snapshots of these contacts with their children, ordered by id, in six queries whatever
    their number. Rows are read as plain values and each child row becomes its record once,
    as it is read: building model instances and prefetch querysets would cost more than the
    push itself on a bulk path."""
    ids = list(contact_ids)
    channels = _by_contact(
        Channel.objects.filter(IdIn(F("contact_id"), ids))
        .order_by("pk")
        .values_list("contact_id", "type", "value"),
        ChannelRecord,
    )
    custom = _by_contact(
        CustomFieldValue.objects.filter(IdIn(F("contact_id"), ids))
        .order_by("pk")
        .values_list("contact_id", "definition__name", "definition__type", "value"),
        CustomValueRecord,
    )
    groups = _by_contact(
        GroupMembership.objects.filter(IdIn(F("contact_id"), ids)).values_list(
            "contact_id", "group_id"
        )
    )
    lists = _by_contact(
        MailingListSubscription.objects.filter(IdIn(F("contact_id"), ids)).values_list(
            "contact_id", "mailing_list_id", "subscribed"
        )
    )
    urls = _by_contact(
        ExternalUrl.objects.filter(IdIn(F("contact_id"), ids))
        .order_by("pk")
        .values_list("contact_id", "ref", "url", "label"),
        ExternalUrlRecord,
    )
    rows = Contact.objects.filter(IdIn(F("pk"), ids)).order_by("pk")
    records = []
    for row in rows.values_list(*RECORD_FIELDS, "tags"):
        contact_id = row[0]
        records.append(
            ContactRecord(
                **dict(zip(RECORD_FIELDS, row[:-1], strict=True)),
                tags=tuple(row[-1] or ()),
                channels=tuple(channels.get(contact_id, ())),
                custom_values=tuple(custom.get(contact_id, ())),
                group_ids=frozenset(group_id for (group_id,) in groups.get(contact_id, ())),
                subscriptions=dict(lists.get(contact_id, ())),
                external_urls=tuple(urls.get(contact_id, ())),
            )
        )
    return records


def _by_contact(rows, record=None) -> dict[int, list]:
    """Child rows (the contact's id first) by contact id: each the `record` made of the rest
    of its row, or that rest as a tuple."""
    grouped: dict[int, list] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(record(*row[1:]) if record else row[1:])
    return grouped


def destination_mapping(destination: Destination) -> MappingRecord:
    field_mappings = list(destination.field_mappings.select_related("custom_field"))
    fields = {m.source_key: m.remote_field for m in field_mappings}
    rules = {r.field: r.write_rule for r in destination.native_field_rules.all()}
    rules.update({m.source_key: m.write_rule for m in field_mappings})
    rules = {key: rule for key, rule in rules.items() if rule != "always"}
    groups, lists = {}, {}
    for m in destination.list_mappings.all():
        if m.group_id:
            groups[m.group_id] = m.remote_list
        else:
            lists[m.mailing_list_id] = m.remote_list
    return MappingRecord(fields=fields, groups=groups, mailing_lists=lists, write_rules=rules)


def destination_inbound_url(destination: Destination) -> str:
    """The URL the platform sends events to, built from SYNC_PUBLIC_URL ("" without it: no
    webhook can reach us)."""
    base = settings.SYNC_PUBLIC_URL.rstrip("/")
    if not base or not destination.inbound_token:
        return ""
    return base + reverse("sync_inbound", kwargs={"token": destination.inbound_token})


def destination_inbound_summary(destination: Destination) -> dict:
    """What the destination page shows of inbound events: the URL (or why there is none),
    the platform's registration steps, the setup state, the last event received, events by
    processing state and refused deliveries by reason."""
    cls = destination.connector_class
    url = destination_inbound_url(destination)
    state = destination.inbound_state or {}
    events = InboundEvent.objects.filter(destination=destination)
    last = events.order_by("-received_at", "-id").first()
    verifier = cls.inbound
    if verifier is None:
        setup = f"{cls.label} sends no events we can take."
    elif not url:
        setup = "No public URL (SYNC_PUBLIC_URL is not set): webhooks cannot reach us."
    elif verifier.registers_by_api and not state.get("topic"):
        setup = "Not registered yet."
    elif verifier.registers_by_api and not state.get("confirmed_at"):
        setup = f"Registered {state.get('registered_at', '')}; awaiting the confirmation."
    elif verifier.registers_by_api:
        setup = f"Registered and confirmed {state.get('confirmed_at', '')}."
    elif last is None:
        setup = "Registered by hand in the platform: nothing received yet."
    else:
        setup = "Receiving."
    missing = [
        f"{c.label} ({c.field})"
        for name, c in cls.inbound_credentials.items()
        if not getattr(destination, c.field)
    ]
    return {
        "url": url,
        "steps": verifier.registration_steps(url or "<inbound URL>") if verifier else [],
        "setup": setup,
        "missing_credentials": missing,
        "registers_by_api": bool(verifier and verifier.registers_by_api),
        "last_event": last,
        "states": destination_inbound_states(destination_id=destination.pk),
        "refusals": list(InboundRefusal.objects.filter(destination=destination).order_by("reason")),
        "last_by_type": destination_inbound_last_by_type(destination_id=destination.pk),
        "alerts": list(
            InboundAlert.objects.filter(destination=destination, active=True).order_by("kind")
        ),
    }


STATES_HOURS = 24
# States that need a person, counted whatever their age (few, from a partial index).
OPEN_STATES = [InboundEvent.State.PENDING, InboundEvent.State.FAILED]


def destination_inbound_states(*, destination_id: int, now=None) -> dict:
    """Events by processing state: "recent", {state: n} of those received in the last 24
    hours, and "open", {state: n} of those pending or failed whatever their age. Two
    queries, each a range of an index: a lifetime count by state would read every event of
    the destination (half a second at 500,000)."""
    now = now or timezone.now()
    events = InboundEvent.objects.filter(destination_id=destination_id).order_by()
    recent = events.filter(received_at__gte=now - timedelta(hours=STATES_HOURS))
    return {
        "hours": STATES_HOURS,
        "recent": dict(recent.values_list("state").annotate(n=Count("id"))),
        "open": dict(
            events.filter(state__in=OPEN_STATES).values_list("state").annotate(n=Count("id"))
        ),
    }


def destination_inbound_last_by_type(*, destination_id: int) -> list[dict]:
    """Per type of event (what it means here: unsubscribed, hard bounce, ...): when the last
    one was received and the platform's own name for it (e.g. `email.hardBounced`), newest
    first. A query per type (eight), each the newest row of an index range, so the page
    costs the same at any number of events."""
    rows = []
    for kind, label in EventKind.CHOICES:
        # The (destination, kind, received_at) index answers it; on PostgreSQL the planner
        # is told so by statistics on the two columns together (migration 0018).
        last = (
            InboundEvent.objects.filter(destination_id=destination_id, kind=kind)
            .order_by("-received_at")
            .values("raw_type", "received_at")
            .first()
        )
        if last is not None:
            name = last["raw_type"] or label
            rows.append({"type": name, "kind": label, "last": last["received_at"]})
    return sorted(rows, key=lambda row: row["last"], reverse=True)


def contact_sync_panel(contact: Contact) -> dict:
    """Per destination: the contact's sync state, its last five attempts and what the last
    read-back found drifted (four queries)."""
    destinations = list(Destination.objects.order_by("name"))
    states = {s.destination_id: s for s in ContactSyncState.objects.filter(contact=contact)}
    recent = (
        SyncAttempt.objects.filter(contact=contact)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("destination_id")],
                order_by=[F("started_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=5)
        .order_by("destination_id", "-started_at", "-id")
    )
    attempts: dict[int, list] = {}
    for attempt in recent:
        attempts.setdefault(attempt.destination_id, []).append(attempt)
    drifts = {d.destination_id: d for d in ContactDrift.objects.filter(contact=contact)}
    rows = [
        {
            "destination": d,
            "state": states.get(d.pk),
            "attempts": attempts.get(d.pk, []),
            "drift": drifts.get(d.pk),
        }
        for d in destinations
    ]
    active = any(
        row["state"] and row["state"].status in (SyncStatus.PENDING, SyncStatus.IN_PROGRESS)
        for row in rows
    )
    return {"contact": contact, "rows": rows, "active": active}


# ----------------------------------------------------------------------------- dashboard


def dashboard(now=None) -> dict:
    """Everything the managers' dashboard shows, in a fixed number of aggregate queries
    (no query per contact or per attempt)."""
    now = now or timezone.now()
    last_push = SyncAttempt.objects.filter(destination=OuterRef("pk")).order_by("-started_at")
    destinations = list(
        Destination.objects.order_by("name").annotate(
            last_push=Subquery(last_push.values("started_at")[:1])
        )
    )
    total_contacts = Contact.objects.count()
    counts, errors = state_counts()
    # Hourly pushes over the week: the charts, and the trend (the last 24 h against the 24 h
    # before).
    hourly = pushes_per_hour(destination_ids=[d.pk for d in destinations], now=now)
    drifted: dict[int, dict[str, int]] = {}
    for row in ContactDrift.objects.values("destination_id", "missing").annotate(n=Count("id")):
        key = "missing" if row["missing"] else "drifted"
        drifted.setdefault(row["destination_id"], {})[key] = row["n"]
    rows = [
        {
            **_destination_row(
                d,
                counts.get(d.pk, {}),
                hourly.get(d.pk, {}),
                errors.get(d.pk, []),
                total_contacts,
                now,
            ),
            "drifted": drifted.get(d.pk, {}).get("drifted", 0),
            "missing": drifted.get(d.pk, {}).get("missing", 0),
        }
        for d in destinations
    ]
    return {
        "rows": rows,
        "paused": [d for d in destinations if d.paused_at],
        # one warning per destination whose probe found answers changed in shape
        "vendor_changes": [d for d in destinations if d.probe_warning],
        "runs": list(
            SyncRun.objects.filter(state=SyncRun.State.RUNNING).select_related(
                "destination", "user"
            )
        ),
        "queue_depth": DBTaskResult.objects.filter(status=TaskResultStatus.READY).count(),
        "workers": dashboard_workers(),
        "inbound": inbound_dashboard(destinations=destinations, now=now),
        "now": now,
    }


TOP_ERRORS = 5  # per destination, on the dashboard


def state_counts() -> tuple[dict[int, dict[str, int]], dict[int, list[dict]]]:
    """Sync states per destination and status, {destination_id: {status: n}}, and each
    destination's most frequent errors among its failed states, {destination_id: [{"message",
    "count"}]} (at most 5, most first), from the store the database's triggers keep
    (SyncStatusCount, migration 0021): its totals plus the deltas the scheduler has not
    folded in yet. One query over a few hundred rows, where counting the states reads all of
    them (2 s for 4,000,000, and the failed ones' errors another 0.6 s). One statement, so it
    sees the totals and the deltas of one moment, before or after a compaction, never half."""
    sql = (
        "SELECT destination_id, status, error, SUM(n) AS n FROM ("
        f" SELECT destination_id, status, error, n FROM {SyncStatusCount._meta.db_table}"
        " UNION ALL"
        f" SELECT destination_id, status, error, n FROM {SyncStatusCountDelta._meta.db_table}"
        ") AS counts GROUP BY destination_id, status, error ORDER BY n DESC, error"
    )
    counts: dict[int, dict[str, int]] = {}
    errors: dict[int, list[dict]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    for destination_id, status, error, n in rows:
        if not n:
            continue
        by_status = counts.setdefault(destination_id, {})
        by_status[status] = by_status.get(status, 0) + int(n)
        if status == SyncStatus.FAILED:
            top = errors.setdefault(destination_id, [])
            if len(top) < TOP_ERRORS:
                top.append({"message": error, "count": int(n)})
    return counts, errors


# ------------------------------------------------------------------- dashboard: inbound

INBOUND_CHART_HOURS = 48
OPT_OUT_DAYS = 7
# The opt-outs table's columns, in order: what the platforms told us people did.
OPT_OUT_KINDS = (
    EventKind.UNSUBSCRIBED,
    EventKind.HARD_BOUNCE,
    EventKind.COMPLAINT,
    EventKind.DELETED,
)


def inbound_dashboard(*, destinations: list[Destination], now) -> dict:
    """The dashboard's inbound part, in four queries whatever the number of events: the
    week's counts per destination and hour (stored hours, then the live ones, see
    `inbound_per_hour`) for the chart of events per hour and platform and the table of
    opt-outs per destination, and the inbound alerts raised now."""
    hourly = inbound_per_hour(destination_ids=[d.pk for d in destinations], now=now)
    return {
        "hour_chart": inbound_events_per_hour(destinations=destinations, now=now, hourly=hourly),
        "opt_outs": inbound_opt_outs(destinations=destinations, now=now, hourly=hourly),
        "alerts": list(
            InboundAlert.objects.filter(active=True)
            .select_related("destination")
            .order_by("destination__name", "kind")
        ),
        "opt_out_days": OPT_OUT_DAYS,
    }


def inbound_events_per_hour(*, destinations: list[Destination], now, hourly=None) -> dict:
    """Events received (verified and stored, whatever they meant) per UTC hour over the last
    48 hours, one series per platform that has a destination taking events, shown in the
    current time zone: {"labels": [...], "series": [{"platform", "label", "values",
    "total"}], "total": n}."""
    if hourly is None:
        hourly = inbound_per_hour(destination_ids=[d.pk for d in destinations], now=now)
    this_hour = _utc_hour(now)
    hours = [this_hour - timedelta(hours=h) for h in range(INBOUND_CHART_HOURS - 1, -1, -1)]
    series = []
    for platform in sorted({d.platform for d in destinations if _takes_events(d)}):
        ids = [d.pk for d in destinations if d.platform == platform]
        values = [sum(hourly.get(pk, {}).get(h, ZERO_COUNTS)[0] for pk in ids) for h in hours]
        label = connectors.CONNECTORS[platform].label
        series.append(
            {"platform": platform, "label": label, "values": values, "total": sum(values)}
        )
    return {
        "labels": [timezone.localtime(h).strftime("%a %H:00") for h in hours],
        "series": series,
        "total": sum(s["total"] for s in series),
    }


def inbound_opt_outs(*, destinations: list[Destination], now, hourly=None) -> list[dict]:
    """Per destination taking events: the unsubscribes, hard bounces, spam complaints and
    deletes its platform reported over the last 7 days (by the UTC hour we received them,
    the current one included), each counted once (`count_inbound`)."""
    if hourly is None:
        hourly = inbound_per_hour(destination_ids=[d.pk for d in destinations], now=now)
    since = _utc_hour(now) - timedelta(days=OPT_OUT_DAYS)
    rows = []
    for d in destinations:
        if not _takes_events(d):
            continue
        hours = [c for h, c in hourly.get(d.pk, {}).items() if h >= since]
        counts = [sum(c[i] for c in hours) for i in range(1, 1 + len(OPT_OUT_KINDS))]
        rows.append(
            {
                "destination": d,
                "platform": d.connector_class.label,
                "counts": counts,
                "total": sum(counts),
            }
        )
    return rows


ZERO_COUNTS = (0, 0, 0, 0, 0)


def inbound_per_hour(*, destination_ids: list[int], now) -> dict[int, dict]:
    """Per destination and UTC hour of the last week: (events, unsubscribes, hard bounces,
    complaints, deletes), as {destination_id: {hour: counts}}, hours with none left out.
    Settled hours come from InboundPerHour (stored by the scheduler,
    `services.inbound_per_hour_store`); from the first hour not stored on, they are counted
    from the events, a range of their received_at index. Two queries; a page view writes
    nothing."""
    since, settled, hours = week_hours(now)
    hourly, stored = stored_inbound(destination_ids=destination_ids, since=since, until=settled)
    live_from = first_unstored_hour(hours, stored, destination_ids) or settled
    for pk in hourly:
        hourly[pk] = {h: c for h, c in hourly[pk].items() if h < live_from}
    for (pk, h), counts in count_inbound(start=live_from, end=None).items():
        if pk in hourly:
            hourly[pk][h] = counts
    return hourly


def stored_inbound(*, destination_ids, since, until) -> tuple[dict[int, dict], set]:
    """The stored inbound hours in [since, until): their non-zero counts, and which are
    stored."""
    hourly: dict[int, dict] = {pk: {} for pk in destination_ids}
    stored = set()
    for destination_id, hour, *counts in InboundPerHour.objects.filter(
        destination_id__in=destination_ids, hour__gte=since, hour__lt=until
    ).values_list("destination_id", "hour", *InboundPerHour.COUNTS):
        stored.add((destination_id, hour))
        if any(counts):
            hourly[destination_id][hour] = tuple(counts)
    return hourly, stored


def count_inbound(*, start, end) -> dict[tuple[int, object], tuple]:
    """Per (destination, UTC hour) of events received in [start, end) (end None: up to now):
    (events, unsubscribes, hard bounces, complaints, deletes). One query.

    A platform may tell one thing a person did as several events: Loops documents a hard
    bounce as `email.hardBounced` and `contact.unsubscribed`, a delete as `contact.deleted`
    and `contact.unsubscribed` (shared/inbound.md 5.4). An unsubscribe that comes with a
    bounce, complaint or delete of the same person (same platform id, external ID and email)
    at the same moment on the same destination is that fan-out: it is not counted again (all
    events are, in the first count)."""
    companion = InboundEvent.objects.filter(
        destination_id=OuterRef("destination_id"),
        occurred_at=OuterRef("occurred_at"),
        remote_id=OuterRef("remote_id"),
        external_id=OuterRef("external_id"),
        email=OuterRef("email"),
        kind__in=[EventKind.HARD_BOUNCE, EventKind.COMPLAINT, EventKind.DELETED],
    )
    events = InboundEvent.objects.filter(received_at__gte=start)
    if end is not None:
        events = events.filter(received_at__lt=end)
    unsubscribes = Q(kind=EventKind.UNSUBSCRIBED) & ~Q(Exists(companion))
    rows = (
        events.annotate(hour=TruncHour("received_at", tzinfo=UTC))
        .order_by()
        .values("destination_id", "hour")
        .annotate(
            events=Count("id"),
            unsubscribes=Count("id", filter=unsubscribes),
            hard_bounces=Count("id", filter=Q(kind=EventKind.HARD_BOUNCE)),
            complaints=Count("id", filter=Q(kind=EventKind.COMPLAINT)),
            deletes=Count("id", filter=Q(kind=EventKind.DELETED)),
        )
    )
    return {
        (row["destination_id"], row["hour"]): tuple(row[name] for name in InboundPerHour.COUNTS)
        for row in rows
    }


def _takes_events(destination: Destination) -> bool:
    """Whether the destination's platform sends events we take (its connector declares a
    verifier)."""
    cls = connectors.CONNECTORS.get(destination.platform)
    return cls is not None and cls.inbound is not None


# A push's attempt row is written when the push ends, with the time it started: an hour is
# settled (no row can still arrive in it) once it ended longer ago than any push lasts (the
# lease bounds a push; an hour is longer than the default lease of 5 minutes).
SETTLED_AFTER = timedelta(hours=1)
CHART_DAYS = 7


def pushes_per_hour(*, destination_ids: list[int], now) -> dict[int, dict]:
    """Pushes (attempts that reached a platform) per destination and UTC hour over the last
    week, as {destination_id: {hour: n}}. Settled hours come from PushesPerHour (stored by
    the scheduler, `services.pushes_per_hour_store`); from the first hour not stored on, they
    are counted from the attempt log, a range of its started_at index: with the scheduler
    running, the last hour or two. Two queries whatever the size of the log; a page view
    writes nothing."""
    since, settled, hours = week_hours(now)
    hourly, stored = stored_pushes(destination_ids=destination_ids, since=since, until=settled)
    live_from = first_unstored_hour(hours, stored, destination_ids) or settled
    for pk in hourly:
        hourly[pk] = {h: n for h, n in hourly[pk].items() if h < live_from}
    for (pk, h), n in count_pushes(start=live_from, end=None).items():
        if pk in hourly:
            hourly[pk][h] = n
    return hourly


def week_hours(now) -> tuple:
    """The dashboard's week: its first UTC hour, the first hour not yet settled, and the
    settled hours in between."""
    settled = _utc_hour(now - SETTLED_AFTER)
    since = _utc_hour(now) - timedelta(days=CHART_DAYS)
    count = int((settled - since) / timedelta(hours=1))
    return since, settled, [since + timedelta(hours=h) for h in range(count)]


def stored_pushes(*, destination_ids, since, until) -> tuple[dict[int, dict], set]:
    """The stored hours in [since, until): their non-zero counts, and which are stored."""
    hourly: dict[int, dict] = {pk: {} for pk in destination_ids}
    stored = set()
    for destination_id, hour, n in PushesPerHour.objects.filter(
        destination_id__in=destination_ids, hour__gte=since, hour__lt=until
    ).values_list("destination_id", "hour", "pushes"):
        stored.add((destination_id, hour))
        if n:  # zeros are stored so the hour is known counted; the charts need no key
            hourly[destination_id][hour] = n
    return hourly, stored


def first_unstored_hour(hours, stored, destination_ids):
    """The first of `hours` some destination has no stored count for, or None."""
    return next((h for h in hours if any((pk, h) not in stored for pk in destination_ids)), None)


def count_pushes(*, start, end) -> dict[tuple[int, object], int]:
    """Pushes per (destination, UTC hour) started in [start, end) (end None: up to now)."""
    attempts = SyncAttempt.objects.filter(started_at__gte=start)
    if end is not None:
        attempts = attempts.filter(started_at__lt=end)
    rows = (
        attempts.exclude(outcome__in=[Outcome.UNCHANGED, Outcome.SKIPPED, Outcome.WAITING])
        .annotate(hour=TruncHour("started_at", tzinfo=UTC))
        .order_by()
        .values("destination_id", "hour")
        .annotate(n=Count("id"))
    )
    return {(row["destination_id"], row["hour"]): row["n"] for row in rows}


def _utc_hour(moment):
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def dashboard_workers(limit: int = 20) -> list[dict]:
    """The worker processes that took up work, newest beat first, each as its host and
    process id with its last beat. A heartbeat is named host:pid:thread (sync.engine's
    PushContext.worker); a process's threads are one process here."""
    processes: dict[tuple[str, str], dict] = {}
    for beat in WorkerHeartbeat.objects.order_by("-last_seen")[: limit * 4]:
        parts = beat.name.rsplit(":", 2)
        key = (parts[0], parts[1] if len(parts) > 1 else "")
        if key not in processes:
            processes[key] = {"host": key[0], "pid": key[1], "last_seen": beat.last_seen}
    return list(processes.values())[:limit]


def _destination_row(destination, counts, hourly, errors, total_contacts, now):
    known = sum(n for status, n in counts.items() if status != SyncStatus.NEVER)
    # Contacts, not attempts: of the contacts the platform has answered for (held or
    # refused), the share it holds now. A contact tried five times counts once; those
    # pending, waiting or awaiting confirmation have no answer yet and are left out.
    held = counts.get(SyncStatus.SYNCED, 0) + counts.get(SyncStatus.UNCHANGED, 0)
    answered = held + counts.get(SyncStatus.FAILED, 0)
    # Hours are UTC hours (pushes_per_hour), shown in the current time zone.
    this_hour = timezone.localtime(_utc_hour(now))
    hours = [this_hour - timedelta(hours=h) for h in range(23, -1, -1)]
    per_hour = [hourly.get(h, 0) for h in hours]
    today = this_hour.replace(hour=0)
    days = [today - timedelta(days=d) for d in range(6, -1, -1)]
    per_day = [
        sum(n for h, n in hourly.items() if day <= h < day + timedelta(days=1)) for day in days
    ]
    last_day = sum(per_hour)
    day_before = sum(n for h, n in hourly.items() if hours[0] - timedelta(hours=24) <= h < hours[0])
    return {
        "destination": destination,
        "synced": counts.get(SyncStatus.SYNCED, 0),
        "unchanged": counts.get(SyncStatus.UNCHANGED, 0),
        "failed": counts.get(SyncStatus.FAILED, 0),
        "pending": counts.get(SyncStatus.PENDING, 0) + counts.get(SyncStatus.IN_PROGRESS, 0),
        "waiting": counts.get(SyncStatus.WAITING, 0),
        "awaiting": counts.get(SyncStatus.AWAITING, 0),
        "skipped": counts.get(SyncStatus.SKIPPED, 0),
        "never": total_contacts - known,
        "success_rate": round(100 * held / answered, 1) if answered else None,
        "answered": answered,
        "trend": _trend(last_day, day_before),
        "hour_chart": _series(per_hour, [h.strftime("%a %H:00") for h in hours]),
        "day_chart": _series(per_day, [d.strftime("%a %d") for d in days]),
        "errors": errors,
    }


def _trend(last_day: int, day_before: int) -> dict:
    """Pushes of the last 24 hours against the 24 hours before, as an arrow and its words."""
    if last_day > day_before:
        arrow, word = "↑", "more"
    elif last_day < day_before:
        arrow, word = "↓", "fewer"
    else:
        arrow, word = "→", "as many"
    return {
        "arrow": arrow,
        "last_day": last_day,
        "day_before": day_before,
        "text": f"{last_day} pushes in the last 24 h, {word} than the 24 h before ({day_before})",
    }


def _series(values: list[int], labels: list[str]) -> dict:
    """One chart's data: a label and a count per bar, with their total and largest value."""
    return {
        "labels": labels,
        "values": values,
        "total": sum(values),
        "max": max(values, default=0),
    }


MAPPING_HISTORY_LIMIT = 100


def destination_mapping_history(*, destination_id: int, limit: int = MAPPING_HISTORY_LIMIT):
    """The latest changes to a destination's field and list mappings, newest first: who,
    when, what kind of change and the mapping as it was then. Two queries."""
    records = []
    for model in (FieldMapping, ListMapping, NativeFieldRule):
        records += list(
            model.history.filter(destination_id=destination_id)
            .select_related("history_user")
            .order_by("-history_date")[:limit]
        )
    records.sort(key=lambda record: record.history_date, reverse=True)
    return [
        {
            "date": r.history_date,
            "user": r.history_user,
            "change_type": r.get_history_type_display(),
            "kind": r.instance_type._meta.verbose_name,
            "mapping": _mapping_text(r),
        }
        for r in records[:limit]
    ]


def _mapping_text(record) -> str:
    if hasattr(record, "remote_field"):
        source = record.standard_field or f"custom field #{record.custom_field_id}"
        return f"{source} -> {record.remote_field} (write: {record.write_rule})"
    if hasattr(record, "field"):
        return f"{record.field} (native) write: {record.write_rule}"
    source = (
        f"group #{record.group_id}"
        if record.group_id
        else f"mailing list #{record.mailing_list_id}"
    )
    return f"{source} -> {record.remote_list}"


def destination_unset_credentials(*, destination: Destination) -> list[tuple[str, str]]:
    """(credential label, variable name) for each credential whose variable is allowed by the
    outbound policy but not set (or empty) in this process's environment: the destination
    saves, but every push and test would fail. Names the policy refuses are left out (the
    form refuses them itself), so nothing is said about variables outside the allow list."""
    import os

    from sync.policy import credential_name_problem

    cls = destination.connector_class
    unset = []
    for credential in getattr(cls, "credentials", {}).values():
        name = getattr(destination, credential.field, "")
        if name and not credential_name_problem(name) and not os.environ.get(name):
            unset.append((str(credential.label), name))
    return unset


def contact_push_outcome(*, contact_id: int, destination: Destination) -> tuple[str, str]:
    """After a person's "Push now" or "Retry": what became of it, as (level, text)."""
    state = ContactSyncState.objects.filter(contact_id=contact_id, destination=destination).first()
    status = state.status if state else SyncStatus.NEVER
    name = destination.name
    if status in (SyncStatus.SYNCED, SyncStatus.UNCHANGED):
        return "success", f"Pushed to {name}: synced."
    if status == SyncStatus.FAILED:
        return "warning", f"{name} refused it: {state.last_error}"
    if status == SyncStatus.WAITING:
        return "warning", f"{name} is paused: {state.last_error}"
    if status == SyncStatus.SKIPPED:
        return "info", f"Not sent to {name}: {state.skip_reason}"
    if status == SyncStatus.PENDING and state.last_error:
        return "warning", f"{name} will be tried again: {state.last_error}"
    if status == SyncStatus.AWAITING:
        return "info", f"{name} took it and has yet to confirm it; the Sync panel updates itself."
    return "info", f"Queued for {name}; the Sync panel updates itself."


def contact_save_outcomes(*, contact_id: int) -> list[tuple[str, str]]:
    """What became of a contact's push on save, per destination that pushes on save, as
    (level, text) for the page that follows the save: "success", "warning" (a platform
    refused it, or it waits) or "info" (queued, skipped). Pushes still under way say so."""
    destinations = list(Destination.objects.filter(enabled=True, push_on_save=True))
    states = {
        s.destination_id: s
        for s in ContactSyncState.objects.filter(
            contact_id=contact_id, destination__in=destinations
        )
    }
    synced, queued, outcomes = [], [], []
    for destination in destinations:
        state = states.get(destination.pk)
        status = state.status if state else SyncStatus.NEVER
        if status in (SyncStatus.SYNCED, SyncStatus.UNCHANGED):
            synced.append(destination.name)
        elif status == SyncStatus.FAILED:
            outcomes.append(("warning", f"{destination.name} refused it: {state.last_error}"))
        elif status == SyncStatus.WAITING:
            outcomes.append(("warning", f"{destination.name} is paused: {state.last_error}"))
        elif status == SyncStatus.PENDING and state.last_error:
            outcomes.append(
                ("warning", f"{destination.name} will be tried again: {state.last_error}")
            )
        elif status == SyncStatus.SKIPPED:
            outcomes.append(("info", f"Not sent to {destination.name}: {state.skip_reason}"))
        else:
            queued.append(destination.name)
    if synced:
        outcomes.insert(0, ("success", f"Synced to {', '.join(synced)}."))
    if queued:
        outcomes.append(("info", f"Queued for {', '.join(queued)}; the Sync panel updates itself."))
    return outcomes


# ------------------------------------------------------------------------------ erasure


def contact_is_erased(*, email: str = "", external_id: str = "") -> bool:
    """For the inbound side: True when a platform event's email or external ID belongs to a
    person erased here, so the event must not re-create them (show it instead)."""
    from contacts.selectors import contact_is_erased as is_erased

    return is_erased(email=email, external_id=external_id)


def contact_erasure_plan(*, contact) -> list[dict]:
    """What erasing the contact does on each destination, for the confirmation page: every
    destination is asked, paused or disabled ones too (the person may be held there)."""
    remote_ids = dict(contact.sync_states.values_list("destination_id", "remote_id"))
    plan = []
    for destination in Destination.objects.order_by("name"):
        cls = destination.connector_class
        if cls.supports_delete:
            action = f"Delete the contact on {cls.label}, then read it back to confirm it is gone."
        else:
            action = (
                f"{cls.label} has no delete call: blank what its contract lets us blank, read "
                f"it back, and say to erase it by hand in {cls.label} with its {cls.label} id."
            )
        plan.append(
            {
                "destination": destination,
                "platform": cls.label,
                "remote_id": remote_ids.get(destination.pk, ""),
                "action": action,
            }
        )
    return plan


# ------------------------------------------------------------------ fairness (sync_worker)

# Priorities of push tasks (django-tasks: higher first, -100..100). A person waiting on a
# page (a save, "Push now", a single "Retry") outranks every bulk chunk and scheduler retry.
PRIORITY_BULK = 0
PRIORITY_INTERACTIVE = 50
PUSH_TASK_PATH = "sync.tasks.push_contacts"


# A destination pushed one contact per request counts as busy this long after its last
# reserved slot: its limit, not the worker, sets its pace, and a chunk that gave its place back
# is not taken again at once (each take claims and loads its whole chunk to send one contact),
# so while other work is ready a slow destination goes on at about one request per BUSY_GRACE
# rather than costing a worker much of its time in takes.
BUSY_GRACE = 1.0
# Any destination counts as busy while its next free slot is further ahead than one
# reservation leaves it (a block of slots spans at most RESERVE_SECONDS, or one interval):
# some worker is held at its limit, or a Retry-After is being waited out.
BUSY_AHEAD = RESERVE_SECONDS


def destinations_busy(*, now: float | None = None) -> list[int]:
    """Destinations a bulk chunk taken now would wait on, or give its place back to again:
    those whose next free slot is more than BUSY_AHEAD away, and those pushed one contact per
    request that had a slot reserved within BUSY_GRACE. A destination pushed in batch calls
    (one request per chunk of up to 1,000 contacts) is not busy for its recent slots: the
    worker's own work paces its chunks, not its limit, so a second worker on them halves
    their time. Counted busy for a second after each chunk's requests, its chunks waited
    behind a slow destination's while every worker sat on that one's limit."""
    now = time.time() if now is None else now
    slots = RateLimitSlot.objects.filter(next_at__gt=now - BUSY_GRACE)
    busy = []
    for destination_id, platform, next_at in slots.values_list(
        "destination_id", "destination__platform", "next_at"
    ):
        connector_class = connectors.CONNECTORS.get(platform)
        if next_at > now + BUSY_AHEAD or not (connector_class and connector_class.batch_size):
            busy.append(destination_id)
    return busy


def ready_tasks_fair(tasks, *, busy: list[int]):
    """Of the ready `tasks` (a DBTaskResult queryset), those a worker should take first: all
    but bulk pushes to a busy destination. Interactive pushes are never skipped."""
    if not busy:
        return tasks
    return tasks.exclude(
        task_path=PUSH_TASK_PATH,
        priority__lt=PRIORITY_INTERACTIVE,
        args_kwargs__kwargs__destination_id__in=busy,
    )


def work_ready_elsewhere(*, destination_id: int) -> bool:
    """Whether a worker would have something better to do than wait on this destination's
    limit: an interactive push ready (to any destination) or running on this one (it should
    get this destination's next slots), or any other ready task that is not a bulk push to a
    busy destination."""
    busy = set(destinations_busy()) | {destination_id}
    ready = DBTaskResult.objects.ready()
    if ready_tasks_fair(ready, busy=sorted(busy)).exists():
        return True
    return DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING,
        task_path=PUSH_TASK_PATH,
        priority__gte=PRIORITY_INTERACTIVE,
        args_kwargs__kwargs__destination_id=destination_id,
    ).exists()
