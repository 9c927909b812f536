"""Sync in the admin: destinations with their mappings, read-only state, attempt log and runs,
and the contact admin extended with badges, a sync panel and push actions."""

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext
from django_tasks_db import admin as tasks_admin
from django_tasks_db.models import DBTaskResult
from simple_history.admin import SimpleHistoryAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from contacts.admin import ContactAdmin
from contacts.models import Contact, CustomFieldDefinition, Group, MailingList
from sync import actions, connectors, selectors, services
from sync.actions import ObjectActionsMixin, object_action
from sync.connectors.base import ConnectorConfigurationError, ConnectorError
from sync.connectors.records import RULED_NATIVE_FIELDS, STANDARD_FIELDS
from sync.forms import (
    credential_field_names,
    destination_form_for,
    platform_of,
    setting_field_names,
)
from sync.models import (
    ContactSyncState,
    Destination,
    FieldMapping,
    ListMapping,
    NativeFieldRule,
    RemoteOption,
    SyncAttempt,
    SyncRun,
    SyncStatus,
)

PUSH_PERMISSION = "sync.push_contacts"


class ReadOnlyAdmin(ModelAdmin):
    """Logs and state: written by the sync engine only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# ----------------------------------------------------------------------------- destinations


class _RemoteOptionsInline(TabularInline):
    extra = 0
    option_kind = ""
    remote_field_name = ""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        options = list(obj.options.filter(kind=self.option_kind)) if obj else []
        field = formset.form.base_fields[self.remote_field_name]
        if options:
            choices = [("", "---------")] + [
                (o.remote_id, f"{o.label} ({o.remote_id})") for o in options
            ]
            field.widget = forms.Select(choices=choices)
        field.help_text = "" if options else "Press “Refresh from platform” to pick from a list."
        return formset


class FieldMappingInline(_RemoteOptionsInline):
    model = FieldMapping
    option_kind = RemoteOption.Kind.FIELD
    remote_field_name = "remote_field"
    fields = ["standard_field", "custom_field", "remote_field", "write_rule"]


class NativeFieldRuleInline(TabularInline):
    """Write rules of the standard fields the platform holds in native slots of its own (a
    first name, a phone): "always" unless a row says otherwise. Its model checks that the
    platform has such a slot (NativeFieldRule.clean)."""

    model = NativeFieldRule
    extra = 0
    fields = ["field", "write_rule"]
    verbose_name_plural = "Write rules of native fields (sent always unless listed here)"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        cls = connectors.CONNECTORS.get(platform_of(request, obj))
        native = getattr(cls, "native_fields", ()) if cls else ()
        if native:
            field = formset.form.base_fields["field"]
            field.choices = [("", "---------")] + [
                (name, label) for name, label in RULED_NATIVE_FIELDS.items() if name in native
            ]
        return formset


class ListMappingInline(_RemoteOptionsInline):
    model = ListMapping
    option_kind = RemoteOption.Kind.LIST
    remote_field_name = "remote_list"
    fields = ["group", "mailing_list", "remote_list"]


@admin.action(description="Test connection", permissions=["change"])
def test_connection(modeladmin, request, queryset):
    for destination in queryset:
        ok, message = services.destination_test_connection(destination=destination)
        level = messages.SUCCESS if ok else messages.ERROR
        modeladmin.message_user(request, f"{destination}: {message}", level)


@admin.action(description="Refresh fields and lists from platform", permissions=["change"])
def refresh_options(modeladmin, request, queryset):
    for destination in queryset:
        try:
            count = services.destination_refresh_options(destination=destination)
        except (ConnectorError, ConnectorConfigurationError) as err:
            modeladmin.message_user(request, f"{destination}: {err}", messages.ERROR)
            continue
        modeladmin.message_user(
            request,
            ngettext(
                "%(dest)s: %(count)d field or list fetched.",
                "%(dest)s: %(count)d fields and lists fetched.",
                count,
            )
            % {"dest": destination, "count": count},
            messages.SUCCESS,
        )


@admin.register(Destination)
class DestinationAdmin(ObjectActionsMixin, SimpleHistoryAdmin, ModelAdmin):
    list_display = ["name", "platform", "enabled", "push_on_save", "health", "effective_url"]
    list_filter = ["platform", "enabled"]
    actions = [test_connection, refresh_options]
    object_actions = ("test_connection_button", "refresh_options_button")
    # The history page lists who changed the platform, URL or credential variables.
    history_list_display = ["platform", "base_url", "key_env", "secret_env", "settings"]
    inlines = [FieldMappingInline, NativeFieldRuleInline, ListMappingInline]
    readonly_fields = [
        "health",
        "platform_notes",
        "unmapped_fields",
        "uncleared_fields",
        "options_refreshed_at",
    ]
    change_form_template = "admin/sync/destination/change_form.html"

    def get_fieldsets(self, request, obj=None):
        """The neutral columns, and the credential variables and settings the platform's
        connector declares (sync/forms.py)."""
        slug = platform_of(request, obj)
        cls = connectors.CONNECTORS.get(slug)
        account = ["base_url", *credential_field_names(cls), *setting_field_names(cls)]
        return [
            (
                None,
                {
                    "fields": ["name", "platform", "enabled", "push_on_save", "health"]
                    + (["platform_notes"] if obj is not None else []),
                    "description": ""
                    if cls
                    else "Choose the platform: its own settings then appear below.",
                },
            ),
            ("Account", {"fields": account}),
            (
                "Behaviour",
                {
                    "fields": [
                        "marketing_consent_only",
                        "delete_on_platform",
                        "rate_limit",
                        "timeout",
                    ]
                },
            ),
            (
                "Mappings",
                {"fields": ["unmapped_fields", "uncleared_fields", "options_refreshed_at"]},
            ),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        cls = connectors.CONNECTORS.get(platform_of(request, obj))
        kwargs["form"] = destination_form_for(cls)
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="status")
    def health(self, obj):
        if obj.paused_at:
            return format_html(
                '<span class="sync-badge sync-failed" title="{}">Paused: {}</span>',
                obj.pause_error,
                obj.pause_error,
            )
        return format_html(
            '<span class="sync-badge sync-synced">{}</span>',
            "Active" if obj.enabled else "Disabled",
        )

    @admin.display(description="URL")
    def effective_url(self, obj):
        return obj.effective_base_url

    @admin.display(description="About this platform")
    def platform_notes(self, obj):
        if obj is None or obj.platform not in connectors.CONNECTORS:
            return "-"
        notes = getattr(obj.connector_class, "notes", ())
        return format_html_join("", "<p>{}</p>", ((note,) for note in notes)) or "-"

    @admin.display(description="Cleared values")
    def uncleared_fields(self, obj):
        """What the platform documents no way to clear (BaseConnector.uncleared_fields)."""
        cls = connectors.CONNECTORS.get(obj.platform) if obj is not None else None
        if cls is None:
            return "-"
        if not cls.uncleared_fields:
            return f"A value cleared here is cleared on {cls.label}."
        return f"Cleared values stay on {cls.label} for: {'; '.join(cls.uncleared_fields)}."

    @admin.display(description="Not sent (unmapped)")
    def unmapped_fields(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        mapping = selectors.destination_mapping(obj)

        missing = [
            f"custom field “{d.name}”"
            for d in CustomFieldDefinition.objects.all()
            if f"custom:{d.name}" not in mapping.fields
        ]
        missing += [
            f"{STANDARD_FIELDS[name]}"
            for name in obj.connector_class.mappable_standard_fields
            if name in STANDARD_FIELDS and name not in mapping.fields
        ]
        missing += [f"group “{g.name}”" for g in Group.objects.exclude(pk__in=mapping.groups)]
        missing += [
            f"mailing list “{m.name}”"
            for m in MailingList.objects.exclude(pk__in=mapping.mailing_lists)
        ]
        return ", ".join(missing) or "Everything is mapped."

    object_history_template = "admin/sync/destination/object_history.html"

    def history_view(self, request, object_id, extra_context=None):
        mapping_history = (
            selectors.destination_mapping_history(destination_id=int(object_id))
            if object_id.isdigit()
            else []
        )
        extra_context = {**(extra_context or {}), "mapping_history": mapping_history}
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # An old version is shown, never saved back. simple-history saves a POSTed form here
        # after checking only the view permission (its form is built without change=True), so
        # a view-only role could rewrite the destination's URL or credential variables.
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    @object_action(description="Test connection", permissions=["change"])
    def test_connection_button(self, request, obj):
        test_connection(self, request, Destination.objects.filter(pk=obj.pk))

    @object_action(description="Refresh from platform", permissions=["change"])
    def refresh_options_button(self, request, obj):
        refresh_options(self, request, Destination.objects.filter(pk=obj.pk))


# ------------------------------------------------------------------ state, attempts, runs


@admin.register(ContactSyncState)
class ContactSyncStateAdmin(ReadOnlyAdmin):
    list_display = [
        "contact",
        "destination",
        "status",
        "remote_id",
        "short_error",
        "attempts",
        "next_attempt_at",
        "last_success_at",
    ]
    list_filter = ["destination", "status"]
    search_fields = ["contact__email", "contact__external_id", "remote_id"]
    list_select_related = ["contact", "destination"]
    raw_id_fields = ["contact", "run"]

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:120]


@admin.register(SyncAttempt)
class SyncAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "started_at",
        "destination",
        "external_id",
        "trigger",
        "outcome",
        "http_status",
        "duration_ms",
        "short_error",
        "user",
    ]
    list_filter = ["destination", "outcome", "trigger"]
    search_fields = ["external_id", "error"]
    list_select_related = ["destination", "user"]
    raw_id_fields = ["contact", "run", "user"]
    date_hierarchy = "started_at"

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error[:120]


class FailedAttemptInline(TabularInline):
    model = SyncAttempt
    verbose_name_plural = "failed contacts"
    fields = ["external_id", "destination", "http_status", "error", "started_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(outcome=SyncAttempt.Outcome.FAILED)
            .select_related("destination")
        )

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description="Cancel selected runs", permissions=["push"])
def cancel_runs(modeladmin, request, queryset):
    for run in queryset.filter(state=SyncRun.State.RUNNING):
        services.run_cancel(run=run)
    modeladmin.message_user(request, "Cancelled; what was not sent stays as it was.")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "trigger",
        "destination",
        "user",
        "state",
        "started_at",
        "finished_at",
        "progress",
        "created",
        "updated",
        "unchanged",
        "failed",
        "skipped",
    ]
    list_filter = ["state", "trigger", "destination"]
    list_select_related = ["destination", "user"]
    inlines = [FailedAttemptInline]
    actions = [cancel_runs]

    @admin.display(description="progress")
    def progress(self, obj):
        return f"{obj.done} / {obj.total}"

    def has_push_permission(self, request):
        return request.user.has_perm(PUSH_PERMISSION)


# ------------------------------------------------------------- the contact, with sync


BADGE_TEXT = {
    SyncStatus.SYNCED: "synced",
    SyncStatus.UNCHANGED: "unchanged",
    SyncStatus.PENDING: "pending",
    SyncStatus.IN_PROGRESS: "pushing",
    SyncStatus.WAITING: "waiting",
    SyncStatus.AWAITING: "awaiting confirmation",
    SyncStatus.SKIPPED: "skipped",
    SyncStatus.FAILED: "failed",
    SyncStatus.NEVER: "never",
}


class SyncDestinationFilter(admin.SimpleListFilter):
    title = "sync destination"
    parameter_name = "sync_dest"

    def lookups(self, request, model_admin):
        return [(str(d.pk), d.name) for d in model_admin.destinations(request)]

    def queryset(self, request, queryset):
        return queryset  # applied together with the status by SyncStatusFilter


class SyncErrorFilter(admin.SimpleListFilter):
    """The dashboard's error groups link here with the exact message; no sidebar entry."""

    title = "sync error"
    parameter_name = "sync_error"

    def lookups(self, request, model_admin):
        return ()

    def queryset(self, request, queryset):
        return queryset  # applied together with the status by SyncStatusFilter


class SyncStatusFilter(admin.SimpleListFilter):
    title = "sync status"
    parameter_name = "sync_status"

    def lookups(self, request, model_admin):
        return SyncStatus.choices

    def queryset(self, request, queryset):
        status = self.value()
        destination = request.GET.get("sync_dest")
        error = request.GET.get("sync_error")
        if not status and not destination and not error:
            return queryset
        states = ContactSyncState.objects.filter(contact=OuterRef("pk"))
        if destination:
            states = states.filter(destination_id=destination)
        if error:
            states = states.filter(last_error=error)
        if status == SyncStatus.NEVER:
            return queryset.exclude(Exists(states.exclude(status=SyncStatus.NEVER)))
        if status:
            states = states.filter(status=status)
        return queryset.filter(Exists(states))


class SyncedContactAdmin(ContactAdmin):
    action_form = actions.PushActionForm
    actions = [actions.push_selected, actions.preview_payloads, actions.retry_failed]
    list_filter = [
        *ContactAdmin.list_filter,
        SyncDestinationFilter,
        SyncStatusFilter,
        SyncErrorFilter,
    ]
    change_form_template = "admin/contacts/contact/sync_change_form.html"

    def get_deleted_objects(self, objs, request):
        """Deleting a contact deletes its sync states and unlinks its attempt-log rows: the
        sync engine's own records, which no role edits. Whoever may delete the contact may
        delete them with it (the confirmation page still lists them)."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        engine_records = {
            str(model._meta.verbose_name) for model in (ContactSyncState, SyncAttempt)
        }
        return deleted, model_count, perms_needed - engine_records, protected

    def get_list_display(self, request):
        destinations = self.destinations(request)

        @admin.display(description="sync")
        def sync_badges(obj):
            states = {s.destination_id: s for s in obj.sync_states.all()}
            return render_to_string(
                "admin/sync/badges.html",
                {"badges": [_badge(d, states.get(d.pk)) for d in destinations]},
            )

        name, *rest = super().get_list_display(request)
        return [name, sync_badges, *rest]  # near the name: the list is wide

    def get_queryset(self, request):
        states = ContactSyncState.objects.only(
            "contact_id", "destination_id", "status", "remote_id", "last_error"
        )
        return (
            super().get_queryset(request).prefetch_related(Prefetch("sync_states", queryset=states))
        )

    def destinations(self, request):
        if not hasattr(request, "_sync_destinations"):
            request._sync_destinations = list(Destination.objects.order_by("name"))
        return request._sync_destinations

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            held = obj.sync_states.filter(
                ~Q(remote_id="") | Q(status__in=[SyncStatus.SYNCED, SyncStatus.UNCHANGED])
            ).exists()
            if held:
                fields.append("external_id")  # changing it would make a duplicate there
        return fields

    def has_push_permission(self, request):
        return request.user.has_perm(PUSH_PERMISSION)

    def get_urls(self):
        view = self.admin_site.admin_view(self.sync_panel_view)
        return [
            path("<int:contact_id>/sync-panel/", view, name="contacts_contact_sync_panel"),
            *super().get_urls(),
        ]

    def sync_panel_view(self, request, contact_id):
        contact = get_object_or_404(Contact, pk=contact_id)
        if not self.has_view_or_change_permission(request, contact):
            raise PermissionDenied
        return TemplateResponse(
            request, "admin/sync/contact_sync_panel.html", selectors.contact_sync_panel(contact)
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        request._saved_contact_id = obj.pk

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """After a save, say per destination what became of its push (the push on save runs
        when the save's transaction commits, inside this call)."""
        response = super().changeform_view(request, object_id, form_url, extra_context)
        contact_id = getattr(request, "_saved_contact_id", None)
        if contact_id is not None and response.status_code == 302:
            levels = {"success": messages.SUCCESS, "warning": messages.WARNING}
            for level, text in selectors.contact_save_outcomes(contact_id=contact_id):
                self.message_user(request, text, levels.get(level, messages.INFO))
        return response

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["sync_panel"] = selectors.contact_sync_panel(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


def _badge(destination, state):
    """Status in the badge; the remote ID (or the platform's error) on hover."""
    status = state.status if state else SyncStatus.NEVER
    text = BADGE_TEXT[status]
    if status == SyncStatus.SYNCED and state.remote_id:
        text = f"{text} {state.remote_id[:8]}{'…' if len(state.remote_id) > 8 else ''}"
    title = ""
    if state and state.last_error:
        title = state.last_error
    elif state and state.remote_id:
        title = f"remote ID {state.remote_id}"
    return {"destination": destination.name, "status": status, "text": text, "title": title}


admin.site.unregister(Contact)
admin.site.register(Contact, SyncedContactAdmin)


# ---------------------------- users, roles, login throttling, tasks: in unfold's classes

# Their own admins, unchanged in what they do, on unfold's ModelAdmin (its forms and widgets)
# so that every page of the site has the same look.
admin.site.unregister(User)
admin.site.unregister(AuthGroup)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


@admin.register(AuthGroup)
class RoleAdmin(BaseGroupAdmin, ModelAdmin):
    pass


for _model, _base in [
    (AccessAttempt, axes_admin.AccessAttemptAdmin),
    (AccessLog, axes_admin.AccessLogAdmin),
    (AccessFailureLog, axes_admin.AccessFailureLogAdmin),
    (DBTaskResult, tasks_admin.DBTaskResultAdmin),
]:
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (_base, ModelAdmin), {}))
