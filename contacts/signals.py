"""What contacts tell other apps about writes made in bulk (contacts never imports them).

A long write in several transactions (an import, in chunks) holds the push-on-save receivers
back: while `held_contact_ids` holds a set, they add each saved contact's id to it instead of
pushing after each commit. The writer then sends `contacts_bulk_written` once, at the end,
with every contact it touched, so each is queued once (`sync.signals`)."""

from contextvars import ContextVar

from django.dispatch import Signal

held_contact_ids: ContextVar[set[int] | None] = ContextVar("held_contact_ids", default=None)

# Sent with `contact_ids` (a set of ids, committed) and `user_id` (or None).
contacts_bulk_written = Signal()
