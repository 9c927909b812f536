"""The Cendyn CRM emulator, served under /cendyn/ (shared/platforms.md part B §3; seed 003; the
field names of shared/specs/pushtech-cendyn/push-cendyn-crm-openapi.derived.yml).

Strict where Cendyn is, or where part A says the sandbox must be: `Authorization: Token
token=<secret>` and the account id in the path (else 401 "authorization failure for account:
<id>", the same answer for a bad token and a wrong account); unknown routes 404 with the
vendor's "Route not found" text, before any authentication, as its router answers; contact
bodies hold only the documented keys and the account's custom fields, each of its type;
`gender` MALE or FEMALE; dates ISO 8601; audience lists must exist; channels email, sms or
push; a new contact needs an email or a phone country code and number. Errors are `{"error":
"<message>"}` and every answer carries `x-request-id`.

Matching is the client's job, as on Cendyn: POST always creates (a retried POST duplicates),
PUT needs a known id, `GET contact?user_id=` finds. Bulk (`POST contact/bulk`) applies valid
contacts at once (matched on user_id when `match_contact_user_id` is true, else created) and
keeps the invalid ones for the completion webhook (shared/inbound.md 3.3), sent to the bulk's
`webhook_url` by the control call `notify {"action": "bulk_complete"}`. The
vendor documents only "queue" for `GET contact/bulk/:id`: the POST answer and the first poll
say "queue", later polls say INVENTED_BULK_STATUS, a word made up here and marked so, that a
client must not depend on (the outcome comes from the webhook or a read-back of the contacts).
The faults' `bulk_deferred` holds a bulk's contacts back (not applied, so not readable) until
it is switched off, as a queue that has not run yet.
"""

import datetime
import hashlib
import hmac
import json
import os
import random
import re
import time
import uuid
from typing import Any

from sync.sandbox.core import (
    BadRequest,
    Notification,
    PlatformEmulator,
    SandboxRequest,
    SandboxResponse,
    option_time,
)

# Not a vendor word: the sandbox's own, so that a client waiting for a documented terminal
# state (there is none) is caught by the tests.
INVENTED_BULK_STATUS = "sandbox-invented-not-a-vendor-status"

ROUTE = re.compile(r"^/v2/account/(?P<account>[^/]+)/(?P<rest>[^?]*?)/?$")
ROUTE_NOT_FOUND = "Route not found, please visit https://developers.cendyncrm.com/api/reference"
BULK_LIMIT = 5000
SEARCH_LIMIT = 200  # "limit of number contacts returns, default: 200"
SEARCH_KEYS = (
    "user_id",
    "device_id",
    "name_first",
    "name_last",
    "email",
    "phone_countrycode",
    "phone_number",
)
BULK_KEYS = (
    "contacts",
    "match_contact_user_id",
    "webhook_url",
    "validate_emails",
    "contacts_webhook_extra_fields",
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
CHANNELS = ("email", "sms", "push")  # "Name of channel. Options: [email, sms, push]"
SAMPLE_CUSTOM_FIELDS = [
    {
        "_id": "5853d8c2edb7aacab9000045",
        "name": "loyalty_tier",
        "label": "Loyalty tier",
        "description": "Tier in the loyalty programme",
        "category": "Loyalty",
        "type": "string",
    },
    {
        "_id": "5853d8c2edb7aacab9000046",
        "name": "lifetime_value",
        "label": "Lifetime value",
        "description": "Revenue from the guest so far",
        "category": "Loyalty",
        "type": "number",
    },
    {
        "_id": "5853d8c2edb7aacab9000047",
        "name": "is_vip",
        "label": "VIP",
        "description": "",
        "category": "Loyalty",
        "type": "boolean",
    },
    {
        "_id": "5853d8c2edb7aacab9000048",
        "name": "anniversary_date",
        "label": "Anniversary",
        "description": "",
        "category": "Profile",
        "type": "date",
    },
    {
        "_id": "5853d8c2edb7aacab9000049",
        "name": "time_zone",
        "label": "Time zone",
        "description": "IANA name",
        "category": "Profile",
        "type": "string",
    },
    {
        "_id": "5853d8c2edb7aacab900004a",
        "name": "gender_identity",
        "label": "Gender identity",
        "description": "",
        "category": "Profile",
        "type": "string",
    },
    {
        "_id": "5853d8c2edb7aacab900004b",
        "name": "room_preference",
        "label": "Room preference",
        "description": "",
        "category": "Stay",
        "type": "selectable_options",
        "selectable_options": ["king", "twin", "suite"],
    },
]
SAMPLE_LISTS = [
    {
        "id": "661f9a2be4b0a1c2d3e40001",
        "name": "Newsletter",
        "description": "Monthly hotel news",
        "created_at": "2024-04-17T12:00:00Z",
        "visibility": "public",
    },
    {
        "id": "661f9a2be4b0a1c2d3e40002",
        "name": "VIP guests",
        "description": "Invitation-only offers",
        "created_at": "2024-04-17T12:00:00Z",
        "visibility": "private",
    },
    {
        "id": "661f9a2be4b0a1c2d3e40003",
        "name": "Spa offers",
        "description": "",
        "created_at": "2024-05-02T09:30:00Z",
        "visibility": "public",
    },
]


# ------------------------------------------------------------------- value checks


def _string(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")


def _number(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{key} must be a number")


def _boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")


def _date(key: str, value: Any) -> None:
    if isinstance(value, str) and ISO_8601.match(value):
        try:
            datetime.datetime.fromisoformat(value)
            return
        except ValueError:
            pass
    raise BadRequest(f"{key} must be a date in ISO 8601 format, e.g. 1990-01-01T00:00:00Z")


def _pattern(regex: str, what: str):
    compiled = re.compile(regex)

    def check(key: str, value: Any) -> None:
        if not isinstance(value, str) or not compiled.match(value):
            raise BadRequest(f"{key} must be {what}")

    return check


def _coordinate(limit: float):
    def check(key: str, value: Any) -> None:
        _number(key, value)
        if not -limit <= value <= limit:
            raise BadRequest(f"{key} must be between -{limit:g} and {limit:g}")

    return check


def _email(key: str, value: Any) -> None:
    if not isinstance(value, str) or not EMAIL.match(value):
        raise BadRequest(f"{key} is not a valid email address")


def _tags(key: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise BadRequest(f"{key} must be an array of strings")


def _objects(key: str, value: Any, fields: dict) -> None:
    """An array of objects holding exactly `fields` (name -> check)."""
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be an array of objects")
    for item in value:
        if not isinstance(item, dict) or set(item) != set(fields):
            raise BadRequest(f"each {key} item takes exactly {', '.join(fields)}")
        for name, check in fields.items():
            check(f"{key}[{name}]", item[name])


def _channel(key: str, value: Any) -> None:
    if value not in CHANNELS:
        raise BadRequest(f"{key} must be one of {', '.join(CHANNELS)}")


def _channel_subscriptions(key: str, value: Any) -> None:
    _objects(key, value, {"channel": _channel, "blacklisted": _boolean})


def _email_validation(key: str, value: Any) -> None:
    options = ("validate", "create_if_invalid", "create_if_no_credit")
    if not isinstance(value, dict) or not set(value) <= set(options):
        raise BadRequest(f"{key} takes {', '.join(options)}")
    for name, flag in value.items():
        _boolean(f"{key}[{name}]", flag)


# The contact body's documented keys (contact/create, contact/update) and their checks;
# list_subscriptions is checked against the account's lists by the emulator.
CONTACT_FIELDS = {
    "device_id": _string,
    "name_first": _string,
    "name_last": _string,
    "email": _email,
    "phone_countrycode": _pattern(r"^\+?\d{1,4}$", "a country calling code, e.g. 44"),
    "phone_number": _pattern(r"^\d{4,15}$", "digits without the country code"),
    "phone": _pattern(r"^\+?\d{6,18}$", "a full phone number with its country code"),
    "city": _string,
    "country": _string,
    "region": _string,
    "zip": _string,
    "full_address": _string,
    "born_date": _date,
    "gender": _pattern(r"^(MALE|FEMALE)$", "MALE or FEMALE"),
    "language": _pattern(r"^[A-Z]{2}$", "an ISO-2 language code in capitals, e.g. ES"),
    "user_id": _string,
    "facebook_id": _string,
    "facebook_friends": _number,
    "google_id": _string,
    "twitter_id": _string,
    "twitter_followers": _number,
    "tags": _tags,
    "last_latitude": _coordinate(90),
    "last_longitude": _coordinate(180),
    "list_subscriptions": None,
    "channel_subscriptions": _channel_subscriptions,
    "gdpr_marketing_consent": _boolean,
    "gdpr_accept_terms": _boolean,
    "gdpr_date": _date,
    "gdpr_remote_ip": _string,
}
CUSTOM_CHECKS = {"string": _string, "number": _number, "boolean": _boolean, "date": _date}


def _copy(contact: dict) -> dict:
    """A copy safe to serialise outside the lock."""
    return {
        key: [dict(v) if isinstance(v, dict) else v for v in value]
        if isinstance(value, list)
        else value
        for key, value in contact.items()
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


BULK_ANSWER_KEYS = (
    "_id",
    "number_of_contacts",
    "match_contact_user_id",
    "validate_emails",
    "contacts_webhook_extra_fields",
    "webhook_url",
    "status",
)
# "By default it is sent by the webhook the following fields" (contact/create_bulk)
BULK_WEBHOOK_FIELDS = ("_id", "user_id", "email", "phone_countrycode", "phone_number")
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


DELIVERY_LIMIT = 200  # "Max number of deliveries returned, default max set to 200"


def _instant(value: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _delivery_matches(delivery: dict, request: SandboxRequest, bounds: dict) -> bool:
    for key, held in (
        ("channel", delivery["channel"].lower()),
        ("status", delivery["status"]),
        ("contact_id", delivery["_contact_id"]),
    ):
        wanted = request.arg(key)
        if wanted is not None and wanted.lower() != str(held).lower():
            return False
    created, updated = _instant(delivery["created_at"]), _instant(delivery["updated_at"])
    checks = {
        "created_since": lambda b: created >= b,
        "created_until": lambda b: created <= b,
        "updated_since": lambda b: updated >= b,
        "updated_until": lambda b: updated <= b,
    }
    return all(checks[key](bound) for key, bound in bounds.items())


class CendynEmulator(PlatformEmulator):
    slug = "cendyn"
    account_credentials = {"secret": "sandbox-cendyn-secret"}
    account_settings = {"account_id": "sandbox-account"}
    default_rate_limit = 10  # none published: part A's default
    switch_defaults = {"bulk_deferred": False}
    stored_attributes = (
        "webhook_url",
        "deferred",
        "contacts",
        "by_user_id",
        "bulks",
        "custom_fields",
        "lists",
        "next_number",
        "_machine",
        "deliveries",
    )

    def reset(self) -> None:
        self.webhook_url = ""  # registered by hand for the contacts and deliveries groups
        self.deferred: list[tuple[str, list, bool]] = []  # bulks not applied yet
        self.contacts: dict[str, dict] = {}  # id -> the contact as Cendyn returns it
        self.by_user_id: dict[str, list[str]] = {}  # user_id -> ids (POST may duplicate)
        self.bulks: dict[str, dict] = {}
        self.deliveries: list[dict] = []  # oldest first, as GET …/deliveries lists them
        self.custom_fields = {f["name"]: dict(f) for f in SAMPLE_CUSTOM_FIELDS}
        self.lists = {item["id"]: dict(item) for item in SAMPLE_LISTS}
        self.next_number = 1  # the counter part of the next id
        self._machine = os.urandom(5).hex()
        self.routes = [  # (pattern of the path below the account, method, handler)
            (re.compile(r"^custom_fields$"), "GET", self._list_custom_fields),
            (re.compile(r"^lists$"), "GET", self._list_lists),
            (re.compile(r"^contact$"), "GET", self._search),
            (re.compile(r"^deliveries$"), "GET", self._list_deliveries),
            (re.compile(r"^contact$"), "POST", self._create),
            (re.compile(r"^contact/bulk$"), "POST", self._create_bulk),
            (re.compile(r"^contact/bulk/(?P<id>[^/]+)$"), "GET", self._show_bulk),
            (re.compile(r"^contact/(?P<id>[^/]+)$"), "GET", self._show),
            (re.compile(r"^contact/(?P<id>[^/]+)$"), "PUT", self._update),
            (re.compile(r"^contact/(?P<id>[^/]+)$"), "DELETE", self._delete),
        ]

    # -- webhooks (shared/inbound.md part B 3.1, 3.3 and 5.3: second-hand)

    def register_webhook(self, data: dict) -> dict:
        """The account manager's Webhooks section: one URL for the contacts and deliveries
        event groups (registered per group in Cendyn; one here serves both)."""
        self.webhook_url = str(data.get("url") or "")
        return {"url": self.webhook_url}

    def notify(self, data: dict, base_url: str) -> list[Notification]:
        action = data.get("action")
        if action == "bulk_complete":
            return self._bulk_completions(data)
        ids = self.by_user_id.get(str(data.get("external_id")), [])
        contact = self.contacts.get(ids[0]) if ids else None
        if contact is None:
            raise BadRequest(f"Cendyn holds no contact with user_id {data.get('external_id')!r}")
        channel = str(data.get("channel") or "email")
        event_time = option_time(data, "event_time")
        moment = datetime.datetime.fromtimestamp(event_time, datetime.UTC)
        iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if action in ("unsubscribe", "resubscribe"):
            blacklisted = action == "unsubscribe"
            contact["channel_subscriptions"] = _merged(
                contact.get("channel_subscriptions", []),
                [{"channel": channel, "blacklisted": blacklisted}],
                "channel",
            )
            body = {
                "action": "channel_subscription",
                "origin": "platform_individual",
                "contact": {"id": contact["id"], "user_id": contact.get("user_id")},
                "channel_subscription": {
                    "channel": channel,
                    "blacklisted": blacklisted,
                    "origin": "platform_individual",
                    "date": iso,
                },
            }
        elif action in ("bounce", "complaint", "unsubscribe_link"):
            status = {"bounce": "bounced", "complaint": "complained"}.get(action, "unsubscribed")
            delivery_id = self._new_id()
            self.deliveries.append(
                {
                    "id": delivery_id,
                    "created_at": iso,
                    "updated_at": iso,
                    "channel": channel.upper(),
                    "status": status,
                    "refunded": False,
                    "template_data": {"sender": "Sandbox", "subject": "Welcome", "content": ""},
                    "channel_data": {"3": contact.get("email")},
                    "price": {"amount": 0.01, "currency": "€"},
                    "_contact_id": contact["id"],  # what the filter reads; never shown
                }
            )
            body = {
                "id": delivery_id,
                "created_at": iso,
                "updated_at": iso,
                "channel": channel.upper(),  # the vendor's example: "EMAIL"
                "status": status,
                "refunded": False,
                "url": None,
                "campaign": {"_id": self._new_id(), "name": "Welcome"},
                "contact": {
                    "_id": contact["id"],
                    "user_id": contact.get("user_id"),
                    "name_first": contact.get("name_first"),
                    "name_last": contact.get("name_last"),
                    "email": contact.get("email"),
                    "phone": contact.get("phone"),
                },
            }
        elif action == "delete":
            self._unindex(contact)
            del self.contacts[contact["id"]]
            body = {
                "action": "destroy",
                "origin": "platform_individual",
                "contact": {"id": contact["id"], "user_id": contact.get("user_id")},
            }
        else:
            raise BadRequest(f"unknown Cendyn action {action!r}")
        if not self.webhook_url:
            return []  # nothing registered: the change is only what the API reads
        return [self._signed(self.webhook_url, body, data)]

    def _bulk_completions(self, data: dict) -> list[Notification]:
        """The `bulk_contacts` webhook of every applied bulk that named a webhook_url."""
        if self.deferred and not self.switches["bulk_deferred"]:
            self._run_deferred()
        notes = []
        for bulk_id, bulk in self.bulks.items():
            if (
                not bulk.get("webhook_url")
                or bulk["notified"]
                or any(d[0] == bulk_id for d in self.deferred)
            ):
                continue
            bulk["notified"] = True
            failed_at = {f["index"]: f for f in bulk["failed_contacts"]}
            valid, failed = [], []
            fields = BULK_WEBHOOK_FIELDS + tuple(bulk["contacts_webhook_extra_fields"])
            for index, sent in enumerate(bulk["contacts"]):
                if index in failed_at:
                    failed.append({"contact": sent, "errors": [failed_at[index]["error"]]})
                    continue
                ids = self.by_user_id.get(sent.get("user_id"), [])
                held = self.contacts.get(ids[-1]) if ids else None
                if held is not None:
                    shown = {**held, "_id": held["id"]}
                    valid.append({key: shown.get(key) for key in fields})
            body = {
                "contacts_valid_count": len(valid),
                "contacts_failed_count": len(failed),
                "valid_contacts": valid,
                "failed_contacts": failed,
            }
            notes.append(self._signed(bulk["webhook_url"], body, data))
        return notes

    def _signed(self, url: str, body: dict, data: dict) -> Notification:
        """Body + account_id, timestamp, token; `Authorization` = hex HMAC-SHA256(secret,
        str(timestamp) + token) (lower-case hex, no prefix: assumptions, part B 5.3)."""
        timestamp = option_time(data, "sent_at")
        token = "".join(random.choice(TOKEN_ALPHABET) for _ in range(50))
        secret = "not-the-secret" if data.get("tamper") else self.account_credentials["secret"]
        signature = hmac.new(
            secret.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
        ).hexdigest()
        # `account_id` option: another Cendyn account whose webhook was pointed at our URL,
        # signed with the same secret (our receiver must still refuse it: part A, 406)
        account = data.get("account_id") or self.account_settings["account_id"]
        full = {**body, "account_id": account, "timestamp": timestamp}
        full["token"] = data.get("token") or token
        if data.get("token"):
            signature = hmac.new(
                secret.encode(), f"{timestamp}{full['token']}".encode(), hashlib.sha256
            ).hexdigest()
        headers = {"Content-Type": "application/json", "Authorization": signature}
        return Notification(url, headers, json.dumps(full).encode())

    # -- the platform's shapes

    def _resolve(self, request: SandboxRequest):
        """(account id, handler, path arguments), or None when no route matches."""
        match = ROUTE.match(request.path)
        if match is None:
            return None
        for pattern, method, handler in self.routes:
            found = pattern.match(match["rest"])
            if found and method == request.method:
                return match["account"], handler, found.groupdict()
        return None

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        resolved = self._resolve(request)
        if resolved is None:
            return None  # the router answers 404 before the account is checked
        account = resolved[0]
        good = f"Token token={self.account_credentials['secret']}"
        if (
            account != self.account_settings["account_id"]
            or request.headers.get("authorization") != good
        ):
            return self.error(401, f"authorization failure for account: {account}")
        return None

    def error(self, status: int, message: str) -> SandboxResponse:
        return SandboxResponse(status, {"error": message}, {"x-request-id": str(uuid.uuid4())})

    def revoked_response(self) -> SandboxResponse:
        return self.error(
            401, f"authorization failure for account: {self.account_settings['account_id']}"
        )

    def rate_limited_response(self, retry_after: int | None) -> SandboxResponse:
        response = self.error(429, "Too many requests, slow down")
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def no_id_body(self) -> Any:
        return {"name_first": "John", "name_last": "Doe", "tags": []}

    def decorate(self, response: SandboxResponse, remaining: int) -> None:
        response.headers.setdefault("x-request-id", str(uuid.uuid4()))

    account_text_field = "loyalty_tier"

    def contact_view(self, external_id: str) -> dict | None:
        ids = self.by_user_id.get(external_id) or []
        if not ids:
            return None
        contact = self.contacts[ids[0]]
        return {
            "first_name": contact.get("name_first"),
            "last_name": contact.get("name_last"),
            "email": contact.get("email"),
            "text_field": contact.get(self.account_text_field),
        }

    def consent_view(self, external_id: str) -> dict | None:
        """Cendyn's opt-out is the email channel blacklisted in `channel_subscriptions`."""
        ids = self.by_user_id.get(external_id) or []
        if not ids:
            return None
        subscriptions = self.contacts[ids[0]].get("channel_subscriptions") or []
        blacklisted = any(
            s.get("channel") == "email" and s.get("blacklisted") is True for s in subscriptions
        )
        return {"email_subscribed": not blacklisted}

    def edit_contact(self, external_id: str, changes: dict) -> bool:
        ids = self.by_user_id.get(external_id) or []
        if not ids:
            return False
        contact = self.contacts[ids[0]]
        for key, attr in (
            ("first_name", "name_first"),
            ("last_name", "name_last"),
            ("email", "email"),
            ("text_field", self.account_text_field),
        ):
            if key in changes:
                contact[attr] = changes[key]
        for key, value in changes.get("raw", {}).items():
            if key in ("id", "user_id"):
                raise BadRequest(f"{key} is what the contact is found by")
            contact[key] = value
        contact["updated_at"] = _now()
        return True

    def remove_contact(self, external_id: str) -> bool:
        ids = self.by_user_id.pop(external_id, [])
        for contact_id in ids:
            self.contacts.pop(contact_id, None)
        return bool(ids)

    def snapshot(self) -> Any:
        return {
            "contacts": [_copy(c) for c in self.contacts.values()],
            "custom_fields": [dict(f) for f in self.custom_fields.values()],
            "lists": [dict(item) for item in self.lists.values()],
            "bulks": [_copy(b) for b in self.bulks.values()],
        }

    def route(self, request: SandboxRequest) -> SandboxResponse:
        resolved = self._resolve(request)
        if resolved is None:
            return self.error(404, ROUTE_NOT_FOUND)
        _, handler, arguments = resolved
        with self.lock:
            if self.deferred and not self.switches["bulk_deferred"]:
                self._run_deferred()
        return handler(request, **arguments)

    def _run_deferred(self) -> None:
        """The queue runs: apply the bulks held back while `bulk_deferred` was on."""
        for bulk_id, contacts, match in self.deferred:
            self.bulks[bulk_id]["failed_contacts"] = [
                f for i, c in enumerate(contacts) if (f := self._bulk_one(i, c, match))
            ]
        self.deferred = []

    def _new_id(self) -> str:
        """24 hex digits like a MongoDB ObjectId ("550aac3da096734ce5000001")."""
        number, self.next_number = self.next_number, self.next_number + 1
        return f"{int(time.time()):08x}{self._machine}{number % 0xFFFFFF:06x}"

    # -- custom fields and lists

    def _list_custom_fields(self, request: SandboxRequest) -> SandboxResponse:
        with self.lock:
            return SandboxResponse(
                200, {"custom_fields": [dict(f) for f in self.custom_fields.values()]}
            )

    def _list_lists(self, request: SandboxRequest) -> SandboxResponse:
        with self.lock:
            return SandboxResponse(200, {"lists": [dict(item) for item in self.lists.values()]})

    # -- deliveries (deliveries/list, [C-oas] listDeliveries)

    def _list_deliveries(self, request: SandboxRequest) -> SandboxResponse:
        """`{"deliveries": [{"delivery": {…}}]}`, filtered by channel, status, contact_id,
        created_/updated_ since/until ("inclusive"), after `from_id` / before
        `until_id`, `order` of creation (asc by default: an inference) and `limit` ("default
        max set to 200"). The answer names no contact, as the vendor's example shows. The
        `delivery_id` the table marks required is the show page's, copied (inbound.md 3.2):
        not required here."""
        try:
            limit = min(int(request.arg("limit", str(DELIVERY_LIMIT))), DELIVERY_LIMIT)
        except ValueError:
            raise BadRequest("limit must be a whole number") from None
        order = request.arg("order", "asc").lower()
        if order not in ("asc", "desc") or limit < 1:
            raise BadRequest("order must be asc or desc and limit at least 1")
        bounds = {}
        for key in ("created_since", "created_until", "updated_since", "updated_until"):
            value = request.arg(key)
            if value is not None:
                if not ISO_8601.match(value):
                    raise BadRequest(f"{key} must be an ISO 8601 date and time")
                bounds[key] = _instant(value)
        with self.lock:
            found = []
            for delivery in self.deliveries:
                if not _delivery_matches(delivery, request, bounds):
                    continue
                found.append(delivery)
            if order == "desc":
                found.reverse()
            for key, side in (("from_id", 1), ("until_id", 0)):
                mark = request.arg(key)
                if mark is not None:
                    ids = [d["id"] for d in found]
                    found = (
                        (found[ids.index(mark) + 1 :] if side else found[: ids.index(mark)])
                        if mark in ids
                        else []
                    )
            shown = [
                {"delivery": {k: v for k, v in d.items() if not k.startswith("_")}}
                for d in found[:limit]
            ]
            return SandboxResponse(200, {"deliveries": shown})

    # -- contacts

    def _search(self, request: SandboxRequest) -> SandboxResponse:
        try:
            limit = int(request.arg("limit", str(SEARCH_LIMIT)))
        except ValueError:
            raise BadRequest("limit must be a whole number") from None
        order = request.arg("order", "asc")
        if order not in ("asc", "desc") or limit < 1:
            raise BadRequest("order must be asc or desc and limit at least 1")
        wanted = {key: request.arg(key) for key in SEARCH_KEYS if request.arg(key) is not None}
        with self.lock:
            if "user_id" in wanted:
                found = [self.contacts[i] for i in self.by_user_id.get(wanted["user_id"], [])]
            else:
                found = list(self.contacts.values())
            found = [
                c
                for c in found
                if all(_same(key, c.get(key), value) for key, value in wanted.items())
            ]
            if order == "desc":
                found.reverse()
            start = request.arg("contact_id_from")
            if start is not None:
                ids = [c["id"] for c in found]
                found = found[ids.index(start) + 1 :] if start in ids else []
            return SandboxResponse(200, {"contacts": [_copy(c) for c in found[:limit]]})

    def _show(self, request: SandboxRequest, id: str) -> SandboxResponse:
        with self.lock:
            contact = self.contacts.get(id)
            return self._contact_answer(200, contact)

    def _create(self, request: SandboxRequest) -> SandboxResponse:
        body = request.json()
        with self.lock:
            self._check_contact(body, creating=True)
            contact = self._new_contact()
            self._apply(contact, body)
            return SandboxResponse(201, _copy(contact))

    def _update(self, request: SandboxRequest, id: str) -> SandboxResponse:
        body = request.json()
        with self.lock:
            contact = self.contacts.get(id)
            if contact is None:
                return self._contact_answer(404, None)
            self._check_contact(body, creating=False)
            self._apply(contact, body)
            return SandboxResponse(200, _copy(contact))

    def _delete(self, request: SandboxRequest, id: str) -> SandboxResponse:
        with self.lock:
            contact = self.contacts.pop(id, None)
            if contact is None:
                return self._contact_answer(404, None)
            self._unindex(contact)
            return SandboxResponse(200, _copy(contact))

    def _contact_answer(self, status: int, contact: dict | None) -> SandboxResponse:
        if contact is None:
            return self.error(404, "Contact not found")
        return SandboxResponse(status, _copy(contact))

    def _new_contact(self) -> dict:
        now = _now()
        contact = {"id": self._new_id(), "created_at": now, "updated_at": now}
        self.contacts[contact["id"]] = contact
        return contact

    def _apply(self, contact: dict, body: dict) -> None:
        """Write a checked body: lists and channels merge by id, everything else replaces."""
        for key, value in body.items():
            if key == "email_validation":
                continue  # a paid check Cendyn runs; nothing is stored
            if key == "list_subscriptions":
                contact[key] = _merged(contact.get(key, []), value, "list_id")
            elif key == "channel_subscriptions":
                contact[key] = _merged(contact.get(key, []), value, "channel")
            elif key == "user_id":
                self._unindex(contact)
                contact[key] = value
                self.by_user_id.setdefault(value, []).append(contact["id"])
            else:
                contact[key] = list(value) if isinstance(value, list) else value
        contact["updated_at"] = _now()

    def _unindex(self, contact: dict) -> None:
        ids = self.by_user_id.get(contact.get("user_id"), [])
        if contact["id"] in ids:
            ids.remove(contact["id"])
            if not ids:
                del self.by_user_id[contact["user_id"]]

    # -- validation

    def _check_contact(self, body: Any, *, creating: bool) -> None:
        """Raise BadRequest for what Cendyn refuses in a create or update body."""
        if not isinstance(body, dict):
            raise BadRequest("the contact must be a JSON object")
        for key, value in body.items():
            if key in CONTACT_FIELDS:
                check = CONTACT_FIELDS[key] or self._check_list_subscriptions
                check(key, value)
            elif key == "email_validation" and creating:
                _email_validation(key, value)
            elif key in self.custom_fields:
                self._check_custom(self.custom_fields[key], value)
            else:
                raise BadRequest(
                    f"unknown parameter {key!r}: not a contact field nor a custom "
                    "field of this account"
                )
        if ("phone_countrycode" in body) != ("phone_number" in body):
            raise BadRequest("phone_countrycode and phone_number go together")
        if creating and not body.get("email") and not body.get("phone_number"):
            raise BadRequest("email or phone_countrycode and phone_number are required")

    def _check_list_subscriptions(self, key: str, value: Any) -> None:
        _objects(key, value, {"list_id": _string, "subscribed": _boolean})
        for item in value:
            if item["list_id"] not in self.lists:
                raise BadRequest(f"list {item['list_id']!r} not found in this account")

    @staticmethod
    def _check_custom(field: dict, value: Any) -> None:
        name, kind = field["name"], field["type"]
        if kind == "selectable_options":
            options = field.get("selectable_options", [])
            if value not in options:
                raise BadRequest(f"{name} must be one of {', '.join(options)}")
            return
        CUSTOM_CHECKS.get(kind, _string)(name, value)

    # -- bulk

    def _create_bulk(self, request: SandboxRequest) -> SandboxResponse:
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        unknown = sorted(set(body) - set(BULK_KEYS))
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0]!r}")
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            raise BadRequest("contacts must be a non-empty array")
        if len(contacts) > BULK_LIMIT:
            raise BadRequest(f"Maximum of {BULK_LIMIT} contacts per request")
        for key in ("match_contact_user_id", "validate_emails"):
            if key in body:
                _boolean(key, body[key])
        match = body.get("match_contact_user_id", False)
        with self.lock:
            deferred = self.switches["bulk_deferred"]
            failed = (
                []
                if deferred
                else [f for i, c in enumerate(contacts) if (f := self._bulk_one(i, c, match))]
            )
            bulk = {
                "_id": self._new_id(),
                "number_of_contacts": len(contacts),
                "match_contact_user_id": match,
                "validate_emails": body.get("validate_emails", False),
                "contacts_webhook_extra_fields": body.get("contacts_webhook_extra_fields", []),
                "webhook_url": body.get("webhook_url"),
                "status": "queue",
            }
            self.bulks[bulk["_id"]] = {
                **bulk,
                "polls": 0,
                "failed_contacts": failed,
                "contacts": contacts,
                "notified": False,
            }
            if deferred:
                self.deferred.append((bulk["_id"], contacts, match))
            return SandboxResponse(201, {"bulk": bulk})

    def _bulk_one(self, index: int, body: Any, match: bool) -> dict | None:
        """Apply one bulk contact; its failure entry when it is refused."""
        user_id = body.get("user_id") if isinstance(body, dict) else None
        existing = self.by_user_id.get(user_id) if match and isinstance(user_id, str) else None
        try:
            self._check_contact(body, creating=not existing)
        except BadRequest as err:
            return {"user_id": user_id, "index": index, "error": str(err)}
        contact = self.contacts[existing[0]] if existing else self._new_contact()
        self._apply(contact, body)
        return None

    def _show_bulk(self, request: SandboxRequest, id: str) -> SandboxResponse:
        with self.lock:
            stored = self.bulks.get(id)
            if stored is None:
                return self.error(404, "Bulk not found")
            stored["polls"] += 1
            if stored["polls"] > 1:
                stored["status"] = INVENTED_BULK_STATUS
            bulk = {k: v for k, v in stored.items() if k in BULK_ANSWER_KEYS}
            return SandboxResponse(200, {"bulk": _copy(bulk)})


def _same(key: str, stored: Any, wanted: str) -> bool:
    if key == "email":
        return isinstance(stored, str) and stored.lower() == wanted.lower()
    return stored == wanted


def _merged(current: list[dict], changes: list[dict], key: str) -> list[dict]:
    merged = {item[key]: dict(item) for item in current}
    merged.update({item[key]: dict(item) for item in changes})
    return list(merged.values())
