"""iVvy connector: one contact per `POST api/1.0/contact?action=addOrUpdateContact`.

Contract: shared/platforms.md, "Contract — iVvy", part A ("Matching", "Status and consent
mapping", "Failures") and part B §2, whose source [iV] is github.com/ivvycode/apidocs (the
GitBook source of developer.ivvy.com): `contact/add-or-update-contact.md`,
`getting-started/creating-the-request/signing-the-request.md`,
`getting-started/interpreting-the-response/exceptions.md`.

- Transport: RPC, every call a signed JSON POST to `api/1.0/<namespace>?action=<call>`.
- Matching: a stored remote id goes out as `id`. Without one, `getContactList` with
  `filter.externalId` finds the contact; its `id` is sent, else the contact is created.
  `updateIfExists` (iVvy's own match on name + email) only when the destination enables it.
- `groups` replaces every subscription group of the contact on iVvy, so it is sent only when
  the destination maps at least one of our groups or mailing lists, and then in full.
- Standard fields without a native slot (birth date, gender, language, time zone, address,
  tags, user group, coordinates, GDPR consent, consent date and IP) reach iVvy only as the
  custom fields the destination maps them to; unmapped ones are not sent. iVvy has one email
  and one phone: extra channel rows (Yespo's) are not sent.
- Clearing (shared/inbound.md 2.4): an external URL removed here goes out as `{"ref", "url":
  null}` ("the external url record will be removed based on the provided reference key"), and
  when the contact has no URL left and we do not know which refs iVvy holds from us (a state
  from before we kept them) as `externalUrls: null` ("it will remove all externalUrls").
  Groups: the vendor's page documents that `groups` "will override any groups currently set",
  so the full list of mapped groups the contact is on is sent and a group left here is left on
  iVvy in the same call; `removeContactsFromSubscriptionGroup` (named in issue #13) is not used:
  the `groups` replace is the documented rule on this very call, and one call cannot half-fail.
  Clearing a scalar (first or last name, phone, a custom field value) is not documented: an
  empty value is not sent, the old value stays on iVvy, and the destination page and the
  attempt log say so (`uncleared_fields`).
- Write rules: a field "on create only" is sent while iVvy holds no version of the contact
  from us, "never" not at all; iVvy still needs a first name, last name and email to create.
- SMS status: not sent. iVvy removed `smsStatus` from addOrUpdateContact and getContact
  effective 30 June 2026 ("Requests to addOrUpdateContact containing `smsStatus` will no longer
  be supported", `announcements/contact/contact-sms-marketing.md`); our SMS status stays for the
  other platforms, and `notes` tells the destination page that iVvy holds none.
- Refused before any request: no first name, last name or email when creating, more than three
  external URLs or one that is not https, a status iVvy has no code for, a mapping to a
  field or group id that is not a whole number. Nothing is truncated.
"""

import base64
import binascii
import dataclasses
import datetime
import decimal
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

import sync.connectors.inbound as inbound
import sync.connectors.readback as readback
from sync.connectors.base import (
    AuthenticationError,
    BaseConnector,
    Built,
    EraseResult,
    PermanentError,
    PushResult,
    RetryableError,
    WritePlan,
)
from sync.connectors.declarations import Credential, Setting
from sync.connectors.inbound import EventKind, InboundRequest, PlatformEvent, Verified
from sync.connectors.polling import PollResult, PollSubject, overlap_start
from sync.connectors.probe import Maybe, ProbeCall
from sync.connectors.records import (
    STANDARD_FIELDS,
    ContactRecord,
    ExternalUrlRecord,
    RemoteOption,
    RemoteState,
)

API_VERSION = "1.0"  # the only version iVvy serves (method-uri-header.md)
CONTENT_TYPE = "application/json"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # "yyyy-mm-dd HH:mm:ss", always UTC (timestamp-format.md)
CONTACT = f"api/{API_VERSION}/contact?action="
PING = f"api/{API_VERSION}/test?action=ping"
EMAIL_STATUS = {"subscribed": 1, "unsubscribed": 2, "bounced": 3, "no_marketing": 5}
# What an erasure can blank on iVvy, which has no delete-contact call (add-or-update-contact.md):
# `externalUrls: null` "will remove all externalUrls from the contact"; `groups` "will override
# any groups currently set", so an empty list leaves none; the email status "No Marketing" and
# privacyConsent false stop marketing until the contact is erased by hand. Clearing a name,
# email, phone or custom value is not documented: those stay, and the instruction says so.
ERASE_BODY = {"externalUrls": None, "groups": [], "status": EMAIL_STATUS["no_marketing"]}
ERASE_BLANKED = (
    "external URLs (externalUrls: null)",
    "subscription groups (groups: [])",
    "email status set to No Marketing",
    "privacy consent withdrawn",
)
MAX_EXTERNAL_URLS = 3  # "a maximum of 3 objects allowed" (add-or-update-contact.md)
# errorCode 462 "Session Expired" and 463 "Key Revoked" (exceptions.md) are credential
# failures that may arrive as HTTP statuses of their own: they pause the destination as 401 does.
CREDENTIAL_STATUSES = frozenset({462, 463})
# getCustomFieldDefinition `fieldType` codes (get-custom-field-definition.md)
FIELD_TYPES = {
    0: "small text",
    1: "large text",
    2: "single select",
    3: "multiple select",
    4: "address",
    5: "date",
    6: "file",
    7: "static text",
    8: "whole number",
}
NO_CONTACT = 24096  # specificCode "Unable to find contact" (get-contact.md)
POLL_PAGE = 100  # "most requests have a cap" on perPage (pagination.md): the sandbox's is 100
STATIC_TEXT = 7  # "Values cannot be set for this type": not a mapping target
NATIVE_STANDARD_FIELDS = frozenset({"phone", "email_status", "privacy_consent"})
# iVvy holds no SMS status since 30 June 2026 (contact-sms-marketing.md): nothing to map it to.
NOT_HELD_STANDARD_FIELDS = frozenset({"sms_status"})
MAPPABLE_STANDARD_FIELDS = tuple(
    name
    for name in STANDARD_FIELDS
    if name not in NATIVE_STANDARD_FIELDS | NOT_HELD_STANDARD_FIELDS
)


def string_to_sign(
    *,
    method: str,
    content_md5: str,
    content_type: str,
    request_uri: str,
    ivvy_headers: Mapping[str, str],
    date: str = "",
    api_version: str = API_VERSION,
) -> str:
    """The lowercased string iVvy signs (signing-the-request.md): method, body MD5, content
    type, `Date` ("" when IVVY-Date is used), request URI with its query, API version, then the
    IVVY-* headers as `name=value` (name without '-' and '_'), alphabetical, '&'-joined."""
    signed = sorted(
        (name.replace("-", "").replace("_", "").lower(), value)
        for name, value in ivvy_headers.items()
        if name.lower().startswith("ivvy")
    )
    headers = "&".join(f"{name}={value}" for name, value in signed)
    text = f"{method}{content_md5}{content_type}{date}{request_uri}{api_version}{headers}"
    return text.lower()


def signature(secret: str, text: str) -> str:
    """Hex HMAC-SHA1 of the string to sign, keyed by the API secret."""
    return hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()


# ------------------------------------------------------------------ notifications (SNS)
# shared/inbound.md part A "Authenticity" and part B 2.1 / 5.2: iVvy's contact notifications
# arrive as AWS SNS HTTP deliveries; their authenticity is SNS's signature plus the topic iVvy
# returned when we subscribed. iVvy's own inner `Signature` is undocumented and ignored.
SNS_HOST = re.compile(r"^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$")
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
SIGNED_TYPES = {
    "Notification": NOTIFICATION_KEYS,
    "SubscriptionConfirmation": CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": CONFIRMATION_KEYS,
}
SUBSCRIBE = f"api/{API_VERSION}/account?action=subscribeToNotifications"
ENDPOINT_KEY = "contactsEndpoint"
TOPIC_KEY = "contactsTopicId"
# getContact `status` codes (get-contact.md) -> what a change to it means here. 4
# (registering) is not an opt-in; 1 is one.
STATUS_EVENTS = {
    1: (EventKind.RESUBSCRIBED, ""),
    2: (EventKind.UNSUBSCRIBED, "unsubscribed"),
    3: (EventKind.HARD_BOUNCE, "bounced"),
    5: (EventKind.UNSUBSCRIBED, "no_marketing"),
}


def sns_string_to_sign(message: dict) -> bytes:
    """The documented string: `key\nvalue\n` for each signed key present, in order."""
    keys = SIGNED_TYPES.get(message.get("Type"), NOTIFICATION_KEYS)
    return "".join(f"{k}\n{message[k]}\n" for k in keys if k in message).encode()


def sns_url_problem(url: str, *, allow_loopback: bool, pem: bool) -> str:
    """Why SNS may not be trusted at `url` ("" when it may): https on an SNS host, a `.pem`
    path for a certificate. `allow_loopback` (development only) lets the sandbox's loopback
    host serve them over plain http."""
    from sync.policy import is_loopback_host  # noqa: PLC0415 (policy imports connectors)

    parts = urlsplit(url or "")
    host = (parts.hostname or "").lower()
    if pem and not parts.path.endswith(".pem"):
        return "the certificate URL does not end in .pem"
    if allow_loopback and is_loopback_host(host) and parts.scheme in ("http", "https"):
        return ""
    if parts.scheme != "https" or not SNS_HOST.match(host):
        return f"{host or url!r} is not an https Amazon SNS host"
    return ""


def sns_signature_holds(message: dict, certificate_pem: bytes) -> bool:
    """SignatureVersion 1 (SHA1withRSA) or 2 (SHA256withRSA) over the string to sign."""
    try:  # requirements.txt pins it; without it nothing from SNS can be verified
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
    except ImportError:
        return False

    algorithm = {"1": hashes.SHA1, "2": hashes.SHA256}.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        return False
    try:
        signature_bytes = base64.b64decode(message.get("Signature") or "", validate=True)
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        key.verify(signature_bytes, sns_string_to_sign(message), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False
    return True


class IvvyNotifications(inbound.InboundVerifier):
    """SNS deliveries of iVvy's `contactsEndpoint` notifications: the header and body `Type`
    agree, the certificate comes from an SNS host (`sns_url_problem`), the signature holds,
    and `TopicArn` is the `contactsTopicId` iVvy returned at registration (an SNS signature
    alone proves only that some topic sent it). `MessageId` is the dedupe key."""

    registers_by_api = True

    @classmethod
    def registration_steps(cls, url: str) -> list[str]:
        return [
            "Register through iVvy's API: the button on this page or "
            "`manage.py destination_inbound --destination NAME --register` calls "
            f"subscribeToNotifications with contactsEndpoint = {url} (the API key must be "
            "the account's primary user's, or a key created without a user: others get 403).",
            "iVvy answers with the contacts topic, kept on this destination; Amazon SNS then "
            "sends a subscription confirmation, which is confirmed automatically.",
        ]

    def verify(self, request: InboundRequest) -> Verified:
        try:
            message = json.loads(request.body)
        except ValueError as err:
            raise inbound.malformed(f"the body is not JSON: {err}") from err
        if not isinstance(message, dict):
            raise inbound.malformed("the body is not an SNS message")
        kind = inbound.text(message.get("Type"))
        if kind not in SIGNED_TYPES or request.header("x-amz-sns-message-type") != kind:
            raise inbound.bad_signature("the SNS message type is missing or disagrees")
        self._check_signature(message)
        topic = inbound.text(self.state.get("topic"))
        if not topic or not inbound.same(inbound.text(message.get("TopicArn")), topic):
            raise inbound.bad_signature("the TopicArn is not the one iVvy gave at registration")
        sent_at = inbound.from_iso(message.get("Timestamp"))
        key = inbound.text(message.get("MessageId"))
        if kind == "Notification":
            return Verified([self._notification(message, key, sent_at)], sent_at=sent_at)
        event_kind = EventKind.RECORDED
        if kind == "SubscriptionConfirmation":
            problem = sns_url_problem(
                message.get("SubscribeURL"),
                allow_loopback=self.allow_loopback_certificates,
                pem=False,
            )
            if problem:
                raise inbound.bad_signature(f"SubscribeURL: {problem}")
            event_kind = EventKind.SUBSCRIPTION_CONFIRMATION
        event = PlatformEvent(
            event_kind,
            kind,
            key,
            sent_at,
            raw=message,
            data={"subscribe_url": inbound.text(message.get("SubscribeURL"))},
        )
        return Verified([event], sent_at=sent_at)

    def _check_signature(self, message: dict) -> None:
        url = inbound.text(message.get("SigningCertURL"))
        problem = sns_url_problem(url, allow_loopback=self.allow_loopback_certificates, pem=True)
        if problem:
            raise inbound.bad_signature(f"SigningCertURL: {problem}")
        if self.fetch_certificate is None:
            raise inbound.bad_signature("no certificate fetcher")
        try:
            pem = self.fetch_certificate(url)
        except Exception as err:  # any failure to fetch is a delivery we cannot verify
            raise inbound.bad_signature(
                f"the signing certificate could not be fetched: {err}"
            ) from err
        if not sns_signature_holds(message, pem):
            raise inbound.bad_signature("the SNS signature does not hold")

    @staticmethod
    def _notification(message: dict, key: str, sent_at) -> PlatformEvent:
        try:
            inner = json.loads(message.get("Message") or "")
            body = json.loads(inner.get("Body") or "") if isinstance(inner, dict) else None
        except (ValueError, TypeError) as err:
            raise inbound.malformed(f"the iVvy message is not JSON: {err}") from err
        if not isinstance(body, dict):
            raise inbound.malformed("the iVvy message has no Body object")
        subject = inbound.text(inner.get("Subject"))
        occurred = inbound.from_epoch(inner.get("Timestamp")) or sent_at
        if subject == "ContactDeleted":
            return PlatformEvent(
                EventKind.DELETED,
                subject,
                key,
                occurred,
                remote_id=inbound.text(body.get("contactId")),
                raw=inner,
                change_key=deleted_change_key(body.get("contactId")),
            )
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        previous = body.get("previousData") if isinstance(body.get("previousData"), dict) else {}
        kind, status = EventKind.RECORDED, ""
        if subject == "ContactUpdated" and "status" in previous:
            if str(data.get("status")) != str(previous.get("status")):
                try:
                    kind, status = STATUS_EVENTS.get(int(data.get("status")), (kind, status))
                except (TypeError, ValueError):
                    pass
        return PlatformEvent(
            kind,
            subject,
            key,
            occurred,
            channel="email" if kind != EventKind.RECORDED else "",
            remote_id=inbound.text(data.get("id")),
            external_id=inbound.text(data.get("externalId")),
            email=inbound.text(data.get("email")),
            status=status,
            raw=inner,
            # Opt-outs only, the one kind a poll reports: an opt-in keeps no change key, so
            # out, in, out again within one second of modifiedDate is not taken for a repeat.
            change_key=status_change_key(data) if kind in EventKind.OPT_OUTS else "",
        )


def status_change_key(contact: dict) -> str:
    """One email-status change of one contact, as both a `ContactUpdated` notification (its
    `data` is "JSON Response from getContact API") and a getContact poll name it: id, status
    and `modifiedDate`. Blank without a modifiedDate (nothing to tell two changes apart)."""
    if not contact.get("modifiedDate"):
        return ""
    return f"status:{contact.get('id')}:{contact.get('status')}:{contact.get('modifiedDate')}"


def deleted_change_key(contact_id: Any) -> str:
    return f"deleted:{contact_id}"


class IvvyConnector(BaseConnector):
    slug = "ivvy"
    sandbox_emulator = "sync.sandbox.ivvy.IvvyEmulator"
    label = "iVvy"
    default_base_url = "https://api.ap-southeast-2.ivvy.com/"
    regions = {
        "au": "https://api.ap-southeast-2.ivvy.com/",
        "us": "https://api.us-west-2.ivvy.com/",
        "uk": "https://api.eu-west-2.ivvy.com/",
    }
    hosts = frozenset(urlsplit(url).hostname for url in regions.values())  # part B, hosts by region
    default_rate_limit = 5.0  # not published (part B); part A's default
    supports_delete = False  # no delete-contact call (part B)
    batch_size = 0
    mappable_standard_fields = MAPPABLE_STANDARD_FIELDS
    native_fields = ("first_name", "last_name", "phone")
    required_on_create = ("first_name", "last_name")  # "required when id is missing"
    uncleared_fields = ("first name", "last name", "phone", "every mapped custom field")
    credentials = {
        "api_key": Credential(
            "key_env", "API key variable", "The environment variable holding the API key."
        ),
        "api_secret": Credential(
            "secret_env",
            "API secret variable",
            "The environment variable holding the API secret (it signs every request).",
        ),
    }
    destination_settings = (
        Setting(
            "region",
            "Region",
            "The account's region (blank: Australia). Ignored when a base URL is set.",
            choices=(("au", "Australia"), ("us", "United States"), ("uk", "United Kingdom")),
        ),
        Setting(
            "update_if_exists",
            "Update if exists",
            "Let iVvy match a contact without an id by first name, last name and email "
            "(updateIfExists).",
            boolean=True,
        ),
    )
    # getContact (contact/get-contact.md) answers names, email, phone, the email `status`,
    # customFields, groups and externalUrls; no SMS status since 30 June 2026, and no
    # privacyConsent flag (only `privacyConsentData`, the when and how of a consent).
    readable_fields = frozenset(
        {
            "first_name",
            "last_name",
            "email",
            "phone",
            "email_status",
            "external_urls",
            "custom_values",
            "group_ids",
            "subscriptions",
            *MAPPABLE_STANDARD_FIELDS,
        }
    )
    notes = ("iVvy holds no SMS status since 30 June 2026: our SMS status is not sent to iVvy.",)
    inbound = IvvyNotifications
    polls = True
    poll_per_contact = True  # deletions: getContact of sampled contacts (see `poll`)
    polled = (
        "Email status changes (unsubscribed, bounced, no marketing): getContactList filtered "
        "by fromModifiedDate since the last poll (less a minute), then getContact for each "
        "contact listed, since the list carries no status.",
        "Deletions: getContact of a sample of the contacts iVvy holds from us; specificCode "
        "24096 (unable to find contact) means deleted.",
    )
    not_polled = (
        "A deletion account-wide: iVvy returns no deleted contacts since 4 November 2025 and "
        "lists none, so only sampled contacts are checked.",
        "SMS status: iVvy holds none since 30 June 2026.",
        "Opt-ins (status back to subscribed) are taken from a verified notification only, "
        "never from a poll.",
    )

    # -- transport

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def sign(self, method, url, body, headers):
        """Sign with IVVY-Date rather than Date, as iVvy's own SDK does; `url` is the path with
        its query string, exactly as sent (the signature covers it)."""
        ivvy_date = self.now().astimezone(datetime.UTC).strftime(DATE_FORMAT)
        content_md5 = hashlib.md5(body).hexdigest()  # required even for an empty body
        text = string_to_sign(
            method=method,
            content_md5=content_md5,
            content_type=CONTENT_TYPE,
            request_uri=url,
            ivvy_headers={"IVVY-Date": ivvy_date},
        )
        headers["Content-Type"] = CONTENT_TYPE
        headers["Content-MD5"] = content_md5
        headers["IVVY-Date"] = ivvy_date
        headers["X-Api-Version"] = API_VERSION
        key = self.secrets["api_key"]
        headers["X-Api-Authorization"] = f"IWS {key}:{signature(self.secrets['api_secret'], text)}"

    def request(self, method, path, **kwargs):
        try:
            return super().request(method, path, **kwargs)
        except PermanentError as err:
            if err.status in CREDENTIAL_STATUSES:
                raise AuthenticationError(
                    self.label, err.message, status=err.status, body=err.body
                ) from err
            raise

    def error_message(self, data: Any) -> str:
        """`{"errorCode", "message", "specificCode", "additionalMessages"}` (exceptions.md) ->
        "message (additional; …) [specificCode N]"; the specific code is what iVvy support asks
        for in a bug report."""
        if not isinstance(data, dict) or not isinstance(data.get("message"), str):
            return ""
        text = data["message"]
        extra = data.get("additionalMessages")
        if isinstance(extra, list) and extra:
            text += f" ({'; '.join(map(str, extra))})"
        if data.get("specificCode") is not None:
            text += f" [specificCode {data['specificCode']}]"
        return text

    # -- mapping

    def build_payload(
        self, record: ContactRecord, state: RemoteState, plan: WritePlan | None = None
    ) -> dict:
        """The addOrUpdateContact body (the URLs it removes: `plan`, the write plan when the
        caller has it). Raises PermanentError for what iVvy cannot take (see the module
        docstring)."""
        payload: dict[str, Any] = {}
        if state.remote_id:
            payload["id"] = self._whole_number(state.remote_id, "the stored contact id")
        emails, phones = record.channels_of("email"), record.channels_of("sms")
        for key, value, source in (
            ("firstName", record.first_name, "first_name"),
            ("lastName", record.last_name, "last_name"),
            ("email", emails[0] if emails else "", "email"),
            ("phone", phones[0] if phones else "", "phone"),
            ("externalId", record.external_id, "external_id"),
        ):
            if value and self.sends(source, state):
                payload[key] = value
        if "id" not in payload:
            self._check_required(payload)
            if self.options.get("update_if_exists"):
                # iVvy matches on name + email only "when id parameter is missing"
                payload["updateIfExists"] = True
        payload["status"] = self._status(EMAIL_STATUS, record.email_status, "email")
        payload["privacyConsent"] = bool(record.privacy_consent)
        custom_fields = self._custom_fields(record, state)
        if custom_fields:
            payload["customFields"] = custom_fields
        urls = self._external_urls(record, state, plan)
        if urls != []:
            payload["externalUrls"] = urls
        if self.mapping.has_lists:
            payload["groups"] = self._groups(record)
        return payload

    def _check_required(self, payload: dict) -> None:
        missing = [key for key in ("firstName", "lastName", "email") if key not in payload]
        if missing:
            raise PermanentError(
                self.label,
                f"iVvy needs a first name, last name and email to create a contact; "
                f"missing: {', '.join(missing)}",
            )

    def _status(self, codes: dict[str, int], value: str, what: str) -> int:
        if value not in codes:
            raise PermanentError(self.label, f"iVvy has no {what} status for {value!r}")
        return codes[value]

    def _whole_number(self, value: str, what: str) -> int:
        text = str(value).strip()
        if not text.isdigit():
            raise PermanentError(self.label, f"{what} {value!r} is not an iVvy id (a whole number)")
        return int(text)

    def field_presence(self, record: ContactRecord) -> dict[str, bool]:
        """Name, phone, every mapped field and each external URL ("url:<ref>")."""
        presence = {
            "first_name": bool(record.first_name),
            "last_name": bool(record.last_name),
            "phone": bool(record.channels_of("sms")),
        }
        for source in self.mapping.fields:
            presence[source] = self._mapped_value(record, source) != ""
        presence.update({f"url:{url.ref}": True for url in record.external_urls})
        return presence

    def is_clearable(self, key: str) -> bool:
        """Only an external URL: `url: null` per ref (add-or-update-contact.md)."""
        return key.startswith("url:")

    def _mapped_value(self, record: ContactRecord, source: str) -> str:
        if source.startswith("custom:"):
            name = source.removeprefix("custom:")
            return next((v.value for v in record.custom_values if v.name == name), "")
        if source in STANDARD_FIELDS:
            return self._standard_value(getattr(record, source))
        raise PermanentError(self.label, f"the mapping names an unknown field {source!r}")

    def _custom_fields(self, record: ContactRecord, state: RemoteState) -> list[dict]:
        fields = []
        for source, remote in self.mapping.fields.items():
            value = self._mapped_value(record, source)
            if value == "" or not self.sends(source, state):
                continue
            field_id = self._whole_number(remote, f"{source} is mapped to field")
            fields.append({"fieldId": field_id, "value": value})
        return fields

    @staticmethod
    def _standard_value(value: Any) -> str:
        """A standard field's value as the text of an iVvy custom field ("" when empty)."""
        if value is None or value == () or value == "":
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime.datetime):
            return value.astimezone(datetime.UTC).strftime(DATE_FORMAT)  # iVvy timestamps: UTC
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, decimal.Decimal):
            return format(value, "f")
        if isinstance(value, tuple):
            return ", ".join(value)  # tags hold no commas (contacts.forms.TagsField)
        return str(value)

    def _external_urls(
        self, record: ContactRecord, state: RemoteState, plan: WritePlan | None = None
    ) -> list[dict] | None:
        """The contact's URLs, then `{"ref", "url": null}` for each ref iVvy holds from us that
        is gone here; None (`externalUrls: null`, "remove all") when none is left and the refs
        iVvy holds are unknown; [] when there is nothing to send."""
        removed = sorted(
            key.removeprefix("url:")
            for key in (plan or self.write_plan(record, state)).clear
            if key.startswith("url:")
        )
        if not record.external_urls and state.held_keys is None and self.holds_contact(state):
            return None
        return self._urls_held(record) + [{"ref": ref, "url": None} for ref in removed]

    def _urls_held(self, record: ContactRecord) -> list[dict]:
        if len(record.external_urls) > MAX_EXTERNAL_URLS:
            raise PermanentError(
                self.label,
                f"the contact has {len(record.external_urls)} external URLs; iVvy takes at most "
                f"{MAX_EXTERNAL_URLS}",
            )
        urls = []
        for url in record.external_urls:
            if not url.url.startswith("https://"):
                raise PermanentError(self.label, f"external URL {url.ref!r} is not https")
            item = {"ref": url.ref, "url": url.url}
            if url.label:
                item["label"] = url.label
            urls.append(item)
        return urls

    def _groups(self, record: ContactRecord) -> list[dict]:
        """Every mapped list the contact is on: a group means member, a mailing list counts
        only while subscribed. An empty list takes the contact off every group on iVvy."""
        remote = [
            list_id
            for group_id, list_id in self.mapping.groups.items()
            if group_id in record.group_ids
        ]
        remote += [
            list_id
            for list_id_here, list_id in self.mapping.mailing_lists.items()
            if record.subscriptions.get(list_id_here)
        ]
        ids = {self._whole_number(list_id, "a list is mapped to group") for list_id in remote}
        return [{"groupId": group_id} for group_id in sorted(ids)]

    # -- calls

    def push(
        self, record: ContactRecord, state: RemoteState, built: Built | None = None
    ) -> PushResult:
        """Send the stored id, or the one `getContactList` finds by external ID, or none (a new
        contact). The payload is built (or `built`), and so checked, before any request."""
        payload = self.build_payload(record, state) if built is None else built.payload
        remote_id = state.remote_id or None
        if remote_id is None and record.external_id:
            remote_id = self._find_by_external_id(record.external_id)
            if remote_id is not None:
                # found there: an update, so "on create only" fields are iVvy's own now
                payload = self.build_payload(
                    record, dataclasses.replace(state, remote_id=remote_id)
                )
        status, data = self.request("POST", CONTACT + "addOrUpdateContact", json_body=payload)
        self._require_success(data, status)
        new_id = self.require_id(data, status=status)
        return PushResult(new_id, remote_id is None, status, payload)

    @staticmethod
    def _lookup_body(external_id: str) -> dict:
        return {"perPage": 1, "start": 0, "filter": {"externalId": external_id}}

    def _find_by_external_id(self, external_id: str) -> str | None:
        body = self._lookup_body(external_id)
        status, data = self.request("POST", CONTACT + "getContactList", json_body=body)
        results = self._results(data, status)
        if not results:
            return None
        found = results[0]
        if str(found.get("externalId") or "") != external_id:
            # A filter iVvy ignored would hand back some other contact: never overwrite it.
            raise PermanentError(
                self.label,
                f"getContactList filtered by externalId {external_id!r} answered contact "
                f"{found.get('id')} with externalId {found.get('externalId')!r}",
                status=status,
                body=json.dumps(data),
            )
        return self.require_id(found, status=status)

    def planned_requests(self, items):
        """Per contact, as `push` does: the getContactList lookup when no id is stored (its
        answer decides the `id` in the body), then addOrUpdateContact."""
        planned = []
        for record, state, payload in self.buildable(items, planned):
            ids = (record.external_id,)
            if not state.remote_id and record.external_id:
                planned.append(
                    self.plan(
                        "POST",
                        CONTACT + "getContactList",
                        json_body=self._lookup_body(record.external_id),
                        note="lookup by externalId: a contact found there gets its id in the "
                        "body below",
                        external_ids=ids,
                    )
                )
            planned.append(
                self.plan(
                    "POST", CONTACT + "addOrUpdateContact", json_body=payload, external_ids=ids
                )
            )
        return planned

    def request_count(self, *, contacts: int, without_remote_id: int, chunk_size: int) -> int:
        """One addOrUpdateContact each, and a lookup for each contact with no stored id."""
        return contacts + without_remote_id

    def read_contact(self, *, external_id: str, remote_id: str | None) -> ContactRecord | None:
        """`getContact` by the stored id; without one, or when iVvy no longer knows it (24096)
        or it now holds another external ID, `getContactList` filtered by externalId finds the
        id first."""
        contact = self._get_contact(remote_id) if remote_id else None
        if contact is None or str(contact.get("externalId") or "") != external_id:
            found = self._find_by_external_id(external_id) if external_id else None
            contact = self._get_contact(found) if found else None
        return self._record_of(contact, external_id) if contact is not None else None

    def find_remote_id(self, *, external_id: str) -> str | None:
        """getContactList filtered by externalId, one row (the lookup a first push makes)."""
        return self._find_by_external_id(external_id)

    def _get_contact(self, remote_id: str) -> dict | None:
        """getContact with `{"id"}` as the vendor's example request sends it; None for
        specificCode 24096 "Unable to find contact"."""
        body = {"id": self._whole_number(remote_id, "the contact id")}
        try:
            status, data = self.request("POST", CONTACT + "getContact", json_body=body)
        except PermanentError as err:
            if err.status == 404 or f"specificCode {NO_CONTACT}" in err.message:
                return None
            raise
        self._require_success(data, status)
        if not isinstance(data, dict):
            raise PermanentError(
                self.label, "the getContact answer is not an object", status=status
            )
        return data

    # -- polling (shared/inbound.md part A "Polling"; part B 2.2)

    def poll(self, *, cursor: dict, sample: list[PollSubject], now: datetime.datetime):
        """getContactList by `fromModifiedDate` (the cursor: the latest `modifiedDate` seen,
        less a minute; a day back at first), getContact for each row's status, and getContact
        for each sampled contact, whose 24096 means deleted."""
        since = cursor.get("modified_since") or (now - datetime.timedelta(days=1)).strftime(
            DATE_FORMAT
        )
        latest, events, start = "", [], 0
        while True:
            body = {"perPage": POLL_PAGE, "start": start, "filter": {"fromModifiedDate": since}}
            status, data = self.request("POST", CONTACT + "getContactList", json_body=body)
            rows = self._results(data, status)
            for row in rows:
                latest = max(latest, str(row.get("modifiedDate") or ""))
                contact = self._get_contact(str(self.require_id(row, status=status)))
                event = self._polled_status(contact) if contact else self._polled_deleted(row)
                if event is not None:
                    events.append(event)
            start += len(rows)
            total = (data.get("meta") or {}).get("totalResults", 0)
            if not rows or not isinstance(total, int) or start >= total:
                break
        for subject in sample:
            if subject.remote_id.isdigit() and self._get_contact(subject.remote_id) is None:
                events.append(self._polled_deleted({"id": subject.remote_id}))
        moved = overlap_start(latest, fmt=DATE_FORMAT) if latest else since
        return PollResult(events, {"modified_since": max(moved, since)})

    @staticmethod
    def _polled_status(contact: dict) -> PlatformEvent | None:
        """An opt-out the contact's getContact `status` shows (2, 3 or 5); None otherwise."""
        try:
            kind, status = STATUS_EVENTS.get(int(contact.get("status")), (None, ""))
        except (TypeError, ValueError):
            return None
        if kind not in EventKind.OPT_OUTS:
            return None
        change = status_change_key(contact)
        modified = contact.get("modifiedDate")
        try:
            occurred = datetime.datetime.strptime(str(modified), DATE_FORMAT).replace(
                tzinfo=datetime.UTC
            )
        except ValueError:
            occurred = None
        return PlatformEvent(
            kind,
            "getContact status",
            f"poll:{change}" if change else f"poll:status:{contact.get('id')}:{status}",
            occurred,
            channel="email",
            remote_id=inbound.text(contact.get("id")),
            external_id=inbound.text(contact.get("externalId")),
            email=inbound.text(contact.get("email")),
            status=status,
            raw=contact,
            change_key=change,
        )

    @staticmethod
    def _polled_deleted(row: dict) -> PlatformEvent:
        change = deleted_change_key(row.get("id"))
        return PlatformEvent(
            EventKind.DELETED,
            "getContact 24096",
            f"poll:{change}",
            None,
            remote_id=inbound.text(row.get("id")),
            raw=row,
            change_key=change,
        )

    def _record_of(self, contact: dict, external_id: str) -> ContactRecord:
        """The inverse of `build_payload`. Ids and values may come as text or numbers (the
        vendor's example answers `"fieldId": "102"` and `"value": ["Medium"]`), so both are
        read. Email status 4 (Registering, getContact only) stays "registering": not one of
        ours, so never taken for an opt-in."""
        fields = {
            str(f.get("fieldId")): f.get("value")
            for f in contact.get("customFields") or []
            if isinstance(f, dict)
        }
        groups = {str(g.get("groupId")) for g in contact.get("groups") or [] if isinstance(g, dict)}
        statuses = {code: name for name, code in EMAIL_STATUS.items()} | {4: "registering"}
        status = contact.get("status")
        status = int(status) if str(status).isdigit() else None
        urls = tuple(
            ExternalUrlRecord(str(u["ref"]), str(u.get("url") or ""), str(u.get("label") or ""))
            for u in contact.get("externalUrls") or []
            if isinstance(u, dict) and u.get("ref") and u.get("url")
        )
        return ContactRecord(
            id=None,
            external_id=str(contact.get("externalId") or external_id),
            first_name=str(contact.get("firstName") or ""),
            last_name=str(contact.get("lastName") or ""),
            email=str(contact.get("email") or ""),
            phone=str(contact.get("phone") or ""),
            email_status=statuses.get(status, ""),
            external_urls=urls,
            **readback.mapped_values(self.mapping, fields, MAPPABLE_STANDARD_FIELDS),
            **readback.mapped_lists(self.mapping, groups),
        )

    def field_differs(self, name: str, ours: ContactRecord, theirs: ContactRecord) -> bool:
        """An answer without `status` (the vendor's own getContact example has none) says
        nothing of the email status: unknown, not drift."""
        if name == "email_status" and not theirs.email_status:
            return False
        return super().field_differs(name, ours, theirs)

    def delete(self, *, external_id: str, remote_id: str | None) -> None:
        raise NotImplementedError(
            "iVvy has no delete-contact call (developer.ivvy.com): the contact stays on iVvy"
        )

    def erase(self, *, external_id: str, remote_id: str | None) -> EraseResult:
        """iVvy has no delete-contact call: blank what addOrUpdateContact documents a way to
        blank (ERASE_BODY), then say to erase the contact by hand in iVvy, by its iVvy id.
        The contact is found by the stored id, else by `getContactList` filter externalId;
        found by neither, iVvy holds no such contact."""
        found = remote_id or (self._find_by_external_id(external_id) if external_id else None)
        if not found:
            return EraseResult(deleted=False, absent=True)
        body = {
            "id": self._whole_number(found, "the stored contact id"),
            **ERASE_BODY,
            "privacyConsent": False,
        }
        try:
            status, data = self.request("POST", CONTACT + "addOrUpdateContact", json_body=body)
        except PermanentError as err:
            if err.status == 404:  # "Unable to find contact": no longer on iVvy
                return EraseResult(deleted=False, absent=True, remote_id=str(found))
            raise
        self._require_success(data, status)
        return EraseResult(
            deleted=False,
            blanked=ERASE_BLANKED,
            remote_id=str(found),
            instruction=(
                f"Erase by hand in iVvy: contact id {found}. iVvy has no delete-contact call; "
                "its name, email, phone, external ID and custom field values stay on iVvy "
                "until a person deletes the contact there."
            ),
        )

    def inbound_register(self, url: str) -> dict:
        """`account?action=subscribeToNotifications` with `{"contactsEndpoint": url}`
        (notifications.md); returns `{"topic": contactsTopicId}`. iVvy answers 403 to a key
        that is not the primary user's: raised as AuthenticationError for this call only
        (the caller does not pause the destination for it)."""
        status, data = self.request("POST", SUBSCRIBE, json_body={ENDPOINT_KEY: url})
        self._require_success(data, status)
        topic = data.get(TOPIC_KEY) if isinstance(data, dict) else None
        if not topic or not data.get("contactsSuccess"):
            raise PermanentError(
                self.label,
                "iVvy did not subscribe the contacts endpoint",
                status=status,
                body=json.dumps(data),
            )
        return {"topic": str(topic)}

    def inbound_confirm_subscription(self, event: PlatformEvent) -> str:
        """GET the verified `SubscribeURL` (the host was checked by the verifier), through
        the connector's address-checked session, without iVvy's signature."""
        url = event.data.get("subscribe_url", "")
        try:
            response = self.session.get(url, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as err:
            raise RetryableError(self.label, f"SubscribeURL: {err}") from err
        except Exception as err:  # the session's address check refused the host
            raise PermanentError(self.label, f"SubscribeURL refused: {err}") from err
        if response.status_code != 200:
            raise RetryableError(
                self.label,
                "SubscribeURL answered",
                status=response.status_code,
                body=response.text[:500],
            )
        return "subscription confirmed"

    def test_connection(self) -> str:
        status, data = self.request("POST", PING)
        self._require_success(data, status)
        return "Connected to iVvy (ping answered)"

    def probe_calls(self) -> list[ProbeCall]:
        """ping, the two lists the mapping choices read, and a one-contact getContactList (the
        lookup every first push makes), with the keys this connector reads of each, sent with
        exactly the parameters the vendor pages show."""
        return [
            ProbeCall("test ping", "POST", PING, {"success": Maybe(bool)}),
            ProbeCall(
                "contact getCustomFieldDefinition",
                "POST",
                CONTACT + "getCustomFieldDefinition",
                [{"fieldId": (int, str), "fieldType": int, "displayName": Maybe(str)}],
            ),
            ProbeCall(
                "contact getSubscriptionGroupList",
                "POST",
                CONTACT + "getSubscriptionGroupList",
                [{"id": (int, str), "groupName": Maybe(str)}],
            ),
            ProbeCall(
                "contact getContactList",
                "POST",
                CONTACT + "getContactList",
                {"results": [{"id": (int, str), "externalId": Maybe(str)}]},
                json_body={"perPage": 1, "start": 0},
            ),
        ]

    def fetch_options(self) -> list[RemoteOption]:
        """Custom field definitions and subscription groups, each fetched on its own: one
        failing raises PartialOptionsError carrying the other's options."""
        return self.fetch_option_parts(
            [
                ("custom field definitions (getCustomFieldDefinition)", "field", self._fields),
                ("subscription groups (getSubscriptionGroupList)", "list", self._groups_offered),
            ]
        )

    def _fields(self) -> list[RemoteOption]:
        """getCustomFieldDefinition: no parameters, a bare array of definitions
        (get-custom-field-definition.md); static text takes no value, so it is left out."""
        status, definitions = self.request("POST", CONTACT + "getCustomFieldDefinition")
        return [
            RemoteOption(
                "field",
                str(d["fieldId"]),
                d.get("displayName") or str(d["fieldId"]),
                FIELD_TYPES.get(d.get("fieldType"), str(d.get("fieldType", ""))),
            )
            for d in self._items(definitions, "fieldId", status)
            if d.get("fieldType") != STATIC_TEXT
        ]

    def _groups_offered(self) -> list[RemoteOption]:
        """getSubscriptionGroupList: documented with no parameters, answering an array of
        `{id, groupName, memberCount, tagColour}` (get-subscription-group-list.md); no paging
        is documented, so none is asked for."""
        status, data = self.request("POST", CONTACT + "getSubscriptionGroupList")
        return [
            RemoteOption(
                "list", str(g["id"]), g.get("groupName") or str(g["id"]), "subscription group"
            )
            for g in self._items(data, "id", status)
        ]

    # -- answers

    def _require_success(self, data: Any, status: int) -> None:
        """A 200 can still say `{"success": false, "message": …}` (add-or-update-contact.md)."""
        if isinstance(data, dict) and data.get("success") is False:
            raise PermanentError(
                self.label,
                self.error_message(data) or "success is false",
                status=status,
                body=json.dumps(data),
            )

    def _results(self, data: Any, status: int) -> list[dict]:
        """A collection's `results` (collections.md: `{meta, results}`)."""
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise PermanentError(
                self.label,
                "the answer is not a collection with results",
                status=status,
                body=json.dumps(data),
            )
        return results

    def _items(self, data: Any, key: str, status: int) -> list[dict]:
        """A bare array, or a collection's results, of objects that all carry `key`."""
        items = data if isinstance(data, list) else self._results(data, status)
        if not all(isinstance(item, dict) and item.get(key) is not None for item in items):
            raise PermanentError(
                self.label,
                f"the answer lists items without {key!r}",
                status=status,
                body=json.dumps(data),
            )
        return items
