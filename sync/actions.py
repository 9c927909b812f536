"""Admin actions: thin adapters over sync.services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import ngettext

from sync import services
from sync.models import ContactSyncState, Destination, SyncStatus, Trigger

PREVIEW_LIMIT = 20


class PushActionForm(helpers.ActionForm):
    """The contact list's action bar, with the destination to push to and a force switch."""

    destination = forms.ModelChoiceField(
        queryset=Destination.objects.filter(enabled=True),
        required=False,
        empty_label="All enabled destinations",
    )
    force = forms.BooleanField(required=False, label="Force (push unchanged contacts too)")


def _chosen_destination(request):
    form = PushActionForm(request.POST)
    form.is_valid()
    return form.cleaned_data.get("destination"), bool(form.cleaned_data.get("force"))


@admin.action(description="Push selected contacts", permissions=["push"])
def push_selected(modeladmin, request, queryset):
    destination, force = _chosen_destination(request)
    run = services.contacts_push_selected(
        contacts=queryset,
        destination=destination,
        trigger=Trigger.ACTION,
        user_id=request.user.pk,
        force=force,
    )
    where = destination.name if destination else "every enabled destination"
    count = run.total - run.unchanged
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d push queued for %(where)s (run %(run)s, %(unchanged)d unchanged).",
            "%(count)d pushes queued for %(where)s (run %(run)s, %(unchanged)d unchanged).",
            count,
        )
        % {"count": count, "where": where, "run": run.pk, "unchanged": run.unchanged},
        messages.SUCCESS,
    )


@admin.action(description="Retry failed pushes of selected contacts", permissions=["push"])
def retry_failed(modeladmin, request, queryset):
    states = ContactSyncState.objects.filter(contact__in=queryset, status=SyncStatus.FAILED)
    by_destination: dict[int, list[int]] = {}
    for contact_id, destination_id in states.values_list("contact_id", "destination_id"):
        by_destination.setdefault(destination_id, []).append(contact_id)
    queued = 0
    for destination in Destination.objects.filter(pk__in=by_destination, enabled=True):
        ids = by_destination[destination.pk]
        run = services.run_start(
            trigger=Trigger.RETRY, user_id=request.user.pk, destination=destination, total=len(ids)
        )
        queued += services.contacts_enqueue_push(
            contact_ids=ids,
            destinations=[destination],
            trigger=Trigger.RETRY,
            user_id=request.user.pk,
            run=run,
        )
    if not queued:
        modeladmin.message_user(
            request, "None of the selected contacts has a failed push.", messages.WARNING
        )
        return
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d failed push queued again.",
            "%(count)d failed pushes queued again.",
            queued,
        )
        % {"count": queued},
        messages.SUCCESS,
    )


@admin.action(description="Preview payloads (sends nothing)", permissions=["view"])
def preview_payloads(modeladmin, request, queryset):
    contact_ids = list(queryset.values_list("pk", flat=True)[: PREVIEW_LIMIT + 1])
    if len(contact_ids) > PREVIEW_LIMIT:
        modeladmin.message_user(
            request, f"Select at most {PREVIEW_LIMIT} contacts to preview.", messages.ERROR
        )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Payload preview",
        "opts": modeladmin.model._meta,
        "previews": services.contact_preview_payloads(contact_ids=contact_ids),
    }
    return TemplateResponse(request, "admin/sync/payload_preview.html", context)
