"""Loops connector (loops.so): one contact upserted per `PUT /v1/contacts/update`.

Contract: shared/platforms.md, part A ("Matching", "Status and consent mapping") and part B §4
(Loops OpenAPI Spec 1.21.7, https://loops.so/docs/api-reference/update-contact,
https://loops.so/docs/contacts/properties).

- Matching: every body carries `userId` = our external ID (and `email` when we have one); Loops
  updates the contact matching either value, else creates one. The `id` it returns is stored.
- Custom properties are top-level keys named by the destination's field mapping.
- Clearing (shared/inbound.md 4.4): "To empty or reset the value of a contact property, send a
  `null` value", so a field Loops holds from us (first name, last name, user group, every mapped
  property) that is empty here now goes out as `null`; `mailingLists: {id: false}` takes the
  contact off a list ("added (`true`) or removed (`false`)"), and every mapped list is sent. The
  user group is the exception: Loops' OpenAPI types `userGroup` as a string, never null (where
  `firstName`/`lastName` may be null), and no other way to empty it is documented, so a cleared
  user group stays on Loops (`uncleared_fields`).
- Write rules: a field "on create only" is sent while Loops holds no version of the contact
  from us, "never" not at all (`BaseConnector.sends`).
- `subscribed` follows part A: `true` re-subscribes people who unsubscribed in Loops (seed 004).
- Refused before any request: a mapping to a reserved or native name, any key or value over
  500 characters, a custom value that does not fit its type. Nothing is truncated.
"""

import base64
import binascii
import datetime
import decimal
import json
from typing import Any

import sync.connectors.inbound as inbound
import sync.connectors.readback as readback
from sync.connectors.base import (
    BaseConnector,
    Built,
    ConnectorError,
    PermanentError,
    PushResult,
    WritePlan,
)
from sync.connectors.declarations import Credential
from sync.connectors.inbound import EventKind, InboundRequest, PlatformEvent, Verified
from sync.connectors.polling import PollResult, PollSubject
from sync.connectors.probe import Maybe, ProbeCall
from sync.connectors.records import (
    STANDARD_FIELDS,
    ContactRecord,
    CustomValueRecord,
    RemoteOption,
    RemoteState,
)

# https://loops.so/docs/contacts/properties#reserved-names
RESERVED_PROPERTIES = frozenset({"id", "listId", "softDeleteAt", "teamId", "updatedAt"})
# The update body's own fields (ContactFields in the OpenAPI spec): a custom property mapped to
# one of these would overwrite the contact's identity or subscription.
NATIVE_KEYS = frozenset(
    "email userId firstName lastName userGroup subscribed mailingLists source".split()
)
# "Some body key or value is longer than allowable" (https://loops.so/docs/api-reference/intro)
MAX_LENGTH = 500
MAX_SAFE_INTEGER = 2**53
UPDATE_PATH = "v1/contacts/update"
# Our email statuses Loops must not mail: part A sends `subscribed: false` for them.
NOT_SUBSCRIBED = frozenset({"unsubscribed", "bounced", "no_marketing"})
# Loops has first/last name, email, user group and `subscribed`; every other standard field
# reaches Loops only through a mapping to a custom property.
# Loops' own contact fields -> our standard field each one takes.
NATIVE_KEYS_BY_SOURCE = (
    ("firstName", "first_name"),
    ("lastName", "last_name"),
    ("userGroup", "user_group"),
)
MAPPABLE_STANDARD_FIELDS = tuple(
    name for name in STANDARD_FIELDS if name not in ("email_status", "user_group")
)


# Loops' webhook events (shared/inbound.md part A "What each event means here").
EVENT_KINDS = {
    "contact.unsubscribed": (EventKind.UNSUBSCRIBED, "email"),
    "contact.mailingList.unsubscribed": (EventKind.UNSUBSCRIBED, "list"),
    "email.hardBounced": (EventKind.HARD_BOUNCE, "email"),
    "email.spamReported": (EventKind.COMPLAINT, "email"),
    "email.resubscribed": (EventKind.RESUBSCRIBED, "email"),
    "contact.deleted": (EventKind.DELETED, ""),
}


class LoopsWebhooks(inbound.InboundVerifier):
    """Loops' signed webhooks (part B 4.1, "Verify requests"): `webhook-signature` holds
    space-separated `<version>,<base64>` entries, one of which must be base64(HMAC-SHA256(key,
    `webhook-id + "." + webhook-timestamp + "." + raw body`)), the key being the base64-decoded
    part of the signing secret after its first `_`. `webhook-id` is the dedupe key."""

    @classmethod
    def registration_steps(cls, url: str) -> list[str]:
        return [
            "In Loops, open Settings → Webhooks and add an endpoint.",
            f"Paste this URL: {url}",
            "Choose the events: contact.unsubscribed, contact.mailingList.unsubscribed, "
            "contact.deleted, email.hardBounced, email.spamReported, email.resubscribed.",
            "Copy the signing secret Loops shows once and put it in the environment variable "
            "named on this destination as the webhook signing secret variable.",
        ]

    def verify(self, request: InboundRequest) -> Verified:
        message_id = request.header("webhook-id")
        timestamp = request.header("webhook-timestamp")
        signatures = request.header("webhook-signature")
        if not (message_id and timestamp and signatures):
            raise inbound.bad_signature("the webhook-id, -timestamp or -signature is missing")
        key = self._key()
        signed = f"{message_id}.{timestamp}.".encode() + request.body
        expected = base64.b64encode(inbound.hmac_sha256(key, signed)).decode()
        if not any(
            inbound.same(entry.partition(",")[2], expected) for entry in signatures.split(" ")
        ):
            raise inbound.bad_signature("no webhook-signature entry matches")
        sent_at = inbound.from_epoch(timestamp)
        if sent_at is None:
            raise inbound.bad_signature("webhook-timestamp is not a Unix time")
        try:
            body = json.loads(request.body)
        except ValueError as err:
            raise inbound.malformed(f"the body is not JSON: {err}") from err
        if not isinstance(body, dict):
            raise inbound.malformed("the body is not a JSON object")
        return Verified([self.event(body, message_id)], sent_at=sent_at)

    def _key(self) -> bytes:
        secret = self.secrets.get("signing_secret", "")
        encoded = secret.split("_", 1)[1] if "_" in secret else ""
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise inbound.bad_signature("no usable signing secret is configured")
        return key

    @staticmethod
    def event(body: dict, message_id: str) -> PlatformEvent:
        name = inbound.text(body.get("eventName"))
        kind, channel = EVENT_KINDS.get(name, (EventKind.RECORDED, ""))
        identity = (
            body.get("contactIdentity") if isinstance(body.get("contactIdentity"), dict) else {}
        )
        mailing_list = body.get("mailingList") if isinstance(body.get("mailingList"), dict) else {}
        return PlatformEvent(
            kind=kind,
            raw_type=name,
            key=message_id,
            occurred_at=inbound.from_epoch(body.get("eventTime")),
            channel=channel,
            remote_list=inbound.text(mailing_list.get("id")) if channel == "list" else "",
            remote_id=inbound.text(identity.get("id")),
            external_id=inbound.text(identity.get("userId")),
            email=inbound.text(identity.get("email")),
            detail="spam complaint" if kind == EventKind.COMPLAINT else "",
            raw=body,
        )


class LoopsConnector(BaseConnector):
    slug = "loops"
    sandbox_emulator = "sync.sandbox.loops.LoopsEmulator"
    label = "Loops"
    default_base_url = "https://app.loops.so/api/"
    hosts = frozenset({"app.loops.so"})  # the OpenAPI file's server (part B)
    default_rate_limit = 10.0  # "10 requests per second per team" (API intro page)
    supports_delete = True
    batch_size = 0
    mappable_standard_fields = MAPPABLE_STANDARD_FIELDS
    native_fields = ("first_name", "last_name", "user_group")
    uncleared_fields = ("user group",)
    credentials = {
        "api_key": Credential(
            "key_env", "API key variable", "The environment variable holding the API key."
        )
    }
    # `GET /v1/contacts/find` answers the spec's Contact: names, email, user group, the
    # `subscribed` flag, `mailingLists` (the lists it is on, as `{id: true}`) and every custom
    # property. Loops holds one flag for our four email statuses (see `field_differs`).
    readable_fields = frozenset(
        {
            "first_name",
            "last_name",
            "email",
            "user_group",
            "email_status",
            "custom_values",
            "group_ids",
            "subscriptions",
            *MAPPABLE_STANDARD_FIELDS,
        }
    )

    inbound = LoopsWebhooks
    polls = True
    poll_per_contact = True
    poll_every = datetime.timedelta(days=1)  # part A: "on a daily sample"
    polled = (
        "Once a day, for a sample of the contacts Loops holds from us: GET /v1/contacts/find "
        "by userId (subscribed false: unsubscribed; an empty answer: deleted) and GET "
        "/v1/contacts/suppression by userId (isSuppressed: a hard bounce or a complaint).",
    )
    not_polled = (
        "Changes account-wide: Loops has no change feed and no contact listing, so only "
        "sampled contacts are asked about.",
        "Whether a hard bounce or a spam complaint suppressed a contact: the suppression "
        "answer says only isSuppressed (it is recorded as a bounce).",
        "When a change happened: neither answer carries a time, so the poll's own is used.",
    )
    inbound_credentials = {
        "signing_secret": Credential(
            "secret_env",
            "Webhook signing secret variable",
            "The environment variable holding the signing secret Loops shows in Settings → "
            "Webhooks (needed to take Loops' webhooks).",
        )
    }

    def sign(self, method, url, body, headers):
        headers["Authorization"] = f"Bearer {self.secrets['api_key']}"

    # -- mapping

    def build_payload(
        self, record: ContactRecord, state: RemoteState, plan: WritePlan | None = None
    ) -> dict:
        """The `PUT /v1/contacts/update` body (its nulls clear: `plan`, the write plan when
        the caller has it). Raises PermanentError for what Loops cannot take (see the module
        docstring)."""
        payload: dict[str, Any] = {}
        if record.email:
            payload["email"] = record.email
        payload["userId"] = record.external_id
        plan = plan or self.write_plan(record, state)
        for key, source in NATIVE_KEYS_BY_SOURCE:
            value = getattr(record, source)
            if value and self.sends(source, state):
                payload[key] = value
            elif source in plan.clear:
                payload[key] = None  # "send a `null` value" empties it
        subscribed = self._subscribed(record, state)
        if subscribed is not None:
            payload["subscribed"] = subscribed
        if self.mapping.has_lists:
            payload["mailingLists"] = self._mailing_lists(record)
        payload.update(self._properties(record, state, plan.clear))
        self._check_lengths(payload)
        return payload

    def field_presence(self, record: ContactRecord) -> dict[str, bool]:
        """First and last name, user group and every mapped property: whether it has a value."""
        presence = {source: bool(getattr(record, source)) for _, source in NATIVE_KEYS_BY_SOURCE}
        custom = {value.name: value for value in record.custom_values}
        for source in self.mapping.fields:
            if source.startswith("custom:"):
                value = custom.get(source.removeprefix("custom:"))
                presence[source] = value is not None and value.value != ""
            elif source in STANDARD_FIELDS:
                presence[source] = self._standard_value(getattr(record, source)) is not None
        return presence

    @staticmethod
    def _subscribed(record: ContactRecord, state: RemoteState) -> bool | None:
        """Part A's rule as a case of the consent guard's (sync.consent): the record reaching
        here says "subscribed" only when no opt-out in the ledger is later than a person's,
        an import's or Loops' own opt-in; `true` goes out only for such a subscribe that Loops
        has not accepted from us yet (it last accepted another status), since a `true`
        re-subscribes people who unsubscribed there."""
        if record.email_status in NOT_SUBSCRIBED:
            return False
        resubscribed = state.accepted_email_status not in (None, "subscribed")
        if record.email_status == "subscribed" and resubscribed:
            return True
        return None  # leave Loops' own value alone (a `true` would undo its unsubscribes)

    def _mailing_lists(self, record: ContactRecord) -> dict[str, bool]:
        """Mapped lists only: a group means member, a mailing list its subscribed flag. Two of
        ours mapped to one Loops list: on it when either says so."""
        lists: dict[str, bool] = {}
        for group_id, list_id in self.mapping.groups.items():
            lists[list_id] = lists.get(list_id, False) or group_id in record.group_ids
        for mailing_list_id, list_id in self.mapping.mailing_lists.items():
            subscribed = bool(record.subscriptions.get(mailing_list_id, False))
            lists[list_id] = lists.get(list_id, False) or subscribed
        return lists

    def is_clearable(self, key: str) -> bool:
        return key != "user_group"  # `userGroup` is a string, never null (OpenAPI)

    def _properties(
        self, record: ContactRecord, state: RemoteState, clear: frozenset[str]
    ) -> dict[str, Any]:
        """Mapped properties with a value (their write rule permitting), and `null` for those
        to clear."""
        custom = {value.name: value for value in record.custom_values}
        properties = {}
        for source, remote in self.mapping.fields.items():
            self._check_property_name(source, remote)
            if remote in properties:
                raise PermanentError(
                    self.label, f"two fields are mapped to the Loops property {remote!r}"
                )
            if source.startswith("custom:"):
                value = custom.get(source.removeprefix("custom:"))
                value = None if value is None else self._custom_value(value)
            elif source in STANDARD_FIELDS:
                value = self._standard_value(getattr(record, source))
            else:
                raise PermanentError(self.label, f"the mapping names an unknown field {source!r}")
            if value is not None and self.sends(source, state):
                properties[remote] = value
            elif value is None and source in clear:
                properties[remote] = None
        return properties

    @classmethod
    def remote_field_problem(cls, remote_field: str) -> str:
        if remote_field in RESERVED_PROPERTIES:
            return (
                f"{remote_field!r}, a reserved Loops property name (id, listId, "
                f"softDeleteAt, teamId, updatedAt): map it to another property"
            )
        if remote_field in NATIVE_KEYS:
            return (
                f"{remote_field!r} is a Loops contact field, not a custom property: map "
                f"it to a custom property"
            )
        if len(remote_field) > MAX_LENGTH:
            return f"a Loops property name has at most {MAX_LENGTH} characters"
        return ""

    def _check_property_name(self, source: str, remote: str) -> None:
        problem = self.remote_field_problem(remote)
        if problem:
            raise PermanentError(self.label, f"{source} cannot be mapped there: {problem}")

    def _custom_value(self, value: CustomValueRecord) -> Any:
        """Our canonical text as the JSON type Loops stores (string, number, boolean, date)."""
        text = value.value
        if text == "":
            return None
        if value.type == "number":
            return self._number(value.name, text)
        if value.type == "boolean":
            if text not in ("true", "false"):
                raise PermanentError(self.label, f"{value.name}: {text!r} is not true or false")
            return text == "true"
        if value.type == "date":
            try:
                return datetime.date.fromisoformat(text).isoformat()
            except ValueError:
                raise PermanentError(self.label, f"{value.name}: {text!r} is not a date") from None
        return text

    def _number(self, name: str, text: str) -> int | float:
        try:
            number = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise PermanentError(self.label, f"{name}: {text!r} is not a number") from None
        if not number.is_finite():
            raise PermanentError(self.label, f"{name}: {text!r} is not a finite number")
        if number == number.to_integral_value():
            if abs(number) > MAX_SAFE_INTEGER:  # beyond what a JSON double holds exactly
                raise PermanentError(self.label, f"{name}: {text} is too large for Loops")
            return int(number)
        as_float = float(number)
        if decimal.Decimal(repr(as_float)) != number:  # a JSON double would round it
            raise PermanentError(self.label, f"{name}: {text} has more digits than Loops keeps")
        return as_float

    @staticmethod
    def _standard_value(value: Any) -> Any:
        """A standard field's value as a Loops property; empty -> null (Loops: "reset")."""
        if value is None or value == "" or value == ():
            return None
        if isinstance(value, datetime.datetime):
            # ECMA-262 date-time, one of the forms Loops accepts for dates (properties page)
            return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return float(value)
        if isinstance(value, tuple):
            return ", ".join(value)  # tags hold no commas (contacts.forms.TagsField)
        return value

    def _check_lengths(self, payload: dict) -> None:
        items = list(payload.items()) + list(payload.get("mailingLists", {}).items())
        for key, value in items:
            for text, what in ((key, "the key"), (value, "the value")):
                if isinstance(text, str) and len(text) > MAX_LENGTH:
                    raise PermanentError(
                        self.label,
                        f"{what} of {key[:40]!r} is {len(text)} characters long; Loops takes "
                        f"at most {MAX_LENGTH} per key or value",
                    )

    # -- calls

    def push(
        self, record: ContactRecord, state: RemoteState, built: Built | None = None
    ) -> PushResult:
        """Upsert by userId/email (part A, "Matching"): one idempotent PUT, safe to retry.

        Loops answers a create and an update alike, so `created` is None (accepted) unless
        the id tells: the stored id back means updated, another id a new contact (the old
        one was deleted there)."""
        payload = self.build_payload(record, state) if built is None else built.payload
        if payload.get("subscribed") is True:
            self._refuse_if_suppressed(record)
        status, data = self.request("PUT", UPDATE_PATH, json_body=payload)
        self._require_success(data, status)
        remote_id = self.require_id(data, status=status)
        created = None if state.remote_id is None else remote_id != state.remote_id
        return PushResult(remote_id, created, status, payload)

    def _refuse_if_suppressed(self, record: ContactRecord) -> None:
        """Part A: Loops has no change feed, so before a push that sends `subscribed: true`
        we ask it, `GET /v1/contacts/find` then `GET /v1/contacts/suppression`. The consent
        guard (sync.consent) already let the `true` through: a person or an import opted the
        contact in here after every opt-out we know. `find` saying `subscribed: false` is
        then expected (our own earlier opt-out, or theirs: Loops' answers carry no time, so
        nothing tells them apart). A contact Loops holds suppressed (a hard bounce or a
        complaint) is another matter: a `true` does not lift Loops' suppression, so the push
        would claim a re-subscribe that reaches nobody. It is refused, with the reason on the
        contact's sync panel and attempt log, and the destination's next poll records the
        suppression in the ledger (`poll`). A contact `find` does not know is created anew by
        the upsert: nothing to ask."""
        if self._find(record.external_id) is None:
            return
        if self._suppressed(record.external_id):
            raise PermanentError(
                self.label,
                "Loops holds this person on its suppression list (a hard bounce or a spam "
                "complaint), so the re-subscribe (`subscribed: true`) was not sent: it would "
                "reach nobody. Loops' next poll records the suppression here.",
            )

    def planned_requests(self, items):
        """One `PUT /v1/contacts/update` per contact, with the body `push` sends; before a
        body that re-subscribes (`subscribed: true`), the two reads `push` makes first."""
        planned = []
        for record, _, payload in self.buildable(items, planned):
            if payload.get("subscribed") is True:
                for path in ("v1/contacts/find", "v1/contacts/suppression"):
                    planned.append(
                        self.plan(
                            "GET",
                            path,
                            params={"userId": record.external_id},
                            note="asked before a re-subscribe (Loops has no change feed)",
                            external_ids=(record.external_id,),
                        )
                    )
            planned.append(
                self.plan("PUT", UPDATE_PATH, json_body=payload, external_ids=(record.external_id,))
            )
        return planned

    def find_remote_id(self, *, external_id: str) -> str | None:
        """`GET /v1/contacts/find?userId=`: its id, None for an empty array."""
        found = self._find(external_id)
        return str(found["id"]) if found and found.get("id") else None

    def _find(self, external_id: str) -> dict | None:
        status, data = self.request("GET", "v1/contacts/find", params={"userId": external_id})
        if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
            raise PermanentError(
                self.label, "the find answer is not a list of contacts", status=status
            )
        return data[0] if data else None

    def read_contact(self, *, external_id: str, remote_id: str | None) -> ContactRecord | None:
        """`GET /v1/contacts/find?userId=` ("Only one parameter is allowed"): an array, empty
        when Loops holds no such contact."""
        contact = self._find(external_id)
        if contact is None:
            return None
        lists = contact.get("mailingLists") if isinstance(contact.get("mailingLists"), dict) else {}
        return ContactRecord(
            id=None,
            external_id=str(contact.get("userId") or external_id),
            first_name=str(contact.get("firstName") or ""),
            last_name=str(contact.get("lastName") or ""),
            email=str(contact.get("email") or ""),
            user_group=str(contact.get("userGroup") or ""),
            # one flag: "unsubscribed" stands for every status Loops does not mail
            email_status="subscribed" if contact.get("subscribed") is not False else "unsubscribed",
            **readback.mapped_values(self.mapping, contact, MAPPABLE_STANDARD_FIELDS),
            **readback.mapped_lists(self.mapping, {k for k, on in lists.items() if on}),
        )

    def field_differs(self, name: str, ours: ContactRecord, theirs: ContactRecord) -> bool:
        """Loops holds a `subscribed` flag, and we send it only to stop mailing (or after a
        re-subscription here, part A): a difference is a contact Loops mails though our
        status says not to. A person who unsubscribed in Loops while subscribed here is not
        drift: we would not send `true` for them now."""
        if name == "email_status":
            return ours.email_status in NOT_SUBSCRIBED and theirs.email_status == "subscribed"
        return super().field_differs(name, ours, theirs)

    def inbound_opt_in_holds(self, event: PlatformEvent) -> bool | None:
        """`GET /v1/contacts/find` by userId (else email): does Loops hold the contact as
        `subscribed`? (Part A: `email.resubscribed` is applied after this read-back.)"""
        params = {"userId": event.external_id} if event.external_id else {"email": event.email}
        if not any(params.values()):
            return None
        try:
            _, data = self.request("GET", "v1/contacts/find", params=params)
        except ConnectorError:
            return None
        found = [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []
        return bool(found) and found[0].get("subscribed") is True

    # -- polling (shared/inbound.md part A "Polling"; part B 4.2)

    def poll(self, *, cursor: dict, sample: list[PollSubject], now: datetime.datetime):
        """Per sampled contact: `find` by userId, then, for one still held, `suppression`
        by userId. Neither answer carries a time, so each event is dated `now`."""
        events = []
        for subject in sample:
            contact = self._find(subject.external_id)
            if contact is None:
                events.append(self._polled(EventKind.DELETED, "find: none", subject, now))
                continue
            suppressed = self._suppressed(subject.external_id)
            if suppressed:
                event = self._polled(EventKind.HARD_BOUNCE, "suppression", subject, now)
                event.detail = "suppressed by Loops (a hard bounce or a complaint)"
                events.append(event)
            elif contact.get("subscribed") is False:
                events.append(
                    self._polled(EventKind.UNSUBSCRIBED, "find: subscribed false", subject, now)
                )
        return PollResult(events, {})

    def _suppressed(self, external_id: str) -> bool:
        """`GET /v1/contacts/suppression?userId=`: `isSuppressed`; a 404 ("Contact not
        found.") is a contact gone meanwhile, not suppressed."""
        try:
            status, data = self.request(
                "GET", "v1/contacts/suppression", params={"userId": external_id}
            )
        except PermanentError as err:
            if err.status == 404:
                return False
            raise
        if not isinstance(data, dict) or not isinstance(data.get("isSuppressed"), bool):
            raise PermanentError(
                self.label, "the suppression answer has no isSuppressed", status=status
            )
        return data["isSuppressed"]

    @staticmethod
    def _polled(kind: str, raw_type: str, subject: PollSubject, now) -> PlatformEvent:
        return PlatformEvent(
            kind,
            raw_type,
            f"poll:{subject.remote_id}:{kind}:{now.isoformat()}",
            now,
            channel="email" if kind != EventKind.DELETED else "",
            remote_id=subject.remote_id,
            external_id=subject.external_id,
            email=subject.email,
            raw={"userId": subject.external_id, "id": subject.remote_id},
        )

    def delete(self, *, external_id: str, remote_id: str | None) -> None:
        """`POST /v1/contacts/delete` by userId only ("Include only one of `email` or
        `userId`"). A 404 ("Contact not found.") means it is already gone."""
        if not external_id:
            raise PermanentError(self.label, "no external ID to delete the contact by")
        try:
            status, data = self.request(
                "POST", "v1/contacts/delete", json_body={"userId": external_id}
            )
        except PermanentError as err:
            if err.status == 404:
                return
            raise
        self._require_success(data, status)

    def test_connection(self) -> str:
        status, data = self.request("GET", "v1/api-key")
        self._require_success(data, status)
        team = self.require_id(data, "teamName", status=status)
        return f"Connected to team {team}"

    def probe_calls(self) -> list[ProbeCall]:
        """The key check and the two lists the mapping choices read (OpenAPI spec): the keys
        `test_connection` and `fetch_options` read, with their types."""
        return [
            ProbeCall(
                "GET /v1/api-key", "GET", "v1/api-key", {"success": Maybe(bool), "teamName": str}
            ),
            ProbeCall(
                "GET /v1/contacts/properties?list=custom",
                "GET",
                "v1/contacts/properties",
                [{"key": str, "label": Maybe(str), "type": Maybe(str)}],
                params={"list": "custom"},
            ),
            ProbeCall(
                "GET /v1/lists",
                "GET",
                "v1/lists",
                [{"id": str, "name": Maybe(str), "isPublic": Maybe(bool)}],
            ),
        ]

    def fetch_options(self) -> list[RemoteOption]:
        """Custom properties (`?list=custom`: Loops' own fields are not mapping targets) and
        mailing lists."""
        status, properties = self.request(
            "GET", "v1/contacts/properties", params={"list": "custom"}
        )
        options = [
            RemoteOption("field", p["key"], p.get("label") or p["key"], p.get("type", ""))
            for p in self._list_of(properties, ("key",), status)
        ]
        status, lists = self.request("GET", "v1/lists")
        options += [
            RemoteOption(
                "list",
                m["id"],
                m.get("name") or m["id"],
                "public" if m.get("isPublic") else "private",
            )
            for m in self._list_of(lists, ("id",), status)
        ]
        return options

    # -- answers

    def _require_success(self, data: Any, status: int) -> None:
        """A 2xx can still say `{"success": false, "message": …}`."""
        if isinstance(data, dict) and data.get("success") is False:
            raise PermanentError(
                self.label,
                self.error_message(data) or "success is false",
                status=status,
                body=json.dumps(data),
            )

    def _list_of(self, data: Any, keys: tuple[str, ...], status: int) -> list[dict]:
        if not isinstance(data, list) or not all(
            isinstance(item, dict) and all(item.get(k) for k in keys) for item in data
        ):
            raise PermanentError(
                self.label,
                f"the answer is not a list of items with {', '.join(keys)}",
                status=status,
                body=json.dumps(data),
            )
        return data
