"""Erasing a person (GDPR art. 17), worker side: here first, then on every platform, with a
receipt per platform. Queued by `sync.services.contact_erase` (the only place that enqueues).

Order, and why:
1. Here, at once: the contact and its children, its history rows (contact and children, and
   the admin's log entries naming it), its attempt-log payloads, excerpts and errors (and its
   values wherever a bulk call's log row of other contacts carries them), finished task rows
   naming it, stored import files holding it, and whatever a registered store holds
   (`register_local_eraser`: the inbound event store is wired there). Deleting first means no
   push on save or retry can send the person out again while the platforms are asked.
2. Every destination that held or may hold the person: `connector.erase(...)` (the
   platform's delete call, permanent where it can be; where there is none, what the contract
   lets us blank, and an instruction to erase by hand), then a read-back
   (`connector.read_contact(...)`, None = gone) to confirm it.
3. A receipt per platform: time, calls (method, URL, status), HTTP status and the platform's
   own message. Never a response body: a platform may echo the person (Cendyn's delete answers
   the contact itself). The message is taken from the answer's message keys only and, like the
   URLs, scrubbed of every value the person had (`Scrubber`).

The external ID is the one identifier every remote call needs: it is kept on the erasure
(`pending_external_id`) while some platform has to be retried, and blanked once none has to.
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from contacts.models import Contact
from contacts.services import import_files_erase
from sync.connectors.base import (
    BODY_EXCERPT,
    ConnectorConfigurationError,
    ConnectorError,
    Exchange,
)
from sync.dbretry import with_database_retry
from sync.engine import destination_connector
from sync.models import EraseReceipt, Erasure, InboundEvent, SyncAttempt

logger = logging.getLogger(__name__)
Outcome = EraseReceipt.Outcome

ERASED = "[erased]"
MIN_NEEDLE = 3  # shorter values ("GB", "en") would blank ordinary text, and identify nobody
EMAIL_PATTERN = re.compile(r"[^\s\"'<>@,;:()\[\]]+@[^\s\"'<>@,;:()\[\]]+\.[A-Za-z]{2,}")
RETRYABLE = (Outcome.PENDING, Outcome.FAILED, Outcome.UNCONFIRMED)
SETTLED = (Outcome.DELETED, Outcome.ABSENT, Outcome.BY_HAND)
MESSAGE_LIMIT = 300


# ----------------------------------------------------------------------------- scrubbing


class Scrubber:
    """Replaces every value a person had (and anything shaped like an email) by `[erased]`.

    Built from the contact while it still exists; a retry after the local erasure knows only
    the external ID, so any email-shaped text is removed too, whoever's it is."""

    def __init__(self, values=()):
        forms = set()
        for value in values:
            text = str(value or "").strip()
            if len(text) < MIN_NEEDLE:
                continue
            forms |= {text, quote(text, safe=""), quote_plus(text)}
            if text.startswith("+"):
                forms.add(text[1:])  # a phone without its plus
        needles = sorted((f for f in forms if len(f) >= MIN_NEEDLE), key=len, reverse=True)
        self.needles = needles
        # Whole values only, in any case: a tag "customer" is not scrubbed out of the word
        # "externalCustomerId" in a URL, but "Customer" on its own is.
        self._pattern = (
            re.compile(
                r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, needles)) + r")(?![A-Za-z0-9])",
                re.IGNORECASE,
            )
            if needles
            else None
        )

    @classmethod
    def for_contact(cls, contact: Contact) -> "Scrubber":
        full_name = f"{contact.first_name} {contact.last_name}".strip()
        values = [
            contact.external_id,
            contact.email,
            contact.first_name,
            contact.last_name,
            full_name,
            contact.phone,
            contact.address_line,
            contact.city,
            contact.region,
            contact.postal_code,
            contact.consent_ip,
            contact.birth_date and contact.birth_date.isoformat(),
            *(contact.tags or ()),
            *contact.channels.values_list("value", flat=True),
            *contact.custom_values.values_list("value", flat=True),
            *contact.external_urls.values_list("url", flat=True),
        ]
        return cls(values)

    def __call__(self, text: str) -> str:
        """For what we write about the person (receipts): their values and every email."""
        return EMAIL_PATTERN.sub(ERASED, self.values_only(text))

    def values_only(self, text: str) -> str:
        """For rows about other people (a bulk call's shared answer): the person's values
        only, so the others' emails stay."""
        if not text or self._pattern is None:
            return text
        return self._pattern.sub(ERASED, text)


# ------------------------------------------------------------------------- local erasure


@dataclass(frozen=True)
class Person:
    """Who is being erased, as a local eraser receives them (before the contact is deleted;
    `email` is "" when it was deleted meanwhile)."""

    contact_id: int
    external_id: str
    email: str
    scrub: Scrubber


# name -> eraser(person) -> how many rows or files it removed or scrubbed
LocalEraser = Callable[[Person], int]
LOCAL_ERASERS: dict[str, LocalEraser] = {}


def register_local_eraser(name: str, eraser: LocalEraser) -> None:
    """Add a store that holds personal data to every erasure: `eraser(person)` removes what it
    holds of `person` (by `contact_id`, `external_id` or `email`, scrubbing text with
    `person.scrub`) and returns how many rows it removed or scrubbed; the erasure's summary
    shows the count under `name`. The inbound event store registers itself here, e.g. in its
    AppConfig.ready(): `register_local_eraser("inbound events", inbound_events_erase)`."""
    LOCAL_ERASERS[name] = eraser


def _import_files(person: Person) -> int:
    return import_files_erase(needles=[v for v in (person.email, person.external_id) if v])


register_local_eraser("stored import files", _import_files)


def _inbound_events(person: Person) -> int:
    """What the platforms sent about the person (sync.inbound): their events are deleted,
    found by the contact, the external ID or the email (an event that found no contact)."""
    who = Q(contact_id=person.contact_id)
    if person.external_id:
        who |= Q(external_id=person.external_id)
    if person.email:
        who |= Q(email__iexact=person.email)
    return InboundEvent.objects.filter(who).delete()[0]


register_local_eraser("inbound events", _inbound_events)


def erasure_local_stores() -> list[str]:
    """What an erasure removes here, for its confirmation page."""
    return [
        "the contact and its channels, custom values, groups, mailing lists and external URLs",
        "its sync states on every destination",
        "its history rows (the contact's and its children's) and the admin log entries naming it",
        "the attempt-log payloads, excerpts and errors of its pushes (and its values in other "
        "contacts' rows, e.g. a bulk call's shared answer)",
        "finished task rows naming it",
        *LOCAL_ERASERS,
    ]


def person_erase_local(
    *, contact_id: int, external_id: str, contact: Contact | None, scrub: Scrubber
) -> dict[str, int]:
    """Remove the person from every local store; returns counts by store (no values).
    `contact` is None when it was deleted meanwhile (an ordinary delete keeps its history and
    log rows): what is left of it is removed by its id and external ID."""
    person = Person(contact_id, external_id, contact.email if contact else "", scrub)
    counts: dict[str, int] = {}
    with transaction.atomic():
        own = Q(contact_id=person.contact_id)
        if person.external_id:
            own |= Q(external_id=person.external_id)
        counts["attempt-log rows emptied"] = SyncAttempt.objects.filter(own).update(
            request_body="", response_excerpt="", error="", external_id="", contact=None
        )
        if contact is not None:
            contact._erasing = True  # sync.signals: the erasure deletes on platforms itself
            contact.delete()  # its children and sync states go with it (CASCADE)
        # after the delete: django-simple-history has just written the "deleted" records
        counts["history rows"] = _delete_history(person.contact_id)
        counts["admin log entries"] = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Contact),
            object_id=str(person.contact_id),
        ).delete()[0]
    # Scans of whole tables: each in its own short write, outside the one above (SQLite has
    # one writer, and the contact is gone already).
    counts["other attempt-log rows scrubbed"] = _scrub_other_attempts(person)
    counts["finished task rows"] = _delete_finished_tasks(person)
    for name, eraser in LOCAL_ERASERS.items():
        counts[name] = eraser(person)
    return counts


def _delete_history(contact_id: int) -> int:
    """Every historical row of the contact, and of each model whose history names it by a
    `contact` field (its children, today and any added later)."""
    deleted = Contact.history.model.objects.filter(id=contact_id).delete()[0]
    for model in apps.get_models():
        if not model.__name__.startswith("Historical") or model is Contact.history.model:
            continue
        names = {f.name for f in model._meta.get_fields()}
        if "contact" in names and "history_id" in names:
            deleted += model.objects.filter(contact_id=contact_id).delete()[0]
    return deleted


def _scrub_other_attempts(person: Person) -> int:
    """Log rows of other contacts that carry the person (a bulk call's body holds the whole
    chunk): the person's values in them are replaced, the rest kept. A scan of the text
    columns, as rare as erasures are."""
    needles = [v for v in (person.email, person.external_id) if len(v or "") >= MIN_NEEDLE]
    if not needles:
        return 0
    match = Q()
    for needle in needles:
        for column in ("request_body", "response_excerpt", "error"):
            match |= Q(**{f"{column}__icontains": needle})
    rows = list(SyncAttempt.objects.filter(match))
    for row in rows:
        row.request_body = person.scrub.values_only(row.request_body)
        row.response_excerpt = person.scrub.values_only(row.response_excerpt)
        row.error = person.scrub.values_only(row.error)
    SyncAttempt.objects.bulk_update(rows, ["request_body", "response_excerpt", "error"])
    return len(rows)


def _delete_finished_tasks(person: Person) -> int:
    """Finished task rows whose arguments name the person (a remote delete's external ID);
    queued ones are left to run. Push tasks carry contact ids only."""
    if len(person.external_id or "") < MIN_NEEDLE:
        return 0
    finished = [TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED]
    return DBTaskResult.objects.filter(
        status__in=finished, args_kwargs__icontains=person.external_id
    ).delete()[0]


# ---------------------------------------------------------------------- on the platforms


def erasure_run(*, erasure_id: int) -> None:
    """The task: erase here (once), then on each platform not yet settled, then finish."""
    erasure = Erasure.objects.filter(pk=erasure_id).first()
    if erasure is None:
        return
    external_id = erasure.pending_external_id
    contact = None
    if erasure.contact_pk is not None:
        contact = Contact.objects.filter(pk=erasure.contact_pk).first()
    scrub = Scrubber.for_contact(contact) if contact else Scrubber([external_id])
    if erasure.local_erased_at is None and erasure.contact_pk is not None:
        summary = person_erase_local(
            contact_id=erasure.contact_pk, external_id=external_id, contact=contact, scrub=scrub
        )
        Erasure.objects.filter(pk=erasure.pk).update(
            local_erased_at=timezone.now(), local_summary=summary, contact_pk=None
        )
    for receipt in erasure.receipts.filter(outcome__in=RETRYABLE).select_related("destination"):
        receipt_erase_on_platform(receipt=receipt, external_id=external_id, scrub=scrub)
    with_database_retry(erasure_finish, erasure_id=erasure.pk)


def receipt_erase_on_platform(*, receipt: EraseReceipt, external_id: str, scrub: Scrubber):
    """Erase on one platform, read back, and write the receipt. No transaction is open here:
    the calls are HTTP."""
    receipt.attempts += 1
    receipt.at = timezone.now()
    receipt.instruction = ""
    connector = None
    exchanges: list[Exchange] = []
    try:
        if receipt.destination is None:
            raise ConnectorConfigurationError("the destination was deleted")
        connector = destination_connector(destination=receipt.destination, quick_retries=2)
        remote_id = receipt.remote_id or None
        result = connector.erase(external_id=external_id, remote_id=remote_id)
        exchanges = connector.drain_exchanges()
        said = _platform_message(connector, exchanges)
        if result.remote_id:
            receipt.remote_id = result.remote_id
        if result.deleted:
            still_there = connector.read_contact(external_id=external_id, remote_id=remote_id)
            receipt.outcome = Outcome.DELETED if still_there is None else Outcome.UNCONFIRMED
            readback = (
                "read back: not found"
                if still_there is None
                else "read back: the platform still holds the contact"
            )
            receipt.message = "; ".join(p for p in (said, readback) if p)
        elif result.absent:
            receipt.outcome = Outcome.ABSENT
            receipt.message = f"{connector.label} holds no such contact."
        else:
            held = connector.read_contact(external_id=external_id, remote_id=receipt.remote_id)
            blanked = f"Blanked: {', '.join(result.blanked)}"
            if held is None:  # gone meanwhile (erased by hand already): nothing left to do
                receipt.outcome = Outcome.ABSENT
                receipt.message = f"{blanked}; read back: not found"
            else:
                receipt.outcome = Outcome.BY_HAND
                receipt.instruction = result.instruction
                receipt.message = f"{blanked}; read back: still held until erased by hand"
        receipt.http_status = exchanges[-1].status if exchanges else None
    except (ConnectorError, ConnectorConfigurationError) as err:
        receipt.outcome = Outcome.FAILED
        receipt.http_status = getattr(err, "status", None)
        receipt.message = str(err)
    if connector is not None:
        exchanges += connector.drain_exchanges()
    receipt.calls = "\n".join(
        f"{e.method} {e.url} -> {f'HTTP {e.status}' if e.status else 'no answer'}"
        for e in exchanges
    )
    receipt.message = scrub(receipt.message)[:MESSAGE_LIMIT]
    receipt.calls = scrub(receipt.calls)
    with_database_retry(receipt.save)


def _platform_message(connector, exchanges: list[Exchange]) -> str:
    """The platform's own words from its last answer: its message keys only (the base
    connector's `error_message` reads `message`, `error`, …), never the body itself."""

    if not exchanges or not exchanges[-1].response_excerpt:
        return ""
    try:
        data = json.loads(exchanges[-1].response_excerpt[:BODY_EXCERPT])
    except ValueError:
        return ""
    return connector.error_message(data) if isinstance(data, dict) else ""


def erasure_finish(*, erasure_id: int) -> None:
    """Done when every platform settled (deleted, absent, or blanked with an instruction);
    else it needs attention and keeps the external ID for the retry."""
    with transaction.atomic():
        erasure = Erasure.objects.select_for_update().get(pk=erasure_id)
        outcomes = set(erasure.receipts.values_list("outcome", flat=True))
        settled = outcomes <= set(SETTLED)
        erasure.state = Erasure.State.DONE if settled else Erasure.State.ATTENTION
        erasure.finished_at = timezone.now()
        if settled:
            erasure.pending_external_id = ""
        erasure.save(update_fields=["state", "finished_at", "pending_external_id"])
