"""What the platforms send back, in platform-neutral words (shared/inbound.md part A).

A connector declares `inbound` = its platform's `InboundVerifier` subclass, kept in the
connector's own module. The verifier checks one delivery exactly as the platform documents
it (a signature, basic auth, an SNS envelope) and turns its body into `PlatformEvent`s with
one `EventKind` vocabulary, the platform's own object kept beside each (as anymail's tracking
webhooks do). Nothing here touches the ORM or the network: a verifier that needs a
certificate is handed a fetcher, so the receiving side decides which hosts may serve one.
"""

import datetime
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

MAX_BODY = 1_000_000  # bytes: part A's limit for one delivery
TIMESTAMP_TOLERANCE = datetime.timedelta(minutes=5)  # part A: the 5-minute window


class EventKind:
    """What an event means here, whatever the platform calls it."""

    UNSUBSCRIBED = "unsubscribed"  # a channel or a list
    RESUBSCRIBED = "resubscribed"  # an opt-in: never applied on the body's word alone
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    DELETED = "deleted"  # the contact was deleted on the platform
    BULK_COMPLETED = "bulk_completed"  # a bulk request's per-contact outcome
    SUBSCRIPTION_CONFIRMATION = "subscription_confirmation"  # SNS: confirm by a GET
    RECORDED = "recorded"  # kept, changes nothing here (a delivery, a click, a field edit)

    CHOICES = (
        (UNSUBSCRIBED, "Unsubscribed"),
        (RESUBSCRIBED, "Resubscribed"),
        (HARD_BOUNCE, "Hard bounce"),
        (COMPLAINT, "Spam complaint"),
        (DELETED, "Deleted on the platform"),
        (BULK_COMPLETED, "Bulk completed"),
        (SUBSCRIPTION_CONFIRMATION, "Subscription confirmation"),
        (RECORDED, "Recorded only"),
    )
    OPT_OUTS = frozenset({UNSUBSCRIBED, HARD_BOUNCE, COMPLAINT})


class Reason:
    """Why a delivery was refused (counted per destination)."""

    SIGNATURE = "signature"
    REPLAY = "replay"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNKNOWN_ACCOUNT = "unknown_account"
    STALE_OPT_IN = "stale_opt_in"

    CHOICES = (
        (SIGNATURE, "Bad or missing signature"),
        (REPLAY, "Replayed delivery (ignored)"),
        (TOO_LARGE, "Body over the limit"),
        (MALFORMED, "Malformed body"),
        (UNKNOWN_ACCOUNT, "Another account"),
        (STALE_OPT_IN, "Stale opt-in refused"),
    )


class Refused(Exception):
    """The delivery is not taken: `status` is the answer, `reason` what is counted."""

    def __init__(self, reason: str, status: int, message: str = ""):
        self.reason, self.status, self.message = reason, status, message
        super().__init__(message or reason)


def bad_signature(message: str) -> Refused:
    return Refused(Reason.SIGNATURE, 401, message)


def malformed(message: str) -> Refused:
    return Refused(Reason.MALFORMED, 400, message)


@dataclass
class InboundRequest:
    method: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    query: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class PlatformEvent:
    """One event of a delivery. `key` is unique per destination (the platform's delivery id,
    nonce or dedupe tuple): the same key twice is a replay. `channel` is "email", "sms",
    "push" or "list" (then `remote_list` names the platform's list). `status` refines an
    opt-out ("no_marketing" for iVvy's status 5), blank for the kind's own."""

    kind: str
    raw_type: str
    key: str
    occurred_at: datetime.datetime | None
    channel: str = ""
    remote_list: str = ""
    remote_id: str = ""
    external_id: str = ""
    email: str = ""
    status: str = ""
    detail: str = ""
    raw: Any = None
    data: dict = field(default_factory=dict)
    # The platform's change itself, where both its webhook and its poll can name it (iVvy:
    # contact, status and modifiedDate; Cendyn: the delivery's id and status): an event whose
    # change was stored already, by the other path, is not stored again. Blank: no such name.
    change_key: str = ""


@dataclass
class Verified:
    """A delivery that proved where it came from. `sent_at`: the signed send time where the
    platform signs one (the stale rule reads it)."""

    events: list[PlatformEvent]
    sent_at: datetime.datetime | None = None


class InboundVerifier:
    """One platform's inbound contract. Built per delivery with the destination's inbound
    secrets (by the credential names the connector declares in `inbound_credentials`), its
    settings, its registration state (what the platform returned when we registered), a
    clock and, where certificates are fetched, `fetch_certificate(url) -> bytes`."""

    # Whether the platform's signature covers the body: where it does not (or nothing is
    # signed), an opt-in is confirmed by reading the contact back before it is applied.
    signs_body: ClassVar[bool] = True
    # Where the endpoint is registered through the platform's API (the connector's
    # `inbound_register`), not by a person in the platform's settings.
    registers_by_api: ClassVar[bool] = False

    def __init__(
        self,
        *,
        secrets: dict[str, str],
        settings: dict,
        state: dict,
        now: Callable[[], datetime.datetime],
        fetch_certificate: Callable[[str], bytes] | None = None,
        allow_loopback_certificates: bool = False,
    ):
        self.secrets = secrets
        self.settings = settings
        self.state = state
        self.now = now
        self.fetch_certificate = fetch_certificate
        self.allow_loopback_certificates = allow_loopback_certificates

    def verify(self, request: InboundRequest) -> Verified:
        """The delivery's events; raises Refused (bad signature 401, malformed 400, ...)."""
        raise NotImplementedError

    @classmethod
    def registration_steps(cls, url: str) -> list[str]:
        """What a person does to have the platform send to `url`, one step a line."""
        raise NotImplementedError

    # -- shared helpers

    def is_stale(self, sent_at: datetime.datetime | None) -> bool:
        return sent_at is not None and abs(self.now() - sent_at) > TIMESTAMP_TOLERANCE


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two texts."""
    return hmac.compare_digest(a.encode(), b.encode())


def from_epoch(value: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromtimestamp(int(value), datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def from_iso(value: Any) -> datetime.datetime | None:
    """An ISO 8601 time with its zone (`Z` or an offset); None when absent or zoneless."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def text(value: Any) -> str:
    return "" if value is None else str(value)
