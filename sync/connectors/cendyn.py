"""Cendyn CRM connector (formerly PUSHTech): `PUT …/contact/{id}` to update, `POST …/contact`
to create, `POST …/contact/bulk` in bulk, all under `v2/account/{account_id}/`.

Contract: shared/platforms.md, part A ("Matching", "Shapes the platforms leave open", "Status
and consent mapping") and part B §3 (seed 003 = the vendor's contact/update page,
https://developers.cendyncrm.com/api/docs/contact/update; field names checked against
shared/specs/pushtech-cendyn/push-cendyn-crm-openapi.derived.yml).

- Matching: a stored contact id is updated in place; without one (or when Cendyn answers 404
  for it) `GET …/contact?user_id=<external ID>` finds the contact to update, and only when
  that finds nothing is a new one created. There is no server-side upsert and a retried POST
  makes a duplicate ("NOT safe to blind-retry", part B), so nothing ever POSTs blind.
- `list_subscriptions` and `channel_subscriptions` are arrays of objects (part A: the docs only
  show bracket notation). Email and SMS are blacklisted unless our status is subscribed.
- Custom fields are top-level keys named by the destination's field mapping ("only add
  parameter in the json with the name of custom ( no label)"). Time zone, user group and
  privacy consent have no native slot: they reach Cendyn only through such a mapping. So does
  the gender "other": Cendyn's `gender` takes MALE or FEMALE only, so the native key is left
  out for it (a mapped gender field gets our value whatever it is).
- Dropped, as Cendyn has no slot for them: a second email or phone (a contact holds one of
  each), device and push channels (Cendyn's `device_id` is its own device, not our token),
  external URLs. Empty values are not sent.
- Clearing (shared/inbound.md 3.4): Cendyn documents `channel_subscriptions[blacklisted]` and
  `list_subscriptions[subscribed]` as the way to turn channels and lists off, and nothing else
  (PUT semantics and `null` are not documented). So a list left here goes out as `subscribed:
  false` (every mapped list is sent), and an email or phone cleared here blacklists its channel
  (the value itself stays there: no call removes it, and the attempt log says so on each push
  until a new value is set, the channel staying off meanwhile). A state from before we kept
  what Cendyn holds blacklists the channel of an empty email or phone once, then no more. Every
  other field cleared here keeps its old value on Cendyn; the destination page and the attempt
  log say so (`uncleared_fields`).
- Write rules: a field "on create only" is sent while Cendyn holds no version of the contact
  from us, "never" not at all (`BaseConnector.sends`).
- Refused before any request: no external ID, a phone number that cannot be split into country
  code and number, a language that is not two letters, a mapping onto a native key, two fields
  mapped onto one custom field, a custom value that does not fit its type. Nothing is truncated.
"""

import datetime
import decimal
import hashlib
import hmac
import json
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import phonenumbers

import sync.connectors.inbound as inbound
import sync.connectors.readback as readback
from sync.connectors.base import (
    AuthenticationError,
    BaseConnector,
    BatchItemResult,
    Built,
    ConnectorConfigurationError,
    ConnectorError,
    PermanentError,
    PushResult,
    Unconfirmed,
    WritePlan,
)
from sync.connectors.declarations import Credential, Setting
from sync.connectors.inbound import EventKind, InboundRequest, PlatformEvent, Verified
from sync.connectors.polling import PollResult, PollSubject
from sync.connectors.probe import Maybe, ProbeCall
from sync.connectors.records import STANDARD_FIELDS, ContactRecord, RemoteOption, RemoteState

EU_BASE_URL = "https://api.eu.cendyncrm.com/"
US_BASE_URL = "https://api.us.cendyncrm.com/"
BULK_LIMIT = 5000  # "Maximum of 5000 contacts per request" (contact/create_bulk)
GENDERS = {"male": "MALE", "female": "FEMALE"}  # "Gender of the contact (MALE or FEMALE)"
# The contact body's own keys (contact/create, contact/update): a custom field mapped onto one
# of them would overwrite the contact's own data.
NATIVE_KEYS = frozenset(
    """id device_id name_first name_last email phone_countrycode phone_number phone city country
    region zip full_address born_date gender language user_id facebook_id facebook_friends
    google_id twitter_id twitter_followers tags last_latitude last_longitude list_subscriptions
    channel_subscriptions gdpr_marketing_consent gdpr_accept_terms gdpr_date gdpr_remote_ip
    email_validation""".split()
)
# Our standard fields and the Cendyn key each one goes to as a plain value.
PLAIN_KEYS = (
    ("name_first", "first_name"),
    ("name_last", "last_name"),
    ("city", "city"),
    ("country", "country"),
    ("region", "region"),
    ("zip", "postal_code"),
    ("full_address", "address_line"),
    ("gdpr_remote_ip", "consent_ip"),
)
MAPPABLE_STANDARD_FIELDS = ("gender", "time_zone", "user_group", "privacy_consent")
# The profile keys (`_profile`) -> our standard field each one carries, for its write rule.
PROFILE_SOURCES = {
    "born_date": "birth_date",
    "gender": "gender",
    "language": "language",
    "tags": "tags",
    "last_latitude": "last_latitude",
    "last_longitude": "last_longitude",
}
# What a read-back (contact/list) shows of a contact, as the vendor's example answer does, and
# that a bulk item we sent must match before it counts as applied.
READ_BACK_KEYS = ("email", "name_first", "name_last", "phone_countrycode", "phone_number")


# Delivery statuses that are opt-outs (part A "What each event means here"); every other
# status (sent, opened, "deliverd", ...) is recorded only.
DELIVERY_KINDS = {
    "bounced": EventKind.HARD_BOUNCE,
    "complained": EventKind.COMPLAINT,
    "unsubscribed": EventKind.UNSUBSCRIBED,
}
CHANNELS = {"email": "email", "sms": "sms", "push": "push"}
# The completion webhook of one bulk must fit the 1 MB an inbound delivery may take: its
# `failed_contacts` echo what we sent, so a bulk that names a webhook is cut by size too.
WEBHOOK_BULK_BYTES = 800_000
WEBHOOK_ITEM_OVERHEAD = 300  # the errors and JSON punctuation around one echoed contact
CHUNK_PARAMETER = "bulk"  # the query parameter naming our chunk on the webhook URL
POLL_LIMIT = 200  # "Max number of deliveries returned, default max set to 200"


class CendynWebhooks(inbound.InboundVerifier):
    """Cendyn's webhooks (part B 3.1, second-hand): header `Authorization` = hex
    HMAC-SHA256(account secret, str(body.timestamp) + body.token), compared case-insensitively;
    (timestamp, token) is the only nonce. The signature does not cover the body, so an opt-in
    is confirmed by reading the contact back (`signs_body`). A verified delivery for another
    account is answered 406, which Cendyn does not retry."""

    signs_body = False

    @classmethod
    def registration_steps(cls, url: str) -> list[str]:
        return [
            "In the Cendyn CRM account manager, open the API area → Webhooks.",
            f"For the event groups contacts and deliveries (each channel: email, sms, push), "
            f"paste this URL: {url}",
            "Nothing else to set: Cendyn signs with the account secret this destination "
            "already uses. Bulk pushes name this URL themselves (webhook_url).",
        ]

    def verify(self, request: InboundRequest) -> Verified:
        try:
            body = json.loads(request.body)
        except ValueError as err:
            raise inbound.malformed(f"the body is not JSON: {err}") from err
        if not isinstance(body, dict):
            raise inbound.malformed("the body is not a JSON object")
        timestamp, token = inbound.text(body.get("timestamp")), inbound.text(body.get("token"))
        given = request.header("authorization").strip().lower()
        secret = self.secrets.get("secret", "")
        if not (timestamp and token and given and secret):
            raise inbound.bad_signature("the Authorization header, timestamp or token is missing")
        expected = hmac.new(
            secret.encode(), (timestamp + token).encode(), hashlib.sha256
        ).hexdigest()
        if not inbound.same(given, expected):
            raise inbound.bad_signature("the Authorization header does not match")
        if inbound.text(body.get("account_id")) != inbound.text(self.settings.get("account_id")):
            raise inbound.Refused(inbound.Reason.UNKNOWN_ACCOUNT, 406, "another account")
        sent_at = inbound.from_epoch(timestamp)
        key = f"{timestamp}:{token}"
        return Verified(self.events(body, key, sent_at, request.query), sent_at=sent_at)

    @staticmethod
    def events(body: dict, key: str, sent_at, query: dict) -> list[PlatformEvent]:
        if "contacts_valid_count" in body or "valid_contacts" in body:
            return [_bulk_event(body, key, sent_at, query.get(CHUNK_PARAMETER, ""))]
        if "action" in body:
            return _contact_events(body, key, sent_at)
        if "status" in body and "channel" in body:
            return [_delivery_event(body, key, sent_at)]
        return [PlatformEvent(EventKind.RECORDED, "unknown", key, sent_at, raw=body)]


def _contact_events(body: dict, key: str, sent_at) -> list[PlatformEvent]:
    action = inbound.text(body.get("action"))
    contact = body.get("contact") if isinstance(body.get("contact"), dict) else {}
    if action == "destroy" and not contact:
        # A bulk destroy names ids only; the example spells `users_ids`, the schema `user_ids`.
        ids = body.get("contacts_ids") or []
        users = body.get("users_ids") or body.get("user_ids") or []
        return [
            PlatformEvent(
                EventKind.DELETED,
                "destroy",
                f"{key}#{index}",
                sent_at,
                remote_id=inbound.text(remote),
                external_id=inbound.text(users[index]) if index < len(users) else "",
                raw=body,
            )
            for index, remote in enumerate(ids)
        ]
    common = {
        "remote_id": inbound.text(contact.get("id")),
        "external_id": inbound.text(contact.get("user_id")),
        "raw": body,
    }
    if action == "destroy":
        return [PlatformEvent(EventKind.DELETED, action, key, sent_at, **common)]
    if action == "channel_subscription":
        change = body.get("channel_subscription") or contact.get("channel_subscription") or {}
        channel = CHANNELS.get(inbound.text(change.get("channel")).lower(), "")
        blacklisted = change.get("blacklisted")
        if channel and isinstance(blacklisted, bool):
            kind = EventKind.UNSUBSCRIBED if blacklisted else EventKind.RESUBSCRIBED
            occurred = inbound.from_iso(change.get("date")) or sent_at
            return [PlatformEvent(kind, action, key, occurred, channel=channel, **common)]
    return [PlatformEvent(EventKind.RECORDED, action, key, sent_at, **common)]


def _delivery_event(body: dict, key: str, sent_at) -> PlatformEvent:
    status = inbound.text(body.get("status")).lower()
    contact = body.get("contact") if isinstance(body.get("contact"), dict) else {}
    kind = DELIVERY_KINDS.get(status, EventKind.RECORDED)
    return PlatformEvent(
        kind,
        f"delivery {status}",
        key,
        inbound.from_iso(body.get("updated_at")) or sent_at,
        channel=CHANNELS.get(inbound.text(body.get("channel")).lower(), ""),
        remote_id=inbound.text(contact.get("_id")),
        external_id=inbound.text(contact.get("user_id")),
        email=inbound.text(contact.get("email")),
        detail="spam complaint" if kind == EventKind.COMPLAINT else "",
        raw=body,
        change_key=delivery_change_key(body.get("id"), status),
    )


def _polled_delivery(delivery: dict, subject: PollSubject) -> PlatformEvent | None:
    status = inbound.text(delivery.get("status")).lower()
    kind = DELIVERY_KINDS.get(status)
    change = delivery_change_key(delivery.get("id"), status)
    if kind is None or not change:
        return None
    return PlatformEvent(
        kind,
        f"delivery {status}",
        f"poll:{change}",
        inbound.from_iso(delivery.get("updated_at"))
        or inbound.from_iso(delivery.get("created_at")),
        channel=CHANNELS.get(inbound.text(delivery.get("channel")).lower(), ""),
        remote_id=subject.remote_id,
        external_id=subject.external_id,
        detail="spam complaint" if kind == EventKind.COMPLAINT else "",
        raw=delivery,
        change_key=change,
    )


def delivery_change_key(delivery_id: Any, status: str) -> str:
    """One delivery's status, as its webhook and the deliveries list both name it."""
    return f"delivery:{delivery_id}:{status}" if delivery_id else ""


def _bulk_event(body: dict, key: str, sent_at, chunk: str) -> PlatformEvent:
    valid = [c for c in body.get("valid_contacts") or [] if isinstance(c, dict)]
    failed = [c for c in body.get("failed_contacts") or [] if isinstance(c, dict)]
    return PlatformEvent(
        EventKind.BULK_COMPLETED,
        "bulk_contacts",
        key,
        sent_at,
        raw=body,
        data={
            "chunk": chunk,
            "valid": [
                {
                    "remote_id": inbound.text(c.get("_id")),
                    "external_id": inbound.text(c.get("user_id")),
                }
                for c in valid
            ],
            "failed": [
                {
                    "external_id": inbound.text((c.get("contact") or {}).get("user_id")),
                    # "errors" (an array) in the vendor example, "error" in the field table
                    "error": "; ".join(map(str, c.get("errors") or [c.get("error") or "refused"])),
                }
                for c in failed
            ],
        },
    )


def bulk_reference(bulk_id: str, chunk: str) -> str:
    """The confirmation reference of a bulk that names our webhook: its id and our chunk."""
    return f"{bulk_id}#{chunk}" if chunk else bulk_id


class CendynConnector(BaseConnector):
    slug = "cendyn"
    sandbox_emulator = "sync.sandbox.cendyn.CendynEmulator"
    label = "Cendyn CRM"
    default_base_url = EU_BASE_URL
    regions = {"eu": EU_BASE_URL, "us": US_BASE_URL}
    # The two regions' hosts and the legacy PUSHTech host (part B, Base URL).
    hosts = frozenset({"api.eu.cendyncrm.com", "api.us.cendyncrm.com", "www.pushtech.com"})
    default_rate_limit = 10.0  # none published: part A's default
    supports_delete = True
    batch_size = BULK_LIMIT
    mappable_standard_fields = MAPPABLE_STANDARD_FIELDS
    native_fields = (
        "first_name",
        "last_name",
        "phone",
        "city",
        "country",
        "region",
        "postal_code",
        "address_line",
        "consent_ip",
        "birth_date",
        "gender",
        "language",
        "tags",
        "last_latitude",
        "last_longitude",
    )
    uncleared_fields = (
        "every field but the email and SMS channels and the lists (a cleared email or phone "
        "blacklists its channel; the value stays)",
    )
    credentials = {
        "secret": Credential(
            "key_env",
            "Account secret variable",
            "The environment variable holding the account secret (or master secret).",
        )
    }
    destination_settings = (
        Setting(
            "account_id",
            "Account ID",
            "Cendyn CRM's account ID (not secret): every path holds it.",
            required=True,
        ),
        Setting(
            "region",
            "Region",
            "The account's region (blank: EU). An account lives in exactly one. Ignored when a "
            "base URL is set.",
            choices=(("eu", "EU"), ("us", "US")),
        ),
    )
    inbound = CendynWebhooks
    polls = True
    poll_per_contact = True
    polled = (
        "Bounces, spam complaints and unsubscribes per channel, for a sample of the contacts "
        "Cendyn holds from us: GET …/deliveries with contact_id, updated_since and status "
        "bounced, complained, unsubscribed (one call per contact and status).",
    )
    not_polled = (
        "Account-wide deliveries: the documented delivery list carries no contact, so a poll "
        "cannot tell whose delivery it was; only sampled contacts are asked about.",
        "Channel blacklisting and list unsubscribes made in Cendyn (channel_subscription): "
        "the contact list and show answers document no channel_subscriptions or "
        "list_subscriptions.",
        "Deletions on Cendyn: no feed names them; the daily read-back shows a deleted "
        "contact as missing.",
    )

    # The contact search (contact/list) answers the contact's own keys: names, email, phone,
    # address, birth date, gender, language, tags, coordinates and its custom fields. Neither
    # list nor channel subscriptions nor the GDPR fields are part of what it shows.
    readable_fields = frozenset(
        {
            "first_name",
            "last_name",
            "email",
            "phone",
            "city",
            "country",
            "region",
            "postal_code",
            "address_line",
            "birth_date",
            "gender",
            "language",
            "tags",
            "last_latitude",
            "last_longitude",
            "custom_values",
            *MAPPABLE_STANDARD_FIELDS,
        }
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        account_id = str(self.options.get("account_id") or "").strip()
        if not account_id:
            raise ConnectorConfigurationError(
                f"{self.label}: the destination has no account ID (every path holds it)."
            )
        self.account_path = f"v2/account/{quote(account_id, safe='')}/"

    def sign(self, method, url, body, headers):
        # "Authorization: Token token={account.secret}" with both JSON headers, as the
        # vendor's request examples show for every call (contact/list, contact/update).
        headers["Authorization"] = f"Token token={self.secrets['secret']}"
        headers["Accept"] = "application/json"
        headers["Content-Type"] = "application/json"

    def error_message(self, data: Any) -> str:
        """Cendyn answers `{"error": "<message>"}` (part B §3, observed; no schema published)."""
        if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
            return data["error"]
        return super().error_message(data)

    # -- mapping

    def build_payload(
        self, record: ContactRecord, state: RemoteState, plan: WritePlan | None = None
    ) -> dict:
        """The contact body of `POST`/`PUT …/contact` (and one item of a bulk call); `plan`
        the contact's write plan when the caller has it (the kept values turn channels off).
        Raises PermanentError for what Cendyn cannot take (see the module docstring)."""
        if not record.external_id:
            raise PermanentError(self.label, "the contact has no external ID to match on")
        payload: dict[str, Any] = {"user_id": record.external_id}
        for key, attr in PLAIN_KEYS:
            if getattr(record, attr) and self.sends(attr, state):
                payload[key] = getattr(record, attr)
        emails = record.channels_of("email")
        if emails:
            payload["email"] = emails[0]
        if self.sends("phone", state):
            payload.update(self._phone(record))
        profile = self._profile(record)
        payload.update({k: v for k, v in profile.items() if self.sends(PROFILE_SOURCES[k], state)})
        payload.update(self._custom_fields(record, state))
        if self.mapping.has_lists:
            payload["list_subscriptions"] = self._list_subscriptions(record)
        # A cleared email or phone keeps its value on Cendyn (nothing documented removes it):
        # its channel is what we can turn off, and stays off while the value is gone here.
        kept = (plan or self.write_plan(record, state)).kept
        payload["channel_subscriptions"] = [
            {
                "channel": "email",
                "blacklisted": record.email_status != "subscribed" or "email" in kept,
            },
            {
                "channel": "sms",
                "blacklisted": record.sms_status != "subscribed" or "phone" in kept,
            },
        ]
        payload["gdpr_marketing_consent"] = record.gdpr_marketing_consent
        payload["gdpr_accept_terms"] = record.terms_accepted
        if record.consent_date:
            payload["gdpr_date"] = _iso_datetime(record.consent_date)
        return payload

    def _phone(self, record: ContactRecord) -> dict:
        """`phone_countrycode` "44" and `phone_number` "7712345678", as seed 003 sends them."""
        phones = record.channels_of("sms")
        if not phones:
            return {}
        region = None if phones[0].startswith("+") else (record.country or "").upper() or None
        try:
            number = phonenumbers.parse(phones[0], region)
        except phonenumbers.NumberParseException as err:
            raise PermanentError(
                self.label, f"the phone number {phones[0]!r} cannot be read: {err}"
            ) from None
        return {
            "phone_countrycode": str(number.country_code),
            # keeps an Italian leading zero, which `national_number` would lose
            "phone_number": phonenumbers.national_significant_number(number),
        }

    def _profile(self, record: ContactRecord) -> dict:
        profile: dict[str, Any] = {}
        if record.birth_date:
            profile["born_date"] = _iso_datetime(record.birth_date)
        if record.gender and record.gender not in (*GENDERS, "other"):
            raise PermanentError(self.label, f"unknown gender {record.gender!r}")
        if record.gender in GENDERS:  # "other" has no Cendyn value: see the module docstring
            profile["gender"] = GENDERS[record.gender]
        if record.language:
            if len(record.language) != 2 or not record.language.isalpha():
                raise PermanentError(
                    self.label, f"the language {record.language!r} is not an ISO-2 code"
                )
            profile["language"] = record.language.upper()  # "ISO-2 format, Example: ES"
        if record.tags:
            profile["tags"] = list(record.tags)
        for key in ("last_latitude", "last_longitude"):
            if getattr(record, key) is not None:
                profile[key] = float(getattr(record, key))  # 6 decimals: exact as a double
        return profile

    def _list_subscriptions(self, record: ContactRecord) -> list[dict]:
        """Mapped lists only: a group means member, a mailing list its subscribed flag. Two of
        ours mapped to one audience list: subscribed when either says so."""
        lists: dict[str, bool] = {}
        for group_id, list_id in self.mapping.groups.items():
            lists[list_id] = lists.get(list_id, False) or group_id in record.group_ids
        for mailing_list_id, list_id in self.mapping.mailing_lists.items():
            subscribed = bool(record.subscriptions.get(mailing_list_id, False))
            lists[list_id] = lists.get(list_id, False) or subscribed
        return [{"list_id": key, "subscribed": value} for key, value in lists.items()]

    def field_presence(self, record: ContactRecord) -> dict[str, bool]:
        """Every native field and mapped field: whether it has a value."""
        presence = {attr: bool(getattr(record, attr)) for _, attr in PLAIN_KEYS}
        presence["email"] = bool(record.channels_of("email"))
        presence["phone"] = bool(record.channels_of("sms"))
        presence["birth_date"] = record.birth_date is not None
        presence["gender"] = record.gender in GENDERS
        presence["language"] = bool(record.language)
        presence["tags"] = bool(record.tags)
        for key in ("last_latitude", "last_longitude"):
            presence[key] = getattr(record, key) is not None
        custom = {value.name: value.value for value in record.custom_values}
        for source in self.mapping.fields:
            if source.startswith("custom:"):
                presence[source] = custom.get(source.removeprefix("custom:"), "") != ""
            elif source in STANDARD_FIELDS:
                presence[source] = _standard_value(getattr(record, source)) is not None
        return presence

    def is_clearable(self, key: str) -> bool:
        """Nothing has a documented clear: a cleared value stays (an email's or phone's channel
        is blacklisted instead, see `build_payload`). Lists are turned off by
        `list_subscriptions`, which are not keys."""
        return False

    def _custom_fields(self, record: ContactRecord, state: RemoteState) -> dict:
        custom = {value.name: value for value in record.custom_values}
        fields: dict[str, Any] = {}
        for source, remote in self.mapping.fields.items():
            self._check_field_name(source, remote, fields)
            if not self.sends(source, state):
                continue
            if source.startswith("custom:"):
                value = custom.get(source.removeprefix("custom:"))
                if value is not None and value.value != "":
                    fields[remote] = self._custom_value(value.name, value.type, value.value)
            elif source in STANDARD_FIELDS:
                value = _standard_value(getattr(record, source))
                if value is not None:
                    fields[remote] = value
            else:
                raise PermanentError(self.label, f"the mapping names an unknown field {source!r}")
        return fields

    def _check_field_name(self, source: str, remote: str, taken: dict) -> None:
        if remote in NATIVE_KEYS:
            raise PermanentError(
                self.label,
                f"{source} is mapped to {remote!r}, a Cendyn contact field, not a custom "
                "field: map it to a custom field",
            )
        others = [s for s, r in self.mapping.fields.items() if r == remote and s != source]
        if others:
            raise PermanentError(
                self.label,
                f"{source} and {others[0]} are both mapped to the custom field "
                f"{remote!r}: one value would be lost",
            )

    def _custom_value(self, name: str, kind: str, text: str) -> Any:
        """Our canonical text as the JSON type of a Cendyn custom field (boolean, date, number,
        string: custom_fields/create)."""
        if kind == "boolean":
            if text not in ("true", "false"):
                raise PermanentError(self.label, f"{name}: {text!r} is not true or false")
            return text == "true"
        if kind == "date":
            try:
                return _iso_datetime(datetime.date.fromisoformat(text))
            except ValueError:
                raise PermanentError(self.label, f"{name}: {text!r} is not a date") from None
        if kind == "number":
            return self._number(name, text)
        return text

    def _number(self, name: str, text: str) -> int | float:
        try:
            number = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise PermanentError(self.label, f"{name}: {text!r} is not a number") from None
        if not number.is_finite():
            raise PermanentError(self.label, f"{name}: {text!r} is not a finite number")
        if number == number.to_integral_value():
            return int(number)
        as_float = float(number)
        if decimal.Decimal(repr(as_float)) != number:  # a JSON double would round it
            raise PermanentError(self.label, f"{name}: {text} has more digits than a number keeps")
        return as_float

    # -- calls

    def push(
        self, record: ContactRecord, state: RemoteState, built: Built | None = None
    ) -> PushResult:
        """Update by the stored id, else find by user_id and update, else create (part A,
        "Matching"). `created` is True only when this call created the contact."""
        payload = self.build_payload(record, state) if built is None else built.payload
        if state.remote_id:
            try:
                return self._update(state.remote_id, payload)
            except PermanentError as err:
                if err.status != 404:  # 404: deleted in Cendyn; find it again or create it
                    raise
        matches = self._find(record.external_id)
        if matches:
            return self._update(matches[0], payload)
        if "email" not in payload and "phone_number" not in payload:
            raise PermanentError(
                self.label, "a new contact needs an email or a phone number (contact/create)"
            )
        status, data = self._create(payload)
        return PushResult(self.require_id(data, status=status), True, status, payload)

    def _create(self, payload: dict) -> tuple[int, Any]:
        """`POST …/contact`, sent once: after a timeout or a 5xx the contact may exist, and a
        second POST would make a duplicate. The next push looks it up by user_id first."""
        retries, self.quick_retries = self.quick_retries, 0
        try:
            return self.request("POST", self._path("contact"), json_body=payload)
        finally:
            self.quick_retries = retries

    def _update(self, remote_id: str, payload: dict) -> PushResult:
        status, data = self.request("PUT", self._path("contact", remote_id), json_body=payload)
        return PushResult(self.require_id(data, status=status), False, status, payload)

    def _find(self, external_id: str) -> list[str]:
        """The ids of the contacts holding this user_id (contact/list)."""
        status, data = self.request("GET", self._path("contact"), params={"user_id": external_id})
        contacts = data.get("contacts") if isinstance(data, dict) else None
        if not isinstance(contacts, list):
            raise PermanentError(
                self.label,
                "the contact search answer has no 'contacts' list",
                status=status,
                body=json.dumps(data),
            )
        return [self.require_id(contact, status=status) for contact in contacts]

    def read_contact(self, *, external_id: str, remote_id: str | None) -> ContactRecord | None:
        """`GET …/contact?user_id=` (contact/list): the contact holding our user_id, the one
        with the stored id when a POST once made two."""
        status, data = self.request("GET", self._path("contact"), params={"user_id": external_id})
        contacts = [c for c in self._items(data, "contacts", status) if c.get("id")]
        if not contacts:
            return None
        chosen = next((c for c in contacts if str(c["id"]) == str(remote_id)), contacts[0])
        return self._record_of(chosen, external_id)

    def find_remote_id(self, *, external_id: str) -> str | None:
        """`GET …/contact?user_id=` (the lookup every push without a stored id makes)."""
        matches = self._find(external_id)
        return matches[0] if matches else None

    def _record_of(self, contact: dict, external_id: str) -> ContactRecord:
        """The inverse of `build_payload`: plain keys back, the phone joined from country code
        and number, born_date to a date, gender and language to our lower-case codes, custom
        fields (top-level keys) by the destination's mapping."""
        values: dict[str, Any] = {
            attr: str(contact.get(key) or "") for key, attr in PLAIN_KEYS if key != "gdpr_remote_ip"
        }
        code, number = contact.get("phone_countrycode"), contact.get("phone_number")
        phone = f"+{str(code).lstrip('+')}{number}" if code and number else contact.get("phone")
        values.update(
            email=str(contact.get("email") or ""),
            phone=str(phone or ""),
            birth_date=readback.standard_value("birth_date", contact.get("born_date")),
            gender=str(contact.get("gender") or "").lower(),
            language=str(contact.get("language") or "").lower(),
            tags=tuple(str(t) for t in contact.get("tags") or []),
        )
        for key in ("last_latitude", "last_longitude"):
            values[key] = readback.standard_value(key, contact.get(key))
        # a mapped field (a gender "other" in a custom field) says more than the native key
        values.update(readback.mapped_values(self.mapping, contact, MAPPABLE_STANDARD_FIELDS))
        return ContactRecord(
            id=None, external_id=str(contact.get("user_id") or external_id), **values
        )

    def delete(self, *, external_id: str, remote_id: str | None) -> None:
        """`DELETE …/contact/{id}`. Without a stored id, or when Cendyn no longer knows it, the
        contacts holding our user_id are deleted; none found means nothing to do."""
        if remote_id and self._delete_one(remote_id):
            return
        if not external_id:
            return
        for match in self._find(external_id):
            self._delete_one(match)

    def _delete_one(self, remote_id: str) -> bool:
        """True when deleted, False when Cendyn answered 404 (already gone)."""
        try:
            self.request("DELETE", self._path("contact", remote_id))
        except PermanentError as err:
            if err.status == 404:
                return False
            raise
        return True

    def test_connection(self) -> str:
        status, data = self.request("GET", self._path("custom_fields"))
        fields = self._items(data, "custom_fields", status)
        return f"Connected to account {self.options['account_id']} ({len(fields)} custom fields)"

    def fetch_options(self) -> list[RemoteOption]:
        """Contact custom fields (GET custom_fields) by name, since the contact body names them;
        audience lists (GET lists) by id."""
        status, data = self.request("GET", self._path("custom_fields"))
        options = [
            RemoteOption(
                "field", str(f["name"]), str(f.get("label") or f["name"]), str(f.get("type") or "")
            )
            for f in self._items(data, "custom_fields", status)
            if f.get("name")
        ]
        status, data = self.request("GET", self._path("lists"))
        for item in self._items(data, "lists", status):
            list_id = item.get("id") or item.get("_id")
            if list_id:
                options.append(
                    RemoteOption(
                        "list",
                        str(list_id),
                        str(item.get("name") or list_id),
                        str(item.get("visibility") or ""),
                    )
                )
        return options

    # -- bulk

    def push_many(
        self,
        records: list[ContactRecord],
        states: list[RemoteState] | None = None,
        built: list[Built] | None = None,
    ) -> list[BatchItemResult]:
        """Upsert in `POST …/contact/bulk` calls matched on user_id (`match_contact_user_id`;
        without it every bulk creates duplicates). A bulk Cendyn took (201 with its `_id`)
        leaves its contacts awaiting confirmation: `GET …/contact/bulk/:id` documents only
        "status": "queue", and the documented outcome is the bulk-completion webhook
        (shared/inbound.md 3.3), so nothing here waits on a status word (see `confirm`). Only
        401/403 is raised; any other failure is each contact's result."""
        errors: dict[str, ConnectorError] = {}
        bulks: dict[str, str] = {}  # user_id -> the bulk that carried it
        if built is not None:
            payloads = [item.payload for item in built]
        else:
            payloads = []
            states = states or [RemoteState()] * len(records)
            for record, state in zip(records, states, strict=True):
                try:
                    payloads.append(self.build_payload(record, state))
                except PermanentError as err:
                    errors[record.external_id] = err
        for chunk in self._bulk_chunks(payloads):
            reference = uuid.uuid4().hex if self.inbound_url else ""
            try:
                bulk_id = self._bulk(chunk, reference)
            except ConnectorError as err:
                if err.destination_wide:
                    raise
                errors.update({payload["user_id"]: err for payload in chunk})
            else:
                ref = bulk_reference(bulk_id, reference)
                bulks.update({payload["user_id"]: ref for payload in chunk})
        return [
            BatchItemResult(r.external_id, errors[r.external_id])
            if r.external_id in errors
            else BatchItemResult(r.external_id, awaiting=True, reference=bulks[r.external_id])
            for r in records
        ]

    @staticmethod
    def _bulk_body(payloads: list[dict]) -> dict:
        return {"contacts": payloads, "match_contact_user_id": True}

    def _bulk_chunks(self, payloads: list[dict]):
        """At most BULK_LIMIT contacts per bulk; with a webhook, also no more than its
        completion body can carry within the inbound limit (WEBHOOK_BULK_BYTES)."""
        chunk: list[dict] = []
        size = 0
        for payload in payloads:
            # only a webhook's body limits a chunk's size in bytes
            item = len(json.dumps(payload)) + WEBHOOK_ITEM_OVERHEAD if self.inbound_url else 0
            full = len(chunk) >= BULK_LIMIT or (
                self.inbound_url and chunk and size + item > WEBHOOK_BULK_BYTES
            )
            if full:
                yield chunk
                chunk, size = [], 0
            chunk.append(payload)
            size += item
        if chunk:
            yield chunk

    def _bulk(self, payloads: list[dict], chunk: str = "") -> str:
        """One bulk call; the bulk's id. Retrying it is safe: it matches on user_id. With a
        public inbound URL, `webhook_url` names it with our chunk (part A "Bulk outcomes"),
        so the completion webhook says which contacts it is about."""
        body = self._bulk_body(payloads)
        if self.inbound_url and chunk:
            separator = "&" if "?" in self.inbound_url else "?"
            body["webhook_url"] = (
                f"{self.inbound_url}{separator}{urlencode({CHUNK_PARAMETER: chunk})}"
            )
        status, data = self.request("POST", self._path("contact/bulk"), json_body=body)
        return self.require_id(_bulk_of(data), "_id", status=status)

    def confirm(self, pending: list[Unconfirmed]) -> list[BatchItemResult | None]:
        """Read each contact back with `GET …/contact?user_id=` (contact/list) and confirm it
        when Cendyn holds it with what we sent (the keys the vendor's list answer shows).

        Every contact is read back, one call each through the shared rate limit: a sample
        could confirm only the contacts it read, and the bulk answer names none, so anything
        less would mark unread contacts synced on a guess. Cendyn refuses bulk contacts only
        in the completion webhook; a contact missing from the read-back stays unknown (None)
        and the engine checks again later."""
        answers: list[BatchItemResult | None] = []
        for item in pending:
            try:
                answers.append(self._read_back(item.record))
            except AuthenticationError:
                raise
            except ConnectorError:
                answers.append(None)  # the check could not be made: still unknown
        return answers

    def inbound_opt_in_holds(self, event: PlatformEvent) -> bool | None:
        """`GET …/contact/:id`: is the channel no longer blacklisted? None when the answer
        shows no `channel_subscriptions` (the vendor's example shows none: not found)."""
        if not event.remote_id or not event.channel:
            return None
        try:
            _, data = self.request("GET", self._path("contact", event.remote_id))
        except ConnectorError:
            return None
        contact = data.get("contact", data) if isinstance(data, dict) else {}
        for item in contact.get("channel_subscriptions") or []:
            if isinstance(item, dict) and item.get("channel") == event.channel:
                return item.get("blacklisted") is False
        return None

    def _read_back(self, record: ContactRecord) -> BatchItemResult | None:
        # As an update builds it: a field "on create only" may be Cendyn's own by now.
        sent = self.build_payload(record, RemoteState(accepted=True, held_keys=frozenset()))
        status, data = self.request(
            "GET", self._path("contact"), params={"user_id": record.external_id}
        )
        for contact in self._items(data, "contacts", status):
            if contact.get("id") and all(
                _same_value(key, sent[key], contact[key])
                for key in READ_BACK_KEYS
                if key in sent and key in contact
            ):
                return BatchItemResult(record.external_id, remote_id=str(contact["id"]))
        return None

    # -- dry run

    def planned_requests(self, items):
        """What `push_many` (a chunk of several) or `push` (one contact) would send."""
        planned, payloads = [], []
        bulk = self.pushes_in_bulk(len(items))
        # as push_many does: each contact built with its own state, in the same chunks
        for record, state, payload in self.buildable(items, planned):
            if bulk:
                payloads.append(payload)
            else:
                planned += self._planned_single(record, state, payload)
        for chunk in self._bulk_chunks(payloads):
            planned.append(
                self.plan(
                    "POST",
                    self._path("contact/bulk"),
                    json_body=self._bulk_body(chunk),
                    external_ids=tuple(p["user_id"] for p in chunk),
                )
            )
            planned += [
                self.plan(
                    "GET",
                    self._path("contact"),
                    params={"user_id": payload["user_id"]},
                    note="later: the read-back that confirms this contact of the bulk",
                    external_ids=(payload["user_id"],),
                )
                for payload in chunk
            ]
        return planned

    def _planned_single(self, record, state, payload) -> list:
        ids = (record.external_id,)
        if state.remote_id:
            return [
                self.plan(
                    "PUT",
                    self._path("contact", state.remote_id),
                    json_body=payload,
                    external_ids=ids,
                )
            ]
        return [
            self.plan(
                "GET",
                self._path("contact"),
                params={"user_id": record.external_id},
                note="lookup by user_id: a match is updated (PUT contact/<id>) instead of the "
                "create below",
                external_ids=ids,
            ),
            self.plan("POST", self._path("contact"), json_body=payload, external_ids=ids),
        ]

    def request_count(self, *, contacts: int, without_remote_id: int, chunk_size: int) -> int:
        """A chunk of several: its bulk calls, then one read-back per contact (`confirm`). A
        chunk of one: a PUT, with a lookup first when no id is stored."""
        total = 0
        for size in self.task_chunks(contacts, chunk_size):
            if self.pushes_in_bulk(size):
                total += -(-size // BULK_LIMIT) + size
            else:
                total += 1 + (1 if without_remote_id else 0)
        return total

    # -- polling (shared/inbound.md part A "Polling"; part B 3.2)

    def poll(self, *, cursor: dict, sample: list[PollSubject], now: datetime.datetime):
        """Per sampled contact and opt-out status, `GET …/deliveries?contact_id=&status=
        &updated_since=` (since `cursor["contacts_since"]`: when the sample last went round
        all contacts, so none is skipped between its turns; 30 days back at first). The
        answer is `{"deliveries": [{"delivery": {…}}]}` with no contact in it: the contact
        is the one asked about."""
        since = cursor.get("contacts_since") or (now - datetime.timedelta(days=30)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        events = []
        for subject in sample:
            for delivery_status in DELIVERY_KINDS:
                params = {
                    "contact_id": subject.remote_id,
                    "status": delivery_status,
                    "updated_since": since,
                    "limit": POLL_LIMIT,
                }
                status, data = self.request("GET", self._path("deliveries"), params=params)
                for item in self._items(data, "deliveries", status):
                    delivery = (
                        item.get("delivery") if isinstance(item.get("delivery"), dict) else item
                    )
                    event = _polled_delivery(delivery, subject)
                    if event is not None:
                        events.append(event)
        return PollResult(events, {})

    def probe_calls(self) -> list[ProbeCall]:
        """The two lists the mapping choices read and a one-contact search (the lookup and
        read-back every push makes), with the keys this connector reads."""
        return [
            ProbeCall(
                "GET custom_fields",
                "GET",
                self._path("custom_fields"),
                {"custom_fields": [{"name": Maybe(str), "label": Maybe(str)}]},
            ),
            ProbeCall(
                "GET lists",
                "GET",
                self._path("lists"),
                {"lists": [{"name": Maybe(str)}]},
            ),
            ProbeCall(
                "GET contact?limit=1",
                "GET",
                self._path("contact"),
                {"contacts": [{"id": str, "user_id": Maybe(str)}]},
                params={"limit": 1},
            ),
        ]

    # -- helpers

    def _path(self, resource: str, remote_id: str | None = None) -> str:
        if remote_id is None:
            return self.account_path + resource
        return f"{self.account_path}{resource}/{quote(str(remote_id), safe='')}"

    def _items(self, data: Any, key: str, status: int) -> list[dict]:
        """`{"<key>": [...]}` as the vendor's list examples show; a bare list is read too."""
        items = data.get(key) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise PermanentError(
                self.label, f"the answer has no {key!r} list", status=status, body=json.dumps(data)
            )
        return [item for item in items if isinstance(item, dict)]


def _bulk_of(data: Any) -> dict:
    """The bulk object: `{"bulk": {...}}` in the vendor's examples, read defensively."""
    if isinstance(data, dict):
        return data["bulk"] if isinstance(data.get("bulk"), dict) else data
    return {}


def _same_value(key: str, sent: Any, held: Any) -> bool:
    if key == "email" and isinstance(sent, str) and isinstance(held, str):
        return sent.lower() == held.lower()
    return str(sent) == str(held)


def _iso_datetime(value: datetime.date) -> str:
    """ISO 8601 in UTC, "1990-01-01T00:00:00Z" as the vendor's examples write it."""
    if not isinstance(value, datetime.datetime):
        return f"{value.isoformat()}T00:00:00Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _standard_value(value: Any) -> Any:
    """A standard field's value for a custom field; None when empty (not sent)."""
    if value is None or value == "" or value == ():
        return None
    if isinstance(value, datetime.date):
        return _iso_datetime(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value
