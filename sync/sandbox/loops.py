"""The Loops emulator, served under /loops/ (shared/platforms.md part B §4; Loops OpenAPI Spec
1.21.7 in shared/specs/loops/).

Strict where Loops is: Bearer key, `email` or `userId` required, email syntax, custom
properties must exist in the account and match their type, reserved names refused, no body key
or value over 500 characters, mailing lists must exist. Matching as the update-contact page
says: the contact matching `email` or `userId` is updated and its other value set; no match
creates one. Errors are `{"success": false, "message"}` (changelog 2025-09-11); the 401 also
carries the deprecated `error` key, as the 1.21.7 spec shows. Every answer has the
`x-ratelimit-limit` and `x-ratelimit-remaining` headers (API intro page).
"""

import base64
import datetime
import hashlib
import hmac
import json
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

RESERVED_NAMES = frozenset({"id", "listId", "softDeleteAt", "teamId", "updatedAt"})
PROPERTY_TYPES = ("string", "number", "boolean", "date")
MAX_LENGTH = 500
TOO_LONG = "Some body key or value is longer than allowable"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
# https://loops.so/docs/contacts/properties#dates: the accepted forms, offset optional
DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{3})?)?(?:Z|[+-]\d{2}:\d{2})?)?$"
)
TEAM_NAME = "Sandbox team"

DEFAULT_PROPERTIES = [  # Loops' own contact fields, listed by `?list=all`
    ("email", "Email", "string"),
    ("firstName", "First name", "string"),
    ("lastName", "Last name", "string"),
    ("source", "Source", "string"),
    ("subscribed", "Subscribed", "boolean"),
    ("userGroup", "User group", "string"),
    ("userId", "User ID", "string"),
]
SAMPLE_PROPERTIES = [
    ("plan", "Plan", "string"),
    ("signupDate", "Signup date", "date"),
    ("lifetimeValue", "Lifetime value", "number"),
    ("isVip", "Is VIP", "boolean"),
    ("loyaltyLevel", "Loyalty level", "string"),
    ("birthDate", "Birth date", "date"),
]
SAMPLE_LISTS = [
    {
        "id": "cm06f5v0e45nf0ml5754o9cix",
        "name": "Product updates",
        "description": "Monthly product news and release notes",
        "isPublic": True,
    },
    {
        "id": "cm16k73gq014h0mmj5b6jdi9r",
        "name": "Newsletter",
        "description": None,
        "isPublic": True,
    },
    {
        "id": "clm2k8j4h6g0f8d6s4a2b0z8",
        "name": "Beta testers",
        "description": "Private list for early access",
        "isPublic": False,
    },
]
NATIVE_TYPES = {  # key -> accepted JSON types in a contact body
    "email": (str,),
    "userId": (str,),
    "firstName": (str, type(None)),
    "lastName": (str, type(None)),
    "userGroup": (str,),
    "source": (str,),
    "subscribed": (bool,),
    "mailingLists": (dict,),
}


def _property(key: str, label: str, kind: str) -> dict:
    return {"key": key, "label": label, "type": kind}


def _label(name: str) -> str:
    """`signupDate` -> "Signup date", as Loops labels a property created over the API."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).split()
    return " ".join([words[0].capitalize(), *(w.lower() for w in words[1:])]) if words else name


class LoopsEmulator(PlatformEmulator):
    slug = "loops"
    account_credentials = {
        "api_key": "sandbox-loops-api-key",
        # Shown once in Settings → Webhooks as `<prefix>_<base64 key>` (part B 4.1).
        "signing_secret": "whsec_c2FuZGJveC1sb29wcy13ZWJob29rLXNpZ25pbmcta2V5IQ==",
    }
    default_rate_limit = 10  # "10 requests per second per team"
    stored_attributes = (
        "contacts",
        "by_email",
        "by_user_id",
        "properties",
        "lists",
        "webhook_url",
        "suppressed",
    )

    def reset(self) -> None:
        self.contacts: dict[str, dict] = {}  # id -> the contact as `find` returns it
        self.by_email: dict[str, str] = {}  # lower-cased email -> id
        self.by_user_id: dict[str, str] = {}
        self.properties = {
            key: _property(key, label, kind) for key, label, kind in SAMPLE_PROPERTIES
        }
        self.lists = {item["id"]: dict(item) for item in SAMPLE_LISTS}
        self.webhook_url = ""  # Loops has one webhook endpoint per account
        self.suppressed: set[str] = set()  # contact ids a hard bounce or complaint suppressed
        self.routes = {
            "/v1/api-key": {"GET": self._api_key},
            "/v1/contacts/update": {"PUT": self._update},
            "/v1/contacts/create": {"POST": self._create},
            "/v1/contacts/find": {"GET": self._find},
            "/v1/contacts/suppression": {"GET": self._suppression},
            "/v1/contacts/delete": {"POST": self._delete},
            "/v1/contacts/properties": {
                "GET": self._list_properties,
                "POST": self._create_property,
            },
            "/v1/lists": {"GET": self._list_lists},
        }

    # -- webhooks

    def register_webhook(self, data: dict) -> dict:
        """Settings → Webhooks: one endpoint URL per account; the secret is the account's."""
        self.webhook_url = str(data.get("url") or "")
        return {"url": self.webhook_url}

    def notify(self, data: dict, base_url: str) -> list[Notification]:
        return _loops_notify(self, data)

    # -- the platform's shapes

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        if request.headers.get("authorization") == f"Bearer {self.account_credentials['api_key']}":
            return None
        return self._invalid_key()

    def revoked_response(self) -> SandboxResponse:
        return self._invalid_key()

    def _invalid_key(self) -> SandboxResponse:
        response = self.error(401, "Invalid API key")
        response.body["error"] = "Invalid API key"  # deprecated, still sent (spec 1.21.7)
        return response

    def error(self, status: int, message: str) -> SandboxResponse:
        response = SandboxResponse(status, {"success": False, "message": message})
        self.decorate(response, self._remaining())
        return response

    def rate_limited_response(self, retry_after: int | None) -> SandboxResponse:
        response = self.error(429, "Rate limit exceeded.")
        response.headers["x-ratelimit-remaining"] = "0"
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def no_id_body(self) -> Any:
        return {"success": True}

    def decorate(self, response: SandboxResponse, remaining: int) -> None:
        limit = self.limiter.limit
        response.headers["x-ratelimit-limit"] = str(int(limit or self.default_rate_limit))
        response.headers["x-ratelimit-remaining"] = str(
            remaining if limit else int(self.default_rate_limit)
        )

    def _remaining(self) -> int:
        """What is left of the current second's allowance, without using any of it."""
        limiter = self.limiter
        if not limiter.limit:
            return int(self.default_rate_limit)
        now = time.monotonic()
        with limiter.lock:
            used = sum(1 for t in limiter.calls if t > now - 1.0)
        return max(0, int(limiter.limit - used))

    account_text_field = "plan"

    def contact_view(self, external_id: str) -> dict | None:
        contact_id = self.by_user_id.get(external_id)
        if contact_id is None:
            return None
        contact = self.contacts[contact_id]
        return {
            "first_name": contact["firstName"],
            "last_name": contact["lastName"],
            "email": contact["email"],
            "text_field": contact.get(self.account_text_field),
        }

    def consent_view(self, external_id: str) -> dict | None:
        """Loops' audience subscription is the contact's `subscribed`."""
        contact_id = self.by_user_id.get(external_id)
        if contact_id is None:
            return None
        return {"email_subscribed": self.contacts[contact_id]["subscribed"] is True}

    def edit_contact(self, external_id: str, changes: dict) -> bool:
        contact_id = self.by_user_id.get(external_id)
        if contact_id is None:
            return False
        contact = self.contacts[contact_id]
        raw = dict(changes.get("raw", {}))
        for key, attr in (
            ("first_name", "firstName"),
            ("last_name", "lastName"),
            ("email", "email"),
            ("text_field", self.account_text_field),
        ):
            if key in changes:
                raw[attr] = changes[key]
        for key, value in raw.items():
            if key in ("id", "userId"):
                raise BadRequest(f"`{key}` is what the contact is found by.")
            if key == "email":
                self.by_email.pop((contact["email"] or "").lower(), None)
                self.by_email[value.lower()] = contact_id
            contact[key] = value
        return True

    def remove_contact(self, external_id: str) -> bool:
        contact_id = self.by_user_id.pop(external_id, None)
        if contact_id is None:
            return False
        contact = self.contacts.pop(contact_id)
        self.by_email.pop((contact["email"] or "").lower(), None)
        return True

    def snapshot(self) -> Any:
        return {
            "contacts": [
                dict(c, mailingLists=dict(c["mailingLists"])) for c in self.contacts.values()
            ],
            "properties": list(self.properties.values()),
            "lists": list(self.lists.values()),
        }

    # -- routing

    def route(self, request: SandboxRequest) -> SandboxResponse:
        handlers = self.routes.get(request.path)
        if handlers is None:
            return self.error(404, f"No route for {request.method} {request.path}")
        handler = handlers.get(request.method)
        if handler is None:
            return self.error(405, "Wrong HTTP request method.")
        return handler(request)

    def _api_key(self, request: SandboxRequest) -> SandboxResponse:
        return SandboxResponse(200, {"success": True, "teamName": TEAM_NAME})

    # -- contacts

    def _update(self, request: SandboxRequest) -> SandboxResponse:
        body = self._object(request)
        email, user_id = body.get("email"), body.get("userId")
        if not email and not user_id:
            raise BadRequest("`email` or `userId` are missing")
        with self.lock:
            self._validate_contact(body)
            contact = self._match(email, user_id)
            if contact is None:
                if not email:
                    raise BadRequest(
                        "No contact found with this `userId`. Provide an `email` "
                        "to create a contact."
                    )
                contact = self._new_contact()
            self._apply(contact, body)
        return SandboxResponse(200, {"success": True, "id": contact["id"]})

    def _create(self, request: SandboxRequest) -> SandboxResponse:
        body = self._object(request)
        if not body.get("email"):
            raise BadRequest("`email` is missing")
        with self.lock:
            self._validate_contact(body)
            if body["email"].lower() in self.by_email or body.get("userId") in self.by_user_id:
                return self.error(409, "Email or `userId` already exists.")
            contact = self._new_contact()
            self._apply(contact, body)
        return SandboxResponse(200, {"success": True, "id": contact["id"]})

    def _find(self, request: SandboxRequest) -> SandboxResponse:
        email, user_id = request.arg("email"), request.arg("userId")
        if (email is None) == (user_id is None):
            raise BadRequest("Provide `email` or `userId` (only one parameter is allowed).")
        with self.lock:
            contact_id = (
                self.by_email.get(email.lower())
                if email is not None
                else self.by_user_id.get(user_id)
            )
            found = [dict(self.contacts[contact_id])] if contact_id else []
        return SandboxResponse(200, found)

    def _suppression(self, request: SandboxRequest) -> SandboxResponse:
        """`GET /v1/contacts/suppression?email=` or `?userId=` ("Include only one") ->
        `{"contact": {id, email, userId}, "isSuppressed", "removalQuota": {limit,
        remaining}}`; 404 "Contact not found." ([L-oas] getContactSuppression). The quota
        figures are the sandbox's own (the spec gives no values)."""
        email, user_id = request.arg("email"), request.arg("userId")
        if (email is None) == (user_id is None):
            raise BadRequest("Include only one of `email` or `userId`.")
        with self.lock:
            contact_id = (
                self.by_email.get(email.lower())
                if email is not None
                else self.by_user_id.get(user_id)
            )
            if contact_id is None:
                return self.error(404, "Contact not found.")
            contact = self.contacts[contact_id]
            body = {
                "contact": {
                    "id": contact["id"],
                    "email": contact["email"],
                    "userId": contact["userId"],
                },
                "isSuppressed": contact_id in self.suppressed,
                "removalQuota": {"limit": 10, "remaining": 10},
            }
        return SandboxResponse(200, body)

    def _delete(self, request: SandboxRequest) -> SandboxResponse:
        body = self._object(request)
        unknown = set(body) - {"email", "userId"}
        if unknown:
            raise BadRequest(f"Unknown key `{sorted(unknown)[0]}`.")
        if len(body) != 1:
            raise BadRequest("Include only one of `email` or `userId`.")
        with self.lock:
            if "email" in body:
                contact_id = self.by_email.get(str(body["email"]).lower())
            else:
                contact_id = self.by_user_id.get(str(body["userId"]))
            if contact_id is None:
                return self.error(404, "Contact not found.")
            contact = self.contacts.pop(contact_id)
            self.by_email.pop((contact["email"] or "").lower(), None)
            self.by_user_id.pop(contact["userId"], None)
        return SandboxResponse(200, {"success": True, "message": "Contact deleted."})

    def _match(self, email: str | None, user_id: str | None) -> dict | None:
        by_email = self.by_email.get(email.lower()) if email else None
        by_user_id = self.by_user_id.get(user_id) if user_id else None
        if by_email and by_user_id and by_email != by_user_id:
            raise BadRequest("The `email` and the `userId` belong to two different contacts.")
        contact_id = by_user_id or by_email
        return self.contacts[contact_id] if contact_id else None

    def _new_contact(self) -> dict:
        contact_id = "c" + uuid.uuid4().hex[:24]  # Loops ids are cuids: 25 lower-case chars
        contact = {
            "id": contact_id,
            "email": None,
            "firstName": None,
            "lastName": None,
            "source": "API",
            "subscribed": True,
            "userGroup": "",
            "userId": None,
            "mailingLists": {},
            "optInStatus": None,
        }
        self.contacts[contact_id] = contact
        return contact

    def _apply(self, contact: dict, body: dict) -> None:
        for key, value in body.items():
            if key == "email":
                self.by_email.pop((contact["email"] or "").lower(), None)
                self.by_email[value.lower()] = contact["id"]
                contact["email"] = value
            elif key == "userId":
                self.by_user_id.pop(contact["userId"], None)
                self.by_user_id[value] = contact["id"]
                contact["userId"] = value
            elif key == "mailingLists":
                for list_id, member in value.items():
                    if member:
                        contact["mailingLists"][list_id] = True
                    else:
                        contact["mailingLists"].pop(list_id, None)
            elif value is None and key in self.properties:
                contact.pop(key, None)  # "To empty or reset the value … send a null value."
            else:
                contact[key] = value

    # -- validation

    @staticmethod
    def _object(request: SandboxRequest) -> dict:
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return body

    def _validate_contact(self, body: dict) -> None:
        """Raise BadRequest for what Loops refuses in a create or update body."""
        self._check_lengths(body)
        if "email" in body and not (isinstance(body["email"], str) and EMAIL.match(body["email"])):
            raise BadRequest("Invalid email address.")
        for key, value in body.items():
            if key in NATIVE_TYPES:
                if not isinstance(value, NATIVE_TYPES[key]):
                    raise BadRequest(f"Invalid value for `{key}`.")
            else:
                self._check_property(key, value)
        self._check_mailing_lists(body.get("mailingLists", {}))
        if "userId" in body and not body["userId"]:
            raise BadRequest("Invalid value for `userId`.")

    @staticmethod
    def _check_lengths(body: dict) -> None:
        lists = body.get("mailingLists")
        items = list(body.items()) + (list(lists.items()) if isinstance(lists, dict) else [])
        for key, value in items:
            if len(key) > MAX_LENGTH or (isinstance(value, str) and len(value) > MAX_LENGTH):
                raise BadRequest(TOO_LONG)

    def _check_property(self, key: str, value: Any) -> None:
        if key in RESERVED_NAMES:
            raise BadRequest(f"`{key}` is a reserved name and cannot be used as a property.")
        prop = self.properties.get(key)
        if prop is None:
            raise BadRequest(
                f"Contact property `{key}` does not exist. Create it in Loops before sending it."
            )
        if value is not None and not _fits(prop["type"], value):
            raise BadRequest(
                f"Invalid value for contact property `{key}` (a {prop['type']} property)."
            )

    def _check_mailing_lists(self, lists: dict) -> None:
        for list_id, member in lists.items():
            if list_id not in self.lists:
                raise BadRequest(f"Mailing list `{list_id}` does not exist.")
            if not isinstance(member, bool):
                raise BadRequest(f"Invalid value for mailing list `{list_id}` (a boolean).")

    # -- properties and lists

    def _list_properties(self, request: SandboxRequest) -> SandboxResponse:
        which = request.arg("list", "all")
        if which not in ("all", "custom"):
            raise BadRequest("`list` must be `all` or `custom`.")
        with self.lock:
            custom = list(self.properties.values())
        default = [_property(*p) for p in DEFAULT_PROPERTIES] if which == "all" else []
        return SandboxResponse(200, default + custom)

    def _create_property(self, request: SandboxRequest) -> SandboxResponse:
        body = self._object(request)
        name, kind = body.get("name"), body.get("type")
        if set(body) != {"name", "type"} or not isinstance(name, str) or not name:
            raise BadRequest("The body takes `name` and `type`.")
        if kind not in PROPERTY_TYPES:
            raise BadRequest("Invalid type: use string, number, boolean or date.")
        if name in RESERVED_NAMES:
            raise BadRequest(f"`{name}` is a reserved name.")
        with self.lock:
            if name in self.properties or name in NATIVE_TYPES:
                raise BadRequest("Property already exists.")
            self.properties[name] = _property(name, _label(name), kind)
        return SandboxResponse(200, {"success": True})

    def _list_lists(self, request: SandboxRequest) -> SandboxResponse:
        with self.lock:
            return SandboxResponse(200, [dict(item) for item in self.lists.values()])


def _fits(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    # date: a Unix timestamp in milliseconds (number or digits) or an accepted date string
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    if not isinstance(value, str):
        return False
    if value.isdigit():
        return True
    if not DATE.match(value):
        return False
    try:
        datetime.date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


# -- webhooks (shared/inbound.md part B 4.1 and 5.4; bodies as the OpenAPI examples)


def _identity(contact: dict) -> dict:
    return {"id": contact["id"], "email": contact["email"], "userId": contact["userId"]}


def _loops_notify(emulator: "LoopsEmulator", data: dict) -> list[Notification]:
    """The fan-out Loops documents: a hard bounce sends `email.hardBounced` and
    `contact.unsubscribed`; a delete `contact.deleted` and `contact.unsubscribed`; an
    unsubscribe link `contact.unsubscribed` (or the list's event)."""
    user_id = data.get("external_id")
    contact_id = emulator.by_user_id.get(user_id) if user_id else None
    if contact_id is None:
        raise BadRequest(f"Loops holds no contact with userId {user_id!r}")
    contact = emulator.contacts[contact_id]
    event_time = option_time(data, "event_time")
    base = {"eventTime": event_time, "webhookSchemaVersion": "1.0.0"}
    identity = _identity(contact)
    email = {
        "id": uuid.uuid4().hex,
        "emailMessageId": "c" + uuid.uuid4().hex[:24],
        "subject": "Subject of the email",
    }
    campaign = {"sourceType": "campaign", "campaignId": "c" + uuid.uuid4().hex[:24]}
    action = data.get("action")
    unsubscribed = {"eventName": "contact.unsubscribed", **base, "contactIdentity": identity}
    if action == "unsubscribe":
        contact["subscribed"] = False
        events = [unsubscribed]
    elif action == "unsubscribe_list":
        list_id = data.get("list_id")
        if list_id not in emulator.lists:
            raise BadRequest(f"no mailing list {list_id!r}")
        contact["mailingLists"].pop(list_id, None)
        events = [
            {
                "eventName": "contact.mailingList.unsubscribed",
                **base,
                "contactIdentity": identity,
                "mailingList": dict(emulator.lists[list_id]),
            }
        ]
    elif action == "hard_bounce":
        contact["subscribed"] = False
        emulator.suppressed.add(contact_id)  # "Loops suppresses sending email to the contact"
        bounce = {"eventName": "email.hardBounced", **base, **campaign, "email": email}
        events = [{**bounce, "contactIdentity": identity}, unsubscribed]
    elif action == "spam":
        contact["subscribed"] = False
        emulator.suppressed.add(contact_id)  # a complaint suppresses too (suppression page)
        spam = {"eventName": "email.spamReported", **base, **campaign, "email": email}
        events = [{**spam, "contactIdentity": identity}]
    elif action == "resubscribe":
        contact["subscribed"] = True
        resubscribed = {"eventName": "email.resubscribed", **base, **campaign, "email": email}
        events = [{**resubscribed, "contactIdentity": identity}]
    elif action == "delete":
        emulator.contacts.pop(contact_id)
        emulator.by_email.pop((contact["email"] or "").lower(), None)
        emulator.by_user_id.pop(contact["userId"], None)
        events = [
            {"eventName": "contact.deleted", **base, "contactIdentity": identity},
            unsubscribed,
        ]
    else:
        raise BadRequest(f"unknown Loops action {action!r}")
    if not emulator.webhook_url:
        return []  # no endpoint in Settings → Webhooks: only find/suppression show the change
    return [_signed(emulator, event, data) for event in events]


def _signed(emulator: "LoopsEmulator", event: dict, data: dict) -> Notification:
    body = json.dumps(event).encode()
    message_id = data.get("webhook_id") or f"msg_{uuid.uuid4().hex}"
    timestamp = str(option_time(data, "sent_at"))
    secret = emulator.account_credentials["signing_secret"]
    key = base64.b64decode(secret.split("_", 1)[1])
    if data.get("tamper"):
        key = b"not-the-key"
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return Notification(
        emulator.webhook_url,
        {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": f"v1,{base64.b64encode(digest.digest()).decode()}",
        },
        body,
    )
