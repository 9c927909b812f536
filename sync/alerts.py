"""Emails to sync admins when a destination needs a person: once per change of state, not
once per failure."""

import logging
from datetime import UTC, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from sync import connectors
from sync.connectors.inbound import Reason
from sync.models import (
    Destination,
    InboundAlert,
    InboundEvent,
    InboundRefusalHour,
    SyncAttempt,
)

logger = logging.getLogger(__name__)
SYNC_ADMINS_GROUP = "Sync admins"


def notify_sync_admins(subject: str, body: str) -> int:
    recipients = list(
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name=SYNC_ADMINS_GROUP) | Q(is_superuser=True))
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    if not recipients:
        return 0
    try:
        return send_mail(f"[Contact sync] {subject}", body, None, recipients)
    except OSError:  # a mail server outage must not stop the sync engine
        logger.exception("could not send the alert %r", subject)
        return 0


def destination_paused(destination: Destination, error: str) -> None:
    notify_sync_admins(
        f"{destination} is paused",
        f"The platform refused our credentials for {destination}:\n\n{error}\n\n"
        "Its contacts wait. Fix the credentials, then press Test connection on the "
        "destination's page to resume.",
    )


def vendor_change(destination: Destination, outcomes) -> None:
    """The platform's answers no longer have the shape the connector reads (sync/guard.py)."""
    changed = [o for o in outcomes if o.outcome == "changed"]
    lines = "\n".join(f"- {o.call}: {change}" for o in changed for change in o.changes)
    notify_sync_admins(
        f"{destination}: the platform's answers changed shape",
        f"The daily probe of {destination} found answers that no longer have the shape the "
        f"connector reads:\n\n{lines}\n\nThe platform may have changed its API. Pushes go on; "
        "check the vendor's changelog and the connector. The warning clears when the answers "
        "have their shape back.",
    )


def failure_rates_check(now=None) -> None:
    """Alert when a destination's failure rate over the last hour passes the threshold, and
    re-arm once it is back under it."""
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    for destination in Destination.objects.filter(enabled=True):
        stats = SyncAttempt.objects.filter(
            destination=destination, started_at__gte=hour_ago
        ).aggregate(
            total=Count("id", filter=~Q(outcome__in=["unchanged", "skipped"])),
            failed=Count("id", filter=Q(outcome__in=["failed", "retry"])),
        )
        total, failed = stats["total"], stats["failed"]
        rate = failed / total if total >= settings.SYNC_ALERT_MIN_ATTEMPTS else 0.0
        failing = rate > settings.SYNC_ALERT_FAILURE_RATE
        if failing == destination.alerted_failing:
            continue
        Destination.objects.filter(pk=destination.pk).update(alerted_failing=failing)
        if failing:
            notify_sync_admins(
                f"{destination}: {rate:.0%} of pushes failed in the last hour",
                f"{failed} of {total} pushes to {destination} failed in the last hour "
                f"(threshold {settings.SYNC_ALERT_FAILURE_RATE:.0%}). See the sync dashboard.",
            )


# ------------------------------------------------------------------------------ inbound


def inbound_alerts_check(now=None) -> None:
    """The scheduler's inbound checks: a destination gone silent, refusals that spike."""
    now = now or timezone.now()
    inbound_silence_check(now=now)
    inbound_refusals_check(now=now)


def _takes_events(destination: Destination) -> bool:
    cls = connectors.CONNECTORS.get(destination.platform)
    return cls is not None and cls.inbound is not None


def inbound_silence_check(now=None) -> None:
    """Alert when an enabled destination that had events has received none for
    SYNC_ALERT_INBOUND_SILENT_HOURS; the alert clears with the next event. One query for the
    last events (the newest of each destination, from its index), then one or two per
    destination."""
    now = now or timezone.now()
    hours = settings.SYNC_ALERT_INBOUND_SILENT_HOURS
    newest = InboundEvent.objects.filter(destination=OuterRef("pk")).order_by("-received_at")
    destinations = Destination.objects.annotate(
        last_event=Subquery(newest.values("received_at")[:1])
    )
    for destination in destinations:
        if not _takes_events(destination):
            continue
        last = destination.last_event
        silent = destination.enabled and last is not None and last < now - timedelta(hours=hours)
        when = f"{timezone.localtime(last):%Y-%m-%d %H:%M}" if last else ""
        label = destination.connector_class.label
        _episode(
            destination,
            InboundAlert.Kind.SILENT,
            silent,
            now=now,
            message=f"no events from {label} for over {hours:g} hours (the last at {when})",
            subject=f"{destination}: no events from {label} for {hours:g} hours",
            body=f"{destination} has received no event from {label} since {when}, though it "
            "had events before. The platform may have stopped sending: the webhook removed or "
            "switched off in its settings, its URL or signing secret changed, or "
            "SYNC_PUBLIC_URL no longer reaches us. Opt-outs made there meanwhile are not "
            "seen here. See the destination's page (Events from the platform). The alert "
            "clears with the next event.",
        )


# A replayed delivery is one we already hold, answered 200: a platform retrying after a slow
# answer or our own outage loses nothing, so replays are counted but never make a spike.
SPIKE_REASONS_EXCLUDED = [Reason.REPLAY]
USUAL_DAYS = 7


def inbound_refusals_check(now=None) -> None:
    """Alert when refused deliveries to a destination spike: in the last hour (counted in
    whole UTC hours, the current one and the one before, so at least the last 60 minutes)
    at least SYNC_ALERT_REFUSALS_MIN, and more than SYNC_ALERT_REFUSALS_FACTOR times the
    usual count for as long a window over the 7 days before. Cleared once the window is back
    under. One aggregate query, then one or two per destination."""
    now = now or timezone.now()
    window = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    usual_since = window - timedelta(days=USUAL_DAYS)
    recent: dict[int, dict[str, int]] = {}
    before: dict[int, int] = {}
    for row in (
        InboundRefusalHour.objects.filter(hour__gte=usual_since)
        .exclude(reason__in=SPIKE_REASONS_EXCLUDED)
        .order_by()
        .values("destination_id", "reason")
        .annotate(
            recent=Sum("count", filter=Q(hour__gte=window)),
            before=Sum("count", filter=Q(hour__lt=window)),
        )
    ):
        if row["recent"]:
            recent.setdefault(row["destination_id"], {})[row["reason"]] = row["recent"]
        before[row["destination_id"]] = before.get(row["destination_id"], 0) + (row["before"] or 0)
    # the usual count for a window as long as ours (two hour buckets)
    usual_per_window = {pk: n * 2 / (USUAL_DAYS * 24) for pk, n in before.items()}
    labels = dict(Reason.CHOICES)
    for destination in Destination.objects.all():
        if not _takes_events(destination):
            continue
        reasons = recent.get(destination.pk, {})
        total = sum(reasons.values())
        usual = usual_per_window.get(destination.pk, 0.0)
        spike = (
            total >= settings.SYNC_ALERT_REFUSALS_MIN
            and total > settings.SYNC_ALERT_REFUSALS_FACTOR * usual
        )
        detail = ", ".join(f"{labels.get(r, r)}: {n}" for r, n in sorted(reasons.items()))
        _episode(
            destination,
            InboundAlert.Kind.REFUSALS,
            spike,
            now=now,
            message=f"{total} deliveries refused in the last hour, usually {usual:.1f} ({detail})",
            subject=f"{destination}: {total} inbound deliveries refused in the last hour",
            body=f"{total} deliveries to {destination}'s inbound URL were refused in the last "
            f"hour ({detail}); usually {usual:.1f} in as long. Bad signatures in numbers "
            "mostly mean the signing secret or password changed on the platform and not here "
            "(those events are lost to us until it matches again), or someone is trying the "
            "URL. See the destination's page (Events from the platform).",
        )


def _episode(destination, kind, active: bool, *, now, message: str, subject: str, body: str):
    """Raise the alert (emailing sync admins) when `active` and it is not raised yet, or
    clear it when not. Raising is a conditional update, so of several schedulers seeing the
    same episode only one emails. Returns True when this call raised it."""
    rows = InboundAlert.objects.filter(destination=destination, kind=kind)
    if not active:
        rows.filter(active=True).update(active=False, cleared_at=now)
        return False
    changes = {"active": True, "message": message, "raised_at": now, "cleared_at": None}
    raised = rows.filter(active=False).update(**changes)
    if not raised and not rows.exists():
        try:
            with transaction.atomic():
                InboundAlert.objects.create(destination=destination, kind=kind, **changes)
            raised = 1
        except IntegrityError:  # another scheduler raised it meanwhile
            raised = 0
    if raised:
        notify_sync_admins(subject, body)
    return bool(raised)
