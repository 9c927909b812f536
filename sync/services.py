"""The sync engine: the only code that calls connectors and writes sync state.

A push of one contact to one destination goes claim -> build -> compare -> send -> record:
- claim: a short transaction marks the state in progress, unless another worker holds it;
- build and compare: an unchanged contact (same content and configuration version, or the
  same payload hash as the one last accepted) makes no request;
- send: outside any transaction (no HTTP inside `atomic`);
- record: a short transaction writes the state, the attempt log and the run's counts.
Failures follow part A of shared/platforms.md: retryable ones are rescheduled with exponential
backoff and jitter, permanent ones fail at once, 401/403 pause the destination.
"""

import hashlib
import json
import logging
import random
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from contacts.models import Contact
from sync import selectors
from sync.connectors.base import (
    BaseConnector,
    ConnectorConfigurationError,
    ConnectorError,
    LocalRateLimiter,
    PermanentError,
)
from sync.connectors.records import ContactRecord, RemoteState
from sync.models import (
    ContactSyncState,
    Destination,
    SyncAttempt,
    SyncRun,
    SyncStatus,
    Trigger,
)

logger = logging.getLogger(__name__)
Outcome = SyncAttempt.Outcome
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"
# Statuses in which the platform holds the contact as we last sent it.
HELD_STATUSES = (SyncStatus.SYNCED, SyncStatus.UNCHANGED)


def destination_connector(*, destination: Destination, quick_retries: int = 0,
                          rate_limiter=None) -> BaseConnector:
    """A connector for the destination, with its credentials read from the environment.

    Raises ConnectorConfigurationError naming the variable when a credential is missing."""
    cls = destination.connector_class
    env_names = {name: getattr(destination, field) for name, field in cls.credentials.items()}
    return cls(
        base_url=destination.effective_base_url,
        credentials=cls.read_credentials(env_names),
        mapping=selectors.destination_mapping(destination),
        options={
            "account_id": destination.account_id,
            "update_if_exists": destination.update_if_exists,
        },
        timeout=destination.timeout,
        rate_limiter=rate_limiter,
        quick_retries=quick_retries,
    )


def payload_hash(payload: dict, record: ContactRecord) -> str:
    """Fingerprint of what a push sends: the body, plus list memberships, which some platforms
    receive in calls of their own."""
    lists = [sorted(record.group_ids), sorted(record.subscriptions.items())]
    text = json.dumps([payload, lists], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def retry_delay(*, attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than the platform's Retry-After."""
    ceiling = min(settings.SYNC_RETRY_MAX_SECONDS,
                  settings.SYNC_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


# ------------------------------------------------------------------------ one contact


@dataclass
class PushContext:
    """Who asked for a push and under which run; shared by every contact of one task."""

    trigger: str
    user_id: int | None = None
    run_id: int | None = None
    force: bool = False
    worker: str = WORKER_NAME


def contact_push(*, contact_id: int, destination: Destination, context: PushContext,
                 connector: BaseConnector | None = None) -> ContactSyncState | None:
    """Push one contact to one destination and record the outcome.

    Returns the state as written, or None when another worker holds the contact (that worker
    re-pushes when it sees a newer version) or the contact no longer exists."""
    if destination.is_paused:
        return _mark_waiting(contact_id, destination, context)
    state = _claim(contact_id, destination, context)
    if state is None:
        return None
    contact = selectors.contacts_for_records(Contact.objects.filter(pk=contact_id)).first()
    if contact is None:
        state.delete()
        return None
    record = selectors.contact_record(contact)
    result = _push_record(record, state, destination, context, connector)
    _repush_if_changed_meanwhile(record, destination, context)
    return result


def _push_record(record, state, destination, context, connector):
    finish = _Finisher(state, destination, context, record)
    if destination.marketing_consent_only and not record.gdpr_marketing_consent:
        return finish.skipped("no GDPR marketing consent")
    if not context.force and _versions_unchanged(state, record, destination):
        return finish.unchanged(state.payload_hash)
    try:
        connector = connector or destination_connector(destination=destination)
        remote = RemoteState(state.remote_id or None, state.accepted_email_status or None)
        payload = connector.build_payload(record, remote)
        digest = payload_hash(payload, record)
        if not context.force and digest == state.payload_hash and state.status in HELD_STATUSES:
            return finish.unchanged(digest)
        result = connector.push(record, remote)
    except ConnectorConfigurationError as err:
        destination_pause(destination=destination, error=str(err))
        return finish.waiting(str(err), connector)
    except ConnectorError as err:
        if err.destination_wide:
            destination_pause(destination=destination, error=str(err))
            return finish.waiting(str(err), connector)
        if err.retryable:
            return finish.retry(err, connector)
        return finish.failed(err, connector)
    return finish.accepted(result, digest, connector)


def _versions_unchanged(state, record, destination) -> bool:
    return (
        state.status in HELD_STATUSES
        and state.accepted_content_version == record.content_version
        and state.accepted_config_version == destination.config_version
    )


def _claim(contact_id, destination, context) -> ContactSyncState | None:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    for _ in range(2):  # a concurrent first push may create the row between our get and create
        try:
            with transaction.atomic():
                state, _ = ContactSyncState.objects.select_for_update().get_or_create(
                    contact_id=contact_id, destination=destination
                )
                busy = (state.status == SyncStatus.IN_PROGRESS and state.claimed_at
                        and state.claimed_at > stale and state.claimed_by != context.worker)
                if busy:
                    return None
                state.status = SyncStatus.IN_PROGRESS
                state.claimed_at, state.claimed_by = now, context.worker
                state.next_attempt_at = None
                state.save(update_fields=["status", "claimed_at", "claimed_by",
                                          "next_attempt_at", "updated_at"])
                return state
        except IntegrityError:
            continue
    return None


def _repush_if_changed_meanwhile(record, destination, context):
    """A save that landed while we were pushing was refused its own push (we held the
    contact): push the newer version now, so the last saved values reach the platform."""
    latest = Contact.objects.filter(pk=record.id).values_list("content_version", flat=True).first()
    if latest is not None and latest > record.content_version:
        contacts_enqueue_push(contact_ids=[record.id], destinations=[destination],
                              trigger=context.trigger, user_id=context.user_id, run=None)


def _mark_waiting(contact_id, destination, context):
    state, _ = ContactSyncState.objects.get_or_create(contact_id=contact_id, destination=destination)
    finish = _Finisher(state, destination, context, None)
    return finish.waiting(destination.pause_error or "the destination is paused", None)


class _Finisher:
    """Writes one push's outcome: state, attempt log and run counters, in one transaction."""

    def __init__(self, state, destination, context, record):
        self.state, self.destination, self.context, self.record = state, destination, context, record
        self.now = timezone.now()

    def accepted(self, result, digest, connector):
        state = self.state
        if result.remote_id:
            state.remote_id = result.remote_id
        self._accept_versions(digest)
        state.last_success_at = self.now
        if result.created:
            return self._write(SyncStatus.SYNCED, Outcome.CREATED, "created", connector)
        return self._write(SyncStatus.SYNCED, Outcome.UPDATED, "updated", connector)

    def unchanged(self, digest):
        self._accept_versions(digest)
        return self._write(SyncStatus.UNCHANGED, Outcome.UNCHANGED, "unchanged", None)

    def skipped(self, reason):
        self.state.skip_reason = reason
        return self._write(SyncStatus.SKIPPED, Outcome.SKIPPED, "skipped", None, error=reason)

    def waiting(self, message, connector):
        self.state.last_error = message
        return self._write(SyncStatus.WAITING, Outcome.WAITING, None, connector, error=message)

    def retry(self, err: ConnectorError, connector):
        state = self.state
        state.attempts += 1
        state.last_error = str(err)
        if state.attempts >= settings.SYNC_MAX_ATTEMPTS:
            return self._write(SyncStatus.FAILED, Outcome.FAILED, "failed", connector, error=str(err))
        delay = retry_delay(attempts=state.attempts, retry_after=err.retry_after)
        state.next_attempt_at = self.now + timedelta(seconds=delay)
        return self._write(SyncStatus.PENDING, Outcome.RETRY, None, connector, error=str(err))

    def failed(self, err: ConnectorError, connector):
        self.state.attempts += 1
        self.state.last_error = str(err)
        return self._write(SyncStatus.FAILED, Outcome.FAILED, "failed", connector, error=str(err))

    def _accept_versions(self, digest):
        state, record = self.state, self.record
        state.payload_hash = digest
        state.accepted_content_version = record.content_version
        state.accepted_config_version = self.destination.config_version
        state.accepted_email_status = record.email_status
        state.attempts = 0
        state.last_error = state.skip_reason = ""

    def _write(self, status, outcome, run_counter, connector, *, error=""):
        state = self.state
        state.status = status
        state.claimed_at, state.claimed_by = None, ""
        state.last_attempt_at = self.now
        if self.context.run_id:
            state.run_id = self.context.run_id
        exchanges = connector.drain_exchanges() if connector is not None else []
        with transaction.atomic():
            state.save()
            SyncAttempt.objects.create(**_attempt_fields(self, outcome, error, exchanges))
            if self.context.run_id and run_counter:
                SyncRun.objects.filter(pk=self.context.run_id).update(
                    **{run_counter: F(run_counter) + 1}
                )
        return state


def _attempt_fields(finisher, outcome, error, exchanges):
    record, state = finisher.record, finisher.state
    return {
        "destination": finisher.destination,
        "contact_id": state.contact_id,
        "external_id": record.external_id if record else "",
        "run_id": finisher.context.run_id,
        "trigger": finisher.context.trigger,
        "user_id": finisher.context.user_id,
        "started_at": finisher.now,
        "outcome": outcome,
        "error": error,
        **_exchange_fields(exchanges),
    }


# ------------------------------------------------------------------ many contacts, tasks


def destinations_for_save() -> list[Destination]:
    return list(Destination.objects.filter(enabled=True, push_on_save=True))


def contacts_push_chunk(*, destination_id: int, contact_ids: list[int], context: PushContext,
                        quick_retries: int = 2) -> None:
    """Push a chunk of contacts to one destination through one connector (one session).

    Stops early, leaving the rest as they were, when the run is cancelled."""
    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is None:
        return
    connector = None
    try:
        connector = destination_connector(
            destination=destination, quick_retries=quick_retries,
            rate_limiter=LocalRateLimiter(destination.effective_rate_limit),
        )
    except ConnectorConfigurationError as err:
        destination_pause(destination=destination, error=str(err))
    for contact_id in contact_ids:
        if context.run_id and _run_cancelled(context.run_id):
            return  # run_cancel put the rest back as they were
        destination.refresh_from_db(fields=["paused_at", "pause_error", "config_version"])
        contact_push(contact_id=contact_id, destination=destination, context=context,
                     connector=connector)
    _finish_run_if_done(context.run_id)


def _run_cancelled(run_id: int) -> bool:
    return SyncRun.objects.filter(pk=run_id, state=SyncRun.State.CANCELLED).exists()


def _finish_run_if_done(run_id: int | None) -> None:
    if not run_id:
        return
    SyncRun.objects.filter(pk=run_id, state=SyncRun.State.RUNNING).filter(
        total__lte=F("created") + F("updated") + F("unchanged") + F("failed") + F("skipped")
    ).update(state=SyncRun.State.FINISHED, finished_at=timezone.now())


def contacts_enqueue_push(*, contact_ids: Iterable[int], destinations: list[Destination],
                          trigger: str, user_id: int | None = None, run: SyncRun | None = None,
                          force: bool = False) -> int:
    """Mark the contacts pending on each destination and queue their push, in chunks.

    Returns the number of (contact, destination) pushes queued."""
    from sync import tasks  # tasks import this module

    ids = list(contact_ids)
    queued = 0
    size = settings.SYNC_CHUNK_SIZE
    for destination in destinations:
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            _mark_pending(chunk, destination, run)
            tasks.push_contacts.enqueue(
                destination_id=destination.pk, contact_ids=chunk, trigger=trigger,
                user_id=user_id, run_id=run.pk if run else None, force=force,
            )
            queued += len(chunk)
    return queued


def _mark_pending(contact_ids, destination, run):
    ContactSyncState.objects.bulk_create(
        [ContactSyncState(contact_id=cid, destination=destination) for cid in contact_ids],
        ignore_conflicts=True,
    )
    updates = {"status": SyncStatus.PENDING, "next_attempt_at": None}
    if run is not None:
        updates["run"] = run
    ContactSyncState.objects.filter(destination=destination, contact_id__in=contact_ids).exclude(
        status=SyncStatus.IN_PROGRESS
    ).update(**updates)


def run_start(*, trigger: str, user_id: int | None, destination: Destination | None,
              total: int, force: bool = False) -> SyncRun:
    return SyncRun.objects.create(trigger=trigger, user_id=user_id, destination=destination,
                                  total=total, force=force)


def contacts_push_selected(*, contact_ids: list[int], destination: Destination | None,
                           trigger: str, user_id: int | None, force: bool = False) -> SyncRun:
    """An admin action or command: one run over the chosen destinations, queued."""
    destinations = [destination] if destination else list(Destination.objects.filter(enabled=True))
    run = run_start(trigger=trigger, user_id=user_id, destination=destination,
                    total=len(contact_ids) * len(destinations), force=force)
    contacts_enqueue_push(contact_ids=contact_ids, destinations=destinations, trigger=trigger,
                          user_id=user_id, run=run, force=force)
    return run


def run_cancel(*, run: SyncRun) -> None:
    """Stop a running push: what was not sent stays as it was before the run."""
    SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.RUNNING).update(
        state=SyncRun.State.CANCELLED, finished_at=timezone.now()
    )
    ContactSyncState.objects.filter(run=run, status=SyncStatus.PENDING,
                                    next_attempt_at__isnull=True).update(
        status=SyncStatus.NEVER, run=None
    )


# ----------------------------------------------------------------------- on save


def contacts_changed(*, contact_ids: set[int], user_id: int | None) -> None:
    """After a commit that changed these contacts: push them to every destination that pushes
    on save. One contact in immediate mode is pushed here and now, one try per destination;
    anything else is queued."""
    destinations = destinations_for_save()
    if not destinations or not contact_ids:
        return
    if settings.SYNC_ON_SAVE_MODE == "immediate" and len(contact_ids) == 1:
        (contact_id,) = contact_ids
        context = PushContext(trigger=Trigger.SAVE, user_id=user_id)
        for destination in destinations:
            try:
                contact_push(contact_id=contact_id, destination=destination, context=context)
            except Exception:  # never fail the user's save: log, and let a retry pick it up
                logger.exception("push of contact %s to %s failed", contact_id, destination)
        return
    contacts_enqueue_push(contact_ids=sorted(contact_ids), destinations=destinations,
                          trigger=Trigger.SAVE, user_id=user_id)


def contact_deleted(*, external_id: str, remote_ids: dict[int, str], user_id: int | None) -> None:
    """Queue the remote delete on each destination that enables it. The values it needs are
    passed along: the local rows are gone by the time it runs."""
    from sync import tasks

    for destination in Destination.objects.filter(enabled=True, delete_on_platform=True):
        tasks.delete_contact.enqueue(destination_id=destination.pk, external_id=external_id,
                                     remote_id=remote_ids.get(destination.pk, ""), user_id=user_id)


def contact_delete_remote(*, destination_id: int, external_id: str, remote_id: str,
                          user_id: int | None) -> None:
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None:
        return
    attempt = SyncAttempt(destination=destination, external_id=external_id, trigger=Trigger.DELETE,
                          user_id=user_id, started_at=timezone.now())
    connector = None
    try:
        connector = destination_connector(destination=destination, quick_retries=2)
        if not connector.supports_delete:
            attempt.outcome = Outcome.SKIPPED
            attempt.error = f"{connector.label} has no delete call: the contact stays there."
        else:
            connector.delete(external_id=external_id, remote_id=remote_id or None)
            attempt.outcome = Outcome.DELETED
    except (ConnectorError, ConnectorConfigurationError) as err:
        attempt.outcome = Outcome.FAILED
        attempt.error = str(err)
    if connector is not None:
        for name, value in _exchange_fields(connector.drain_exchanges()).items():
            setattr(attempt, name, value)
    attempt.save()


def _exchange_fields(exchanges):
    if not exchanges:
        return {}
    last = exchanges[-1]
    return {
        "duration_ms": sum(e.duration_ms for e in exchanges),
        "http_status": last.status,
        "request_body": "\n\n".join(f"{e.method} {e.url}\n{e.request_body}" for e in exchanges),
        "response_excerpt": last.response_excerpt,
    }


# ---------------------------------------------------------------- destination-wide


def destination_pause(*, destination: Destination, error: str) -> None:
    """Credentials refused: stop pushing to this destination until a connection test passes."""
    now = timezone.now()
    updated = Destination.objects.filter(pk=destination.pk, paused_at__isnull=True).update(
        paused_at=now, pause_error=error
    )
    destination.paused_at = destination.paused_at or now
    destination.pause_error = error
    if updated:
        logger.warning("destination %s paused: %s", destination, error)


def destination_test_connection(*, destination: Destination) -> tuple[bool, str]:
    """Call the platform's harmless authenticated endpoint. On success a paused destination
    resumes and its waiting contacts are queued again. Returns (ok, message)."""
    try:
        connector = destination_connector(destination=destination)
        message = connector.test_connection()
    except (ConnectorError, ConnectorConfigurationError) as err:
        return False, str(err)
    if destination.paused_at is not None:
        destination_resume(destination=destination)
        message += " The destination is resumed; waiting contacts are queued."
    return True, message


def destination_resume(*, destination: Destination) -> int:
    Destination.objects.filter(pk=destination.pk).update(paused_at=None, pause_error="")
    destination.paused_at, destination.pause_error = None, ""
    waiting = list(ContactSyncState.objects.filter(
        destination=destination, status=SyncStatus.WAITING
    ).values_list("contact_id", flat=True))
    if waiting:
        contacts_enqueue_push(contact_ids=waiting, destinations=[destination], trigger=Trigger.RETRY)
    return len(waiting)


def destination_refresh_options(*, destination: Destination) -> int:
    """Fetch the platform's fields and lists for the mapping choices; returns how many."""
    from sync.models import RemoteOption

    connector = destination_connector(destination=destination)
    options = connector.fetch_options()
    with transaction.atomic():
        RemoteOption.objects.filter(destination=destination).delete()
        RemoteOption.objects.bulk_create([
            RemoteOption(destination=destination, kind=o.kind, remote_id=o.remote_id,
                         label=o.label, type=o.type)
            for o in options
        ])
        Destination.objects.filter(pk=destination.pk).update(options_refreshed_at=timezone.now())
    return len(options)


def contact_preview_payloads(*, contact_ids: list[int]) -> list[dict]:
    """What each enabled destination would receive for each contact; sends nothing."""
    destinations = list(Destination.objects.filter(enabled=True))
    states = {
        (s.contact_id, s.destination_id): s
        for s in ContactSyncState.objects.filter(contact_id__in=contact_ids)
    }
    previews = []
    for record in selectors.contact_records(contact_ids):
        for destination in destinations:
            state = states.get((record.id, destination.pk))
            remote = RemoteState(state.remote_id or None, state.accepted_email_status or None) \
                if state else RemoteState()
            try:
                connector = destination_connector(destination=destination)
                body = json.dumps(connector.build_payload(record, remote), indent=2,
                                  ensure_ascii=False, default=str)
            except (ConnectorConfigurationError, PermanentError) as err:
                body = f"Cannot build: {err}"
            previews.append({"record": record, "destination": destination, "payload": body})
    return previews


# ----------------------------------------------------------------------- retries


def retries_enqueue_due(*, now=None, limit: int = 5000) -> int:
    """One pass of the scheduler: take back work held by dead workers and queue the retries
    that are due. Safe to run on several machines at once (rows are claimed under lock).
    Returns the number of pushes queued."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    ContactSyncState.objects.filter(status=SyncStatus.IN_PROGRESS, claimed_at__lt=stale).update(
        status=SyncStatus.PENDING, next_attempt_at=now, claimed_at=None, claimed_by=""
    )
    _requeue_dead_tasks(stale)
    with transaction.atomic():
        due = list(
            ContactSyncState.objects.select_for_update(skip_locked=True)
            .filter(status=SyncStatus.PENDING, next_attempt_at__lte=now,
                    destination__enabled=True, destination__paused_at__isnull=True)
            .values_list("pk", "contact_id", "destination_id")[:limit]
        )
        ContactSyncState.objects.filter(pk__in=[pk for pk, _, _ in due]).update(next_attempt_at=None)
    by_destination: dict[int, list[int]] = {}
    for _, contact_id, destination_id in due:
        by_destination.setdefault(destination_id, []).append(contact_id)
    for destination in Destination.objects.filter(pk__in=by_destination):
        contacts_enqueue_push(contact_ids=by_destination[destination.pk], destinations=[destination],
                              trigger=Trigger.RETRY)
    return len(due)


def _requeue_dead_tasks(stale) -> None:
    """django-tasks-db leaves a task RUNNING for ever when its worker is killed: mark it failed
    and queue its contacts again (those already pushed come back unchanged, no request)."""
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from sync import tasks

    with transaction.atomic():
        dead = list(
            DBTaskResult.objects.select_for_update(skip_locked=True).filter(
                status=TaskResultStatus.RUNNING, started_at__lt=stale,
                task_path=tasks.push_contacts.module_path,
            )
        )
        for result in dead:
            DBTaskResult.objects.filter(pk=result.pk).update(status=TaskResultStatus.FAILED,
                                                            finished_at=timezone.now())
    for result in dead:
        kwargs = result.args_kwargs.get("kwargs", {})
        if kwargs.get("contact_ids"):
            tasks.push_contacts.enqueue(**kwargs)
            logger.warning("re-queued %d contacts of dead task %s",
                           len(kwargs["contact_ids"]), result.pk)
