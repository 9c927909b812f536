"""Realistic demo contacts, inserted in bulk (used by `seed_demo` and by benchmarks)."""

import datetime
import random
from collections.abc import Iterator

import phonenumbers
from django.db import transaction

from contacts.models import (
    Channel,
    Contact,
    CustomFieldDefinition,
    CustomFieldType,
    CustomFieldValue,
    EmailStatus,
    ExternalUrl,
    Group,
    GroupMembership,
    MailingList,
    MailingListSubscription,
    SmsStatus,
    new_external_id,
)

FIRST_NAMES = [
    "Amélie",
    "Bobby",
    "Chloé",
    "Dmytro",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Inès",
    "Jack",
    "Karin",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST_NAMES = [
    "Smith",
    "Doe",
    "García",
    "Müller",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Ivanenko",
    "Tanaka",
    "Okafor",
    "Nguyen",
    "Jensen",
    "Silva",
    "O'Brien",
    "Haddad",
]
PLACES = [  # country, city, region, postal code, language, time zone
    ("US", "New York", "NY", "10001", "en", "America/New_York"),
    ("GB", "London", "England", "SW1A 1AA", "en", "Europe/London"),
    ("FR", "Toulouse", "Occitanie", "31000", "fr", "Europe/Paris"),
    ("DE", "Berlin", "Berlin", "10115", "de", "Europe/Berlin"),
    ("ES", "Madrid", "Madrid", "28001", "es", "Europe/Madrid"),
    ("UA", "Kyiv", "Kyiv", "01001", "uk", "Europe/Kyiv"),
    ("AU", "Sydney", "NSW", "2000", "en", "Australia/Sydney"),
]
GROUPS = ["Newsletter Subscribers", "VIP", "Event attendees", "Trial users"]
MAILING_LISTS = ["Weekly digest", "Product news", "Offers"]
CUSTOM_FIELDS = [
    ("loyaltyLevel", CustomFieldType.STRING),
    ("lifetimeValue", CustomFieldType.NUMBER),
]
LOYALTY_LEVELS = ["Bronze", "Silver", "Gold", "Platinum"]
BATCH = 2000


def _phone_pool(country: str, rng: random.Random, size: int = 200) -> list[str]:
    """Valid mobile numbers for `country`: the library's example with other last digits."""
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    pool = []
    while len(pool) < size:
        candidate = national[:-3] + f"{rng.randrange(1000):03d}"
        number = phonenumbers.parse(candidate, country)
        if phonenumbers.is_valid_number(number):
            pool.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return pool


def _catalogues():
    groups = [Group.objects.get_or_create(name=name)[0] for name in GROUPS]
    lists = [MailingList.objects.get_or_create(name=name)[0] for name in MAILING_LISTS]
    fields = [
        CustomFieldDefinition.objects.get_or_create(name=name, defaults={"type": kind})[0]
        for name, kind in CUSTOM_FIELDS
    ]
    return groups, lists, fields


def _contact(index: int, rng: random.Random, phones: dict[str, list[str]]) -> Contact:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    country, city, region, postal, language, tz = rng.choice(PLACES)
    consent = rng.random() < 0.7
    return Contact(
        first_name=first,
        last_name=last,
        email=f"{first.lower()}.{index}@example.com".replace("é", "e").replace("è", "e"),
        phone=rng.choice(phones[country]),
        external_id=new_external_id(),
        language=language,
        time_zone=tz,
        address_line=f"{rng.randrange(1, 200)} Main Street",
        city=city,
        region=region,
        country=country,
        postal_code=postal,
        birth_date=datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(20000)),
        gender=rng.choice(["female", "male", "other", ""]),
        email_status=rng.choices(list(EmailStatus.values), weights=[85, 8, 3, 4])[0],
        sms_status=rng.choices(list(SmsStatus.values), weights=[40, 10, 5, 45])[0],
        privacy_consent=consent,
        gdpr_marketing_consent=consent,
        terms_accepted=consent,
        consent_date=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) if consent else None,
        consent_ip="203.0.113.7" if consent else None,
        tags=rng.sample(["newsletter", "customer", "lead", "partner"], k=rng.randrange(3)),
        user_group=rng.choice(["Customers", "Leads", ""]),
    )


def _children(contact: Contact, rng: random.Random, groups, lists, fields) -> Iterator:
    if rng.random() < 0.3:
        yield Channel(contact=contact, type="webpush", value=f"subscription-{contact.external_id}")
    loyalty, value = fields
    yield CustomFieldValue(contact=contact, definition=loyalty, value=rng.choice(LOYALTY_LEVELS))
    yield CustomFieldValue(contact=contact, definition=value, value=str(rng.randrange(10, 5000)))
    for group in rng.sample(groups, k=rng.randrange(1, 3)):
        yield GroupMembership(contact=contact, group=group)
    yield MailingListSubscription(
        contact=contact, mailing_list=rng.choice(lists), subscribed=rng.random() < 0.9
    )
    if rng.random() < 0.2:
        yield ExternalUrl(
            contact=contact,
            ref="crm",
            label="CRM",
            url=f"https://crm.example.com/c/{contact.external_id}",
        )


def seed_demo_contacts(count: int, *, seed: int = 42, progress=None) -> int:
    """Insert `count` demo contacts with children, in batches; return how many were made.

    Bulk inserts skip `save()`, so no push is triggered and no content version is bumped.
    """
    rng = random.Random(seed)
    phones = {place[0]: _phone_pool(place[0], rng) for place in PLACES}
    groups, lists, fields = _catalogues()
    start = Contact.objects.count()
    made = 0
    while made < count:
        size = min(BATCH, count - made)
        with transaction.atomic():
            contacts = Contact.objects.bulk_create(
                [_contact(start + made + i, rng, phones) for i in range(size)]
            )
            by_model: dict[type, list] = {}
            for contact in contacts:
                for child in _children(contact, rng, groups, lists, fields):
                    by_model.setdefault(type(child), []).append(child)
            for model, rows in by_model.items():
                model.objects.bulk_create(rows)
        made += size
        if progress:
            progress(made)
    return made
