"""Values that must reach all four platforms unharmed: accents, emoji, right-to-left text, a
500-character value, quotes and SQL-looking strings."""

import pytest

from contacts.models import Contact, CustomFieldDefinition, CustomFieldValue
from sync import services
from sync.models import FieldMapping, SyncStatus
from tests.conftest import PLATFORMS
from tests.sync.conftest import sandbox_store

pytestmark = pytest.mark.django_db

FIRST = "José-Émilie 😀"
LAST = "בן-דוד \"the 'quoted'\""
CITY = "Zürich'); DROP TABLE contacts;--"
LONG = ("ÅØ😀 é ש " * 100)[:500]
# A string field of each sandbox account, and where the platform keeps the value.
NOTE_FIELD = {"yespo": "79814", "ivvy": "33443", "cendyn": "loyalty_tier", "loops": "plan"}


def _stored_note(platform, record):
    field = NOTE_FIELD[platform]
    if platform == "yespo":
        return next(f["value"] for f in record["fields"] if str(f["id"]) == field)
    if platform == "ivvy":
        return next(f["value"] for f in record["customFields"] if str(f["fieldId"]) == field)
    return record[field]


NAMES = {  # where each platform keeps the first name, last name and city
    "yespo": lambda r: (r["firstName"], r["lastName"], r["address"]["town"]),
    "ivvy": lambda r: (r["firstName"], r["lastName"], None),
    "cendyn": lambda r: (r["name_first"], r["name_last"], r["city"]),
    "loops": lambda r: (r["firstName"], r["lastName"], None),
}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_hostile_and_international_values_round_trip(sandbox_destination, sandbox, platform):
    destination = sandbox_destination(platform)
    note = CustomFieldDefinition.objects.create(name="note", type="string")
    FieldMapping.objects.create(
        destination=destination, custom_field=note, remote_field=NOTE_FIELD[platform]
    )
    contact = Contact.objects.create(
        first_name=FIRST, last_name=LAST, city=CITY, email="jose.emilie@example.com", country="CH"
    )
    CustomFieldValue.objects.create(contact=contact, definition=note, value=LONG)
    destination.refresh_from_db()

    state = services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    assert state.status == SyncStatus.SYNCED, state.last_error
    (record,) = sandbox_store(sandbox, platform)["contacts"]
    first, last, city = NAMES[platform](record)
    assert (first, last) == (FIRST, LAST)
    if city is not None:
        assert city == CITY
    assert _stored_note(platform, record) == LONG
    assert Contact.objects.get(pk=contact.pk).city == CITY  # and our own table is intact
