"""Polling, where webhooks can't reach (issue 14 item 6; shared/inbound.md part A, "Polling,
where no webhook reaches us").

A destination whose connector declares a poll (`polls`, sync/connectors/polling.py) is polled
at an interval (SYNC_POLL_INTERVAL_MINUTES, or the connector's own `poll_every`: Loops daily),
whether or not it has a public URL: a poll asks what webhooks never deliver (iVvy's
deletions, Cendyn's deliveries without a webhook group, every platform when SYNC_PUBLIC_URL is
unset). `destination_poll` is one run:

1. read the stored cursor (`DestinationPoll`) and, for platforms asked per contact, take the
   next slice of a rotating sample of the contacts the platform holds from us;
2. ask the platform through its connector, whose every request waits its turn in the
   destination's shared rate limit (sync.ratelimit, as a push does);
3. drop what our contact already shows (an opt-out of a channel already opted out, a deletion
   already cleared): a state the poll sees again is not news;
4. store the rest as `InboundEvent`s, the webhook's own table and dedupe: the same key, or the
   same platform change (`change_key`) stored by a webhook, is stored once;
5. apply them with the webhook's processing (`sync.inbound.inbound_events_process`), then move
   the cursor.

The scheduler queues the runs (`sync.services.polls_enqueue_due`); `manage.py sync_poll
--destination NAME` runs one by hand.
"""

import datetime
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from contacts.consent import STATUS_FIELDS
from contacts.models import OPT_IN_STATUSES, Contact
from sync import inbound
from sync.connectors.base import ConnectorConfigurationError, ConnectorError
from sync.connectors.inbound import EventKind, PlatformEvent
from sync.connectors.polling import PollSubject
from sync.engine import destination_connector
from sync.models import ContactSyncState, Destination, DestinationPoll, InboundEvent

logger = logging.getLogger(__name__)
OVERLAP = datetime.timedelta(minutes=1)  # per-contact "since": a minute back, as part A's


@dataclass
class PollOutcome:
    """What one run did: events the platform reported, those new (stored and applied through
    the inbound pipeline), those applied to a contact, requests made, seconds taken."""

    reported: int = 0
    stored: int = 0
    applied: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str = ""

    def __str__(self):
        if self.error:
            return f"poll failed after {self.seconds:.2f} s: {self.error}"
        return (
            f"{self.reported} events reported, {self.stored} new, {self.applied} applied; "
            f"{self.requests} requests in {self.seconds:.2f} s"
        )


def poll_interval(destination: Destination) -> datetime.timedelta:
    cls = destination.connector_class
    return cls.poll_every or datetime.timedelta(minutes=settings.SYNC_POLL_INTERVAL_MINUTES)


def destination_poll(
    *, destination: Destination, now: datetime.datetime | None = None
) -> PollOutcome:
    """One poll of the destination (see the module docstring). A platform's refusal or an
    unreachable platform is kept on the poll row and returned, never raised: the next run
    tries again from the same cursor."""
    started, now = time.monotonic(), now or timezone.now()
    row, _ = DestinationPoll.objects.get_or_create(destination=destination)
    cursor = dict(row.cursor or {})
    cls = destination.connector_class
    platform_cursor = dict(cursor.get("platform") or {})
    sample, rotation = [], {}
    if cls.poll_per_contact:
        sample, rotation = _sample(destination, cursor, now)
        if rotation.get("contacts_since_for_run"):
            platform_cursor["contacts_since"] = rotation.pop("contacts_since_for_run")
    outcome = PollOutcome()
    try:
        connector = destination_connector(destination=destination, quick_retries=1)
        result = connector.poll(cursor=platform_cursor, sample=sample, now=now)
    except (ConnectorError, ConnectorConfigurationError) as err:
        outcome.error, outcome.seconds = str(err), time.monotonic() - started
        DestinationPoll.objects.filter(pk=row.pk).update(
            last_run_at=now, last_seconds=outcome.seconds, last_error=outcome.error[:2000]
        )
        logger.info("poll of %s failed: %s", destination, err)
        return outcome
    news = [event for event in result.events if not _already_shown(destination, event)]
    stored = inbound.events_store(destination=destination, events=news)
    inbound.inbound_events_process(event_ids=stored)
    outcome.reported, outcome.stored = len(result.events), len(stored)
    outcome.applied = InboundEvent.objects.filter(
        pk__in=stored, state=InboundEvent.State.APPLIED
    ).count()
    outcome.requests = len(connector.exchanges)
    outcome.seconds = time.monotonic() - started
    DestinationPoll.objects.filter(pk=row.pk).update(
        cursor={**rotation, "platform": result.cursor},
        last_run_at=now,
        last_seconds=outcome.seconds,
        last_found=outcome.stored,
        last_requests=outcome.requests,
        last_error="; ".join(result.notes)[:2000],
    )
    return outcome


# ------------------------------------------------------------------------- the sample


def _sample(destination: Destination, cursor: dict, now: datetime.datetime):
    """The next SYNC_POLL_SAMPLE contacts the platform holds from us (a remote id in our sync
    state), in contact order after the last one sampled, wrapping round. Returns them and the
    rotation to store: `contacts_since_for_run` is the start of the previous round (less a
    minute), before which no sampled contact can have been checked last, so a per-contact
    "since" never skips what happened between two turns of a contact."""
    size = settings.SYNC_POLL_SAMPLE
    held = (
        ContactSyncState.objects.filter(destination=destination)
        .exclude(remote_id="")
        .order_by("contact_id")
    )
    columns = ("contact_id", "remote_id", "contact__external_id", "contact__email")
    after = int(cursor.get("sample_after") or 0)
    round_started = cursor.get("round_started") or now.isoformat()
    previous_round = cursor.get("previous_round_started") or ""
    rows = list(held.filter(contact_id__gt=after).values_list(*columns)[:size])
    since_for_run = previous_round
    if len(rows) < size:  # this round is done: the next starts now, from the first contact
        previous_round, round_started = round_started, now.isoformat()
        taken = {r[0] for r in rows}
        rows += [r for r in held.values_list(*columns)[: size - len(rows)] if r[0] not in taken]
    subjects = [
        PollSubject(str(ext or ""), str(remote), str(email or "")) for _, remote, ext, email in rows
    ]
    rotation = {
        "sample_after": rows[-1][0] if rows else 0,
        "round_started": round_started,
        "previous_round_started": previous_round,
    }
    if since_for_run:
        since = datetime.datetime.fromisoformat(since_for_run) - OVERLAP
        rotation["contacts_since_for_run"] = since.astimezone(datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    return subjects, rotation


# ---------------------------------------------------------------- what is not news


def _already_shown(destination: Destination, event: PlatformEvent) -> bool:
    """Whether our records show this already: a deletion of a contact whose state here holds
    no such remote id any more, or an email/SMS opt-out of a contact whose status on that
    channel is already not an opt-in. A poll sees a state again and again (and our own
    propagated opt-outs too); only a change from what we know is an event."""
    if event.kind == EventKind.DELETED:
        return not ContactSyncState.objects.filter(
            destination=destination, remote_id=event.remote_id
        ).exists()
    if event.kind not in EventKind.OPT_OUTS or event.channel not in STATUS_FIELDS:
        return False
    contact = _contact_of(destination, event)
    if contact is None:
        return False  # recorded as an unknown contact by the pipeline
    field = STATUS_FIELDS[event.channel][0]
    return getattr(contact, field) not in OPT_IN_STATUSES


def _contact_of(destination: Destination, event: PlatformEvent) -> Contact | None:
    if event.remote_id:
        state = (
            ContactSyncState.objects.filter(destination=destination, remote_id=event.remote_id)
            .select_related("contact")
            .first()
        )
        if state is not None:
            return state.contact
    if event.external_id:
        return Contact.objects.filter(external_id=event.external_id).first()
    if event.email:
        return Contact.objects.filter(email__iexact=event.email).first()
    return None
