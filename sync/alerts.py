"""Emails to sync admins when a destination needs a person: once per change of state, not
once per failure."""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db.models import Count, Q
from django.utils import timezone

from sync.models import Destination, SyncAttempt

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
