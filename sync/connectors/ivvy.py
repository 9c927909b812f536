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

import dataclasses
import datetime
import decimal
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sync.connectors.base import (
    AuthenticationError,
    BaseConnector,
    PermanentError,
    PushResult,
)
from sync.connectors.declarations import Credential, Setting
from sync.connectors.records import STANDARD_FIELDS, ContactRecord, RemoteOption, RemoteState

API_VERSION = "1.0"  # the only version iVvy serves (method-uri-header.md)
CONTENT_TYPE = "application/json"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # "yyyy-mm-dd HH:mm:ss", always UTC (timestamp-format.md)
CONTACT = f"api/{API_VERSION}/contact?action="
PING = f"api/{API_VERSION}/test?action=ping"
EMAIL_STATUS = {"subscribed": 1, "unsubscribed": 2, "bounced": 3, "no_marketing": 5}
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
    notes = ("iVvy holds no SMS status since 30 June 2026: our SMS status is not sent to iVvy.",)

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

    def build_payload(self, record: ContactRecord, state: RemoteState) -> dict:
        """The addOrUpdateContact body. Raises PermanentError for what iVvy cannot take (see
        the module docstring)."""
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
        urls = self._external_urls(record, state)
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

    def _external_urls(self, record: ContactRecord, state: RemoteState) -> list[dict] | None:
        """The contact's URLs, then `{"ref", "url": null}` for each ref iVvy holds from us that
        is gone here; None (`externalUrls: null`, "remove all") when none is left and the refs
        iVvy holds are unknown; [] when there is nothing to send."""
        removed = sorted(
            key.removeprefix("url:")
            for key in self.write_plan(record, state).clear
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

    def push(self, record: ContactRecord, state: RemoteState) -> PushResult:
        """Send the stored id, or the one `getContactList` finds by external ID, or none (a new
        contact). The payload is built, and so checked, before any request."""
        payload = self.build_payload(record, state)
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

    def _find_by_external_id(self, external_id: str) -> str | None:
        body = {"perPage": 1, "start": 0, "filter": {"externalId": external_id}}
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

    def delete(self, *, external_id: str, remote_id: str | None) -> None:
        raise NotImplementedError(
            "iVvy has no delete-contact call (developer.ivvy.com): the contact stays on iVvy"
        )

    def test_connection(self) -> str:
        status, data = self.request("POST", PING)
        self._require_success(data, status)
        return "Connected to iVvy (ping answered)"

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
