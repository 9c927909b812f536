"""Receivers that turn contact edits into pushes. They only collect contact ids; the push
happens once per contact per transaction, after it commits, so inline rows saved in the same
admin request are in the payload. Sync state is never watched, so writing it pushes nothing."""

import logging
import threading

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete

from contacts.models import (
    Channel,
    Contact,
    CustomFieldValue,
    ExternalUrl,
    GroupMembership,
    MailingListSubscription,
)
from contacts.signals import contacts_bulk_written, held_contact_ids
from sync import consent, services
from sync.middleware import current_user_id
from sync.models import Trigger

CHILD_MODELS = (Channel, CustomFieldValue, ExternalUrl, GroupMembership, MailingListSubscription)

logger = logging.getLogger(__name__)
_pending = threading.local()


def _contact_touched(contact_id: int) -> None:
    """Remember the contact; the first one in a transaction registers the on-commit push.

    A rollback drops the registered callback from the connection's list: then the remembered
    ids belong to a transaction that never happened, and a fresh set starts. While a bulk
    writer holds pushes back (`contacts.signals`), the id goes to its set instead."""
    held = held_contact_ids.get()
    if held is not None:
        held.add(contact_id)
        return
    flush = getattr(_pending, "flush", None)
    registered = [entry[1] for entry in transaction.get_connection().run_on_commit]
    if flush is None or flush not in registered:
        user_id = current_user_id.get()
        contact_ids: set[int] = set()

        def flush():
            _pending.flush = None
            existing = set(Contact.objects.filter(pk__in=contact_ids).values_list("pk", flat=True))
            services.contacts_changed(contact_ids=existing, user_id=user_id)

        flush.contact_ids = contact_ids
        _pending.flush = flush
        flush.contact_ids.add(contact_id)
        transaction.on_commit(flush)
        return
    flush.contact_ids.add(contact_id)


def contact_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _contact_touched(instance.pk)


def child_changed(sender, instance, raw=False, **kwargs):
    if not raw and instance.contact_id:
        _contact_touched(instance.contact_id)


def contact_deleting(sender, instance, **kwargs):
    """Before the cascade removes its sync states: keep what the remote delete needs."""
    instance._remote_ids = dict(
        instance.sync_states.exclude(remote_id="").values_list("destination_id", "remote_id")
    )


def contact_deleted(sender, instance, **kwargs):
    if getattr(instance, "_erasing", False):
        return  # an erasure (sync.erasure) erases on every platform itself, with receipts
    remote_ids = getattr(instance, "_remote_ids", {})
    user_id = current_user_id.get()
    external_id = instance.external_id
    transaction.on_commit(
        lambda: services.contact_deleted(
            external_id=external_id, remote_ids=remote_ids, user_id=user_id
        )
    )


def contacts_written_in_bulk(sender, contact_ids, user_id=None, **kwargs):
    """Queue each contact once (never pushed in the request, whatever SYNC_ON_SAVE_MODE)."""
    existing = Contact.objects.filter(pk__in=contact_ids).values_list("pk", flat=True)
    destinations = services.destinations_for_save()
    if destinations and contact_ids:
        services.contacts_enqueue_push(
            contact_ids=sorted(existing),
            destinations=destinations,
            trigger=Trigger.SAVE,
            user_id=user_id,
        )


def opt_out_applied(sender, *, contact_id, destination_id, channel, status, **kwargs):
    """A platform's opt-out changed our contact (sync.inbound): that platform holds it, and
    the other platforms get it through their own opt-out calls (sync.consent). A failure
    here is logged, never raised: the opt-out stands in our contact, and its next push to
    each platform carries it."""
    try:
        consent.origin_holds(
            contact_id=contact_id, destination_id=destination_id, channel=channel, status=status
        )
        services.contact_opt_out_propagate(contact_id=contact_id, destination_id=destination_id)
    except Exception:
        logger.exception("propagating the opt-out of contact %s failed", contact_id)


def register_signal_handlers() -> None:
    consent.opt_out_applied.connect(opt_out_applied, dispatch_uid="sync_opt_out_applied")
    contacts_bulk_written.connect(contacts_written_in_bulk, dispatch_uid="sync_bulk_written")
    post_save.connect(contact_saved, sender=Contact, dispatch_uid="sync_contact_saved")
    pre_delete.connect(contact_deleting, sender=Contact, dispatch_uid="sync_contact_deleting")
    post_delete.connect(contact_deleted, sender=Contact, dispatch_uid="sync_contact_deleted")
    for model in CHILD_MODELS:
        uid = f"sync_{model.__name__}"
        post_save.connect(child_changed, sender=model, dispatch_uid=f"{uid}_saved")
        post_delete.connect(child_changed, sender=model, dispatch_uid=f"{uid}_deleted")
