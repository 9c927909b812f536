"""The Yespo emulator: the contact API of shared/platforms.md part B §1 (vendor OpenAPI file
shared/specs/yespo/yespo-openapi.json), strict the way the real platform is.

- HTTP Basic, any username, the API key as password; 401 with a text body otherwise.
- `POST /api/v1/contact`: only the spec's Contact keys (`groups` is read-only), channels
  required (types from the spec's enum, at most two per type), address `{region, town, address,
  postcode}`, fields `{id: int, value: str}` with ids of the sample address book, names of at
  most 40 characters. Matching: externalCustomerId (a deleted profile is restored), else the
  internal id, else the same email or phone, else a new contact. The identical body again within
  60 s answers 409. Errors are short text bodies (Yespo publishes no error schema).
- `POST /api/v1/contacts` (bulk, at most 3000): an invalid contact lands in `failedContacts`
  (the bare object when there is one) instead of failing the call; `contactFields` and
  `customFieldsIDs` decide what an update touches, and a listed field the contact does not carry
  is nulled, as the spec warns. Imports are applied at once; `GET /api/v1/importstatus/{id}`
  answers FINISHED with the dedupe mapping.
- Search (50 requests/s, TotalCount header, each hit in the spec's `BaseContact` shape),
  delete (erase=false keeps the profile restorable), segments (attach/detach by up to 500
  ids, static segments only) and the address book with the spec's object-when-one quirk.
"""

import base64
import datetime
import hashlib
import json
import re
import time
import uuid
import zoneinfo

from sync.sandbox.core import (
    BadRequest,
    Notification,
    PlatformEmulator,
    SandboxRequest,
    SandboxResponse,
    SlidingWindowLimiter,
    option_time,
)

CONTACT_KEYS = frozenset(
    {
        "firstName",
        "lastName",
        "channels",
        "address",
        "fields",
        "addressBookId",
        "id",
        "externalCustomerId",
        "contactKey",
        "languageCode",
        "timeZone",
    }
)
STRING_KEYS = (
    "firstName",
    "lastName",
    "externalCustomerId",
    "contactKey",
    "languageCode",
    "timeZone",
)
CHANNEL_TYPES = frozenset(
    {"email", "sms", "viber", "mobilepush", "webpush", "appinbox", "widget", "inapp"}
)
CHANNEL_KEYS = frozenset({"type", "value", "device", "webPushSubscription"})
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # the platform refuses malformed addresses
ADDRESS_KEYS = frozenset({"region", "town", "address", "postcode"})
MAX_NAME = 40
REPEAT_WINDOW = 60.0  # "409 Conflict: Repeated request within 1 minute"
BULK_KEYS = frozenset(
    {
        "contacts",
        "dedupeOn",
        "fieldId",
        "contactFields",
        "customFieldsIDs",
        "groupNames",
        "groupNamesExclude",
        "restoreDeleted",
        "eventKeyForNewContacts",
    }
)
# The spec's enum, plus `webpush` which the other vendor copy of the spec lists (part B).
DEDUPE_ON = frozenset(
    {"email", "sms", "push", "webpush", "email_or_sms", "id", "externalCustomerId", "fieldId"}
)
TOP_FIELDS = (
    "firstName",
    "lastName",
    "languageCode",
    "timeZone",
    "contactKey",
    "externalCustomerId",
)
LISTED_CHANNELS = ("email", "sms", "mobilepush", "webpush")
CONTACT_FIELDS = frozenset({*TOP_FIELDS, *LISTED_CHANNELS, *ADDRESS_KEYS, "ordersInfo"})
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%y", "%d.%m.%Y")  # Yespo's date field formats
NUMBER = re.compile(r"-?\d+")
DECIMAL = re.compile(r"-?\d+(\.\d+)?")
SEARCH_RATE = 50  # GET /api/v1/contacts: 50 requests/s (rate-limits page)
FIRST_ID = 23456789
ADDRESS_BOOK_ID = 7200  # the sandbox account's one catalogue
# The activity feed's filter enum and ContactActivity's keys ([Y-spec] contactActivity).
ACTIVITY_FILTERS = ("DELIVERED", "UNDELIVERED", "READ", "UNSUBSCRIBED", "CLICKED", "SPAM")
ACTIVITY_KEYS = frozenset(
    "iid externalRequestId contactId externalCustomerId email webPushToken mobPushToken sms "
    "mediaType activityStatus messageId messageInstanceId messageName messageTag "
    "activityDateTime statusDescription viewMessageLink clickEventLink statusData offset "
    "messageLanguageCode sourceEventKey sourceEventTypeKey workflowBlockId workflowId "
    "workflowInstanceId broadcastId from".split()
)


def _activity_time(value: str | None, name: str, *, end: bool) -> datetime.datetime:
    """A feed bound as the account's local time (activityDateTime has no zone)."""
    if not value:
        raise BadRequest(f"{name} is required")
    try:
        if len(value) == 10:
            day = datetime.date.fromisoformat(value)
            return datetime.datetime.combine(day, datetime.time.max if end else datetime.time.min)
        return datetime.datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        raise BadRequest(f"{name} is not a date") from None


class YespoEmulator(PlatformEmulator):
    slug = "yespo"
    account_credentials = {
        "api_key": "sandbox-yespo-api-key",
        # The password typed under Authentication in a webhook export (part B 1.1).
        "webhook_password": "sandbox-yespo-webhook-password",
    }
    account_settings = {"webhook_login": "sandbox-webhook"}
    default_rate_limit = 200  # "More than 200 requests per 1 second" -> 429 (spec)
    # The unsubscribed-list calls' success body is undocumented ("default" answer, no schema):
    # "empty" (no body) or "object" (`{}`).
    switch_defaults = {"unsubscribed_answer": "empty"}
    stored_attributes = (
        "contacts",
        "by_external",
        "deleted",
        "next_id",
        "unsubscribed_emails",
        "webhook",
        "sessions",
        "segments",
        "fields",
        "activities",
    )

    def reset(self) -> None:
        self.contacts: dict[int, dict] = {}  # internal id -> stored contact
        self.by_external: dict[str, int] = {}
        self.deleted: set[int] = set()
        self.next_id = FIRST_ID
        self.unsubscribed_emails: set[str] = set()  # addresses that get no bulk email
        self.activities: list[dict] = []  # every activity notified, oldest first, with offset
        self.webhook: dict = {}  # the "Data export → Webhook" a person saved: url, login, ...
        self.recent: dict[str, float] = {}  # fingerprint of a 200 body -> when
        self.sessions: dict[str, dict] = {}
        self.search_limiter = SlidingWindowLimiter(SEARCH_RATE)
        self.segments = {
            200400: {"id": 200400, "name": "Newsletter Subscribers", "type": "Static"},
            200401: {"id": 200401, "name": "VIP", "type": "Static"},
            200402: {"id": 200402, "name": "Opened last 30 days", "type": "Dynamic"},
        }
        self.fields = {  # id -> (group, name, type, allowed values)
            79814: ("Personal", "profession", "TEXTFIELD", None),
            79815: ("Personal", "birthDate", "DATE", None),
            79817: ("Personal", "country", "TEXTFIELD", None),
            79818: ("Personal", "gender", "COMBOBOX", ("female", "male", "other")),
            79819: ("Personal", "lifetimeValue", "NUMBER", None),
            79816: ("Loyalty", "loyaltyLevel", "TEXTFIELD", None),
        }

    # -- webhooks (shared/inbound.md part B 1.1 and 5.1)

    def register_webhook(self, data: dict) -> dict:
        """Data export → New data export → Webhook: a URL and, with Authentication on, a
        login and password. Saving checks the URL with a GET (see `notify`'s `check`)."""
        self.webhook = {
            "url": str(data.get("url") or ""),
            "login": data.get("login"),
            "password": data.get("password"),
        }
        return {"url": self.webhook["url"]}

    def notify(self, data: dict, base_url: str) -> list[Notification]:
        """One activity of a contact, as a JSON array of one object (the vendor's examples
        are arrays). `activityDateTime` is written in the account's time zone, without one
        (the `time_zone` option, default UTC)."""
        if data.get("action") == "check" and not self.webhook.get("url"):
            raise BadRequest("no webhook data export is saved")
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("login") is not None:
            password = "wrong" if data.get("tamper") else self.webhook["password"]
            pair = f"{self.webhook['login']}:{password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        if data.get("action") == "check":  # the availability check made on save
            return [Notification(self.webhook["url"], {}, b"", method="GET")]
        contact_id = self.by_external.get(str(data.get("external_id")))
        if contact_id is None or contact_id in self.deleted:
            raise BadRequest(f"Yespo holds no contact {data.get('external_id')!r}")
        contact = self.contacts[contact_id]
        media = str(data.get("media") or "email")
        values = [c["value"] for c in contact["channels"] if c["type"] == media]
        status = {
            "unsubscribe": "UNSUBSCRIBED",
            "spam": "SPAM",
            "hard_bounce": "UNDELIVERED",
            "delivered": "DELIVERED",
            "subscription_changed": "SUBSCRIPTION_CHANGED",
        }.get(data.get("action"))
        if status is None:
            raise BadRequest(f"unknown Yespo action {data.get('action')!r}")
        zone = zoneinfo.ZoneInfo(str(data.get("time_zone") or "UTC"))
        moment = datetime.datetime.fromtimestamp(option_time(data, "event_time"), zone)
        item = {
            "broadcastId": 3459207,
            "messageName": "test",
            "iid": data.get("iid") or str(uuid.uuid4()),
            "contactId": contact_id,
            "mediaType": media,
            "activityStatus": status,
            "messageId": 2489300,
            "messageInstanceId": 4702518,
            "activityDateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"),
            "viewMessageLink": "https://u51739.esclick.me/J9o6EvyAKGmB",
            "statusData": {},
        }
        if contact.get("externalCustomerId"):
            item["externalCustomerId"] = contact["externalCustomerId"]
        if values:
            item[media] = values[0]
        if status == "UNDELIVERED":
            item["hardBounce"] = True
            item["statusDescription"] = "5.1.1 (bad destination mailbox address)"
        if status == "UNSUBSCRIBED" and media == "email" and values:
            self.unsubscribed_emails.add(values[0].lower())
        self.activities.append({**item, "offset": f"{len(self.activities) + 1}-{uuid.uuid4()}"})
        if not self.webhook.get("url"):
            return []  # no data export saved: the activity is only in the activity feed
        return [Notification(self.webhook["url"], headers, json.dumps([item]).encode())]

    # -- the activity feed (GET /api/v2/contacts/activity: [Y-spec] contactActivity, [Y-wh])

    def activity(self, request: SandboxRequest) -> SandboxResponse:
        """Activities between `dateFrom` and `dateTo` (both required), optionally of one
        `activityStatus`, after the row whose `offset` is given, at most `maxrows` (default
        25000), as `ContactActivity` objects (no `hardBounce`: the schema has none). A date
        without a time covers its whole day, and a period over 3 months is refused: both
        inferences (the spec's examples are dates; the page says "up to 3 months")."""
        start = _activity_time(request.arg("dateFrom"), "dateFrom", end=False)
        end = _activity_time(request.arg("dateTo"), "dateTo", end=True)
        if end - start > datetime.timedelta(days=92):
            raise BadRequest("The period must not exceed 3 months")
        wanted = request.arg("activityStatus")
        if wanted is not None and wanted not in ACTIVITY_FILTERS:
            raise BadRequest(f"activityStatus must be one of {', '.join(ACTIVITY_FILTERS)}")
        rows = self.int_arg(request, "maxrows", 25000)
        offset = request.arg("offset")
        found = self.activities
        if offset is not None:
            after = [i for i, a in enumerate(found) if a["offset"] == offset]
            found = found[after[0] + 1 :] if after else []
        found = [
            {k: v for k, v in a.items() if k in ACTIVITY_KEYS}
            for a in found
            if (wanted is None or a["activityStatus"] == wanted)
            and start <= datetime.datetime.fromisoformat(a["activityDateTime"]) <= end
        ]
        return SandboxResponse(200, found[:rows])

    # -- the platform's answers

    def error(self, status: int, message: str) -> SandboxResponse:
        return SandboxResponse(status, message)

    def revoked_response(self) -> SandboxResponse:
        return self.error(401, "Unauthorized: the API key is revoked")

    def rate_limited_response(self, retry_after: int | None) -> SandboxResponse:
        response = self.error(429, "Too many requests: more than 200 requests per 1 second")
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def no_id_body(self):
        return {}

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            _, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except ValueError:
            password = ""
        if scheme.lower() != "basic" or password != self.account_credentials["api_key"]:
            return self.error(401, "Unauthorized")
        return None

    def route(self, request: SandboxRequest) -> SandboxResponse:
        method, path = request.method, request.path.rstrip("/")
        if method in ("POST", "PUT") and "json" not in request.headers.get("content-type", ""):
            return self.error(415, "Unsupported media type")
        with self.lock:
            for pattern, handlers in ROUTES:
                match = pattern.fullmatch(path)
                if match:
                    handler = handlers.get(method)
                    if handler is None:
                        return self.error(405, "Method not allowed")
                    return handler(self, request, *match.groups())
        return self.error(404, f"Not found: {path}")

    # -- one contact

    def add_contact(self, request: SandboxRequest) -> SandboxResponse:
        body = request.json()
        problem = self.contact_problem(body)
        if problem:
            raise BadRequest(problem)
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        now, seen = time.monotonic(), self.recent.get(fingerprint)
        if seen is not None and now - seen < REPEAT_WINDOW:
            return self.error(409, "Conflict: repeated request within 1 minute")
        contact_id = self.match(body, "email_or_sms")
        if contact_id is None:
            contact_id = self.create(body)
        else:
            self.update_single(self.contacts[contact_id], body)
            self.deleted.discard(contact_id)
        self.remember(fingerprint, now)
        return SandboxResponse(200, {"id": contact_id})

    def remember(self, fingerprint: str, now: float) -> None:
        if len(self.recent) > 50_000:
            self.recent = {k: t for k, t in self.recent.items() if now - t < REPEAT_WINDOW}
        self.recent[fingerprint] = now

    def get_contact(self, request, contact_id):
        contact = self.contacts.get(int(contact_id))
        if contact is None or int(contact_id) in self.deleted:
            return self.error(404, "Contact not found")
        return SandboxResponse(200, self.render(contact))

    def delete_contact(self, request, contact_id=None):
        erase = request.arg("erase", "false")
        if erase not in ("true", "false"):
            raise BadRequest("erase must be true or false")
        if contact_id is None:
            external_id = request.arg("externalCustomerId")
            if not external_id:
                raise BadRequest("externalCustomerId is required")
            found = self.by_external.get(external_id)
        else:
            found = int(contact_id) if int(contact_id) in self.contacts else None
        if found is None or (found in self.deleted and erase == "false"):
            return self.error(404, "Contact not found")
        if erase == "true":
            contact = self.contacts.pop(found)
            self.by_external.pop(contact.get("externalCustomerId"), None)
            self.deleted.discard(found)
        else:
            self.deleted.add(found)
        return SandboxResponse(200, None)

    def search(self, request: SandboxRequest) -> SandboxResponse:
        if self.limiter.limit and not self.search_limiter.check()[0]:
            return self.rate_limited_response(1)
        start, rows = self.int_arg(request, "startindex", 1), self.int_arg(request, "maxrows", 500)
        if start < 1 or not 1 <= rows <= 500:
            raise BadRequest("startindex starts at 1; maxrows is 1 to 500")
        found = [
            c
            for i, c in sorted(self.contacts.items())
            if i not in self.deleted and self.search_hit(c, request)
        ]
        page = [self.render_base(c) for c in found[start - 1 : start - 1 + rows]]
        return SandboxResponse(200, page, {"TotalCount": str(len(found))})

    @staticmethod
    def int_arg(request, name, default):
        try:
            return int(request.arg(name, str(default)))
        except ValueError:
            raise BadRequest(f"{name} must be an integer") from None

    @staticmethod
    def search_hit(contact: dict, request: SandboxRequest) -> bool:
        checks = {
            "externalCustomerId": contact.get("externalCustomerId"),
            "firstname": contact.get("firstName"),
            "lastname": contact.get("lastName"),
        }
        for name, value in checks.items():
            wanted = request.arg(name)
            if wanted is not None and wanted != value:
                return False
        for kind in ("email", "sms"):
            wanted = request.arg(kind)
            if wanted is not None and not any(
                c["type"] == kind and c["value"] == wanted for c in contact["channels"]
            ):
                return False
        return True

    # -- bulk

    def bulk(self, request: SandboxRequest) -> SandboxResponse:
        body = request.json()
        self.bulk_problem(body)
        failed, mapping = [], []
        for item in body["contacts"]:
            problem = self.contact_problem(item) or self.import_one(item, body, mapping)
            if problem:
                failed.append(
                    {**item, "error": problem} if isinstance(item, dict) else {"error": problem}
                )
        session = uuid.uuid4().hex
        self.sessions[session] = {
            "status": "FINISHED",
            "description": f"{len(mapping)} contacts imported",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "mapping": mapping,
        }
        answer = {"asyncSessionId": session}
        if failed:  # "If 1 element is found, failedContacts is an object" (spec)
            answer["failedContacts"] = failed[0] if len(failed) == 1 else failed
        return SandboxResponse(200, answer)

    def bulk_problem(self, body) -> None:
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object")
        unknown = sorted(set(body) - BULK_KEYS)
        if unknown:
            raise BadRequest(f"Unrecognized field(s): {', '.join(unknown)}")
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            raise BadRequest("contacts is required")
        if len(contacts) > 3000:
            raise BadRequest("At most 3000 contacts per request")
        if body.get("dedupeOn") not in DEDUPE_ON:
            raise BadRequest(f"dedupeOn must be one of {', '.join(sorted(DEDUPE_ON))}")
        if body["dedupeOn"] == "fieldId" and not _is_int(body.get("fieldId")):
            raise BadRequest("fieldId is required with dedupeOn=fieldId")
        names = body.get("contactFields", [])
        if not isinstance(names, list) or any(n not in CONTACT_FIELDS for n in names):
            allowed = ", ".join(sorted(CONTACT_FIELDS))
            raise BadRequest(f"contactFields items must be among {allowed}")
        ids = body.get("customFieldsIDs", [])
        if not isinstance(ids, list) or not all(_is_int(i) for i in ids):
            raise BadRequest("customFieldsIDs must be a list of integers")
        for key in ("groupNames", "groupNamesExclude"):
            for name in body.get(key, []):
                if not any(
                    s["name"] == name and s["type"] == "Static" for s in self.segments.values()
                ):
                    raise BadRequest(f"Static segment not found: {name}")
        if not isinstance(body.get("restoreDeleted", False), bool):
            raise BadRequest("restoreDeleted must be a boolean")

    def import_one(self, item: dict, body: dict, mapping: list) -> str | None:
        contact_id = self.match(item, body["dedupeOn"], body.get("fieldId"))
        if contact_id is None:
            contact_id = self.create(item)
        elif contact_id in self.deleted and not body.get("restoreDeleted"):
            return "The contact is deleted and restoreDeleted is false"
        else:
            self.update_bulk(self.contacts[contact_id], item, body)
            self.deleted.discard(contact_id)
        contact = self.contacts[contact_id]
        for key, action in (("groupNames", set.add), ("groupNamesExclude", set.discard)):
            for name in body.get(key, []):
                segment = next(s["id"] for s in self.segments.values() if s["name"] == name)
                action(contact["segments"], segment)
        mapping.append(
            {
                "dedupeValue": _dedupe_value(item, body["dedupeOn"], contact_id),
                "contactId": contact_id,
            }
        )
        return None

    def import_status(self, request, session):
        status = self.sessions.get(session)
        if status is None:
            return self.error(404, f"Import session not found: {session}")
        return SandboxResponse(200, status)

    # -- segments and fields

    def groups(self, request: SandboxRequest) -> SandboxResponse:
        start, rows = self.int_arg(request, "startindex", 1), self.int_arg(request, "maxrows", 500)
        if start < 1 or not 1 <= rows <= 500:
            raise BadRequest("startindex starts at 1; maxrows is 1 to 500")
        name = request.arg("name")
        found = [s for s in self.segments.values() if name is None or name in s["name"]]
        return SandboxResponse(200, found[start - 1 : start - 1 + rows])

    def unsubscribed_change(self, request: SandboxRequest, action: str):
        """`POST /api/v1/emails/unsubscribed/add|delete` with `UnsubscribeParamsDto`
        (`{"emails": [...]}`, `emails` required): the addresses, not the contacts, stop (or
        start again) getting bulk email ([Y-spec] addToUnsubscribed/deleteFromUnsubscribed,
        [Y-int]). The spec documents only a `default` answer with no schema: this answers
        200 with an empty body, or `{}` under the `unsubscribed_answer` switch ("object")."""
        body = request.json()
        if not isinstance(body, dict) or set(body) != {"emails"}:
            raise BadRequest("The body takes emails (required) only")
        emails = body["emails"]
        if not isinstance(emails, list) or not all(isinstance(e, str) and e for e in emails):
            raise BadRequest("emails is an array of strings")
        for email in emails:
            if action == "add":
                self.unsubscribed_emails.add(email.lower())
            else:
                self.unsubscribed_emails.discard(email.lower())
        return SandboxResponse(
            200, {} if self.switches["unsubscribed_answer"] == "object" else None
        )

    def membership(self, request: SandboxRequest, segment_id: str, action: str):
        segment = self.segments.get(int(segment_id))
        if segment is None:
            return self.error(404, f"Segment not found: {segment_id}")
        if segment["type"] != "Static":
            raise BadRequest("Only static segments can be changed")
        body = request.json()
        if not isinstance(body, dict) or set(body) - {"contactIds", "externalCustomerIds"}:
            raise BadRequest("The body takes contactIds and externalCustomerIds only")
        ids, externals = body.get("contactIds", []), body.get("externalCustomerIds", [])
        if not (
            isinstance(ids, list)
            and all(_is_int(i) for i in ids)
            and isinstance(externals, list)
            and all(isinstance(e, str) for e in externals)
        ):
            raise BadRequest("contactIds are integers and externalCustomerIds strings")
        if len(ids) > 500 or len(externals) > 500:
            raise BadRequest("At most 500 ids per list")
        if not ids and not externals:
            raise BadRequest("contactIds or externalCustomerIds is required")
        targets = set(ids) | {self.by_external[e] for e in externals if e in self.by_external}
        change = set.add if action == "attach" else set.discard
        for contact_id in targets:  # not `& set(self.contacts)`: a million keys per call
            if contact_id in self.contacts:
                change(self.contacts[contact_id]["segments"], segment["id"])
        return SandboxResponse(200, None)

    def address_books(self, request: SandboxRequest) -> SandboxResponse:
        groups: dict[str, list] = {}
        for field_id, (group, name, kind, allowed) in self.fields.items():
            description = {"type": kind, "required": False, "readonly": False}
            if allowed:
                description["allowedValues"] = {"possibleValues": list(allowed)}
            groups.setdefault(group, []).append(
                {"id": field_id, "name": name, "fieldKey": name, "description": description}
            )
        field_groups = [
            {
                "name": group,
                "profileKey": group.lower(),
                "fields": fields[0] if len(fields) == 1 else fields,
            }
            for group, fields in groups.items()
        ]
        # One catalogue: addressBook is then an object, not a list (spec, AddressBooks).
        book = {"addressBookId": ADDRESS_BOOK_ID, "name": "Contacts", "fieldGroups": field_groups}
        return SandboxResponse(200, {"addressBook": book})

    # -- validation and the store

    def contact_problem(self, body) -> str | None:
        """Why Yespo would refuse this Contact, or None."""
        if not isinstance(body, dict):
            return "The contact must be a JSON object"
        if "groups" in body:
            return "groups is read-only: use /api/v1/group/{id}/contacts/attach"
        unknown = sorted(set(body) - CONTACT_KEYS)
        if unknown:
            return f"Unrecognized field(s): {', '.join(unknown)}"
        for key in STRING_KEYS:
            if key in body and not isinstance(body[key], str):
                return f"{key} must be a string"
        for key in ("firstName", "lastName"):
            if len(body.get(key, "")) > MAX_NAME:
                return f"{key} is longer than {MAX_NAME} characters"
        for key in ("id", "addressBookId"):
            if key in body and not _is_int(body[key]):
                return f"{key} must be an integer"
        return (
            self.channels_problem(body.get("channels"))
            or self.address_problem(body)
            or self.fields_problem(body.get("fields", []))
        )

    @staticmethod
    def channels_problem(channels) -> str | None:
        if not isinstance(channels, list) or not channels:
            return "channels is required: at least one channel"
        counts: dict[str, int] = {}
        for channel in channels:
            if not isinstance(channel, dict) or set(channel) - CHANNEL_KEYS:
                return f"A channel takes {', '.join(sorted(CHANNEL_KEYS))} only"
            if channel.get("type") not in CHANNEL_TYPES:
                return f"Unknown channel type {channel.get('type')!r}"
            if not isinstance(channel.get("value"), str) or not channel["value"]:
                return "A channel needs a value"
            if channel["type"] == "email" and not EMAIL.fullmatch(channel["value"]):
                return f"Invalid email address {channel['value']!r}"
            counts[channel["type"]] = counts.get(channel["type"], 0) + 1
            if counts[channel["type"]] > 2:
                return f"At most two channels of type {channel['type']}"
        return None

    @staticmethod
    def address_problem(body) -> str | None:
        address = body.get("address", {})
        if not isinstance(address, dict):
            return "address must be an object"
        unknown = sorted(set(address) - ADDRESS_KEYS)
        if unknown:
            return f"Unrecognized address field(s): {', '.join(unknown)}"
        if not all(isinstance(v, str) for v in address.values()):
            return "address values must be strings"
        return None

    def fields_problem(self, fields) -> str | None:
        if not isinstance(fields, list):
            return "fields must be a list"
        for field in fields:
            if not isinstance(field, dict) or set(field) != {"id", "value"}:
                return "A field is exactly {id, value}"
            if not _is_int(field["id"]) or field["id"] not in self.fields:
                return f"Unknown additional field id {field['id']!r}"
            if not isinstance(field["value"], str):
                return f"The value of field {field['id']} must be a string"
            _, name, kind, allowed = self.fields[field["id"]]
            if not _fits(field["value"], kind, allowed):
                return f"Invalid value for {kind} field {name}: {field['value']!r}"
        return None

    def match(self, body: dict, dedupe_on: str, field_id: int | None = None) -> int | None:
        """externalCustomerId when the body has one ("found -> updated, removed -> restored,
        not found -> created"), else the dedupe key."""
        if body.get("externalCustomerId"):
            return self.by_external.get(body["externalCustomerId"])
        if dedupe_on == "id" or (dedupe_on == "email_or_sms" and "id" in body):
            return body.get("id") if body.get("id") in self.contacts else None
        kinds = {
            "email": ("email",),
            "sms": ("sms",),
            "email_or_sms": ("email", "sms"),
            "push": ("mobilepush",),
            "webpush": ("webpush",),
        }.get(dedupe_on, ())
        values = {(c["type"], c["value"]) for c in body["channels"] if c["type"] in kinds}
        wanted = next((f["value"] for f in body.get("fields", []) if f["id"] == field_id), None)
        for contact_id, contact in sorted(self.contacts.items(), reverse=True):
            if contact_id in self.deleted:
                continue
            if values & {(c["type"], c["value"]) for c in contact["channels"]}:
                return contact_id
            if wanted is not None and contact["fields"].get(field_id) == wanted:
                return contact_id
        return None

    def create(self, body: dict) -> int:
        contact_id, self.next_id = self.next_id, self.next_id + 1
        contact = {"id": contact_id, "channels": [], "address": {}, "fields": {}, "segments": set()}
        self.contacts[contact_id] = contact
        self.update_single(contact, body)
        return contact_id

    def update_single(self, contact: dict, body: dict) -> None:
        """The single call: keys sent replace, address and fields merge, channels replace."""
        for key in TOP_FIELDS:
            if key in body:
                self.set_top(contact, key, body[key])
        if "channels" in body:
            contact["channels"] = [dict(c) for c in body["channels"]]
        contact["address"].update(body.get("address", {}))
        contact["fields"].update({f["id"]: f["value"] for f in body.get("fields", [])})

    def update_bulk(self, contact: dict, item: dict, body: dict) -> None:
        """A bulk update: only the listed contactFields (all when absent) and the listed
        customFieldsIDs change; listed ones the contact does not carry become null."""
        names = body.get("contactFields") or sorted(CONTACT_FIELDS)
        for name in names:
            if name in TOP_FIELDS and name != body["dedupeOn"]:
                self.set_top(contact, name, item.get(name))
            elif name in LISTED_CHANNELS:
                kept = [c for c in contact["channels"] if c["type"] != name]
                contact["channels"] = kept + [
                    dict(c) for c in item["channels"] if c["type"] == name
                ]
            elif name in ADDRESS_KEYS:
                _set_or_drop(contact["address"], name, item.get("address", {}).get(name))
        values = {f["id"]: f["value"] for f in item.get("fields", [])}
        for field_id in body.get("customFieldsIDs", []):
            _set_or_drop(contact["fields"], field_id, values.get(field_id))

    def set_top(self, contact: dict, key: str, value) -> None:
        if key == "externalCustomerId":
            self.by_external.pop(contact.get(key), None)
            if value:
                self.by_external[value] = contact["id"]
        _set_or_drop(contact, key, value)

    def render(self, contact: dict) -> dict:
        """A contact as `GET /api/v1/contact/{id}` answers it: segments as `groups`."""
        shown = {k: v for k, v in contact.items() if k not in ("segments", "fields", "address")}
        if contact["address"]:
            shown["address"] = dict(contact["address"])
        shown["fields"] = [{"id": i, "value": v} for i, v in sorted(contact["fields"].items())]
        shown["groups"] = [dict(self.segments[s]) for s in sorted(contact["segments"])]
        return shown

    def render_base(self, contact: dict) -> dict:
        """A contact as the search answers it: the spec's `BaseContact` (firstName, lastName,
        channels, fields, addressBookId, id), without the external ID, address, language or
        segments that `GET /api/v1/contact/{id}` shows."""
        shown = {k: contact[k] for k in ("firstName", "lastName") if k in contact}
        shown["channels"] = [dict(c) for c in contact["channels"]]
        shown["fields"] = [{"id": i, "value": v} for i, v in sorted(contact["fields"].items())]
        shown["addressBookId"] = ADDRESS_BOOK_ID
        shown["id"] = contact["id"]
        return shown

    account_text_field = "79814"  # profession, a TEXTFIELD

    def contact_view(self, external_id: str) -> dict | None:
        contact_id = self.by_external.get(external_id)
        if contact_id is None or contact_id in self.deleted:
            return None
        contact = self.contacts[contact_id]
        emails = [c["value"] for c in contact["channels"] if c["type"] == "email"]
        return {
            "first_name": contact.get("firstName"),
            "last_name": contact.get("lastName"),
            "email": emails[0] if emails else None,
            "text_field": contact["fields"].get(int(self.account_text_field)),
        }

    def consent_view(self, external_id: str) -> dict | None:
        """Yespo's email opt-out is its unsubscribed-emails list, by address ([Y-int])."""
        view = self.contact_view(external_id)
        if view is None:
            return None
        email = (view["email"] or "").lower()
        return {"email_subscribed": bool(email) and email not in self.unsubscribed_emails}

    def edit_contact(self, external_id: str, changes: dict) -> bool:
        contact_id = self.by_external.get(external_id)
        if contact_id is None or contact_id in self.deleted:
            return False
        contact = self.contacts[contact_id]
        for key, attr in (("first_name", "firstName"), ("last_name", "lastName")):
            if key in changes:
                _set_or_drop(contact, attr, changes[key])
        if "email" in changes:
            others = [c for c in contact["channels"] if c["type"] != "email"]
            contact["channels"] = [{"type": "email", "value": changes["email"]}, *others]
        if "text_field" in changes:
            _set_or_drop(contact["fields"], int(self.account_text_field), changes["text_field"])
        for key, value in changes.get("raw", {}).items():
            if key == "address":
                contact["address"].update(value)
            elif key == "fields":
                contact["fields"].update({int(k): v for k, v in value.items()})
            elif key == "externalCustomerId":
                raise BadRequest("the external ID is what the contact is found by")
            else:
                contact[key] = value
        return True

    def remove_contact(self, external_id: str) -> bool:
        contact_id = self.by_external.pop(external_id, None)
        if contact_id is None:
            return False
        self.contacts.pop(contact_id, None)
        self.deleted.discard(contact_id)
        return True

    def snapshot(self) -> dict:
        ordered = sorted(self.contacts.items())
        return {
            "contacts": [self.render(c) for i, c in ordered if i not in self.deleted],
            "deleted": [self.render(c) for i, c in ordered if i in self.deleted],
            "segments": list(self.segments.values()),
            "unsubscribed_emails": sorted(self.unsubscribed_emails),
        }


def _dedupe_value(item: dict, dedupe_on: str, contact_id: int) -> str:
    if item.get("externalCustomerId"):
        return item["externalCustomerId"]
    kind = {"push": "mobilepush"}.get(dedupe_on, dedupe_on)
    values = [c["value"] for c in item["channels"] if c["type"] in kind.split("_or_")]
    return values[0] if values else str(contact_id)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _set_or_drop(target: dict, key, value) -> None:
    if value in (None, ""):
        target.pop(key, None)
    else:
        target[key] = value


def _fits(value: str, kind: str, allowed) -> bool:
    if kind == "DATE":
        for layout in DATE_FORMATS:
            try:
                datetime.datetime.strptime(value, layout)
                return True
            except ValueError:
                pass
        return False
    if kind == "NUMBER":
        return bool(NUMBER.fullmatch(value))
    if kind == "DECIMAL":
        return bool(DECIMAL.fullmatch(value))
    return not allowed or value in allowed


ROUTES = [
    (
        re.compile(r"/api/v1/contact"),
        {"POST": YespoEmulator.add_contact, "DELETE": YespoEmulator.delete_contact},
    ),
    (
        re.compile(r"/api/v1/contact/(\d+)"),
        {"GET": YespoEmulator.get_contact, "DELETE": YespoEmulator.delete_contact},
    ),
    (re.compile(r"/api/v1/contacts"), {"GET": YespoEmulator.search, "POST": YespoEmulator.bulk}),
    (re.compile(r"/api/v1/importstatus/([\w-]+)"), {"GET": YespoEmulator.import_status}),
    (re.compile(r"/api/v1/groups"), {"GET": YespoEmulator.groups}),
    (
        re.compile(r"/api/v1/group/(\d+)/contacts/(attach|detach)"),
        {"POST": YespoEmulator.membership},
    ),
    (re.compile(r"/api/v1/addressbooks"), {"GET": YespoEmulator.address_books}),
    (re.compile(r"/api/v2/contacts/activity"), {"GET": YespoEmulator.activity}),
    (
        re.compile(r"/api/v1/emails/unsubscribed/(add|delete)"),
        {"POST": YespoEmulator.unsubscribed_change},
    ),
]
