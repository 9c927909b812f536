"""Push mechanics: one contact, or a chunk of contacts, to one destination.

Each push goes claim -> build -> compare -> send -> record:
- claim: a short transaction marks the state in progress, unless another worker holds it;
- build and compare: an unchanged contact (same content and configuration version, or the
  same payload hash as the one last accepted) makes no request;
- send: outside any transaction (no HTTP inside `atomic`), one contact at a time, or in bulk
  where the platform has a batch endpoint;
- record: a short transaction writes the states, the attempt log and the run's counts.
Failures follow part A of shared/platforms.md: retryable ones are rescheduled with exponential
backoff and jitter (never before Retry-After), permanent ones fail at once with the platform's
message, 401/403 pause the destination. `sync.services` is the public face of this module.
"""

import dataclasses
import hashlib
import json
import logging
import operator
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import NamedTuple
from urllib.parse import quote_plus

from django.conf import settings
from django.db import connection, models, reset_queries, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from contacts.models import Contact
from sync import alerts, consent, selectors
from sync.connectors.base import (
    BaseConnector,
    BatchItemResult,
    Built,
    ConnectorConfigurationError,
    ConnectorError,
    Exchange,
    RetryableError,
    Unconfirmed,
)
from sync.connectors.records import ContactRecord, RemoteState
from sync.dbretry import with_database_retry
from sync.inflight import NOT_SENT, InFlight
from sync.models import (
    ContactDrift,
    ContactSyncState,
    Destination,
    SyncAttempt,
    SyncRun,
    SyncStatus,
    Trigger,
    WorkerHeartbeat,
)
from sync.ratelimit import DatabaseRateLimiter
from sync.sqlids import IdIn

logger = logging.getLogger(__name__)
Outcome = SyncAttempt.Outcome
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"
STATE_FIELDS = [
    "remote_id",
    "status",
    "skip_reason",
    "last_error",
    "next_attempt_at",
    "attempts",
    "last_attempt_at",
    "last_success_at",
    "payload_hash",
    "accepted_content_version",
    "accepted_config_version",
    "accepted_email_status",
    "accepted_keys",
    "confirmation_ref",
    "deleted_on_platform_at",
    "claimed_at",
    "claimed_by",
    "run",
    "updated_at",
]
CHECK_EVERY = 1.0  # seconds between checks for a cancelled run or a paused destination
WRITE_EVERY, WRITE_EVERY_SECONDS = 25, 0.5  # outcomes written per batch, at least this often
GIVE_WAY_AFTER = 0.05  # seconds of rate-limit wait a bulk chunk gives its place back for
# A chunk that found nothing else ready asks the queue again only after this long (_GiveWay).
GIVE_WAY_RECHECK = 0.25
# A state in one of these still owes its run an outcome; the others have settled.
OWED = (SyncStatus.PENDING, SyncStatus.IN_PROGRESS, SyncStatus.WAITING, SyncStatus.AWAITING)
DRIFT_SETTLED = frozenset({Outcome.CREATED, Outcome.UPDATED, Outcome.ACCEPTED, Outcome.SKIPPED})


class StateRow:
    """One contact's sync state as the engine works on it: the columns of ContactSyncState as
    plain attributes, read with `values_list` and written back by `_save_states`. A model
    instance per contact (its __init__, its signals, per-field preparation) cost more than the
    push itself on a bulk chunk. `as_model()` gives the model instance where one is wanted
    (a single push's caller). `stored` holds the sync columns as the database holds them
    (`remember_stored`), so that only those that changed are written back."""

    SYNC_COLUMNS = tuple(f"{name}_id" if name == "run" else name for name in STATE_FIELDS)
    COLUMNS = ("id", "contact_id", "destination_id") + SYNC_COLUMNS
    __slots__ = COLUMNS + ("claimed_from", "stored")

    def __init__(self, values):
        for name, value in zip(self.COLUMNS, values, strict=True):
            setattr(self, name, value)
        self.claimed_from = self.status
        self.stored = None  # not known: every column is written

    def remember_stored(self) -> None:
        self.stored = _sync_values(self)

    @property
    def pk(self) -> int:
        return self.id

    def get_status_display(self) -> str:
        return SyncStatus(self.status).label

    def as_model(self) -> ContactSyncState:
        state = ContactSyncState(**{name: getattr(self, name) for name in self.COLUMNS})
        state._state.adding, state._state.db = False, connection.alias  # as read from it
        return state


_sync_values = operator.attrgetter(*StateRow.SYNC_COLUMNS)  # a state's sync columns, in order


@dataclass
class PushContext:
    """Who asked for a push and under which run; shared by every contact of one task."""

    trigger: str
    user_id: int | None = None
    run_id: int | None = None
    force: bool = False
    # the claimant: a process, and a thread in it (web servers push from several threads)
    worker: str = field(default_factory=lambda: f"{WORKER_NAME}:{threading.get_ident()}")
    # a bulk chunk may give its place back rather than wait on its destination's rate limit
    # while other work is ready; the contacts it did not reach (still claimed by it) are
    # left here for the task to queue again (sync.services.contacts_requeue)
    may_give_way: bool = False
    handed_back: list[int] = field(default_factory=list)
    # with requests in flight, a bulk chunk asks this for the contact ids of the next chunk
    # of its push (None: none) and goes on with them (sync.tasks, `_next_records`)
    next_chunk: Callable[[], list[int] | None] | None = None


def destination_connector(
    *, destination: Destination, quick_retries: int = 0, throttle: bool = True
) -> BaseConnector:
    """A connector for the destination, credentials read from the environment, requests
    throttled by the destination's shared rate limit.

    Raises ConnectorConfigurationError naming the variable when a credential is missing."""
    cls = destination.connector_class
    problem = destination.policy_problem()  # rows saved under an older or wider policy
    if problem:
        raise ConnectorConfigurationError(f"{destination}: {problem}")
    limiter = (
        DatabaseRateLimiter(destination.pk, destination.effective_rate_limit, cls.call_classes)
        if throttle
        else None
    )
    connector = cls(
        base_url=destination.effective_base_url,
        credentials=cls.read_credentials(destination.credential_variables),
        mapping=selectors.destination_mapping(destination),
        options=dict(destination.settings or {}),
        timeout=destination.timeout,
        rate_limiter=limiter,
        quick_retries=quick_retries,
    )
    connector.inbound_url = selectors.destination_inbound_url(destination)
    return connector


def payload_hash(payload: dict, record: ContactRecord) -> str:
    """Fingerprint of what a push sends: the body, plus list memberships and consent
    statuses, which some platforms receive in calls of their own (Yespo's segments and
    unsubscribed-emails list)."""
    lists = [sorted(record.group_ids), sorted(record.subscriptions.items())]
    lists.append([record.email_status, record.sms_status])
    text = json.dumps([payload, lists], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def retry_delay(*, attempts: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than the platform's Retry-After."""
    ceiling = min(
        settings.SYNC_RETRY_MAX_SECONDS,
        settings.SYNC_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1),
    )
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


# ------------------------------------------------------------------------------- decide


@dataclass
class _Result:
    """One contact's outcome, applied to its state, waiting to be written."""

    state: ContactSyncState
    outcome: str
    counter: str | None  # the run's count this adds to
    external_id: str = ""
    error: str = ""
    exchanges: list[Exchange] = field(default_factory=list)


class _Decide:
    """Turns what happened to one contact into its new state and attempt-log entry."""

    def __init__(self, state, destination, record):
        self.state, self.destination, self.record = state, destination, record
        self.now = timezone.now()

    def accepted(self, remote_id, created, digest, exchanges, held=None, notice=""):
        """Synced. `created`: True or False as the platform (or our lookup) says, None where
        it answers a create and an update alike. `notice`: cleared values the platform keeps
        (the attempt log names them, so none is reported as synced)."""
        self._accept(digest, held)
        return self._synced(remote_id, created, exchanges, notice)

    def confirmed(self, remote_id, created, exchanges):
        """The platform confirmed what it accepted in bulk (the payload and versions written
        when it accepted them stay)."""
        state = self.state
        state.attempts = 0
        state.last_error = ""
        state.next_attempt_at = None
        return self._synced(remote_id, created, exchanges)

    def _synced(self, remote_id, created, exchanges, notice=""):
        if remote_id:
            self.state.remote_id = remote_id
        self.state.confirmation_ref = ""
        self.state.deleted_on_platform_at = None  # held there again
        self.state.last_success_at = self.now
        if created is None:
            outcome, counter = Outcome.ACCEPTED, "accepted"
        else:
            outcome, counter = (
                (Outcome.CREATED, "created") if created else (Outcome.UPDATED, "updated")
            )
        return self._result(SyncStatus.SYNCED, outcome, counter, error=notice, exchanges=exchanges)

    def awaiting(self, digest, reference, exchanges, held=None, notice=""):
        """Accepted in bulk without a per-contact answer: what was sent is kept as accepted,
        and the first check is due after a backoff delay. Failed attempts are not reset: only
        a confirmation is a success."""
        attempts = self.state.attempts
        self._accept(digest, held)
        self.state.attempts = attempts
        self.state.confirmation_ref = reference
        return self._await_check(Outcome.AWAITING, exchanges, notice)

    def unconfirmed(self, label, exchanges):
        """A check found no answer yet (or could not be made): check again later, after
        backoff; failed once SYNC_MAX_ATTEMPTS checks went unanswered."""
        state = self.state
        state.attempts += 1
        if state.attempts >= settings.SYNC_MAX_ATTEMPTS:
            self.forget()
            state.last_error = (
                f"{label} accepted this contact in bulk but did not confirm it in "
                f"{state.attempts} checks; retry to send it again"
            )
            return self._result(
                SyncStatus.FAILED,
                Outcome.FAILED,
                "failed",
                error=state.last_error,
                exchanges=exchanges,
            )
        return self._await_check(Outcome.AWAITING, exchanges)

    def _await_check(self, outcome, exchanges, notice=""):
        delay = retry_delay(attempts=self.state.attempts + 1, retry_after=None)
        self.state.next_attempt_at = self.now + timedelta(seconds=delay)
        return self._result(SyncStatus.AWAITING, outcome, None, error=notice, exchanges=exchanges)

    def forget(self):
        """What the platform took in bulk was not confirmed: nothing is known to be held, so
        the next push sends the contact again."""
        state = self.state
        state.payload_hash = ""
        state.accepted_content_version = state.accepted_config_version = None
        state.accepted_keys = None  # it may hold any of them: unknown
        state.confirmation_ref = ""

    def unchanged(self, digest):
        self._accept(digest)
        return self._result(SyncStatus.UNCHANGED, Outcome.UNCHANGED, "unchanged")

    def skipped(self, reason, exchanges=()):
        self.state.skip_reason = reason
        return self._result(
            SyncStatus.SKIPPED, Outcome.SKIPPED, "skipped", error=reason, exchanges=exchanges
        )

    def not_on_platform(self, label, exchanges):
        """An update-only destination's platform holds no such contact: skipped, not failed,
        and nothing is known to be held there any more (a read-back finds no drift in it)."""
        self.forget()
        self.state.remote_id = ""
        self.state.last_error = ""
        return self.skipped(
            f"not on {label}: this destination only updates contacts the platform holds "
            "(update-only)",
            exchanges,
        )

    def waiting(self, message, exchanges=()):
        self.state.last_error = message
        return self._result(
            SyncStatus.WAITING, Outcome.WAITING, None, error=message, exchanges=exchanges
        )

    def error(self, err: ConnectorError, exchanges=()):
        if err.destination_wide:
            return self.waiting(str(err), exchanges)
        state = self.state
        state.attempts += 1
        state.last_error = str(err)
        if err.retryable and state.attempts < settings.SYNC_MAX_ATTEMPTS:
            delay = retry_delay(attempts=state.attempts, retry_after=err.retry_after)
            state.next_attempt_at = self.now + timedelta(seconds=delay)
            return self._result(
                SyncStatus.PENDING, Outcome.RETRY, None, error=str(err), exchanges=exchanges
            )
        return self._result(
            SyncStatus.FAILED, Outcome.FAILED, "failed", error=str(err), exchanges=exchanges
        )

    def _accept(self, digest, held=None):
        """Keep what the platform accepted; `held`, the keys it holds from us afterwards
        (BaseConnector.write_plan), when the push computed them."""
        state, record = self.state, self.record
        if held is not None:
            state.accepted_keys = sorted(held)
        state.payload_hash = digest
        state.accepted_content_version = record.content_version
        state.accepted_config_version = self.destination.config_version
        state.accepted_email_status = record.email_status
        state.attempts = 0
        state.last_error = state.skip_reason = ""
        state.next_attempt_at = None

    def _result(self, status, outcome, counter, *, error="", exchanges=()):
        state = self.state
        state.status = status
        state.claimed_at, state.claimed_by = None, ""
        state.last_attempt_at = self.now
        external_id = self.record.external_id if self.record else ""
        return _Result(state, outcome, counter, external_id, error, list(exchanges))


def _write(results: list[_Result], destination: Destination, context: PushContext) -> None:
    """Write outcomes in one short transaction: states, attempt log, run counts. Retried while
    the database is locked or away (sync.dbretry); when it stays so, this raises and the
    contacts stay claimed, for the scheduler to take back at lease expiry."""
    if not results:
        return
    now = timezone.now()
    for result in results:
        result.state.updated_at = now
        if context.run_id:
            result.state.run_id = context.run_id
    attempts = [_attempt_row(r, destination, context, now) for r in results]
    # A settled contact counts in the run it was owed to, whatever path it took there (a
    # retry, a resume, a confirmation); a push of a contact that had already settled in its
    # run (a later save) counts nowhere.
    counts: dict[int, Counter] = {}
    for r in results:
        owed = getattr(r.state, "claimed_from", SyncStatus.PENDING) in OWED
        if r.counter and r.state.run_id and owed:
            counts.setdefault(r.state.run_id, Counter())[r.counter] += 1
    # What a read-back found different is stale once the platform took what we hold now (or
    # once we stop sending it): the next reconcile looks again.
    settled = [r.state.contact_id for r in results if r.outcome in DRIFT_SETTLED]
    with_database_retry(
        _write_rows, [r.state for r in results], attempts, counts, destination, settled
    )
    for result in results:  # committed: what the database holds now
        if isinstance(result.state, StateRow):
            result.state.remember_stored()


def _write_rows(states, attempts, counts, destination=None, settled=()) -> None:
    with transaction.atomic():
        _save_states(states)
        _insert_attempts(attempts)
        if settled:
            ContactDrift.objects.filter(
                IdIn(F("contact_id"), settled), destination=destination
            ).delete()
        for run_id, run_counts in counts.items():
            SyncRun.objects.filter(pk=run_id, state=SyncRun.State.RUNNING).update(
                **{name: F(name) + count for name, count in run_counts.items()}
            )
            finish_run_if_done(run_id)


ATTEMPT_COLUMNS = (
    "destination_id",
    "contact_id",
    "external_id",
    "run_id",
    "trigger",
    "user_id",
    "started_at",
    "duration_ms",
    "http_status",
    "request_body",
    "response_excerpt",
    "outcome",
    "error",
)


def _insert_attempts(rows: list[tuple], batch: int = 500) -> None:
    """INSERT the attempt log's new rows (tuples in ATTEMPT_COLUMNS' order, prepared by
    `_attempt_row`) in multi-row statements: no model instance, no per-value compilation."""
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({}) VALUES ".format(
        quote(SyncAttempt._meta.db_table),
        ", ".join(quote(SyncAttempt._meta.get_field(c).column) for c in ATTEMPT_COLUMNS),
    )
    row = "({})".format(", ".join(["%s"] * len(ATTEMPT_COLUMNS)))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            cursor.execute(head + ", ".join([row] * len(part)), [v for r in part for v in r])


def _value_preparers(model, attnames) -> list:
    """For each column, the function that turns an attribute into its database value: what
    `get_db_prep_save` does, reduced to what these columns hold (a timestamp in SQLite's
    text form, JSON encoded, a choice as its plain string), built once per write."""
    preparers = []
    for attname in attnames:
        field = next(f for f in model._meta.concrete_fields if f.attname == attname)
        if isinstance(field, models.DateTimeField):
            preparers.append(connection.ops.adapt_datetimefield_value)
        elif isinstance(field, models.JSONField):
            preparers.append(lambda value, f=field: f.get_db_prep_save(value, connection))
        else:
            preparers.append(_plain)
    return preparers


def _plain(value):
    """A choice (a str enum) as the str it stands for; anything else as it is."""
    return value.value if isinstance(value, Enum) else value


def _save_states(states: list) -> None:
    """Write each state's sync columns back, only those that changed where the state knows
    what the database holds (`StateRow.stored`), else all of them: states that changed the
    same columns (most of a bulk chunk) go together, on PostgreSQL in one
    `UPDATE … FROM (VALUES …)` per 500 states, elsewhere in one prepared UPDATE run for every
    row (SQLite runs it in-process, with no round trip per row). States are StateRows or
    model instances alike."""
    fields = [ContactSyncState._meta.get_field(name) for name in STATE_FIELDS]
    attnames = [f.attname for f in fields]
    everything = tuple(range(len(fields)))
    groups: dict[tuple[int, ...], list] = {}
    for state in states:
        values = _sync_values(state)
        stored = getattr(state, "stored", None)
        if stored is None:
            changed = everything
        else:
            changed = tuple(i for i, value in enumerate(values) if value != stored[i])
        if changed:
            groups.setdefault(changed, []).append((values, state.pk))
    preparers = _value_preparers(ContactSyncState, attnames)
    with connection.cursor() as cursor:
        for changed, part in groups.items():
            rows = [[preparers[i](values[i]) for i in changed] + [pk] for values, pk in part]
            _update_columns(cursor, [fields[i] for i in changed], rows)


def _update_columns(cursor, fields, rows) -> None:
    """UPDATE these columns of the states: each row their values, then the state's id."""
    quote = connection.ops.quote_name
    table = quote(ContactSyncState._meta.db_table)
    columns = [quote(f.column) for f in fields]
    pk = quote(ContactSyncState._meta.pk.column)
    if connection.vendor != "postgresql":
        sql = "UPDATE {} SET {} WHERE {} = %s".format(
            table, ", ".join(f"{c} = %s" for c in columns), pk
        )
        cursor.executemany(sql, rows)
        return
    # VALUES rows carry no column types: each value is cast to its column's type.
    casts = [f.cast_db_type(connection) for f in fields]
    names = [f"c{i}" for i in range(len(columns))]
    assign = ", ".join(
        f"{c} = v.{n}::{cast}" for c, n, cast in zip(columns, names, casts, strict=True)
    )
    row = "({})".format(", ".join(["%s"] * (len(columns) + 1)))
    for start in range(0, len(rows), 500):
        part = rows[start : start + 500]
        cursor.execute(
            f"UPDATE {table} SET {assign} FROM (VALUES {', '.join([row] * len(part))}) "
            f"AS v({', '.join(names)}, id) WHERE {table}.{pk} = v.id::bigint",
            [value for r in part for value in r],
        )


def _attempt_row(result: _Result, destination, context, now) -> tuple:
    """The attempt-log row of one outcome, in ATTEMPT_COLUMNS' order, ready to insert."""
    log = exchange_fields(result.exchanges)
    return (
        destination.pk,
        result.state.contact_id,
        result.external_id,
        context.run_id or result.state.run_id,
        _plain(context.trigger),
        context.user_id,
        connection.ops.adapt_datetimefield_value(now),
        log.get("duration_ms", 0),
        log.get("http_status"),
        log.get("request_body", ""),
        log.get("response_excerpt", ""),
        _plain(result.outcome),
        result.error,
    )


def exchange_fields(exchanges: list[Exchange]) -> dict:
    """The attempt-log columns for the HTTP calls of one attempt (credentials removed)."""
    if not exchanges:
        return {}
    last = exchanges[-1]
    return {
        "duration_ms": sum(e.duration_ms for e in exchanges),
        "http_status": last.status,
        "request_body": "\n\n".join(f"{e.method} {e.url}\n{e.request_body}" for e in exchanges),
        "response_excerpt": last.response_excerpt,
    }


# -------------------------------------------------------------------------------- claim


def _claim(
    contact_ids: list[int], destination, context, queued: bool, status=SyncStatus.PENDING
) -> dict[int, "StateRow"]:
    """Mark the contacts in progress for this worker. Left out: contacts another live worker
    holds (it re-pushes when it sees a newer version) and, for queued work, contacts no longer
    in `status` (already pushed by a copy of this task, or put back by a cancel). Each state
    keeps the status it was claimed from in `claimed_from`.

    A few statements whatever the chunk's size, in one transaction: unless queued, the
    missing states are made, already claimed (claimed from never: a first push writes each
    state once before its outcome, not twice); the rows are read as plain values under their
    row locks (skipping those another claim holds), then the others marked in one UPDATE. No
    model instance is built: for a bulk chunk that cost more than the platform's answer."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    candidates = ContactSyncState.objects.filter(
        IdIn(F("contact_id"), contact_ids), destination=destination
    )
    if queued:  # the states were made when the work was queued
        candidates = candidates.filter(status=status)
    made = set()
    with transaction.atomic():
        if not queued:  # the missing states are made claimed: no UPDATE for them
            made = states_ensure(
                contact_ids=contact_ids, destination=destination, claimed_by=context.worker, now=now
            )
        rows = list(
            candidates.select_for_update(skip_locked=True)
            .exclude(
                Q(status=SyncStatus.IN_PROGRESS, claimed_at__gt=stale)
                & ~Q(claimed_by=context.worker)
            )
            .values_list(*StateRow.COLUMNS)
        )
        marked = [row[0] for row in rows if row[1] not in made]
        if marked:
            ContactSyncState.objects.filter(IdIn(F("pk"), marked)).update(
                status=SyncStatus.IN_PROGRESS,
                claimed_at=now,
                claimed_by=context.worker,
                next_attempt_at=None,
            )
    states = {}
    for row in rows:
        state = StateRow(row)  # claimed_from: the status it had until now
        if state.contact_id in made:
            state.claimed_from = SyncStatus.NEVER
        state.status, state.claimed_at, state.claimed_by = (
            SyncStatus.IN_PROGRESS,
            now,
            context.worker,
        )
        state.next_attempt_at = None
        state.remember_stored()  # as the claim's UPDATE left it
        states[state.contact_id] = state
    return states


# ----------------------------------------------------------------------------- the push


class _Prepared(NamedTuple):
    """What a contact that needs a request takes to its push: the fingerprint of its body,
    what we know of it on the platform, and its body and write plan built for that (the push
    takes them: neither is worked out again)."""

    digest: str
    remote: RemoteState
    built: Built


def _prepare(record, state, destination, context, connector) -> "_Result | _Prepared":
    """Decide what a contact needs before any request: its result when it is settled here
    (skipped, unchanged, a mapping error), else what its push takes (`_Prepared`)."""
    decide = _Decide(state, destination, record)
    if destination.marketing_consent_only and not record.gdpr_marketing_consent:
        return decide.skipped("no GDPR marketing consent")
    if state.deleted_on_platform_at and not destination.recreate_deleted and not context.force:
        # The platform said it deleted the contact (sync.inbound): not re-created unless the
        # destination says so, or a person forces the push.
        when = timezone.localtime(state.deleted_on_platform_at).strftime("%Y-%m-%d %H:%M")
        return decide.skipped(f"deleted on {connector.label} on {when}")
    # the platform accepted a version of this contact (not merely took it in bulk, unconfirmed)
    held = bool(state.payload_hash) and getattr(state, "claimed_from", "") != SyncStatus.AWAITING
    if (
        not context.force
        and held
        and state.accepted_content_version == record.content_version
        and state.accepted_config_version == destination.config_version
    ):
        return decide.unchanged(state.payload_hash)
    remote = remote_state(state)
    try:
        plan = connector.write_plan(record, remote)
        payload = connector.build_payload(record, remote, plan)
    except ConnectorError as err:
        return decide.error(err)
    digest = payload_hash(payload, record)
    if not context.force and held and digest == state.payload_hash:
        return decide.unchanged(digest)
    return _Prepared(digest, remote, Built(payload, plan))


def _update_only(destination) -> bool:
    return destination.sync_mode == Destination.SyncMode.UPDATE_ONLY


def _push_one(record, state, destination, context, connector) -> _Result:
    """One contact's push and its outcome. Touches no database (sync/inflight.py runs it on
    a lane): a destination-wide refusal comes back as a waiting outcome, which the caller
    turns into the pause (`_pause_if_refused`)."""
    try:
        prepared = _prepare(record, state, destination, context, connector)
        if isinstance(prepared, _Result):
            return prepared
        digest, remote, built = prepared
        if _update_only(destination):
            found = connector.find_remote_id(external_id=record.external_id)
            if found is None:
                decide = _Decide(state, destination, record)
                return decide.not_on_platform(connector.label, connector.drain_exchanges())
            remote = dataclasses.replace(remote, remote_id=found)
            plan = connector.write_plan(record, remote)  # it holds the contact: an update
            built = Built(connector.build_payload(record, remote, plan), plan)
        plan = built.plan
        pushed = connector.push(record, remote, built)
    except ConnectorError as err:  # destination-wide: the caller pauses (_pause_if_refused)
        return _Decide(state, destination, record).error(err, connector.drain_exchanges())
    except Exception as err:  # a bug of ours must not leave the contact claimed for ever
        logger.exception("push of contact %s to %s crashed", record.id, destination)
        crash = RetryableError(connector.label, f"internal error: {err!r}")
        return _Decide(state, destination, record).error(crash, connector.drain_exchanges())
    # Fingerprint what the next comparison will build: with the remote id the platform just
    # gave, the status and the keys it just accepted (a payload may carry the remote id, or
    # depend on the status or keys last accepted).
    after = RemoteState(
        pushed.remote_id or state.remote_id or None,
        record.email_status,
        accepted=True,
        held_keys=plan.held,
    )
    if after != remote:  # the payload is a pure function of the record and this state
        digest = payload_hash(connector.build_payload(record, after), record)
    decide = _Decide(state, destination, record)
    notice = connector.kept_notice(plan)
    if pushed.awaiting:
        if pushed.remote_id:  # known before the asynchronous write (stored, or looked up)
            state.remote_id = pushed.remote_id
        return decide.awaiting(
            digest, pushed.reference, connector.drain_exchanges(), plan.held, notice
        )
    return decide.accepted(
        pushed.remote_id, pushed.created, digest, connector.drain_exchanges(), plan.held, notice
    )


def remote_state(state: ContactSyncState) -> RemoteState:
    """What a connector may know of the contact on the platform, from its sync state."""
    keys = state.accepted_keys
    return RemoteState(
        state.remote_id or None,
        state.accepted_email_status or None,
        accepted=bool(state.payload_hash),
        held_keys=None if keys is None else frozenset(keys),
    )


def _push_bulk(prepared, destination, context, connector) -> list[_Result]:
    """Send the contacts that need it in the platform's batch calls. A contact is synced only
    when the platform's answer confirms it; one it took without a per-contact word awaits
    confirmation (part A, "Bulk outcomes come from the platform")."""
    if not prepared:
        return []
    records = [record for record, _, _ in prepared]
    try:
        pushed = connector.push_many(
            records, [p.remote for _, _, p in prepared], [p.built for _, _, p in prepared]
        )
        items = {item.external_id: item for item in pushed}
        error = None
    except Exception as err:
        if not isinstance(err, ConnectorError):  # a bug of ours: retry later, keep nothing claimed
            logger.exception("bulk push to %s crashed", destination)
            err = RetryableError(connector.label, f"internal error: {err!r}")
        if err.destination_wide:
            destination_pause(destination=destination, error=str(err))
        items, error = {}, err
    calls = connector.drain_exchanges()
    results = []
    for record, state, (digest, _, built) in prepared:
        payload, plan = built.payload, built.plan
        decide = _Decide(state, destination, record)
        exchanges = _own_part(connector, calls, payload, len(prepared))
        item = items.get(record.external_id)
        if error is not None or (item is not None and item.error is not None):
            results.append(decide.error(error or item.error, exchanges))
        elif item is None:  # a connector that answers fewer contacts than it was given
            missing = RetryableError(connector.label, "the bulk answer left this contact out")
            results.append(decide.error(missing, exchanges))
        else:
            notice = connector.kept_notice(plan)
            if item.awaiting:
                results.append(
                    decide.awaiting(digest, item.reference, exchanges, plan.held, notice)
                )
            else:
                results.append(
                    decide.accepted(
                        item.remote_id, item.created, digest, exchanges, plan.held, notice
                    )
                )
    return results


def _own_part(connector, calls: list[Exchange], payload: dict, contacts: int) -> list[Exchange]:
    """A contact's share of a bulk call for its attempt-log entry: its own payload, the bulk
    call's status and answer, its share of the time (not the whole batch's body)."""
    if not calls:
        return []
    sent = next((c for c in calls if c.request_body), calls[-1])  # the call that carried data
    body = json.dumps(payload, ensure_ascii=False, default=str)
    return [
        Exchange(
            sent.method,
            sent.url,
            sent.status,
            connector.redact_body(body),
            calls[-1].response_excerpt,
            sum(c.duration_ms for c in calls) // max(contacts, 1),
        )
    ]


def contacts_push(
    *,
    contact_ids: list[int],
    destination: Destination,
    context: PushContext,
    connector: BaseConnector | None = None,
    quick_retries: int = 0,
    queued: bool = False,
) -> list:
    """Push contacts to one destination through one connector (one HTTP session), in the
    platform's batch calls when it has them; record every outcome. Returns the states as
    written (contacts held by another worker, or deleted, are left out).

    Queued work (`queued`) pushes only contacts still pending. Stops early when the run is
    cancelled or the destination paused; the contacts not reached stay as they were (paused:
    waiting)."""
    if destination.is_paused:
        return _all_waiting(contact_ids, destination, context, queued)
    try:
        connector = connector or destination_connector(
            destination=destination, quick_retries=quick_retries
        )
    except ConnectorConfigurationError as err:
        destination_pause(destination=destination, error=str(err))
        return _all_waiting(contact_ids, destination, context, queued)
    states = with_database_retry(_claim, contact_ids, destination, context, queued)
    if not states:
        return []
    records = _load(states, destination)
    if connector.pushes_in_bulk(len(records)):
        results = _push_chunk_in_bulk(records, states, destination, context, connector)
    else:
        results = _push_chunk_one_by_one(records, states, destination, context, connector)
    _due_if_changed_meanwhile(records, destination)
    reset_queries()  # DEBUG keeps every query; a long push must not grow with it
    return [r.state for r in results]


def _load(states, destination) -> list[ContactRecord]:
    """The claimed contacts' records as a push may send them (states of deleted contacts
    dropped)."""
    records = selectors.contact_records(states)
    _release_deleted(states, {r.id for r in records})
    # --- consent guard (sync.consent): never a subscribe older than the latest opt-out ---
    return consent.records_guard(records=records, destination=destination)


def _push_chunk_in_bulk(records, states, destination, context, connector):
    results, prepared = [], []
    for record in records:
        outcome = _prepare(record, states[record.id], destination, context, connector)
        if not isinstance(outcome, _Result) and _update_only(destination):
            outcome = _not_held(record, states[record.id], destination, connector) or outcome
        if isinstance(outcome, _Result):
            results.append(outcome)
        else:
            prepared.append((record, states[record.id], outcome))
    results += _push_bulk(prepared, destination, context, connector)
    _write(results, destination, context)
    return results


def _not_held(record, state, destination, connector) -> _Result | None:
    """For an update-only destination's bulk push: the contact's result when the platform
    holds no such contact (or the lookup failed), None when it may go in the bulk call, which
    matches on the external ID and so updates it. A lookup per contact is the price of never
    creating one: the bulk calls create what they do not find."""
    decide = _Decide(state, destination, record)
    if destination.is_paused:  # by an earlier lookup's 401 in this chunk
        return decide.waiting(destination.pause_error)
    try:
        found = connector.find_remote_id(external_id=record.external_id)
    except ConnectorError as err:
        if err.destination_wide:
            destination_pause(destination=destination, error=str(err))
        return decide.error(err, connector.drain_exchanges())
    if found is None:
        return decide.not_on_platform(connector.label, connector.drain_exchanges())
    connector.drain_exchanges()  # the lookup is not part of the bulk call's log
    return None


def _push_chunk_one_by_one(records, states, destination, context, connector):
    """One request (or lookup and request) per contact; outcomes are written in small batches
    (WRITE_EVERY contacts or seconds), one transaction each. A worker that dies before a
    batch is written leaves those contacts claimed: the scheduler takes them back and matching
    keeps the platform free of duplicates."""
    lanes = min(settings.SYNC_REQUESTS_IN_FLIGHT, len(records))
    if lanes > 1:
        return _push_chunk_in_flight(records, states, destination, context, connector, lanes)
    results, unwritten = [], []
    give_way = _GiveWay(connector, destination, context)
    next_check = next_write = time.monotonic() + CHECK_EVERY
    for index, record in enumerate(records):
        now = time.monotonic()
        if now >= next_check:
            next_check = now + CHECK_EVERY
            with_database_retry(_renew_claims, [states[r.id] for r in records[index:]], context)
            # another worker may have paused it
            stop = with_database_retry(_should_stop, destination, context)
        else:
            stop = destination.is_paused  # paused by this chunk's own 401
        if stop:
            with_database_retry(_release, [states[r.id] for r in records[index:]], destination)
            break
        if index and give_way():
            context.handed_back = [r.id for r in records[index:]]
            break
        result = _push_one(record, states[record.id], destination, context, connector)
        _pause_if_refused(result, destination)
        unwritten.append(result)
        if len(unwritten) >= WRITE_EVERY or now >= next_write:
            _write(unwritten, destination, context)
            results += unwritten
            unwritten, next_write = [], now + WRITE_EVERY_SECONDS
    _write(unwritten, destination, context)
    return results + unwritten


def _push_chunk_in_flight(records, states, destination, context, connector, lanes):
    """`_push_chunk_one_by_one` with up to `lanes` contacts' requests in flight at once
    (sync/inflight.py), each sent at the slot the shared rate limit gives it. The same checks:
    a cancel or a pause before each contact is sent, and giving way when a contact's first
    request would wait on the limit (the flight asks, `_GiveWay`); outcomes written
    on this thread in the same small batches, in the order the platform answered. A pause
    (this chunk's 401, or another worker's) or a cancel stops the sends still waiting for
    their slot: those contacts are released as the serial path releases those it did not
    reach; giving way hands them back. Once its last contact is on a lane, a bulk chunk goes
    on with the next chunk of its push when nothing else is ready (`_next_records`)."""
    results, unwritten, unsent = [], [], []
    next_check = next_write = time.monotonic() + CHECK_EVERY
    index = 0
    take_next = context.next_chunk is not None

    give_way = _GiveWay(connector, destination, context)
    with InFlight(connector, lanes=lanes, give_way=give_way) as flight:
        while index < len(records) or flight.keys:
            now = time.monotonic()
            if index == len(records) and take_next and not flight.ending:
                # the last contact is on a lane: the next chunk's claim and load overlap the
                # answers still to come, instead of a gap between two tasks
                more = _next_records(states, destination, context)
                records += more
                take_next = bool(more)
            if index < len(records) and flight.gave_way:
                unsent += [r.id for r in records[index:]]  # handed back with the refused
                index = len(records)
                continue
            if index < len(records) and flight.free:
                if flight.stopping.is_set():
                    stop = True
                elif now >= next_check:
                    next_check = now + CHECK_EVERY
                    held = [states[r.id] for r in records[index:]]
                    held += [states[k] for k in flight.keys]
                    with_database_retry(_renew_claims, held, context)
                    stop = with_database_retry(_should_stop, destination, context)
                else:
                    stop = destination.is_paused  # paused by this chunk's own 401
                if stop:
                    flight.stop()
                    unsent += [r.id for r in records[index:]]
                    index = len(records)
                    continue
                record = records[index]
                flight.submit(record.id, _lane_job(record, states[record.id], destination, context))
                index += 1
                continue
            for contact_id, result in flight.wait(timeout=CHECK_EVERY):
                if result is NOT_SENT:
                    unsent.append(contact_id)
                    continue
                if _pause_if_refused(result, destination):
                    flight.stop()
                unwritten.append(result)
            if unwritten and (len(unwritten) >= WRITE_EVERY or time.monotonic() >= next_write):
                _write(unwritten, destination, context)
                results += unwritten
                unwritten, next_write = [], time.monotonic() + WRITE_EVERY_SECONDS
    _write(unwritten, destination, context)
    order = {record.id: position for position, record in enumerate(records)}
    unsent.sort(key=order.__getitem__)
    if flight.gave_way:
        context.handed_back = unsent
    elif unsent:
        with_database_retry(_release, [states[cid] for cid in unsent], destination)
    return sorted(results + unwritten, key=lambda r: order[r.state.contact_id])


def _next_records(states, destination, context) -> list[ContactRecord]:
    """The next chunk of this push, claimed and loaded into `states`, when nothing else is
    ready (as the worker would choose, sync_worker: interactive pushes and other
    destinations' work go first); [] when there is none or something else is ready."""
    while not with_database_retry(selectors.work_ready_elsewhere, destination_id=destination.pk):
        contact_ids = context.next_chunk()
        if not contact_ids:
            return []
        # a contact of this chunk's is left out: one contact is never in flight twice
        contact_ids = [cid for cid in contact_ids if cid not in states]
        more = with_database_retry(_claim, contact_ids, destination, context, True)
        if more:  # else every contact of it was pushed already, or is held: the next one
            records = _load(more, destination)
            states.update(more)
            return records
    return []


def _lane_job(record, state, destination, context):
    """The push of one contact as a lane runs it, with the lane's own connector."""
    return lambda connector: _push_one(record, state, destination, context, connector)


def _pause_if_refused(result: _Result, destination) -> bool:
    """Pause the destination when a push's outcome is waiting: in `_push_one` that is a
    destination-wide refusal (401/403, an untrusted address). Whether it paused."""
    if result.outcome != Outcome.WAITING:
        return False
    destination_pause(destination=destination, error=result.error)
    return True


class _GiveWay:
    """Whether a chunk should stop here and be queued again: its next request would wait on
    the destination's shared limit (behind `queued` requests of its own already waiting for
    a slot, when several are in flight) while a worker has other work ready
    (sync.selectors). Asked before each contact but the first, so a chunk always moves on.

    Once the queue held nothing better, it is asked again only after GIVE_WAY_RECHECK
    seconds: with requests in flight the question comes before every contact (48 times a
    second at 50 requests/s), each answer took three queries, and the thread asking them is
    the one that hands the lanes their slots, so slots went by unused while it waited
    (bench/rate_limit.py: a quarter of that thread's time, at one request per contact)."""

    def __init__(self, connector, destination, context):
        self.limiter = connector.rate_limiter if context.may_give_way else None
        self.destination = destination
        self.nothing_else_until = 0.0  # monotonic: the queue held nothing better until then

    def __call__(self, queued: int = 0) -> bool:
        limiter = self.limiter
        if limiter is None or time.monotonic() < self.nothing_else_until:
            return False
        wait = with_database_retry(limiter.wait_ahead) + queued * limiter.interval
        if wait < GIVE_WAY_AFTER:
            return False
        ready = with_database_retry(
            selectors.work_ready_elsewhere, destination_id=self.destination.pk
        )
        if not ready:
            self.nothing_else_until = time.monotonic() + GIVE_WAY_RECHECK
        return ready


def _renew_claims(states, context) -> None:
    """Keep this worker's claims fresh while it works, so that only a dead worker's claims
    grow stale and are taken back by the scheduler."""
    ContactSyncState.objects.filter(
        pk__in=[s.pk for s in states], claimed_by=context.worker, status=SyncStatus.IN_PROGRESS
    ).update(claimed_at=timezone.now())


def _should_stop(destination, context) -> bool:
    destination.refresh_from_db(fields=["paused_at", "pause_error", "config_version"])
    cancelled = (
        context.run_id
        and SyncRun.objects.filter(pk=context.run_id, state=SyncRun.State.CANCELLED).exists()
    )
    return bool(cancelled or destination.is_paused)


def status_before_push():
    """What a state showed before it was queued, read from what it holds: synced when the
    platform accepted a version of the contact, failed when the last try failed, else never."""
    return Case(
        When(~Q(payload_hash=""), then=Value(SyncStatus.SYNCED)),
        When(~Q(last_error=""), then=Value(SyncStatus.FAILED)),
        default=Value(SyncStatus.NEVER),
    )


def _release(states, destination):
    """Give back contacts claimed but not reached: waiting when the destination is paused,
    else as they were before the run."""
    status = Value(SyncStatus.WAITING) if destination.is_paused else status_before_push()
    ContactSyncState.objects.filter(
        pk__in=[s.pk for s in states], status=SyncStatus.IN_PROGRESS
    ).update(status=status, claimed_at=None, claimed_by="")


def _release_deleted(states, found_ids):
    gone = [cid for cid in states if cid not in found_ids]
    if gone:
        ContactSyncState.objects.filter(pk__in=[states[c].pk for c in gone]).delete()
        for cid in gone:
            del states[cid]


def states_ensure(*, contact_ids, destination, claimed_by: str = "", now=None) -> set[int]:
    """A sync state for each contact on the destination (as never pushed where it has none):
    one `INSERT … SELECT` from the contacts that exist, those with a state left alone. With
    `claimed_by`, the states made are made already claimed by that worker at `now` (in
    progress): a claim that makes them saves an UPDATE of each. Returns the ids of the
    contacts whose state was made."""
    if not contact_ids:
        return set()
    quote = connection.ops.quote_name
    now = now or timezone.now()
    claimed = (
        {"status": SyncStatus.IN_PROGRESS, "claimed_by": claimed_by, "claimed_at": now}
        if claimed_by
        else {}
    )
    columns, values = _new_state(destination, now=now, **claimed)
    contact_table = quote(Contact._meta.db_table)
    ids = list(contact_ids)
    made = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            cursor.execute(
                "INSERT INTO {} ({}) SELECT {}.{}, {} FROM {} WHERE {}.{} IN ({}) "
                "ON CONFLICT DO NOTHING RETURNING {}".format(
                    quote(ContactSyncState._meta.db_table),
                    ", ".join(quote(c) for c in columns),
                    contact_table,
                    quote(Contact._meta.pk.column),
                    ", ".join(["%s"] * len(values)),
                    contact_table,
                    contact_table,
                    quote(Contact._meta.pk.column),
                    ", ".join(["%s"] * len(part)),
                    quote("contact_id"),
                ),
                [*values, *part],
            )
            made.update(row[0] for row in cursor.fetchall())
    return made


def states_mark_pending(*, contact_ids, destination, run) -> None:
    """Pending in `run` on the destination, for each of these contacts that still exists, in
    one statement whatever their number (a run's planning batch, sync.services): a state is
    made pending where there is none (not made as never pushed, then rewritten), and one
    already there becomes pending with no retry time, unless a worker holds it in progress
    (its new chunk still names it: the claim then skips it as today). The states' other
    columns are left as they were (its `updated_at` too, as a queryset update leaves it)."""
    if not contact_ids:
        return
    quote = connection.ops.quote_name
    table = quote(ContactSyncState._meta.db_table)
    columns, values = _new_state(destination, status=SyncStatus.PENDING, run_id=run.pk)
    selected = Contact.objects.filter(IdIn(F("pk"), contact_ids)).order_by().values("pk")
    sql, params = selected.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            # WHERE true: SQLite's parser needs it before an upsert's ON CONFLICT
            f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT selected.*, {', '.join(['%s'] * len(values))} FROM ({sql}) AS selected "
            "WHERE true ON CONFLICT (contact_id, destination_id) DO UPDATE SET "
            "status = excluded.status, next_attempt_at = NULL, run_id = excluded.run_id "
            f"WHERE {table}.status <> %s",
            [*values, *params, SyncStatus.IN_PROGRESS],
        )


def _new_state(destination, *, now=None, **given) -> tuple[list[str], list]:
    """A new state's columns on `destination`, `contact_id` first (its value left to the
    caller's SELECT), and the values of the others as the database takes them: `given`
    (by attribute name), else the model's defaults, `updated_at` now (or `now`)."""
    given = {"destination_id": destination.pk, **given}
    now = now or timezone.now()
    columns, values = ["contact_id"], []
    for column in ContactSyncState._meta.concrete_fields:
        if column.primary_key or column.attname == "contact_id":
            continue
        if column.attname in given:
            value = given[column.attname]
        else:
            value = now if column.attname == "updated_at" else column.get_default()
        columns.append(column.column)
        values.append(column.get_db_prep_save(value, connection))
    return columns, values


def _all_waiting(contact_ids, destination, context, queued):
    states_ensure(contact_ids=contact_ids, destination=destination)
    states = ContactSyncState.objects.filter(destination=destination, contact_id__in=contact_ids)
    if queued:
        states = states.filter(status=SyncStatus.PENDING)
    message = destination.pause_error or "the destination is paused"
    results = [_Decide(state, destination, None).waiting(message) for state in states]
    _write(results, destination, context)
    return [r.state for r in results]


def _due_if_changed_meanwhile(records, destination) -> None:
    """A save that landed while we held a contact was refused its own push: make the contact
    due now, so that the scheduler's next pass pushes the newer version (the engine queues
    nothing itself: sync.services does)."""
    pushed = {r.id: r.content_version for r in records}
    newer = [
        cid
        for cid, version in Contact.objects.filter(IdIn(F("pk"), list(pushed))).values_list(
            "pk", "content_version"
        )
        if version > pushed[cid]
    ]
    if newer:
        with_database_retry(
            ContactSyncState.objects.filter(destination=destination, contact_id__in=newer)
            .exclude(status=SyncStatus.IN_PROGRESS)
            .update,
            status=SyncStatus.PENDING,
            next_attempt_at=timezone.now(),
        )


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
        alerts.destination_paused(destination, error)


def destination_resume(*, destination: Destination) -> list[tuple[int, int | None]] | None:
    """Lift a pause (read from the database: a worker may have paused it meanwhile). Returns
    the contacts that waited, with the run each is owed to, for the caller to queue, or None
    when it was not paused."""
    resumed = Destination.objects.filter(pk=destination.pk, paused_at__isnull=False).update(
        paused_at=None, pause_error=""
    )
    destination.paused_at, destination.pause_error = None, ""
    if not resumed:
        return None
    return list(
        ContactSyncState.objects.filter(
            destination=destination, status=SyncStatus.WAITING
        ).values_list("contact_id", "run_id")
    )


def contact_push(
    *,
    contact_id: int,
    destination: Destination,
    context: PushContext,
    connector: BaseConnector | None = None,
) -> ContactSyncState | None:
    """Push one contact to one destination (one try); the state as written, or None when
    another worker holds the contact or it no longer exists."""
    states = contacts_push(
        contact_ids=[contact_id], destination=destination, context=context, connector=connector
    )
    if not states:
        return None
    state = states[0]
    return state.as_model() if isinstance(state, StateRow) else state


# ------------------------------------------------------------------ worker entry points


def contacts_push_chunk(
    *, destination_id: int, contact_ids: list[int], context: PushContext
) -> None:
    """A worker's share of a push: one chunk, one destination, short in-worker retries."""
    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is None:
        with_database_retry(
            _chunk_dropped,
            destination_id=destination_id,
            contact_ids=contact_ids,
            run_id=context.run_id,
        )
        return
    if (
        context.run_id
        and SyncRun.objects.filter(pk=context.run_id, state=SyncRun.State.CANCELLED).exists()
    ):
        return
    with_database_retry(
        WorkerHeartbeat.objects.update_or_create,
        name=context.worker,
        defaults={"last_seen": timezone.now()},
    )
    contacts_push(
        contact_ids=contact_ids,
        destination=destination,
        context=context,
        quick_retries=2,
        queued=True,
    )
    with_database_retry(finish_run_if_done, context.run_id)


def _chunk_dropped(*, destination_id: int, contact_ids: list[int], run_id: int | None) -> None:
    """A chunk whose destination was disabled or deleted after the chunk was queued: nothing
    is pushed, and its contacts are no longer owed by its run (as the planning counts them,
    sync.services._plan_batch), so that the run can finish. On a disabled destination the
    states still waiting for this chunk leave the run and are made due: the scheduler queues
    due states of enabled destinations only, so they go once it is enabled again. A deleted
    destination's states went with it."""
    with transaction.atomic():
        if Destination.objects.filter(pk=destination_id).exists():
            waiting = ContactSyncState.objects.filter(
                destination_id=destination_id,
                contact_id__in=contact_ids,
                status=SyncStatus.PENDING,
                next_attempt_at__isnull=True,
            )
            now = timezone.now()
            dropped = (
                waiting.filter(run_id=run_id).update(next_attempt_at=now, run=None) if run_id else 0
            )
            waiting.update(next_attempt_at=now)  # those another run or a save queued
        else:
            dropped = len(contact_ids)
        if run_id and dropped:
            SyncRun.objects.filter(pk=run_id, state=SyncRun.State.RUNNING).update(
                total=F("total") - dropped
            )
    finish_run_if_done(run_id)


def contacts_hand_back(*, destination_id: int, contact_ids: list[int]) -> int:
    """After a chunk gave up on the database: make its contacts that still wait for this
    chunk (pending, no retry time) due now, so the scheduler queues them again. Contacts the
    chunk had claimed are left claimed: the scheduler takes them back at lease expiry.
    Returns how many were handed back."""
    return ContactSyncState.objects.filter(
        destination_id=destination_id,
        contact_id__in=contact_ids,
        status=SyncStatus.PENDING,
        next_attempt_at__isnull=True,
    ).update(next_attempt_at=timezone.now())


def finish_run_if_done(run_id: int | None) -> None:
    if not run_id:
        return
    done = F("created") + F("updated") + F("accepted") + F("unchanged") + F("failed")
    SyncRun.objects.filter(pk=run_id, state=SyncRun.State.RUNNING).filter(
        total__lte=done + F("skipped")
    ).update(state=SyncRun.State.FINISHED, finished_at=timezone.now())


# ------------------------------------------------------------------------ confirmations


def contacts_confirm(
    *,
    contact_ids: list[int],
    destination: Destination,
    context: PushContext,
    connector: BaseConnector | None = None,
) -> list:
    """Ask the platform what became of contacts it accepted in bulk (those still awaiting
    confirmation among `contact_ids`) and record each answer: synced when it confirms, failed
    or retried when it refused, still awaiting (checked again after backoff) when it has not
    said. Returns the states as written. The connector's calls go through the destination's
    shared rate limit like any push."""
    if destination.is_paused:
        return []
    try:
        connector = connector or destination_connector(destination=destination, quick_retries=2)
    except ConnectorConfigurationError as err:
        destination_pause(destination=destination, error=str(err))
        return []
    states = with_database_retry(
        _claim, contact_ids, destination, context, True, SyncStatus.AWAITING
    )
    if not states:
        return []
    records = selectors.contact_records(states)
    _release_deleted(states, {r.id for r in records})
    try:
        answers = connector.confirm(
            [Unconfirmed(r, states[r.id].confirmation_ref) for r in records]
        )
    except ConnectorError as err:
        if not err.destination_wide:
            raise  # confirm() turns every other failure into None: a contract broken
        destination_pause(destination=destination, error=str(err))
        connector.drain_exchanges()
        with_database_retry(_release_awaiting, list(states.values()))
        return []
    except Exception:  # a bug of ours: count it as a check that could not be made
        logger.exception("confirmation of %d contacts on %s crashed", len(records), destination)
        answers = [None] * len(records)
    calls = connector.drain_exchanges()
    results = [
        _confirmation(record, states[record.id], answer, destination, connector, calls)
        for record, answer in zip(records, answers, strict=True)
    ]
    _write(results, destination, context)
    return [r.state for r in results]


def _confirmation(record, state, answer, destination, connector, calls) -> _Result:
    decide = _Decide(state, destination, record)
    exchanges = _calls_about(record.external_id, calls)
    if answer is None or (answer.error is None and answer.awaiting):
        return decide.unconfirmed(connector.label, exchanges)
    if answer.error is not None:
        decide.forget()  # refused: the next push sends it again
        return decide.error(answer.error, exchanges)
    return decide.confirmed(answer.remote_id, answer.created, exchanges)


def contacts_confirm_answered(
    *, destination: Destination, answers: dict[str, BatchItemResult], context: PushContext
) -> list:
    """Record what the platform itself said, unasked, of contacts it accepted in bulk (a
    completion webhook: `answers` by external ID): synced, or failed with the platform's
    reason. Contacts no longer awaiting confirmation are left alone (a read-back got there
    first). Returns the states as written."""
    contact_ids = list(
        ContactSyncState.objects.filter(
            destination=destination,
            status=SyncStatus.AWAITING,
            contact__external_id__in=list(answers),
        ).values_list("contact_id", flat=True)
    )
    states = with_database_retry(
        _claim, contact_ids, destination, context, True, SyncStatus.AWAITING
    )
    if not states:
        return []
    records = selectors.contact_records(states)
    _release_deleted(states, {r.id for r in records})
    results = [
        _confirmation(
            record,
            states[record.id],
            answers[record.external_id],
            destination,
            destination.connector_class,
            [],
        )
        for record in records
    ]
    _write(results, destination, context)
    return [r.state for r in results]


def _calls_about(external_id: str, calls: list[Exchange]) -> list[Exchange]:
    """The calls of a confirmation that name this contact (a read-back by its external ID),
    else the last call, which answered for the whole batch (an import status)."""
    token = "=" + quote_plus(external_id)
    own = [c for c in calls if c.url.endswith(token) or token + "&" in c.url]
    return own or calls[-1:]


def _release_awaiting(states) -> None:
    """Give back confirmations not made (the destination paused): awaiting, due at once."""
    ContactSyncState.objects.filter(
        pk__in=[s.pk for s in states], status=SyncStatus.IN_PROGRESS
    ).update(
        status=SyncStatus.AWAITING, claimed_at=None, claimed_by="", next_attempt_at=timezone.now()
    )


def contacts_confirm_chunk(
    *, destination_id: int, contact_ids: list[int], context: PushContext
) -> None:
    """A worker's share of the confirmations: one chunk, one destination."""
    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is None:
        return
    contacts_confirm(contact_ids=contact_ids, destination=destination, context=context)


def contact_delete_remote(
    *, destination_id: int, external_id: str, remote_id: str, user_id: int | None
) -> None:
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None:
        return
    attempt = SyncAttempt(
        destination=destination,
        external_id=external_id,
        trigger=Trigger.DELETE,
        user_id=user_id,
        started_at=timezone.now(),
    )
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
        for name, value in exchange_fields(connector.drain_exchanges()).items():
            setattr(attempt, name, value)
    with_database_retry(attempt.save)
