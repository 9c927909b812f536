"""Plain snapshots of what a connector maps: a contact with its children, a destination's
mappings, and what the platform last accepted. Connectors read only these, never the ORM, so
`build_payload` is pure and tests can build its input by hand."""

import datetime
import decimal
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChannelRecord:
    type: str
    value: str


@dataclass(frozen=True)
class CustomValueRecord:
    name: str
    type: str  # string | number | boolean | date
    value: str  # canonical text (contacts.validators.normalize_custom_value)


@dataclass(frozen=True)
class ExternalUrlRecord:
    ref: str
    url: str
    label: str = ""


@dataclass(frozen=True)
class ContactRecord:
    """One contact as of one read. `channels` are the extra channel rows only; the primary
    email and phone are `email` and `phone`."""

    id: int | None
    external_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    language: str = ""
    time_zone: str = ""
    address_line: str = ""
    city: str = ""
    region: str = ""
    country: str = ""
    postal_code: str = ""
    birth_date: datetime.date | None = None
    gender: str = ""
    email_status: str = "subscribed"
    sms_status: str = "no_marketing"
    privacy_consent: bool = False
    gdpr_marketing_consent: bool = False
    terms_accepted: bool = False
    consent_date: datetime.datetime | None = None
    consent_ip: str | None = None
    tags: tuple[str, ...] = ()
    last_latitude: decimal.Decimal | None = None
    last_longitude: decimal.Decimal | None = None
    user_group: str = ""
    content_version: int = 1
    channels: tuple[ChannelRecord, ...] = ()
    custom_values: tuple[CustomValueRecord, ...] = ()
    group_ids: frozenset[int] = frozenset()
    subscriptions: dict[int, bool] = field(default_factory=dict)  # mailing list id -> subscribed
    external_urls: tuple[ExternalUrlRecord, ...] = ()

    def channels_of(self, channel_type: str) -> list[str]:
        """Every value of one channel type, the primary email or phone first."""
        primary = {"email": self.email, "sms": self.phone}.get(channel_type)
        values = [primary] if primary else []
        values += [
            c.value for c in self.channels if c.type == channel_type and c.value not in values
        ]
        return values


# Standard contact fields a destination may map to a platform field when the platform has no
# native slot for them (part A, "Mappings belong to a destination").
STANDARD_FIELDS = {
    "birth_date": "Birth date",
    "gender": "Gender",
    "language": "Language",
    "time_zone": "Time zone",
    "country": "Country",
    "city": "City",
    "region": "Region",
    "postal_code": "Postal code",
    "address_line": "Address line",
    "phone": "Phone",
    "email_status": "Email status",
    "sms_status": "SMS status",
    "user_group": "User group",
    "tags": "Tags",
    "last_latitude": "Last latitude",
    "last_longitude": "Last longitude",
    "gdpr_marketing_consent": "GDPR marketing consent",
    "terms_accepted": "Terms accepted",
    "privacy_consent": "Privacy consent",
    "consent_date": "Consent date",
    "consent_ip": "Consent IP",
}


@dataclass(frozen=True)
class MappingRecord:
    """A destination's mappings, keyed the way connectors look them up.

    fields: source key -> remote field (the platform's own id or name of its field, as its
    connector documents it). A source key is a standard field name (`birth_date`) or
    `custom:<definition name>`.
    groups / mailing_lists: our id -> the platform's list id.
    """

    fields: dict[str, str] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    mailing_lists: dict[int, str] = field(default_factory=dict)
    write_rules: dict[str, str] = field(default_factory=dict)

    @property
    def has_lists(self) -> bool:
        return bool(self.groups or self.mailing_lists)


@dataclass(frozen=True)
class RemoteState:
    """What we know of the contact on the platform: its id there, and the email status of the
    last payload the platform accepted (a subscribe flag may depend on it)."""

    remote_id: str | None = None
    accepted_email_status: str | None = None


@dataclass(frozen=True)
class RemoteOption:
    """A field or list offered by the platform, for the mapping choices."""

    kind: str  # "field" | "list"
    remote_id: str
    label: str
    type: str = ""
