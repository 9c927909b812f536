"""Validation and normalisation of contact values.

Each function either returns the normalised value or raises `ValidationError` with a message a
person can act on. The admin forms, the CSV import and the demo seeder all go through here, so a
value is judged the same way wherever it enters.
"""

import datetime
import decimal
import zoneinfo
from functools import cache

import phonenumbers
import pycountry
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

validate_email = EmailValidator(message="Enter a valid email address.")
validate_https_url = URLValidator(schemes=["https"], message="Enter a valid https:// URL.")


def normalize_phone(value: str, *, country: str = "") -> str:
    """Return `value` as an E.164 number (`+447700900123`).

    A number without a leading `+` is read as a national number of `country` (ISO 3166-1
    alpha-2). Raises ValidationError when it cannot be parsed or is not a valid number.
    """
    value = (value or "").strip()
    if not value.startswith("+") and not country:
        raise ValidationError(
            "Enter the number with its country code (+44…), or set the contact's country."
        )
    try:
        parsed = phonenumbers.parse(value, None if value.startswith("+") else country.upper())
    except phonenumbers.NumberParseException as err:
        raise ValidationError(f"Enter a valid phone number ({err._msg})") from err
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError("This is not a valid phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@cache
def time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@cache
def _time_zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in time_zone_names()}


def canonical_time_zone(value: str) -> str:
    """The IANA name as spelled in the database of zones (europe/london -> Europe/London);
    anything that is not a zone name is returned as it is, for the validator to refuse."""
    value = value.strip()
    return _time_zones_by_folded_name().get(value.casefold(), value)


def time_zone_choices() -> list[tuple[str, str]]:
    return [("", "---------")] + [(name, name) for name in sorted(time_zone_names())]


def validate_time_zone(value: str) -> None:
    if value and value not in time_zone_names():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. Europe/London).")


@cache
def validate_birth_date(value: datetime.date | None) -> None:
    """A birth date is in the past: a future one is a typing slip, and platforms keep it."""
    if value and value > datetime.date.today():
        raise ValidationError("A birth date cannot be in the future.")


@cache  # read per row by an import's checks: pycountry's list does not change
def country_choices() -> list[tuple[str, str]]:
    return sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda c: c[1])


@cache
def language_choices() -> list[tuple[str, str]]:
    languages = (lang for lang in pycountry.languages if hasattr(lang, "alpha_2"))
    return sorted(((lang.alpha_2, lang.name) for lang in languages), key=lambda c: c[1])


def normalize_channel_value(channel_type: str, value: str, *, country: str = "") -> str:
    """Validate a channel's value for its type; return it normalised.

    Email channels take an email address; sms and viber a phone number (stored in E.164);
    the device and push channels an opaque token, which must not be blank or contain spaces.
    """
    value = (value or "").strip()
    if not value:
        raise ValidationError("Enter a value for this channel.")
    if channel_type == "email":
        validate_email(value)
        return value
    if channel_type in ("sms", "viber"):
        return normalize_phone(value, country=country)
    if any(ch.isspace() for ch in value):
        raise ValidationError("A device or subscription token cannot contain spaces.")
    return value


def normalize_custom_value(field_type: str, value: str) -> str:
    """Check `value` against a custom field type; return its canonical text.

    string: as given; number: a decimal (`12.50` -> `12.5`); boolean: `true`/`false` (also
    accepts yes/no/1/0); date: ISO `YYYY-MM-DD`.
    """
    value = (value or "").strip()
    if field_type == "number":
        try:
            number = decimal.Decimal(value)
        except decimal.InvalidOperation as err:
            raise ValidationError(f"{value!r} is not a number.") from err
        if not number.is_finite():
            raise ValidationError(f"{value!r} is not a number.")
        text = format(number.normalize(), "f")
        return text
    if field_type == "boolean":
        lowered = value.lower()
        if lowered in ("true", "yes", "1"):
            return "true"
        if lowered in ("false", "no", "0"):
            return "false"
        raise ValidationError(f"{value!r} is not a boolean (true or false).")
    if field_type == "date":
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except ValueError as err:
            raise ValidationError(f"{value!r} is not a date (YYYY-MM-DD).") from err
    return value
