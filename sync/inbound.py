"""Events coming back from the platforms: receive, store, answer, then process
(shared/inbound.md part A; the shape of dj-stripe's webhook triggers and anymail's tracking
webhooks, STYLE.md).

- `delivery_receive` is the endpoint's work (its events queued by `sync.services`): find the
  destination by its token (404, with no hint, for any other), check the size, let the
  platform's verifier (declared by its connector) prove the delivery, store each event once
  (a key seen before is a replay: answered 200 and ignored) and answer. Refusals are
  counted per destination and reason.
- `inbound_event_process` applies one stored event, in a task: idempotent (an event is
  processed once; consent changes are ordered by their own time through the ledger).
- `destination_inbound_register` registers the URL through the platform's API where it has
  one (iVvy); elsewhere a person does it in the platform (the page lists the steps).
"""

import datetime
import logging
import os
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from contacts.consent import consent_record, list_channel
from contacts.models import OPT_IN_STATUSES, Contact
from sync import connectors, selectors
from sync.connectors.base import (
    BatchItemResult,
    ConnectorConfigurationError,
    ConnectorError,
    PermanentError,
    outbound_session,
)
from sync.connectors.inbound import (
    MAX_BODY,
    EventKind,
    InboundRequest,
    PlatformEvent,
    Reason,
    Refused,
)
from sync.consent import opt_out_applied
from sync.engine import PushContext, contacts_confirm_answered, destination_connector
from sync.models import (
    ContactSyncState,
    Destination,
    InboundEvent,
    InboundRefusal,
    InboundRefusalHour,
    ListMapping,
    SyncStatus,
    Trigger,
)
from sync.policy import credential_name_problem

logger = logging.getLogger(__name__)

CERTIFICATE_MAX_BYTES = 64 * 1024
_certificates: dict[str, bytes] = {}  # SNS signing certificates, by URL (part A: cached)
_certificates_lock = threading.Lock()


@dataclass
class Answer:
    status: int
    body: str = ""


NOT_FOUND = Answer(404, "Not found")
ERASED_PERSON_EVENT = (
    "about a person erased here (a tombstone matches): recorded without their data, nobody "
    "re-created"
)


# ------------------------------------------------------------------------------ receiving


def delivery_receive(
    *, token: str, method: str, headers: dict[str, str], body: bytes, query: dict[str, str]
) -> tuple[Answer, list[int]]:
    """Everything the inbound endpoint does up to its answer (see the module docstring):
    the answer and the ids of the events stored, for the caller to queue
    (`sync.services.inbound_delivery_receive`: this module queues nothing)."""
    destination = Destination.objects.filter(inbound_token=token).first() if token else None
    if destination is None or destination.platform not in connectors.CONNECTORS:
        return NOT_FOUND, []
    verifier_class = destination.connector_class.inbound
    if verifier_class is None:
        return NOT_FOUND, []
    if method in ("GET", "HEAD"):
        return Answer(200), []  # Yespo checks the URL with a GET when the export is saved
    if method != "POST":
        return Answer(405), []
    if len(body) > MAX_BODY:
        return _refuse(destination, Refused(Reason.TOO_LARGE, 413, "over 1 MB")), []
    request = InboundRequest(method=method, headers=headers, body=body, query=query)
    verifier = _verifier(destination)
    try:
        verified = verifier.verify(request)
    except Refused as refused:
        return _refuse(destination, refused), []
    stale = verifier.is_stale(verified.sent_at)
    stored = _store(destination, verified.events, stale=stale)
    if verified.events and not stored:
        _count(destination, Reason.REPLAY)
    return Answer(200), stored


def _refuse(destination: Destination, refused: Refused) -> Answer:
    _count(destination, refused.reason)
    logger.info("inbound delivery to %s refused: %s", destination, refused)
    return Answer(refused.status, "")


def _count(destination: Destination, reason: str) -> None:
    now = timezone.now()
    updated = InboundRefusal.objects.filter(destination=destination, reason=reason).update(
        count=F("count") + 1, last_at=now
    )
    if not updated:
        try:
            with transaction.atomic():
                InboundRefusal.objects.create(
                    destination=destination, reason=reason, count=1, last_at=now
                )
        except IntegrityError:  # another request created it meanwhile
            InboundRefusal.objects.filter(destination=destination, reason=reason).update(
                count=F("count") + 1, last_at=now
            )
    _count_hour(destination, reason, now)


def _count_hour(destination: Destination, reason: str, now) -> None:
    """The same refusal in its UTC hour's bucket (InboundRefusalHour: what a spike alert
    compares)."""
    hour = now.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    rows = InboundRefusalHour.objects.filter(destination=destination, hour=hour, reason=reason)
    if rows.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            InboundRefusalHour.objects.create(
                destination=destination, hour=hour, reason=reason, count=1
            )
    except IntegrityError:  # another request created it meanwhile
        rows.update(count=F("count") + 1)


def _store(destination: Destination, events: list[PlatformEvent], *, stale: bool) -> list[int]:
    """Store each event not seen before (by its key); the ids of those stored."""
    now = timezone.now()
    stored = []
    with transaction.atomic():
        for event in events:
            if _change_seen(destination, event):
                continue  # the same change, reported by the other path (webhook or poll)
            row, created = InboundEvent.objects.get_or_create(
                destination=destination,
                key=event.key[:200],
                defaults={
                    "change_key": event.change_key[:200],
                    "platform": destination.platform,
                    "kind": event.kind,
                    "raw_type": event.raw_type[:100],
                    "channel": event.channel[:60],
                    "remote_list": event.remote_list[:200],
                    "remote_id": event.remote_id[:200],
                    "external_id": event.external_id[:200],
                    "email": event.email[:254],
                    "status": event.status[:20],
                    "detail": event.detail[:300],
                    "occurred_at": event.occurred_at,
                    "received_at": now,
                    "stale": stale,
                    "body": event.raw,
                    "data": event.data,
                },
            )
            if created:
                stored.append(row.pk)
    return stored


def _change_seen(destination: Destination, event: PlatformEvent) -> bool:
    return bool(event.change_key) and (
        InboundEvent.objects.filter(destination=destination, change_key=event.change_key[:200])
        .exclude(key=event.key[:200])
        .exists()
    )


def events_store(*, destination: Destination, events: list[PlatformEvent]) -> list[int]:
    """Store events a poll found (sync.polling), deduplicated as deliveries are; the ids of
    those new. A change the webhook stored meanwhile (the unique change key) is skipped."""
    try:
        return _store(destination, events, stale=False)
    except IntegrityError:  # a webhook stored one of these changes at the same moment
        return _store(
            destination, [e for e in events if not _change_seen(destination, e)], stale=False
        )


def _secrets(destination: Destination) -> dict[str, str]:
    """The credentials the verifier may need, from the variables the destination names (an
    unset or refused name gives nothing: the verifier then refuses every delivery)."""
    names = {**destination.credential_variables, **destination.inbound_credential_variables}
    return {
        name: os.environ.get(env, "")
        for name, env in names.items()
        if env and not credential_name_problem(env)
    }


def _development_loopback() -> bool:
    """The sandbox's SNS certificate host (loopback) is trusted in development only."""
    return bool(settings.SYNC_ALLOW_LOOPBACK and not settings.IS_PRODUCTION)


def fetch_certificate(url: str) -> bytes:
    """A signing certificate, fetched once per URL through the address-checked session (the
    verifier has checked the URL's host). Raises on any failure."""
    with _certificates_lock:
        if url in _certificates:
            return _certificates[url]
    response = outbound_session().get(url, timeout=5, allow_redirects=False)
    if response.status_code != 200 or len(response.content) > CERTIFICATE_MAX_BYTES:
        raise ValueError(f"HTTP {response.status_code}")
    with _certificates_lock:
        _certificates[url] = response.content
    return response.content


def _verifier(destination: Destination):
    cls = destination.connector_class
    return cls.inbound(
        secrets=_secrets(destination),
        settings=dict(destination.settings or {}),
        state=dict(destination.inbound_state or {}),
        now=timezone.now,
        fetch_certificate=fetch_certificate,
        allow_loopback_certificates=_development_loopback(),
    )


# ----------------------------------------------------------------------------- processing


def inbound_events_process(*, event_ids: list[int]) -> None:
    """Apply stored events, oldest first by their own time (the task's work)."""
    events = InboundEvent.objects.filter(pk__in=event_ids, state=InboundEvent.State.PENDING)
    for event in events.select_related("destination").order_by("occurred_at", "id"):
        inbound_event_process(event=event)


def inbound_event_process(*, event: InboundEvent) -> str:
    """Apply one event; returns its new state. A failure is kept on the event (state failed,
    with the error) and never raised: the platform was answered long ago."""
    try:
        state, note = _apply(event)
    except (ConnectorError, ConnectorConfigurationError) as err:
        state, note = InboundEvent.State.FAILED, str(err)
    except Exception as err:  # a bug of ours: visible on the event, repeatable
        logger.exception("inbound event %s failed", event.pk)
        state, note = InboundEvent.State.FAILED, f"{type(err).__name__}: {err}"
    InboundEvent.objects.filter(pk=event.pk).update(
        state=state, error=note[:2000], contact=event.contact, processed_at=timezone.now()
    )
    event.state = state
    return state


def _platform_event(event: InboundEvent) -> PlatformEvent:
    return PlatformEvent(
        kind=event.kind,
        raw_type=event.raw_type,
        key=event.key,
        occurred_at=event.occurred_at,
        channel=event.channel,
        remote_list=event.remote_list,
        remote_id=event.remote_id,
        external_id=event.external_id,
        email=event.email,
        status=event.status,
        detail=event.detail,
        raw=event.body,
        data=event.data,
    )


def _apply(event: InboundEvent) -> tuple[str, str]:
    State = InboundEvent.State
    if event.kind == EventKind.SUBSCRIPTION_CONFIRMATION:
        return _confirm_subscription(event)
    if event.kind == EventKind.BULK_COMPLETED:
        return _bulk_completed(event)
    event.contact = _find_contact(event)
    if event.kind == EventKind.RECORDED:
        return State.IGNORED, ""
    if event.contact is None:
        if selectors.contact_is_erased(email=event.email, external_id=event.external_id):
            # A person erased here (their tombstone): nothing of them is kept or re-created,
            # and the event says so instead of passing for a stranger.
            InboundEvent.objects.filter(pk=event.pk).update(
                email="", external_id="", remote_id="", body={}, data={}
            )
            return State.UNKNOWN_CONTACT, ERASED_PERSON_EVENT
        return State.UNKNOWN_CONTACT, "no contact here has this id, external ID or email"
    if event.kind == EventKind.DELETED:
        return _deleted(event)
    if event.kind in EventKind.OPT_OUTS:
        return _consent(event, _opt_out_status(event))
    if event.kind == EventKind.RESUBSCRIBED:
        return _opt_in(event)
    return State.IGNORED, f"nothing to do for {event.kind}"


def _find_contact(event: InboundEvent) -> Contact | None:
    """By the platform's id in our sync state, else our external ID, else the email."""
    if event.remote_id:
        state = (
            ContactSyncState.objects.filter(
                destination_id=event.destination_id, remote_id=event.remote_id
            )
            .select_related("contact")
            .first()
        )
        if state is not None:
            return state.contact
    if event.external_id:
        contact = Contact.objects.filter(external_id=event.external_id).first()
        if contact is not None:
            return contact
    if event.email:
        return Contact.objects.filter(email__iexact=event.email).first()
    return None


def _opt_out_status(event: InboundEvent) -> str:
    if event.kind == EventKind.HARD_BOUNCE:
        return "bounced"
    return event.status or "unsubscribed"


def _channel(event: InboundEvent) -> str | None:
    """Our ledger channel for the event: email, sms, push, or one of our mailing lists (the
    platform's list mapped to it); None when the platform's list is mapped to none of ours."""
    if event.channel != "list":
        return event.channel or "email"
    mapping = (
        ListMapping.objects.filter(
            destination_id=event.destination_id,
            remote_list=event.remote_list,
            mailing_list__isnull=False,
        )
        .only("mailing_list_id")
        .first()
    )
    return list_channel(mapping.mailing_list_id) if mapping else None


def _consent(event: InboundEvent, status: str) -> tuple[str, str]:
    State = InboundEvent.State
    channel = _channel(event)
    if channel is None:
        return State.IGNORED, f"the platform's list {event.remote_list} is mapped to none of ours"
    detail = " ".join(filter(None, [event.raw_type, event.detail]))
    applied = consent_record(
        contact=event.contact,
        channel=channel,
        status=status,
        source="platform",
        occurred_at=event.occurred_at or event.received_at,
        source_label=event.destination.name,
        detail=detail,
    )
    if applied:
        if status not in OPT_IN_STATUSES:  # carried to the other platforms (sync.consent)
            opt_out_applied.send(
                sender=InboundEvent,
                contact_id=event.contact.pk,
                destination_id=event.destination_id,
                channel=channel,
                status=status,
            )
        return State.APPLIED, f"{channel}: {status}"
    return State.NOT_APPLIED, f"a later change of {channel} was already known"


def _opt_in(event: InboundEvent) -> tuple[str, str]:
    """An opt-in is applied only when the platform holds it on a read-back, or, where the
    platform cannot be read back, from a signed delivery inside the 5-minute window."""
    State = InboundEvent.State
    destination = event.destination
    connector = destination_connector(destination=destination, quick_retries=1)
    holds = connector.inbound_opt_in_holds(_platform_event(event))
    if holds is False:
        return State.REFUSED, "read back: the platform does not hold this opt-in"
    if holds is None:
        if not destination.connector_class.inbound.signs_body:
            return State.REFUSED, "the opt-in could not be confirmed by a read-back"
        if event.stale:
            _count(destination, Reason.STALE_OPT_IN)
            return State.REFUSED, "stale: signed more than 5 minutes before it arrived"
    return _consent(event, "subscribed")


def _deleted(event: InboundEvent) -> tuple[str, str]:
    """The platform deleted the contact: our id and state for it are cleared, the time kept
    (shown as "deleted on <platform> on …"); pushed again only if the destination says so."""
    destination = event.destination
    when = event.occurred_at or event.received_at
    cleared = ContactSyncState.objects.filter(
        destination=destination, contact=event.contact
    ).update(
        remote_id="",
        status=SyncStatus.NEVER,
        payload_hash="",
        accepted_content_version=None,
        accepted_config_version=None,
        accepted_email_status="",
        confirmation_ref="",
        last_error="",
        deleted_on_platform_at=when,
        updated_at=timezone.now(),
    )
    note = f"deleted on {destination.connector_class.label}"
    if destination.recreate_deleted and cleared:
        # Due now: the scheduler's retry pass pushes it (this module queues nothing).
        ContactSyncState.objects.filter(destination=destination, contact=event.contact).update(
            status=SyncStatus.PENDING, next_attempt_at=timezone.now()
        )
        note += "; to be pushed again (the destination re-creates deleted contacts)"
    return InboundEvent.State.APPLIED if cleared else InboundEvent.State.IGNORED, note


def _bulk_completed(event: InboundEvent) -> tuple[str, str]:
    """The platform's per-contact outcome of one of our bulk requests (the chunk named on the
    webhook URL): valid contacts synced with their ids, failed ones failed with its reason."""
    destination = event.destination
    chunk = event.data.get("chunk", "")
    if not chunk:
        return InboundEvent.State.IGNORED, "no chunk named on the webhook URL: not ours"
    label = destination.connector_class.label
    answers: dict[str, BatchItemResult] = {}
    for item in event.data.get("valid", []):
        if item.get("external_id"):
            answers[item["external_id"]] = BatchItemResult(
                item["external_id"], remote_id=item.get("remote_id") or None
            )
    for item in event.data.get("failed", []):
        if item.get("external_id"):
            error = PermanentError(label, f"refused in bulk: {item.get('error', '')}")
            answers[item["external_id"]] = BatchItemResult(item["external_id"], error)
    awaiting = set(
        ContactSyncState.objects.filter(
            destination=destination, confirmation_ref__endswith=f"#{chunk}"
        ).values_list("contact__external_id", flat=True)
    )
    answers = {k: v for k, v in answers.items() if k in awaiting}
    written = contacts_confirm_answered(
        destination=destination, answers=answers, context=PushContext(trigger=Trigger.RETRY)
    )
    return InboundEvent.State.APPLIED, f"{len(written)} contacts confirmed or failed"


def _confirm_subscription(event: InboundEvent) -> tuple[str, str]:
    destination = event.destination
    connector = destination_connector(destination=destination)
    note = connector.inbound_confirm_subscription(_platform_event(event))
    _state_update(destination, confirmed_at=timezone.now().isoformat(timespec="seconds"))
    return InboundEvent.State.APPLIED, note


def _state_update(destination: Destination, **changes) -> None:
    """Merge into the destination's inbound state without counting as an edit."""
    with transaction.atomic():
        row = Destination.objects.select_for_update().get(pk=destination.pk)
        state = {**(row.inbound_state or {}), **changes}
        Destination.objects.filter(pk=destination.pk).update(inbound_state=state)
    destination.inbound_state = state


# --------------------------------------------------------------------------- registration


def destination_inbound_register(*, destination: Destination) -> tuple[bool, str]:
    """Register the destination's inbound URL through the platform's API. Returns (done,
    message). A refusal (iVvy's 403 to a key that is not the primary user's) fails this call
    only: the destination is not paused."""
    cls = destination.connector_class
    url = selectors.destination_inbound_url(destination)
    if cls.inbound is None or not cls.inbound.registers_by_api:
        return False, f"{cls.label} is registered in its own settings: follow the steps."
    if not url:
        return False, "Set SYNC_PUBLIC_URL first: without it no webhook can reach us."
    try:
        connector = destination_connector(destination=destination)
        answer = connector.inbound_register(url)
    except (ConnectorError, ConnectorConfigurationError) as err:
        return False, f"Registration failed: {err}"
    now = timezone.now().isoformat(timespec="seconds")
    _state_update(destination, **answer, registered_at=now, url=url, confirmed_at="")
    return True, f"Registered {url} with {cls.label}; the confirmation follows."
