"""What every connector shares: the error hierarchy, the transport and its failure
classification (part A of shared/platforms.md, "Failures: who retries, who waits").

A platform module subclasses `BaseConnector` and supplies the mapping (`build_payload`, pure)
and the platform's calls (`push`, `delete`, `test_connection`, `fetch_options`), each made
through `self.request(...)`, which signs, throttles, times, classifies and records the call.
"""

import datetime
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

import sync.connectors.readback as readback
from sync.connectors.declarations import Credential, Setting
from sync.connectors.inbound import InboundVerifier, PlatformEvent
from sync.connectors.records import (
    ALWAYS,
    NEVER,
    ContactRecord,
    MappingRecord,
    RemoteOption,
    RemoteState,
)
from sync.policy import address_problem, credential_name_problem
from sync.redaction import Redactor, scrub

BODY_EXCERPT = 500  # characters of a response body kept in errors and in the attempt log


# ---------------------------------------------------------------------------------- errors


class ConnectorConfigurationError(ImproperlyConfigured):
    """The destination cannot be used as configured (a missing credential, a bad URL)."""


class ConnectorError(Exception):
    """A call to a platform failed. Says which platform, which status and the platform's own
    message; `body` keeps the first 500 characters of the response, and `exchange` the call
    as it was made (method, URL, request body and response excerpt, credentials removed)
    when the error came from one: `describe()` tells all of it."""

    retryable = False
    destination_wide = False

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
    ):
        self.platform = platform
        # What the platform said may echo a credential: nothing secret is kept (redaction.py).
        self.message = scrub(message)
        self.status = status
        self.body = scrub((body or "")[:BODY_EXCERPT])
        self.retry_after = retry_after
        self.exchange: Exchange | None = None
        super().__init__(str(self))

    def __str__(self):
        status = f" HTTP {self.status}" if self.status else ""
        return f"{self.platform}{status}: {self.message}"

    def describe(self) -> str:
        """The error, then the request that met it and what came back."""
        if self.exchange is None:
            return str(self)
        call = self.exchange
        lines = [str(self), f"Request: {call.method} {call.url}"]
        if call.request_body:
            lines.append(f"Request body: {call.request_body[:BODY_EXCERPT]}")
        answer = f"HTTP {call.status}" if call.status else "no answer"
        lines.append(f"Response: {answer} {call.response_excerpt}".rstrip())
        return "\n".join(lines)


class RetryableError(ConnectorError):
    """Connection error, timeout, 429 or 5xx: try again later (at least `retry_after` s)."""

    retryable = True


class PermanentError(ConnectorError):
    """The platform refused this contact (a 4xx other than 401/403/429), or answered with
    something we cannot use; retrying the same payload gives the same answer."""


class AuthenticationError(ConnectorError):
    """401/403: the credentials are bad or revoked; the whole destination must wait."""

    destination_wide = True


class UntrustedAddressError(ConnectorError):
    """The destination's host resolved to an address we never send credentials to (a
    private, link-local or loopback one; sync/policy.py): the whole destination must wait."""

    destination_wide = True


@dataclass
class OptionsPartFailure:
    """One of a platform's option lists that could not be fetched: `part` names it for the
    admin (e.g. "subscription groups (getSubscriptionGroupList)"), `kind` is the kind of option
    it provides ("field" | "list")."""

    part: str
    kind: str
    error: ConnectorError


class PartialOptionsError(ConnectorError):
    """Some of the platform's option lists failed: `options` holds those that were fetched,
    `failures` says which parts failed and why. Retryable when every failure is."""

    def __init__(self, platform: str, options: list, failures: list[OptionsPartFailure]):
        self.options = options
        self.failures = failures
        self.retryable = all(f.error.retryable for f in failures)
        failed = "; ".join(
            f"{f.part} failed ({f'HTTP {f.error.status}: ' if f.error.status else ''}"
            f"{f.error.message})"
            for f in failures
        )
        count = "1 field or list" if len(options) == 1 else f"{len(options)} fields and lists"
        super().__init__(platform, f"{failed}; fetched from the other parts: {count}")


# ------------------------------------------------------------------------------- results


@dataclass
class Exchange:
    """One HTTP call, as the attempt log keeps it (credentials removed)."""

    method: str
    url: str
    status: int | None
    request_body: str
    response_excerpt: str
    duration_ms: int


@dataclass
class PushResult:
    """`created`: True when the platform (or our lookup finding nothing) says the contact is
    new, False when it says it updated one, None when it answers both alike (an upsert).
    `awaiting`: the platform took the push for asynchronous processing (a clear through a bulk
    call, say) and has not said yet what it did: `reference` is what `confirm` follows."""

    remote_id: str | None
    created: bool | None
    status_code: int | None
    payload: dict = field(default_factory=dict)
    awaiting: bool = False
    reference: str = ""


@dataclass(frozen=True)
class WritePlan:
    """What one push does with each key of a contact (BaseConnector.write_plan): `clear` the
    keys the platform may hold from us that are empty here now, and that it documents a way to
    clear; `kept` the ones it documents no way to clear (their old value stays there: the
    attempt log says so); `held` the keys the platform holds from us once it accepts the push."""

    clear: frozenset[str] = frozenset()
    kept: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()
    unknown: bool = False  # what the platform held from us was not known: "possibly" held


@dataclass(frozen=True)
class Built:
    """One contact's body and write plan, as `build_payload` and `write_plan` made them for
    its state: what the engine hands `push_many` so that neither is worked out again."""

    payload: dict
    plan: WritePlan


@dataclass
class BatchItemResult:
    """One contact's outcome inside a bulk push, or of a confirmation (`confirm`).

    `error` set: the platform refused this contact (or the call failed). Else accepted:
    confirmed when `awaiting` is False, or taken for processing with no per-contact word yet
    when it is True, `reference` then saying what to follow it by (a bulk or import session
    id). `remote_id` when the platform named the contact's id; `created` as in PushResult."""

    external_id: str
    error: ConnectorError | None = None
    awaiting: bool = False
    reference: str = ""
    remote_id: str | None = None
    created: bool | None = None


@dataclass
class PlannedRequest:
    """A call a push would make, as a dry run shows it: nothing is sent. Headers are the signed
    ones with every credential redacted; `body` is the JSON text ("" for none). `note` says
    what depends on an answer (a lookup's result); `refused` is set instead of a call when the
    connector refuses the contact before any request (then method and URL are empty)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    note: str = ""
    refused: str = ""
    external_ids: tuple[str, ...] = ()

    @property
    def pretty_body(self) -> str:
        try:
            return json.dumps(json.loads(self.body), indent=2, ensure_ascii=False)
        except ValueError:
            return self.body


@dataclass
class EraseResult:
    """What a platform did when asked to erase a person (`BaseConnector.erase`).

    `deleted`: the platform's delete call was made (a platform answering that it holds no
    such contact counts: it is gone either way). Otherwise the platform has no delete call:
    `absent` when it holds no such contact, else `blanked` names what the platform's contract
    let us blank and `instruction` says what a person must still do by hand there, with the
    platform's own id of the contact (`remote_id`)."""

    deleted: bool
    absent: bool = False
    blanked: tuple[str, ...] = ()
    instruction: str = ""
    remote_id: str | None = None


@dataclass(frozen=True)
class Unconfirmed:
    """A contact the platform accepted in bulk without saying yet what it did, as `confirm`
    receives it: the contact as of now and the reference its bulk answer gave."""

    record: ContactRecord
    reference: str = ""


# ------------------------------------------------------------------------------ connector


class _ForbiddenPeer(Exception):
    """Raised from inside urllib3 when a connection lands on an address policy refuses; not an
    OSError, so neither urllib3 nor requests retries or rewraps it."""


def _checked(sock: socket.socket) -> socket.socket:
    problem = address_problem(sock.getpeername()[0])
    if problem:
        sock.close()
        raise _ForbiddenPeer(problem)
    return sock


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self):
        return _checked(super()._new_conn())


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        return _checked(super()._new_conn())


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class AddressCheckingAdapter(HTTPAdapter):
    """Checks the address every new connection actually reached, after DNS and before a byte
    is sent, so that a name resolving to an internal address (now or after a DNS change)
    never receives a credential."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPPool,
            "https": _CheckedHTTPSPool,
        }


def outbound_session() -> requests.Session:
    """A session configured from settings, not re-read from the environment on every request:
    requests scans every environment variable for proxies per call when `trust_env` is on,
    which cost more than the request itself on loopback. A proxy and a CA bundle, when needed,
    are set with SYNC_HTTPS_PROXY and SYNC_CA_BUNDLE.

    Without a proxy every connection's address is checked (AddressCheckingAdapter). Behind
    SYNC_HTTPS_PROXY we never resolve the destination ourselves: the proxy does, and the check
    is the proxy's to make."""
    session = requests.Session()
    session.trust_env = False
    # One connection pool per destination, as large as the requests a worker keeps in flight
    # to it (sync/inflight.py): a smaller pool would close and reopen connections.
    pool = {"pool_maxsize": settings.SYNC_REQUESTS_IN_FLIGHT}
    if settings.SYNC_HTTPS_PROXY:
        session.proxies = {"https": settings.SYNC_HTTPS_PROXY, "http": settings.SYNC_HTTPS_PROXY}
        adapter = HTTPAdapter(**pool)
    else:
        adapter = AddressCheckingAdapter(**pool)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if settings.SYNC_CA_BUNDLE:
        session.verify = settings.SYNC_CA_BUNDLE
    return session


class BaseConnector:
    """One destination's connector. Subclasses set the class attributes and implement the
    platform's calls; `request` is the only way they reach the network."""

    slug: ClassVar[str]
    label: ClassVar[str]
    default_base_url: ClassVar[str]
    # The hosts the platform serves (shared/platforms.md part B): a destination's URL must
    # name one of them, or a host the operator allows (sync/policy.py).
    hosts: ClassVar[frozenset[str]] = frozenset()
    regions: ClassVar[dict[str, str]] = {}  # region code -> base URL
    default_rate_limit: ClassVar[float]  # requests per second
    # Classes of calls the platform limits on their own, name -> requests per second (within
    # the destination's rate): a call made with `request(..., call_class=name)` waits for both.
    call_classes: ClassVar[dict[str, float]] = {}
    supports_delete: ClassVar[bool] = False
    batch_size: ClassVar[int] = 0  # > 0 when the platform has a bulk endpoint
    # Standard fields the platform has no native slot for: the destination may map them.
    mappable_standard_fields: ClassVar[tuple[str, ...]] = ()
    # The secrets the platform needs, by the name the connector reads them under (`secrets`).
    credentials: ClassVar[dict[str, Credential]] = {
        "api_key": Credential("key_env", "API key variable")
    }
    # The non-secret settings of a destination on this platform (Destination.settings).
    destination_settings: ClassVar[tuple[Setting, ...]] = ()
    # The emulator of the platform in the sandbox (sync/sandbox/), as a dotted path: the
    # sandbox, its destinations and the tests are built from the registry.
    sandbox_emulator: ClassVar[str]
    # The ContactRecord fields `read_contact` can read back from the platform's answer (see
    # sync/connectors/readback.py): every other field of a read-back is unknown, never drift.
    readable_fields: ClassVar[frozenset[str]] = frozenset()
    # Facts about the platform an admin should read on its destination page (what it does not
    # hold, what is never sent), one sentence each.
    notes: ClassVar[tuple[str, ...]] = ()
    # What the platform sends back (shared/inbound.md): its verifier, kept in the platform's
    # module, and the secrets that verifier needs beyond `credentials` (optional: without
    # them nothing from the platform can be verified, and every delivery is refused).
    inbound: ClassVar[type[InboundVerifier] | None] = None
    inbound_credentials: ClassVar[dict[str, Credential]] = {}
    # Standard fields sent in a native slot of the platform, whose write rule a destination may
    # set (NativeFieldRule); those among `required_on_create` cannot be "never".
    native_fields: ClassVar[tuple[str, ...]] = ()
    required_on_create: ClassVar[tuple[str, ...]] = ()
    # The fields whose cleared values stay on the platform, because it documents no way to clear
    # them (shared/inbound.md part A, "Clearing values"), as the destination page lists them.
    uncleared_fields: ClassVar[tuple[str, ...]] = ()
    # How the connector waits (quick retries, bulk polling): a test injects its own on the
    # instance instead of patching `time.sleep` for the whole process.
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    # The destination's public inbound URL ("" without SYNC_PUBLIC_URL), for a platform
    # whose bulk request names a completion webhook.
    inbound_url: str = ""
    # Polling where no webhook reaches us (sync/connectors/polling.py): whether `poll` exists,
    # whether it asks per contact (a sample of those the platform holds from us), how often at
    # most (None: SYNC_POLL_INTERVAL_MINUTES), and, for the destination page, what it polls and
    # what the platform gives no poll for (with the vendor's reason).
    polls: ClassVar[bool] = False
    poll_per_contact: ClassVar[bool] = False
    poll_every: ClassVar[datetime.timedelta | None] = None
    polled: ClassVar[tuple[str, ...]] = ()
    not_polled: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        base_url: str,
        credentials: dict[str, str],
        mapping: MappingRecord,
        options: dict[str, Any] | None = None,
        timeout: float = 10.0,
        rate_limiter=None,
        quick_retries: int = 0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.secrets = credentials
        self.redact = Redactor(credentials.values())
        self.mapping = mapping
        self.options = options or {}
        self.timeout = timeout
        self.rate_limiter = rate_limiter
        self.quick_retries = quick_retries
        self.session = session or outbound_session()
        self.exchanges: list[Exchange] = []

    # -- configuration

    @classmethod
    def base_url_for(cls, settings: dict) -> str:
        """The platform's URL for a destination with these settings and no URL of its own:
        its region's where it has regions, else the default."""
        return cls.regions.get(settings.get("region", "")) or cls.default_base_url

    @classmethod
    def read_credentials(cls, env_names: dict[str, str]) -> dict[str, str]:
        """Read each credential from the environment variable named for it, if the outbound
        policy allows that name (sync/policy.py).

        Raises ConnectorConfigurationError for a name the policy refuses (saying nothing of
        whether such a variable exists), and naming the variable when it is unset or empty."""
        values = {}
        for credential, env_name in env_names.items():
            if not env_name:
                raise ConnectorConfigurationError(
                    f"{cls.label}: no environment variable is named for the {credential}."
                )
            problem = credential_name_problem(env_name)
            if problem:
                raise ConnectorConfigurationError(f"{cls.label}: the {credential}: {problem}")
            value = os.environ.get(env_name, "")
            if not value:
                raise ConnectorConfigurationError(
                    f"{cls.label}: environment variable {env_name} (the {credential}) is not set."
                )
            values[credential] = value
        return values

    @classmethod
    def remote_field_problem(cls, remote_field: str) -> str:
        """Why the platform would refuse a mapping to this field ("" when it would not), so
        the mapping form refuses it first."""
        return ""

    # -- write rules and clears (issue #13: "Cleared means cleared", "Write rules per mapping")

    @staticmethod
    def holds_contact(state: RemoteState) -> bool:
        """The platform holds a version of this contact from us: a push is then an update, and
        "on create only" fields are left to the platform."""
        return state.accepted or bool(state.remote_id)

    def sends(self, key: str, state: RemoteState) -> bool:
        """Whether this push writes the field `key` (a source key), by its write rule."""
        rule = self.mapping.write_rules.get(key, ALWAYS)  # MappingRecord.rule, called inline
        if rule == ALWAYS:
            return True
        if rule == NEVER:
            return False
        return not self.holds_contact(state)  # on create only

    def field_presence(self, record: ContactRecord) -> dict[str, bool]:
        """Every key this connector writes for the contact -> whether the contact has a value
        for it. Keys are source keys ("first_name", "custom:plan") for fields, and the
        connector's own names for children (e.g. "url:<ref>"). A connector that clears
        implements it."""
        return {}

    def is_clearable(self, key: str) -> bool:
        """Whether the platform documents a way to clear this key (see `uncleared_fields`)."""
        return True

    def write_plan(self, record: ContactRecord, state: RemoteState) -> WritePlan:
        """Which keys this push clears, which cleared ones stay on the platform, and which the
        platform holds from us afterwards. A key is cleared only when the platform may hold it
        from us: one it last accepted with a value (any, when the state is unknown, but none
        before the platform holds the contact) that is empty here now, and that its write rule
        still lets us write. A child key held but gone here (a removed URL) counts as empty."""
        presence = self.field_presence(record)
        held_before = state.held_keys
        if not self.holds_contact(state):
            candidates: set[str] = set()
        elif held_before is None:
            candidates = {key for key, present in presence.items() if not present}
        else:
            candidates = {key for key in held_before if not presence.get(key, False)}
        emptied = {key for key in candidates if self.sends(key, state)}
        clear = frozenset(key for key in emptied if self.is_clearable(key))
        kept = frozenset(emptied - clear)
        held = {key for key, present in presence.items() if present and self.sends(key, state)}
        # What we do not write this time stays as it was: held if it was (or may have been).
        untouched = (held_before or frozenset()) - set(presence) - emptied
        held |= {key for key in held_before or () if not self.sends(key, state)}
        unknown = held_before is None and self.holds_contact(state)
        # A kept value stays held from us (the notice repeats until it is set again), unless we
        # only guessed it was there: then it was noticed once, as "possibly kept".
        held |= set() if unknown else kept
        return WritePlan(clear, kept, frozenset(held | untouched), unknown)

    def kept_notice(self, plan: WritePlan) -> str:
        """The attempt log's words for cleared values the platform keeps ("" when none)."""
        if not plan.kept:
            return ""
        what = "Empty here and possibly kept" if plan.unknown else "Cleared here but kept"
        return (
            f"{what} on {self.label}, which documents no way to clear them: "
            f"{', '.join(sorted(plan.kept))}. These fields are not in sync."
        )

    # -- what each platform implements

    def build_payload(
        self, record: ContactRecord, state: RemoteState, plan: WritePlan | None = None
    ) -> dict:
        """The JSON body for one contact. Pure: no I/O, no clock unless the platform needs
        a timestamp in the body. `plan`: `write_plan(record, state)` when the caller has
        worked it out already (the engine has), so that it is not worked out twice; None:
        worked out here where the body depends on it."""
        raise NotImplementedError

    def push(
        self, record: ContactRecord, state: RemoteState, built: Built | None = None
    ) -> PushResult:
        """Create or update the contact on the platform, matching as part A says. `built`:
        the contact's payload and write plan as `build_payload` and `write_plan` made them for
        `state` (the engine builds them for its comparison and fingerprint before the push, so
        that a push builds each body once); None: built here.

        Returns the remote id (None where the platform gives none and none is known).
        Raises ConnectorError subclasses."""
        raise NotImplementedError

    def pushes_in_bulk(self, contacts: int) -> bool:
        """Whether a task chunk of this many contacts goes through `push_many`."""
        return bool(self.batch_size) and contacts > 1

    def push_many(
        self,
        records: list[ContactRecord],
        states: list[RemoteState] | None = None,
        built: list[Built] | None = None,
    ) -> list[BatchItemResult]:
        """Push in the platform's batch calls: one result per record, in order; `states` what
        we know of each on the platform (None: nothing). `built`: each record's payload and
        write plan as `build_payload` and `write_plan` made them for that state (the engine
        builds them for its comparison and fingerprint before the push: a bulk chunk would
        otherwise build every payload twice); None: built here. A contact the platform took
        without a per-contact answer is `awaiting` (see `confirm`)."""
        raise NotImplementedError(f"{self.label} has no bulk endpoint")

    def confirm(self, pending: list[Unconfirmed]) -> list[BatchItemResult | None]:
        """Ask the platform what became of contacts it accepted in bulk: one entry per
        contact, in order; None while the platform has not said (or the check could not be
        made), a BatchItemResult with `error` only when the platform itself refused it.
        Raises AuthenticationError (destination-wide); every other failure is None.
        A connector whose `push_many` answers `awaiting` implements it."""
        raise NotImplementedError(f"{self.label} confirms nothing after a bulk push")

    def delete(self, *, external_id: str, remote_id: str | None) -> None:
        raise NotImplementedError(f"{self.label} has no delete call")

    # -- dry run: what a push would send, sent nowhere

    def planned_requests(self, items: list[tuple[ContactRecord, RemoteState]]) -> list:
        """The requests a push of these contacts (one task chunk) would make, in order, as
        `PlannedRequest`s built by `plan(...)` from the same body builders the push uses.
        Nothing is sent. A contact refused before any request appears as a `refused` entry."""
        raise NotImplementedError

    def request_count(self, *, contacts: int, without_remote_id: int, chunk_size: int) -> int:
        """How many requests pushing `contacts` contacts makes, `without_remote_id` of them with
        no remote id stored, in task chunks of `chunk_size` (bulk calls counted per chunk).
        Where the platform's answers decide (a poll until an import ends), the least it
        makes. The default: one call per contact."""
        return contacts

    def plan(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict | None = None,
        note: str = "",
        external_ids: tuple[str, ...] = (),
    ) -> PlannedRequest:
        """The request `request(...)` would send, signed as it would be, credentials
        redacted from URL, headers and body. Sends nothing."""
        prepared, body = self._prepare(method, path, json_body=json_body, params=params)
        # The secrets in every form; an authorization header's secret-bearing parts too (a
        # signature is as good as the key). Not `self.redact`, which also holds every other
        # signed header's value (a version number, a date) and would blank them in the URL.
        secrets = Redactor(self.secrets.values())
        headers = {}
        for name, value in prepared.headers.items():
            if carries_credentials(name):
                signed = Redactor(self.secrets.values())
                signed.add_header(value)
                value = signed(value)
            headers[name] = secrets(value)
        return PlannedRequest(
            method=method,
            url=secrets(prepared.url),
            headers=headers,
            body=secrets(body.decode(errors="replace")),
            note=note,
            external_ids=external_ids,
        )

    def refused(self, record: ContactRecord, err: "ConnectorError") -> PlannedRequest:
        """A dry-run entry for a contact refused before any request."""
        return PlannedRequest("", "", refused=err.message, external_ids=(record.external_id,))

    def buildable(self, items: list[tuple[ContactRecord, RemoteState]], planned: list):
        """For a dry run: each contact with the payload `build_payload` makes for it, as
        `(record, state, payload)`; a contact it refuses goes into `planned` as a `refused`
        entry instead."""
        for record, state in items:
            try:
                payload = self.build_payload(record, state)
            except PermanentError as err:
                planned.append(self.refused(record, err))
                continue
            yield record, state, payload

    @staticmethod
    def task_chunks(contacts: int, chunk_size: int) -> list[int]:
        """The sizes of the task chunks `contacts` contacts are pushed in."""
        size = max(1, chunk_size)
        full, rest = divmod(contacts, size)
        return [size] * full + ([rest] if rest else [])

    def erase(self, *, external_id: str, remote_id: str | None) -> EraseResult:
        """Erase a person for good (GDPR art. 17): the platform's delete call, made permanent
        where the platform offers a choice (a connector whose `delete` keeps the contact
        recoverable overrides this). A platform without a delete call overrides it to blank
        what its contract lets us blank and say what is left to do by hand.
        Raises ConnectorError subclasses."""
        if not self.supports_delete:
            raise NotImplementedError(f"{self.label} has no delete call and no erase")
        self.delete(external_id=external_id, remote_id=remote_id)
        return EraseResult(deleted=True)

    def read_contact(self, *, external_id: str, remote_id: str | None) -> ContactRecord | None:
        """What the platform holds for the contact with this external ID (and this remote id,
        when we have one), in our record shape: only `readable_fields` mean anything in it.
        None when the platform holds no such contact. Raises ConnectorError subclasses."""
        raise NotImplementedError(f"{self.label} cannot read a contact back")

    def find_remote_id(self, *, external_id: str) -> str | None:
        """The platform's id of the contact holding this external ID, None when it holds
        none, by the platform's cheapest documented lookup: an update-only destination asks
        before every push that is not unchanged (never creating a contact there). Raises
        ConnectorError subclasses."""
        raise NotImplementedError(f"{self.label} cannot look a contact up")

    def compared_fields(self) -> tuple[str, ...]:
        """The fields a read-back of this destination compares (readback.compared_fields)."""
        return readback.compared_fields(
            self.readable_fields, self.mapping, self.mappable_standard_fields
        )

    def field_differs(self, name: str, ours: ContactRecord, theirs: ContactRecord) -> bool:
        """Whether what the platform holds for one compared field differs from what we would
        send now; a connector whose platform holds a field in coarser words overrides it."""
        return readback.field_differs(name, ours, theirs)

    def test_connection(self) -> str:
        """Call a harmless authenticated endpoint; return a short success text."""
        raise NotImplementedError

    def probe_calls(self) -> list:
        """The vendor-change guard's calls (sync/connectors/probe.py `ProbeCall`s): the
        cheapest documented reads, each with the shape of the answer this connector reads."""
        raise NotImplementedError

    # -- inbound (shared/inbound.md)

    def inbound_register(self, url: str) -> dict:
        """Register `url` with the platform's API where it has one (`inbound.registers_by_api`);
        returns what the platform answered that verification needs later (a topic)."""
        raise NotImplementedError(f"{self.label} registers webhooks in its own settings only")

    def inbound_opt_in_holds(self, event: PlatformEvent) -> bool | None:
        """Read the contact back: True when the platform holds the opt-in `event` reports,
        False when it does not, None when it cannot tell (no read-back: the opt-in is then
        applied only from a signed, fresh delivery)."""
        return None

    def poll(self, *, cursor: dict, sample: list, now: datetime.datetime):
        """What changed on the platform since `cursor` (and, per contact, for `sample`'s
        `PollSubject`s): a `PollResult` of events and the next cursor."""
        raise NotImplementedError(f"{self.label} has no poll")

    def inbound_confirm_subscription(self, event: PlatformEvent) -> str:
        """Confirm a verified subscription request (SNS); returns a short text."""
        raise NotImplementedError(f"{self.label} sends no subscription confirmation")

    def fetch_options(self) -> list[RemoteOption]:
        """The fields and lists the platform offers, for the mapping choices.

        Raises PartialOptionsError, carrying the options that were fetched, when some of the
        platform's lists failed (see `fetch_option_parts`), other ConnectorErrors otherwise."""
        raise NotImplementedError

    def fetch_option_parts(
        self, parts: list[tuple[str, str, Callable[[], list[RemoteOption]]]]
    ) -> list[RemoteOption]:
        """Run each `(part, kind, fetch)` in turn and return every option fetched, so that one
        failed list never discards the others. Raises PartialOptionsError naming the parts
        that failed; an AuthenticationError at once (every other part would fail the same)."""
        options: list[RemoteOption] = []
        failures: list[OptionsPartFailure] = []
        for part, kind, fetch in parts:
            try:
                options += fetch()
            except AuthenticationError:
                raise
            except ConnectorError as err:
                failures.append(OptionsPartFailure(part, kind, err))
        if failures:
            raise PartialOptionsError(self.label, options, failures)
        return options

    # -- transport

    def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Add authentication headers in place. Subclasses override."""

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict | None = None,
        expect_json: bool = True,
        call_class: str | None = None,
    ) -> tuple[int, Any]:
        """Send one call and return `(status, parsed body)`; `call_class` names the class of
        calls it counts against (`call_classes`), besides the destination's own limit.

        2xx with a JSON body (or any body when `expect_json` is False) is returned; everything
        else raises the ConnectorError subclass that part A prescribes. A transient failure is
        retried here at most `quick_retries` times, only when the wait is short."""
        attempt = 0
        while True:
            try:
                return self._send_once(
                    method,
                    path,
                    json_body=json_body,
                    params=params,
                    expect_json=expect_json,
                    call_class=call_class,
                )
            except ConnectorError as err:
                if err.exchange is None and self.exchanges:
                    err.exchange = self.exchanges[-1]  # recorded (redacted) before raising
                if not err.retryable:
                    raise
                if err.retry_after and self.rate_limiter is not None:
                    # The platform asked the whole account to wait: hold every worker back.
                    self.rate_limiter.defer(err.retry_after)
                wait = err.retry_after if err.retry_after is not None else 0.2 * 2**attempt
                if attempt >= self.quick_retries or wait > 2.0:
                    raise
                attempt += 1
                self.sleep(wait)

    def _prepare(self, method, path, *, json_body, params):
        """The signed request for one call, and its body: what `_send_once` sends and what a
        dry run shows (`plan`)."""
        url = urljoin(self.base_url, path.lstrip("/"))
        body = b"" if json_body is None else json.dumps(json_body, ensure_ascii=False).encode()
        headers = {"Accept": "application/json"}
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        prepared = requests.Request(
            method, url, params=params, data=body or None, headers=headers
        ).prepare()
        unsigned = dict(prepared.headers)
        self.sign(method, prepared.path_url, body, prepared.headers)
        for name, value in prepared.headers.items():
            if unsigned.get(name) != value and carries_credentials(name):
                self.redact.add_header(value)  # an echoed signature is as good as the key
        return prepared, body

    def _send_once(self, method, path, *, json_body, params, expect_json, call_class=None):
        url = urljoin(self.base_url, path.lstrip("/"))
        prepared, body = self._prepare(method, path, json_body=json_body, params=params)
        if self.rate_limiter is not None:
            if call_class is None:
                self.rate_limiter.acquire()
            else:
                self.rate_limiter.acquire(call_class)
        started = time.monotonic()
        response = None
        try:
            response = self.session.send(
                prepared, timeout=(min(5.0, self.timeout), self.timeout), allow_redirects=False
            )
        except requests.Timeout as err:
            raise RetryableError(self.label, f"timed out after {self.timeout:g} s") from err
        except requests.ConnectionError as err:
            cause = self.redact(_root_cause(err))
            raise RetryableError(self.label, f"connection failed: {cause}") from err
        except _ForbiddenPeer as err:
            raise UntrustedAddressError(
                self.label, f"refused to connect to {urlsplit(url).hostname}: {err}"
            ) from None
        finally:
            self._record(method, prepared, body, response, started)
        return response.status_code, self._parse(response, expect_json)

    def _record(self, method, prepared, body, response, started):
        self.exchanges.append(
            Exchange(
                method=method,
                url=self.redact_url(prepared.url),
                status=response.status_code if response is not None else None,
                request_body=self.redact_body(body.decode(errors="replace")),
                response_excerpt=self.redact(response.text)[:BODY_EXCERPT]
                if response is not None
                else "",
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        )

    def _parse(self, response: requests.Response, expect_json: bool):
        status, text = response.status_code, response.text
        data = None
        if text.strip():
            try:
                data = response.json()
            except ValueError:
                data = None
        if 200 <= status < 300:
            if expect_json and data is None:
                raise PermanentError(
                    self.label, "the answer is not JSON", status=status, body=self.redact(text)
                )
            return data if data is not None else text
        message = self.error_message(data) or text.strip()[:200] or response.reason or "no message"
        message = self.redact(message)
        kwargs = {"status": status, "body": self.redact(text[: BODY_EXCERPT * 4])}
        if status in (401, 403):
            raise AuthenticationError(self.label, message, **kwargs)
        if status == 429 or status >= 500:
            raise RetryableError(self.label, message, retry_after=_retry_after(response), **kwargs)
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise PermanentError(
                self.label, f"redirect to {self.redact(location)} not followed", **kwargs
            )
        raise PermanentError(self.label, message, **kwargs)

    def error_message(self, data: Any) -> str:
        """The platform's own message from an error body (overridden where the shape differs)."""
        if isinstance(data, dict):
            for key in ("message", "error", "errorMessage", "status"):
                if isinstance(data.get(key), str) and data[key]:
                    extra = data.get("additionalMessages")
                    if isinstance(extra, list) and extra:
                        return f"{data[key]} ({'; '.join(map(str, extra))})"
                    return data[key]
        return ""

    def require_id(self, data: Any, key: str = "id", *, status: int) -> str:
        """The id from a success body, or a PermanentError carrying the body."""
        value = data.get(key) if isinstance(data, dict) else None
        if value in (None, ""):
            raise PermanentError(
                self.label,
                f"the answer has no {key!r}",
                status=status,
                body=self.redact(json.dumps(data))[:BODY_EXCERPT] if data is not None else "",
            )
        return str(value)

    # -- redaction: nothing secret reaches the attempt log

    def redact_body(self, text: str) -> str:
        return self.redact(text)

    def redact_url(self, url: str) -> str:
        return self.redact(url)

    def drain_exchanges(self) -> list[Exchange]:
        exchanges, self.exchanges = self.exchanges, []
        return exchanges


def carries_credentials(header: str) -> bool:
    """Whether a header the connector signs with carries a credential or a signature over
    one (`Authorization`, iVvy's `X-Api-Authorization`). The other signed headers (a version,
    a date, a body hash) are no secret: learning them would blank them wherever they appear,
    "1.0" in every iVvy URL of the attempt log."""
    return "authorization" in header.lower()


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    text = str(err)
    return text.split("] ", 1)[-1] if "] " in text else text
