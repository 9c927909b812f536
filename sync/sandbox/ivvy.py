"""The iVvy emulator: shared/platforms.md, "Contract — iVvy" and part B §2 ([iV] =
github.com/ivvycode/apidocs).

Strict as the platform: every call is a POST to `/api/1.0/<namespace>?action=<call>` signed
with HMAC-SHA1 (the signature is recomputed here from the request as received, independently
of the connector's code), with a Content-MD5 that matches the body and an IVVY-Date (or Date)
no more than 5 minutes off (401, specificCode 23005 "Request is stale"). Errors come in iVvy's
shape `{"errorCode", "message", "specificCode", "additionalMessages"}`; 23016 (does not
validate), 23017 (required) and 24096 (unable to find contact) are iVvy's documented codes,
the authentication and routing codes below are the sandbox's own (iVvy publishes none).

`smsStatus` was removed from addOrUpdateContact and getContact effective 30 June 2026 ("fully
removed from the API schema", "Requests to addOrUpdateContact containing `smsStatus` will no
longer be supported", `announcements/contact/contact-sms-marketing.md`): it is refused as any
unknown parameter is (400, 23016) and no contact answer carries it. The switch
`legacy_sms_status` (POST /_sandbox/faults) restores the behaviour from before that date.
`getSubscriptionGroupList` is documented with no parameters, answering an array of
`{id, groupName, memberCount, tagColour}` (`contact/get-subscription-group-list.md`): any
parameter is refused.
"""

import base64
import datetime
import functools
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from sync.sandbox.core import (
    BadRequest,
    Notification,
    PlatformEmulator,
    SandboxRequest,
    SandboxResponse,
    option_time,
)

API_PREFIX = "/api/1.0/"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
STALE_AFTER = 300  # "requests over 5 minutes old are deemed invalid" (standard-headers.md)
NOT_VALID, REQUIRED, STALE, NO_CONTACT = 23016, 23017, 23005, 24096
# The sandbox's own codes (not published by iVvy).
NO_AUTH, BAD_KEY, BAD_SIGNATURE, BAD_MD5 = 23001, 23002, 23003, 23004
NO_ACTION, REVOKED = 23006, 23007
AUTH_HEADER = re.compile(r"IWS ([^:\s]+):([0-9a-fA-F]{40})")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
CONTACT_KEYS = frozenset(
    {
        "id",
        "externalId",
        "firstName",
        "lastName",
        "email",
        "phone",
        "groups",
        "customFields",
        "companies",
        "status",
        "updateIfExists",
        "externalUrls",
        "privacyConsent",
    }
)
TEXT_KEYS = ("externalId", "firstName", "lastName", "email", "phone")
EMAIL_STATUSES = frozenset({1, 2, 3, 5})  # 4 "Registering" was removed here (commit RB-3571)
SMS_STATUSES = frozenset({1, 2, 3, 4})  # only with the legacy_sms_status switch
SMS_STATUS_KEY = "smsStatus"
MAX_EXTERNAL_URLS = 3
URL_KEYS = frozenset({"ref", "url", "label"})
LIST_FILTERS = frozenset(
    {"externalId", "fromModifiedDate", "toModifiedDate", "companyId", "venueId", "venueGroupId"}
)
COMPANIES = frozenset({4, 5})


# -- Amazon SNS, as iVvy's notifications reach a subscriber (shared/inbound.md part B 2.1,
# 5.2). The sandbox signs with its own RSA key; its self-signed certificate is served on
# loopback under /ivvy/sns/, which the receiver trusts in development only.
SNS_PREFIX = "/sns/"
SNS_REGION = "ap-southeast-2"
SNS_ACCOUNT = "232528047142"  # the AWS account in iVvy's examples
TOPIC = f"arn:aws:sns:{SNS_REGION}:{SNS_ACCOUNT}:iVvy_Account_41_d7336c818a0bf60d087_NotifContacts"
NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
NOTIFICATION_RESULTS = ("events", "venues", "payments", "crm", "contacts", "companies")
STATUS_ACTIONS = {"resubscribe": 1, "unsubscribe": 2, "bounce": 3, "registering": 4}
STATUS_ACTIONS["no_marketing"] = 5
_key_lock = threading.Lock()


@functools.cache
def _signing_key():
    """(private key, certificate PEM, its file name): made once per process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    with _key_lock:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        file_name = f"SimpleNotificationService-{hashlib.md5(pem).hexdigest()}.pem"
        return key, pem, file_name


def _sns_sign(message: dict, version: str, tamper: bool) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    keys = NOTIFICATION_KEYS if message["Type"] == "Notification" else CONFIRMATION_KEYS
    text = "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()
    if tamper:
        text += b"tampered"
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = _signing_key()[0].sign(text, padding.PKCS1v15(), algorithm)
    return base64.b64encode(signature).decode()


def _sns_time(seconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class IvvyError(Exception):
    def __init__(self, status: int, message: str, specific: int | None, *extra: str):
        super().__init__(message)
        self.status, self.message, self.specific, self.extra = status, message, specific, extra


def _not_valid(key: str, why: str) -> IvvyError:
    return IvvyError(400, f"'{key}' does not validate", NOT_VALID, why)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class IvvyEmulator(PlatformEmulator):
    slug = "ivvy"
    account_credentials = {"api_key": "sandbox-ivvy-key", "api_secret": "sandbox-ivvy-secret"}
    default_rate_limit = 5  # not published; part A's default
    # `not_primary`: the key is not the primary user's, so subscribeToNotifications answers 403.
    switch_defaults = {"legacy_sms_status": False, "not_primary": False}
    stored_attributes = (
        "contacts",
        "by_external_id",
        "next_id",
        "field_definitions",
        "groups",
        "subscription",
    )

    def reset(self) -> None:
        self.contacts: dict[int, dict] = {}
        self.by_external_id: dict[str, set[int]] = {}
        self.next_id = 33884  # the id in iVvy's own example
        self.field_definitions = [
            _definition(33443, 0, "Newsletter opt-in"),
            _definition(33444, 5, "Birth date"),
            _definition(33445, 2, "Loyalty level", ["Silver", "Gold"]),
            _definition(33446, 8, "Visits"),
            _definition(33447, 7, "Terms (read only)"),
        ]
        self.fields = {d["fieldId"]: d for d in self.field_definitions}
        self.groups = {
            10: {"id": 10, "groupName": "Newsletter", "memberCount": 0, "tagColour": "#1e88e5"},
            11: {"id": 11, "groupName": "VIP guests", "memberCount": 0, "tagColour": "#f4511e"},
            12: {"id": 12, "groupName": "Events", "memberCount": 0, "tagColour": "#43a047"},
        }
        self.calls = {
            ("test", "ping"): self._ping,
            ("contact", "addOrUpdateContact"): self._add_or_update,
            ("contact", "getContact"): self._get_contact,
            ("contact", "getContactList"): self._get_contact_list,
            ("contact", "getCustomFieldDefinition"): self._field_definitions,
            ("contact", "getSubscriptionGroupList"): self._group_list,
            ("account", "subscribeToNotifications"): self._subscribe,
        }
        self.subscription: dict = {}  # contactsEndpoint: url, topic, token, confirmed

    def after_restore(self) -> None:
        """`fields` indexes `field_definitions` (the same dicts): built again, not stored."""
        self.fields = {d["fieldId"]: d for d in self.field_definitions}

    # -- error shapes

    def error(
        self, status: int, message: str, specific: int | None = None, extra: tuple[str, ...] = ()
    ) -> SandboxResponse:
        if specific is None and status == 400:
            specific = NOT_VALID  # a body the core refused (not JSON)
        body = {
            "errorCode": status,
            "message": message,
            "specificCode": specific,
            "additionalMessages": list(extra),
        }
        return SandboxResponse(status, body)

    def _refuse(self, err: IvvyError) -> SandboxResponse:
        return self.error(err.status, err.message, err.specific, err.extra)

    def revoked_response(self) -> SandboxResponse:
        return self.error(401, "Key revoked", REVOKED)

    # -- authentication

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        if request.path.startswith(SNS_PREFIX):
            return None  # Amazon SNS's own URLs (certificate, SubscribeURL): no iVvy key
        try:
            self._check_signature(request)
        except IvvyError as err:
            return self._refuse(err)
        return None

    def _check_signature(self, request: SandboxRequest) -> None:
        headers = request.headers
        match = AUTH_HEADER.fullmatch(headers.get("x-api-authorization", "").strip())
        if match is None:
            raise IvvyError(
                401,
                "Missing or malformed X-Api-Authorization",
                NO_AUTH,
                "Expected 'IWS {key}:{signature}'",
            )
        key, sent = match.groups()
        if not hmac.compare_digest(key, self.account_credentials["api_key"]):
            raise IvvyError(401, "Invalid API key", BAD_KEY)
        date = self._check_date(headers)
        md5 = hashlib.md5(request.body).hexdigest()
        if headers.get("content-md5", "").lower() != md5:
            raise IvvyError(401, "Content-MD5 does not match the body", BAD_MD5)
        if "x-api-version" not in headers:
            raise IvvyError(401, "'X-Api-Version' is required", REQUIRED)
        ivvy = sorted(
            (name.replace("-", "").replace("_", ""), value)
            for name, value in headers.items()
            if name.startswith("ivvy")
        )
        text = (
            f"{request.method}{md5}{headers.get('content-type', '')}{date}"
            f"{request.raw_path}{headers['x-api-version']}"
            + "&".join(f"{name}={value}" for name, value in ivvy)
        ).lower()
        expected = hmac.new(
            self.account_credentials["api_secret"].encode(), text.encode(), hashlib.sha1
        ).hexdigest()
        if not hmac.compare_digest(sent.lower(), expected):
            raise IvvyError(401, "Signature does not match", BAD_SIGNATURE)

    @staticmethod
    def _check_date(headers: dict[str, str]) -> str:
        """The `Date` header's part of the signed string ("" with IVVY-Date); raises when the
        request is undated, misdated or stale."""
        try:
            if "ivvy-date" in headers:
                sent = datetime.datetime.strptime(headers["ivvy-date"], DATE_FORMAT)
                sent, signed = sent.replace(tzinfo=datetime.UTC), ""
            elif "date" in headers:
                sent, signed = parsedate_to_datetime(headers["date"]), headers["date"]
            else:
                raise IvvyError(401, "'IVVY-Date' or 'Date' is required", REQUIRED)
        except (TypeError, ValueError):
            raise IvvyError(
                401,
                "'IVVY-Date' does not validate",
                NOT_VALID,
                "Expected yyyy-mm-dd HH:mm:ss (UTC)",
            ) from None
        if sent.tzinfo is None or abs(time.time() - sent.timestamp()) > STALE_AFTER:
            raise IvvyError(401, "Request is stale", STALE)
        return signed

    # -- routing

    def route(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.startswith(SNS_PREFIX):
            return self._sns(request)
        namespace = request.path.removeprefix(API_PREFIX)
        call = self.calls.get((namespace, request.arg("action", "")))
        if not request.path.startswith(API_PREFIX) or call is None:
            return self.error(
                404, f"Unknown action {request.path}?action={request.arg('action')}", NO_ACTION
            )
        if request.method != "POST":
            return self.error(405, "Method not allowed: every call is a POST", None)
        try:
            params = request.json() if request.body else {}
            if not isinstance(params, dict):
                raise _not_valid("body", "The body must be a JSON object")
            with self.lock:
                return SandboxResponse(200, call(params))
        except BadRequest as err:
            return self.error(400, str(err), NOT_VALID)
        except IvvyError as err:
            return self._refuse(err)

    # -- calls

    # -- notifications (notifications/notifications.md, contacts-endpoint.md)

    def _subscribe(self, params: dict) -> dict:
        """subscribeToNotifications: only the primary user's key (the `not_primary` switch
        answers 403 as iVvy does to other keys). Only `contactsEndpoint` is emulated."""
        if self.switches["not_primary"]:
            raise IvvyError(403, "Not Allowed", None)
        unknown = set(params) - {"contactsEndpoint"}
        if unknown:
            raise _not_valid(sorted(unknown)[0], "Endpoint not emulated")
        url = params.get("contactsEndpoint")
        if not isinstance(url, str) or not url:
            raise IvvyError(400, "'contactsEndpoint' is required", REQUIRED)
        self.subscription = {"url": url, "topic": TOPIC, "token": uuid.uuid4().hex * 2}
        self.subscription["confirmed"] = False
        answer = {}
        for name in NOTIFICATION_RESULTS:
            answer[f"{name}Success"] = name == "contacts"
            answer[f"{name}TopicId"] = TOPIC if name == "contacts" else None
        return answer

    def _sns(self, request: SandboxRequest) -> SandboxResponse:
        _, pem, file_name = _signing_key()
        if request.method == "GET" and request.path == SNS_PREFIX + file_name:
            return SandboxResponse(200, pem.decode(), {"Content-Type": "application/x-pem-file"})
        if request.method == "GET" and request.arg("Action") == "ConfirmSubscription":
            with self.lock:
                sub = self.subscription
                if not sub or request.arg("Token") != sub["token"]:
                    return SandboxResponse(400, "<Error><Code>InvalidParameter</Code></Error>")
                sub["confirmed"] = True
            arn = f"{TOPIC}:{uuid.uuid4()}"
            return SandboxResponse(
                200, f"<ConfirmSubscriptionResponse>{arn}</ConfirmSubscriptionResponse>"
            )
        return SandboxResponse(404, "<Error><Code>NotFound</Code></Error>")

    def notify(self, data: dict, base_url: str) -> list[Notification]:
        """SNS deliveries to the subscribed contactsEndpoint: `subscription_confirmation`
        (sent after subscribing; SNS sends nothing else until its SubscribeURL is visited),
        then a `ContactUpdated` whose `status` changed (unsubscribe 2, bounce 3,
        registering 4, no_marketing 5, resubscribe 1) or `ContactDeleted` (delete, as a
        person does in iVvy: the API has no delete). Options: `signature_version` ("1" or
        "2"), `topic` (another TopicArn), `tamper`, `event_time`, `sent_at`."""
        sub = self.subscription
        action = data.get("action")
        if action != "subscription_confirmation" and not (sub and sub.get("confirmed")):
            # The change happens in iVvy whether or not anyone listens: polling sees it
            # (getContactList by modifiedDate, getContact's status or 24096). SNS delivers
            # nothing to an endpoint not subscribed, or not confirmed yet.
            self._contact_message(data)
            return []
        if not sub:
            raise BadRequest("nothing is subscribed to notifications")
        sns_base = f"{base_url}/ivvy{SNS_PREFIX}"
        message: dict[str, Any]
        if action == "subscription_confirmation":
            query = urlencode(
                {"Action": "ConfirmSubscription", "TopicArn": sub["topic"], "Token": sub["token"]}
            )
            message = {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": sub["token"],
                "TopicArn": data.get("topic") or sub["topic"],
                "Message": f"You have chosen to subscribe to the topic {sub['topic']}.\nTo "
                "confirm the subscription, visit the SubscribeURL included in this message.",
                "SubscribeURL": f"{sns_base}?{query}",
            }
        else:
            message = {
                "Type": "Notification",
                "MessageId": data.get("message_id") or str(uuid.uuid4()),
                "TopicArn": data.get("topic") or sub["topic"],
                "Message": json.dumps(self._contact_message(data)),
            }
            message["UnsubscribeURL"] = f"{sns_base}?Action=Unsubscribe&SubscriptionArn={TOPIC}:x"
        message["Timestamp"] = _sns_time(option_time(data, "sent_at"))
        version = str(data.get("signature_version") or "1")
        message["SignatureVersion"] = version
        message["Signature"] = _sns_sign(message, version, bool(data.get("tamper")))
        message["SigningCertURL"] = sns_base + _signing_key()[2]
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": message["Type"],
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": message["TopicArn"],
        }
        if message["Type"] == "Notification":
            headers["x-amz-sns-subscription-arn"] = f"{TOPIC}:x"
        return [Notification(sub["url"], headers, json.dumps(message).encode())]

    def _contact_message(self, data: dict) -> dict:
        """iVvy's inner message: Body is itself a JSON string (contacts-endpoint.md)."""
        ids = sorted(self.by_external_id.get(str(data.get("external_id")), ()))
        if not ids:
            raise BadRequest(f"iVvy holds no contact {data.get('external_id')!r}")
        contact = self.contacts[ids[0]]
        action = data.get("action")
        if action == "delete":
            subject, body = "ContactDeleted", {"contactId": contact["id"]}
            del self.contacts[contact["id"]]
            self.by_external_id.get(contact.get("externalId"), set()).discard(contact["id"])
        elif action in STATUS_ACTIONS:
            previous = {"status": contact["status"]}
            contact["status"] = STATUS_ACTIONS[action]
            contact["modifiedDate"] = _now()  # an edit, as any other (getContactList filter)
            subject = "ContactUpdated"
            body = {"data": self._shown(contact), "previousData": previous}
        else:
            raise BadRequest(f"unknown iVvy action {action!r}")
        return {
            "TxnId": uuid.uuid4().hex,
            "Region": "sandbox",
            "Timestamp": option_time(data, "event_time"),
            "AccountId": "41",
            "Subject": subject,
            "Body": json.dumps(body),
            "SourceType": 0,
            "SourceInfo": None,
            # iVvy's own signature is undocumented: an opaque value nobody may rely on.
            "Signature": base64.b64encode(uuid.uuid4().bytes).decode(),
            "SigningPublicKeyPath": "/accounts/41/1537854341/notifcert.txt",
        }

    def _ping(self, params: dict) -> dict:
        return {"success": True, "timestamp": _now()}

    def _field_definitions(self, params: dict) -> list:
        return [dict(d) for d in self.field_definitions]

    def _group_list(self, params: dict) -> list:
        if params:
            raise _not_valid(sorted(params)[0], "Unknown parameter")
        groups = []
        for group in self.groups.values():
            members = sum(
                1
                for c in self.contacts.values()
                if any(g["groupId"] == group["id"] for g in c["groups"])
            )
            groups.append({**group, "memberCount": members})
        return groups

    def _get_contact(self, params: dict) -> dict:
        contact_id = params.get("id")
        if contact_id is None:
            raise IvvyError(400, "'id' is required", REQUIRED)
        if not _whole(contact_id):
            raise _not_valid("id", "Value must be a whole number")
        return self._shown(self._existing(contact_id))

    def _get_contact_list(self, params: dict) -> dict:
        unknown = set(params) - {"perPage", "start", "filter"}
        if unknown:
            raise _not_valid(sorted(unknown)[0], "Unknown parameter")
        start, per_page = self._page(params)
        filters = params.get("filter") or {}
        if not isinstance(filters, dict):
            raise _not_valid("filter", "Value must be an object")
        for key in filters:
            if key not in LIST_FILTERS:
                raise _not_valid(f"filter.{key}", "Unknown filter")
        if "externalId" in filters:  # the lookup every first push makes: no scan
            ids = sorted(self.by_external_id.get(filters["externalId"], ()))
            found = [self.contacts[i] for i in ids]
        else:
            found = list(self.contacts.values())
        for key, value in filters.items():
            found = [c for c in found if _passes(c, key, value)]
        return _collection(found, start, per_page, convert=self._listed)

    @staticmethod
    def _page(params: dict) -> tuple[int, int]:
        for key in ("perPage", "start"):
            if key not in params:
                raise IvvyError(400, f"'{key}' is required", REQUIRED)
            if not (_whole(params[key]) and params[key] >= 0):
                raise _not_valid(key, "Value must be a whole number")
        if not 1 <= params["perPage"] <= 100:
            raise _not_valid("perPage", "Value must be between 1 and 100")
        return params["start"], params["perPage"]

    # -- addOrUpdateContact

    def _add_or_update(self, params: dict) -> dict:
        self._validate_contact(params)
        contact_id = params.get("id")
        if contact_id is not None:
            contact = self._existing(contact_id)
        elif params.get("updateIfExists"):
            contact = self._match_by_name_and_email(params) or self._new_contact()
        else:
            contact = self._new_contact()
        old_external_id = contact["externalId"]
        self._apply(contact, params)
        self.contacts[contact["id"]] = contact
        self.by_external_id.get(old_external_id, set()).discard(contact["id"])
        self.by_external_id.setdefault(contact["externalId"], set()).add(contact["id"])
        return {"success": True, "id": contact["id"]}

    def _shown(self, contact: dict) -> dict:
        """A contact as getContact, getContactList and the store answer it."""
        shown = _copy(contact)
        if not self.switches["legacy_sms_status"]:
            shown.pop(SMS_STATUS_KEY, None)
        return shown

    def _listed(self, contact: dict) -> dict:
        """A getContactList row: its "Returns" table lists no `status` or `smsStatus`
        (get-contact-list.md; inbound.md 5.2), which only getContact answers."""
        shown = self._shown(contact)
        shown.pop("status", None)
        shown.pop(SMS_STATUS_KEY, None)
        return shown

    def _validate_contact(self, params: dict) -> None:
        keys = (
            CONTACT_KEYS | {SMS_STATUS_KEY} if self.switches["legacy_sms_status"] else CONTACT_KEYS
        )
        unknown = sorted(set(params) - keys)
        if unknown:
            raise _not_valid(unknown[0], "Unknown parameter")
        if "id" in params and not _whole(params["id"]):
            raise _not_valid("id", "Value must be a whole number")
        for key in TEXT_KEYS:
            if key in params and not isinstance(params[key], str):
                raise _not_valid(key, "Value must be a string")
        if params.get("id") is None:
            for key in ("firstName", "lastName", "email"):
                if not params.get(key):
                    raise IvvyError(400, f"'{key}' is required", REQUIRED)
        if "email" in params and not EMAIL.fullmatch(params["email"]):
            raise _not_valid("email", "Value must be a valid email address")
        for key, allowed in (("status", EMAIL_STATUSES), (SMS_STATUS_KEY, SMS_STATUSES)):
            if key in params and not (_whole(params[key]) and params[key] in allowed):
                raise _not_valid(key, f"Value must be one of {sorted(allowed)}")
        for key in ("updateIfExists", "privacyConsent"):
            if key in params and not isinstance(params[key], bool):
                raise _not_valid(key, "Value must be a boolean")
        self._validate_urls(params.get("externalUrls", []))
        self._validate_fields(params.get("customFields", []))
        self._validate_ids(params.get("groups", []), "groups", "groupId", self.groups)
        companies = params.get("companies", [])
        if not isinstance(companies, list) or not all(c in COMPANIES for c in companies):
            raise _not_valid("companies", "Each value must be the id of an existing company")

    @staticmethod
    def _validate_urls(urls: Any) -> None:
        if urls is None:
            return  # null removes every external URL
        if not isinstance(urls, list):
            raise _not_valid("externalUrls", "Value must be an array")
        if len(urls) > MAX_EXTERNAL_URLS:
            raise _not_valid("externalUrls", "A maximum of 3 objects allowed")
        for url in urls:
            if not isinstance(url, dict) or set(url) - URL_KEYS:
                raise _not_valid("externalUrls", "Each object takes ref, url and label")
            if not isinstance(url.get("ref"), str) or not url["ref"]:
                raise IvvyError(400, "'externalUrls.ref' is required", REQUIRED)
            link = url.get("url")
            if link is not None and not (isinstance(link, str) and link.startswith("https://")):
                raise _not_valid("externalUrls.url", "The url must use the https scheme")
            if not isinstance(url.get("label", ""), str):
                raise _not_valid("externalUrls.label", "Value must be a string")

    def _validate_fields(self, fields: Any) -> None:
        if not isinstance(fields, list):
            raise _not_valid("customFields", "Value must be an array")
        for field in fields:
            if not isinstance(field, dict) or set(field) != {"fieldId", "value"}:
                raise _not_valid("customFields", "Each object takes fieldId and value")
            definition = self.fields.get(field["fieldId"]) if _whole(field["fieldId"]) else None
            if definition is None:
                raise _not_valid("customFields.fieldId", f"No custom field {field['fieldId']!r}")
            problem = _field_problem(definition, field["value"])
            if problem:
                raise _not_valid(f"customFields.{field['fieldId']}", problem)

    @staticmethod
    def _validate_ids(items: Any, key: str, id_key: str, known: dict) -> None:
        if not isinstance(items, list):
            raise _not_valid(key, "Value must be an array")
        for item in items:
            if not isinstance(item, dict) or set(item) != {id_key}:
                raise _not_valid(key, f"Each object takes {id_key}")
            if not _whole(item[id_key]) or item[id_key] not in known:
                raise _not_valid(f"{key}.{id_key}", f"No such {id_key} {item[id_key]!r}")

    def _existing(self, contact_id: int) -> dict:
        contact = self.contacts.get(contact_id)
        if contact is None:
            raise IvvyError(404, "Unable to find contact", NO_CONTACT)
        return contact

    def _match_by_name_and_email(self, params: dict) -> dict | None:
        for contact in self.contacts.values():
            if (contact["firstName"], contact["lastName"]) == (
                params["firstName"],
                params["lastName"],
            ) and contact["email"].lower() == params["email"].lower():
                return contact
        return None

    def _new_contact(self) -> dict:
        contact_id, self.next_id = self.next_id, self.next_id + 1
        return {
            "id": contact_id,
            "firstName": "",
            "lastName": "",
            "email": "",
            "phone": "",
            "externalId": "",
            "status": 1,
            SMS_STATUS_KEY: 4,  # held only for the legacy_sms_status switch
            "privacyConsent": False,
            "privacyConsentData": None,
            "customFields": [],
            "groups": [],
            "companies": [],
            "externalUrls": [],
            "modifiedDate": _now(),
        }

    def _apply(self, contact: dict, params: dict) -> None:
        if "externalUrls" in params:  # merged first: it may still refuse the call
            urls = _merge_urls(contact["externalUrls"], params["externalUrls"])
            contact["externalUrls"] = urls
        for key in (*TEXT_KEYS, "status", SMS_STATUS_KEY, "companies"):
            if key in params:
                contact[key] = params[key]
        if "privacyConsent" in params:
            if params["privacyConsent"] and not contact["privacyConsent"]:
                contact["privacyConsentData"] = {"source": 5, "dateTime": _now()}  # 5 = API
            contact["privacyConsent"] = params["privacyConsent"]
        if "groups" in params:  # "will override any groups currently set"
            contact["groups"] = [{"groupId": g["groupId"]} for g in params["groups"]]
        for field in params.get("customFields", []):
            contact["customFields"] = [
                f for f in contact["customFields"] if f["fieldId"] != field["fieldId"]
            ] + [
                {
                    "fieldId": field["fieldId"],
                    "displayName": self.fields[field["fieldId"]]["displayName"],
                    "value": field["value"],
                }
            ]
        contact["modifiedDate"] = _now()

    account_text_field = "33443"

    def contact_view(self, external_id: str) -> dict | None:
        ids = sorted(self.by_external_id.get(external_id, ()))
        if not ids:
            return None
        contact = self.contacts[ids[0]]
        values = {str(f["fieldId"]): f["value"] for f in contact["customFields"]}
        return {
            "first_name": contact["firstName"],
            "last_name": contact["lastName"],
            "email": contact["email"],
            "text_field": values.get(self.account_text_field),
        }

    def consent_view(self, external_id: str) -> dict | None:
        """iVvy's email `status`: 1 subscribed; 2 unsubscribed, 3 bounced, 5 no marketing, 4
        registering (not an opt-in) are not (contact/add-or-update-contact.md)."""
        ids = sorted(self.by_external_id.get(external_id, ()))
        if not ids:
            return None
        return {"email_subscribed": self.contacts[ids[0]]["status"] == 1}

    def edit_contact(self, external_id: str, changes: dict) -> bool:
        ids = sorted(self.by_external_id.get(external_id, ()))
        if not ids:
            return False
        contact = self.contacts[ids[0]]
        for key, attr in (
            ("first_name", "firstName"),
            ("last_name", "lastName"),
            ("email", "email"),
        ):
            if key in changes:
                contact[attr] = changes[key]
        if "text_field" in changes:
            field_id = int(self.account_text_field)
            kept = [f for f in contact["customFields"] if f["fieldId"] != field_id]
            contact["customFields"] = kept + [
                {
                    "fieldId": field_id,
                    "displayName": self.fields[field_id]["displayName"],
                    "value": changes["text_field"],
                }
            ]
        for key, value in changes.get("raw", {}).items():
            if key in ("id", "externalId"):
                raise BadRequest(f"{key} is what the contact is found by")
            contact[key] = value
        contact["modifiedDate"] = _now()
        return True

    def remove_contact(self, external_id: str) -> bool:
        ids = self.by_external_id.pop(external_id, set())
        for contact_id in ids:
            self.contacts.pop(contact_id, None)
        return bool(ids)

    def snapshot(self) -> Any:
        return {
            "contacts": [self._shown(self.contacts[i]) for i in sorted(self.contacts)],
            "customFields": [dict(d) for d in self.field_definitions],
            "groups": [dict(g) for g in self.groups.values()],
        }


def _definition(field_id: int, kind: int, name: str, choices: list | None = None) -> dict:
    """One getCustomFieldDefinition entry (get-custom-field-definition.md)."""
    return {
        "fieldId": field_id,
        "fieldType": kind,
        "displayName": name,
        "isRequired": False,
        "sortOrder": field_id - 33442,
        "selectValues": choices or [],
        "fileTypes": [],
    }


def _field_problem(definition: dict, value: Any) -> str:
    """Why a value does not fit its custom field's type ("" when it fits)."""
    if not isinstance(value, str):
        return "Value must be a string"
    kind = definition["fieldType"]
    if kind == 7:
        return "Values cannot be set for a static text field"
    if kind == 8 and not value.lstrip("-").isdigit():
        return "Value must be a whole number"
    if kind == 2 and value not in definition["selectValues"]:
        return f"Value must be one of {definition['selectValues']}"
    if kind == 5:
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            return "Value must be a date (yyyy-mm-dd)"
    return ""


def _merge_urls(current: list[dict], sent: list[dict] | None) -> list[dict]:
    """null removes every URL; otherwise each ref is set, or removed when its url is null."""
    if sent is None:
        return []
    merged = {u["ref"]: u for u in current}
    for url in sent:
        if url.get("url") is None:
            merged.pop(url["ref"], None)
        else:
            merged[url["ref"]] = {
                "ref": url["ref"],
                "url": url["url"],
                "label": url.get("label", ""),
            }
    if len(merged) > MAX_EXTERNAL_URLS:
        raise _not_valid("externalUrls", "A maximum of 3 objects allowed")
    return list(merged.values())


def _passes(contact: dict, key: str, value: Any) -> bool:
    if key == "externalId":
        return contact["externalId"] == value
    if key == "fromModifiedDate":
        return contact["modifiedDate"] >= str(value)
    if key == "toModifiedDate":
        return contact["modifiedDate"] <= str(value)
    if key == "companyId":
        return value in contact["companies"]
    return True  # venue filters: the sandbox has no venues


def _collection(items: list, start: int, per_page: int, *, convert=dict) -> dict:
    """iVvy's collection shape (collections.md); only the page's items are converted."""
    page = [convert(item) for item in items[start : start + per_page]]
    return {
        "meta": {
            "totalResults": len(items),
            "start": start,
            "perPage": per_page,
            "count": len(page),
        },
        "results": page,
    }


def _copy(contact: dict) -> dict:
    return {
        **contact,
        "customFields": [dict(f) for f in contact["customFields"]],
        "groups": [dict(g) for g in contact["groups"]],
        "externalUrls": [dict(u) for u in contact["externalUrls"]],
        "companies": list(contact["companies"]),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime(DATE_FORMAT)
