"""Helpers for the clear and write-rule tests: a contact saved here, pushed through the engine
to a sandbox destination over real HTTP, changed, pushed again. Platform-neutral: each
platform's own tests (tests/sync/connectors/test_<platform>_sandbox.py) read its store."""

from contacts.models import Contact, CustomFieldDefinition, CustomFieldValue
from sync import services
from sync.models import ContactSyncState, SyncAttempt


def contact_with(**fields) -> Contact:
    defaults = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "external_id": "clear-1",
    }
    return Contact.objects.create(**{**defaults, **fields})


def set_custom(contact: Contact, name: str, value: str, kind: str = "string") -> None:
    definition, _ = CustomFieldDefinition.objects.get_or_create(name=name, defaults={"type": kind})
    CustomFieldValue.objects.update_or_create(
        contact=contact, definition=definition, defaults={"value": value}
    )


def clear_custom(contact: Contact, name: str) -> None:
    for value in CustomFieldValue.objects.filter(contact=contact, definition__name=name):
        value.delete()


def change(contact: Contact, **fields) -> Contact:
    contact.refresh_from_db()
    for name, value in fields.items():
        setattr(contact, name, value)
    contact.save()
    return contact


def push(contact: Contact, destination) -> ContactSyncState:
    """One push through the engine (one try, as a person's request makes it)."""
    state = services.contact_push(
        contact_id=contact.pk,
        destination=destination,
        context=services.PushContext(trigger="action"),
    )
    assert state is not None
    return state


def last_attempt(contact: Contact, destination) -> SyncAttempt:
    return SyncAttempt.objects.filter(contact=contact, destination=destination).first()
