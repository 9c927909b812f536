"""Admin actions, and the buttons on an object's page: thin adapters over sync.services.

List actions are Django's `@admin.action(permissions=[…])`. A button on an object's page is a
method declared with `@object_action(description=…, permissions=[…])` and named in its
admin's `object_actions`: it gets its own POST-only URL, checked like a list action (each
permission `p` asks the admin's `has_p_permission(request, obj)`), and is shown only to users
who pass. This is the shape of django-unfold's `actions_detail` with `@action(permissions=…)`.
"""

from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext
from unfold.forms import ActionForm
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldBooleanWidget

from sync import erasure, selectors, services
from sync.models import Destination, Trigger

PREVIEW_LIMIT = 20
ERASE_LIMIT = 20  # people per confirmation page: each is listed with what goes where


@dataclass(frozen=True)
class ObjectAction:
    name: str
    description: str
    permissions: tuple[str, ...]

    @property
    def url_path(self) -> str:
        return self.name.replace("_", "-")


def object_action(*, description: str, permissions: list[str]):
    """Declare an admin method `(self, request, obj)` as a button on the object's page. It
    runs only on POST and only for users with every permission; it may return a response,
    else the object's page is shown again."""
    if not permissions:
        raise ValueError("an object action must name the permissions it needs")

    def declare(method):
        method.object_action = ObjectAction(method.__name__, description, tuple(permissions))
        return method

    return declare


class ObjectActionsMixin:
    """Serves and shows the buttons named in `object_actions` (see the module docstring)."""

    object_actions: tuple[str, ...] = ()

    def declared_object_actions(self) -> list[ObjectAction]:
        return [getattr(self, name).object_action for name in self.object_actions]

    def object_action_allowed(self, request, action: ObjectAction, obj) -> bool:
        return all(getattr(self, f"has_{p}_permission")(request, obj) for p in action.permissions)

    def object_action_url_name(self, action: ObjectAction) -> str:
        opts = self.model._meta
        return f"{opts.app_label}_{opts.model_name}_{action.name}"

    def get_urls(self):
        urls = [
            path(
                f"<path:object_id>/{action.url_path}/",
                self.admin_site.admin_view(self._object_action_view(action)),
                name=self.object_action_url_name(action),
            )
            for action in self.declared_object_actions()
        ]
        return urls + super().get_urls()

    def _object_action_view(self, action: ObjectAction):
        def view(request, object_id):
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            obj = self.get_object(request, object_id)
            if obj is None:
                raise Http404
            if not self.object_action_allowed(request, action, obj):
                raise PermissionDenied
            response = getattr(self, action.name)(request, obj)
            opts = self.model._meta
            return response or redirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            )

        return view

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["object_actions"] = [
                (
                    action,
                    reverse(f"admin:{self.object_action_url_name(action)}", args=[obj.pk]),
                )
                for action in self.declared_object_actions()
                if self.object_action_allowed(request, action, obj)
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)


class PushActionForm(ActionForm):
    """The contact list's action bar (unfold's), with the destination to push to and a force
    switch; the destination's select is styled like the bar's action select."""

    destination = forms.ModelChoiceField(
        queryset=Destination.objects.filter(enabled=True),
        required=False,
        empty_label="All enabled destinations",
        label="",
        widget=UnfoldAdminSelectWidget(
            {
                "class": " ".join(
                    name
                    for name in ActionForm.base_fields["action"].widget.attrs["class"].split()
                    if name.startswith("group-[.changelist-actions]")
                ),
                "aria-label": "Destination to push to",
            }
        ),
    )
    force = forms.BooleanField(
        required=False, label="Force (push unchanged contacts too)", widget=UnfoldBooleanWidget
    )


def _chosen_destination(request):
    form = PushActionForm(request.POST)
    form.is_valid()
    return form.cleaned_data.get("destination"), bool(form.cleaned_data.get("force"))


@admin.action(description="Push selected contacts", permissions=["push"])
def push_selected(modeladmin, request, queryset):
    """Starts the run and returns: a worker plans and queues it (its page shows how far)."""
    destination, force = _chosen_destination(request)
    run = services.contacts_push_in_background(
        contacts=queryset,
        destination=destination,
        trigger=Trigger.ACTION,
        user_id=request.user.pk,
        force=force,
    )
    where = destination.name if destination else "every enabled destination"
    text = ngettext(
        "%(count)d push queued for %(where)s: run %(run)s is being prepared (unchanged "
        "contacts are settled without a request).",
        "%(count)d pushes queued for %(where)s: run %(run)s is being prepared (unchanged "
        "contacts are settled without a request).",
        run.total,
    ) % {"count": run.total, "where": where, "run": run.pk}
    url = reverse("admin:sync_syncrun_change", args=[run.pk])
    modeladmin.message_user(
        request,
        format_html('{} <a href="{}">Follow run {}</a>.', text, url, run.pk),
        messages.SUCCESS,
    )


@admin.action(description="Retry failed pushes of selected contacts", permissions=["push"])
def retry_failed(modeladmin, request, queryset):
    queued = services.contacts_retry_failed(user_id=request.user.pk, contacts=queryset)
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


@admin.action(description="Preview push: requests and cost (sends nothing)", permissions=["view"])
def preview_push(modeladmin, request, queryset):
    """The push's dry run, for the destination (and force switch) chosen in the action bar:
    per destination the exact requests for the first 20 contacts it would send and, for the
    whole selection, the counts, the requests and the time they take (services.push_dry_run).
    Any number of contacts may be selected: the counts are queries."""
    destination, force = _chosen_destination(request)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Push preview",
        "opts": modeladmin.model._meta,
        "force": force,
        "show": PREVIEW_LIMIT,
        "dry_runs": services.push_dry_run(
            contacts=queryset, destination=destination, force=force, show=PREVIEW_LIMIT
        ),
    }
    return TemplateResponse(request, "admin/sync/push_preview.html", context)


@admin.action(
    description="Erase selected people (here and on every platform)", permissions=["erase"]
)
def erase_selected(modeladmin, request, queryset):
    """GDPR art. 17. First a confirmation page listing, per person, what each destination
    will do and what is removed here; its "Yes, erase" posts back with `post=yes`, which
    queues the erasure (sync.services.contact_erase) and links its receipts."""
    contacts = list(queryset.order_by("pk")[: ERASE_LIMIT + 1])
    if len(contacts) > ERASE_LIMIT:
        modeladmin.message_user(
            request, f"Select at most {ERASE_LIMIT} people to erase at once.", messages.ERROR
        )
        return None
    if request.POST.get("post") == "yes":
        for contact in contacts:
            started = services.contact_erase(contact=contact, user_id=request.user.pk)
            url = reverse("admin:sync_erasure_change", args=[started.pk])
            modeladmin.message_user(
                request,
                format_html(
                    'Erasure {} is under way: its receipts are on <a href="{}">its page</a>.',
                    started.pk,
                    url,
                ),
                messages.SUCCESS,
            )
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Erase these people?",
        "opts": modeladmin.model._meta,
        "people": [{"contact": contact, "table": _plan_table(contact)} for contact in contacts],
        "cancel_url": reverse("admin:contacts_contact_changelist"),
        "local_stores": erasure.erasure_local_stores(),
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "action": "erase_selected",
    }
    return TemplateResponse(request, "admin/sync/erase_confirmation.html", context)


def _plan_table(contact) -> dict:
    """What goes where for one person, as unfold's table component takes it."""
    return {
        "headers": ["destination", "platform", "remote ID", "what is done there"],
        "rows": [
            [step["destination"].name, step["platform"], step["remote_id"] or "-", step["action"]]
            for step in selectors.contact_erasure_plan(contact=contact)
        ],
    }
