"""Reading a contact back from a platform, and comparing it with what we would send now.

A connector's `read_contact` answers a `ContactRecord` in our own shape (the inverse of its
mapping) and declares in `readable_fields` which record fields its platform's read answers
carry. Everything else in such a record is a default that means "unknown", never a value the
platform holds: `compared_fields` keeps only the fields a read-back can really compare for one
destination, and `field_differs` compares one of them.

Field names are ContactRecord attribute names, plus `custom_values` (the custom fields a
destination maps: compared one by one as `custom:<definition name>`), `group_ids` and
`subscriptions` (the lists a destination maps).
"""

import datetime
import decimal
from typing import Any

import phonenumbers

from sync.connectors.records import ContactRecord, CustomValueRecord, MappingRecord

LIST_FIELDS = ("group_ids", "subscriptions")
BOOLEAN_FIELDS = frozenset({"privacy_consent", "gdpr_marketing_consent", "terms_accepted"})
DECIMAL_FIELDS = frozenset({"last_latitude", "last_longitude"})


def compared_fields(
    readable: frozenset[str], mapping: MappingRecord, mappable: tuple[str, ...]
) -> tuple[str, ...]:
    """The fields a read-back of one destination compares: declared readable and sent by it.

    A standard field the platform has no native slot for (`mappable`) is sent, and so read,
    only where the destination maps it; custom fields only those mapped; lists only when the
    destination maps lists of that kind. A field whose write rule is not "always" is left out:
    we do not claim to own it after the create (or at all)."""
    mapped = set(mapping.fields)
    names = [
        name
        for name in ContactRecord.__dataclass_fields__
        if name in readable
        and name not in ("custom_values", *LIST_FIELDS)
        and (name not in mappable or name in mapped)
    ]
    if "custom_values" in readable:
        names += sorted(source for source in mapped if source.startswith("custom:"))
    if "group_ids" in readable and mapping.groups:
        names.append("group_ids")
    if "subscriptions" in readable and mapping.mailing_lists:
        names.append("subscriptions")
    return tuple(n for n in names if mapping.write_rules.get(n, "always") == "always")


def field_differs(name: str, ours: ContactRecord, theirs: ContactRecord) -> bool:
    """Whether the platform's value of one compared field differs from ours, after the
    normalisation every platform needs (case of an email, the form of a phone number, the text
    of a number or a date)."""
    if name.startswith("custom:"):
        custom = name.removeprefix("custom:")
        mine = next((v for v in ours.custom_values if v.name == custom), None)
        held = next((v for v in theirs.custom_values if v.name == custom), None)
        kind = mine.type if mine else ""
        return _custom_text(kind, mine.value if mine else "") != _custom_text(
            kind, held.value if held else ""
        )
    if name == "subscriptions":
        # a list we hold no row for counts as not subscribed, as every connector sends it
        keys = set(ours.subscriptions) | set(theirs.subscriptions)
        return any(
            bool(ours.subscriptions.get(k)) != bool(theirs.subscriptions.get(k)) for k in keys
        )
    mine, held = getattr(ours, name), getattr(theirs, name)
    if name == "email":
        return (mine or "").strip().lower() != (held or "").strip().lower()
    if name == "phone":
        return _phone(mine, ours.country) != _phone(held, ours.country)
    if name == "channels":
        return sorted((c.type.lower(), c.value) for c in mine) != sorted(
            (c.type.lower(), c.value) for c in held
        )
    if name in ("language", "gender"):
        return (mine or "").lower() != (held or "").lower()
    if name in DECIMAL_FIELDS:
        return _decimal(mine) != _decimal(held)
    if name == "tags":
        return sorted(mine) != sorted(held)
    if name == "consent_date":
        return _instant(mine) != _instant(held)
    if isinstance(mine, str) or isinstance(held, str):
        return (mine or "").strip() != (held or "").strip()
    return mine != held


def standard_value(name: str, value: Any) -> Any:
    """A platform's value of a standard field it holds in a field of its own (a mapped one),
    as our record holds it; None when it cannot be read as one (compared as empty)."""
    if value is None or value == "" or value == []:
        return _empty(name)
    text = _text(value)
    try:
        if name == "birth_date":
            return datetime.date.fromisoformat(text[:10])
        if name == "consent_date":
            return _instant(text)
        if name in BOOLEAN_FIELDS:
            return text.strip().lower() in ("true", "1", "yes")
        if name in DECIMAL_FIELDS:
            return decimal.Decimal(text)
    except (ValueError, decimal.InvalidOperation):
        return _empty(name)
    if name == "tags":
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return text


def mapped_values(
    mapping: MappingRecord, held: dict[str, Any], mappable: tuple[str, ...]
) -> dict[str, Any]:
    """ContactRecord keyword arguments for the mapped fields the platform answered, `held`
    being remote field -> value: the `mappable` standard fields by name, custom ones as
    `custom_values` (typed "": the comparison reads them by our definition's type)."""
    values: dict[str, Any] = {}
    custom = []
    for source, remote in mapping.fields.items():
        if remote not in held or not (source.startswith("custom:") or source in mappable):
            continue
        value = held[remote]
        if source.startswith("custom:"):
            if value not in (None, "", []):
                custom.append(CustomValueRecord(source.removeprefix("custom:"), "", _text(value)))
        else:
            values[source] = standard_value(source, value)
    values["custom_values"] = tuple(custom)
    return values


def mapped_lists(mapping: MappingRecord, member_of: set[str]) -> dict[str, Any]:
    """`group_ids` and `subscriptions` from the platform's lists the contact is on."""
    return {
        "group_ids": frozenset(g for g, remote in mapping.groups.items() if remote in member_of),
        "subscriptions": {m: remote in member_of for m, remote in mapping.mailing_lists.items()},
    }


# ---------------------------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    """A platform value as text; a one-element list (iVvy answers custom values so) as its
    element, a longer one joined with commas."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value if v not in (None, ""))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _empty(name: str) -> Any:
    default = ContactRecord.__dataclass_fields__[name].default
    return default if isinstance(default, (str, bool, tuple, type(None))) else None


def _custom_text(kind: str, text: str) -> str:
    text = (text or "").strip()
    if not text:
        return ""
    if kind == "number":
        try:
            return str(decimal.Decimal(text).normalize())
        except decimal.InvalidOperation:
            return text
    if kind == "boolean":
        return text.lower()
    if kind == "date":
        return text[:10]
    return text


def _phone(value: str, country: str) -> str:
    if not value:
        return ""
    region = None if value.startswith("+") else (country or "").upper() or None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return value.replace(" ", "")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _decimal(value: Any) -> decimal.Decimal | None:
    if value in (None, ""):
        return None
    try:
        return decimal.Decimal(str(value)).quantize(decimal.Decimal("0.000001"))
    except decimal.InvalidOperation:
        return None


def _instant(value: Any) -> datetime.datetime | None:
    """A moment in UTC to the second, from a datetime or ISO 8601 / iVvy timestamp text."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).replace(microsecond=0)
