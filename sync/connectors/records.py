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


# How a mapped or native field is written (issue #13, "Write rules per mapping").
ALWAYS, ON_CREATE, NEVER = "always", "create", "never"
WRITE_RULES = {
    ALWAYS: "Always",
    ON_CREATE: "On create only (the platform owns it afterwards)",
    NEVER: "Never (mapped for read-back only)",
}
# Standard fields a connector may send in a native slot of its platform, whose write rule a
# destination may set (the platform may own the name, say). Email, statuses and consent are not
# among them: they identify the contact or follow the consent rules of shared/platforms.md.
RULED_NATIVE_FIELDS = {
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "language": "Language",
    "time_zone": "Time zone",
    "address_line": "Address line",
    "city": "City",
    "region": "Region",
    "country": "Country",
    "postal_code": "Postal code",
    "birth_date": "Birth date",
    "gender": "Gender",
    "tags": "Tags",
    "user_group": "User group",
    "last_latitude": "Last latitude",
    "last_longitude": "Last longitude",
    "consent_ip": "Consent IP",
}

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
    # source key (a standard field name such as "first_name", or "custom:<name>") -> "always" |
    # "create" | "never" (WRITE_RULES); a key not named here is sent always.
    write_rules: dict[str, str] = field(default_factory=dict)

    def rule(self, key: str) -> str:
        return self.write_rules.get(key, ALWAYS)

    @property
    def has_lists(self) -> bool:
        return bool(self.groups or self.mailing_lists)


@dataclass(frozen=True)
class RemoteState:
    """What we know of the contact on the platform: its id there, the email status of the
    last payload the platform accepted (a subscribe flag may depend on it), whether it accepted
    any payload of this contact from us (`accepted`: False means the next push creates it, for
    the write rules), and which keys it last accepted from us with a value (`held_keys`, in the
    connector's own names, see BaseConnector.field_presence): only those are cleared when they
    become empty here. None means unknown (a state from before we kept them): every key is then
    possibly held."""

    remote_id: str | None = None
    accepted_email_status: str | None = None
    accepted: bool = False
    held_keys: frozenset[str] | None = None


@dataclass(frozen=True)
class RemoteOption:
    """A field or list offered by the platform, for the mapping choices."""

    kind: str  # "field" | "list"
    remote_id: str
    label: str
    type: str = ""
